//! Human approval requests with deadlines.
//!
//! A request is stored in its session, announced in the session's stream, re-announced after
//! a resync while pending, and resolved exactly once: approved, rejected, timed out or
//! cancelled. Deadlines of every session live in one broker-wide ordered map driven by the
//! broker's driver task; there is no task or timer per approval.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::ApprovalError;
use crate::id::{EventId, SessionId};

/// Longest approval timeout; longer ones are shortened to it.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Where an approval stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a decision.
    Pending,
    /// Approved by a human.
    Approved {
        /// Optional reason given with the decision.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Rejected by a human.
    Rejected {
        /// Optional reason given with the decision.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The deadline passed without a decision.
    TimedOut,
    /// Cancelled by the requester or because the session ended.
    Cancelled,
}

impl ApprovalStatus {
    /// The wire name: `pending`, `approved`, `rejected`, `timed_out` or `cancelled`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved { .. } => "approved",
            Self::Rejected { .. } => "rejected",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }

    /// The reason given with a decision, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Approved { reason } | Self::Rejected { reason } => reason.as_deref(),
            _ => None,
        }
    }

    /// Whether the approval is resolved.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// An approval's payload: the requester's JSON, kept as its bytes.
///
/// A payload is stored once, as JSON text (compact when built from a value, as sent when it
/// came over HTTP), and written into every announcement and prelude as those bytes: it is
/// never held as a parsed tree (which costs many times its size) and never re-encoded.
/// Clones share the bytes.
#[derive(Clone)]
pub struct Payload(Arc<RawValue>);

impl Payload {
    /// The payload of `value`, as compact JSON.
    pub fn new(value: &serde_json::Value) -> Self {
        let text = value.to_string();
        // Compact JSON written by serde_json is always valid raw JSON.
        Self(Arc::from(
            RawValue::from_string(text).unwrap_or_else(|_| null_raw()),
        ))
    }

    /// The payload of JSON text, checked and kept as given (whitespace included).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.trim().to_owned()).map(|raw| Self(Arc::from(raw)))
    }

    /// The payload of raw JSON already checked by serde.
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        Self(Arc::from(raw))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Its size in bytes, as the budget counts it.
    pub fn len(&self) -> usize {
        self.get().len()
    }

    /// Whether the payload is empty text (never: JSON is at least one byte).
    pub fn is_empty(&self) -> bool {
        self.get().is_empty()
    }

    /// Whether the payload is JSON `null`.
    pub fn is_null(&self) -> bool {
        self.get() == "null"
    }

    /// The payload parsed into a tree, for code that inspects it.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or_default()
    }
}

fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl PartialEq<serde_json::Value> for Payload {
    fn eq(&self, other: &serde_json::Value) -> bool {
        self.to_value() == *other
    }
}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        Self::new(&value)
    }
}

impl From<Box<RawValue>> for Payload {
    fn from(raw: Box<RawValue>) -> Self {
        Self::from_raw(raw)
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (*self.0).serialize(s)
    }
}

/// An approval as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalInfo {
    /// The approval's id (unique within its session).
    pub id: String,
    /// A short human-readable title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What is to be approved, as the requester described it.
    pub payload: Payload,
    /// The deadline, RFC 3339 in UTC.
    pub expires_at: String,
    /// Where it stands.
    #[serde(flatten)]
    pub status: ApprovalStatus,
}

/// A request for a human decision.
#[derive(Debug, Clone)]
#[must_use]
pub struct ApprovalRequest {
    pub(crate) id: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) payload: Payload,
    pub(crate) timeout: Option<Duration>,
    pub(crate) announce: bool,
}

impl ApprovalRequest {
    /// A request with the given payload, a generated id, the broker's default timeout, and
    /// announcement in the session's stream.
    pub fn new(payload: impl Into<Payload>) -> Self {
        Self {
            id: None,
            title: None,
            payload: payload.into(),
            timeout: None,
            announce: true,
        }
    }
    /// Uses this id instead of a generated one (it must match the id grammar).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// A short title for the human.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }
    /// The deadline, from now, at most a year. Default is the broker's
    /// approval timeout (300 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Does not publish the `tether.approval.*` notices; for integrations (AG-UI interrupts)
    /// that announce the request in their own terms.
    pub fn silent(mut self) -> Self {
        self.announce = false;
        self
    }
}

/// An approval request checked and made ready for a backplane, which stores it in place of
/// the broker (see [`ApprovalRequest::prepare`]).
#[derive(Debug, Clone)]
pub struct PreparedApproval {
    /// The approval as it starts: pending, its deadline as `expiresAt`.
    pub info: ApprovalInfo,
    /// The deadline on the wall clock (the one `expiresAt` names).
    pub deadline: SystemTime,
    /// Whether the request and its outcome are announced in the session's stream.
    pub announce: bool,
}

impl ApprovalRequest {
    /// Checks the request as [`Broker::request_approval`](crate::Broker::request_approval)
    /// does (the id's grammar or a random id, the payload's size, the timeout with the
    /// broker's default and at most a year) and gives the pending approval, for a backplane
    /// that stores approvals for several nodes.
    ///
    /// # Errors
    /// [`ApprovalError::InvalidId`] and [`ApprovalError::TooLarge`].
    pub fn prepare(self, config: &Config) -> Result<PreparedApproval, ApprovalError> {
        let id = crate::broker::approval_id(self.id)?;
        let (size, max) = (self.payload.len(), config.max_approval_bytes());
        if size > max {
            return Err(ApprovalError::TooLarge { size, max });
        }
        let timeout = self
            .timeout
            .unwrap_or(config.approval_timeout())
            .min(MAX_TIMEOUT);
        let deadline = SystemTime::now() + timeout;
        Ok(PreparedApproval {
            info: ApprovalInfo {
                id,
                title: self.title,
                payload: self.payload,
                expires_at: rfc3339_at(deadline),
                status: ApprovalStatus::Pending,
            },
            deadline,
            announce: self.announce,
        })
    }
}

/// An approval as a backplane stores it: [`ApprovalInfo`]'s JSON, read back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredApproval {
    id: String,
    title: Option<String>,
    payload: Box<RawValue>,
    expires_at: String,
    status: String,
    reason: Option<String>,
}

impl ApprovalInfo {
    /// Reads an approval back from its JSON (what [`Serialize`] wrote), for a backplane.
    ///
    /// # Errors
    /// The JSON is not an approval, or its status is not one of the five.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let a: StoredApproval = serde_json::from_str(text)?;
        let status = match a.status.as_str() {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved { reason: a.reason },
            "rejected" => ApprovalStatus::Rejected { reason: a.reason },
            "timed_out" => ApprovalStatus::TimedOut,
            "cancelled" => ApprovalStatus::Cancelled,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown approval status {other:?}"
                )));
            }
        };
        Ok(Self {
            id: a.id,
            title: a.title,
            payload: Payload::from_raw(a.payload),
            expires_at: a.expires_at,
            status,
        })
    }

    /// This approval resolved with `status`.
    pub fn resolved(&self, status: ApprovalStatus) -> Self {
        Self {
            status,
            ..self.clone()
        }
    }
}

/// A human's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Approved or rejected.
    pub approved: bool,
    /// An optional reason.
    pub reason: Option<String>,
}

impl Decision {
    /// Approve.
    pub fn approve() -> Self {
        Self {
            approved: true,
            reason: None,
        }
    }
    /// Reject with a reason.
    pub fn reject(reason: impl Into<String>) -> Self {
        Self {
            approved: false,
            reason: Some(reason.into()),
        }
    }
    /// The approval status this decision gives.
    pub fn into_status(self) -> ApprovalStatus {
        if self.approved {
            ApprovalStatus::Approved {
                reason: self.reason,
            }
        } else {
            ApprovalStatus::Rejected {
                reason: self.reason,
            }
        }
    }
}

/// The waiting side of an approval: `.await` it for the outcome.
#[derive(Debug)]
#[must_use = "an approval handle does nothing unless awaited or queried"]
pub struct ApprovalHandle {
    pub(crate) id: String,
    pub(crate) session: SessionId,
    pub(crate) rx: watch::Receiver<ApprovalStatus>,
}

impl ApprovalHandle {
    /// The approval's id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The session it belongs to.
    pub fn session(&self) -> &SessionId {
        &self.session
    }
    /// Where it stands now.
    pub fn status(&self) -> ApprovalStatus {
        self.rx.borrow().clone()
    }
    /// Waits for the outcome: a final status, never [`ApprovalStatus::Pending`].
    pub async fn outcome(mut self) -> ApprovalStatus {
        loop {
            let status = self.rx.borrow_and_update().clone();
            if status.is_final() {
                return status;
            }
            if self.rx.changed().await.is_err() {
                // The sender is only dropped once the approval is final or the broker is gone.
                let status = self.rx.borrow().clone();
                return if status.is_final() {
                    status
                } else {
                    ApprovalStatus::Cancelled
                };
            }
        }
    }
}

impl IntoFuture for ApprovalHandle {
    type Output = ApprovalStatus;
    type IntoFuture = Pin<Box<dyn Future<Output = ApprovalStatus> + Send>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.outcome())
    }
}

pub(crate) struct PendingApproval {
    pub(crate) info: ApprovalInfo,
    pub(crate) deadline_key: (Instant, u64),
    pub(crate) created: Instant,
    /// The id of the stored event that announced the request, if one did.
    pub(crate) announced_at: Option<EventId>,
    pub(crate) tx: watch::Sender<ApprovalStatus>,
}

/// A session's approvals: the pending ones and the recently resolved ones.
#[derive(Default)]
pub(crate) struct Approvals {
    pub(crate) pending: HashMap<String, PendingApproval>,
    /// Resolved approvals, oldest first, bounded by `decided_approvals_kept`.
    pub(crate) resolved: VecDeque<ApprovalInfo>,
    /// Pending approvals whose request was announced in the stream (their outcome is too).
    pub(crate) announced: HashSet<String>,
    /// Bytes of the payloads of the pending and resolved approvals, for the memory budget.
    pub(crate) payload_bytes: usize,
    /// Pending approvals a backplane stores for every node, as this node learned them from
    /// the session's log, oldest first: re-announced in preludes like the broker's own.
    pub(crate) mirrored: Vec<Mirrored>,
}

/// A pending approval a backplane stores, and the event that announced it (if this node
/// knows it).
pub(crate) struct Mirrored {
    pub(crate) info: ApprovalInfo,
    pub(crate) announced_at: Option<EventId>,
}

impl Approvals {
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.pending.contains_key(id) || self.resolved.iter().any(|a| a.id == id)
    }

    /// Adds a pending approval.
    pub(crate) fn insert(&mut self, pending: PendingApproval) {
        self.payload_bytes += pending.info.payload.len();
        self.pending.insert(pending.info.id.clone(), pending);
    }

    /// Forgets the resolved approvals (the session starts over).
    pub(crate) fn forget_resolved(&mut self) {
        for info in self.resolved.drain(..) {
            self.payload_bytes -= info.payload.len();
        }
    }

    pub(crate) fn resolved(&self, id: &str) -> Option<&ApprovalInfo> {
        self.resolved.iter().rev().find(|a| a.id == id)
    }

    /// Pending approvals that pass `keep`, in the order they were requested.
    pub(crate) fn pending_infos(
        &self,
        keep: impl Fn(&PendingApproval) -> bool,
    ) -> Vec<ApprovalInfo> {
        let mut v: Vec<_> = self.pending.values().filter(|p| keep(p)).collect();
        v.sort_by_key(|p| p.deadline_key.1);
        v.into_iter().map(|p| p.info.clone()).collect()
    }

    /// Records a backplane's pending approval, replacing one with the same id; keeps at most
    /// `max` (the oldest go first).
    pub(crate) fn mirror(&mut self, info: ApprovalInfo, announced_at: Option<EventId>, max: usize) {
        self.unmirror(&info.id);
        self.payload_bytes += info.payload.len();
        self.mirrored.push(Mirrored { info, announced_at });
        while self.mirrored.len() > max.max(1) {
            let gone = self.mirrored.remove(0);
            self.payload_bytes -= gone.info.payload.len();
        }
    }

    /// Forgets a backplane's approval once resolved.
    pub(crate) fn unmirror(&mut self, id: &str) {
        if let Some(at) = self.mirrored.iter().position(|m| m.info.id == id) {
            let gone = self.mirrored.remove(at);
            self.payload_bytes -= gone.info.payload.len();
        }
    }

    /// Replaces the backplane's pending approvals with what its store holds now.
    pub(crate) fn set_mirrored(
        &mut self,
        pending: Vec<(ApprovalInfo, Option<EventId>)>,
        max: usize,
    ) {
        for gone in self.mirrored.drain(..) {
            self.payload_bytes -= gone.info.payload.len();
        }
        for (info, at) in pending {
            self.mirror(info, at, max);
        }
    }

    /// Moves a pending approval to the resolved list with its final status.
    pub(crate) fn resolve(
        &mut self,
        id: &str,
        status: ApprovalStatus,
        keep: usize,
    ) -> Option<(ApprovalInfo, PendingApproval)> {
        let mut p = self.pending.remove(id)?;
        p.info.status = status.clone();
        // send_replace never fails, even without receivers.
        p.tx.send_replace(status);
        let info = p.info.clone();
        self.resolved.push_back(info.clone());
        while self.resolved.len() > keep.max(1) {
            if let Some(gone) = self.resolved.pop_front() {
                self.payload_bytes -= gone.payload.len();
            }
        }
        Some((info, p))
    }
}

pub(crate) fn rfc3339_after(timeout: Duration) -> String {
    rfc3339_at(SystemTime::now() + timeout)
}

/// RFC 3339 in UTC, to the millisecond.
fn rfc3339_at(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    let at = at
        .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
