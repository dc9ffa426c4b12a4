//! The backplane's settings.

use std::time::Duration;

/// Settings of a [`RedisBackplane`](crate::RedisBackplane). Build with [`RedisConfig::new`]
/// and the setters; every setter's doc states its default.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisConfig {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) node_id: String,
    pub(crate) op_deadline: Duration,
    pub(crate) health_interval: Duration,
    pub(crate) head_check_interval: Duration,
    pub(crate) inline_max: usize,
    pub(crate) log_max_events: Option<usize>,
    pub(crate) log_max_bytes: Option<usize>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) read_batch: usize,
    pub(crate) push_queue: usize,
}

impl RedisConfig {
    /// Settings for the Redis at `url`: `redis://[user:password@]host:port[/db]` (an ACL user
    /// and password in the URL are used for `AUTH`) or `redis+unix:///path`. `rediss://`
    /// (TLS) needs this crate's `tls` feature; the server's certificate is checked against the
    /// system's CA certificates (or those in the file `SSL_CERT_FILE` names). The node id defaults to [`default_node_id`] with port 0; set it with
    /// [`node_id`](Self::node_id).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "tether".to_owned(),
            node_id: default_node_id("0"),
            op_deadline: Duration::from_secs(2),
            health_interval: Duration::from_secs(1),
            head_check_interval: Duration::from_secs(15),
            inline_max: 16 * 1024,
            log_max_events: None,
            log_max_bytes: None,
            ttl: None,
            read_batch: 512,
            push_queue: 65_536,
        }
    }

    /// Settings from the environment: `TETHER_REDIS_URL` (required), `TETHER_REDIS_PREFIX`
    /// and `TETHER_NODE_ID` (optional). `None` when `TETHER_REDIS_URL` is unset.
    pub fn from_env() -> Option<Self> {
        let url = std::env::var("TETHER_REDIS_URL").ok()?;
        let mut c = Self::new(url);
        if let Ok(p) = std::env::var("TETHER_REDIS_PREFIX") {
            c = c.prefix(p);
        }
        if let Ok(n) = std::env::var("TETHER_NODE_ID") {
            c = c.node_id(n);
        }
        Some(c)
    }

    /// The key prefix, so two deployments can share one Redis (`--redis-prefix`). Keys are
    /// `<prefix>:{s:<sid>}:log` and `<prefix>:{s:<sid>}:meta`; a node's channel is
    /// `<prefix>:node:<node-id>`. Default is `tether`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This node's id (`--node-id`, `TETHER_NODE_ID`). It must be unique among the nodes on
    /// one Redis and should change with every process start, so a restarted process
    /// inherits nothing of the dead one. Default is [`default_node_id`]`("0")`.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = id.into();
        self
    }

    /// Longest a publish or connect waits for Redis before it fails with
    /// [`BackplaneError::Unavailable`](tether_core::BackplaneError::Unavailable). Default is
    /// 2 seconds.
    pub fn op_deadline(mut self, d: Duration) -> Self {
        self.op_deadline = d;
        self
    }

    /// How often both links are pinged (health, and the reconnect of an idle link). Default
    /// is 1 second.
    pub fn health_interval(mut self, d: Duration) -> Self {
        self.health_interval = d;
        self
    }

    /// How often the heads of the sessions connected to this node are compared with Redis's,
    /// to find a wake that pub/sub lost (it is at-most-once) and data Redis lost. Default is
    /// 15 seconds.
    pub fn head_check_interval(mut self, d: Duration) -> Self {
        self.head_check_interval = d;
        self
    }

    /// Largest batch of frames a wake carries inline; above it the wake carries only the
    /// position and the node reads the frames from the log. Default is 16 KiB.
    pub fn inline_max(mut self, bytes: usize) -> Self {
        self.inline_max = bytes;
        self
    }

    /// Bound of each session's log by event count. Default is the broker's
    /// `ring_max_events`, so the log and the rings hold the same window.
    pub fn log_max_events(mut self, n: usize) -> Self {
        self.log_max_events = Some(n.max(1));
        self
    }

    /// Bound of each session's log by bytes. Default is the broker's `ring_max_bytes`.
    pub fn log_max_bytes(mut self, n: usize) -> Self {
        self.log_max_bytes = Some(n.max(1));
        self
    }

    /// TTL of a session's keys: they outlive every append, connect and head check by at
    /// least this, and by at most an eighth more (an append refreshes them only once an
    /// eighth of the TTL passed since the last refresh it made). Default is the broker's
    /// `session_ttl`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Entries read from the log per round trip when a node catches up. Default is 512.
    pub fn read_batch(mut self, n: usize) -> Self {
        self.read_batch = n.max(1);
        self
    }

    /// Pub/sub messages queued for the node's ingest task; on overflow messages are dropped
    /// and a catch-up pass repairs what they carried. Default is 65,536.
    pub fn push_queue(mut self, n: usize) -> Self {
        self.push_queue = n.max(1);
        self
    }

    /// The node id in use.
    pub fn get_node_id(&self) -> &str {
        &self.node_id
    }

    /// The key prefix in use.
    pub fn get_prefix(&self) -> &str {
        &self.prefix
    }
}

/// A fresh node id: `<host>:<port>-<6 random hex digits>`, where host is the machine's
/// host name (`HOSTNAME`, else `/etc/hostname`, else `localhost`). The random part makes
/// every process start a new node, so a restarted process inherits no ownership and no
/// wakes of the dead one.
pub fn default_node_id(port: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let suffix = rand::random::<u32>() & 0xff_ffff;
    format!("{host}:{port}-{suffix:06x}")
}

/// A Redis URL this build cannot open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Redis URL {url}: {reason}")]
pub struct InvalidUrl {
    /// The URL, with any password replaced by `***`.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks that `url` is a Redis URL this build can open (`redis://[user:password@]host:port[/db]`,
/// `redis+unix:///path`, and with the `tls` feature `rediss://`), without connecting. Without
/// the `tls` feature `rediss://` is refused with a reason saying so.
///
/// ```
/// assert!(tether_redis::check_url("redis://app:pw@127.0.0.1:6379/0").is_ok());
/// let e = tether_redis::check_url("redis://app:pw@").unwrap_err();
/// assert!(!e.to_string().contains("pw"));
/// ```
///
/// # Errors
/// [`InvalidUrl`], whose text never contains the password.
pub fn check_url(url: &str) -> Result<(), InvalidUrl> {
    use redis::IntoConnectionInfo;
    let invalid = |reason: String| InvalidUrl {
        url: redact_url(url),
        reason,
    };
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("redis" | "redis+unix" | "unix" | "valkey" | "valkey+unix") => {}
        Some("rediss" | "valkeys") if cfg!(feature = "tls") => {}
        Some("rediss" | "valkeys") => {
            return Err(invalid(
                "TLS (rediss://) needs tether-redis's `tls` feature, which this build lacks".into(),
            ));
        }
        _ => {
            return Err(invalid(
                "expected redis://[user:password@]host:port[/db] or redis+unix:///path".into(),
            ));
        }
    }
    url.into_connection_info()
        .map(|_| ())
        .map_err(|e| invalid(scrub(&e.to_string(), url)))
}

/// Removes the URL's password from a message, should a library have quoted it.
fn scrub(message: &str, url: &str) -> String {
    match password_span(url) {
        Some((from, to)) if to > from => message.replace(&url[from..to], "***"),
        _ => message.to_owned(),
    }
}

/// Where the secret of a URL's user info sits: the password after `user:`, or the whole user
/// info when it has no `:` (a bare `redis://secret@host`). Also a `pass=` query parameter.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some(at) = rest[..authority_end].rfind('@') {
        let info = &rest[..at];
        return Some(match info.find(':') {
            Some(colon) => (start + colon + 1, start + at),
            None => (start, start + at),
        });
    }
    let q = url.find('?')?;
    let pass = url[q..]
        .match_indices(['?', '&'])
        .map(|(i, _)| q + i + 1)
        .find(|&i| url[i..].starts_with("pass=") || url[i..].starts_with("password="))?;
    let value = pass + url[pass..].find('=')? + 1;
    let end = url[value..].find('&').map_or(url.len(), |e| value + e);
    Some((value, end))
}

/// `url` with its password (or a bare user info, or a `pass=` query parameter) replaced by
/// `***`, for logs and error messages.
///
/// ```
/// use tether_redis::redact_url;
/// assert_eq!(redact_url("redis://app:s3cret@db:6379/1"), "redis://app:***@db:6379/1");
/// assert_eq!(redact_url("redis://db:6379"), "redis://db:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    match password_span(url) {
        Some((from, to)) if to > from => format!("{}***{}", &url[..from], &url[to..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("redis://u:pw@h:1/0", "redis://u:***@h:1/0"),
            ("redis://:pw@h:1", "redis://:***@h:1"),
            ("redis://pw@h", "redis://***@h"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=pw",
                "redis+unix:///tmp/r.sock?db=1&pass=***",
            ),
            ("redis://h:1", "redis://h:1"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }

    #[test]
    fn urls_are_checked_without_connecting() {
        assert!(check_url("redis://127.0.0.1:1").is_ok());
        assert!(check_url("redis://user:pw@127.0.0.1:1/2").is_ok());
        for bad in [
            "http://h:1",
            "127.0.0.1:6379",
            "redis://u:pw@",
            "redis://h:1/notadb",
        ] {
            let e = check_url(bad).expect_err(bad);
            assert!(!e.to_string().contains("pw"), "{e}");
        }
        if cfg!(feature = "tls") {
            assert!(check_url("rediss://u:pw@h:1").is_ok());
        } else {
            let e = check_url("rediss://u:pw@h:1").unwrap_err();
            assert!(
                e.reason.contains("TLS") && !e.to_string().contains("pw"),
                "{e}"
            );
        }
    }
}
