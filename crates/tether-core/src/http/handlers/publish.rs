//! The publish route: a body of one JSON object or an array of them, stored as sent.

use bytes::Bytes;
use http::StatusCode;
use serde_json::value::RawValue;

use super::super::{HttpError, Response};
use super::{Call, json, respond};
use crate::backplane::BackplaneError;
use crate::broker::Broker;
use crate::frame::EventName;
use crate::id::SessionId;
use crate::session::Event;

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

/// `POST /api/sessions/{session_id}/events`: publish one event (a JSON object) or a batch (an
/// array of objects); `?event=NAME` sets the SSE event name of all of them.
///
/// 202 `{"ids":[...]}`; 400 for invalid JSON or an event that is not an object; 413 for an
/// event over the broker's maximum; 429 over the session's rate. With a backplane the events
/// are appended through it; 503 `backplane_unavailable` or `backplane_full` when it cannot
/// store them.
pub(in crate::http) async fn publish(
    call: &Call<'_>,
    sid: &SessionId,
    name: Option<&EventName>,
    body: &[u8],
) -> Response {
    let events = match parse_events(body, name, call.broker) {
        Ok(events) => events,
        Err(e) => return e.into_response(),
    };
    let ids = match call.backplane {
        Some(backplane) => backplane.publish(sid, events).await,
        None => call
            .broker
            .publish_batch(sid, &events)
            .map_err(BackplaneError::Publish),
    };
    respond(
        ids.map(|ids| json(StatusCode::ACCEPTED, ids_body(&ids)))
            .map_err(HttpError::from),
    )
}
