//! How the probe talks to the service: the stream requests a browser would make, and the
//! publishes of its marked events.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, sleep, timeout_at};

use super::conn::{Conn, Obs, next_obs};
use super::{Probe, REQUEST_LIMIT, http, judge};

impl Probe {
    fn stream_path(&self) -> String {
        format!("/api/sse/session/{}", self.session)
    }

    fn stream_headers(&self, last_id: Option<&str>) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("Accept", "text/event-stream".to_owned()),
            // What browsers send, so a proxy that compresses event streams shows itself.
            ("Accept-Encoding", "gzip".to_owned()),
            ("Cache-Control", "no-cache".to_owned()),
        ];
        if let Some(t) = &self.token {
            h.push(("Authorization", format!("Bearer {t}")));
        }
        if let Some(id) = last_id {
            h.push(("Last-Event-ID", id.to_owned()));
        }
        h
    }

    pub(super) fn open(&self, last_id: Option<&str>) -> Conn {
        Conn::open(
            self.base.clone(),
            self.stream_path(),
            self.stream_headers(last_id),
        )
    }

    /// Opens a stream and waits for its 200 head; a 409 (another connection still holds the
    /// session under the Reject policy) is retried for a few seconds.
    pub(super) async fn open_ready(&self, last_id: Option<&str>) -> Result<Conn, String> {
        for attempt in 0..8 {
            let mut conn = Some(self.open(last_id));
            let deadline = Instant::now() + REQUEST_LIMIT;
            match timeout_at(deadline, next_obs(&mut conn)).await {
                Ok(Some(Obs::Head { .. })) => return conn.ok_or_else(String::new),
                Ok(Some(Obs::Refused { status: 409, .. })) if attempt < 7 => {
                    sleep(Duration::from_millis(500)).await;
                }
                Ok(Some(Obs::Refused { status, body })) => {
                    return Err(format!("the stream answered {status} {body}"));
                }
                Ok(Some(Obs::OpenFailed(e))) => return Err(e.to_string()),
                Ok(_) => return Err("the stream connection failed".to_owned()),
                Err(_) => {
                    return Err(format!(
                        "no response head within {}",
                        judge::secs(REQUEST_LIMIT)
                    ));
                }
            }
        }
        Err("the stream kept answering 409".to_owned())
    }

    fn event(&mut self) -> Value {
        let n = self.next_n;
        self.next_n += 1;
        json!({"type": "tether.probe", "probe": self.nonce, "n": n})
    }

    /// Publishes `count` marked events in one request; returns their numbers and when the
    /// request was sent.
    pub(super) async fn publish(&mut self, count: u64) -> Result<(Vec<u64>, Instant), String> {
        let first = self.next_n;
        let body = if count == 1 {
            self.event()
        } else {
            Value::Array((0..count).map(|_| self.event()).collect())
        };
        let mut headers = vec![("Content-Type", "application/json".to_owned())];
        if let Some(t) = &self.publish_token {
            headers.push(("Authorization", format!("Bearer {t}")));
        }
        let path = format!("/api/sessions/{}/events", self.session);
        let sent = Instant::now();
        let reply = http::request(
            &self.base,
            "POST",
            &path,
            &headers,
            body.to_string().as_bytes(),
            REQUEST_LIMIT,
        )
        .await
        .map_err(|e| e.to_string())?;
        if reply.status != 202 && reply.status != 200 {
            return Err(format!(
                "POST {path} answered {} {}",
                reply.status,
                reply.snippet(160)
            ));
        }
        Ok(((first..first + count).collect(), sent))
    }
}
