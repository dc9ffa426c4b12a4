//! The alert rules and the dashboard in `deploy/` only name metrics tether exports.
use tether_core::metrics as m;

const NAMES: &[&str] = &[
    m::ACTIVE_CONNECTIONS,
    m::CONNECTION_DURATION_SECONDS,
    m::DISCONNECTS_TOTAL,
    m::RECONNECTS_TOTAL,
    m::RESYNCS_TOTAL,
    m::EVENTS_PUBLISHED_TOTAL,
    m::EVENTS_DELIVERED_TOTAL,
    m::EVENTS_EVICTED_TOTAL,
    m::EVENTS_EVICTED_UNREAD_TOTAL,
    m::HEARTBEATS_TOTAL,
    m::SESSIONS_ACTIVE,
    m::APPROVAL_REQUESTS_TOTAL,
    m::APPROVAL_DECISIONS_TOTAL,
    m::APPROVAL_WAIT_SECONDS,
];

fn metric_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            cur.push(c);
        } else {
            if (cur.starts_with("sse_") || cur.starts_with("approval_")) && cur.len() > 6 {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
        }
    }
    out
}

fn check(path: &str) {
    let text = std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    // Only query expressions name metrics (group names such as `sse_connection_health` do not).
    let exprs: String = text
        .lines()
        .filter(|l| l.contains("expr"))
        .collect::<Vec<_>>()
        .join("\n");
    let tokens = metric_tokens(&exprs);
    assert!(tokens.len() >= 5, "{path} names metrics");
    for t in tokens {
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| t.strip_suffix(s))
            .unwrap_or(&t);
        assert!(
            NAMES.contains(&base),
            "{path} names {t}, which tether does not export"
        );
    }
}

#[test]
fn alert_rules_name_exported_metrics() {
    check("deploy/prometheus/sse_alerts.yml");
}

#[test]
fn dashboard_names_exported_metrics() {
    check("deploy/grafana/tether-sse.json");
}

#[test]
fn the_runbooks_alert_expressions_are_kept_verbatim() {
    let text = std::fs::read_to_string(format!(
        "{}/../../deploy/prometheus/sse_alerts.yml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(text.contains("expr: rate(sse_disconnects_total[5m]) > 0.1"));
    assert!(text.contains(
        "expr: histogram_quantile(0.95, rate(sse_connection_duration_seconds_bucket[5m])) < 60"
    ));
}
