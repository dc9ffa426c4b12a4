//! The one request path of every server: route and admit on the head, then read the body,
//! then handle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};

use super::handlers;
use super::hooks::{Access, AccessRequest, Capability, Identity};
use super::request::{connect_options, session_id, wait_duration};
use super::route::{self, Route, RouteError};
use super::{Cors, Hooks, HttpError, Response, query_param};
use crate::backplane::Backplane;
use crate::broker::{Broker, ConnectOptions, event_name};
use crate::frame::EventName;
use crate::id::{InvalidId, SessionId, is_valid_id};

/// A future of a [`RouteExtension`]'s answer.
pub type ResponseFuture<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// Routes a crate outside the core adds to a [`Service`] (the core cannot name them): the
/// durable AG-UI run route of `tether-agui` is one. Its paths should sit under one of
/// [`PREFIXES`](super::PREFIXES), which every adapter claims for tether.
pub trait RouteExtension: Send + Sync + 'static {
    /// Whether `path` is one of this extension's routes: `None` when it is not, an error when
    /// the path is but `method` is not one it answers.
    fn route(&self, method: &Method, path: &str) -> Option<Result<(), RouteError>>;

    /// The checks decidable from the request's head (credentials, ids in the path), before
    /// the body is read. Default: none.
    fn admit(&self, request: &ExtensionRequest<'_>) -> Result<(), HttpError> {
        let _ = request;
        Ok(())
    }

    /// Answers an admitted request, with its body (at most the hooks' body limit).
    fn handle<'a>(&'a self, request: ExtensionRequest<'a>, body: Bytes) -> ResponseFuture<'a>;
}

/// What a [`RouteExtension`] sees of a request and of the service.
#[derive(Clone, Copy)]
pub struct ExtensionRequest<'a> {
    service: &'a Service,
    parts: &'a Parts,
}

impl<'a> ExtensionRequest<'a> {
    /// The broker.
    pub fn broker(&self) -> &'a Broker {
        &self.service.inner.broker
    }

    /// The application's hooks.
    pub fn hooks(&self) -> &'a Hooks {
        &self.service.inner.hooks
    }

    /// The request's head.
    pub fn parts(&self) -> &'a Parts {
        self.parts
    }

    /// The request's headers.
    pub fn headers(&self) -> &'a HeaderMap {
        &self.parts.headers
    }

    /// The request's path, still percent-encoded.
    pub fn path(&self) -> &'a str {
        self.parts.uri.path()
    }

    /// The raw query string, `""` when there is none.
    pub fn query(&self) -> &'a str {
        self.parts.uri.query().unwrap_or("")
    }
}

type MetricsRender = dyn Fn() -> String + Send + Sync;

#[derive(Clone)]
struct Inner {
    broker: Broker,
    hooks: Hooks,
    cors: Cors,
    metrics: Option<Arc<MetricsRender>>,
    extensions: Vec<Arc<dyn RouteExtension>>,
    mode: Option<&'static str>,
    backplane: Option<Arc<dyn Backplane>>,
    trust_forwarded: bool,
}

/// tether's HTTP contract as one service: the broker, the application's [`Hooks`], CORS,
/// `/metrics` when present, and route extensions. Every server (the hub's own connection loop
/// and the axum, actix-web and warp adapters) answers a request the same three steps:
///
/// 1. [`Service::admit`] on the request's head: preflight, route (404/405), ids, framing,
///    credentials, body size by `Content-Length`, draining — everything decidable before the
///    body, so no server reads a body it will refuse;
/// 2. the server reads the body, at most [`Admitted::body_limit`] bytes;
/// 3. [`Admitted::handle`] with the body.
///
/// Cheap to clone.
///
/// ```
/// use bytes::Bytes;
/// use tether_core::Broker;
/// use tether_core::http::{Hooks, Service};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = Service::new(Broker::builder().start().expect("valid config"), Hooks::allow_all());
/// let request = http::Request::post("/api/sessions/chat-1/events")
///     .header("host", "localhost")
///     .header("content-type", "application/json")
///     .body(Bytes::from_static(br#"{"text":"hi"}"#))
///     .unwrap();
/// let (parts, body) = request.into_parts();
/// let answer = match service.admit(&parts) {
///     Ok(admitted) => admitted.handle(body).await,
///     Err(refused) => refused,
/// };
/// assert_eq!(answer.status(), 202);
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct Service {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("hooks", &self.inner.hooks)
            .field("cors", &self.inner.cors)
            .field("metrics", &self.inner.metrics.is_some())
            .field("extensions", &self.inner.extensions.len())
            .field("backplane", &self.inner.backplane.is_some())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// The contract on `broker` with the application's `hooks`; no CORS, no `/metrics`, no
    /// extensions.
    pub fn new(broker: Broker, hooks: Hooks) -> Self {
        Self {
            inner: Arc::new(Inner {
                broker,
                hooks,
                cors: Cors::default(),
                metrics: None,
                extensions: Vec::new(),
                mode: None,
                backplane: None,
                trust_forwarded: false,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Answers CORS preflights and adds CORS headers for the allowed origins. Default: none
    /// (same-origin pages only).
    pub fn cors(self, cors: Cors) -> Self {
        self.edit(|i| i.cors = cors)
    }

    /// Mounts `GET /metrics`, answered with `render()` as Prometheus text. Default: not
    /// mounted (404, and adapters leave the path to the application).
    pub fn metrics(self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.edit(|i| i.metrics = Some(Arc::new(render)))
    }

    /// Names the access mode in `/health/sse` (`"mode": "dev"` for a server whose routes are
    /// open), so an operator can see it from outside. Default: no `mode` field.
    pub fn mode(self, mode: &'static str) -> Self {
        self.edit(|i| i.mode = Some(mode))
    }

    /// Serves the routes through a backplane shared by several nodes (`tether-redis`'s
    /// `RedisBackplane`), which must feed this service's broker. Default: none (the broker
    /// alone, one node).
    ///
    /// With a backplane:
    /// - the publish route appends through [`Backplane::publish`], so ids are valid on every
    ///   node; when the backplane cannot be reached it answers 503 `backplane_unavailable`
    ///   (503 `backplane_full` when it refuses to store more), both with `Retry-After`, and
    ///   nothing is kept only in this node's memory;
    /// - the stream route connects through [`Backplane::connect`] with the same options
    ///   (`Last-Event-ID`, `clientId`, `prelude`, the caller's identity), so a `Last-Event-ID`
    ///   from any node resumes exactly and a connection on another node is superseded;
    /// - `/health/sse` carries `"backplane":{"status","node_id","since"}` and answers 503
    ///   while the backplane is down;
    /// - the approval routes go through [`Backplane::request_approval`],
    ///   [`Backplane::resolve_approval`] and [`Backplane::approval`]: an approval created on
    ///   one node is decided, cancelled or timed out exactly once on any node, and a long-poll
    ///   on any node sees the outcome; 503 `backplane_unavailable` while it cannot be reached.
    ///
    /// Session trackers (AG-UI validation and preludes) do not see events that come through
    /// the backplane: run a backplane's broker without a tracker factory.
    pub fn backplane(self, backplane: Arc<dyn Backplane>) -> Self {
        self.edit(|i| i.backplane = Some(backplane))
    }

    /// Whether the service serves through a backplane (see [`backplane`](Self::backplane)).
    pub fn has_backplane(&self) -> bool {
        self.inner.backplane.is_some()
    }

    /// Names a stream's client in its log lines by the rightmost `X-Forwarded-For` address
    /// (see [`client_info`](super::client_info)) instead of the socket peer: for a server
    /// that only a proxy can reach. It decides nothing but what is logged. Default: off.
    pub fn trust_forwarded(self, trust: bool) -> Self {
        self.edit(|i| i.trust_forwarded = trust)
    }

    /// Adds routes of another crate (see [`RouteExtension`]).
    pub fn extension(self, extension: impl RouteExtension) -> Self {
        self.edit(|i| i.extensions.push(Arc::new(extension)))
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    /// The application's hooks.
    pub fn hooks(&self) -> &Hooks {
        &self.inner.hooks
    }

    /// Whether `path` is tether's (see [`claims`](super::claims)): adapters mount the service
    /// on these paths only and leave every other to the application.
    pub fn claims(&self, path: &str) -> bool {
        route::claims(path, self.inner.metrics.is_some())
    }

    /// Whether the service mounts `/metrics`.
    pub fn has_metrics(&self) -> bool {
        self.inner.metrics.is_some()
    }

    /// Adds the CORS headers for the request's origin to a response.
    fn finish(&self, request: &HeaderMap, mut res: Response) -> Response {
        if !self.inner.cors.is_empty() {
            self.inner.cors.decorate(request, res.headers_mut());
        }
        res
    }

    /// Step one: everything decidable from the request's head. `Ok` names the route and the
    /// checked parameters; the server then reads the body (at most
    /// [`Admitted::body_limit`] bytes) and calls [`Admitted::handle`]. `Err` is the answer
    /// to send at once, without reading the body: a preflight's, or a refusal.
    // The refusal is the answer itself, sent as it is: boxing it would only add an allocation.
    #[allow(clippy::result_large_err)]
    pub fn admit<'a>(&'a self, parts: &'a Parts) -> Result<Admitted<'a>, Response> {
        let refuse = |e: HttpError| self.finish(&parts.headers, e.into_response());
        if !self.inner.cors.is_empty() && Cors::is_preflight(&parts.method, &parts.headers) {
            return Err(self.finish(&parts.headers, self.inner.cors.preflight(&parts.headers)));
        }
        // The order of the checks is the order of the answers: 400 (framing), 404/405,
        // 400 (ids), 401, 403, 503 draining (501 shared approvals), 403 origin, 415, 413.
        let declared = framing(parts).map_err(refuse)?;
        let target = self.target(parts).map_err(|e| {
            audit_refusal(parts, &e);
            refuse(e)
        })?;
        if matches!(parts.method, Method::POST | Method::DELETE) {
            self.same_origin(parts).map_err(refuse)?;
        }
        if parts.method == Method::POST {
            json_body(&parts.headers).map_err(refuse)?;
        }
        let limit = self.inner.hooks.body_limit();
        if declared.is_some_and(|len| len > limit) {
            return Err(refuse(HttpError::body_too_large(limit)));
        }
        Ok(Admitted {
            service: self,
            parts,
            target,
        })
    }

    /// POST and DELETE come from the page's own origin, from an origin allowed for CORS, or
    /// from no browser at all (no `Origin`): a cross-site form cannot write.
    fn same_origin(&self, parts: &Parts) -> Result<(), HttpError> {
        let Some(origin) = parts.headers.get(ORIGIN) else {
            return Ok(());
        };
        if self.inner.cors.allows_origin(origin) {
            return Ok(());
        }
        // The server may sit behind a TLS-terminating proxy, so the scheme is not compared:
        // the origin's host and port must be the request's `Host`.
        let own = origin
            .to_str()
            .ok()
            .and_then(|o| {
                o.strip_prefix("https://")
                    .or_else(|| o.strip_prefix("http://"))
            })
            .zip(parts.headers.get(HOST).and_then(|h| h.to_str().ok()))
            .is_some_and(|(authority, host)| authority.eq_ignore_ascii_case(host));
        if own {
            Ok(())
        } else {
            Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this origin may not write here; the server's --cors-origin lists the origins that may",
            ))
        }
    }

    /// Routes and checks a request's head.
    fn target<'a>(&'a self, parts: &'a Parts) -> Result<Target<'a>, HttpError> {
        let (method, path) = (&parts.method, parts.uri.path());
        let route = match Route::parse(method, path) {
            Ok(Route::Metrics) if self.inner.metrics.is_none() => {
                return Err(HttpError::not_found());
            }
            Ok(route) => route,
            Err(RouteError::NotFound) => return self.extension_target(parts),
            Err(e) => return Err(e.into_http_error()),
        };
        let headers = &parts.headers;
        let query = parts.uri.query().unwrap_or("");
        let broker = &self.inner.broker;
        let check = |sid: &SessionId, capability| self.check(sid, capability, parts);
        Ok(match route {
            Route::Stream { session } => self.stream_target(parts, &session)?,
            Route::StreamHead { session } => {
                let sid = session_id(&session)?;
                connect_options(headers, query)?;
                check(&sid, Capability::Subscribe).into_result()?;
                Target::StreamHead
            }
            Route::Publish { session } => {
                let sid = session_id(&session)?;
                check(&sid, Capability::Publish).into_result()?;
                let name = match query_param(query, "event") {
                    Some(n) => Some(event_name(&n).map_err(HttpError::from)?),
                    None => None,
                };
                not_draining(broker)?;
                Target::Publish(sid, name)
            }
            Route::CreateApproval { session } => {
                let sid = session_id(&session)?;
                check(&sid, Capability::Publish).into_result()?;
                not_draining(broker)?;
                Target::CreateApproval(sid)
            }
            Route::ApprovalStatus { session, approval } => {
                let sid = session_id(&session)?;
                let approval = approval_id(approval)?;
                let wait = wait_duration(query)?;
                // The browser that reads the session, or the publisher waiting on it.
                let browser = check(&sid, Capability::Subscribe);
                if !browser.is_allowed() && !check(&sid, Capability::Publish).is_allowed() {
                    browser.into_result()?;
                }
                Target::ApprovalStatus(sid, approval, wait)
            }
            Route::CancelApproval { session, approval } => {
                let sid = session_id(&session)?;
                let approval = approval_id(approval)?;
                check(&sid, Capability::Publish).into_result()?;
                Target::CancelApproval(sid, approval)
            }
            Route::Decide { session, approval } => {
                let sid = session_id(&session)?;
                let approval = approval_id(approval)?;
                let who = check(&sid, Capability::Subscribe).into_result()?;
                Target::Decide(sid, approval, who)
            }
            Route::Health => Target::Health,
            Route::Live => Target::Live,
            Route::Metrics => Target::Metrics,
        })
    }

    /// A stream request's session and connect options, its identity among them, once the
    /// subscriber may read the session.
    fn stream_target<'a>(&self, parts: &Parts, session: &str) -> Result<Target<'a>, HttpError> {
        let sid = session_id(session)?;
        let query = parts.uri.query().unwrap_or("");
        let opts = connect_options(&parts.headers, query)?
            .client(super::client_info(parts, self.inner.trust_forwarded));
        let who = self
            .check(&sid, Capability::Subscribe, parts)
            .into_result()?;
        // The identity decides who may take a superseded tab's place, replace its own stream
        // under Reject, and how many sessions it may create.
        let opts = match who.as_ref().and_then(Identity::subject) {
            Some(sub) => opts.identity(sub),
            None => opts,
        };
        Ok(Target::Stream(sid, opts, who))
    }

    /// The hooks' decision on `capability` for the session, from the request's head.
    fn check(&self, sid: &SessionId, capability: Capability, parts: &Parts) -> Access {
        self.inner.hooks.check(&AccessRequest {
            session: sid,
            capability,
            headers: &parts.headers,
            query: parts.uri.query().unwrap_or(""),
        })
    }

    fn extension_target<'a>(&'a self, parts: &'a Parts) -> Result<Target<'a>, HttpError> {
        let (method, path) = (&parts.method, parts.uri.path());
        for ext in &self.inner.extensions {
            match ext.route(method, path) {
                None => continue,
                Some(Err(e)) => return Err(e.into_http_error()),
                Some(Ok(())) => {
                    ext.admit(&ExtensionRequest {
                        service: self,
                        parts,
                    })?;
                    return Ok(Target::Extension(ext.as_ref()));
                }
            }
        }
        Err(HttpError::not_found())
    }

    /// The three steps for a body that arrives as a stream of chunks (hyper's, actix-web's,
    /// warp's): admit on `parts`, read at most the body limit, handle. This is all an adapter
    /// calls.
    pub async fn respond<S, B, E>(&self, parts: Parts, body: S) -> Response
    where
        S: Stream<Item = Result<B, E>>,
        B: Buf,
        E: std::fmt::Display,
    {
        match self.admit(&parts) {
            Ok(admitted) => admitted.read_and_handle(body).await,
            Err(refused) => refused,
        }
    }

    /// Admits, checks the body's length and handles: the three steps for a request whose body
    /// is already in memory (tests, and servers that buffer bodies themselves).
    pub async fn call(&self, request: http::Request<Bytes>) -> Response {
        let (parts, body) = request.into_parts();
        match self.admit(&parts) {
            Ok(admitted) if body.len() > admitted.body_limit() => admitted.body_too_large(),
            Ok(admitted) => admitted.handle(body).await,
            Err(refused) => refused,
        }
    }
}

/// The framing rules every server shares: an HTTP/1.1 request names exactly one `Host`;
/// `Content-Length` is plain digits, and several are refused unless all are the same (a
/// request smuggled past a proxy that reads the other one). Returns the declared length.
fn framing(parts: &Parts) -> Result<Option<usize>, HttpError> {
    if parts.version == http::Version::HTTP_11 && parts.headers.get_all(HOST).iter().count() != 1 {
        return Err(HttpError::bad_request(
            "invalid_host",
            "an HTTP/1.1 request must carry exactly one Host header",
        ));
    }
    let mut declared = None;
    for value in parts.headers.get_all(CONTENT_LENGTH) {
        let bytes = value.as_bytes();
        let len = (!bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(bytes).ok()?.parse::<usize>().ok())
            .flatten();
        match (len, declared) {
            (None, _) => {
                return Err(HttpError::bad_request(
                    "invalid_content_length",
                    "Content-Length must be plain digits",
                ));
            }
            (Some(n), Some(seen)) if n != seen => {
                return Err(HttpError::bad_request(
                    "invalid_content_length",
                    "the request carries different Content-Length values",
                ));
            }
            (Some(n), _) => declared = Some(n),
        }
    }
    Ok(declared)
}

/// POST bodies are JSON, so a browser must preflight a cross-site write (a form can send only
/// `text/plain`, `multipart/form-data` or `application/x-www-form-urlencoded`).
fn json_body(headers: &HeaderMap) -> Result<(), HttpError> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as `Content-Type: application/json`",
        ))
    }
}

/// Counts a refused request in `sse_auth_failures_total{route,reason}` and logs it, at most
/// once a minute per client address.
fn audit_refusal(parts: &Parts, error: &HttpError) {
    let reason = match (error.status(), error.code()) {
        (StatusCode::UNAUTHORIZED, "invalid_token") => "invalid_token",
        (StatusCode::UNAUTHORIZED, _) => "no_credentials",
        (StatusCode::FORBIDDEN, _) => "forbidden",
        (StatusCode::BAD_REQUEST, "invalid_user_header") => "bad_request",
        _ => return,
    };
    let route = route_label(parts.uri.path());
    metrics::counter!("sse_auth_failures_total", "route" => route, "reason" => reason).increment(1);
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
    if super::audit::due(peer) {
        tracing::warn!(
            route,
            reason,
            client_addr = ?peer,
            "SSE auth refused"
        );
    }
}

fn route_label(path: &str) -> &'static str {
    if path.starts_with("/api/sse/") {
        "stream"
    } else if path.contains("/decision") {
        "decision"
    } else if path.contains("/approvals") {
        "approvals"
    } else if path.contains("/events") {
        "publish"
    } else if path.starts_with("/api/agui/") {
        "agui_run"
    } else {
        "other"
    }
}

/// The client's socket address, which a server puts in the request's extensions so refusals
/// can be logged per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

fn not_draining(broker: &Broker) -> Result<(), HttpError> {
    if broker.is_draining() {
        Err(handlers::draining(broker))
    } else {
        Ok(())
    }
}

fn approval_id(raw: String) -> Result<String, HttpError> {
    if is_valid_id(&raw) {
        Ok(raw)
    } else {
        Err(InvalidId::new(crate::id::IdKind::ApprovalId).into())
    }
}

/// Adds `"mode"` to a health answer.
fn with_mode(res: Response, mode: Option<&'static str>) -> Response {
    let Some(mode) = mode else { return res };
    let (parts, body) = res.into_parts();
    let mut value: serde_json::Value = body
        .as_full()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    value["mode"] = mode.into();
    let bytes = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    Response::from_parts(parts, super::Body::Full(bytes))
}

/// A route with its checked parameters.
enum Target<'a> {
    Stream(SessionId, ConnectOptions, Option<Identity>),
    StreamHead,
    Publish(SessionId, Option<EventName>),
    CreateApproval(SessionId),
    ApprovalStatus(SessionId, String, Duration),
    CancelApproval(SessionId, String),
    Decide(SessionId, String, Option<Identity>),
    Health,
    Live,
    Metrics,
    Extension(&'a dyn RouteExtension),
}

/// A request admitted on its head (see [`Service::admit`]): read its body, then
/// [`handle`](Self::handle) it.
#[must_use = "an admitted request is answered by `handle`"]
pub struct Admitted<'a> {
    service: &'a Service,
    parts: &'a Parts,
    target: Target<'a>,
}

impl std::fmt::Debug for Admitted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("method", &self.parts.method)
            .field("path", &self.parts.uri.path())
            .finish_non_exhaustive()
    }
}

impl Admitted<'_> {
    /// The most body bytes the server may read for this request; past it, answer
    /// [`body_too_large`](Self::body_too_large) without reading on.
    pub fn body_limit(&self) -> usize {
        self.service.inner.hooks.body_limit()
    }

    /// Whether the request is a `HEAD`: the server sends the answer's head only.
    pub fn is_head(&self) -> bool {
        self.parts.method == Method::HEAD
    }

    /// The 413 for a body that grew past [`body_limit`](Self::body_limit) while it was read.
    pub fn body_too_large(self) -> Response {
        self.refuse(HttpError::body_too_large(self.body_limit()))
    }

    /// The 400 for a body that could not be read (the client broke off, bad chunking).
    pub fn unreadable_body(self, why: impl std::fmt::Display) -> Response {
        self.refuse(HttpError::bad_request(
            "invalid_body",
            format!("could not read the body: {why}"),
        ))
    }

    fn refuse(&self, e: HttpError) -> Response {
        self.service.finish(&self.parts.headers, e.into_response())
    }

    /// Steps two and three: reads a body that arrives as a stream of chunks, stopping at the
    /// body limit (413), then handles the request.
    pub async fn read_and_handle<S, B, E>(self, body: S) -> Response
    where
        S: Stream<Item = Result<B, E>>,
        B: Buf,
        E: std::fmt::Display,
    {
        let limit = self.body_limit();
        let mut body = std::pin::pin!(body);
        let mut out = BytesMut::new();
        while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
            let mut chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => return self.unreadable_body(e),
            };
            if out.len() + chunk.remaining() > limit {
                return self.body_too_large();
            }
            while chunk.has_remaining() {
                let part = chunk.chunk();
                out.extend_from_slice(part);
                let n = part.len();
                chunk.advance(n);
            }
        }
        self.handle(out.freeze()).await
    }

    /// Step three: the answer, given the request's body.
    pub async fn handle(self, body: Bytes) -> Response {
        let service = self.service;
        let inner = &service.inner;
        let call = handlers::Call {
            broker: &inner.broker,
            hooks: &inner.hooks,
            headers: &self.parts.headers,
            backplane: inner.backplane.as_deref(),
        };
        let res = match self.target {
            Target::Stream(sid, opts, who) => {
                handlers::stream(&call, &sid, opts, who.as_ref()).await
            }
            Target::StreamHead => handlers::stream_head(&call),
            Target::Publish(sid, name) => {
                handlers::publish(&call, &sid, name.as_ref(), &body).await
            }
            Target::CreateApproval(sid) => handlers::create_approval(&call, &sid, &body).await,
            Target::ApprovalStatus(sid, id, wait) => {
                handlers::approval_status(&call, &sid, &id, wait).await
            }
            Target::CancelApproval(sid, id) => handlers::cancel_approval(&call, &sid, &id).await,
            Target::Decide(sid, id, who) => {
                handlers::decide(&call, &sid, &id, &body, who.as_ref()).await
            }
            Target::Health => with_mode(
                handlers::health(&inner.broker, inner.backplane.as_deref()),
                inner.mode,
            ),
            Target::Live => handlers::live(),
            Target::Metrics => {
                handlers::metrics(inner.metrics.as_deref().map(|f| f()).unwrap_or_default())
            }
            Target::Extension(ext) => {
                let request = ExtensionRequest {
                    service,
                    parts: self.parts,
                };
                ext.handle(request, body).await
            }
        };
        service.finish(&self.parts.headers, res)
    }
}
