//! What each row of the probe's table concludes from what was measured. Pure functions, so
//! every verdict can be tested without a server.

use std::time::Duration;

use serde_json::{Value, json};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// The service did what the contract says.
    Pass,
    /// It did not.
    Fail,
    /// The check did not run (it needs a flag, or an earlier step failed).
    Skip,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Skip => "skip",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) status: Status,
    /// What was measured.
    pub(crate) value: String,
    /// What the contract expects.
    pub(crate) expected: String,
}

impl Check {
    pub(crate) fn new(
        name: &'static str,
        status: Status,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            name,
            status,
            value: value.into(),
            expected: expected.into(),
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "name": self.name,
            "status": self.status.as_str(),
            "value": self.value,
            "expected": self.expected,
        })
    }
}

/// Seconds with one decimal, for a report.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Milliseconds below a second, seconds above.
pub(crate) fn short(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        secs(d)
    }
}

/// The three header rows, from the head of the first stream (`None`: no head arrived, for
/// the reason given).
pub(crate) fn headers(head: Result<&[(String, String)], &str>) -> Vec<Check> {
    const CT: &str = "text/event-stream";
    const CC: &str = "no-cache";
    const XA: &str = "no";
    let headers = match head {
        Ok(h) => h,
        Err(why) => {
            return vec![
                Check::new("content-type", Status::Fail, why, CT),
                Check::new("cache-control", Status::Fail, why, CC),
                Check::new("x-accel-buffering", Status::Fail, why, XA),
            ];
        }
    };
    let get = |name: &str| super::http::header(headers, name);
    let shown = |v: Option<&str>| v.map_or_else(|| "absent".to_owned(), str::to_owned);
    let ct = get("content-type");
    let ct_ok = ct.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(CT))
    });
    let cc = get("cache-control");
    let cc_ok = cc.is_some_and(|v| {
        v.split(',')
            .any(|d| d.trim().eq_ignore_ascii_case(CC) || d.trim().eq_ignore_ascii_case("no-store"))
    });
    let xa = get("x-accel-buffering");
    let server = get("server");
    let (xa_status, xa_value) = match xa {
        Some(v) if v.trim().eq_ignore_ascii_case(XA) => (Status::Pass, v.to_owned()),
        Some(v) => (Status::Fail, v.to_owned()),
        // nginx acts on the header and never passes it on (its proxy_hide_header default), so
        // behind nginx its absence says nothing; the buffering row measures what it is for.
        None if server.is_some_and(|s| s.to_ascii_lowercase().starts_with("nginx")) => (
            Status::Skip,
            format!(
                "absent: {} consumes it (see the buffering row)",
                server.unwrap_or_default()
            ),
        ),
        None => (Status::Fail, "absent".to_owned()),
    };
    let mut ct_value = shown(ct);
    if let Some(enc) = get("content-encoding") {
        ct_value.push_str(&format!(" ({enc})"));
    }
    vec![
        Check::new(
            "content-type",
            if ct_ok { Status::Pass } else { Status::Fail },
            ct_value,
            CT,
        ),
        Check::new(
            "cache-control",
            if cc_ok { Status::Pass } else { Status::Fail },
            shown(cc),
            CC,
        ),
        Check::new("x-accel-buffering", xa_status, xa_value, XA),
    ]
}

/// The `retry:` row: the first reconnection hint of the stream.
pub(crate) fn retry(first: Option<u64>, stream: Result<(), &str>) -> Check {
    const EXPECTED: &str = "present, 1000–30000 ms";
    match (first, stream) {
        (Some(ms), _) => Check::new(
            "retry",
            if (1000..=30_000).contains(&ms) {
                Status::Pass
            } else {
                Status::Fail
            },
            format!("{ms} ms"),
            EXPECTED,
        ),
        (None, Ok(())) => Check::new(
            "retry",
            Status::Fail,
            "absent: clients reconnect after their own default",
            EXPECTED,
        ),
        (None, Err(why)) => Check::new("retry", Status::Fail, why, EXPECTED),
    }
}

/// What the heartbeat row saw during the hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Silence {
    /// The longest time between two bytes received (or between the request and the first
    /// byte, or the last byte and the end of the hold).
    pub(crate) longest: Duration,
    /// When it began, since the start of the hold.
    pub(crate) from: Duration,
    /// Blocks that were neither events of the probe nor `retry:` hints: comments, named
    /// heartbeats.
    pub(crate) heartbeats: u32,
    /// The longest stretch of the hold with nothing published, in which only a heartbeat
    /// could have broken the silence.
    pub(crate) quiet: Duration,
}

/// The heartbeat row: the longest silence must stay within the keepalive interval + 5 s.
pub(crate) fn heartbeat(s: Silence, keepalive: Duration) -> Check {
    let limit = keepalive + Duration::from_secs(5);
    let expected = format!(
        "longest silence ≤ {} (keepalive {} + 5 s)",
        secs(limit),
        secs(keepalive)
    );
    let value = format!(
        "longest silence {} (from {}), {} heartbeat{}",
        secs(s.longest),
        secs(s.from),
        s.heartbeats,
        if s.heartbeats == 1 { "" } else { "s" }
    );
    if s.longest > limit {
        return Check::new("heartbeat", Status::Fail, value, expected);
    }
    if s.heartbeats == 0 && s.quiet <= limit {
        // Nothing proves a heartbeat exists, and the hold was too short for its absence to
        // show.
        return Check::new(
            "heartbeat",
            Status::Skip,
            format!(
                "{value}; quiet for only {}: hold longer than {} to judge",
                secs(s.quiet),
                secs(limit)
            ),
            expected,
        );
    }
    Check::new("heartbeat", Status::Pass, value, expected)
}

/// Publish-to-arrival of one marked event; `None`: it never arrived.
pub(crate) type Delay = Option<Duration>;

/// The buffering row: every marked event must arrive within `late` of its publish.
pub(crate) fn buffering(delays: &[Delay], publish_error: Option<&str>, late: Duration) -> Check {
    let expected = format!("every event within {} of its publish", short(late));
    if let Some(e) = publish_error {
        return Check::new(
            "buffering",
            Status::Fail,
            format!("publish failed: {e}"),
            expected,
        );
    }
    if delays.is_empty() {
        return Check::new(
            "buffering",
            Status::Skip,
            "no event was published",
            expected,
        );
    }
    let arrived: Vec<Duration> = delays.iter().flatten().copied().collect();
    let lost = delays.len() - arrived.len();
    let max = arrived.iter().max().copied();
    let slow = arrived.iter().filter(|d| **d > late).count();
    let mut value = format!("{} events", delays.len());
    if let Some(m) = max {
        value.push_str(&format!(", slowest {}", short(m)));
    }
    if slow > 0 {
        value.push_str(&format!(", {slow} late"));
    }
    if lost > 0 {
        value.push_str(&format!(", {lost} never arrived (held back on the path?)"));
    }
    let status = if slow == 0 && lost == 0 {
        Status::Pass
    } else {
        Status::Fail
    };
    Check::new("buffering", status, value, expected)
}

/// One drop of the stream during the hold: when (since the start) and how.
pub(crate) type Disconnect = (Duration, String);

/// The drops row.
pub(crate) fn drops(drops: &[Disconnect], held: Duration) -> Check {
    let expected = format!("none in {}", secs(held));
    if drops.is_empty() {
        return Check::new("drops", Status::Pass, "none", expected);
    }
    let list: Vec<String> = drops
        .iter()
        .take(5)
        .map(|(at, how)| format!("SSE disconnect at {} ({how})", secs(*at)))
        .collect();
    let more = if drops.len() > 5 {
        format!(" and {} more", drops.len() - 5)
    } else {
        String::new()
    };
    Check::new(
        "drops",
        Status::Fail,
        format!("{}: {}{more}", drops.len(), list.join(", ")),
        expected,
    )
}

/// The resume row: after the deliberate drop, the resumed stream must carry exactly
/// `expected` (the events published while away, then a live one), in order.
/// `seen_before` are the events the first stream had delivered; `got` the probe's events on
/// the resumed stream in arrival order; `resync` the reason of a `tether.resync`, if one came.
pub(crate) fn resume(
    expected: &[u64],
    seen_before: &[u64],
    got: &[u64],
    resync: Option<&str>,
) -> Check {
    let want = format!(
        "the {} event{} published while away, then live: no gap, no duplicate",
        expected.len().saturating_sub(1),
        if expected.len() == 2 { "" } else { "s" }
    );
    if let Some(reason) = resync {
        return Check::new(
            "resume",
            Status::Fail,
            format!("tether.resync (reason {reason}) instead of an exact resume"),
            want,
        );
    }
    let mut problems = Vec::new();
    let missing: Vec<u64> = expected
        .iter()
        .filter(|n| !got.contains(n))
        .copied()
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "gap: {} of {} missing (#{})",
            missing.len(),
            expected.len(),
            join(&missing)
        ));
    }
    let mut dup: Vec<u64> = Vec::new();
    for (i, n) in got.iter().enumerate() {
        if (seen_before.contains(n) || got[..i].contains(n)) && !dup.contains(n) {
            dup.push(*n);
        }
    }
    if !dup.is_empty() {
        problems.push(format!("duplicate #{}", join(&dup)));
    }
    let unexpected: Vec<u64> = got
        .iter()
        .filter(|n| !expected.contains(n) && !dup.contains(n))
        .copied()
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!("unexpected #{}", join(&unexpected)));
    }
    let in_order: Vec<u64> = got
        .iter()
        .filter(|n| expected.contains(n))
        .copied()
        .collect();
    if missing.is_empty() && in_order != expected {
        problems.push(format!("out of order: #{}", join(&in_order)));
    }
    if problems.is_empty() {
        Check::new(
            "resume",
            Status::Pass,
            format!("exact: #{}", join(got)),
            want,
        )
    } else {
        Check::new("resume", Status::Fail, problems.join("; "), want)
    }
}

fn join(ns: &[u64]) -> String {
    ns.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// What the first event of a stream resumed from an anchor id was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FirstEvent {
    /// A `tether.resync` with this reason.
    Resync(String),
    /// The probe's event number n.
    Probe(u64),
    /// Some other event.
    Other(String),
    /// Nothing within the wait.
    Nothing,
}

/// The resync row, once the search has an answer. `published` is how many events followed
/// the anchor, `next` the number of the first of them.
pub(crate) fn resync(first: &FirstEvent, published: u64, next: u64) -> Check {
    const EXPECTED: &str = "tether.resync (reason evicted) for an evicted id";
    let (status, value) = match first {
        FirstEvent::Resync(r) if r == "evicted" => (
            Status::Pass,
            format!("tether.resync reason evicted after {published} events"),
        ),
        FirstEvent::Resync(r) => (
            Status::Fail,
            format!("tether.resync reason {r} after {published} events"),
        ),
        FirstEvent::Probe(n) if *n == next => (
            Status::Skip,
            format!(
                "still resumable after {published} events: the ring is larger; pass --ring-events"
            ),
        ),
        FirstEvent::Probe(n) => (
            Status::Fail,
            format!(
                "silent gap: resumed at #{n} without tether.resync, #{next}..#{} lost",
                n - 1
            ),
        ),
        FirstEvent::Other(what) => (
            Status::Fail,
            format!("no tether.resync: the stream went on with {what}"),
        ),
        FirstEvent::Nothing => (
            Status::Fail,
            format!("nothing replayed and no tether.resync after {published} events"),
        ),
    };
    Check::new("resync", status, value, EXPECTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn header_rows() {
        let good = h(&[
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache, no-transform"),
            ("x-accel-buffering", "no"),
        ]);
        assert!(headers(Ok(&good)).iter().all(|c| c.status == Status::Pass));
        let bare = h(&[
            ("content-type", "text/html"),
            ("cache-control", "max-age=60"),
        ]);
        assert!(headers(Ok(&bare)).iter().all(|c| c.status == Status::Fail));
        let nginx = h(&[
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("server", "nginx/1.22.1"),
        ]);
        assert_eq!(headers(Ok(&nginx))[2].status, Status::Skip);
        assert!(
            headers(Err("no head"))
                .iter()
                .all(|c| c.status == Status::Fail)
        );
    }

    #[test]
    fn retry_bounds() {
        assert_eq!(retry(Some(3000), Ok(())).status, Status::Pass);
        assert_eq!(retry(Some(1000), Ok(())).status, Status::Pass);
        assert_eq!(retry(Some(30_000), Ok(())).status, Status::Pass);
        assert_eq!(retry(Some(999), Ok(())).status, Status::Fail);
        assert_eq!(retry(Some(30_001), Ok(())).status, Status::Fail);
        assert_eq!(retry(None, Ok(())).status, Status::Fail);
    }

    #[test]
    fn heartbeat_limit_is_keepalive_plus_five() {
        let k = Duration::from_secs(15);
        let s = |longest: u64, heartbeats, quiet: u64| Silence {
            longest: Duration::from_millis(longest),
            from: Duration::ZERO,
            heartbeats,
            quiet: Duration::from_millis(quiet),
        };
        assert_eq!(heartbeat(s(15_100, 3, 55_000), k).status, Status::Pass);
        assert_eq!(heartbeat(s(20_000, 3, 55_000), k).status, Status::Pass);
        assert_eq!(heartbeat(s(20_001, 3, 55_000), k).status, Status::Fail);
        assert_eq!(heartbeat(s(55_000, 0, 55_000), k).status, Status::Fail);
        // Too short a hold to tell a missing heartbeat from a slow one.
        assert_eq!(heartbeat(s(9_000, 0, 9_000), k).status, Status::Skip);
    }

    #[test]
    fn buffering_rows() {
        let late = Duration::from_secs(1);
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(
            buffering(&[ms(3), ms(900)], None, late).status,
            Status::Pass
        );
        assert_eq!(
            buffering(&[ms(3), ms(1001)], None, late).status,
            Status::Fail
        );
        assert_eq!(buffering(&[ms(3), None], None, late).status, Status::Fail);
        assert_eq!(buffering(&[], Some("401"), late).status, Status::Fail);
        assert_eq!(buffering(&[], None, late).status, Status::Skip);
    }

    #[test]
    fn resume_rows() {
        let exact = resume(&[4, 5, 6, 7], &[1, 2, 3], &[4, 5, 6, 7], None);
        assert_eq!(exact.status, Status::Pass, "{exact:?}");
        let gap = resume(&[4, 5, 6, 7], &[1, 2, 3], &[7], None);
        assert_eq!(gap.status, Status::Fail);
        assert!(
            gap.value.contains("gap: 3 of 4 missing (#4,5,6)"),
            "{gap:?}"
        );
        let replayed = resume(&[4, 5, 6, 7], &[1, 2, 3], &[3, 4, 5, 6, 7], None);
        assert_eq!(replayed.status, Status::Fail);
        assert!(replayed.value.contains("duplicate #3"), "{replayed:?}");
        let twice = resume(&[4, 5, 6, 7], &[1, 2, 3], &[4, 5, 5, 6, 7], None);
        assert!(twice.value.contains("duplicate #5"), "{twice:?}");
        let order = resume(&[4, 5, 6, 7], &[], &[5, 4, 6, 7], None);
        assert!(order.value.contains("out of order"), "{order:?}");
        let resynced = resume(&[4, 5, 6, 7], &[], &[4, 5, 6, 7], Some("epoch"));
        assert_eq!(resynced.status, Status::Fail);
    }

    #[test]
    fn resync_rows() {
        let r = |f: FirstEvent| resync(&f, 1025, 8).status;
        assert_eq!(r(FirstEvent::Resync("evicted".into())), Status::Pass);
        assert_eq!(r(FirstEvent::Resync("epoch".into())), Status::Fail);
        assert_eq!(r(FirstEvent::Probe(8)), Status::Skip);
        assert_eq!(r(FirstEvent::Probe(20)), Status::Fail);
        assert_eq!(r(FirstEvent::Nothing), Status::Fail);
    }
}
