//! Several publishers on several threads and a reader that keeps reconnecting with its last
//! id: zero loss, zero duplicates.
mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tether_core::{Broker, ConnectOptions};

const PUBLISHERS: u64 = 4;
const PER_PUBLISHER: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnecting_reader_loses_nothing_and_sees_nothing_twice() {
    let broker = Broker::builder()
        .ring_max_events(100_000)
        .ring_max_bytes(64 * 1024 * 1024)
        // Small chunks, so a reader that is behind still needs many reads (and reconnects)
        // to catch up: with 64 KiB a whole backlog fits in a few chunks.
        .max_chunk_bytes(2 * 1024)
        .start()
        .expect("valid config");
    let s = sid("concurrent");
    let total = PUBLISHERS * PER_PUBLISHER;

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let broker = broker.clone();
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    broker.publish(&s, &[p, i]).unwrap();
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();

    let reader = {
        let broker = broker.clone();
        let s = s.clone();
        tokio::spawn(async move {
            let mut last_id: Option<String> = None;
            let mut last_seq = 0u64;
            let mut next_of = vec![0u64; PUBLISHERS as usize];
            let mut received = 0u64;
            let mut reconnects = 0u32;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while received < total {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "reader timed out at {received}"
                );
                let opts = last_id
                    .clone()
                    .map_or_else(ConnectOptions::new, ConnectOptions::resume);
                let mut stream = broker.connect(&s, opts).unwrap();
                let mut buffer = String::new();
                // Read a few chunks, then drop the connection mid-stream.
                let chunks = 1 + (reconnects as usize % 7);
                for _ in 0..chunks {
                    let Ok(Some(bytes)) =
                        tokio::time::timeout(Duration::from_millis(200), stream.next()).await
                    else {
                        break;
                    };
                    buffer.push_str(std::str::from_utf8(&bytes).unwrap());
                    // Chunks are whole frames.
                    assert!(buffer.ends_with("\n\n"));
                    for f in parse(&std::mem::take(&mut buffer)) {
                        assert!(f.signal().is_none(), "no resync expected: {f:?}");
                        let (Some(id), Some(_)) = (&f.id, &f.data) else {
                            continue;
                        };
                        let seq: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
                        assert_eq!(seq, last_seq + 1, "contiguous, no duplicate");
                        let [p, i]: [u64; 2] = serde_json::from_value(f.json().unwrap()).unwrap();
                        assert_eq!(i, next_of[p as usize], "publisher {p} in order");
                        next_of[p as usize] += 1;
                        last_seq = seq;
                        last_id = Some(id.clone());
                        received += 1;
                    }
                }
                reconnects += 1;
            }
            (received, reconnects, next_of)
        })
    };

    for p in publishers {
        p.await.unwrap();
    }
    let (received, reconnects, next_of) = reader.await.unwrap();
    assert_eq!(received, total);
    assert!(next_of.iter().all(|n| *n == PER_PUBLISHER));
    assert!(reconnects > 10, "the reader reconnected {reconnects} times");
}
