//! The health routes: `/health/sse` for readiness, `/health/live` for liveness, and the
//! Prometheus text of `/metrics`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};

use super::super::error::retry_after_value;
use super::super::{Body, Response};
use super::json_value;
use crate::backplane::Backplane;
use crate::broker::Broker;

/// `GET /health/sse`: `{"status","sessions","connections","draining","ring_bytes",
/// "backplane","settings","limits"}`, 200 when healthy and 503 (with `Retry-After`) while
/// draining or while the backplane is down (`"status":"backplane_down"`). `backplane` is
/// `null` for the in-memory broker, else `{"status":"up"|"down","node_id","since"}`;
/// `limits` is [`Broker::limits_report`](crate::Broker::limits_report); `settings` is
/// [`Broker::settings`](crate::Broker::settings).
pub(in crate::http) fn health(broker: &Broker, backplane: Option<&dyn Backplane>) -> Response {
    let h = broker.health();
    let mut value = serde_json::to_value(&h).unwrap_or_default();
    let backplane = backplane.map(Backplane::status);
    value["backplane"] = match &backplane {
        Some(status) => serde_json::to_value(status.health()).unwrap_or_default(),
        None => serde_json::Value::Null,
    };
    value["settings"] = serde_json::to_value(broker.settings()).unwrap_or_default();
    value["limits"] = broker.limits_report();
    let backplane_down = backplane.as_ref().is_some_and(|s| !s.up);
    if backplane_down && h.is_healthy() {
        value["status"] = "backplane_down".into();
    }
    if h.is_healthy() && !backplane_down {
        json_value(StatusCode::OK, &value)
    } else {
        let retry = if h.is_healthy() {
            BACKPLANE_HEALTH_RETRY
        } else {
            broker.drain_retry_hint()
        };
        let mut res = json_value(StatusCode::SERVICE_UNAVAILABLE, &value);
        res.headers_mut()
            .insert(RETRY_AFTER, retry_after_value(retry));
        res
    }
}

/// `Retry-After` of `/health/sse` while the backplane is down: its links are retried every
/// second or so.
const BACKPLANE_HEALTH_RETRY: Duration = Duration::from_secs(2);

/// `GET /health/live`: `{"status":"alive"}`, 200 whenever the process answers, draining
/// included: a liveness probe that failed during a drain would kill the process before its
/// streams were told where to go.
pub(in crate::http) fn live() -> Response {
    json_value(StatusCode::OK, &serde_json::json!({ "status": "alive" }))
}

/// `GET /metrics`: Prometheus text exposition.
pub(in crate::http) fn metrics(text: String) -> Response {
    let mut res = Response::new(Body::Full(Bytes::from(text)));
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
