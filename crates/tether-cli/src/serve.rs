//! `tether serve`: the standalone hub.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use http::HeaderName;
use metrics_exporter_prometheus::PrometheusHandle;
use tether_core::auth::JwtKeys;
use tether_core::http::{
    AccessRequest, Authorizer, Cors, Hooks, JwtAuthorizer, Service, SessionOwnerHeader,
};
use tether_core::net::SocketOptions;
use tether_core::server::{ConnectionLimits, SseListener};
use tether_core::{Broker, ConnectionPolicy};

/// One connection per session: what a second connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Policy {
    /// The newer connection wins; the older stream ends with `tether.superseded`.
    Replace,
    /// The newer connection gets 409.
    Reject,
}

/// Flags of `tether serve`; each is a key of `--config`, and most have an environment variable
/// (`--self-publish` and `--self-publish-agui` have none, `--no-agui` is `TETHER_AGUI=off`,
/// `--log-level` is `RUST_LOG`).
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Settings file, YAML (`.yml`, `.yaml`) or TOML (`.toml`): keys are these flags' long
    /// names with `_` (`keepalive_secs: 15`), plus the runbook's `keepalive_interval`,
    /// `client_timeout`, `reconnect_backoff_max` and `max_connections_per_session` (1 only).
    /// A flag or its environment variable wins over the file.
    #[arg(long, env = "TETHER_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Append log lines to this file instead of stderr; SIGHUP reopens it (for logrotate).
    #[arg(long, env = "TETHER_LOG_FILE", value_name = "PATH")]
    pub(crate) log_file: Option<std::path::PathBuf>,
    /// Which lines are logged: a level (`info`, `warn`, ...) or `tracing` directives such as
    /// `info,tether_core=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info", value_name = "FILTER")]
    pub(crate) log_level: String,
    /// Log lines as `text` (grep-friendly) or `json` (one object per line).
    #[arg(long, env = "TETHER_LOG_FORMAT", value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub(crate) log_format: crate::logging::LogFormat,
    /// Log a stream's client address as the rightmost `X-Forwarded-For` entry (what the
    /// proxy in front saw) instead of the socket peer; for a hub only a proxy can reach.
    #[arg(long, env = "TETHER_TRUST_FORWARDED")]
    trust_forwarded: bool,
    /// Longest `retry:` hint a stream is given, in seconds (runbook: `reconnect_backoff_max:
    /// 30`); superseded streams get it.
    #[arg(long, env = "TETHER_RECONNECT_BACKOFF_MAX_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    reconnect_backoff_max_secs: u64,
    /// Address to listen on; port 0 picks a free port (printed as `listening on http://ADDR`).
    #[arg(long, env = "TETHER_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Development mode: without credentials flags every route is open to anyone who can
    /// reach the hub, so only loopback addresses may be bound. `--publish-token` still guards
    /// publishing. Without `--dev`, the hub needs `--jwt-secret`, `--jwt-secret-file`,
    /// `--jwt-public-key` or `--user-header` to start.
    #[arg(long, env = "TETHER_DEV")]
    dev: bool,
    /// The backend's static bearer token: it may publish to, and create or cancel approvals
    /// on, every session.
    #[arg(long, env = "TETHER_PUBLISH_TOKEN", hide_env_values = true)]
    publish_token: Option<String>,
    /// Header naming the signed-in user, set by an authenticating proxy in front (which must
    /// strip a client's own): a session belongs to user U when its id is U or starts with
    /// `U:`. It grants subscribing and deciding; publishing needs the publish token or a
    /// token's publish claim.
    #[arg(long, env = "TETHER_USER_HEADER", value_name = "NAME")]
    user_header: Option<HeaderName>,
    #[command(flatten)]
    auth: crate::auth::AuthArgs,
    #[command(flatten)]
    limits: crate::limits::LimitArgs,
    /// Seconds without a write before a stream writes a heartbeat (0 turns them off).
    #[arg(long, env = "TETHER_KEEPALIVE_SECS", default_value_t = 15)]
    keepalive_secs: u64,
    /// Seconds a client may stop reading before it is dropped and its session freed.
    #[arg(long, env = "TETHER_CLIENT_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    client_timeout_secs: u64,
    /// Events each session keeps for resuming clients.
    #[arg(long, env = "TETHER_RING_EVENTS", default_value_t = 1024)]
    ring_events: usize,
    /// Bytes each session keeps for resuming clients.
    #[arg(long, env = "TETHER_RING_BYTES", default_value_t = 1024 * 1024)]
    ring_bytes: usize,
    /// Largest event accepted, encoded (413 past it).
    #[arg(long, env = "TETHER_MAX_EVENT_BYTES", default_value_t = 256 * 1024)]
    max_event_bytes: usize,
    /// Largest request body accepted (413 past it).
    #[arg(long, env = "TETHER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Sessions one identity (a token's `sub`, or the proxy's user) may create by connecting;
    /// past it, 429. Sessions created by publishing do not count.
    #[arg(long, env = "TETHER_MAX_SESSIONS_PER_SUBJECT", default_value_t = 64)]
    max_sessions_per_subject: usize,
    /// What a second connection to a session does.
    #[arg(long, env = "TETHER_POLICY", value_enum, default_value_t = Policy::Replace)]
    policy: Policy,
    /// Drain window on SIGTERM or Ctrl-C: streams are told to come back at moments spread
    /// over it, and new requests get the draining answers until it ends.
    #[arg(long, env = "TETHER_DRAIN_SECS", default_value_t = 10)]
    drain_secs: u64,
    /// Origin allowed to use the routes from a browser (repeat it, or comma-separate in the
    /// environment variable; `*` allows any origin without credentials).
    #[arg(
        long = "cors-origin",
        env = "TETHER_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    cors_origins: Vec<String>,
    /// Publish RATE events per second in-process, spread over every session that has a
    /// connection (about 200 bytes of JSON each, with `"ts"` = publish time in unix
    /// microseconds), for load tests.
    #[arg(long, value_name = "RATE")]
    self_publish: Option<u64>,
    /// With --self-publish: spread the events over every session alive, with or without a
    /// connection (sessions created by publishing over HTTP included), for load tests of what
    /// a publish costs as the sessions holding history grow.
    #[arg(long, requires = "self_publish")]
    self_publish_all: bool,
    /// Publish RATE events per second in-process as agent runs, for load tests of the AG-UI
    /// tracker: in every session that has a connection, round-robin, one burst per turn,
    /// `RUN_STARTED`, `TEXT_MESSAGE_START`, 20 to 80 `TEXT_MESSAGE_CONTENT` deltas of 5 to 40
    /// bytes in bursts of 1 to 8, `TEXT_MESSAGE_END`, a tool call (`TOOL_CALL_START`, 2 to 5
    /// `TOOL_CALL_ARGS`, `TOOL_CALL_END`), `RUN_FINISHED`, then the next run with fresh ids.
    /// Each event carries `"rawEvent":{"ts":N}`, its publish time in unix microseconds.
    #[arg(long, value_name = "RATE", conflicts_with = "self_publish")]
    self_publish_agui: Option<u64>,
    /// Turn AG-UI tracking off: sessions are plain event streams, never validated or given
    /// AG-UI preludes. Also `TETHER_AGUI=off`. Tracking is on by default.
    #[arg(long)]
    no_agui: bool,
    /// Leave out `X-Accel-Buffering: no`, so a buffering proxy in front holds events back
    /// (for the proxy tests).
    #[arg(long, hide = true)]
    no_accel_buffering_header: bool,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    agent: crate::agent_proxy::AgentArgs,
}

/// Flags of the Redis backplane (several nodes serving the same sessions).
#[derive(Debug, Args)]
pub(crate) struct RedisArgs {
    /// Run as one of several nodes on this Redis, so a client's reconnect may land on any
    /// node and resume exactly: `redis://[user:password@]host:port[/db]` (an ACL user and
    /// password go in the URL; the password is never logged), `rediss://` for TLS (the
    /// certificate is checked against the system's CA certificates, or the PEM file
    /// `SSL_CERT_FILE` names) or `redis+unix:///path`. Redis must answer when the hub starts, else the
    /// hub exits with status 1 (a supervisor restarts it); once running, it rides out Redis
    /// outages: publishes and new streams get 503 `backplane_unavailable`, `/health/sse`
    /// answers 503, open streams stay open. Needs `maxmemory-policy noeviction` and `timeout 0`
    /// on Redis. AG-UI sessions are tracked on every node (each append is judged after the
    /// log's head, compare and set); `--self-publish` and `--agent-url` are refused.
    #[arg(
        long = "redis",
        env = "TETHER_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    url: Option<String>,
    /// Prefix of every Redis key and channel of this deployment, so two deployments can share
    /// one Redis.
    #[arg(
        long = "redis-prefix",
        env = "TETHER_REDIS_PREFIX",
        value_name = "PREFIX",
        default_value = "tether"
    )]
    prefix: String,
    /// This node's id on Redis, unique among the nodes. Default: `<host>:<port>-<6 random hex>`,
    /// new at every start, so a restarted process inherits nothing of the dead one.
    #[arg(long = "node-id", env = "TETHER_NODE_ID", value_name = "ID")]
    node_id: Option<String>,
    /// Milliseconds between the comparisons of connected sessions' heads with Redis's (they
    /// find wakes that pub/sub lost and data Redis lost). For tests.
    #[arg(long = "redis-head-check-ms", hide = true, default_value_t = 15_000)]
    head_check_ms: u64,
}

/// The backplane flags, checked before anything starts: `None` without `--redis`.
fn redis_config(args: &ServeArgs) -> Result<Option<tether_redis::RedisConfig>, String> {
    let Some(url) = args.redis.url.as_deref() else {
        return Ok(None);
    };
    tether_redis::check_url(url).map_err(|e| format!("--redis: {e}"))?;
    if args.redis.prefix.is_empty() || args.redis.prefix.contains(['{', '}']) {
        return Err("--redis-prefix must be non-empty and free of `{` and `}` (they delimit Redis Cluster hash tags)".into());
    }
    if args
        .redis
        .node_id
        .as_deref()
        .is_some_and(|n| n.is_empty() || n.contains(|c: char| c.is_whitespace() || c.is_control()))
    {
        return Err("--node-id must be non-empty and without spaces".into());
    }
    if args.self_publish.is_some() || args.self_publish_agui.is_some() {
        let flag = if args.self_publish.is_some() {
            "--self-publish"
        } else {
            "--self-publish-agui"
        };
        return Err(format!(
            "{flag} publishes past the backplane; with --redis, publish over HTTP"
        ));
    }
    Ok(Some(
        tether_redis::RedisConfig::new(url)
            .prefix(&args.redis.prefix)
            .head_check_interval(Duration::from_millis(args.redis.head_check_ms.max(10))),
    ))
}

/// What `tether serve` says when it has no credentials to check.
const NO_CREDENTIALS: &str = "refusing to start without access control: pass --jwt-secret, --jwt-secret-file or --jwt-public-key (signed tokens), or --user-header (an authenticating proxy in front); for development on this machine, --dev";

/// A token when the request carries one, otherwise the proxy's user header.
struct TokenOrUserHeader {
    jwt: JwtAuthorizer,
    header: SessionOwnerHeader,
}

impl Authorizer for TokenOrUserHeader {
    fn authorize(&self, request: &AccessRequest<'_>) -> tether_core::http::Access {
        if tether_core::auth::find_token(request.headers, request.query).is_some() {
            self.jwt.authorize(request)
        } else {
            self.header.authorize(request)
        }
    }
}

/// The hub's access policy from its flags: signed tokens, a proxy's user header, or both;
/// everything open only with `--dev` on a loopback address.
fn access(args: &ServeArgs, jwt: Option<JwtKeys>) -> Result<Hooks, String> {
    if args.dev && !args.addr.ip().is_loopback() {
        return Err(format!(
            "--dev opens every route, so it binds loopback addresses only (127.0.0.1, ::1), not {}",
            args.addr
        ));
    }
    if args
        .cors_origins
        .iter()
        .any(|o| o.trim().eq_ignore_ascii_case("null"))
    {
        return Err(
            "--cors-origin null would let sandboxed pages and local files write here; name real origins"
                .into(),
        );
    }
    if args.publish_token.as_deref().is_some_and(str::is_empty) {
        return Err("--publish-token is empty; give it a secret value".into());
    }
    let user = args.user_header.clone().map(SessionOwnerHeader::new);
    let hooks = match (jwt, user) {
        (None, None) if args.dev => Hooks::allow_all(),
        (None, None) => return Err(NO_CREDENTIALS.into()),
        (Some(keys), None) => Hooks::jwt(keys),
        (None, Some(header)) => Hooks::allow_all().authorizer(header),
        (Some(keys), Some(header)) => Hooks::allow_all().authorizer(TokenOrUserHeader {
            jwt: JwtAuthorizer::new(keys),
            header,
        }),
    };
    let hooks = match &args.publish_token {
        Some(token) => hooks.publish_token(token.as_str()),
        None => hooks,
    };
    Ok(hooks
        .max_body_bytes(args.max_body_bytes)
        .accel_buffering_header(!args.no_accel_buffering_header))
}

/// Whether AG-UI sessions are tracked: on unless `--no-agui` or `TETHER_AGUI` says off.
fn agui_tracking(args: &ServeArgs, env: Option<&str>) -> Result<bool, String> {
    let from_env = match env.map(|v| v.trim().to_ascii_lowercase()) {
        None => true,
        Some(v) if ["on", "1", "true", "yes"].contains(&v.as_str()) => true,
        Some(v) if ["off", "0", "false", "no"].contains(&v.as_str()) => false,
        Some(v) => return Err(format!("TETHER_AGUI must be `on` or `off`, not `{v}`")),
    };
    Ok(from_env && !args.no_agui)
}

fn broker(args: &ServeArgs, agui: bool) -> tether_core::BrokerBuilder {
    let builder = Broker::builder();
    let builder = if agui {
        builder.tracker_factory(Arc::new(tether_agui::AguiTrackerFactory::with_limits(
            args.limits.tracker(),
        )))
    } else {
        builder
    };
    let builder = match args.keepalive_secs {
        0 => builder.without_heartbeats(),
        secs => builder.keepalive_interval(Duration::from_secs(secs)),
    };
    args.limits
        .broker(builder)
        .client_timeout(Duration::from_secs(args.client_timeout_secs.max(1)))
        .reconnect_backoff_max(Duration::from_secs(args.reconnect_backoff_max_secs))
        .ring_max_events(args.ring_events)
        .ring_max_bytes(args.ring_bytes)
        .max_event_bytes(args.max_event_bytes)
        .max_sessions_per_subject(args.max_sessions_per_subject)
        .connection_policy(match args.policy {
            Policy::Replace => ConnectionPolicy::Replace,
            Policy::Reject => ConnectionPolicy::Reject,
        })
}

/// Installs the Prometheus recorder with explicit buckets (a summary would leave the
/// runbook's `histogram_quantile(..._bucket)` with nothing to read): the broker's and the
/// agent proxy's histograms.
fn metrics_recorder() -> Result<PrometheusHandle, String> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in tether_core::metrics::HISTOGRAMS
        .iter()
        .chain(crate::agent_proxy::HISTOGRAMS)
    {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
            .map_err(|e| e.to_string())?;
    }
    let handle = builder.install_recorder().map_err(|e| e.to_string())?;
    tether_core::metrics::describe();
    Ok(handle)
}

/// The agent proxy's settings (`--agent-url`), checked against the flags it needs.
fn agent_config(args: &ServeArgs) -> Result<Option<crate::agent_proxy::ProxyConfig>, String> {
    let Some(config) = crate::agent_proxy::ProxyConfig::from_args(&args.agent)? else {
        return Ok(None);
    };
    if args.redis.url.is_some() {
        return Err("--agent-url publishes through this node's broker alone, past the Redis log; run the agent proxy on a hub without --redis".into());
    }
    if !agui_tracking(args, std::env::var("TETHER_AGUI").ok().as_deref())? {
        return Err(
            "--agent-url needs AG-UI tracking; leave out --no-agui (and TETHER_AGUI=off)".into(),
        );
    }
    Ok(Some(config))
}

/// Resolves at the first SIGTERM or Ctrl-C; a second one ends the process at once.
async fn shutdown_signal() {
    wait_signal().await;
    tracing::info!("shutdown signal: draining (send it again to exit at once)");
    tokio::spawn(async {
        wait_signal().await;
        tracing::warn!("second shutdown signal: exiting without finishing the drain");
        std::process::exit(130);
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) fn main(args: ServeArgs) -> ExitCode {
    let log_file =
        match crate::logging::init(&args.log_level, args.log_format, args.log_file.as_deref()) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("tether: cannot open the log: {e}");
                return ExitCode::from(2);
            }
        };
    let open_files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = args.auth.jwt_keys().and_then(|jwt| {
        broker(&args, false).check().map_err(|e| {
            let flag = e.setting.flag().unwrap_or(e.setting.method());
            format!("{flag}: {}", e.reason)
        })?;
        let hooks = access(&args, jwt.clone())?;
        let redis = redis_config(&args)?;
        let agent = agent_config(&args)?;
        Ok((hooks, jwt, redis, agent))
    });
    let (hooks, jwt, redis, agent) = match started {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tether: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args, hooks, jwt, redis, agent, open_files, log_file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    args: ServeArgs,
    hooks: Hooks,
    jwt: Option<JwtKeys>,
    redis: Option<tether_redis::RedisConfig>,
    agent: Option<crate::agent_proxy::ProxyConfig>,
    open_files: u64,
    log_file: Option<Arc<crate::logging::LogFile>>,
) -> Result<(), String> {
    // The recorder first: the broker registers its metric handles (every series at 0) with
    // the recorder installed when it is built.
    let metrics = metrics_recorder()?;
    let agui = agui_tracking(&args, std::env::var("TETHER_AGUI").ok().as_deref())?;
    let broker = broker(&args, agui).start().map_err(|e| e.to_string())?;
    reload_on_sighup(&args, jwt, log_file)?;
    let (listener, local, limits) = bind(&args, open_files)?;
    let backplane = match redis {
        Some(config) => Some(start_backplane(&args, config, &broker, local).await?),
        None => None,
    };
    let dev_open = args.dev && args.user_header.is_none() && !args.auth.sources().any();
    announce(&args, local, &limits, agui, dev_open)?;
    spawn_upkeep(metrics.clone());
    if let Some(rate) = args.self_publish.filter(|r| *r > 0) {
        let targets = if args.self_publish_all {
            crate::self_publish::Targets::All
        } else {
            crate::self_publish::Targets::Connected
        };
        tokio::spawn(crate::self_publish::run(broker.clone(), rate, targets));
    }
    if let Some(rate) = args.self_publish_agui.filter(|r| *r > 0) {
        tokio::spawn(crate::self_publish::run_agui(broker.clone(), rate));
    }
    let service = service(&args, broker, hooks, metrics, dev_open, backplane, agent);
    serve_and_drain(listener, service, Duration::from_secs(args.drain_secs)).await;
    Ok(())
}

/// Reopens the log file and reloads the JWT keys from their files on SIGHUP.
fn reload_on_sighup(
    args: &ServeArgs,
    jwt: Option<JwtKeys>,
    log_file: Option<Arc<crate::logging::LogFile>>,
) -> Result<(), String> {
    #[cfg(unix)]
    if let Some(file) = log_file {
        let reopen = crate::logging::reopen_on_sighup(file)
            .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
        tokio::spawn(reopen);
    }
    #[cfg(not(unix))]
    drop(log_file);
    if let Some(keys) = jwt {
        let sources = args.auth.sources();
        if sources.has_files() {
            let reload = crate::auth::reload_on_sighup(sources, keys)
                .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
            tokio::spawn(reload);
        }
    }
    Ok(())
}

/// Binds the listening socket with the connection limits for `open_files` descriptors.
fn bind(
    args: &ServeArgs,
    open_files: u64,
) -> Result<(SseListener, SocketAddr, ConnectionLimits), String> {
    let options =
        SocketOptions::for_client_timeout(Duration::from_secs(args.client_timeout_secs.max(1)));
    let limits = args.limits.connections(open_files);
    let listener = SseListener::bind(args.addr, options)
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?
        .with_limits(limits);
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((listener, local, limits))
}

/// Prints the address the hub listens on (what scripts wait for) and logs its settings.
fn announce(
    args: &ServeArgs,
    local: SocketAddr,
    limits: &ConnectionLimits,
    agui: bool,
    dev_open: bool,
) -> Result<(), String> {
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{local}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
    }
    if dev_open {
        tracing::warn!(
            "development mode (--dev): every route is open to this machine; never expose it"
        );
    }
    tracing::info!(
        addr = %local,
        keepalive_s = args.keepalive_secs,
        client_timeout_s = args.client_timeout_secs,
        reconnect_backoff_max_s = args.reconnect_backoff_max_secs,
        config = %args.config.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        ring_events = args.ring_events,
        ring_bytes = args.ring_bytes,
        policy = ?args.policy,
        drain_s = args.drain_secs,
        max_connections = limits.max_connections,
        head_timeout_s = limits.head_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        agui,
        "tether hub ready"
    );
    Ok(())
}

/// Runs the metrics exporter's upkeep every 5 seconds.
fn spawn_upkeep(upkeep: PrometheusHandle) {
    tokio::spawn(async move {
        // The exporter needs periodic upkeep to fold histogram samples.
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
}

/// The HTTP service: the broker's routes with CORS, the metrics page, the Redis backplane and
/// the agent proxy when they are on.
fn service(
    args: &ServeArgs,
    broker: Broker,
    hooks: Hooks,
    render: PrometheusHandle,
    dev_open: bool,
    backplane: Option<tether_redis::RedisBackplane>,
    agent: Option<crate::agent_proxy::ProxyConfig>,
) -> Service {
    let service = Service::new(broker, hooks)
        .cors(Cors::new(&args.cors_origins))
        .trust_forwarded(args.trust_forwarded)
        .metrics(move || {
            let mut text = render.render();
            text.push_str(&tether_core::metrics::process_metrics_text());
            text
        });
    let service = if dev_open {
        service.mode("dev")
    } else {
        service
    };
    let service = match backplane {
        Some(backplane) => service.backplane(Arc::new(backplane)),
        None => service,
    };
    match agent {
        Some(agent) => agent.mount(service, args.max_event_bytes),
        None => service,
    }
}

/// Serves until the shutdown signal, then drains the streams for up to `drain`.
async fn serve_and_drain(listener: SseListener, service: Service, drain: Duration) {
    let left = tether_core::server::serve(listener, service, shutdown_signal(), drain).await;
    if left > 0 {
        tracing::warn!(streams = left, "streams left open at exit");
    }
    tracing::info!("drained; bye");
}

/// Connects to Redis for `--redis`; the error says where (without the password) and why.
async fn start_backplane(
    args: &ServeArgs,
    config: tether_redis::RedisConfig,
    broker: &Broker,
    local: SocketAddr,
) -> Result<tether_redis::RedisBackplane, String> {
    let node_id = args
        .redis
        .node_id
        .clone()
        .unwrap_or_else(|| tether_redis::default_node_id(&local.port().to_string()));
    let url = tether_redis::redact_url(args.redis.url.as_deref().unwrap_or_default());
    tether_redis::metrics::describe();
    let backplane = tether_redis::RedisBackplane::start(broker.clone(), config.node_id(&node_id))
        .await
        .map_err(|e| {
            format!("cannot reach Redis at {url}: {e}; start Redis first, or leave out --redis to run one node alone")
        })?;
    tracing::info!(redis = %url, node_id = %node_id, prefix = %args.redis.prefix, "SSE backplane on Redis");
    Ok(backplane)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(flags: &[&str]) -> ServeArgs {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from(["tether", "serve"].iter().chain(flags)).unwrap();
        let crate::Command::Serve(a) = cli.command else {
            panic!("parsed as serve")
        };
        *a
    }

    #[test]
    fn the_hub_without_credentials_refuses_to_start() {
        let e = access(&serve_args(&[]), None).unwrap_err();
        for named in ["--jwt-secret", "--jwt-public-key", "--user-header", "--dev"] {
            assert!(e.contains(named), "{e}");
        }
        assert!(access(&serve_args(&["--dev"]), None).is_ok());
        assert!(access(&serve_args(&["--user-header", "x-user"]), None).is_ok());
        let e = access(&serve_args(&["--dev", "--addr", "0.0.0.0:8080"]), None).unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = access(&serve_args(&["--dev", "--publish-token", ""]), None).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = access(&serve_args(&["--dev", "--cors-origin", "null"]), None).unwrap_err();
        assert!(e.contains("null"), "{e}");
    }

    #[test]
    fn redis_flags_are_checked_before_anything_starts() {
        assert!(redis_config(&serve_args(&["--dev"])).unwrap().is_none());
        let c = redis_config(&serve_args(&[
            "--redis",
            "redis://app:pw@127.0.0.1:6379/1",
            "--redis-prefix",
            "blue",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.get_prefix(), "blue");
        assert!(redis_config(&serve_args(&["--redis", "rediss://app:pw@127.0.0.1:1"])).is_ok());
        for (flags, says) in [
            (&["--redis", "http://127.0.0.1:6379"][..], "redis://"),
            (&["--redis", "redis://app:pw@"], "invalid Redis URL"),
            (
                &["--redis", "redis://h:1", "--redis-prefix", "a{b}"],
                "prefix",
            ),
            (&["--redis", "redis://h:1", "--node-id", "a b"], "--node-id"),
            (
                &["--redis", "redis://h:1", "--self-publish", "10"],
                "--self-publish",
            ),
            (
                &["--redis", "redis://h:1", "--self-publish-agui", "10"],
                "--self-publish-agui",
            ),
        ] {
            let e = redis_config(&serve_args(flags)).unwrap_err();
            assert!(e.contains(says), "{flags:?}: {e}");
            assert!(!e.contains("pw"), "the password never shows: {e}");
        }
    }

    #[test]
    fn the_agent_proxy_needs_agui_tracking_on_one_node() {
        assert!(agent_config(&serve_args(&["--dev"])).unwrap().is_none());
        let url = "http://127.0.0.1:8000/";
        assert!(
            agent_config(&serve_args(&["--agent-url", url]))
                .unwrap()
                .is_some()
        );
        let e = agent_config(&serve_args(&["--agent-url", url, "--no-agui"])).unwrap_err();
        assert!(e.contains("--no-agui"), "{e}");
        let e =
            agent_config(&serve_args(&["--agent-url", url, "--redis", "redis://h:1"])).unwrap_err();
        assert!(e.contains("--redis"), "{e}");
    }

    #[test]
    fn flags_parse() {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from([
            "tether",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--policy",
            "reject",
            "--cors-origin",
            "https://a",
            "--cors-origin",
            "https://b",
            "--self-publish",
            "100",
            "--user-header",
            "x-user",
        ])
        .unwrap();
        let crate::Command::Serve(a) = cli.command else {
            panic!("parsed as serve")
        };
        assert_eq!(a.policy, Policy::Reject);
        assert_eq!(a.cors_origins, vec!["https://a", "https://b"]);
        assert_eq!(a.self_publish, Some(100));
        assert!(!a.self_publish_all);
        assert!(serve_args(&["--self-publish", "1", "--self-publish-all"]).self_publish_all);
        assert!(crate::Cli::try_parse_from(["tether", "serve", "--self-publish-all"]).is_err());
        assert_eq!(a.user_header.as_ref().unwrap().as_str(), "x-user");
        assert!(agui_tracking(&a, None).unwrap(), "tracking is the default");
        assert!(!agui_tracking(&a, Some("off")).unwrap());
        assert!(agui_tracking(&a, Some("maybe")).is_err());
        let cli = crate::Cli::try_parse_from(["tether", "serve", "--no-agui"]).unwrap();
        let crate::Command::Serve(a) = cli.command else {
            panic!("parsed as serve")
        };
        assert!(!agui_tracking(&a, Some("on")).unwrap());
    }

    #[test]
    fn self_publish_agui_parses_and_excludes_plain_self_publish() {
        use clap::Parser;
        let a = serve_args(&["--self-publish-agui", "20000", "--no-agui"]);
        assert_eq!(a.self_publish_agui, Some(20_000));
        assert_eq!(a.self_publish, None);
        assert!(!agui_tracking(&a, None).unwrap());
        assert_eq!(serve_args(&[]).self_publish_agui, None);
        // Plain events in an AG-UI session would be refused: one publisher at a time.
        let e = crate::Cli::try_parse_from([
            "tether",
            "serve",
            "--self-publish",
            "10",
            "--self-publish-agui",
            "10",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{e}");
        assert!(
            crate::Cli::try_parse_from(["tether", "serve", "--self-publish-agui", "x"]).is_err()
        );
    }
}
