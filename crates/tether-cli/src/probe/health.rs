//! The `/health/sse` row.

use serde_json::Value;

use super::http::{self, HttpError};
use super::judge::{Check, Status};
use super::{Probe, REQUEST_LIMIT};

impl Probe {
    /// The `/health/sse` row. An unreachable service is an error: the probe cannot run.
    pub(super) async fn health(&self) -> Result<Check, String> {
        const EXPECTED: &str = "200 JSON";
        let mut headers = vec![("Accept", "application/json".to_owned())];
        if let Some(t) = &self.token {
            headers.push(("Authorization", format!("Bearer {t}")));
        }
        match http::request(
            &self.base,
            "GET",
            "/health/sse",
            &headers,
            b"",
            REQUEST_LIMIT,
        )
        .await
        {
            Err(HttpError::Connect(e)) => Err(e),
            Err(e) => Ok(Check::new("health", Status::Fail, e.to_string(), EXPECTED)),
            Ok(r) => {
                let body = r.snippet(120);
                let json = serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v.is_object());
                let status = if r.status == 200 && json {
                    Status::Pass
                } else {
                    Status::Fail
                };
                let value = match r.status {
                    503 => format!("503 (draining, or a backplane is down) {body}"),
                    s => format!("{s} {body}"),
                };
                Ok(Check::new("health", status, value, EXPECTED))
            }
        }
    }
}
