//! A small HTTP/1.1 client over `TcpStream`, written for observing servers precisely: it
//! sees every byte of a stream as it arrives, can stop reading on purpose (a stalled client),
//! and tells an orderly end of a response from a timeout. It talks to loopback addresses only.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

use crate::CheckError;
use crate::sse::{Block, Parser};

/// Where the server under test listens: `http://<loopback address>:<port>[/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    addr: SocketAddr,
    host: String,
    prefix: String,
}

impl Target {
    /// Parses a base URL. Only `http` and loopback addresses (`127.0.0.0/8`, `::1`,
    /// `localhost`) are accepted: the suite never talks to anything else.
    pub fn parse(base_url: &str) -> Result<Self, CheckError> {
        let bad = |why: &str| CheckError::fail(format!("base URL {base_url:?}: {why}"));
        let rest = base_url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// is supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| bad("a port is required"))?;
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            h => h
                .parse()
                .map_err(|_| bad("the host must be an IP address or localhost"))?,
        };
        if !ip.is_loopback() {
            return Err(bad("the suite only talks to loopback addresses"));
        }
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            host: authority.to_owned(),
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn request_head(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body_len: Option<usize>,
    ) -> Vec<u8> {
        let mut head = Vec::with_capacity(256);
        let _ = write!(
            head,
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\n",
            self.prefix, self.host
        );
        for (k, v) in headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        if let Some(n) = body_len {
            // Bodies are JSON; a check that sends another type names it.
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                head.extend_from_slice(b"Content-Type: application/json\r\n");
            }
            let _ = write!(head, "Content-Length: {n}\r\n");
        }
        head.extend_from_slice(b"Connection: close\r\n\r\n");
        head
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names in lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value, CheckError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            CheckError::fail(format!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                self.text()
            ))
        })
    }

    /// Checks the status and that the body is the contract's error JSON with `code` (any code
    /// when `None`); returns the body.
    pub fn expect_error(&self, status: u16, code: Option<&str>) -> Result<Value, CheckError> {
        if self.status != status {
            return Err(CheckError::fail(format!(
                "expected {status}, got {} {:?}",
                self.status,
                self.text()
            )));
        }
        let ct = self.header("content-type").unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(CheckError::fail(format!(
                "error {status} has content-type {ct:?}, not application/json"
            )));
        }
        let v = self.json()?;
        if !v["error"].is_string() || !v["message"].is_string() {
            return Err(CheckError::fail(format!(
                "error body lacks \"error\"/\"message\": {v}"
            )));
        }
        if let Some(code) = code
            && v["error"] != code
        {
            return Err(CheckError::fail(format!(
                "expected error code {code:?}, got {v}"
            )));
        }
        Ok(v)
    }

    /// Checks the status; returns the body as JSON.
    pub fn expect_json(&self, status: u16) -> Result<Value, CheckError> {
        if self.status != status {
            return Err(CheckError::fail(format!(
                "expected {status}, got {} {:?}",
                self.status,
                self.text()
            )));
        }
        self.json()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn io_fail(what: &str, e: impl std::fmt::Display) -> CheckError {
    CheckError::fail(format!("{what}: {e}"))
}

async fn connect(target: &Target, recv_buffer: Option<u32>) -> Result<TcpStream, CheckError> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| io_fail("socket", e))?;
    if let Some(n) = recv_buffer {
        // Set before connecting, so the advertised window stays small.
        socket
            .set_recv_buffer_size(n)
            .map_err(|e| io_fail("SO_RCVBUF", e))?;
    }
    timeout(Duration::from_secs(10), socket.connect(target.addr))
        .await
        .map_err(|_| CheckError::fail(format!("connecting to {} timed out", target.addr)))?
        .map_err(|e| io_fail(&format!("connecting to {}", target.addr), e))
}

/// How the body of a response is delimited.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(Dechunker),
    Eof,
}

/// Reads a response head; returns status, headers and the bytes read past the head.
async fn read_head<R: AsyncRead + Unpin>(
    stream: &mut R,
    deadline: Instant,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), CheckError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let rest = buf[end + 4..].to_vec();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| CheckError::fail(format!("bad status line {status_line:?}")))?;
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            return Ok((status, headers, rest));
        }
        let n = timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| CheckError::fail("no response head in time"))?
            .map_err(|e| io_fail("reading the response head", e))?;
        if n == 0 {
            return Err(CheckError::fail(
                "the connection closed before a response head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn timeout_at<F: std::future::Future>(
    deadline: Instant,
    f: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout_at(deadline, f).await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn framing(status: u16, headers: &[(String, String)], head_request: bool) -> Framing {
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        return Framing::Length(0);
    }
    if header(headers, "transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        return Framing::Chunked(Dechunker::default());
    }
    match header(headers, "content-length").and_then(|l| l.parse().ok()) {
        Some(n) => Framing::Length(n),
        None => Framing::Eof,
    }
}

/// Sends one request (with `Connection: close`) and reads the whole response within
/// `limit`. The body is written while the response is read, so a server that answers early
/// (413) and closes is still heard.
pub async fn send(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    limit: Duration,
) -> Result<Reply, CheckError> {
    let deadline = Instant::now() + limit;
    let stream = connect(target, None).await?;
    let body_len = (!body.is_empty() || matches!(method, "POST" | "PUT")).then_some(body.len());
    let mut out = target.request_head(method, path, headers, body_len);
    out.extend_from_slice(body);
    let (mut rd, mut wr) = stream.into_split();
    let write = async move {
        // A server may answer and close before reading all of a large body: ignore the error
        // and let the read side hear the answer.
        let _ = timeout_at(deadline, wr.write_all(&out)).await;
        wr
    };
    let read = async {
        let (status, headers, rest) = read_head(&mut rd, deadline).await?;
        let framing = framing(status, &headers, method == "HEAD");
        let mut body = Body::new(framing, rest, None);
        let mut data = Vec::new();
        while let Some(chunk) = body
            .next_chunk(&mut rd, deadline)
            .await
            .map_err(|e| match e {
                CheckError::Timeout => CheckError::fail(format!(
                    "{method} {path}: no complete response within {limit:?}"
                )),
                e => e,
            })?
        {
            data.extend_from_slice(&chunk);
        }
        Ok::<_, CheckError>((status, headers, data))
    };
    let (_wr, result) = tokio::join!(write, read);
    let (status, headers, data) = result?;
    Ok(Reply {
        status,
        headers,
        body: data,
    })
}

/// The head of a response, read off a connection a check wrote its own bytes on.
#[derive(Debug, Clone)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Headers, names in lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The bytes after the head that arrived with it (the start of the body, as sent).
    pub rest: Vec<u8>,
}

impl Head {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Reads the head of a response from `stream` within `limit`: for checks that write malformed
/// or partial requests on a raw socket (ambiguous framing, bodies announced and never sent)
/// and read the answer like any other.
pub async fn read_response_head<R: AsyncRead + Unpin>(
    stream: &mut R,
    limit: Duration,
) -> Result<Head, CheckError> {
    let (status, headers, rest) = read_head(stream, Instant::now() + limit).await?;
    Ok(Head {
        status,
        headers,
        rest,
    })
}

/// Writes `request` as it is on a fresh connection and returns the status of the answer
/// (within `limit`).
pub async fn raw_status(
    target: &Target,
    request: &[u8],
    limit: Duration,
) -> Result<u16, CheckError> {
    let mut stream = connect(target, None).await?;
    timeout(limit, stream.write_all(request))
        .await
        .map_err(|_| CheckError::Timeout)?
        .map_err(|e| io_fail("writing a raw request", e))?;
    Ok(read_response_head(&mut stream, limit).await?.status)
}

/// Opens a connection, sends one `GET path` on it that keeps it alive, reads the answer
/// (its status is returned) and hands the connection back open: a connection the server
/// has answered is one it keeps, which a connection that has sent nothing does not show.
pub async fn open_answered(
    target: &Target,
    path: &str,
    limit: Duration,
) -> Result<(TcpStream, u16), CheckError> {
    let deadline = Instant::now() + limit;
    let mut stream = connect(target, None).await?;
    let head = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}\r\n\r\n",
        target.prefix, target.host
    );
    timeout_at(deadline, stream.write_all(head.as_bytes()))
        .await
        .map_err(|_| CheckError::Timeout)?
        .map_err(|e| io_fail("writing a request", e))?;
    let (status, headers, rest) = read_head(&mut stream, deadline).await?;
    let mut body = Body::new(framing(status, &headers, false), rest, None);
    while body.next_chunk(&mut stream, deadline).await?.is_some() {}
    Ok((stream, status))
}

/// The body of a streaming response, de-chunked and (for `Content-Encoding: gzip`)
/// decompressed as it arrives.
struct Body {
    framing: Framing,
    pending: Vec<u8>,
    done: bool,
    gzip: Option<flate2::write::GzDecoder<Vec<u8>>>,
}

impl Body {
    fn new(framing: Framing, rest: Vec<u8>, encoding: Option<&str>) -> Self {
        let gzip = encoding
            .filter(|e| e.eq_ignore_ascii_case("gzip"))
            .map(|_| flate2::write::GzDecoder::new(Vec::new()));
        Self {
            framing,
            pending: rest,
            done: false,
            gzip,
        }
    }

    /// The next decoded bytes (possibly empty), `None` at the orderly end of the body.
    async fn next_chunk<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, CheckError> {
        loop {
            if self.done {
                return Ok(None);
            }
            if !self.pending.is_empty() || matches!(self.framing, Framing::Length(0)) {
                let raw = std::mem::take(&mut self.pending);
                let (decoded, end) = match &mut self.framing {
                    Framing::Length(n) => {
                        let take = (raw.len() as u64).min(*n) as usize;
                        *n -= take as u64;
                        (raw[..take].to_vec(), *n == 0)
                    }
                    Framing::Chunked(d) => d.feed(&raw)?,
                    Framing::Eof => (raw, false),
                };
                if end {
                    self.done = true;
                }
                let decoded = self.decode(decoded)?;
                if !decoded.is_empty() || self.done {
                    return Ok(Some(decoded));
                }
            }
            let mut buf = vec![0u8; 64 * 1024];
            let n = timeout_at(deadline, stream.read(&mut buf))
                .await
                .map_err(|_| CheckError::Timeout)?
                .map_err(|e| io_fail("reading the body", e))?;
            if n == 0 {
                return match self.framing {
                    Framing::Eof => {
                        self.done = true;
                        Ok(None)
                    }
                    _ => Err(CheckError::fail(
                        "the connection closed in the middle of the body",
                    )),
                };
            }
            buf.truncate(n);
            self.pending = buf;
        }
    }

    fn decode(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>, CheckError> {
        let Some(gz) = &mut self.gzip else {
            return Ok(bytes);
        };
        gz.write_all(&bytes).map_err(|e| io_fail("gzip", e))?;
        gz.flush().map_err(|e| io_fail("gzip", e))?;
        Ok(std::mem::take(gz.get_mut()))
    }
}

/// Decodes `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
struct Dechunker {
    buf: Vec<u8>,
    remaining: usize,
    in_data: bool,
}

impl Dechunker {
    /// Returns the decoded bytes and whether the last chunk was seen.
    fn feed(&mut self, input: &[u8]) -> Result<(Vec<u8>, bool), CheckError> {
        self.buf.extend_from_slice(input);
        let mut out = Vec::new();
        loop {
            if self.in_data {
                let take = self.remaining.min(self.buf.len());
                out.extend_from_slice(&self.buf[..take]);
                self.buf.drain(..take);
                self.remaining -= take;
                if self.remaining > 0 {
                    return Ok((out, false));
                }
                if self.buf.len() < 2 {
                    return Ok((out, false));
                }
                self.buf.drain(..2);
                self.in_data = false;
            }
            let Some(end) = find(&self.buf, b"\r\n") else {
                return Ok((out, false));
            };
            let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| CheckError::fail(format!("bad chunk size line {line:?}")))?;
            self.buf.drain(..end + 2);
            if size == 0 {
                return Ok((out, true));
            }
            self.remaining = size;
            self.in_data = true;
        }
    }
}

/// Options of an event-stream request.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// `SO_RCVBUF` of the client socket, to make a stalled client's window small.
    pub recv_buffer: Option<u32>,
}

/// An open event-stream response, read frame by frame.
pub struct SseConn {
    stream: TcpStream,
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    parser: Parser,
    frames: std::collections::VecDeque<(Instant, Block)>,
    first_bytes: Vec<u8>,
    ended: bool,
}

impl std::fmt::Debug for SseConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseConn")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl SseConn {
    /// Sends `GET path` and reads the response head (within 10 s).
    pub async fn open(
        target: &Target,
        path: &str,
        opts: StreamOptions,
    ) -> Result<Self, CheckError> {
        Self::request(target, "GET", path, opts, None).await
    }

    /// Sends `method path` with `body` (with its `Content-Length`; none without a body) and
    /// reads the response head (within 10 s), for routes that answer a request with a
    /// stream, such as `POST /api/agui/run`.
    pub async fn request(
        target: &Target,
        method: &str,
        path: &str,
        opts: StreamOptions,
        body: Option<&[u8]>,
    ) -> Result<Self, CheckError> {
        let mut stream = connect(target, opts.recv_buffer).await?;
        let mut head = target.request_head(method, path, &opts.headers, body.map(<[u8]>::len));
        head.extend_from_slice(body.unwrap_or_default());
        stream
            .write_all(&head)
            .await
            .map_err(|e| io_fail("sending the request", e))?;
        let (status, headers, rest) =
            read_head(&mut stream, Instant::now() + Duration::from_secs(10)).await?;
        let framing = framing(status, &headers, false);
        let body = Body::new(framing, rest, header(&headers, "content-encoding"));
        Ok(Self {
            stream,
            status,
            headers,
            body,
            parser: Parser::new(),
            frames: Default::default(),
            first_bytes: Vec::new(),
            ended: false,
        })
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The first bytes of the (decoded) body, up to 64.
    pub fn first_bytes(&self) -> &[u8] {
        &self.first_bytes
    }

    /// The next block with its arrival time; `Ok(None)` once the response ended in order;
    /// [`CheckError::Timeout`] if nothing complete arrived within `limit`.
    pub async fn next_timed(
        &mut self,
        limit: Duration,
    ) -> Result<Option<(Instant, Block)>, CheckError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Ok(Some(f));
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.next_chunk(&mut self.stream, deadline).await? {
                Some(bytes) => {
                    if self.first_bytes.len() < 64 {
                        let n = (64 - self.first_bytes.len()).min(bytes.len());
                        self.first_bytes.extend_from_slice(&bytes[..n]);
                    }
                    let out = self.parser.feed(&bytes);
                    let now = Instant::now();
                    self.frames.extend(out.into_iter().map(|f| (now, f)));
                }
                None => self.ended = true,
            }
        }
    }

    /// The next block; `Ok(None)` once the response ended.
    pub async fn next(&mut self, limit: Duration) -> Result<Option<Block>, CheckError> {
        Ok(self.next_timed(limit).await?.map(|(_, f)| f))
    }

    /// The next block that carries data (skipping comments, `retry:`-only and id-only blocks);
    /// an error if the stream ends first.
    pub async fn next_event(&mut self, limit: Duration) -> Result<Block, CheckError> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await? {
                Some(f) if f.is_event() => return Ok(f),
                Some(_) => {}
                None => {
                    return Err(CheckError::fail(
                        "the stream ended while an event was expected",
                    ));
                }
            }
        }
    }

    /// Reads until the response ends (within `limit`); returns the blocks read.
    pub async fn until_end(&mut self, limit: Duration) -> Result<Vec<Block>, CheckError> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return Ok(out),
                Err(CheckError::Timeout) => {
                    return Err(CheckError::fail(format!(
                        "the stream did not end within {limit:?}; read {out:?}"
                    )));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
