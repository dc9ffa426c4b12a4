//! Cross-origin access for browsers on other origins.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::{Body, Response};

/// The origins whose pages may use the routes from a browser.
///
/// Listed origins get `Access-Control-Allow-Origin: <origin>` with credentials allowed (so
/// `new EventSource(url, {withCredentials: true})` works with cookies); `*` allows any origin
/// without credentials.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<HeaderValue>,
    any: bool,
}

impl Cors {
    /// Allows `origins` (e.g. `https://app.example.com`; `*` for any, without credentials).
    /// Values that are not valid header values are ignored.
    pub fn new<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut cors = Self::default();
        for o in origins {
            let o = o.as_ref().trim().trim_end_matches('/');
            if o == "*" {
                cors.any = true;
            } else if let Ok(v) = HeaderValue::from_str(o) {
                cors.origins.push(v);
            }
        }
        cors
    }

    /// Whether no origin is allowed (nothing to do).
    pub fn is_empty(&self) -> bool {
        !self.any && self.origins.is_empty()
    }

    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<(&'a HeaderValue, bool)> {
        let origin = headers.get(ORIGIN)?;
        if self.origins.iter().any(|o| o == origin) {
            Some((origin, true))
        } else if self.any {
            Some((origin, false))
        } else {
            None
        }
    }

    /// Whether `origin` (an `Origin` header's value) is one this server lets use its routes
    /// cross-site: a listed origin, or any with `*`.
    pub fn allows_origin(&self, origin: &HeaderValue) -> bool {
        self.any || self.origins.iter().any(|o| o == origin)
    }

    /// Whether a request is a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`).
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight: 204, with the allow headers when the origin is allowed.
    pub fn preflight(&self, headers: &HeaderMap) -> Response {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NO_CONTENT;
        self.decorate(headers, res.headers_mut());
        if self.allowed(headers).is_some() {
            let h = res.headers_mut();
            h.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
            );
            let asked = headers
                .get(ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned()
                .unwrap_or_else(|| {
                    HeaderValue::from_static("authorization, content-type, last-event-id")
                });
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked);
            h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        res
    }

    /// Adds the CORS headers for the request's origin to a response.
    pub fn decorate(&self, request: &HeaderMap, response: &mut HeaderMap) {
        response.append(VARY, HeaderValue::from_static("origin"));
        if let Some((origin, credentials)) = self.allowed(request) {
            if credentials {
                response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                response.insert(
                    ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            } else {
                response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, o.parse().unwrap());
        h
    }

    #[test]
    fn listed_origin_gets_credentials() {
        let cors = Cors::new(["https://app.example/"]);
        let mut res = HeaderMap::new();
        cors.decorate(&origin("https://app.example"), &mut res);
        assert_eq!(res[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(res[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let mut res = HeaderMap::new();
        cors.decorate(&origin("https://evil.example"), &mut res);
        assert!(res.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }

    #[test]
    fn any_origin_without_credentials() {
        let cors = Cors::new(["*"]);
        let mut req = origin("https://x.example");
        req.insert(ACCESS_CONTROL_REQUEST_METHOD, "POST".parse().unwrap());
        assert!(Cors::is_preflight(&Method::OPTIONS, &req));
        let res = cors.preflight(&req);
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(
            res.headers()
                .get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
                .is_none()
        );
        assert!(res.headers().contains_key(ACCESS_CONTROL_ALLOW_METHODS));
    }
}
