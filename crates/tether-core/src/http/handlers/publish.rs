//! The publish route: a body of one JSON object or an array of them, stored as sent.

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::value::RawValue;

use super::super::{HttpError, Response};
use super::{Call, json, respond};
use crate::backplane::BackplaneError;
use crate::broker::Broker;
use crate::frame::EventName;
use crate::id::SessionId;
use crate::idempotency::{IdempotencyKey, Published};
use crate::session::Event;

/// The header that makes a publish idempotent.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The header of an answer given again to a retry.
const IDEMPOTENCY_REPLAYED: HeaderName = HeaderName::from_static("idempotency-replayed");

/// Splits a publish body into events: one JSON object, or an array of objects. The data of
/// each event is its JSON text as sent (compacted only if it spans lines), so a publish costs
/// one validating parse and no re-serialization.
fn parse_events(
    body: &[u8],
    name: Option<&EventName>,
    broker: &Broker,
) -> Result<Vec<Event>, HttpError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| HttpError::bad_request("invalid_json", "the body must be UTF-8 JSON"))?;
    let invalid_json = |e: serde_json::Error| {
        HttpError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    };
    let raws: Vec<&RawValue> = match text.trim_start().as_bytes().first() {
        Some(b'{') => vec![serde_json::from_str::<&RawValue>(text).map_err(invalid_json)?],
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text).map_err(invalid_json)?,
        _ => {
            return Err(HttpError::bad_request(
                "invalid_body",
                "publish one event as a JSON object, or several as an array of objects",
            ));
        }
    };
    // Counted before any event is looked at: a 1 MiB body can hold 300,000 tiny events.
    let max = broker.config().max_batch_events();
    if raws.len() > max {
        broker.refuse_by_limit("batch_events");
        return Err(crate::PublishError::TooManyEvents {
            count: raws.len(),
            max,
        }
        .into());
    }
    raws.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let data = raw.get();
            if !data.starts_with('{') {
                return Err(HttpError::bad_request(
                    "invalid_event",
                    format!("event {i} is not a JSON object"),
                )
                .with_field("index", i));
            }
            let data = if data.contains(['\n', '\r']) {
                serde_json::from_str::<serde_json::Value>(data)
                    .map_err(invalid_json)?
                    .to_string()
            } else {
                data.to_owned()
            };
            let event = Event::raw(data);
            Ok(match name {
                Some(n) => event.named(n.clone()),
                None => event,
            })
        })
        .collect()
}

fn ids_body(ids: &[crate::id::EventId]) -> Bytes {
    use std::fmt::Write;
    let mut s = String::with_capacity(10 + ids.len() * 24);
    s.push_str("{\"ids\":[");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Event ids are hex digits, '-' and decimal digits: nothing to escape.
        let _ = write!(s, "\"{id}\"");
    }
    s.push_str("]}");
    Bytes::from(s)
}

/// The request's `Idempotency-Key`, if it has one: one header of 1 to 128 visible ASCII
/// characters, else 400 `invalid_idempotency_key`.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, HttpError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = |why: String| HttpError::bad_request("invalid_idempotency_key", why);
    if values.next().is_some() {
        return Err(invalid(
            "send one Idempotency-Key header, not several".into(),
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| invalid("an idempotency key is visible ASCII only".into()))?;
    IdempotencyKey::new(text)
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

/// `POST /api/sessions/{session_id}/events`: publish one event (a JSON object) or a batch (an
/// array of objects); `?event=NAME` sets the SSE event name of all of them.
///
/// 202 `{"ids":[...]}`; 400 for invalid JSON or an event that is not an object; 413 for an
/// event over the broker's maximum; 429 over the session's rate. With a backplane the events
/// are appended through it; 503 `backplane_unavailable` or `backplane_full` when it cannot
/// store them. With an `Idempotency-Key` a retry of the same publish gets the first 202 body
/// again (with `Idempotency-Replayed: true`) and stores nothing; the key with other events
/// is 422 `idempotency_key_reused`.
pub(in crate::http) async fn publish(
    call: &Call<'_>,
    sid: &SessionId,
    name: Option<&EventName>,
    body: &[u8],
) -> Response {
    let (events, key) = match parse_events(body, name, call.broker)
        .and_then(|events| Ok((events, idempotency_key(call.headers)?)))
    {
        Ok(parsed) => parsed,
        Err(e) => return e.into_response(),
    };
    let fresh = |ids| Published {
        ids,
        replayed: false,
    };
    let published = match (call.backplane, &key) {
        (Some(backplane), Some(key)) => backplane.publish_once(sid, key, events).await,
        (Some(backplane), None) => backplane.publish(sid, events).await.map(fresh),
        (None, Some(key)) => call
            .broker
            .publish_batch_once(sid, key, &events)
            .map_err(BackplaneError::Publish),
        (None, None) => call
            .broker
            .publish_batch(sid, &events)
            .map(fresh)
            .map_err(BackplaneError::Publish),
    };
    respond(
        published
            .map(|p| {
                let mut res = json(StatusCode::ACCEPTED, ids_body(&p.ids));
                if p.replayed {
                    res.headers_mut()
                        .insert(IDEMPOTENCY_REPLAYED, HeaderValue::from_static("true"));
                }
                res
            })
            .map_err(HttpError::from),
    )
}
