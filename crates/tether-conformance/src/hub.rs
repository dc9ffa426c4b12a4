//! Starting the `tether serve` hub for a test.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// A running `tether serve` process, killed when dropped.
#[derive(Debug)]
pub struct Hub {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
    dev_token: Option<String>,
}

/// The prefix of the line on which an example prints its development token.
pub const DEV_TOKEN_LINE: &str = "development token: ";

impl Hub {
    /// Starts `exe serve --dev --addr 127.0.0.1:0 ARGS...` (`--dev` lets a test hub start
    /// without credentials; credential flags in `args` still apply) and waits (up to 60 s) for its
    /// `listening on http://ADDR` line. Its log goes to this process's stderr, at `warn` unless
    /// `RUST_LOG` says otherwise.
    pub async fn spawn(exe: impl AsRef<Path>, args: &[String]) -> std::io::Result<Self> {
        Self::spawn_inner(exe.as_ref(), Some("serve"), args).await
    }

    /// Starts a service binary that takes `--addr` itself (an example application) on
    /// `127.0.0.1:0` with `args`, and waits for its `listening on http://ADDR` line. A
    /// `development token: ...` line printed before it is kept ([`Hub::dev_token`]).
    pub async fn spawn_service(exe: impl AsRef<Path>, args: &[String]) -> std::io::Result<Self> {
        Self::spawn_inner(exe.as_ref(), None, args).await
    }

    async fn spawn_inner(
        exe: &Path,
        subcommand: Option<&str>,
        args: &[String],
    ) -> std::io::Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.args(subcommand);
        if subcommand == Some("serve") && !args.iter().any(|a| a == "--dev") {
            cmd.arg("--dev");
        }
        cmd.args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let mut dev_token = None;
        let read = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                line.clear();
                if stdout.read_line(&mut line).await? == 0 {
                    return Err(std::io::Error::other(
                        "the hub exited before it was listening",
                    ));
                }
                if let Some(token) = line.trim().strip_prefix(DEV_TOKEN_LINE) {
                    dev_token = Some(token.to_owned());
                }
                if let Some(addr) = line.trim().strip_prefix("listening on http://") {
                    return addr.parse::<SocketAddr>().map_err(std::io::Error::other);
                }
            }
        })
        .await;
        let addr = match read {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(std::io::Error::other(
                    "the hub printed no `listening on` line in 60 s",
                ));
            }
        };
        Ok(Self {
            child,
            _stdout: stdout,
            addr,
            dev_token,
        })
    }

    /// The development token the service printed before listening, if it did.
    pub fn dev_token(&self) -> Option<&str> {
        self.dev_token.as_deref()
    }

    /// `Authorization: Bearer` with the development token, or nothing without one.
    pub fn bearer(&self) -> Vec<(String, String)> {
        self.dev_token
            .iter()
            .map(|t| ("Authorization".to_owned(), format!("Bearer {t}")))
            .collect()
    }

    /// Its process id (`None` once it has exited).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM (through `kill`), which starts the hub's drain.
    pub fn terminate(&self) -> std::io::Result<()> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| std::io::Error::other("the hub already exited"))?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("kill -TERM {pid}: {status}")))
        }
    }

    /// Waits up to `limit` for the hub to exit.
    pub async fn wait(&mut self, limit: Duration) -> std::io::Result<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .map_err(|_| std::io::Error::other(format!("the hub did not exit within {limit:?}")))?
    }
}
