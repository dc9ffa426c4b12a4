//! The AG-UI scenarios end to end, small and short, against tether's hub served in-process on
//! 127.0.0.1, with the AG-UI tracker (which refuses any event that would break a stream) and
//! without it.

use std::sync::Arc;
use std::time::Duration;

use tether_core::http::{Hooks, Service};
use tether_core::net::SocketOptions;
use tether_core::server::SseListener;
use tether_load::{
    client::Target,
    scenario::{self, Events, Publish, ReconnectOptions, RunConfig, StreamOptions},
};

async fn start_hub(tracked: bool) -> RunConfig {
    let builder = tether_core::Broker::builder();
    let builder = if tracked {
        builder.tracker_factory(Arc::new(tether_agui::AguiTrackerFactory::new()))
    } else {
        builder
    };
    let broker = builder.start().unwrap();
    let listener =
        SseListener::bind("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Service::new(broker, Hooks::allow_all());
    tokio::spawn(tether_core::server::serve(
        listener,
        service,
        std::future::pending::<()>(),
        Duration::from_secs(1),
    ));
    RunConfig {
        target: Target::parse(&format!("http://{addr}")).unwrap(),
        server_pid: Some(std::process::id()),
        publish_target: None,
        cpu_pids: Vec::new(),
        rss_pids: Vec::new(),
        server_kind: tether_load::client::ServerKind::Contract,
        label: if tracked { "tether" } else { "tether-noagui" }.into(),
        round: 1,
        progress: false,
    }
}

fn options(batch_bursts: bool) -> StreamOptions {
    StreamOptions {
        sessions: 20,
        clients: None,
        prefill: 0,
        publish: Publish::Http {
            rate: Some(2_000),
            batch: if batch_bursts { 8 } else { 1 },
            connections: 2,
        },
        events: Events::Agui { batch_bursts },
        event_bytes: 0,
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_runs_over_http_are_accepted_and_delivered_exactly_once() {
    for batch_bursts in [false, true] {
        let cfg = start_hub(true).await;
        let result = scenario::run_stream(&cfg, "agui", &options(batch_bursts)).await;
        assert_eq!(result.connected, 20, "{result:?}");
        assert!(result.delivered > 0, "{result:?}");
        // The tracker refused nothing: every event of every run is valid AG-UI.
        assert_eq!(
            (
                result.publish_errors,
                result.lost,
                result.duplicated,
                result.conn_errors
            ),
            (0, 0, 0, 0),
            "{result:?}"
        );
        // Latency comes from each event's rawEvent.ts.
        let latency = result.latency_us.unwrap();
        assert!(latency.count > 0 && latency.p50 > 0, "{result:?}");
        let key = if batch_bursts {
            "agui-http"
        } else {
            "agui-http1"
        };
        assert_eq!(result.key(), key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_with_the_prelude_lose_nothing_and_pass_the_clients_checks() {
    let cfg = start_hub(true).await;
    let reconnect = ReconnectOptions {
        every: Duration::from_millis(300),
        verify: true,
    };
    let result = scenario::run_agui_reconnect(&cfg, &options(false), reconnect).await;
    // Reconnects opened in the window, and all of them (some open after it closed).
    let reconnects = result.reconnects.unwrap();
    let all = result.first_frame_us.unwrap().count;
    assert!(reconnects > 0 && all >= reconnects, "{result:?}");
    assert_eq!(
        (
            result.lost,
            result.duplicated,
            result.publish_errors,
            result.conn_errors
        ),
        (0, 0, 0, 0),
        "{result:?}"
    );
    // Every response, the first and each reconnect's, passes the client's rules, and the
    // open message's text goes on where it stood.
    assert_eq!(result.responses_checked, Some(20 + all), "{result:?}");
    assert_eq!(
        (result.invalid_responses, result.content_mismatches),
        (Some(0), Some(0)),
        "{result:?}"
    );
    assert!(result.prelude_bytes.unwrap() > 100.0, "{result:?}");
    assert!(result.reconnect_cpu_us.is_some(), "{result:?}");
    assert_eq!(result.key(), "agui-reconnect-http1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_tracker_reconnects_replay_exactly() {
    let cfg = start_hub(false).await;
    let reconnect = ReconnectOptions {
        every: Duration::from_millis(300),
        verify: true,
    };
    let result = scenario::run_agui_reconnect(&cfg, &options(false), reconnect).await;
    assert!(result.reconnects.unwrap() > 0, "{result:?}");
    // No snapshot: the events after Last-Event-ID are replayed, none is covered.
    assert_eq!(
        (result.lost, result.duplicated, result.prelude_covered),
        (0, 0, Some(0)),
        "{result:?}"
    );
    assert_eq!(result.content_mismatches, Some(0), "{result:?}");
    assert_eq!(result.prelude_bytes, Some(0.0), "{result:?}");
}
