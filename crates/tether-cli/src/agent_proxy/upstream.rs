//! The HTTP/1.1 call to the agent behind `--agent-url`: one connection per run, so a run's
//! cancellation or deadline is the drop of its connection, and nothing of one run's socket
//! state can leak into another's.
//!
//! Plain `http://` only: the agent is expected next to the hub (the same host or a private
//! network), and a TLS stack for one hop would be a second crypto dependency of the binary.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How much of a refused answer's body is kept for the run's error message.
const ERROR_BODY_BYTES: usize = 512;

/// How long a refused answer's body may take to arrive before the error is reported without it.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(2);

/// Where the agent listens: `http://host[:port][/path]`.
#[derive(Debug, Clone)]
pub(crate) struct AgentUrl {
    /// `host:port`, for the socket.
    connect: String,
    /// The `Host` header.
    authority: HeaderValue,
    /// The request target.
    path: String,
    /// The URL as given, for log lines.
    shown: String,
}

impl AgentUrl {
    /// Parses `--agent-url`; the error names the flag and says what to give instead.
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        let uri: Uri = raw
            .parse()
            .map_err(|e| format!("--agent-url `{raw}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "--agent-url `{raw}`: https is not supported; run the agent on plain http on this host or a private network (http://127.0.0.1:8000/), or put a TLS-terminating proxy next to tether"
                ));
            }
            _ => return Err(format!("--agent-url `{raw}` must start with http://")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--agent-url `{raw}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "--agent-url `{raw}`: credentials in the URL are not sent; use --agent-header 'Authorization: ...'"
            ));
        }
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host();
        // `host()` keeps an IPv6 address's brackets, so this is a valid socket address.
        let connect = format!("{host}:{port}");
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let authority = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("--agent-url `{raw}`: {e}"))?;
        Ok(Self {
            connect,
            authority,
            path,
            shown: raw.to_owned(),
        })
    }
}

impl std::fmt::Display for AgentUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Parses one `--agent-header NAME:VALUE`.
pub(crate) fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| format!("--agent-header `{raw}` must be NAME:VALUE"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("--agent-header: `{}` is not a header name", name.trim()))?;
    if [HOST, CONTENT_TYPE, ACCEPT, http::header::CONTENT_LENGTH].contains(&name)
        || name == http::header::TRANSFER_ENCODING
        || name == http::header::CONNECTION
    {
        return Err(format!(
            "--agent-header: tether sets `{name}` itself; give the agent's credentials or routing headers only"
        ));
    }
    let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
        format!("--agent-header `{name}`: the value has characters a header cannot carry")
    })?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// What went wrong with the call to the agent, in words a browser's user and an operator
/// can act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The agent did not accept the connection.
    #[error("cannot reach the agent at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// The request did not get an answer (the connection broke, or the answer was not HTTP).
    #[error("the agent at {url} did not answer the run: {source}")]
    Request {
        url: String,
        #[source]
        source: hyper::Error,
    },
    /// The agent answered with an error status.
    #[error("the agent answered HTTP {status}{body}")]
    Status { status: StatusCode, body: String },
    /// The agent answered something other than an event stream.
    #[error("the agent answered `Content-Type: {content_type}`, not text/event-stream")]
    NotEventStream { content_type: String },
    /// The event stream broke off.
    #[error("the agent's event stream broke off: {0}")]
    Stream(#[source] hyper::Error),
}

impl UpstreamError {
    /// The `kind` label of `tether_agent_upstream_errors_total`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Request { .. } => "request",
            Self::Status { .. } => "status",
            Self::NotEventStream { .. } => "content_type",
            Self::Stream(_) => "stream",
        }
    }

    /// The `RUN_ERROR` code the browser sees.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "agent_unreachable",
            Self::Request { .. } => "agent_no_answer",
            Self::Status { .. } => "agent_http_error",
            Self::NotEventStream { .. } => "agent_not_event_stream",
            Self::Stream(_) => "agent_stream_broken",
        }
    }

    /// The upstream's HTTP status, when it answered one.
    pub(crate) fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The agent's endpoint and the headers every call carries.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    url: AgentUrl,
    headers: HeaderMap,
}

/// An agent's answer that is an event stream, read chunk by chunk. Dropping it closes the
/// connection, which is how a cancelled or timed-out run stops the agent's work.
#[derive(Debug)]
pub(crate) struct AgentStream {
    body: Incoming,
    status: StatusCode,
    connection: JoinHandle<()>,
}

impl Drop for AgentStream {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl AgentStream {
    /// The answer's status (2xx).
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The next chunk of the body; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        loop {
            let frame =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Some(Ok(data)),
                    // Trailers carry no events.
                    Err(_) => continue,
                },
                Err(e) => return Some(Err(UpstreamError::Stream(e))),
            }
        }
    }
}

impl Upstream {
    /// The agent at `url`, called with `headers` besides tether's own.
    pub(crate) fn new(url: AgentUrl, headers: HeaderMap) -> Self {
        Self { url, headers }
    }

    /// The agent's URL, for log lines.
    pub(crate) fn url(&self) -> &AgentUrl {
        &self.url
    }

    /// POSTs `body` (a `RunAgentInput` as JSON) and returns the answer's event stream, or why
    /// there is none.
    pub(crate) async fn start(&self, body: String) -> Result<AgentStream, UpstreamError> {
        let url = self.url.shown.clone();
        let tcp = TcpStream::connect(&self.url.connect)
            .await
            .map_err(|source| UpstreamError::Connect {
                url: url.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|source| UpstreamError::Request {
                url: url.clone(),
                source,
            })?;
        let connection = tokio::spawn(async move {
            // Its error also reaches the response or the body, where it is reported.
            let _ = connection.await;
        });
        let mut request = Request::post(self.url.path.as_str())
            .body(body)
            .map_err(|_| UpstreamError::Status {
                status: StatusCode::BAD_REQUEST,
                body: ": the agent URL's path is not a request target".into(),
            })?;
        let headers = request.headers_mut();
        headers.extend(self.headers.clone());
        headers.insert(HOST, self.url.authority.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("tether/", env!("CARGO_PKG_VERSION"))),
        );
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(source) => {
                connection.abort();
                return Err(UpstreamError::Request { url, source });
            }
        };
        let (parts, body) = response.into_parts();
        let mut stream = AgentStream {
            body,
            status: parts.status,
            connection,
        };
        if !parts.status.is_success() {
            let text = stream.error_body().await;
            return Err(UpstreamError::Status {
                status: parts.status,
                body: if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                },
            });
        }
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("text/event-stream") {
            return Err(UpstreamError::NotEventStream { content_type });
        }
        Ok(stream)
    }
}

impl AgentStream {
    /// The start of a refused answer's body, on one line, for the error message.
    async fn error_body(&mut self) -> String {
        let mut kept = Vec::new();
        let read = async {
            while kept.len() < ERROR_BODY_BYTES {
                match self.chunk().await {
                    Some(Ok(c)) => kept.extend_from_slice(&c),
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(ERROR_BODY_WAIT, read).await;
        kept.truncate(ERROR_BODY_BYTES);
        String::from_utf8_lossy(&kept)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_urls() {
        let u = AgentUrl::parse("http://127.0.0.1:8000/agent?x=1").unwrap();
        assert_eq!(u.connect, "127.0.0.1:8000");
        assert_eq!(u.path, "/agent?x=1");
        assert_eq!(u.authority, "127.0.0.1:8000");
        let u = AgentUrl::parse("http://agent.internal").unwrap();
        assert_eq!(
            (u.connect.as_str(), u.path.as_str()),
            ("agent.internal:80", "/")
        );
        let u = AgentUrl::parse("http://[::1]:9000/").unwrap();
        assert_eq!(u.connect, "[::1]:9000");
        for (raw, says) in [
            ("https://agent.example/", "https is not supported"),
            ("ftp://x/", "http://"),
            ("127.0.0.1:8000", "http://"),
            ("http://user:pw@h/", "--agent-header"),
            ("not a url", "not a URL"),
        ] {
            let e = AgentUrl::parse(raw).unwrap_err();
            assert!(e.contains(says), "{raw}: {e}");
        }
    }

    #[test]
    fn agent_headers() {
        let (n, v) = parse_header("Authorization: Bearer abc").unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("authorization", "Bearer abc")
        );
        assert!(v.is_sensitive());
        assert!(parse_header("x-tenant:blue").is_ok());
        for (raw, says) in [
            ("no-colon", "NAME:VALUE"),
            ("bad name: x", "not a header name"),
            ("Host: elsewhere", "sets `host` itself"),
            ("Accept: text/html", "itself"),
            ("x-a: \u{7f}", "cannot carry"),
        ] {
            let e = parse_header(raw).unwrap_err();
            assert!(e.contains(says), "{raw}: {e}");
        }
    }
}
