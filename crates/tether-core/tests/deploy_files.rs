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
    // Only query expressions name metrics (group names such as `sse_connection_health` do
    // not): `expr` lines and the indented lines of a block `expr: |`; comments are skipped.
    let mut exprs = String::new();
    let mut block: Option<usize> = None;
    for l in text.lines() {
        let indent = l.len() - l.trim_start().len();
        if l.trim_start().starts_with('#') {
            continue;
        }
        match block {
            Some(i) if indent > i && !l.trim().is_empty() => {
                exprs.push_str(l);
                exprs.push('\n');
                continue;
            }
            _ => block = None,
        }
        if l.contains("expr") {
            exprs.push_str(l);
            exprs.push('\n');
            if l.trim_end().ends_with('|') {
                block = Some(indent);
            }
        }
    }
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

fn deploy(path: &str) -> String {
    format!("{}/../../deploy/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// promtool, or `None` when it is not installed (a failure under `CI=true`, where
/// `scripts/test.sh` installs it from Debian's `prometheus` package).
fn promtool() -> Option<std::path::PathBuf> {
    tether_testkit::require_tool("promtool")
}

fn run_promtool(args: &[&str]) -> String {
    let Some(promtool) = promtool() else {
        return String::new();
    };
    let out = std::process::Command::new(promtool)
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules() {
    run_promtool(&["check", "rules", "sse_alerts.yml"]);
}

#[test]
fn promtool_rule_tests_pass() {
    run_promtool(&["test", "rules", "sse_alerts_test.yml"]);
}

/// Every alert has a rule test in which it fires.
#[test]
fn every_alert_has_a_firing_test() {
    let rules = std::fs::read_to_string(deploy("prometheus/sse_alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/sse_alerts_test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 7, "{alerts:?}");
    for alert in alerts {
        // A test block naming the alert and expecting at least one alert (exp_labels).
        let fires = tests.split("alertname: ").skip(1).any(|block| {
            block.starts_with(alert)
                && block
                    .split("- eval_time")
                    .next()
                    .is_some_and(|b| b.contains("exp_labels"))
        });
        assert!(fires, "{alert} has no rule test in which it fires");
    }
    assert!(
        tests.contains("alertname: SSEDisconnectsNotResumed\n        exp_alerts: []"),
        "the ratio rule is shown quiet under churn"
    );
}

#[test]
fn the_runbooks_severities_are_labels() {
    let text = std::fs::read_to_string(deploy("prometheus/sse_alerts.yml")).unwrap();
    assert!(text.contains("promtool refuses a"), "the header says why");
    for (alert, severity) in [
        ("HighSSEDisconnectRate", "warning"),
        ("LowSSEConnectionDuration", "critical"),
    ] {
        let block = text.split(&format!("- alert: {alert}\n")).nth(1).unwrap();
        let block = block.split("- alert:").next().unwrap();
        assert!(
            block.contains(&format!("labels:\n          severity: {severity}")),
            "{alert}: {block}"
        );
    }
    assert!(text.contains("for: 5m") && text.contains("for: 10m"));
}

#[test]
fn the_dashboard_has_the_runbooks_panel() {
    let text = std::fs::read_to_string(deploy("grafana/tether-sse.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dash["title"], "AG UI Protocol Monitoring");
    let panels = dash["panels"].as_array().unwrap();
    let panel = panels
        .iter()
        .find(|p| {
            p["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("SSE Connection Duration"))
        })
        .expect("the runbook's panel SSE Connection Duration");
    let expr = panel["targets"][0]["expr"].as_str().unwrap();
    assert!(
        expr.contains("sse_connection_duration_seconds_bucket"),
        "{expr}"
    );
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            for token in metric_tokens(expr) {
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| token.strip_suffix(s))
                    .unwrap_or(&token);
                assert!(NAMES.contains(&base), "panel {} names {token}", p["title"]);
            }
        }
    }
}
