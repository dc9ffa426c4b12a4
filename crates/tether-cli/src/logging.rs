//! The hub's log: text or JSON lines, to stderr or appended to a file that SIGHUP reopens
//! (so logrotate can move it away and signal the hub).
//!
//! Connection lines ("SSE connect", "SSE reconnect", "SSE resync", "SSE disconnect",
//! "SSE keepalive timeout", "SSE error") carry `session`, `client_addr`, `user_agent`,
//! `last_event_id`, `reason`, `duration_s` (where a connection ended) and `sub`, `-` where
//! unknown. In JSON each line is one object: `timestamp`, `level`, `message` and those fields
//! at the top level. No line carries a token.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum LogFormat {
    /// `TIMESTAMP LEVEL message key=value ...`: what `grep "SSE disconnect"` reads.
    #[default]
    Text,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// A log file opened for appending, reopened by path on request.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    /// Opens (creating if needed) `path` for appending.
    pub(crate) fn open(path: &Path) -> io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            path: path.to_owned(),
            file: Mutex::new(open_append(path)?),
        }))
    }

    /// Opens the path again and writes there from now on; the old file is closed. On an
    /// error the old file stays in use.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        let new = open_append(&self.path)?;
        let mut file = self.lock();
        let _ = file.flush();
        *file = new;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes one log line under the file's lock.
pub(crate) struct LogFileWriter<'a>(MutexGuard<'a, File>);

impl Write for LogFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Hands the subscriber the file in use at the moment of each line.
#[derive(Clone)]
struct Shared(Arc<LogFile>);

impl<'a> MakeWriter<'a> for Shared {
    type Writer = LogFileWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.0.lock())
    }
}

/// Installs the global subscriber: `filter` (`--log-level`, or `RUST_LOG`) picks the lines,
/// `format` shapes them, and `file` (appended) or stderr receives them. Returns the file, for
/// [`reopen_on_sighup`].
pub(crate) fn init(
    filter: &str,
    format: LogFormat,
    file: Option<&Path>,
) -> io::Result<Option<Arc<LogFile>>> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| io::Error::other(format!("--log-level {filter}: {e}")))?;
    let file = file.map(LogFile::open).transpose()?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let ansi = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match (format, &file) {
        (LogFormat::Text, Some(f)) => builder
            .with_ansi(false)
            .with_writer(Shared(f.clone()))
            .try_init(),
        (LogFormat::Text, None) => builder
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .try_init(),
        (LogFormat::Json, Some(f)) => builder
            .json()
            .flatten_event(true)
            .with_target(false)
            .with_writer(Shared(f.clone()))
            .try_init(),
        (LogFormat::Json, None) => builder
            .json()
            .flatten_event(true)
            .with_target(false)
            .with_writer(std::io::stderr)
            .try_init(),
    };
    result.map_err(|e| io::Error::other(e.to_string()))?;
    Ok(file)
}

/// Reopens the log file on every SIGHUP (logrotate's `postrotate` sends one). SIGHUP also
/// reloads JWT key files where the hub reads them; each listener gets every signal.
#[cfg(unix)]
pub(crate) fn reopen_on_sighup(
    file: Arc<LogFile>,
) -> io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangup.recv().await.is_some() {
            match file.reopen() {
                Ok(()) => {
                    tracing::info!(path = %file.path().display(), "SIGHUP: log file reopened")
                }
                Err(e) => tracing::error!(
                    path = %file.path().display(),
                    error = %e,
                    "SIGHUP: cannot reopen the log file; writing on to the old one"
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_follows_the_path() {
        let dir = std::env::temp_dir().join(format!("tether-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sse.log");
        let _ = std::fs::remove_file(&path);
        let f = LogFile::open(&path).unwrap();
        let w = Shared(f.clone());
        writeln!(w.make_writer(), "one").unwrap();
        std::fs::rename(&path, dir.join("sse.log.1")).unwrap();
        writeln!(w.make_writer(), "two").unwrap();
        f.reopen().unwrap();
        writeln!(w.make_writer(), "three").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("sse.log.1")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
