//! The scenarios end to end, small and short, against the bare baseline served in-process on
//! 127.0.0.1.

use std::time::Duration;

use baseline_bare::Targets;
use tether_load::{
    client::Target,
    evicted,
    flood::{self, FloodOptions},
    scenario::{self, Events, Publish, RunConfig, StormOptions, StreamOptions},
};

async fn start_server(self_publish: Option<u64>) -> RunConfig {
    start_bare(
        baseline_bare::Config::default(),
        self_publish.map(|rate| (rate, Targets::Subscribed)),
    )
    .await
}

async fn start_bare(
    config: baseline_bare::Config,
    self_publish: Option<(u64, Targets)>,
) -> RunConfig {
    let listener = baseline_bare::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = baseline_bare::Hub::new(config);
    if let Some((rate, targets)) = self_publish {
        baseline_bare::spawn_self_publisher(hub.clone(), rate, targets);
    }
    tokio::spawn(baseline_bare::serve(listener, hub));
    RunConfig {
        target: Target::parse(&format!("http://{addr}")).unwrap(),
        server_pid: Some(std::process::id()),
        publish_target: None,
        cpu_pids: Vec::new(),
        rss_pids: Vec::new(),
        server_kind: tether_load::client::ServerKind::Contract,
        label: "bare".into(),
        round: 1,
        progress: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_publishing_is_delivered_exactly_once() {
    let cfg = start_server(None).await;
    let opts = StreamOptions {
        sessions: 20,
        clients: None,
        prefill: 0,
        publish: Publish::Http {
            rate: Some(2_000),
            batch: 5,
            connections: 2,
        },
        events: Events::Plain,
        event_bytes: 200,
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(1),
    };
    let result = scenario::run_stream(&cfg, "latency", &opts).await;
    assert_eq!(result.connected, 20, "{result:?}");
    assert!(result.delivered > 1000, "{result:?}");
    assert_eq!(
        (
            result.lost,
            result.duplicated,
            result.conn_errors,
            result.publish_errors
        ),
        (0, 0, 0, 0),
        "{result:?}"
    );
    let latency = result.latency_us.unwrap();
    assert!(latency.count > 500 && latency.p50 > 0, "{result:?}");
    assert!(result.delivered_per_s.unwrap() > 1000.0, "{result:?}");
    assert!(
        result.rss_after_kib.is_some() && result.server_cpu_pct.is_some(),
        "{result:?}"
    );
    // The JSON line round-trips for the report.
    let line = serde_json::to_string(&result).unwrap();
    let back: scenario::ScenarioResult = serde_json::from_str(&line).unwrap();
    assert_eq!(back.key(), "latency-http");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_clients_resume_and_catch_up() {
    let cfg = start_server(Some(2_000)).await;
    let opts = StormOptions {
        sessions: 50,
        publish: Publish::InProcess { rate: Some(2_000) },
        event_bytes: 200,
        timeout: Duration::from_secs(20),
        wave: 0,
        spread: Duration::ZERO,
    };
    let result = scenario::run_storm(&cfg, &opts).await;
    assert_eq!(result.connected, 50, "{result:?}");
    assert_eq!(result.caught_up, Some(50), "{result:?}");
    assert!(
        result.catchup_all_ms.is_some() && result.reconnect_all_ms.is_some(),
        "{result:?}"
    );
    // The bare server replays from its ring after Last-Event-ID: nothing lost, nothing twice.
    assert_eq!((result.lost, result.duplicated), (0, 0), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_counted() {
    let cfg = start_server(None).await;
    let result = scenario::run_idle(&cfg, 200, Duration::from_millis(200)).await;
    assert_eq!(
        (result.connected, result.conn_errors),
        (200, 0),
        "{result:?}"
    );
    assert!(result.rss_per_conn_bytes.is_some(), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_flood_times_events_while_the_flood_is_held() {
    let cfg = start_server(None).await;
    let opts = FloodOptions {
        connections: 200,
        rounds: 10,
        duration: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
    };
    let result = flood::run_idle_flood(&cfg, &opts).await;
    // The bare server has no connection cap and no head timeout: it closes no flood connection.
    assert_eq!(result.connected, 200, "{result:?}");
    assert_eq!(
        (result.flood_closed, result.flood_held_min),
        (Some(0), Some(200)),
        "{result:?}"
    );
    // It has no /health/sse either: every health check fails, every event arrives.
    assert_eq!(result.legit_requests, Some(30), "{result:?}");
    assert_eq!(
        (result.legit_failed, result.legit_timed_out),
        (Some(10), Some(0)),
        "{result:?}"
    );
    let event = result.latency_us.unwrap();
    assert!(event.count == 10 && event.p50 > 0, "{result:?}");
    assert_eq!(result.subscribe_us.unwrap().count, 10, "{result:?}");
    assert_eq!(result.server_max_connections, None, "{result:?}");
    assert!(
        result.human().contains("legit requests 30 failed 10"),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_request_is_judged_by_the_payload() {
    let cfg = start_server(None).await;
    let opts = StreamOptions {
        sessions: 10,
        clients: None,
        prefill: 0,
        publish: Publish::Http {
            rate: Some(1_000),
            batch: 1,
            connections: 4,
        },
        events: Events::Plain,
        event_bytes: 200,
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(1),
    };
    let result = scenario::run_stream(&cfg, "latency", &opts).await;
    assert_eq!(result.key(), "latency-http1", "{result:?}");
    assert_eq!(result.events_per_request, Some(1), "{result:?}");
    assert!(result.delivered > 500, "{result:?}");
    assert_eq!(
        (
            result.lost,
            result.duplicated,
            result.conn_errors,
            result.publish_errors
        ),
        (0, 0, 0, 0),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_id_on_the_bare_server_is_a_silent_gap() {
    let cfg = start_server(None).await;
    let opts = evicted::EvictedOptions {
        away: 300,
        event_bytes: 200,
        timeout: Duration::from_secs(5),
        batch: 1,
        repeat: None,
    };
    let result = evicted::run_evicted(&cfg, &opts).await;
    // The ring keeps 256 events: after event 1 and 300 more, it holds 46..=301, which the
    // bare server replays without a word about 2..=45.
    assert_eq!(
        result.evicted_answer.as_deref(),
        Some("silent gap of 44 events (256 replayed)"),
        "{result:?}"
    );
    assert_eq!(
        (
            result.evicted_away,
            result.evicted_replayed,
            result.evicted_first_seq
        ),
        (Some(300), Some(256), Some(46)),
        "{result:?}"
    );
    assert_eq!(
        (
            result.lost,
            result.duplicated,
            result.resyncs,
            result.delivered
        ),
        (44, 0, 0, 258),
        "{result:?}"
    );
    assert_eq!(result.key(), "evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_waves_are_spread_and_lose_nothing() {
    let cfg = start_server(Some(2_000)).await;
    let opts = StormOptions {
        sessions: 90,
        publish: Publish::InProcess { rate: Some(2_000) },
        event_bytes: 200,
        timeout: Duration::from_secs(20),
        wave: 40,
        spread: Duration::from_millis(300),
    };
    let result = scenario::run_storm(&cfg, &opts).await;
    assert_eq!(result.caught_up, Some(90), "{result:?}");
    // Three waves of 30 at 0, 150 and 300 ms: the last cannot be back before 300 ms.
    assert_eq!(result.storm_wave, Some(30), "{result:?}");
    assert!(result.reconnect_all_ms.unwrap() >= 300.0, "{result:?}");
    assert_eq!((result.lost, result.duplicated), (0, 0), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_cost_counts_what_the_server_published_to_every_session() {
    let config = baseline_bare::Config {
        ring_capacity: 8,
        ..baseline_bare::Config::default()
    };
    let cfg = start_bare(config, Some((5_000, Targets::All))).await;
    let opts = StreamOptions {
        sessions: 400,
        clients: Some(10),
        prefill: 8,
        publish: Publish::InProcess { rate: Some(5_000) },
        events: Events::Plain,
        event_bytes: 200,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(1),
    };
    let result = scenario::run_stream(&cfg, "publish-cost", &opts).await;
    assert_eq!(result.key(), "publish-cost-self", "{result:?}");
    assert_eq!(
        (result.connections, result.connected, result.sessions),
        (10, 10, Some(400)),
        "{result:?}"
    );
    // The server publishes 5,000/s over all 400 sessions; the clients see a fortieth of it,
    // and the events' "n" tell the whole.
    let published = result.published_per_s.unwrap();
    assert!((4_000.0..6_000.0).contains(&published), "{result:?}");
    let delivered = result.delivered_per_s.unwrap();
    assert!(delivered < published / 20.0, "{result:?}");
    assert!(
        result.server_cpu_us_per_published.is_some() && result.rss_per_session_bytes.is_some(),
        "{result:?}"
    );
    assert_eq!(result.history_events, Some(8), "{result:?}");
    assert_eq!(
        (result.lost, result.duplicated, result.publish_errors),
        (0, 0, 0),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_replay_exactly_the_events_behind() {
    let config = baseline_bare::Config {
        ring_capacity: 2_048,
        ..baseline_bare::Config::default()
    };
    let cfg = start_bare(config, None).await;
    for behind in [0, 1, 500] {
        let opts = evicted::EvictedOptions {
            away: 1_000,
            event_bytes: 200,
            timeout: Duration::from_secs(5),
            batch: 100,
            repeat: Some(evicted::Repeat {
                behind,
                resumes: 20,
                duration: Duration::from_secs(5),
            }),
        };
        let result = evicted::run_evicted(&cfg, &opts).await;
        assert_eq!(result.key(), "resume", "{result:?}");
        assert_eq!(
            result.evicted_answer.as_deref(),
            Some("full replay (1000 events)"),
            "{result:?}"
        );
        assert_eq!(
            (result.resume_behind, result.resumes, result.resume_inexact),
            (Some(behind), Some(20), Some(0)),
            "{result:?}"
        );
        // Event 1, the first resume's 1,000 and the marker, then 20 replays of `behind`.
        assert_eq!(result.delivered, 1_002 + 20 * behind, "{result:?}");
        assert_eq!((result.lost, result.duplicated), (0, 0), "{result:?}");
        assert_eq!(result.resume_us.unwrap().count, 20, "{result:?}");
        assert!(result.resume_cpu_us.is_some(), "{result:?}");
    }
}
