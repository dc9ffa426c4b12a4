//! The approval routes: create, long-poll the status, decide and cancel.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use super::super::hooks::Identity;
use super::super::{HttpError, Response};
use super::{Call, json_value, respond};
use crate::approval::{ApprovalInfo, ApprovalRequest, ApprovalStatus, Decision};
use crate::id::SessionId;

/// Long-poll of the approval status route when the request names no `waitMs`: 25 seconds,
/// below the usual 30 to 60 second idle timeouts of proxies.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(25);
/// Longest long-poll of the approval status route.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Longest `timeoutMs` of an approval request created over HTTP.
const MAX_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewApproval {
    id: Option<String>,
    title: Option<String>,
    /// Kept as the bytes sent: never parsed into a tree.
    payload: Box<serde_json::value::RawValue>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    approved: bool,
    reason: Option<String>,
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8], shape: &str) -> Result<T, HttpError> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            "invalid_body"
        } else {
            "invalid_json"
        };
        HttpError::bad_request(code, format!("expected {shape}: {e}"))
    })
}

/// `POST /api/sessions/{session_id}/approvals`: ask a human for a decision. Body `{"id"?,
/// "title"?, "payload", "timeoutMs"?}`; the request is announced in the session's stream.
///
/// 201 `{"id":...,"expiresAt":...}`; 400 for a bad body or id; 409 when the id is taken.
pub(in crate::http) async fn create_approval(
    call: &Call<'_>,
    sid: &SessionId,
    body: &[u8],
) -> Response {
    let req = (|| {
        let shape = r#"{"id"?: string, "title"?: string, "payload": any, "timeoutMs"?: number}"#;
        let new: NewApproval = parse_json(body, shape)?;
        let mut req = ApprovalRequest::new(new.payload);
        if let Some(id) = new.id {
            req = req.id(id);
        }
        if let Some(title) = new.title {
            req = req.title(title);
        }
        if let Some(ms) = new.timeout_ms {
            let timeout = Duration::from_millis(ms);
            if timeout.is_zero() || timeout > MAX_APPROVAL_TIMEOUT {
                return Err(HttpError::bad_request(
                    "invalid_body",
                    "timeoutMs must be between 1 and 86400000 (one day)",
                ));
            }
            req = req.timeout(timeout);
        }
        Ok(req)
    })();
    let created = match (req, call.backplane) {
        (Err(e), _) => Err(e),
        (Ok(req), Some(backplane)) => backplane
            .request_approval(sid, req)
            .await
            .map(|a| (a.id, a.expires_at))
            .map_err(HttpError::from),
        (Ok(req), None) => call
            .broker
            .request_approval(sid, req)
            .map(|handle| {
                let expires_at = call
                    .broker
                    .approval(sid, handle.id())
                    .map(|a| a.expires_at)
                    .unwrap_or_default();
                (handle.id().to_owned(), expires_at)
            })
            .map_err(HttpError::from),
    };
    respond(created.map(|(id, expires_at)| {
        json_value(
            StatusCode::CREATED,
            &serde_json::json!({ "id": id, "expiresAt": expires_at }),
        )
    }))
}

/// `GET /api/sessions/{session_id}/approvals/{approval_id}?waitMs=`: the approval as it stands,
/// after waiting up to `waitMs` (default 25 s, at most 60 s) for a pending one to be resolved.
///
/// 200 `{"id","title"?,"payload","expiresAt","status","reason"?}` with `status` one of
/// `pending`, `approved`, `rejected`, `timed_out`, `cancelled`; 404 for an unknown approval.
pub(in crate::http) async fn approval_status(
    call: &Call<'_>,
    sid: &SessionId,
    id: &str,
    wait: Duration,
) -> Response {
    let found = match call.backplane {
        Some(backplane) => backplane.approval(sid, id, wait).await,
        None => Ok(call.broker.wait_approval(sid, id, wait).await),
    };
    match found {
        Ok(Some(info)) => json_value(StatusCode::OK, &info),
        Ok(None) => HttpError::from(crate::error::DecideError::Unknown).into_response(),
        Err(e) => HttpError::from(e).into_response(),
    }
}

/// Resolves the approval on the backplane when there is one (the first resolution on any node
/// wins), else in the broker.
async fn resolve(
    call: &Call<'_>,
    sid: &SessionId,
    id: &str,
    status: ApprovalStatus,
) -> Result<ApprovalInfo, HttpError> {
    match call.backplane {
        Some(backplane) => Ok(backplane.resolve_approval(sid, id, status).await?),
        None => Ok(call.broker.resolve_approval(sid, id, status)?),
    }
}

/// `POST /api/sessions/{session_id}/approvals/{approval_id}/decision`: a human's decision,
/// body `{"approved": bool, "reason"?: string}`.
///
/// 200 with the resolved approval; 400 for a bad body; 404 unknown; 409 already decided or
/// cancelled; 410 expired.
pub(in crate::http) async fn decide(
    call: &Call<'_>,
    sid: &SessionId,
    id: &str,
    body: &[u8],
    who: Option<&Identity>,
) -> Response {
    respond(
        async {
            let d: DecisionBody = parse_json(body, r#"{"approved": bool, "reason"?: string}"#)?;
            let approved = d.approved;
            let decision = Decision {
                approved,
                reason: d.reason,
            };
            let info = resolve(call, sid, id, decision.into_status()).await?;
            tracing::info!(
                session = %sid,
                approval = id,
                approved,
                sub = who.and_then(Identity::subject).unwrap_or("-"),
                "approval decided"
            );
            Ok(json_value(StatusCode::OK, &info))
        }
        .await,
    )
}

/// `DELETE /api/sessions/{session_id}/approvals/{approval_id}`: cancels a pending approval.
///
/// 200 with the cancelled approval; 404 unknown; 409 already decided; 410 expired.
pub(in crate::http) async fn cancel_approval(
    call: &Call<'_>,
    sid: &SessionId,
    id: &str,
) -> Response {
    respond(
        resolve(call, sid, id, ApprovalStatus::Cancelled)
            .await
            .map(|info| json_value(StatusCode::OK, &info)),
    )
}
