//! The probe's HTTP/1.1 client: plain `http://` over a tokio `TcpStream`, one request per
//! connection (`Connection: close`), chunked and gzip bodies decoded as they arrive, and the
//! arrival time of every read from the socket, so silences are measured on the wire and not
//! after a decoder or a parser has held bytes back.

use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

/// Longest wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Why a request did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HttpError {
    /// No TCP connection: the name does not resolve, nothing listens, or connecting timed out.
    Connect(String),
    /// Nothing (or not all of it) arrived in time.
    Timeout(String),
    /// Something arrived that is not HTTP/1.x, or the connection broke.
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(m) | Self::Timeout(m) | Self::Protocol(m) => f.write_str(m),
        }
    }
}

/// A service's base URL, `http://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    host: String,
    port: u16,
    authority: String,
    prefix: String,
}

impl Base {
    /// Parses a base URL; only `http://` is supported.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("https://") {
            return Err(format!(
                "{url}: https:// is not supported; probe the http:// address behind the TLS terminator \
                 (or a local tunnel to it)"
            ));
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: the URL must start with http://"))?;
        let (authority, prefix) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if prefix.contains(['?', '#']) {
            return Err(format!(
                "{url}: a base URL has no query or fragment; give the path prefix only"
            ));
        }
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url}: expected http://host[:port][/prefix]"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{url}: unexpected {after:?} after the host")),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url}: invalid port {p:?}"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(format!("{url}: the host is empty"));
        }
        Ok(Self {
            host,
            port,
            authority: authority.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
        })
    }

    async fn connect(&self) -> Result<TcpStream, HttpError> {
        let what = format!("cannot connect to {}:{}", self.host, self.port);
        let stream = timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| HttpError::Connect(format!("{what}: timed out after {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| HttpError::Connect(format!("{what}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn head(&self, method: &str, path: &str, headers: &[(&str, String)], body: usize) -> Vec<u8> {
        let mut head = Vec::with_capacity(256);
        let _ = write!(
            head,
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tether-probe/{}\r\n",
            self.prefix,
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        if method == "POST" || body > 0 {
            let _ = write!(head, "Content-Length: {body}\r\n");
        }
        head.extend_from_slice(b"Connection: close\r\n\r\n");
        head
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as text, cut to `max` characters, for a report.
    pub(crate) fn snippet(&self, max: usize) -> String {
        snippet(&String::from_utf8_lossy(&self.body), max)
    }
}

/// `s` on one line, cut to `max` characters.
pub(crate) fn snippet(s: &str, max: usize) -> String {
    let flat: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// The first value of header `name` (lowercase).
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Sends one request and reads the whole response within `limit`.
pub(crate) async fn request(
    base: &Base,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    limit: Duration,
) -> Result<Reply, HttpError> {
    let deadline = Instant::now() + limit;
    let mut stream = base.connect().await?;
    let mut out = base.head(method, path, headers, body.len());
    out.extend_from_slice(body);
    timeout_at(deadline, stream.write_all(&out))
        .await
        .map_err(|_| HttpError::Timeout(format!("{method} {path}: sending timed out")))?
        .map_err(|e| HttpError::Protocol(format!("{method} {path}: sending failed: {e}")))?;
    let (status, headers, rest) = read_head(&mut stream, deadline, method, path).await?;
    let mut decoder = Decoder::new(status, &headers, method == "HEAD");
    let mut body = Vec::new();
    let mut pending = rest;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !pending.is_empty() {
            body.extend(decoder.feed(&pending)?);
            pending.clear();
        }
        if let Some(end) = decoder.finished() {
            if end == End::Clean {
                break;
            }
            return Err(HttpError::Protocol(format!("{method} {path}: {end}")));
        }
        let n = timeout_at(deadline, stream.read(&mut buf))
            .await
            .map_err(|_| {
                HttpError::Timeout(format!(
                    "{method} {path}: no complete response within {limit:?}"
                ))
            })?
            .map_err(|e| HttpError::Protocol(format!("{method} {path}: reading failed: {e}")))?;
        if n == 0 {
            match decoder.eof() {
                End::Clean => break,
                end => return Err(HttpError::Protocol(format!("{method} {path}: {end}"))),
            }
        }
        pending.extend_from_slice(&buf[..n]);
    }
    Ok(Reply { status, body })
}

type Head = (u16, Vec<(String, String)>, Vec<u8>);

async fn read_head(
    stream: &mut TcpStream,
    deadline: Instant,
    method: &str,
    path: &str,
) -> Result<Head, HttpError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut slots);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let headers = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_owned(),
                        )
                    })
                    .collect();
                if (100..200).contains(&status) {
                    // An interim answer (100 Continue): the real head follows.
                    buf.drain(..len);
                    continue;
                }
                return Ok((status, headers, buf[len..].to_vec()));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => {
                return Err(HttpError::Protocol(format!(
                    "{method} {path}: not an HTTP/1.x response ({e}): {:?}",
                    snippet(&String::from_utf8_lossy(&buf), 80)
                )));
            }
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::Protocol(format!(
                "{method} {path}: response head over {MAX_HEAD} bytes"
            )));
        }
        let n = timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| HttpError::Timeout(format!("{method} {path}: no response head in time")))?
            .map_err(|e| HttpError::Protocol(format!("{method} {path}: reading failed: {e}")))?;
        if n == 0 {
            return Err(HttpError::Protocol(format!(
                "{method} {path}: the connection closed before a response head"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The body ended where its framing said it would (last chunk, length, or close for a
    /// body delimited by the close).
    Clean,
    /// The connection closed before the body's framing said it was complete.
    Cut,
    /// The body's framing (chunk sizes) or its gzip encoding was broken.
    Garbled,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Clean => "clean end",
            Self::Cut => "cut mid-body",
            Self::Garbled => "garbled body",
        })
    }
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(Dechunker),
    Eof,
}

/// De-chunks and un-gzips a body fed in pieces as they arrive.
pub(crate) struct Decoder {
    framing: Framing,
    gzip: Option<flate2::write::GzDecoder<Vec<u8>>>,
    end: Option<End>,
}

impl Decoder {
    fn new(status: u16, headers: &[(String, String)], head_request: bool) -> Self {
        let framing = if head_request || status == 204 || status == 304 {
            Framing::Length(0)
        } else if header(headers, "transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked(Dechunker::default())
        } else {
            match header(headers, "content-length").and_then(|l| l.parse().ok()) {
                Some(n) => Framing::Length(n),
                None => Framing::Eof,
            }
        };
        let gzip = header(headers, "content-encoding")
            .filter(|e| e.eq_ignore_ascii_case("gzip"))
            .map(|_| flate2::write::GzDecoder::new(Vec::new()));
        let end = matches!(framing, Framing::Length(0)).then_some(End::Clean);
        Self { framing, gzip, end }
    }

    /// Feeds raw bytes; returns the decoded ones.
    fn feed(&mut self, raw: &[u8]) -> Result<Vec<u8>, HttpError> {
        if self.end.is_some() {
            return Ok(Vec::new());
        }
        let plain = match &mut self.framing {
            Framing::Length(n) => {
                let take = (raw.len() as u64).min(*n) as usize;
                *n -= take as u64;
                if *n == 0 {
                    self.end = Some(End::Clean);
                }
                raw[..take].to_vec()
            }
            Framing::Chunked(d) => match d.feed(raw) {
                Ok((out, last)) => {
                    if last {
                        self.end = Some(End::Clean);
                    }
                    out
                }
                Err(e) => {
                    self.end = Some(End::Garbled);
                    return Err(e);
                }
            },
            Framing::Eof => raw.to_vec(),
        };
        let Some(gz) = &mut self.gzip else {
            return Ok(plain);
        };
        let result = gz.write_all(&plain).and_then(|()| gz.flush());
        if let Err(e) = result {
            self.end = Some(End::Garbled);
            return Err(HttpError::Protocol(format!("the gzip body is broken: {e}")));
        }
        Ok(std::mem::take(gz.get_mut()))
    }

    /// Whether the body is complete (and how it ended).
    fn finished(&self) -> Option<End> {
        self.end
    }

    /// The connection closed: how the body ended.
    fn eof(&mut self) -> End {
        let end = match (self.end, &self.framing) {
            (Some(end), _) => end,
            (None, Framing::Eof) => End::Clean,
            (None, _) => End::Cut,
        };
        self.end = Some(end);
        end
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
    fn feed(&mut self, input: &[u8]) -> Result<(Vec<u8>, bool), HttpError> {
        self.buf.extend_from_slice(input);
        let mut out = Vec::new();
        loop {
            if self.in_data {
                let take = self.remaining.min(self.buf.len());
                out.extend_from_slice(&self.buf[..take]);
                self.buf.drain(..take);
                self.remaining -= take;
                if self.remaining > 0 || self.buf.len() < 2 {
                    return Ok((out, false));
                }
                if &self.buf[..2] != b"\r\n" {
                    return Err(HttpError::Protocol("a chunk does not end in CRLF".into()));
                }
                self.buf.drain(..2);
                self.in_data = false;
            }
            let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                if self.buf.len() > 1024 {
                    return Err(HttpError::Protocol("a chunk size line is too long".into()));
                }
                return Ok((out, false));
            };
            let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| HttpError::Protocol(format!("bad chunk size line {line:?}")))?;
            self.buf.drain(..end + 2);
            if size == 0 {
                return Ok((out, true));
            }
            self.remaining = size;
            self.in_data = true;
        }
    }
}

/// What one read of a streaming response brought.
#[derive(Debug)]
pub(crate) enum Read {
    /// Raw bytes arrived at `at`; `decoded` is what they decoded to (possibly nothing yet).
    Bytes { at: Instant, decoded: Vec<u8> },
    /// The body ended at `at`.
    End { at: Instant, how: End },
}

/// An open streaming response.
pub(crate) struct Stream {
    tcp: TcpStream,
    /// Status code.
    pub(crate) status: u16,
    /// Headers, names in lowercase.
    pub(crate) headers: Vec<(String, String)>,
    /// When the response head was complete.
    pub(crate) head_at: Instant,
    decoder: Decoder,
    pending: Option<Vec<u8>>,
    buf: Vec<u8>,
}

impl Stream {
    /// Sends `GET path` and reads the response head within `head_limit`.
    pub(crate) async fn open(
        base: &Base,
        path: &str,
        headers: &[(&str, String)],
        head_limit: Duration,
    ) -> Result<Self, HttpError> {
        let deadline = Instant::now() + head_limit;
        let mut tcp = base.connect().await?;
        let head = base.head("GET", path, headers, 0);
        timeout_at(deadline, tcp.write_all(&head))
            .await
            .map_err(|_| HttpError::Timeout(format!("GET {path}: sending timed out")))?
            .map_err(|e| HttpError::Protocol(format!("GET {path}: sending failed: {e}")))?;
        let (status, headers, rest) = read_head(&mut tcp, deadline, "GET", path).await?;
        let head_at = Instant::now();
        let decoder = Decoder::new(status, &headers, false);
        Ok(Self {
            tcp,
            status,
            headers,
            head_at,
            decoder,
            pending: (!rest.is_empty()).then_some(rest),
            buf: vec![0u8; 16 * 1024],
        })
    }

    /// Waits for the next read from the socket. After [`Read::End`] it returns the same end
    /// again.
    pub(crate) async fn read(&mut self) -> Read {
        if let Some(rest) = self.pending.take() {
            return self.decode(self.head_at, &rest);
        }
        if let Some(how) = self.decoder.finished() {
            return Read::End {
                at: Instant::now(),
                how,
            };
        }
        let n = self.tcp.read(&mut self.buf).await;
        let at = Instant::now();
        match n {
            Ok(0) => Read::End {
                at,
                how: self.decoder.eof(),
            },
            Ok(n) => {
                let raw = self.buf[..n].to_vec();
                self.decode(at, &raw)
            }
            Err(_) => {
                // A reset or another socket error is never an orderly end, not even for a
                // body delimited by the close.
                let how = self.decoder.end.unwrap_or(End::Cut);
                self.decoder.end = Some(how);
                Read::End { at, how }
            }
        }
    }

    fn decode(&mut self, at: Instant, raw: &[u8]) -> Read {
        match self.decoder.feed(raw) {
            Ok(decoded) => Read::Bytes { at, decoded },
            Err(_) => Read::End {
                at,
                how: End::Garbled,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let b = Base::parse("http://example.com").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.prefix.as_str()),
            ("example.com", 80, "")
        );
        let b = Base::parse("http://127.0.0.1:8080/tether/").unwrap();
        assert_eq!(
            (
                b.host.as_str(),
                b.port,
                b.prefix.as_str(),
                b.authority.as_str()
            ),
            ("127.0.0.1", 8080, "/tether", "127.0.0.1:8080")
        );
        let b = Base::parse("http://[::1]:9000").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 9000));
        assert!(
            Base::parse("https://example.com")
                .unwrap_err()
                .contains("https")
        );
        assert!(Base::parse("ftp://x").is_err());
        assert!(Base::parse("http://x:99999").is_err());
        assert!(Base::parse("http://x/?a=1").is_err());
        assert!(Base::parse("http://").is_err());
    }

    #[test]
    fn chunked_split_anywhere() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        for split in 0..body.len() {
            let mut d = Dechunker::default();
            let (mut out, mut last) = d.feed(&body[..split]).unwrap();
            // The last chunk counts once its size line is complete; the trailer is not needed.
            assert!(!last || split >= body.len() - 2, "{split}");
            if !last {
                let (more, l) = d.feed(&body[split..]).unwrap();
                out.extend(more);
                last = l;
            }
            assert_eq!(out, b"hello world");
            assert!(last);
        }
        assert!(Dechunker::default().feed(b"zz\r\n").is_err());
    }

    #[test]
    fn gzip_bodies_decode_as_they_arrive() {
        use flate2::{Compression, write::GzEncoder};
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(b"data: 1\n\n").unwrap();
        enc.flush().unwrap();
        let first = enc.get_ref().len();
        enc.write_all(b"data: 2\n\n").unwrap();
        let all = enc.finish().unwrap();
        let headers = vec![("content-encoding".to_owned(), "gzip".to_owned())];
        let mut d = Decoder::new(200, &headers, false);
        assert_eq!(d.feed(&all[..first]).unwrap(), b"data: 1\n\n");
        assert_eq!(d.feed(&all[first..]).unwrap(), b"data: 2\n\n");
        assert_eq!(d.eof(), End::Clean);
    }

    #[test]
    fn a_body_cut_short_is_not_clean() {
        let headers = vec![("content-length".to_owned(), "10".to_owned())];
        let mut d = Decoder::new(200, &headers, false);
        assert_eq!(d.feed(b"12345").unwrap(), b"12345");
        assert_eq!(d.eof(), End::Cut);
        let headers = vec![("transfer-encoding".to_owned(), "chunked".to_owned())];
        let mut d = Decoder::new(200, &headers, false);
        d.feed(b"5\r\nhel").unwrap();
        assert_eq!(d.eof(), End::Cut);
    }
}
