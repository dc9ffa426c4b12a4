//! The hub's routes: every route of the HTTP contract, `/metrics`, CORS, dispatched onto the
//! framework-neutral handlers of `tether_core::http`.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use tether_core::Broker;
use tether_core::http::{self as th, Body, Cors, Hooks, HttpError};

/// Everything a request needs.
pub(crate) struct Hub {
    pub(crate) broker: Broker,
    pub(crate) hooks: Hooks,
    pub(crate) cors: Cors,
    pub(crate) metrics: Option<PrometheusHandle>,
}

/// A request as the connection loop parsed it.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Which route a path names, with its (still percent-encoded) parameters.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Subscribe(&'a str),
    Events(&'a str),
    Approvals(&'a str),
    Approval(&'a str, &'a str),
    Decision(&'a str, &'a str),
    Health,
    Metrics,
}

impl Route<'_> {
    fn parse(path: &str) -> Option<Route<'_>> {
        let mut it = path.strip_prefix('/')?.split('/');
        let segments: [Option<&str>; 7] = std::array::from_fn(|_| it.next());
        Some(match segments {
            [Some("api"), Some("sse"), Some("session"), Some(s), None, ..] => Route::Subscribe(s),
            [
                Some("api"),
                Some("sessions"),
                Some(s),
                Some("events"),
                None,
                ..,
            ] => Route::Events(s),
            [
                Some("api"),
                Some("sessions"),
                Some(s),
                Some("approvals"),
                None,
                ..,
            ] => Route::Approvals(s),
            [
                Some("api"),
                Some("sessions"),
                Some(s),
                Some("approvals"),
                Some(a),
                None,
                ..,
            ] => Route::Approval(s, a),
            [
                Some("api"),
                Some("sessions"),
                Some(s),
                Some("approvals"),
                Some(a),
                Some("decision"),
                None,
            ] => Route::Decision(s, a),
            [Some("health"), Some("sse"), None, ..] => Route::Health,
            [Some("metrics"), None, ..] => Route::Metrics,
            _ => return None,
        })
    }

    fn allowed(&self) -> &'static str {
        match self {
            Route::Subscribe(_) | Route::Health | Route::Metrics => "GET",
            Route::Events(_) | Route::Approvals(_) | Route::Decision(..) => "POST",
            Route::Approval(..) => "GET, DELETE",
        }
    }
}

fn decode(segment: &str) -> Cow<'_, str> {
    th::percent_decode(segment)
}

fn method_not_allowed(allow: &'static str) -> th::Response {
    let mut res = HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route answers {allow}"),
    )
    .into_response();
    res.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    res
}

impl Hub {
    /// Answers one request.
    pub(crate) async fn handle(&self, req: &Request<'_>) -> th::Response {
        if !self.cors.is_empty() && Cors::is_preflight(&req.method, &req.headers) {
            return self.cors.preflight(&req.headers);
        }
        let mut res = self.route(req).await;
        if !self.cors.is_empty() {
            self.cors.decorate(&req.headers, res.headers_mut());
        }
        res
    }

    async fn route(&self, req: &Request<'_>) -> th::Response {
        let (b, h) = (&self.broker, &self.hooks);
        let Some(route) = Route::parse(req.path) else {
            return HttpError::not_found().into_response();
        };
        let (m, headers, query, body) = (&req.method, &req.headers, req.query, &req.body[..]);
        match (&route, m) {
            (Route::Subscribe(s), &Method::GET) => th::subscribe(b, h, &decode(s), headers, query),
            (Route::Events(s), &Method::POST) => {
                th::publish(b, h, &decode(s), headers, query, body)
            }
            (Route::Approvals(s), &Method::POST) => {
                th::create_approval(b, h, &decode(s), headers, body)
            }
            (Route::Approval(s, a), &Method::GET) => {
                th::approval_status(b, h, &decode(s), &decode(a), headers, query).await
            }
            (Route::Approval(s, a), &Method::DELETE) => {
                th::cancel_approval(b, h, &decode(s), &decode(a), headers)
            }
            (Route::Decision(s, a), &Method::POST) => {
                th::decide(b, h, &decode(s), &decode(a), headers, body)
            }
            (Route::Health, &Method::GET) => th::health(b),
            (Route::Metrics, &Method::GET) => self.render_metrics(),
            _ => method_not_allowed(route.allowed()),
        }
    }

    fn render_metrics(&self) -> th::Response {
        let text = self
            .metrics
            .as_ref()
            .map(|m| m.render())
            .unwrap_or_default();
        let mut res = http::Response::new(Body::Full(Bytes::from(text)));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_of_the_contract() {
        assert_eq!(
            Route::parse("/api/sse/session/s1"),
            Some(Route::Subscribe("s1"))
        );
        assert_eq!(
            Route::parse("/api/sessions/s1/events"),
            Some(Route::Events("s1"))
        );
        assert_eq!(
            Route::parse("/api/sessions/s1/approvals"),
            Some(Route::Approvals("s1"))
        );
        assert_eq!(
            Route::parse("/api/sessions/s1/approvals/a1"),
            Some(Route::Approval("s1", "a1"))
        );
        assert_eq!(
            Route::parse("/api/sessions/s1/approvals/a1/decision"),
            Some(Route::Decision("s1", "a1"))
        );
        assert_eq!(Route::parse("/health/sse"), Some(Route::Health));
        assert_eq!(Route::parse("/metrics"), Some(Route::Metrics));
        for other in [
            "",
            "/",
            "/api/sse/session",
            "/api/sse/session/s1/extra",
            "/api/sessions/s1/approvals/a1/decision/x",
            "/metrics/x",
            "api/sse/session/s1",
        ] {
            assert_eq!(Route::parse(other), None, "{other}");
        }
    }
}
