//! How often a refused request is logged: at most once a minute per client address, so a
//! flood of anonymous requests cannot fill the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const EVERY: Duration = Duration::from_secs(60);
/// Past this many addresses the table starts over: a flood from many addresses then logs at
/// most this many lines a minute.
const MAX_ADDRESSES: usize = 4096;

static LAST: Mutex<Option<HashMap<Option<IpAddr>, Instant>>> = Mutex::new(None);

/// Whether a refusal from `peer` (unknown: `None`) should be logged now.
pub(super) fn due(peer: Option<IpAddr>) -> bool {
    let now = Instant::now();
    let mut guard = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let table = guard.get_or_insert_with(HashMap::new);
    if table.len() >= MAX_ADDRESSES {
        table.clear();
    }
    match table.get(&peer) {
        Some(at) if now.duration_since(*at) < EVERY => false,
        _ => {
            table.insert(peer, now);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_a_minute_per_address() {
        let addr: Option<IpAddr> = Some("127.0.0.9".parse().unwrap());
        assert!(due(addr));
        assert!(!due(addr));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!due(addr));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(due(addr));
        assert!(
            due(Some("127.0.0.10".parse().unwrap())),
            "another address logs"
        );
    }
}
