//! The checks, one public function each.

mod approvals;
mod ops;
mod requests;
mod stream;

pub use approvals::approvals;
pub use ops::{drain, health, metrics};
pub use requests::{auth, idempotent_publish, oversized, publish_errors};
pub use stream::{
    bad_ids, headers, heartbeats, publish_receive, reject_policy, resume_header, resume_query,
    resync_ahead, resync_epoch, resync_evicted, resync_foreign, retry_line, slow_reader, supersede,
};
