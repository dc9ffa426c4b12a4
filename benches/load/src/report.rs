//! Turns scenario results (JSON lines) into markdown tables and an SVG bar chart.
//!
//! Results are grouped by scenario (`throughput-http`, `latency-self`, ...) and server; with
//! several rounds each number is the median of the rounds. When a server labelled `tether`
//! is present, each table ends with tether/baseline ratios.

use std::fmt::Write as _;

use crate::scenario::ScenarioResult;

/// Whether a larger value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    /// A fact about the server rather than a score (how it answers an evicted id).
    Neither,
}

struct Metric {
    header: &'static str,
    better: Better,
    decimals: usize,
    get: fn(&ScenarioResult) -> Option<f64>,
}

const fn metric(
    header: &'static str,
    better: Better,
    decimals: usize,
    get: fn(&ScenarioResult) -> Option<f64>,
) -> Metric {
    Metric {
        header,
        better,
        decimals,
        get,
    }
}

fn count(v: u64) -> Option<f64> {
    Some(v as f64)
}

const DELIVERED: Metric = metric("delivered events/s", Better::Higher, 0, |r| {
    r.delivered_per_s
});
const CPU_PER_EVENT: Metric = metric("server CPU µs/event", Better::Lower, 2, |r| {
    r.server_cpu_us_per_event
});
const CPU_PCT: Metric = metric("server CPU %", Better::Lower, 0, |r| r.server_cpu_pct);
const P50: Metric = metric("p50 µs", Better::Lower, 0, |r| {
    r.latency_us.map(|l| l.p50 as f64)
});
const P99: Metric = metric("p99 µs", Better::Lower, 0, |r| {
    r.latency_us.map(|l| l.p99 as f64)
});
const P999: Metric = metric("p99.9 µs", Better::Lower, 0, |r| {
    r.latency_us.map(|l| l.p999 as f64)
});
const LOST: Metric = metric("lost", Better::Lower, 0, |r| count(r.lost));
const DUP: Metric = metric("duplicated", Better::Lower, 0, |r| count(r.duplicated));
const CONN_ERRORS: Metric = metric("conn errors", Better::Lower, 0, |r| count(r.conn_errors));
const CONNECTED: Metric = metric("connected", Better::Higher, 0, |r| count(r.connected));
const RSS_PER_CONN: Metric = metric("RSS KiB/conn", Better::Lower, 2, |r| {
    r.rss_per_conn_bytes.map(|b| b / 1024.0)
});
const OPEN_ALL: Metric = metric("open all ms", Better::Lower, 0, |r| r.connect_all_ms);
const RECONNECT_ALL: Metric = metric("all reconnected ms", Better::Lower, 0, |r| {
    r.reconnect_all_ms
});
const CATCHUP_ALL: Metric = metric("all caught up ms", Better::Lower, 0, |r| r.catchup_all_ms);
const CATCHUP_P50: Metric = metric("catch-up p50 ms", Better::Lower, 0, |r| {
    r.catchup_ms.map(|l| l.p50 as f64)
});
const CATCHUP_P99: Metric = metric("catch-up p99 ms", Better::Lower, 0, |r| {
    r.catchup_ms.map(|l| l.p99 as f64)
});
const RESYNCS: Metric = metric("resyncs", Better::Lower, 0, |r| count(r.resyncs));
const STORM_CPU: Metric = metric("server CPU ms (storm)", Better::Lower, 0, |r| {
    r.storm_server_cpu_ms
});

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|us| us as f64 / 1e3)
}

const HEALTH_P50: Metric = metric("health p50 ms", Better::Lower, 2, |r| {
    ms(r.health_us.map(|l| l.p50))
});
const HEALTH_P99: Metric = metric("health p99 ms", Better::Lower, 2, |r| {
    ms(r.health_us.map(|l| l.p99))
});
const HEALTH_MAX: Metric = metric("health max ms", Better::Lower, 2, |r| {
    ms(r.health_us.map(|l| l.max))
});
const EVENT_P50: Metric = metric("event p50 ms", Better::Lower, 2, |r| {
    ms(r.latency_us.map(|l| l.p50))
});
const EVENT_P99: Metric = metric("event p99 ms", Better::Lower, 2, |r| {
    ms(r.latency_us.map(|l| l.p99))
});
const EVENT_MAX: Metric = metric("event max ms", Better::Lower, 2, |r| {
    ms(r.latency_us.map(|l| l.max))
});
const LEGIT_FAILED: Metric = metric("failed", Better::Lower, 0, |r| {
    r.legit_failed.map(|v| v as f64)
});
const LEGIT_TIMED_OUT: Metric = metric("timed out", Better::Lower, 0, |r| {
    r.legit_timed_out.map(|v| v as f64)
});
const FLOOD_CLOSED: Metric = metric("flood closed in window", Better::Higher, 0, |r| {
    r.flood_closed.map(|v| v as f64)
});
const RSS_MAX_MIB: Metric = metric("server RSS MiB", Better::Lower, 1, |r| {
    r.rss_after_kib.map(|kib| kib as f64 / 1024.0)
});

const EVICTED_AWAY: Metric = metric("published while away", Better::Neither, 0, |r| {
    r.evicted_away.map(|v| v as f64)
});
const EVICTED_REPLAYED: Metric = metric("replayed", Better::Neither, 0, |r| {
    r.evicted_replayed.map(|v| v as f64)
});
const EVICTED_FIRST: Metric = metric("first event after resume", Better::Neither, 0, |r| {
    r.evicted_first_seq.map(|v| v as f64)
});
const SILENT_GAP: Metric = metric("silent gap", Better::Lower, 0, |r| count(r.lost));
const EVICTED_RESYNCS: Metric = metric("resync signals", Better::Neither, 0, |r| count(r.resyncs));
const RESYNC_SKIPPED: Metric = metric("announced as skipped", Better::Neither, 0, |r| {
    count(r.resync_skipped)
});

const PUBLISH_ERRORS: Metric = metric("publish errors", Better::Lower, 0, |r| {
    count(r.publish_errors)
});
const RECONNECTS: Metric = metric("reconnects", Better::Higher, 0, |r| {
    r.reconnects.map(|v| v as f64)
});
const RECONNECTING_CPU: Metric = metric("reconnecting CPU µs/event", Better::Lower, 2, |r| {
    r.reconnecting_cpu_us_per_event
});
const RECONNECT_CPU: Metric = metric("CPU µs/reconnect", Better::Lower, 0, |r| {
    r.reconnect_cpu_us
});
const FIRST_FRAME_P50: Metric = metric("first frame p50 µs", Better::Lower, 0, |r| {
    r.first_frame_us.map(|l| l.p50 as f64)
});
const FIRST_FRAME_P99: Metric = metric("first frame p99 µs", Better::Lower, 0, |r| {
    r.first_frame_us.map(|l| l.p99 as f64)
});
const PRELUDE_BYTES: Metric = metric("prelude bytes", Better::Lower, 0, |r| r.prelude_bytes);
const COVERED: Metric = metric("covered by prelude", Better::Lower, 0, |r| {
    r.prelude_covered.map(|v| v as f64)
});
const INVALID: Metric = metric("invalid responses", Better::Lower, 0, |r| {
    r.invalid_responses.map(|v| v as f64)
});
const MISMATCHES: Metric = metric("text mismatches", Better::Lower, 0, |r| {
    r.content_mismatches.map(|v| v as f64)
});

/// Metrics whose tracker share (tether − tether-noagui) / tether a table shows: costs.
const SHARED_COSTS: [&Metric; 3] = [&CPU_PER_EVENT, &RECONNECTING_CPU, &RECONNECT_CPU];

/// The AG-UI tracker's share of a cost the report holds it to.
const TRACKER_SHARE_TARGET: f64 = 0.25;

fn metrics_for(scenario: &str) -> Vec<&'static Metric> {
    if scenario.starts_with("agui-reconnect") {
        return vec![
            &DELIVERED,
            &CPU_PER_EVENT,
            &P50,
            &P99,
            &RECONNECTS,
            &RECONNECTING_CPU,
            &RECONNECT_CPU,
            &FIRST_FRAME_P50,
            &FIRST_FRAME_P99,
            &PRELUDE_BYTES,
            &COVERED,
            &LOST,
            &DUP,
            &INVALID,
            &MISMATCHES,
            &CONN_ERRORS,
        ];
    }
    if scenario == "evicted" {
        return vec![
            &EVICTED_AWAY,
            &EVICTED_REPLAYED,
            &EVICTED_FIRST,
            &SILENT_GAP,
            &EVICTED_RESYNCS,
            &RESYNC_SKIPPED,
            &DUP,
        ];
    }
    if scenario == "publish-cost-self" {
        return vec![
            &PUBLISHED,
            &CPU_PER_PUBLISHED,
            &RSS_END_MIB,
            &RSS_PER_SESSION,
            &DELIVERED,
            &LOST,
            &DUP,
            &PUBLISH_ERRORS,
        ];
    }
    if scenario == "resume" {
        return vec![
            &RESUMES,
            &RESUME_CPU,
            &RESUME_P50,
            &RESUME_P99,
            &INEXACT,
            &LOST,
            &DUP,
            &CONN_ERRORS,
        ];
    }
    if scenario == "idle-flood" {
        return vec![
            &HEALTH_P50,
            &HEALTH_P99,
            &HEALTH_MAX,
            &EVENT_P50,
            &EVENT_P99,
            &EVENT_MAX,
            &LEGIT_FAILED,
            &LEGIT_TIMED_OUT,
            &FLOOD_CLOSED,
            &RSS_MAX_MIB,
        ];
    }
    match scenario.split('-').next().unwrap_or_default() {
        "throughput" => vec![
            &DELIVERED,
            &CPU_PER_EVENT,
            &CPU_PCT,
            &P50,
            &P99,
            &LOST,
            &DUP,
            &CONN_ERRORS,
        ],
        "latency" => vec![
            &P50,
            &P99,
            &P999,
            &CPU_PER_EVENT,
            &DELIVERED,
            &LOST,
            &DUP,
            &CONN_ERRORS,
        ],
        "idle" => vec![&CONNECTED, &RSS_PER_CONN, &OPEN_ALL, &CONN_ERRORS],
        "agui" => vec![
            &DELIVERED,
            &CPU_PER_EVENT,
            &CPU_PCT,
            &P50,
            &P99,
            &LOST,
            &DUP,
            &PUBLISH_ERRORS,
            &CONN_ERRORS,
        ],
        "storm" => vec![
            &RECONNECT_ALL,
            &CATCHUP_ALL,
            &CATCHUP_P50,
            &CATCHUP_P99,
            &LOST,
            &DUP,
            &RESYNCS,
            &STORM_CPU,
            &CONN_ERRORS,
        ],
        _ => vec![&DELIVERED, &CPU_PER_EVENT, &LOST, &CONN_ERRORS],
    }
}

fn describe(scenario: &str, results: &[&ScenarioResult]) -> String {
    let first = results.first();
    let conns = first.map_or(0, |r| r.connections);
    let rate = first.and_then(|r| r.target_rate);
    let by = |publish: &str| match publish {
        "http" => "published over HTTP in JSON-array batches",
        "http1" => "published over HTTP, one JSON object per request",
        _ => "published in-process by the server (`--self-publish`)",
    };
    let publish = scenario.rsplit('-').next().unwrap_or_default();
    if scenario == "idle-flood" {
        return describe_flood(first.copied());
    }
    if let Some(curve) = curves()
        .into_iter()
        .find(|c| c.key == scenario && c.key != "idle" && !c.key.starts_with("storm"))
    {
        return curve.about.to_owned();
    }
    if scenario == "evicted" {
        let away = first.and_then(|r| r.evicted_away).unwrap_or(0);
        return format!(
            "One client receives event 1, goes away while {away} more events are published (one per request, more than the server keeps), then resumes with `Last-Event-ID` set to event 1's id; one more event is published once its stream is open. Events are judged by the sequence the generator wrote in each. First event after resume is the sequence of the first event the new stream delivered (2 would be an exact resume)."
        );
    }
    if scenario.starts_with("agui") {
        return describe_agui(scenario, conns, rate);
    }
    match scenario.split('-').next().unwrap_or_default() {
        "throughput" => format!(
            "{conns} sessions with one SSE client each, ~200-byte events {}{}, as fast as the server takes them.",
            by(publish),
            rate.map(|r| format!(" (offered {r} events/s)"))
                .unwrap_or_default()
        ),
        "latency" => format!(
            "{conns} sessions, {} events/s {}; publish-to-receive latency.",
            rate.map_or_else(|| "a fixed rate of".to_owned(), |r| r.to_string()),
            by(publish)
        ),
        "idle" => {
            format!("{conns} idle SSE connections (no events): server memory per connection.")
        }
        "storm" => format!(
            "{conns} clients drop and reconnect with `Last-Event-ID` at once while {} events/s are {}; lost counts events missing without a resync signal.",
            rate.map_or_else(|| "events".to_owned(), |r| r.to_string()),
            by(publish)
        ),
        _ => String::new(),
    }
}

fn describe_agui(scenario: &str, conns: u64, rate: Option<u64>) -> String {
    let rate = match rate {
        Some(r) if scenario.ends_with("-self") => format!(" (`--self-publish-agui {r}`)"),
        Some(r) => format!(" (offered {r} events/s)"),
        None => " (as fast as the server answers)".to_owned(),
    };
    let by = if scenario.ends_with("-self") {
        "played in-process by the server"
    } else if scenario.ends_with("-http1") {
        "posted over HTTP, one event per request"
    } else {
        "posted over HTTP, each burst of deltas one JSON array"
    };
    let runs = format!(
        "{conns} sessions with one SSE client each; AG-UI agent runs (`RUN_STARTED`, a text message of 20–80 deltas of 5–40 bytes in bursts, a tool call, `RUN_FINISHED`) {by}{rate}; latency from each event's `rawEvent.ts`."
    );
    if scenario.starts_with("agui-reconnect") {
        return format!(
            "{runs} A steady window, then one of the same length in which every client reconnects every few seconds with `Last-Event-ID` and `?prelude=always`: delivery, CPU and latency are the steady window's; CPU µs/reconnect is the reconnecting window's server CPU beyond its delivered events at the steady CPU per event, per reconnect; first frame is the time from a reconnect's start to the new stream's first frame; covered counts events a prelude's snapshot stood for instead of replaying them; invalid responses fail the official client's rules on their own (a stream replayed from `Last-Event-ID` without the tracker starts mid-run); text mismatches are preludes whose message text does not continue what the client had."
        );
    }
    format!(
        "{runs} `tether` tracks the runs (the default), `tether-noagui` is the hub with `--no-agui`; tracker share = (CPU µs/event of tether − of tether-noagui) / of tether."
    )
}

fn describe_flood(first: Option<&ScenarioResult>) -> String {
    let conns = first.map_or(0, |r| r.connections);
    let cap = first
        .and_then(|r| r.server_max_connections)
        .map(|m| format!(" (the server's `--max-connections` is {m})"))
        .unwrap_or_default();
    let requests = first.and_then(|r| r.legit_requests).unwrap_or(0);
    format!(
        "{conns} idle TCP connections that send nothing{cap}, each reopened when the server closes it; meanwhile {requests} legitimate requests on fresh connections: `GET /health/sse`, and a subscribe to a fresh session plus a publish over HTTP, timed until the event arrives (each with its own timeout). Flood closed counts flood connections the server closed during the window (to make room, or at its head timeout); RSS is the most read during the window."
    )
}

fn scenario_rank(key: &str) -> usize {
    const ORDER: [&str; 21] = [
        "throughput-http",
        "throughput-http1",
        "throughput-self",
        "latency-http",
        "latency-http1",
        "latency-self",
        "idle",
        "idle-flood",
        "storm-self",
        "storm-http",
        "storm-http1",
        "evicted",
        "publish-cost-self",
        "resume",
        "agui-self",
        "agui-http1",
        "agui-http",
        "agui-reconnect-self",
        "agui-reconnect-http1",
        "agui-reconnect-http",
        "",
    ];
    ORDER.iter().position(|k| *k == key).unwrap_or(ORDER.len())
}

fn server_rank(server: &str) -> usize {
    const ORDER: [&str; 7] = [
        "naive",
        "bare",
        "nchan",
        "tether",
        "tether-noagui",
        "redis1",
        "redis2",
    ];
    ORDER
        .iter()
        .position(|s| *s == server)
        .unwrap_or(ORDER.len())
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// One server's runs of one scenario.
type ServerRuns<'a> = (String, Vec<&'a ScenarioResult>);

/// Results grouped by scenario then server, both in report order.
struct Grouped<'a> {
    scenarios: Vec<(String, Vec<ServerRuns<'a>>)>,
}

impl<'a> Grouped<'a> {
    fn new(results: &'a [ScenarioResult]) -> Self {
        let mut scenarios: Vec<(String, Vec<ServerRuns<'a>>)> = Vec::new();
        for result in results {
            let key = result.key();
            let index = match scenarios.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    scenarios.push((key, Vec::new()));
                    scenarios.len() - 1
                }
            };
            let servers = &mut scenarios[index].1;
            match servers.iter_mut().find(|(s, _)| *s == result.server) {
                Some((_, runs)) => runs.push(result),
                None => servers.push((result.server.clone(), vec![result])),
            }
        }
        scenarios.sort_by_key(|(k, _)| scenario_rank(k));
        for (_, servers) in &mut scenarios {
            servers.sort_by_key(|(s, _)| server_rank(s));
        }
        Self { scenarios }
    }
}

fn value(runs: &[&ScenarioResult], metric: &Metric) -> Option<f64> {
    median(runs.iter().filter_map(|r| (metric.get)(r)).collect())
}

fn format_value(v: Option<f64>, decimals: usize) -> String {
    match v {
        None => "–".to_owned(),
        Some(v) if decimals == 0 && v.abs() >= 10_000.0 => {
            // Thousands separated by a thin space keep wide numbers readable.
            let digits = format!("{:.0}", v.abs());
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push('\u{2009}');
                }
                out.push(c);
            }
            if v < 0.0 { format!("-{out}") } else { out }
        }
        Some(v) => format!("{v:.decimals$}"),
    }
}

/// A text column's cell: the distinct values of the rounds, in order.
fn text_value(runs: &[&ScenarioResult], get: fn(&ScenarioResult) -> Option<&str>) -> String {
    let mut values: Vec<&str> = Vec::new();
    for value in runs.iter().filter_map(|r| get(r)) {
        if !values.contains(&value) {
            values.push(value);
        }
    }
    if values.is_empty() {
        "–".to_owned()
    } else {
        values.join(" / ")
    }
}

/// Text columns after the numbers: (header, value).
type TextColumn = (&'static str, fn(&ScenarioResult) -> Option<&str>);

fn text_columns_for(scenario: &str) -> Vec<TextColumn> {
    if scenario == "evicted" {
        vec![("what the client got", |r| r.evicted_answer.as_deref())]
    } else {
        Vec::new()
    }
}

/// The markdown tables, one per scenario.
pub fn markdown(results: &[ScenarioResult]) -> String {
    let grouped = Grouped::new(results);
    let mut out = String::new();
    let rounds = results.iter().map(|r| r.round).max().unwrap_or(0);
    if rounds > 1 {
        let _ = writeln!(out, "Each number is the median of {rounds} rounds.\n");
    }
    for (scenario, servers) in &grouped.scenarios {
        let metrics = metrics_for(scenario);
        let texts = text_columns_for(scenario);
        let all: Vec<&ScenarioResult> = servers
            .iter()
            .flat_map(|(_, runs)| runs.iter().copied())
            .collect();
        let _ = writeln!(out, "### {scenario}\n\n{}\n", describe(scenario, &all));
        let _ = write!(out, "| server |");
        for m in &metrics {
            let _ = match m.better {
                Better::Higher => write!(out, " {} ↑ |", m.header),
                Better::Lower => write!(out, " {} ↓ |", m.header),
                Better::Neither => write!(out, " {} |", m.header),
            };
        }
        for (header, _) in &texts {
            let _ = write!(out, " {header} |");
        }
        let _ = write!(out, "\n|---|");
        for _ in &metrics {
            let _ = write!(out, "---:|");
        }
        for _ in &texts {
            let _ = write!(out, "---|");
        }
        out.push('\n');
        for (server, runs) in servers {
            let _ = write!(out, "| {server} |");
            for m in &metrics {
                let _ = write!(out, " {} |", format_value(value(runs, m), m.decimals));
            }
            for (_, get) in &texts {
                let _ = write!(out, " {} |", text_value(runs, *get));
            }
            out.push('\n');
        }
        // Ratios say nothing about how a resume from an evicted id is answered.
        let tether = servers
            .iter()
            .find(|(s, _)| s == "tether")
            .filter(|_| texts.is_empty());
        if let Some((_, tether)) = tether {
            let ratio_row = |out: &mut String,
                             name: String,
                             top: &[&ScenarioResult],
                             bottom: &[&ScenarioResult]| {
                let _ = write!(out, "| {name} |");
                for m in &metrics {
                    let ratio = match (value(top, m), value(bottom, m)) {
                        (Some(t), Some(b)) if b != 0.0 => format!("{:.2}×", t / b),
                        _ => "–".to_owned(),
                    };
                    let _ = write!(out, " {ratio} |");
                }
                out.push('\n');
            };
            // The hub on a backplane is compared with the in-memory hub, not the baselines.
            for (baseline, runs) in servers
                .iter()
                .filter(|(s, _)| s != "tether" && !s.starts_with("redis"))
            {
                ratio_row(&mut out, format!("tether / {baseline}"), tether, runs);
            }
            for (redis, runs) in servers.iter().filter(|(s, _)| s.starts_with("redis")) {
                ratio_row(&mut out, format!("{redis} / tether"), runs, tether);
            }
            if let Some((_, off)) = servers.iter().find(|(s, _)| s == "tether-noagui") {
                tracker_share(&mut out, scenario, &metrics, tether, off);
            }
        }
        out.push('\n');
    }
    out
}

/// (on − off) / on of a cost, with the tracker on (`tether`) and off (`tether-noagui`).
fn share(on: &[&ScenarioResult], off: &[&ScenarioResult], metric: &Metric) -> Option<f64> {
    match (value(on, metric), value(off, metric)) {
        (Some(on), Some(off)) if on > 0.0 => Some((on - off) / on),
        _ => None,
    }
}

/// The tracker's share row of a table (the costs only), and for the AG-UI scenarios a line
/// that holds the CPU per event's share to its target.
fn tracker_share(
    out: &mut String,
    scenario: &str,
    metrics: &[&Metric],
    on: &[&ScenarioResult],
    off: &[&ScenarioResult],
) {
    let _ = write!(out, "| tracker share (tether − tether-noagui) / tether |");
    for m in metrics {
        let cell = match share(on, off, m) {
            Some(v) if SHARED_COSTS.iter().any(|c| c.header == m.header) => {
                format!("{:.1} %", v * 100.0)
            }
            _ => "–".to_owned(),
        };
        let _ = write!(out, " {cell} |");
    }
    out.push('\n');
    if !scenario.starts_with("agui") {
        return;
    }
    if let Some(v) = share(on, off, &CPU_PER_EVENT) {
        let verdict = if v <= TRACKER_SHARE_TARGET {
            "within"
        } else {
            "above"
        };
        let _ = write!(
            out,
            "\nThe AG-UI tracker's share of tether's server CPU per delivered event: {:.1} %, {verdict} the target of ≤ {:.0} %.\n",
            v * 100.0,
            TRACKER_SHARE_TARGET * 100.0
        );
    }
}

/// The charted metrics: (scenario, metric).
fn chart_panels() -> Vec<(&'static str, &'static Metric)> {
    vec![
        ("throughput-http", &DELIVERED),
        ("throughput-http", &CPU_PER_EVENT),
        ("throughput-self", &DELIVERED),
        ("throughput-self", &CPU_PER_EVENT),
        ("throughput-http1", &DELIVERED),
        ("throughput-http1", &CPU_PER_EVENT),
        ("latency-http", &P99),
        ("latency-http1", &P99),
        ("latency-http1", &CPU_PER_EVENT),
        ("latency-self", &P99),
        ("latency-self", &CPU_PER_EVENT),
        ("idle", &RSS_PER_CONN),
        ("idle-flood", &HEALTH_P99),
        ("idle-flood", &EVENT_P99),
        ("storm-self", &CATCHUP_ALL),
        ("storm-self", &LOST),
        ("storm-http", &CATCHUP_ALL),
        ("storm-http", &LOST),
        ("storm-http1", &CATCHUP_ALL),
        ("storm-http1", &LOST),
        ("agui-self", &CPU_PER_EVENT),
        ("agui-http1", &CPU_PER_EVENT),
        ("agui-http", &CPU_PER_EVENT),
        ("agui-reconnect-self", &RECONNECT_CPU),
        ("agui-reconnect-self", &FIRST_FRAME_P99),
    ]
}

fn color(server: &str) -> &'static str {
    match server {
        "naive" => "#d95f02",
        "bare" => "#7570b3",
        "tether" => "#1b9e77",
        "tether-noagui" => "#a6d854",
        "redis1" => "#e7298a",
        "redis2" => "#66a61e",
        "nchan" => "#e6ab02",
        _ => "#666666",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar chart: one panel per charted metric, one bar per server.
pub fn svg(results: &[ScenarioResult], title: &str) -> String {
    const WIDTH: f64 = 760.0;
    const BAR: f64 = 16.0;
    const GAP: f64 = 5.0;
    let grouped = Grouped::new(results);
    // Room for the longest server name left of the bars (about 7 px a character).
    let longest = grouped
        .scenarios
        .iter()
        .flat_map(|(_, servers)| servers.iter().map(|(s, _)| s.chars().count()))
        .max()
        .unwrap_or(0);
    let label = (longest as f64 * 7.0 + 12.0).max(80.0);
    let bar_area = WIDTH - label - 160.0;
    let mut body = String::new();
    let mut y = 44.0;
    for (scenario, metric) in chart_panels() {
        let Some((_, servers)) = grouped.scenarios.iter().find(|(k, _)| k == scenario) else {
            continue;
        };
        let values: Vec<(&str, Option<f64>)> = servers
            .iter()
            .map(|(s, runs)| (s.as_str(), value(runs, metric)))
            .collect();
        if values.iter().all(|(_, v)| v.is_none()) {
            continue;
        }
        let max = values.iter().filter_map(|(_, v)| *v).fold(0.0f64, f64::max);
        let hint = match metric.better {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
            Better::Neither => "",
        };
        let _ = writeln!(
            body,
            r##"<text x="10" y="{:.0}" font-weight="bold">{} — {} <tspan font-weight="normal" fill="#666">({hint})</tspan></text>"##,
            y + 12.0,
            escape(scenario),
            escape(metric.header)
        );
        y += 20.0;
        for (server, v) in values {
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#,
                label - 6.0,
                y + BAR - 4.0,
                escape(server)
            );
            let text = format_value(v, metric.decimals);
            let len = match v {
                Some(v) if max > 0.0 => (v / max * bar_area).max(1.0),
                _ => 0.0,
            };
            let _ = writeln!(
                body,
                r#"<rect x="{label:.0}" y="{y:.0}" width="{len:.1}" height="{BAR:.0}" fill="{}"/><text x="{:.1}" y="{:.0}">{}</text>"#,
                color(server),
                label + len + 6.0,
                y + BAR - 4.0,
                escape(&text)
            );
            y += BAR + GAP;
        }
        y += 12.0;
    }
    let height = y + 10.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="24" font-size="16" font-weight="bold">{}</text>
{body}</svg>
"#,
        escape(title)
    )
}

/// A scale curve: one quantity swept over points, one line per server.
struct Curve {
    /// Key of its results ([`ScenarioResult::key`]).
    key: &'static str,
    /// Suffix of its chart's file name.
    name: &'static str,
    title: &'static str,
    /// What a point measures, for the markdown.
    about: &'static str,
    /// The swept quantity, with its unit.
    x_label: &'static str,
    x: Reading,
    x_log: bool,
    /// The charted metrics, one panel each.
    panels: Vec<Panel>,
    /// The table's columns after the swept quantity and the server.
    table: Vec<&'static Metric>,
    /// A horizontal line drawn in the first panel: (value, label).
    reference: Option<(f64, &'static str)>,
    /// A least-squares slope over the points, shown per server: (y in the slope's unit,
    /// the slope's unit).
    slope: Option<(Reading, &'static str)>,
}

/// A number read from a result.
type Reading = fn(&ScenarioResult) -> Option<f64>;

struct Panel {
    metric: &'static Metric,
    /// The y axis's label, with its unit.
    y_label: &'static str,
    y_log: bool,
}

const CLIENTS: Metric = metric("clients", Better::Neither, 0, |r| {
    Some(r.connections as f64)
});
const PUBLISHED: Metric = metric("published events/s", Better::Neither, 0, |r| {
    r.published_per_s
});
const CPU_PER_PUBLISHED: Metric = metric("server CPU µs/published event", Better::Lower, 2, |r| {
    r.server_cpu_us_per_published
});
const RSS_END_MIB: Metric = metric("server RSS MiB", Better::Lower, 1, |r| {
    r.rss_end_kib.map(|kib| kib as f64 / 1024.0)
});
const RSS_PER_SESSION: Metric = metric("RSS KiB/session", Better::Lower, 2, |r| {
    r.rss_per_session_bytes.map(|b| b / 1024.0)
});
const RESUMES: Metric = metric("resumes", Better::Neither, 0, |r| {
    r.resumes.map(|v| v as f64)
});
const RESUME_CPU: Metric = metric("server CPU µs/resume", Better::Lower, 1, |r| {
    r.resume_cpu_us
});
const RESUME_P50: Metric = metric("to last event p50 µs", Better::Lower, 0, |r| {
    r.resume_us.map(|l| l.p50 as f64)
});
const RESUME_P99: Metric = metric("to last event p99 µs", Better::Lower, 0, |r| {
    r.resume_us.map(|l| l.p99 as f64)
});
const RESUME_P50_MS: Metric = metric("to last event p50 ms", Better::Lower, 2, |r| {
    r.resume_us.map(|l| l.p50 as f64 / 1e3)
});
const INEXACT: Metric = metric("inexact replays", Better::Lower, 0, |r| {
    r.resume_inexact.map(|v| v as f64)
});
const WAVE: Metric = metric("largest wave", Better::Neither, 0, |r| {
    r.storm_wave.map(|v| v as f64)
});
const STORM_GENERATOR_CPU: Metric = metric("generator CPU ms (storm)", Better::Neither, 0, |r| {
    r.storm_generator_cpu_ms
});
const CAUGHT_UP: Metric = metric("caught up", Better::Higher, 0, |r| {
    r.caught_up.map(|v| v as f64)
});

fn curves() -> Vec<Curve> {
    vec![
        Curve {
            key: "publish-cost-self",
            name: "publish-cost",
            title: "Publish cost vs sessions",
            about: "Every session first gets its history over HTTP (one request per session), then one session in a hundred gets an SSE client, while the server publishes in-process at a fixed rate round-robin over every session (`--self-publish RATE --self-publish-all`): every publish lands in a full ring and evicts its oldest event, and a hundredth of the events go to a client. CPU per published event is the server's `utime + stime` over the window divided by the events it published there, counted by the `\"n\"` the server writes into each (read from the clients' events); it holds everything the server did in the window: the publishes, the writes to the sessions with a client, its timers and housekeeping. RSS is read at the end of the window; KiB/session is its growth while the history was posted, over the sessions. A client connecting without `Last-Event-ID` gets the session's history from tether, with a `tether.resync` for what its ring no longer holds (about one per client, before the window), and starts at the live head on bare.",
            x_label: "sessions (log scale)",
            x: |r| r.sessions.or(Some(r.connections)).map(|v| v as f64),
            x_log: true,
            panels: vec![
                Panel {
                    metric: &CPU_PER_PUBLISHED,
                    y_label: "server CPU per published event (µs)",
                    y_log: false,
                },
                Panel {
                    metric: &RSS_END_MIB,
                    y_label: "server RSS (MiB)",
                    y_log: false,
                },
            ],
            table: vec![
                &CLIENTS,
                &PUBLISHED,
                &CPU_PER_PUBLISHED,
                &RSS_END_MIB,
                &RSS_PER_SESSION,
                &DELIVERED,
                &P99,
                &LOST,
                &DUP,
                &PUBLISH_ERRORS,
            ],
            reference: None,
            slope: None,
        },
        Curve {
            key: "resume",
            name: "resume",
            title: "Resume cost vs events replayed",
            about: "One session holds the whole history (the ring raised above it); a client resumes again and again with a `Last-Event-ID` k events behind the head, each time on a new connection (named by `clientId`, as a client reconnecting on purpose is), reading until the head's event arrived, then closing. CPU per resume is the server's `utime + stime` over all the resumes (and 200 ms after the last) divided by their number: accept, request, replay, close. The time runs from the resume's connect to its last replayed event (to the response head when k = 0). A replay is exact when it delivered the k events after the resumed id, in order, nothing lost, nothing twice, no resync signal.",
            x_label: "events replayed per resume (log scale; 0 drawn one decade left of the smallest)",
            x: |r| r.resume_behind.map(|v| v as f64),
            x_log: true,
            panels: vec![
                Panel {
                    metric: &RESUME_CPU,
                    y_label: "server CPU per resume (µs, log scale)",
                    y_log: true,
                },
                Panel {
                    metric: &RESUME_P50_MS,
                    y_label: "connect to last replayed event, p50 (ms, log scale)",
                    y_log: true,
                },
            ],
            table: vec![
                &RESUMES,
                &RESUME_CPU,
                &RESUME_P50,
                &RESUME_P99,
                &INEXACT,
                &LOST,
                &DUP,
                &CONN_ERRORS,
            ],
            reference: None,
            slope: None,
        },
        Curve {
            key: "idle",
            name: "rss",
            title: "RSS vs connections",
            about: "Idle SSE connections, each on its own session, that receive nothing; the server's `VmRSS` is read 2 s after the last one opened (a fresh server for every point). The slope is a least-squares fit of RSS over the points: what one more connection costs, free of the server's start-up memory.",
            x_label: "idle connections",
            x: |r| Some(r.connections as f64),
            x_log: false,
            panels: vec![Panel {
                metric: &RSS_MAX_MIB,
                y_label: "server RSS (MiB)",
                y_log: false,
            }],
            table: vec![
                &CONNECTED,
                &RSS_MAX_MIB,
                &RSS_PER_CONN,
                &OPEN_ALL,
                &CONN_ERRORS,
            ],
            reference: None,
            slope: Some((|r| r.rss_after_kib.map(|kib| kib as f64), "KiB/conn")),
        },
        Curve {
            key: "storm-self",
            name: "storm",
            title: "Storm catch-up vs clients",
            about: "One SSE client per session, the server publishing in-process to the sessions with a client at 4 events/s each (so a session's next event is at most about 250 ms away at every point); then every client drops its stream and reconnects with `Last-Event-ID`, in waves of at most 4,096 (the listen backlog here) spread evenly over 200 ms. All caught up runs from the first wave's drop until every client received an event published after its new stream opened; lost and duplicated are judged by the server's ids across the reconnect. Server and generator CPU are their `utime + stime` over the same span: the two share the machine's two cores.",
            x_label: "clients",
            x: |r| Some(r.connections as f64),
            x_log: false,
            panels: vec![
                Panel {
                    metric: &CATCHUP_ALL,
                    y_label: "all caught up after the first drop (ms)",
                    y_log: false,
                },
                Panel {
                    metric: &STORM_CPU,
                    y_label: "server CPU until all caught up (ms)",
                    y_log: false,
                },
            ],
            table: vec![
                &WAVE,
                &RECONNECT_ALL,
                &CATCHUP_ALL,
                &CATCHUP_P50,
                &CATCHUP_P99,
                &CAUGHT_UP,
                &LOST,
                &DUP,
                &RESYNCS,
                &CONN_ERRORS,
                &STORM_CPU,
                &STORM_GENERATOR_CPU,
            ],
            reference: Some((1000.0, "target 1 s")),
            slope: None,
        },
    ]
}

/// The storm target: this many clients all caught up within the time, none lost, none twice.
const STORM_TARGET_CLIENTS: f64 = 10_000.0;
const STORM_TARGET_MS: f64 = 1_000.0;

/// One server's points of a curve: (x, the runs at that x), in order of x.
type Points<'a> = Vec<(f64, Vec<&'a ScenarioResult>)>;

fn points<'a>(curve: &Curve, runs: &[&'a ScenarioResult]) -> Points<'a> {
    let mut out: Points<'a> = Vec::new();
    for r in runs {
        let Some(x) = (curve.x)(r) else { continue };
        match out.iter_mut().find(|(px, _)| *px == x) {
            Some((_, at)) => at.push(r),
            None => out.push((x, vec![r])),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Least-squares slope of `y` over `x`.
fn slope(xy: &[(f64, f64)]) -> Option<f64> {
    if xy.len() < 2 {
        return None;
    }
    let n = xy.len() as f64;
    let mx = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let my = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let var: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let cov: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (var > 0.0).then(|| cov / var)
}

/// Each server's slope of a curve, as `(server, slope)`.
fn slopes(curve: &Curve, servers: &[ServerRuns<'_>]) -> Vec<(String, f64)> {
    let Some((y, _)) = curve.slope else {
        return Vec::new();
    };
    servers
        .iter()
        .filter_map(|(server, runs)| {
            let xy: Vec<(f64, f64)> = points(curve, runs)
                .into_iter()
                .filter_map(|(x, at)| Some((x, median(at.iter().filter_map(|r| y(r)).collect())?)))
                .collect();
            Some((server.clone(), slope(&xy)?))
        })
        .collect()
}

/// The markdown of the scale curves: for each curve found in `results`, what it measures,
/// its chart (`<chart_prefix>-<name>.svg`) and a table of every point of every server.
pub fn curves_markdown(results: &[ScenarioResult], chart_prefix: &str) -> String {
    let grouped = Grouped::new(results);
    let mut out = String::new();
    let rounds = results.iter().map(|r| r.round).max().unwrap_or(0);
    if rounds > 1 {
        let _ = writeln!(out, "Each number is the median of {rounds} rounds.\n");
    }
    for curve in curves() {
        let Some((_, servers)) = grouped.scenarios.iter().find(|(k, _)| k == curve.key) else {
            continue;
        };
        let _ = writeln!(
            out,
            "### {}\n\n{}\n\n![{}]({chart_prefix}-{}.svg)\n",
            curve.title, curve.about, curve.title, curve.name
        );
        let x_name = curve.x_label.split(" (").next().unwrap_or(curve.x_label);
        let _ = write!(out, "| {x_name} | server |");
        for m in &curve.table {
            let _ = match m.better {
                Better::Higher => write!(out, " {} ↑ |", m.header),
                Better::Lower => write!(out, " {} ↓ |", m.header),
                Better::Neither => write!(out, " {} |", m.header),
            };
        }
        let _ = write!(out, "\n|---:|---|");
        for _ in &curve.table {
            let _ = write!(out, "---:|");
        }
        out.push('\n');
        let mut rows: Vec<(f64, usize, &str, Vec<&ScenarioResult>)> = Vec::new();
        for (server, runs) in servers {
            for (x, at) in points(&curve, runs) {
                rows.push((x, server_rank(server), server, at));
            }
        }
        rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (x, _, server, at) in &rows {
            let _ = write!(out, "| {} | {server} |", format_value(Some(*x), 0));
            for m in &curve.table {
                let _ = write!(out, " {} |", format_value(value(at, m), m.decimals));
            }
            out.push('\n');
        }
        let fits = slopes(&curve, servers);
        if let (false, Some((_, unit))) = (fits.is_empty(), curve.slope) {
            let text: Vec<String> = fits
                .iter()
                .map(|(server, v)| format!("{server} {v:.2} {unit}"))
                .collect();
            let _ = writeln!(
                out,
                "\nSlope (least squares over the points): {}.",
                text.join(", ")
            );
        }
        if curve.key == "storm-self" {
            storm_verdict(&mut out, servers);
        }
        out.push('\n');
    }
    out
}

/// Whether each server met the storm target at its largest point of at least
/// [`STORM_TARGET_CLIENTS`] clients.
fn storm_verdict(out: &mut String, servers: &[ServerRuns<'_>]) {
    let curve = curves().into_iter().find(|c| c.key == "storm-self");
    let Some(curve) = curve else { return };
    for (server, runs) in servers {
        let Some((x, at)) = points(&curve, runs).pop() else {
            continue;
        };
        if x < STORM_TARGET_CLIENTS {
            continue;
        }
        let catchup = value(&at, &CATCHUP_ALL);
        let lost = value(&at, &LOST).unwrap_or(f64::NAN);
        let dup = value(&at, &DUP).unwrap_or(f64::NAN);
        let caught = value(&at, &CAUGHT_UP).unwrap_or(0.0);
        let met = catchup.is_some_and(|ms| ms <= STORM_TARGET_MS)
            && lost == 0.0
            && dup == 0.0
            && caught >= x;
        let _ = writeln!(
            out,
            "\n{server}, {} clients: all caught up {}, {} of {} caught up, {} lost, {} duplicated: the target (≤ {} ms, 0 lost, 0 duplicated) is {}.",
            format_value(Some(x), 0),
            catchup.map_or_else(
                || "never (timed out)".to_owned(),
                |ms| format!("in {ms:.0} ms")
            ),
            format_value(Some(caught), 0),
            format_value(Some(x), 0),
            format_value(Some(lost), 0),
            format_value(Some(dup), 0),
            STORM_TARGET_MS,
            if met { "met" } else { "not met" }
        );
    }
}

/// The scale curves' charts: (`name`, SVG) for each curve found in `results`.
pub fn curve_charts(results: &[ScenarioResult], title: &str) -> Vec<(&'static str, String)> {
    let grouped = Grouped::new(results);
    let mut charts = Vec::new();
    for curve in curves() {
        let Some((_, servers)) = grouped.scenarios.iter().find(|(k, _)| k == curve.key) else {
            continue;
        };
        let fits = slopes(&curve, servers);
        let panels: Vec<ChartPanel> = curve
            .panels
            .iter()
            .enumerate()
            .map(|(i, panel)| ChartPanel {
                y_label: panel.y_label.to_owned(),
                y_log: panel.y_log,
                reference: curve.reference.filter(|_| i == 0),
                series: servers
                    .iter()
                    .map(|(server, runs)| {
                        let name = match (fits.iter().find(|(s, _)| s == server), curve.slope) {
                            (Some((_, v)), Some((_, unit))) if i == 0 => {
                                format!("{server} ({v:.2} {unit})")
                            }
                            _ => server.clone(),
                        };
                        let xy = points(&curve, runs)
                            .into_iter()
                            .filter_map(|(x, at)| Some((x, value(&at, panel.metric)?)))
                            .collect();
                        (name, color(server), xy)
                    })
                    .collect(),
            })
            .collect();
        let chart = LineChart {
            title: format!("{}: {title}", curve.title),
            x_label: curve.x_label.to_owned(),
            x_log: curve.x_log,
            panels,
        };
        charts.push((curve.name, line_chart(&chart)));
    }
    charts
}

/// One line: (name, colour, points).
pub type Series = (String, &'static str, Vec<(f64, f64)>);

/// One plot of a line chart: its y axis and lines, all over the chart's x axis.
pub struct ChartPanel {
    /// The y axis's label, with its unit.
    pub y_label: String,
    /// Logarithmic y axis.
    pub y_log: bool,
    /// A horizontal reference line: (value, label).
    pub reference: Option<(f64, &'static str)>,
    /// The lines.
    pub series: Vec<Series>,
}

/// A line chart: panels stacked, sharing the x quantity.
pub struct LineChart {
    /// Title, above the first panel.
    pub title: String,
    /// The x axis's label, with its unit.
    pub x_label: String,
    /// Logarithmic x axis (a 0 is drawn one decade left of the smallest positive x).
    pub x_log: bool,
    /// The plots, top to bottom.
    pub panels: Vec<ChartPanel>,
}

/// A number on an axis: 1k, 19k, 100k, 0.5, 12.
fn tick_label(v: f64) -> String {
    if v != 0.0 && v.abs() >= 1000.0 && (v / 1000.0).fract() == 0.0 {
        return format!("{}k", v / 1000.0);
    }
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Ticks for a linear axis from 0 to at least `max`: steps of 1, 2 or 5 times a power of
/// ten, about five of them.
fn linear_ticks(max: f64) -> Vec<f64> {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// A number on a y axis: 1000, 0.5, 12.
fn y_tick_label(v: f64) -> String {
    if v >= 1.0 && v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    tick_label(v)
}

/// Ticks for a logarithmic axis over the decades `lo..=hi` (exponents): every decade, and 2
/// and 5 times each when they span two decades or less.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    for e in lo as i32..=hi as i32 {
        let decade = 10f64.powi(e);
        ticks.push(decade);
        if hi - lo <= 2.0 && e < hi as i32 {
            ticks.extend([2.0 * decade, 5.0 * decade]);
        }
    }
    ticks
}

/// Decades covering `min..=max` (both positive).
fn log_range(min: f64, max: f64) -> (f64, f64) {
    let lo = min.log10().floor();
    let mut hi = max.log10().ceil();
    if hi <= lo {
        hi = lo + 1.0;
    }
    (lo, hi)
}

/// An SVG line chart: one panel per [`ChartPanel`], a line per series with a dot per point,
/// the x axis ticked at the points' values.
pub fn line_chart(chart: &LineChart) -> String {
    const WIDTH: f64 = 760.0;
    const LEFT: f64 = 78.0;
    const RIGHT: f64 = 190.0;
    const PANEL: f64 = 250.0;
    const TOP: f64 = 46.0;
    const GAP: f64 = 74.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    // Every x of every panel, for the ticks and the range.
    let mut xs: Vec<f64> = chart
        .panels
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.2.iter().map(|pt| pt.0)))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let smallest_positive = xs.iter().copied().find(|x| *x > 0.0).unwrap_or(1.0);
    // A 0 on a log axis sits one decade left of the smallest positive x.
    let zero_at = smallest_positive / 10.0;
    let x_pos = |x: f64| if chart.x_log && x <= 0.0 { zero_at } else { x };
    let (x_lo, x_hi) = match (xs.first(), xs.last()) {
        (Some(a), Some(b)) if chart.x_log => {
            let (a, b) = (x_pos(*a).log10(), x_pos(*b).log10());
            let pad = ((b - a) * 0.05).max(0.05);
            (a - pad, b + pad)
        }
        (Some(_), Some(b)) => (0.0, b * 1.05),
        _ => (0.0, 1.0),
    };
    let sx = |x: f64| {
        let v = if chart.x_log { x_pos(x).log10() } else { x };
        LEFT + (v - x_lo) / (x_hi - x_lo).max(f64::MIN_POSITIVE) * plot_w
    };
    let mut body = String::new();
    let mut y0 = TOP;
    for panel in &chart.panels {
        let ys: Vec<f64> = panel
            .series
            .iter()
            .flat_map(|s| s.2.iter().map(|pt| pt.1))
            .chain(panel.reference.map(|r| r.0))
            .filter(|y| y.is_finite())
            .collect();
        let max = ys.iter().copied().fold(0.0f64, f64::max);
        let min_positive = ys
            .iter()
            .copied()
            .filter(|y| *y > 0.0)
            .fold(f64::INFINITY, f64::min);
        let (ticks, y_lo, y_hi): (Vec<f64>, f64, f64) = if panel.y_log && min_positive.is_finite() {
            let (lo, hi) = log_range(min_positive, max);
            (log_ticks(lo, hi), lo, hi)
        } else {
            // Some room above the highest point.
            let ticks = linear_ticks(max * 1.05);
            let hi = ticks.last().copied().unwrap_or(1.0);
            (ticks, 0.0, hi)
        };
        let log_y = panel.y_log && min_positive.is_finite();
        let sy = |y: f64| {
            let v = if log_y {
                y.max(f64::MIN_POSITIVE).log10()
            } else {
                y
            };
            y0 + PANEL - (v - y_lo) / (y_hi - y_lo).max(f64::MIN_POSITIVE) * PANEL
        };
        // Frame, grid and ticks.
        let _ = writeln!(
            body,
            r##"<rect x="{LEFT:.0}" y="{y0:.0}" width="{plot_w:.0}" height="{PANEL:.0}" fill="none" stroke="#999"/>"##
        );
        for t in &ticks {
            let y = sy(*t);
            let _ = writeln!(
                body,
                r##"<line x1="{LEFT:.0}" y1="{y:.1}" x2="{:.0}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                escape(&y_tick_label(*t))
            );
        }
        for x in &xs {
            let px = sx(*x);
            let _ = writeln!(
                body,
                r##"<line x1="{px:.1}" y1="{y0:.0}" x2="{px:.1}" y2="{:.0}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.0}" text-anchor="middle">{}</text>"##,
                y0 + PANEL,
                y0 + PANEL + 16.0,
                escape(&tick_label(*x))
            );
        }
        let _ = writeln!(
            body,
            r##"<text x="{:.0}" y="{:.0}" text-anchor="middle" fill="#444">{}</text>"##,
            LEFT + plot_w / 2.0,
            y0 + PANEL + 34.0,
            escape(&chart.x_label)
        );
        let _ = writeln!(
            body,
            r##"<text transform="translate({:.0},{:.0}) rotate(-90)" text-anchor="middle" fill="#444">{}</text>"##,
            18.0,
            y0 + PANEL / 2.0,
            escape(&panel.y_label)
        );
        if let Some((value, label)) = panel.reference {
            let y = sy(value);
            let _ = writeln!(
                body,
                r##"<line x1="{LEFT:.0}" y1="{y:.1}" x2="{:.0}" y2="{y:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{:.0}" y="{:.1}" fill="#c00">{}</text>"##,
                LEFT + plot_w,
                LEFT + 6.0,
                y - 5.0,
                escape(label)
            );
        }
        // Lines, dots and the legend.
        for (i, (name, colour, points)) in panel.series.iter().enumerate() {
            let path: Vec<String> = points
                .iter()
                .filter(|p| p.1.is_finite())
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            if path.len() > 1 {
                let _ = writeln!(
                    body,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                    path.join(" ")
                );
            }
            for p in &path {
                let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    body,
                    r#"<circle cx="{cx}" cy="{cy}" r="3.5" fill="{colour}"/>"#
                );
            }
            let ly = y0 + 14.0 + i as f64 * 18.0;
            let lx = LEFT + plot_w + 12.0;
            let _ = writeln!(
                body,
                r#"<line x1="{lx:.0}" y1="{:.0}" x2="{:.0}" y2="{:.0}" stroke="{colour}" stroke-width="2"/><text x="{:.0}" y="{:.0}">{}</text>"#,
                ly - 4.0,
                lx + 18.0,
                ly - 4.0,
                lx + 24.0,
                ly,
                escape(name)
            );
        }
        y0 += PANEL + GAP;
    }
    let height = y0 - GAP + 50.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="24" font-size="16" font-weight="bold">{}</text>
{body}</svg>
"#,
        escape(&chart.title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::Summary;

    fn result(
        scenario: &str,
        publish: Option<&str>,
        server: &str,
        round: u32,
        rate: f64,
        cpu: f64,
    ) -> ScenarioResult {
        ScenarioResult {
            scenario: scenario.into(),
            publish: publish.map(Into::into),
            server: server.into(),
            round,
            connections: 1000,
            connected: 1000,
            delivered_per_s: Some(rate),
            server_cpu_us_per_event: Some(cpu),
            latency_us: Some(Summary {
                count: 10,
                p50: 100,
                p99: 900,
                p999: 2000,
                max: 3000,
            }),
            ..ScenarioResult::default()
        }
    }

    #[test]
    fn tables_take_medians_and_ratios() {
        let results = vec![
            result("throughput", Some("self"), "tether", 1, 300_000.0, 1.0),
            result("throughput", Some("self"), "naive", 1, 100_000.0, 4.0),
            result("throughput", Some("self"), "naive", 2, 120_000.0, 6.0),
            result("throughput", Some("self"), "naive", 3, 500_000.0, 5.0),
            result("throughput", Some("http"), "bare", 1, 50_000.0, 2.0),
        ];
        let md = markdown(&results);
        assert!(md.contains("median of 3 rounds"), "{md}");
        let http = md.find("### throughput-http").unwrap();
        let selfp = md.find("### throughput-self").unwrap();
        assert!(http < selfp, "{md}");
        assert!(md.contains("| naive | 120\u{2009}000 | 5.00 |"), "{md}");
        assert!(md.contains("| tether / naive | 2.50× | 0.20× |"), "{md}");
        assert!(!md[http..selfp].contains("tether /"), "{md}");
    }

    #[test]
    fn chart_has_a_bar_per_server() {
        let results = vec![
            result("throughput", Some("self"), "naive", 1, 100_000.0, 4.0),
            result("throughput", Some("self"), "bare", 1, 400_000.0, 1.0),
        ];
        let chart = svg(&results, "a <title>");
        assert!(chart.starts_with("<svg"));
        assert!(chart.contains("a &lt;title&gt;"));
        assert_eq!(chart.matches("<rect x=").count(), 4);
        assert!(chart.contains(r#"width="520.0""#));
        // A longer name moves the bars right.
        let results = vec![result("agui", Some("self"), "tether-noagui", 1, 1.0, 1.0)];
        assert!(svg(&results, "t").contains(r#"<rect x="103" y="64" width="497.0""#));
    }

    #[test]
    fn idle_flood_has_its_own_table() {
        let flood = ScenarioResult {
            scenario: "idle-flood".into(),
            server: "tether".into(),
            round: 1,
            connections: 15_000,
            health_us: Some(Summary {
                count: 200,
                p50: 1_500,
                p99: 4_000,
                p999: 4_000,
                max: 9_000,
            }),
            legit_failed: Some(0),
            legit_timed_out: Some(2),
            flood_closed: Some(12_345),
            server_max_connections: Some(10_000),
            rss_after_kib: Some(51_200),
            ..ScenarioResult::default()
        };
        let md = markdown(&[flood]);
        assert!(md.contains("### idle-flood"), "{md}");
        assert!(md.contains("`--max-connections` is 10000"), "{md}");
        assert!(md.contains("| health p50 ms ↓ |"), "{md}");
        assert!(
            md.contains(
                "| tether | 1.50 | 4.00 | 9.00 | – | – | – | 0 | 2 | 12\u{2009}345 | 50.0 |"
            ),
            "{md}"
        );
        assert!(!md.contains("RSS KiB/conn"), "{md}");
    }

    #[test]
    fn evicted_table_has_the_answer_and_no_ratios() {
        let row = |server: &str, lost: u64, resyncs: u64, answer: &str| ScenarioResult {
            scenario: "evicted".into(),
            server: server.into(),
            round: 1,
            connections: 1,
            evicted_away: Some(300),
            evicted_replayed: Some(256),
            evicted_first_seq: Some(46),
            lost,
            resyncs,
            evicted_answer: Some(answer.into()),
            ..ScenarioResult::default()
        };
        let md = markdown(&[
            row("tether", 0, 1, "resync signal"),
            row("nchan", 44, 0, "silent gap of 44 events"),
            row("nchan", 44, 0, "silent gap of 44 events"),
        ]);
        assert!(md.contains("### evicted"), "{md}");
        assert!(md.contains("| what the client got |\n"), "{md}");
        assert!(
            md.contains("| nchan | 300 | 256 | 46 | 44 | 0 | 0 | 0 | silent gap of 44 events |"),
            "{md}"
        );
        assert!(md.find("| nchan |") < md.find("| tether |"), "{md}");
        assert!(!md.contains("tether / nchan"), "{md}");
    }

    #[test]
    fn agui_tables_show_the_trackers_share() {
        let results = vec![
            result("agui", Some("self"), "tether", 1, 100_000.0, 8.0),
            result("agui", Some("self"), "tether-noagui", 1, 150_000.0, 6.0),
            result("agui", Some("self"), "tether", 2, 100_000.0, 10.0),
            result("agui", Some("self"), "tether-noagui", 2, 150_000.0, 6.0),
        ];
        let md = markdown(&results);
        assert!(md.contains("### agui-self"), "{md}");
        assert!(md.contains("`--no-agui`"), "{md}");
        assert!(
            md.contains("| tether / tether-noagui | 0.67× | 1.50× |"),
            "{md}"
        );
        // Medians 9.0 and 6.0: (9 − 6) / 9.
        assert!(
            md.contains("| tracker share (tether − tether-noagui) / tether | – | 33.3 % | – |"),
            "{md}"
        );
        assert!(md.contains(": 33.3 %, above the target of ≤ 25 %."), "{md}");
        let reconnect = ScenarioResult {
            reconnects: Some(3000),
            reconnect_cpu_us: Some(40.0),
            ..result("agui-reconnect", Some("self"), "tether", 1, 20_000.0, 5.0)
        };
        let md = markdown(&[reconnect]);
        assert!(md.contains("| CPU µs/reconnect ↓ |"), "{md}");
        assert!(
            md.contains("| tether | 20\u{2009}000 | 5.00 | 100 | 900 | 3000 | – | 40 |"),
            "{md}"
        );
    }

    fn point(scenario: &str, publish: Option<&str>, server: &str) -> ScenarioResult {
        ScenarioResult {
            scenario: scenario.into(),
            publish: publish.map(Into::into),
            server: server.into(),
            round: 1,
            ..ScenarioResult::default()
        }
    }

    #[test]
    fn curves_have_a_line_per_server_and_a_row_per_point() {
        let mut results = Vec::new();
        for (server, cpu) in [("tether", 3.0), ("bare", 2.0)] {
            for (i, sessions) in [1_000u64, 100_000].into_iter().enumerate() {
                results.push(ScenarioResult {
                    connections: sessions / 100,
                    connected: sessions / 100,
                    sessions: Some(sessions),
                    server_cpu_us_per_published: Some(cpu + i as f64),
                    rss_end_kib: Some(10_240 * (i as u64 + 1)),
                    published_per_s: Some(100_000.0),
                    ..point("publish-cost", Some("self"), server)
                });
            }
        }
        let charts = curve_charts(&results, "t");
        assert_eq!(charts.len(), 1);
        let (name, chart) = &charts[0];
        assert_eq!(*name, "publish-cost");
        assert!(chart.starts_with("<svg") && chart.contains("Publish cost vs sessions: t"));
        // Two panels (CPU, RSS), a line per server in each.
        assert_eq!(chart.matches("<polyline").count(), 4, "{chart}");
        assert_eq!(chart.matches("<circle").count(), 8, "{chart}");
        assert!(
            chart.contains(">1k</text>") && chart.contains(">100k</text>"),
            "{chart}"
        );
        assert!(
            chart.contains("server CPU per published event (µs)"),
            "{chart}"
        );
        let md = curves_markdown(&results, "2026-01-01-curves");
        assert!(md.contains("### Publish cost vs sessions"), "{md}");
        assert!(
            md.contains("![Publish cost vs sessions](2026-01-01-curves-publish-cost.svg)"),
            "{md}"
        );
        // Rows by sessions, then bare before tether.
        let bare = md
            .find("| 1000 | bare | 10 | 100\u{2009}000 | 2.00 |")
            .unwrap();
        let tether = md
            .find("| 1000 | tether | 10 | 100\u{2009}000 | 3.00 |")
            .unwrap();
        let big = md.find("| 100\u{2009}000 | bare |").unwrap();
        assert!(bare < tether && tether < big, "{md}");
        assert!(!md.contains("### Resume"), "{md}");
    }

    #[test]
    fn the_rss_curve_has_a_slope_and_the_storm_a_verdict() {
        let mut results = Vec::new();
        for (conns, kib) in [(1_000u64, 8_000u64), (10_000, 44_000)] {
            results.push(ScenarioResult {
                connections: conns,
                connected: conns,
                rss_after_kib: Some(kib),
                ..point("idle", None, "tether")
            });
        }
        for (clients, ms, lost) in [(1_000u64, 400.0, 0), (10_000, 900.0, 0)] {
            results.push(ScenarioResult {
                connections: clients,
                connected: clients,
                catchup_all_ms: Some(ms),
                caught_up: Some(clients),
                lost,
                ..point("storm", Some("self"), "tether")
            });
            results.push(ScenarioResult {
                connections: clients,
                connected: clients,
                catchup_all_ms: Some(ms * 2.0),
                caught_up: Some(clients),
                ..point("storm", Some("self"), "bare")
            });
        }
        let md = curves_markdown(&results, "c");
        // (44,000 − 8,000) KiB over 9,000 connections.
        assert!(
            md.contains("Slope (least squares over the points): tether 4.00 KiB/conn."),
            "{md}"
        );
        assert!(
            md.contains("tether, 10\u{2009}000 clients: all caught up in 900 ms, 10\u{2009}000 of 10\u{2009}000 caught up, 0 lost, 0 duplicated: the target (≤ 1000 ms, 0 lost, 0 duplicated) is met."),
            "{md}"
        );
        assert!(
            md.contains("bare, 10\u{2009}000 clients: all caught up in 1800 ms"),
            "{md}"
        );
        assert!(md.contains("is not met."), "{md}");
        let charts = curve_charts(&results, "t");
        let names: Vec<&str> = charts.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["rss", "storm"]);
        assert!(
            charts[0].1.contains("tether (4.00 KiB/conn)"),
            "{}",
            charts[0].1
        );
        assert!(charts[1].1.contains("target 1 s"), "{}", charts[1].1);
    }

    #[test]
    fn a_zero_on_a_log_axis_sits_a_decade_left() {
        let results: Vec<ScenarioResult> = [0u64, 10, 100]
            .into_iter()
            .map(|k| ScenarioResult {
                resume_behind: Some(k),
                resumes: Some(100),
                resume_cpu_us: Some(100.0 + k as f64),
                resume_us: Some(Summary {
                    count: 100,
                    p50: 200 + k,
                    p99: 400 + k,
                    p999: 500 + k,
                    max: 600 + k,
                }),
                ..point("resume", None, "bare")
            })
            .collect();
        let charts = curve_charts(&results, "t");
        let chart = &charts[0].1;
        // Ticks at 0, 10 and 100, evenly spaced: 0 stands where 1 would be.
        let at = |label: &str| -> f64 {
            let end = chart
                .find(&format!(r#"text-anchor="middle">{label}</text>"#))
                .unwrap();
            let start = chart[..end].rfind("<text x=\"").unwrap() + 9;
            chart[start..].split('"').next().unwrap().parse().unwrap()
        };
        let (zero, ten, hundred) = (at("0"), at("10"), at("100"));
        assert!(
            ((ten - zero) - (hundred - ten)).abs() < 0.2,
            "{zero} {ten} {hundred}"
        );
        // Log y: decades.
        assert!(
            chart.contains(">100</text>") && chart.contains(">1000</text>"),
            "{chart}"
        );
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(linear_ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(linear_ticks(0.0).len(), 6);
        assert_eq!(tick_label(linear_ticks(0.0)[3]), "0.6");
        assert_eq!(tick_label(19_000.0), "19k");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(1500.0), "1500");
        assert_eq!(slope(&[(0.0, 1.0), (2.0, 5.0)]), Some(2.0));
        assert_eq!(slope(&[(1.0, 1.0)]), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
    }
}
