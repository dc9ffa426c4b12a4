//! A minimal HTTP/1.1 client over [`TcpStream`]: just enough to open SSE streams and post
//! event batches, with no per-event overhead beyond the bytes.

use std::{
    fmt, io,
    net::{SocketAddr, ToSocketAddrs},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::sse::{ChunkedDecoder, seq_of};

const MAX_HEAD: usize = 16 * 1024;

/// The server under test. Only loopback addresses are accepted.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
}

impl Target {
    /// Parses `http://HOST:PORT` (a trailing `/` is allowed) and resolves it to a loopback
    /// address.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let host = rest.trim_end_matches('/');
        if host.contains('/') {
            return Err(format!("{url}: give the base URL without a path"));
        }
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .find(|a| a.ip().is_loopback())
            .ok_or_else(|| format!("{url}: the load generator only targets loopback addresses"))?;
        Ok(Self {
            addr,
            host: host.to_owned(),
        })
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum RequestError {
    /// The socket failed.
    Io(io::Error),
    /// The server answered something other than the expected status.
    Status(u16),
    /// The answer broke HTTP/1.1.
    Protocol(&'static str),
    /// No answer in time.
    Timeout,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Status(s) => write!(f, "status {s}"),
            Self::Protocol(what) => write!(f, "protocol error: {what}"),
            Self::Timeout => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<io::Error> for RequestError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Status and framing of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    /// `Connection: close`: the server closes the connection after this response.
    pub close: bool,
}

/// Parses a response head (status line and headers, without the blank line).
pub fn parse_response_head(head: &[u8]) -> Option<ResponseHead> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let mut parsed = ResponseHead {
        status,
        chunked: false,
        content_length: None,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            parsed.close = value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
    }
    Some(parsed)
}

/// Reads until the end of a response head; returns it and the body bytes read past it.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(ResponseHead, usize), RequestError> {
    loop {
        if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
            let head = parse_response_head(&buf[..end])
                .ok_or(RequestError::Protocol("bad response head"))?;
            return Ok((head, end + 4));
        }
        if buf.len() > MAX_HEAD {
            return Err(RequestError::Protocol("response head too large"));
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(RequestError::Protocol(
                "connection closed before the response head",
            ));
        }
    }
}

/// Reads a whole response (head and a body framed by `Content-Length` or chunked encoding);
/// returns its head and decoded body.
async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(ResponseHead, Vec<u8>), RequestError> {
    let (head, body_start) = read_head(stream, buf).await?;
    let body = if let Some(len) = head.content_length {
        while buf.len() < body_start + len {
            if stream.read_buf(buf).await? == 0 {
                return Err(RequestError::Protocol("connection closed inside the body"));
            }
        }
        buf[body_start..body_start + len].to_vec()
    } else if head.chunked {
        let mut decoder = ChunkedDecoder::default();
        let mut decoded = Vec::new();
        let mut from = body_start;
        loop {
            decoder
                .feed(&buf[from..], &mut |b| decoded.extend_from_slice(b))
                .map_err(|_| RequestError::Protocol("bad chunked body"))?;
            from = buf.len();
            if decoder.is_done() {
                break;
            }
            if stream.read_buf(buf).await? == 0 {
                return Err(RequestError::Protocol("connection closed inside the body"));
            }
        }
        decoded
    } else {
        return Err(RequestError::Protocol("answer without a length"));
    };
    Ok((head, body))
}

/// `GET path` on a fresh connection (closed after the answer); returns the status and body.
pub async fn get(target: &Target, path: &str) -> Result<(u16, Vec<u8>), RequestError> {
    let mut stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        target.host
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(2048);
    let (head, body) = read_response(&mut stream, &mut buf).await?;
    Ok((head.status, body))
}

/// An SSE response whose head has been read.
#[derive(Debug)]
pub struct SseStream {
    /// The connection; the body follows.
    pub stream: TcpStream,
    /// Body bytes that arrived with the head.
    pub pending: Vec<u8>,
    /// A decoder if the body is chunked.
    pub chunked: Option<ChunkedDecoder>,
}

/// Opens `GET /api/sse/session/{session}`, resuming after `last_event_id` if given. Anything
/// but 200 is an error.
pub async fn open_sse(
    target: &Target,
    session: &str,
    last_event_id: Option<&[u8]>,
) -> Result<SseStream, RequestError> {
    open_sse_query(target, session, "", last_event_id).await
}

/// [`open_sse`] with a query string (`prelude=always`; empty for none).
pub async fn open_sse_query(
    target: &Target,
    session: &str,
    query: &str,
    last_event_id: Option<&[u8]>,
) -> Result<SseStream, RequestError> {
    let mut stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let mut request = Vec::with_capacity(192);
    request.extend_from_slice(b"GET /api/sse/session/");
    request.extend_from_slice(session.as_bytes());
    if !query.is_empty() {
        request.push(b'?');
        request.extend_from_slice(query.as_bytes());
    }
    request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    request.extend_from_slice(target.host.as_bytes());
    request.extend_from_slice(b"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n");
    if let Some(id) = last_event_id {
        request.extend_from_slice(b"Last-Event-ID: ");
        request.extend_from_slice(id);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).await?;
    let mut buf = Vec::with_capacity(1024);
    let (head, body_start) = read_head(&mut stream, &mut buf).await?;
    if head.status != 200 {
        return Err(RequestError::Status(head.status));
    }
    buf.drain(..body_start);
    Ok(SseStream {
        stream,
        pending: buf,
        chunked: head.chunked.then(ChunkedDecoder::default),
    })
}

/// How the server under test answers its publish route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerKind {
    /// tether's contract: 202 `{"ids":[...]}`, one id per event of the body (an object or an
    /// array of them).
    #[default]
    Contract,
    /// nchan's publisher location: 201 Created (the channel had a subscriber) or 202 Accepted
    /// (it had none), with the channel's message count and last message id in the body. The
    /// whole body is one message, so a JSON array would reach subscribers as one event.
    Nchan,
}

/// What the publish route answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishAnswer {
    /// Events the server acknowledged: the ids it returned (contract), or 1 (nchan stores a
    /// body as one message).
    pub accepted: usize,
    /// The sequence part of the last id returned (contract), for clients that judge loss by
    /// the server's ids.
    pub last_seq: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Ids {
    ids: Vec<String>,
}

/// A keep-alive connection for `POST /api/sessions/{session}/events`; it reconnects after
/// a failure, and after an answer that closes the connection.
#[derive(Debug)]
pub struct Publisher {
    target: Target,
    kind: ServerKind,
    stream: Option<TcpStream>,
    request: Vec<u8>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Publisher {
    /// A publisher for a server speaking the contract; nothing is connected until the first
    /// post.
    pub fn new(target: Target) -> Self {
        Self::with_kind(target, ServerKind::Contract)
    }

    /// A publisher for a server that answers as `kind` says.
    pub fn with_kind(target: Target, kind: ServerKind) -> Self {
        Self {
            target,
            kind,
            stream: None,
            request: Vec::new(),
            buf: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Posts `body` (a JSON event or array of events) and expects the answer of the server's
    /// kind: 202 `{"ids":[...]}`, or nchan's 201 or 202.
    pub async fn post(
        &mut self,
        session: &str,
        body: &[u8],
    ) -> Result<PublishAnswer, RequestError> {
        match tokio::time::timeout(self.timeout, self.post_inner(session, body)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(RequestError::Timeout)
            }
        }
    }

    async fn post_inner(
        &mut self,
        session: &str,
        body: &[u8],
    ) -> Result<PublishAnswer, RequestError> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.target.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            unreachable!("connected above");
        };
        self.request.clear();
        self.request.extend_from_slice(b"POST /api/sessions/");
        self.request.extend_from_slice(session.as_bytes());
        self.request
            .extend_from_slice(b"/events HTTP/1.1\r\nHost: ");
        self.request.extend_from_slice(self.target.host.as_bytes());
        self.request
            .extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        self.request
            .extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        self.request.extend_from_slice(b"\r\n\r\n");
        self.request.extend_from_slice(body);
        stream.write_all(&self.request).await?;

        self.buf.clear();
        let (head, answer) = read_response(stream, &mut self.buf).await?;
        if head.close {
            self.stream = None;
        }
        match self.kind {
            ServerKind::Contract => {
                if head.status != 202 {
                    return Err(RequestError::Status(head.status));
                }
                let ids: Ids = serde_json::from_slice(&answer)
                    .map_err(|_| RequestError::Protocol("publish answer is not {\"ids\":[...]}"))?;
                Ok(PublishAnswer {
                    accepted: ids.ids.len(),
                    last_seq: ids.ids.last().and_then(|id| seq_of(id.as_bytes())),
                })
            }
            ServerKind::Nchan => match head.status {
                201 | 202 => Ok(PublishAnswer {
                    accepted: 1,
                    last_seq: None,
                }),
                status => Err(RequestError::Status(status)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_loopback_only() {
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:8080");
        assert!(Target::parse("http://[::1]:80").is_ok());
        assert!(Target::parse("http://192.0.2.1:80").is_err());
        assert!(Target::parse("https://127.0.0.1:80").is_err());
        assert!(Target::parse("http://127.0.0.1:80/api").is_err());
    }

    #[test]
    fn response_heads() {
        let head = parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked",
        )
        .unwrap();
        assert_eq!(
            head,
            ResponseHead {
                status: 200,
                chunked: true,
                content_length: None,
                close: false,
            }
        );
        let head = parse_response_head(b"HTTP/1.1 202 Accepted\r\ncontent-length: 12").unwrap();
        assert_eq!((head.content_length, head.close), (Some(12), false));
        let head =
            parse_response_head(b"HTTP/1.1 201 Created\r\nConnection: Keep-Alive, close").unwrap();
        assert_eq!((head.status, head.close), (201, true));
        assert!(parse_response_head(b"SSH-2.0").is_none());
    }
}
