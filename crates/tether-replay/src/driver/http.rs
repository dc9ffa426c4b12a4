//! The HTTP driver: tether's HTTP contract over real TCP connections, with a small HTTP/1.1
//! client (no TLS: put the harness next to the service, or behind a local proxy).

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ApprovalRequest, ConnectRequest, DecideResult, Driver, SseBody};
use crate::transcript::Transcript;
use crate::{Report, Timing};

/// Options of the HTTP driver.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    /// Sent as `Authorization: Bearer <token>` with every request. Default is none.
    pub token: Option<String>,
    /// Real time per transcript time: 0.1 replays ten times faster (configure the server's
    /// keepalive, client timeout and approval deadlines ten times shorter too). Default is 1.
    pub time_scale: f64,
    /// Added to every wait and to the silence tolerance, for network and scheduling delays.
    /// Default is 1 second.
    pub slack: Duration,
    /// Longest time a plain request (publish, approval, decision) may take. Default is 30
    /// seconds.
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            token: None,
            time_scale: 1.0,
            slack: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Runs transcripts against a service over HTTP, on the routes of tether's HTTP contract:
/// `GET /api/sse/session/{id}`, `POST /api/sessions/{id}/events`,
/// `POST /api/sessions/{id}/approvals`, `GET /api/sessions/{id}/approvals/{aid}` and
/// `POST /api/sessions/{id}/approvals/{aid}/decision`.
#[derive(Debug, Clone)]
pub struct Http {
    host: String,
    port: u16,
    prefix: String,
    options: HttpOptions,
    /// Whether streams open with a small receive window (the transcript stalls a client).
    small_window: bool,
}

/// `SO_RCVBUF` of a stream socket when the transcript stalls a client.
const STALL_RCVBUF: usize = 4096;
/// The MSS a stream socket announces when the transcript stalls a client: the sender sizes
/// its send buffer from it (on loopback, with its 64 KiB MSS, to megabytes).
const STALL_MSS: u32 = 1000;

impl Http {
    /// A driver for the service at `base_url` (`http://host[:port][/prefix]`).
    pub fn new(base_url: &str, options: HttpOptions) -> Result<Self, String> {
        let rest = base_url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{base_url}: only http:// URLs are supported"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse()
                    .map_err(|_| format!("{base_url}: bad port {p:?}"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("{base_url}: no host"));
        }
        if !(options.time_scale > 0.0 && options.time_scale.is_finite()) {
            return Err("the time scale must be a positive number".into());
        }
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            prefix: prefix.to_owned(),
            options,
            small_window: false,
        })
    }

    /// The options.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// Replays a transcript in real time (scaled by the time scale).
    ///
    /// When the transcript has a `stall` step, every stream's socket asks for a small
    /// receive buffer and segment size before it connects (4 KiB, MSS 1000), so that a server
    /// on the same machine backs up after about 120 KB instead of megabytes: over TCP a
    /// client that stops reading is slow for the server only once the kernel's buffers on
    /// both sides are full.
    pub async fn run(&mut self, transcript: &Transcript) -> Report {
        self.small_window = transcript
            .steps
            .iter()
            .any(|s| matches!(s.action, crate::transcript::Action::Stall { .. }));
        let timing = Timing {
            scale: self.options.time_scale,
            slack: self.options.slack,
        };
        crate::engine::run(self, transcript, timing).await
    }

    /// The `"settings"` object the service reports on `GET /health/sse` (also when it
    /// answers 503 while draining); `Ok(None)` when the answer has none (a service that does
    /// not report them).
    pub async fn server_settings(&self) -> Result<Option<Value>, String> {
        let (status, body) = self.request("GET", "/health/sse", None).await?;
        if status != 200 && status != 503 {
            return Err(format!("GET /health/sse: {}", describe(status, &body)));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("GET /health/sse answered {}: {e}", describe(status, &body)))?;
        Ok(v.get("settings").filter(|s| s.is_object()).cloned())
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    async fn open(&self) -> Result<TcpStream, String> {
        let s = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.authority()))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// A connection for a stream: with a small receive window when the transcript stalls.
    async fn open_stream(&self) -> Result<TcpStream, String> {
        if !self.small_window {
            return self.open().await;
        }
        let err = |e: std::io::Error| format!("connecting to {}: {e}", self.authority());
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(err)?
            .next()
            .ok_or_else(|| format!("{}: no address", self.authority()))?;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(err)?;
        socket
            .set_recv_buffer_size(STALL_RCVBUF as u32)
            .map_err(err)?;
        #[cfg(unix)]
        let _ = socket2::SockRef::from(&socket).set_tcp_mss(STALL_MSS);
        let s = socket.connect(addr).await.map_err(err)?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    fn head(&self, method: &str, path: &str, extra: &[(&str, String)]) -> String {
        let mut h = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tether-replay\r\n",
            self.prefix,
            self.authority()
        );
        if let Some(t) = &self.options.token {
            h.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in extra {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h
    }

    /// One request on its own connection; returns the status and the body.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Bytes), String> {
        let fut = async {
            let mut s = self.open().await?;
            let body = body.map(Value::to_string).unwrap_or_default();
            let mut req = self.head(
                method,
                path,
                &[
                    ("Connection", "close".into()),
                    ("Content-Type", "application/json".into()),
                    ("Content-Length", body.len().to_string()),
                ],
            );
            req.push_str("\r\n");
            req.push_str(&body);
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("{method} {path}: {e}"))?;
            let (status, headers, mut buf) = read_head(&mut s).await?;
            let mut reader = BodyReader::new(&headers);
            let mut out = BytesMut::new();
            loop {
                match reader.decode(&mut buf)? {
                    Some(Some(b)) => out.extend_from_slice(&b),
                    Some(None) => break,
                    None => {
                        let n = s
                            .read_buf(&mut buf)
                            .await
                            .map_err(|e| format!("{method} {path}: {e}"))?;
                        if n == 0 {
                            if reader.until_close() {
                                break;
                            }
                            return Err(format!("{method} {path}: the body was cut short"));
                        }
                    }
                }
            }
            Ok((status, out.freeze()))
        };
        tokio::time::timeout(self.options.request_timeout, fut)
            .await
            .map_err(|_| format!("{method} {path}: no answer within the request timeout"))?
    }
}

/// Percent-encodes a path segment or query value (ids are safe already; names may not be).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn describe(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        )
    }
}

/// Reads the status line and headers; returns them and whatever of the body came along.
async fn read_head(s: &mut TcpStream) -> Result<(u16, Vec<(String, String)>, BytesMut), String> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.advance(end + 4);
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line {status_line:?}"))?;
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            return Ok((status, headers, buf));
        }
        if buf.len() > 64 * 1024 {
            return Err("response headers larger than 64 KiB".into());
        }
        let n = s.read_buf(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before the response headers".into());
        }
    }
}

/// Decodes a response body: chunked, by length, or until the connection closes.
#[derive(Debug)]
enum BodyReader {
    Chunked {
        remaining: Option<usize>,
        done: bool,
    },
    Length(usize),
    UntilClose,
}

impl BodyReader {
    fn new(headers: &[(String, String)]) -> Self {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            Self::Chunked {
                remaining: None,
                done: false,
            }
        } else if let Some(n) = header("content-length").and_then(|v| v.parse().ok()) {
            Self::Length(n)
        } else {
            Self::UntilClose
        }
    }

    fn until_close(&self) -> bool {
        matches!(self, Self::UntilClose)
    }

    /// `Some(Some(bytes))`: decoded bytes; `Some(None)`: the body is complete; `None`: more
    /// input is needed.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Option<Bytes>>, String> {
        match self {
            Self::Length(0) => Ok(Some(None)),
            Self::Length(n) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let take = (*n).min(buf.len());
                *n -= take;
                Ok(Some(Some(buf.split_to(take).freeze())))
            }
            Self::UntilClose => {
                if buf.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(Some(buf.split().freeze())))
                }
            }
            Self::Chunked { remaining, done } => decode_chunked(remaining, done, buf),
        }
    }
}

/// Decodes a chunked body: `remaining` is what is left of the current chunk (its CRLF
/// included), `None` between chunks; `done` once the last chunk was read.
fn decode_chunked(
    remaining: &mut Option<usize>,
    done: &mut bool,
    buf: &mut BytesMut,
) -> Result<Option<Option<Bytes>>, String> {
    loop {
        if *done {
            return Ok(Some(None));
        }
        match remaining {
            None => {
                let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
                    if buf.len() > 4096 {
                        return Err("bad chunk size line".into());
                    }
                    return Ok(None);
                };
                let line = String::from_utf8_lossy(&buf[..eol]).into_owned();
                let size = line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| format!("bad chunk size {line:?}"))?;
                buf.advance(eol + 2);
                if size == 0 {
                    // Trailers are not used by tether; the body is over.
                    *done = true;
                    continue;
                }
                // The chunk's data, then its CRLF (counted in `remaining`).
                *remaining = Some(size + 2);
            }
            Some(n) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let data_left = n.saturating_sub(2);
                if data_left > 0 {
                    let take = data_left.min(buf.len());
                    *n -= take;
                    return Ok(Some(Some(buf.split_to(take).freeze())));
                }
                let take = (*n).min(buf.len());
                buf.advance(take);
                *n -= take;
                if *n == 0 {
                    *remaining = None;
                }
            }
        }
    }
}

struct SseState {
    stream: TcpStream,
    buf: BytesMut,
    reader: BodyReader,
}

impl SseState {
    /// What a connect answered with `status` other than 200 says: its body, read for up to
    /// two seconds, or the superseded refusal for a 204.
    async fn refusal(mut self, status: u16) -> String {
        let mut body = BytesMut::new();
        let read_rest = async {
            while let Some(b) = self.next().await {
                body.extend_from_slice(&b);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), read_rest).await;
        if status == 204 {
            return super::SUPERSEDED_REFUSAL.to_owned();
        }
        describe(status, &body)
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.reader.decode(&mut self.buf) {
                Ok(Some(Some(b))) => return Some(b),
                Ok(Some(None)) | Err(_) => return None,
                Ok(None) => match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                },
            }
        }
    }
}

impl Driver for Http {
    async fn publish(
        &mut self,
        session: &str,
        events: &[Value],
        name: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let body = match events {
            [one] => one.clone(),
            many => Value::Array(many.to_vec()),
        };
        let mut path = format!("/api/sessions/{}/events", enc(session));
        if let Some(n) = name {
            path.push_str(&format!("?event={}", enc(n)));
        }
        let (status, resp) = self.request("POST", &path, Some(&body)).await?;
        if status != 202 && status != 200 {
            return Err(describe(status, &resp));
        }
        let v: Value = serde_json::from_slice(&resp)
            .map_err(|e| format!("publish answered {}: {e}", describe(status, &resp)))?;
        v["ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .map(|i| i.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .ok_or_else(|| format!("publish answered without ids: {v}"))
    }

    async fn connect(
        &mut self,
        session: &str,
        request: &ConnectRequest,
    ) -> Result<SseBody, String> {
        let mut path = format!("/api/sse/session/{}", enc(session));
        if let Some(c) = &request.client_id {
            path.push_str(&format!("?clientId={}", enc(c)));
        }
        let mut extra = vec![
            ("Accept", "text/event-stream".to_owned()),
            ("Cache-Control", "no-cache".to_owned()),
        ];
        if let Some(id) = &request.last_event_id {
            extra.push(("Last-Event-ID", id.clone()));
        }
        let open = async {
            let mut s = self.open_stream().await?;
            let mut req = self.head("GET", &path, &extra);
            req.push_str("\r\n");
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let (status, headers, buf) = read_head(&mut s).await?;
            Ok::<_, String>((s, status, headers, buf))
        };
        let (mut stream, status, headers, mut buf) =
            tokio::time::timeout(self.options.request_timeout, open)
                .await
                .map_err(|_| format!("GET {path}: no answer within the request timeout"))??;
        let reader = BodyReader::new(&headers);
        if status != 200 {
            let st = SseState {
                stream,
                buf,
                reader,
            };
            return Err(st.refusal(status).await);
        }
        let content_type = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            let _ = stream.shutdown().await;
            buf.clear();
            return Err(format!(
                "200 with Content-Type {content_type:?}, not text/event-stream"
            ));
        }
        let state = SseState {
            stream,
            buf,
            reader,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            |mut st| async move { st.next().await.map(|b| (b, st)) },
        )))
    }

    async fn request_approval(
        &mut self,
        session: &str,
        request: &ApprovalRequest,
    ) -> Result<String, String> {
        let mut body = json!({ "id": request.id, "payload": request.payload });
        if let Some(t) = &request.title {
            body["title"] = t.clone().into();
        }
        if let Some(t) = request.timeout {
            body["timeoutMs"] = (t.as_millis() as u64).into();
        }
        let path = format!("/api/sessions/{}/approvals", enc(session));
        let (status, resp) = self.request("POST", &path, Some(&body)).await?;
        if status != 201 && status != 200 {
            return Err(describe(status, &resp));
        }
        let v: Value = serde_json::from_slice(&resp).unwrap_or_default();
        Ok(v["id"].as_str().unwrap_or(&request.id).to_owned())
    }

    async fn decide(
        &mut self,
        session: &str,
        approval: &str,
        approved: bool,
        reason: Option<&str>,
    ) -> DecideResult {
        let mut body = json!({ "approved": approved });
        if let Some(r) = reason {
            body["reason"] = r.into();
        }
        let path = format!(
            "/api/sessions/{}/approvals/{}/decision",
            enc(session),
            enc(approval)
        );
        match self.request("POST", &path, Some(&body)).await {
            Err(e) => DecideResult::Other(e),
            Ok((200 | 204, _)) => DecideResult::Ok,
            Ok((404, _)) => DecideResult::Unknown,
            Ok((409, resp)) => DecideResult::AlreadyDecided(describe(409, &resp)),
            Ok((410, _)) => DecideResult::Expired,
            Ok((status, resp)) => DecideResult::Other(describe(status, &resp)),
        }
    }

    async fn approval_status(
        &mut self,
        session: &str,
        approval: &str,
        wait: Duration,
    ) -> Result<Option<String>, String> {
        // The server caps a long-poll at 60 s; ask again until the wait is over.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait_ms = left.as_millis().min(60_000) as u64;
            let path = format!(
                "/api/sessions/{}/approvals/{}?waitMs={wait_ms}",
                enc(session),
                enc(approval)
            );
            let (status, resp) = self.request("GET", &path, None).await?;
            match status {
                404 => return Ok(None),
                200 => {
                    let v: Value = serde_json::from_slice(&resp)
                        .map_err(|e| format!("approval status: {e}"))?;
                    let s = v["status"]
                        .as_str()
                        .ok_or_else(|| format!("approval status without a status: {v}"))?
                        .to_owned();
                    if s != "pending" || left.is_zero() {
                        return Ok(Some(s));
                    }
                }
                _ => return Err(describe(status, &resp)),
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Some("pending".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let h = Http::new("http://127.0.0.1:8080/base/", HttpOptions::default()).unwrap();
        assert_eq!(
            (h.host.as_str(), h.port, h.prefix.as_str()),
            ("127.0.0.1", 8080, "/base")
        );
        let h = Http::new("http://[::1]:9", HttpOptions::default()).unwrap();
        assert_eq!((h.host.as_str(), h.port), ("::1", 9));
        assert_eq!(h.authority(), "[::1]:9");
        let h = Http::new("http://localhost", HttpOptions::default()).unwrap();
        assert_eq!(h.port, 80);
        assert!(Http::new("https://x", HttpOptions::default()).is_err());
    }

    #[test]
    fn chunked_bodies_split_anywhere() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut r = BodyReader::Chunked {
                remaining: None,
                done: false,
            };
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut fed = 0;
            let mut chunks = [&wire[..split], &wire[split..]].into_iter();
            loop {
                match r.decode(&mut buf).unwrap() {
                    Some(Some(b)) => out.extend_from_slice(&b),
                    Some(None) => break,
                    None => {
                        let c = chunks.next().expect("more input");
                        fed += c.len();
                        buf.extend_from_slice(c);
                    }
                }
            }
            assert_eq!(out, b"hello!", "split at {split}");
            assert!(fed <= wire.len());
        }
    }

    #[test]
    fn encoding() {
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
        assert_eq!(enc("run-1.x_y:z"), "run-1.x_y:z");
    }
}
