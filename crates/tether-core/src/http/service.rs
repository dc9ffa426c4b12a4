//! The one request path of every server: route and admit on the head, then read the body,
//! then handle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http::{HeaderMap, Method};

use super::handlers;
use super::request::{connect_options, session_id, wait_duration};
use super::route::{self, Route, RouteError};
use super::{Access, Cors, Hooks, HttpError, Response, query_param};
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
/// let service = Service::new(Broker::builder().start(), Hooks::allow_all());
/// let request = http::Request::post("/api/sessions/chat-1/events")
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
        let target = self.target(parts).map_err(refuse)?;
        let limit = self.inner.hooks.body_limit();
        if let Some(len) = declared_length(&parts.headers)
            && len > limit
        {
            return Err(refuse(HttpError::body_too_large(limit)));
        }
        Ok(Admitted {
            service: self,
            parts,
            target,
        })
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
        let (hooks, headers) = (&self.inner.hooks, &parts.headers);
        let query = parts.uri.query().unwrap_or("");
        let broker = &self.inner.broker;
        Ok(match route {
            Route::Stream { session } => {
                let sid = session_id(&session)?;
                hooks.authorize(&sid, headers).into_result()?;
                Target::Stream(sid, connect_options(headers, query)?)
            }
            Route::StreamHead { session } => {
                let sid = session_id(&session)?;
                hooks.authorize(&sid, headers).into_result()?;
                connect_options(headers, query)?;
                Target::StreamHead
            }
            Route::Publish { session } => {
                let sid = self.publisher(&session, headers)?;
                let name = match query_param(query, "event") {
                    Some(n) => Some(event_name(&n).map_err(HttpError::from)?),
                    None => None,
                };
                not_draining(broker)?;
                Target::Publish(sid, name)
            }
            Route::CreateApproval { session } => {
                let sid = self.publisher(&session, headers)?;
                not_draining(broker)?;
                Target::CreateApproval(sid)
            }
            Route::ApprovalStatus { session, approval } => {
                let sid = session_id(&session)?;
                let approval = approval_id(approval)?;
                self.status_access(&sid, headers)?;
                Target::ApprovalStatus(sid, approval, wait_duration(query)?)
            }
            Route::CancelApproval { session, approval } => {
                let sid = session_id(&session)?;
                let approval = approval_id(approval)?;
                hooks.authenticate_publisher(&sid, headers).into_result()?;
                Target::CancelApproval(sid, approval)
            }
            Route::Decide { session, approval } => {
                let sid = session_id(&session)?;
                let approval = approval_id(approval)?;
                hooks.authorize(&sid, headers).into_result()?;
                Target::Decide(sid, approval)
            }
            Route::Health => Target::Health,
            Route::Metrics => Target::Metrics,
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

    /// A publisher's session: valid id, authenticated publisher.
    fn publisher(&self, session: &str, headers: &HeaderMap) -> Result<SessionId, HttpError> {
        let sid = session_id(session)?;
        self.inner
            .hooks
            .authenticate_publisher(&sid, headers)
            .into_result()?;
        Ok(sid)
    }

    /// The status route is for the publisher waiting on a decision and for the session's own
    /// browser: a request passes if the authorizer admits it to the session, or if publisher
    /// authentication is configured and accepts it.
    fn status_access(&self, sid: &SessionId, headers: &HeaderMap) -> Result<(), HttpError> {
        let hooks = &self.inner.hooks;
        let browser = hooks.authorize(sid, headers);
        if browser.is_allowed() {
            return Ok(());
        }
        if hooks.publisher.is_some() && hooks.authenticate_publisher(sid, headers) == Access::Allow
        {
            return Ok(());
        }
        browser.into_result()
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

/// A request's `Content-Length`, when it is one plain number.
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

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
        Err(InvalidId {
            what: "approval id",
        }
        .into())
    }
}

/// A route with its checked parameters.
enum Target<'a> {
    Stream(SessionId, ConnectOptions),
    StreamHead,
    Publish(SessionId, Option<EventName>),
    CreateApproval(SessionId),
    ApprovalStatus(SessionId, String, Duration),
    CancelApproval(SessionId, String),
    Decide(SessionId, String),
    Health,
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
        };
        let res = match self.target {
            Target::Stream(sid, opts) => handlers::stream(&call, &sid, opts),
            Target::StreamHead => handlers::stream_head(&call),
            Target::Publish(sid, name) => handlers::publish(&call, &sid, name.as_ref(), &body),
            Target::CreateApproval(sid) => handlers::create_approval(&call, &sid, &body),
            Target::ApprovalStatus(sid, id, wait) => {
                handlers::approval_status(&call, &sid, &id, wait).await
            }
            Target::CancelApproval(sid, id) => handlers::cancel_approval(&call, &sid, &id),
            Target::Decide(sid, id) => handlers::decide(&call, &sid, &id, &body),
            Target::Health => handlers::health(&inner.broker),
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
