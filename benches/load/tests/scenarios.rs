//! The scenarios end to end, small and short, against the bare baseline served in-process on
//! 127.0.0.1.

use std::time::Duration;

use tether_load::{
    client::Target,
    evicted,
    flood::{self, FloodOptions},
    scenario::{self, Events, Publish, RunConfig, StormOptions, StreamOptions},
};

async fn start_server(self_publish: Option<u64>) -> RunConfig {
    let listener = baseline_bare::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = baseline_bare::Hub::new(baseline_bare::Config::default());
    if let Some(rate) = self_publish {
        baseline_bare::spawn_self_publisher(hub.clone(), rate);
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
