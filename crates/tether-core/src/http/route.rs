//! The contract's routes: which one a method and a path name, once for every server.

use http::{HeaderValue, Method, StatusCode};

use super::request::percent_decode;
use super::{HttpError, routes};

/// A route of the HTTP contract, with its path parameters percent-decoded (their grammar is
/// checked by [`Service::admit`](super::Service::admit), which answers 400 outside it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// `GET /api/sse/session/{session_id}`: the session's event stream.
    Stream {
        /// The session id.
        session: String,
    },
    /// `HEAD /api/sse/session/{session_id}`: the stream's status and headers, without
    /// connecting.
    StreamHead {
        /// The session id.
        session: String,
    },
    /// `POST /api/sessions/{session_id}/events`: publish one event or a batch.
    Publish {
        /// The session id.
        session: String,
    },
    /// `POST /api/sessions/{session_id}/approvals`: create an approval request.
    CreateApproval {
        /// The session id.
        session: String,
    },
    /// `GET /api/sessions/{session_id}/approvals/{approval_id}`: its status (long-poll).
    ApprovalStatus {
        /// The session id.
        session: String,
        /// The approval id.
        approval: String,
    },
    /// `DELETE /api/sessions/{session_id}/approvals/{approval_id}`: cancel it.
    CancelApproval {
        /// The session id.
        session: String,
        /// The approval id.
        approval: String,
    },
    /// `POST /api/sessions/{session_id}/approvals/{approval_id}/decision`: a human's decision.
    Decide {
        /// The session id.
        session: String,
        /// The approval id.
        approval: String,
    },
    /// `GET /health/sse` (or `HEAD`): health for probes.
    Health,
    /// `GET /health/live` (or `HEAD`): liveness: 200 while the process serves requests, draining
    /// or not, so an orchestrator restarts a hung process but never one that drains.
    Live,
    /// `GET /metrics` (or `HEAD`): Prometheus text, where the server mounts it.
    Metrics,
}

/// Why a method and path name no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No route has this path (404).
    NotFound,
    /// The path is a route, but not for this method (405 with `Allow`).
    MethodNotAllowed {
        /// The methods the path answers, for the `Allow` header.
        allow: &'static str,
    },
}

impl RouteError {
    /// The JSON answer: 404 `not_found`, or 405 `method_not_allowed` with `Allow`.
    pub fn into_http_error(self) -> HttpError {
        match self {
            Self::NotFound => HttpError::not_found(),
            Self::MethodNotAllowed { allow } => HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this route answers {allow}"),
            )
            .with_header(http::header::ALLOW, HeaderValue::from_static(allow)),
        }
    }
}

/// The path prefixes of the contract. A server that mounts tether beside an application's own
/// routes claims these, [`EXACT_PATHS`] and (when mounted) `/metrics`, and nothing else; see
/// [`claims`].
pub const PREFIXES: [&str; 3] = ["/api/sse/", "/api/sessions/", "/api/agui/"];

/// The exact paths of the contract: readiness and liveness.
pub const EXACT_PATHS: [&str; 2] = [routes::HEALTH, routes::LIVE];

/// Whether `path` belongs to tether (a prefix of [`PREFIXES`], one of [`EXACT_PATHS`], or
/// `/metrics` when `with_metrics`), so an adapter passes every other path to the application.
pub fn claims(path: &str, with_metrics: bool) -> bool {
    PREFIXES.iter().any(|p| path.starts_with(p))
        || EXACT_PATHS.contains(&path)
        || (with_metrics && path == "/metrics")
}

fn decoded(segment: &str) -> String {
    percent_decode(segment).into_owned()
}

/// The methods a path's route answers, and the route for `method` if it is one of them.
fn by_method(
    method: &Method,
    allow: &'static str,
    pick: impl FnOnce(&Method) -> Option<Route>,
) -> Result<Route, RouteError> {
    pick(method).ok_or(RouteError::MethodNotAllowed { allow })
}

impl Route {
    /// The route `method` and `path` (without the query) name. Preflights (`OPTIONS` with
    /// `Access-Control-Request-Method`) are answered before routing, by the CORS settings.
    ///
    /// ```
    /// use http::Method;
    /// use tether_core::http::{Route, RouteError};
    ///
    /// assert_eq!(
    ///     Route::parse(&Method::GET, "/api/sse/session/chat%2D1"),
    ///     Ok(Route::Stream { session: "chat-1".into() })
    /// );
    /// assert_eq!(
    ///     Route::parse(&Method::POST, "/api/sse/session/chat-1"),
    ///     Err(RouteError::MethodNotAllowed { allow: "GET, HEAD" })
    /// );
    /// assert_eq!(Route::parse(&Method::GET, "/elsewhere"), Err(RouteError::NotFound));
    /// ```
    pub fn parse(method: &Method, path: &str) -> Result<Route, RouteError> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(RouteError::NotFound);
        };
        let mut it = rest.split('/');
        let segments: [Option<&str>; 7] = std::array::from_fn(|_| it.next());
        let nonempty = |s: &str| !s.is_empty();
        match segments {
            [Some("api"), Some("sse"), Some("session"), Some(s), None, ..] if nonempty(s) => {
                by_method(method, "GET, HEAD", |m| match *m {
                    Method::GET => Some(Route::Stream {
                        session: decoded(s),
                    }),
                    Method::HEAD => Some(Route::StreamHead {
                        session: decoded(s),
                    }),
                    _ => None,
                })
            }
            [
                Some("api"),
                Some("sessions"),
                Some(s),
                Some(kind @ ("events" | "approvals")),
                None,
                ..,
            ] if nonempty(s) => by_method(method, "POST", |m| {
                (*m == Method::POST).then(|| {
                    let session = decoded(s);
                    if kind == "events" {
                        Route::Publish { session }
                    } else {
                        Route::CreateApproval { session }
                    }
                })
            }),
            [
                Some("api"),
                Some("sessions"),
                Some(s),
                Some("approvals"),
                Some(a),
                None,
                ..,
            ] if nonempty(s) && nonempty(a) => by_method(method, "GET, DELETE", |m| {
                let (session, approval) = (decoded(s), decoded(a));
                match *m {
                    Method::GET => Some(Route::ApprovalStatus { session, approval }),
                    Method::DELETE => Some(Route::CancelApproval { session, approval }),
                    _ => None,
                }
            }),
            [
                Some("api"),
                Some("sessions"),
                Some(s),
                Some("approvals"),
                Some(a),
                Some("decision"),
                None,
            ] if nonempty(s) && nonempty(a) => by_method(method, "POST", |m| {
                (*m == Method::POST).then(|| Route::Decide {
                    session: decoded(s),
                    approval: decoded(a),
                })
            }),
            [Some("health"), Some("sse"), None, ..] => by_method(method, "GET, HEAD", |m| {
                (*m == Method::GET || *m == Method::HEAD).then_some(Route::Health)
            }),
            [Some("health"), Some("live"), None, ..] => by_method(method, "GET, HEAD", |m| {
                (*m == Method::GET || *m == Method::HEAD).then_some(Route::Live)
            }),
            [Some("metrics"), None, ..] => by_method(method, "GET, HEAD", |m| {
                (*m == Method::GET || *m == Method::HEAD).then_some(Route::Metrics)
            }),
            _ => Err(RouteError::NotFound),
        }
    }

    /// Whether the route reads a request body.
    pub fn takes_body(&self) -> bool {
        matches!(
            self,
            Route::Publish { .. } | Route::CreateApproval { .. } | Route::Decide { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Result<Route, RouteError> {
        Route::parse(&Method::GET, path)
    }

    #[test]
    fn every_route_of_the_contract() {
        let s = || "s1".to_owned();
        let a = || "a1".to_owned();
        assert_eq!(
            get("/api/sse/session/s1"),
            Ok(Route::Stream { session: s() })
        );
        assert_eq!(
            Route::parse(&Method::HEAD, "/api/sse/session/s1"),
            Ok(Route::StreamHead { session: s() })
        );
        assert_eq!(
            Route::parse(&Method::POST, "/api/sessions/s1/events"),
            Ok(Route::Publish { session: s() })
        );
        assert_eq!(
            Route::parse(&Method::POST, "/api/sessions/s1/approvals"),
            Ok(Route::CreateApproval { session: s() })
        );
        assert_eq!(
            get("/api/sessions/s1/approvals/a1"),
            Ok(Route::ApprovalStatus {
                session: s(),
                approval: a()
            })
        );
        assert_eq!(
            Route::parse(&Method::DELETE, "/api/sessions/s1/approvals/a1"),
            Ok(Route::CancelApproval {
                session: s(),
                approval: a()
            })
        );
        assert_eq!(
            Route::parse(&Method::POST, "/api/sessions/s1/approvals/a1/decision"),
            Ok(Route::Decide {
                session: s(),
                approval: a()
            })
        );
        assert_eq!(get("/health/sse"), Ok(Route::Health));
        assert_eq!(get("/health/live"), Ok(Route::Live));
        assert_eq!(
            Route::parse(&Method::HEAD, "/health/sse"),
            Ok(Route::Health)
        );
        assert_eq!(get("/metrics"), Ok(Route::Metrics));
    }

    #[test]
    fn wrong_methods_name_what_the_path_allows() {
        let allow = |m: Method, p: &str| match Route::parse(&m, p) {
            Err(RouteError::MethodNotAllowed { allow }) => allow,
            other => panic!("{m} {p}: {other:?}"),
        };
        assert_eq!(allow(Method::POST, "/api/sse/session/s"), "GET, HEAD");
        assert_eq!(allow(Method::GET, "/api/sessions/s/events"), "POST");
        assert_eq!(allow(Method::PUT, "/api/sessions/s/approvals"), "POST");
        assert_eq!(
            allow(Method::POST, "/api/sessions/s/approvals/a"),
            "GET, DELETE"
        );
        assert_eq!(
            allow(Method::GET, "/api/sessions/s/approvals/a/decision"),
            "POST"
        );
        assert_eq!(allow(Method::DELETE, "/health/sse"), "GET, HEAD");
    }

    #[test]
    fn other_paths_are_not_found() {
        for other in [
            "",
            "/",
            "/api/sse/session",
            "/api/sse/session/",
            "/api/sse/session/s1/extra",
            "/api/sessions//events",
            "/api/sessions/s1/approvals/a1/decision/x",
            "/metrics/x",
            "api/sse/session/s1",
            "/health/sse/",
        ] {
            assert_eq!(get(other), Err(RouteError::NotFound), "{other}");
        }
    }

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(
            get("/api/sessions/a%3Ab/approvals/x%2Dy"),
            Ok(Route::ApprovalStatus {
                session: "a:b".into(),
                approval: "x-y".into()
            })
        );
    }

    #[test]
    fn tether_claims_only_its_paths() {
        assert!(claims("/api/sse/session/x", false));
        assert!(claims("/api/sessions/x/events", false));
        assert!(claims("/api/agui/run", false));
        assert!(claims("/health/sse", false));
        assert!(!claims("/metrics", false));
        assert!(claims("/metrics", true));
        assert!(!claims("/", true));
        assert!(!claims("/api/users", true));
        assert!(!claims("/health", true));
    }
}
