//! Reading the scripts' replies and mapping Redis errors.

use bytes::{BufMut, Bytes, BytesMut};
use redis::Value;
use tether_core::idempotency::{IdempotencyKey, Published};
use tether_core::{
    ApprovalInfo, BackplaneError, ConnectError, Epoch, EventId, LastEventId, PublishError,
};

use super::Shared;

pub(super) fn unavailable(e: impl std::fmt::Display) -> BackplaneError {
    BackplaneError::Unavailable(e.to_string())
}

pub(super) fn redis_error(e: redis::RedisError) -> BackplaneError {
    if e.code() == Some("OOM") {
        BackplaneError::Full(e.to_string())
    } else {
        unavailable(e)
    }
}

pub(super) fn epoch_hex(e: Epoch) -> String {
    format!("{e}")
}

pub(super) fn parse_epoch(s: &str) -> Result<Epoch, BackplaneError> {
    u64::from_str_radix(s, 16)
        .ok()
        .filter(|v| *v != 0)
        .map(Epoch::from_u64)
        .ok_or_else(|| unavailable(format!("malformed epoch {s:?} in Redis")))
}

/// The frame the append script stores: the `id:` line, then the body.
pub(super) fn frame_with_id(id: EventId, body: &[u8]) -> Bytes {
    let id_line = format!("id: {id}\n");
    let mut buf = BytesMut::with_capacity(id_line.len() + body.len());
    buf.put_slice(id_line.as_bytes());
    buf.put_slice(body);
    buf.freeze()
}

pub(super) fn as_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

pub(super) fn as_str(v: &Value) -> Option<&str> {
    as_bytes(v).and_then(|b| std::str::from_utf8(b).ok())
}

pub(super) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => as_str(other)?.parse().ok(),
    }
}

pub(super) fn bad_reply(what: &str) -> BackplaneError {
    unavailable(format!("unexpected reply from the {what} script"))
}

/// What the sync script answered.
pub(super) struct SyncReply {
    pub(super) epoch: Epoch,
    pub(super) head: u64,
    pub(super) cause: String,
    /// The claim was refused: another node's client holds the session's lease
    /// ([`ConnectError::Conflict`]), or the client comes back to the connection that
    /// superseded it ([`ConnectError::SupersededRecently`]).
    pub(super) refused: Option<ConnectError>,
    pub(super) entries: Vec<(u64, Bytes)>,
    /// The session's pending approvals, each with the event that announced it, when asked.
    pub(super) pending: Vec<(ApprovalInfo, Option<EventId>)>,
}

/// An approval's record, `'<announcing event id or -> <created ms> <json>'` (records written
/// before the creation time was kept lack it).
pub(super) fn parse_record(record: &str) -> Option<(ApprovalInfo, Option<EventId>)> {
    let (at, _, json) = split_record(record)?;
    let at = match LastEventId::parse(at) {
        Ok(Some(LastEventId::Known(id))) => Some(id),
        _ => None,
    };
    ApprovalInfo::from_json(json).ok().map(|info| (info, at))
}

/// When the approval of a record was created, in ms by Redis's clock.
pub(super) fn record_created(record: &str) -> Option<u64> {
    split_record(record)?.1
}

fn split_record(record: &str) -> Option<(&str, Option<u64>, &str)> {
    let (at, rest) = record.split_once(' ')?;
    match rest.split_once(' ') {
        Some((created, json)) if created.bytes().all(|b| b.is_ascii_digit()) => {
            Some((at, created.parse().ok(), json))
        }
        _ => Some((at, None, rest)),
    }
}

pub(super) fn parse_sync(v: Value) -> Result<SyncReply, BackplaneError> {
    let Value::Array(items) = v else {
        return Err(bad_reply("sync"));
    };
    if items.len() < 7 {
        return Err(bad_reply("sync"));
    }
    let epoch = parse_epoch(as_str(&items[0]).ok_or_else(|| bad_reply("sync"))?)?;
    let head = as_u64(&items[1]).ok_or_else(|| bad_reply("sync"))?;
    let cause = as_str(&items[3]).unwrap_or_default().to_owned();
    let refused = match items[4] {
        Value::Int(-1) => Some(ConnectError::Conflict),
        Value::Int(-2) => Some(ConnectError::SupersededRecently),
        _ => None,
    };
    let mut entries = Vec::new();
    if let Value::Array(flat) = &items[6] {
        for pair in flat.chunks(2) {
            let [id, frame] = pair else {
                return Err(bad_reply("sync"));
            };
            let id = as_str(id).ok_or_else(|| bad_reply("sync"))?;
            let seq = id
                .split('-')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad_reply("sync"))?;
            let frame = as_bytes(frame).ok_or_else(|| bad_reply("sync"))?;
            entries.push((seq, Bytes::copy_from_slice(frame)));
        }
    }
    let mut pending = Vec::new();
    if let Some(Value::Array(records)) = items.get(7) {
        // A record the approvals' TTL took between the two reads is simply absent.
        pending.extend(records.iter().filter_map(as_str).filter_map(parse_record));
    }
    Ok(SyncReply {
        epoch,
        head,
        cause,
        refused,
        entries,
        pending,
    })
}

impl Shared {
    /// Counts and logs an epoch change a script reported (its `cause` field).
    pub(super) fn count_epoch_change(&self, cause: &str) {
        if self.metrics.epoch_changed(cause) {
            tracing::warn!(
                cause,
                "SSE backplane epoch change: Redis lost this session's data"
            );
        }
    }
}

/// The answer to a publish whose key Redis has seen: the first publish's ids when the
/// fingerprints match, the reused key otherwise. `record` is `'<fingerprint> <epoch> <first> <n>'`.
pub(super) fn replay(
    key: &IdempotencyKey,
    fingerprint: &str,
    record: &str,
) -> Result<Published, BackplaneError> {
    let mut parts = record.split(' ');
    let (Some(fp), Some(epoch), Some(first), Some(n), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad_reply("idempotency record"));
    };
    if fp != fingerprint {
        return Err(PublishError::IdempotencyKeyReused {
            key: key.to_string(),
        }
        .into());
    }
    let epoch = parse_epoch(epoch)?;
    let (Ok(first), Ok(n)) = (first.parse::<u64>(), n.parse::<u64>()) else {
        return Err(bad_reply("idempotency record"));
    };
    Ok(Published {
        ids: (first..first + n)
            .map(|seq| EventId { epoch, seq })
            .collect(),
        replayed: true,
    })
}
