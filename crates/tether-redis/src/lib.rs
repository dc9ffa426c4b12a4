//! # tether-redis
//!
//! Several tether nodes on one Redis: a client's reconnect may land on any node and resume
//! exactly. Each session's events live in a Redis STREAM that numbers them; every node's ring
//! is a cache of that log, fed through [`Broker::append_next`](tether_core::Broker::append_next),
//! so the core's hot path (cursors into a ring, frames encoded once) stays the same.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use tether_core::{Broker, ConnectOptions, Event, SessionId};
//! use tether_redis::{RedisBackplane, RedisConfig, default_node_id};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::builder().start().expect("valid config");
//! let config = RedisConfig::new("redis://127.0.0.1:6379").node_id(default_node_id("8080"));
//! let backplane = RedisBackplane::start(broker, config).await?;
//!
//! let session = SessionId::new("user-42")?;
//! let ids = backplane.publish(&session, &[Event::raw(r#"{"type":"progress"}"#)]).await?;
//!
//! // Another node can resume after `ids[0]` exactly; this one too.
//! let mut stream = backplane.connect(&session, ConnectOptions::resume(ids[0].to_string())).await?;
//! let _retry = stream.next().await;
//! # Ok(()) }
//! ```
//!
//! ## How it works
//!
//! - **Keys**, all of a session's under one hash tag (so Redis Cluster keeps them in one
//!   slot): `<prefix>:{s:<sid>}:log`, a STREAM with entry id `<seq>-0` and field `f` = the
//!   complete SSE frame; `<prefix>:{s:<sid>}:meta`, a HASH with `e` (epoch, hex), `s` (last
//!   seq), `b` (retained bytes), `lo` (lowest retained seq), `o`/`c` (the node and connection
//!   holding the session's stream). Both outlive every append, connect and head check by at
//!   least the broker's session TTL and at most an eighth more: an append refreshes them
//!   (`PEXPIRE`) only once an eighth of the TTL has passed since the last append that did
//!   (`x` in the meta, by Redis's clock), which spares most appends two calls.
//! - **One Lua script appends** one event or a batch atomically: it creates the epoch when
//!   the meta is missing (from a candidate the caller passes; a new epoch deletes any old log,
//!   since `XADD` refuses ids at or below the stream's top), assigns the seqs (`HINCRBY`),
//!   prepends the `id:` line to each body and `XADD`s it (the first with `NOMKSTREAM`, which
//!   tells a log evicted on its own from a live one without an `EXISTS`), trims by count and
//!   by bytes (`XTRIM MINID`; the byte count lives in the meta), refreshes the TTLs when due,
//!   and `PUBLISH`es a wake on `<prefix>:node:<owner>` only when another node holds the
//!   session's connection. Frames up to 16 KiB ride inline in the wake; larger ones are read
//!   from the log.
//! - **Each node holds one subscription**, on its own channel, not one per session.
//! - **Ids are valid on every node**: `<epoch>-<seq>` come from Redis.
//! - **Lost data is never renumbered silently.** A missing meta (restart without persistence,
//!   `FLUSHDB`, eviction) or a head regression (a node has seen a seq above Redis's in the same
//!   epoch: a failover that lost writes) starts a new epoch; connected and reconnecting
//!   clients get `tether.resync` with reason `epoch`.
//! - **Pub/sub is at-most-once; the log is not.** A node that sees a seq gap, resubscribes, or
//!   finds in its periodic head check (every 15 s) that a connected session's head moved
//!   without a wake fills the gap from the log (`XRANGE`), and resyncs only if the log no
//!   longer has it.
//! - **Approvals** live beside the log, in the same slot: `<prefix>:{s:<sid>}:appr` (HASH:
//!   approval id -> `'<announcing event id or -> <json>'`), `:apend` (ZSET of the pending ones
//!   by deadline, ms) and `:adone` (ZSET of the resolved ones, trimmed to the broker's
//!   `decided_approvals_kept`). One script creates an approval and appends its announcement;
//!   one resolves it and appends the outcome, and only the first resolution finds it pending,
//!   with Redis's `TIME` judging the deadline. Every node sweeps `<prefix>:approvals:due`
//!   (ZSET `'<sid> <id>'` -> deadline) each health interval and at the deadlines it set, and
//!   settles what is due with the same script, so a deadline fires once whatever the number
//!   of nodes. Each node's ring learns pending approvals from the announcements it stores, and
//!   a connect reads them from Redis with the log, so a resync's prelude re-announces them.
//! - **Tracked (AG-UI) sessions** stay valid with several nodes publishing: a node judges its
//!   events on a copy of its tracker as the ones after its ring's head
//!   ([`Broker::judge`](tether_core::Broker::judge)) and passes that head to the script,
//!   which appends only if the log's head is still there (compare and set) and otherwise
//!   answers `behind`; the node then reads what the others appended and judges again (at most
//!   16 rounds, then 503). A refusal counts only when judged on the log's head. The first
//!   judged append marks the session tracked (meta `tk`); until then a plain session's
//!   events land without the compare and set, from any node, and a node that judged them
//!   untracked after another made the session tracked is sent back to judge again. Every node's
//!   tracker sees the events as they come back from the log, in its order, and approval
//!   notices are written as the tracker writes them (inside a run of their own between runs).
//!   The meta holds a checkpoint of the tracker (`ck` the seq it stands for, `t` the frames
//!   that rebuild it, as a JSON array), refreshed by the appending node when the script says
//!   it is due: once it is older than the middle of the retained log while the log is half
//!   full, so trimming does not pass it. A node that meets the session after its start was
//!   trimmed rebuilds the tracker from the checkpoint and the events after it, and builds
//!   preludes like the node that saw it all.
//! - **The two-tab rule**: a connect that supersedes another records the superseded client
//!   instance in the meta (`v`, `vt`, `vb`); that instance coming back to any node within the
//!   supersede grace while its successor holds the session is refused
//!   ([`ConnectError::SupersededRecently`](tether_core::ConnectError::SupersededRecently),
//!   HTTP 204).
//! - **Redis down**: publishes and connects fail within the operation deadline (2 s) with
//!   [`BackplaneError::Unavailable`](tether_core::BackplaneError::Unavailable) (HTTP 503
//!   `backplane_unavailable`), nothing is kept only in memory, [`RedisBackplane::status`] says
//!   `down`, open streams stay open with their heartbeats.
//!
//! ## Redis settings
//!
//! - `maxmemory-policy noeviction`: under any eviction policy Redis may drop a session's
//!   keys, which its clients then see as a resync; under `noeviction` an append fails with
//!   [`BackplaneError::Full`](tether_core::BackplaneError::Full) before anything is written.
//!   The node logs a warning at start when the policy is another.
//! - `timeout 0` (the default): Redis must not close idle client connections; the pub/sub
//!   connection is idle whenever nobody publishes to this node.
//! - Redis 6.2 or later (`XTRIM MINID`, exclusive `XRANGE`, `XADD NOMKSTREAM`).
//! - **No pool**: a node opens exactly two connections, one multiplexed connection that
//!   pipelines every command from every task, and one for pub/sub (RESP3 pushes, resubscribed
//!   after a reconnect); `INFO clients` shows two per node. A pool would add connections and
//!   no throughput: the multiplexed connection never waits for one reply before sending the
//!   next request.
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `cluster` | turns on `redis/cluster-async`. The keys are laid out for Redis Cluster already (one hash tag per session, plain `PUBLISH` from scripts), but this release opens single-node connections only |
//! | `sentinel` | turns on `redis/sentinel`; this release opens single-node connections only |
//! | `tls` | `rediss://` URLs: turns on `redis/tokio-rustls-comp` with `rustls`'s ring provider; the server's certificate is checked against the system's CA certificates, or the PEM file `SSL_CERT_FILE` names |
//!
//! ## Where the dependencies are used
//!
//! | crate | for |
//! |---|---|
//! | redis | the connection managers (`tokio-comp`, `connection-manager`), the scripts (`script`), streams |
//! | rustls | with `tls`: the crypto provider (ring) of the redis crate's TLS client |
//! | dashmap | the sessions this node holds, and a per-session lock for appends from Redis |
//! | tokio | the ingest and supervisor tasks, deadlines |
//! | metrics / tracing | [`metrics`] and the "SSE backplane" log lines |
#![doc(test(attr(deny(warnings))))]

mod backplane;
mod config;
pub mod metrics;
mod scripts;

pub use backplane::RedisBackplane;
pub use config::{InvalidUrl, RedisConfig, check_url, default_node_id, redact_url};
