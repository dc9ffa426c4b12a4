//! `tether replay --spawn`: a `tether serve` of this executable, started for one replay with
//! the settings the transcript needs.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::transcript::Transcript;

/// How long the hub may take to print `listening on http://ADDR`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the hub's log kept to explain a failed start.
const LOG_LINES: usize = 40;

/// Whole seconds of a scaled duration: the hub's flags take seconds.
fn secs(name: &str, ms: u64, needed: bool, round_up: bool) -> Result<u64, String> {
    if ms.is_multiple_of(1000) && ms > 0 {
        return Ok(ms / 1000);
    }
    if needed {
        return Err(format!(
            "{name}: the transcript needs {ms} ms at this time scale, and `tether serve` takes whole seconds; choose a --time-scale that makes it a whole number of seconds"
        ));
    }
    Ok(if round_up {
        ms.div_ceil(1000)
    } else {
        ms / 1000
    }
    .max(1))
}

/// The `tether serve` arguments for a hub with the settings the transcript needs, its
/// durations multiplied by `time_scale`.
///
/// Counts and the policy are passed as the transcript has them. A duration the transcript
/// needs (see [`Transcript::server_needs`]) must come out as whole seconds, or this is an
/// error; one it does not state is rounded to a whole second, at least 1: the keepalive
/// interval down (heartbeats at least as often as the checker expects), the client timeout
/// up. The approval timeout has no flag: the hub keeps its default, and the settings check
/// after the start names the difference if the transcript needs another.
pub(crate) fn serve_args(t: &Transcript, time_scale: f64) -> Result<Vec<String>, String> {
    let needs = t.server_needs();
    let s = &t.settings;
    let scaled = |ms: u64| (ms as f64 * time_scale).round() as u64;
    let keepalive = match s.keepalive_ms {
        None => 0,
        Some(k) => secs(
            "keepalive_ms",
            scaled(k),
            needs.contains(&"keepalive_ms"),
            false,
        )?,
    };
    let client_timeout = secs(
        "client_timeout_ms",
        scaled(s.client_timeout_ms),
        needs.contains(&"client_timeout_ms"),
        true,
    )?;
    let mut args: Vec<String> = ["serve", "--dev", "--addr", "127.0.0.1:0"]
        .map(str::to_owned)
        .to_vec();
    for (flag, value) in [
        ("--keepalive-secs", keepalive.to_string()),
        ("--client-timeout-secs", client_timeout.to_string()),
        ("--ring-events", s.ring_max_events.to_string()),
        ("--ring-bytes", s.ring_max_bytes.to_string()),
        ("--max-event-bytes", s.max_event_bytes.to_string()),
        ("--policy", s.connection_policy.as_str().to_owned()),
    ] {
        args.push(flag.to_owned());
        args.push(value);
    }
    Ok(args)
}

/// A running hub; stopped by [`Hub::stop`] (or killed when dropped).
pub(crate) struct Hub {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn keep(log: &Mutex<Vec<String>>, line: String) {
    let mut l = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if l.len() == LOG_LINES {
        l.remove(0);
    }
    l.push(line);
}

impl Hub {
    /// Starts `current_exe() ARGS` and waits for its `listening on http://ADDR` line.
    pub(crate) async fn start(args: &[String]) -> Result<Self, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let mut child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    keep(&log, line);
                }
            });
        }
        let Some(out) = child.stdout.take() else {
            return Err("the hub's stdout is not piped".into());
        };
        let mut lines = BufReader::new(out).lines();
        let wait = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    return Some(addr.to_owned());
                }
            }
            None
        };
        let url = tokio::time::timeout(START_TIMEOUT, wait).await;
        let mut hub = Self {
            child,
            url: String::new(),
            log,
        };
        match url {
            Ok(Some(url)) => {
                // Keep reading stdout so the hub never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                hub.url = url;
                Ok(hub)
            }
            Ok(None) => {
                let status = hub.child.wait().await.ok();
                // Let the stderr reader catch up with the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(format!(
                    "`{} {}` exited{} before listening:\n{}",
                    exe.display(),
                    args.join(" "),
                    status.map(|s| format!(" ({s})")).unwrap_or_default(),
                    hub.log_tail()
                ))
            }
            Err(_) => {
                hub.stop().await;
                Err(format!(
                    "`{} {}` printed no `listening on` line within {} s",
                    exe.display(),
                    args.join(" "),
                    START_TIMEOUT.as_secs()
                ))
            }
        }
    }

    /// The hub's base URL (`http://127.0.0.1:PORT`).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn log_tail(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .join("\n")
    }

    /// Kills the hub and waits for it to exit.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(config: &str, scale: f64) -> Result<String, String> {
        let t = Transcript::parse(config).unwrap();
        serve_args(&t, scale).map(|a| a.join(" "))
    }

    #[test]
    fn flags_come_from_the_settings() {
        let a = args_of(
            r#"{"op":"config","ring_max_events":8,"client_timeout_ms":60000,"keepalive_ms":15000}"#,
            1.0 / 15.0,
        )
        .unwrap();
        assert_eq!(
            a,
            "serve --dev --addr 127.0.0.1:0 --keepalive-secs 1 --client-timeout-secs 4 \
             --ring-events 8 --ring-bytes 1048576 --max-event-bytes 262144 --policy replace"
        );
        let a = args_of(
            r#"{"op":"config","keepalive_ms":null,"connection_policy":"reject"}"#,
            1.0,
        )
        .unwrap();
        assert!(a.contains("--keepalive-secs 0"), "{a}");
        assert!(a.contains("--policy reject"), "{a}");
    }

    #[test]
    fn unstated_durations_round_to_whole_seconds_stated_ones_must_be_whole() {
        // Not stated: 750 ms of keepalive becomes 1 s, 3 s of client timeout stays.
        let a = args_of("", 0.05).unwrap();
        assert!(
            a.contains("--keepalive-secs 1 --client-timeout-secs 3"),
            "{a}"
        );
        let e = args_of(r#"{"op":"config","keepalive_ms":15000}"#, 0.05).unwrap_err();
        assert!(
            e.starts_with("keepalive_ms: the transcript needs 750 ms"),
            "{e}"
        );
    }
}
