//! # tether-testkit
//!
//! Tests that need an external program (nginx, node, redis-server, promtool, openssl, a
//! Python virtualenv) ask for it here, so that one rule holds everywhere: outside CI a missing
//! program skips the test with a printed reason; under `CI=true` it fails the test, because a
//! CI run that skipped what it was meant to run has proved nothing.
//!
//! ```no_run
//! let Some(nginx) = tether_testkit::require_tool("nginx") else {
//!     return; // skipped, with a notice on stderr
//! };
//! # let _ = nginx;
//! ```
#![doc(test(attr(deny(warnings))))]

use std::fmt;
use std::path::{Path, PathBuf};

/// Whether the tests run in CI (`CI=true`), where nothing may be skipped for want of a tool.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Directories searched after `PATH`: daemons such as nginx install to `sbin`, which an
/// unprivileged user's `PATH` often lacks.
const SBIN: [&str; 2] = ["/usr/sbin", "/usr/local/sbin"];

/// A program a test needs was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingTool {
    /// What is missing (a program name, or a description such as a virtualenv's path).
    pub what: String,
    /// How to get it.
    pub hint: String,
}

impl fmt::Display for MissingTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not installed ({})", self.what, self.hint)
    }
}

impl std::error::Error for MissingTool {}

/// Finds the executable `name` on `PATH` (then in `/usr/sbin` and `/usr/local/sbin`).
pub fn find_tool(name: &str) -> Result<PathBuf, MissingTool> {
    let from_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| MissingTool {
            what: format!("`{name}`"),
            hint: hint(name).to_owned(),
        })
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

fn hint(name: &str) -> &'static str {
    match name {
        "nginx" => "Debian: apt-get install nginx",
        "redis-server" => "Debian: apt-get install redis-server",
        "node" | "npm" => "install Node 20 or later",
        "promtool" => "Debian: apt-get install prometheus; scripts/test.sh installs it",
        "openssl" => "Debian: apt-get install openssl",
        _ => "install it, or put it on the PATH",
    }
}

/// The path of the program `name`, or `None` after a printed notice so the test can return.
///
/// # Panics
///
/// Under `CI=true` when the program is missing: the test fails instead of passing without
/// having run.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    match find_tool(name) {
        Ok(path) => Some(path),
        Err(missing) => {
            skip_or_fail(&missing);
            None
        }
    }
}

/// The same rule for a prerequisite that is not a program on `PATH` (a virtualenv, an
/// installed package tree): `true` when `missing` is `Ok(())`; otherwise `false` after a
/// printed notice outside CI.
///
/// # Panics
///
/// Under `CI=true` when `missing` is `Err`.
pub fn require(missing: Result<(), MissingTool>) -> bool {
    match missing {
        Ok(()) => true,
        Err(m) => {
            skip_or_fail(&m);
            false
        }
    }
}

fn skip_or_fail(missing: &MissingTool) {
    assert!(
        !in_ci(),
        "CI=true and {missing}: the test cannot run, and must not pass without running"
    );
    eprintln!("skipped: {missing}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_program_on_the_path_and_names_a_missing_one() {
        assert!(find_tool("sh").is_ok(), "every Unix has sh");
        let missing = find_tool("tether-no-such-program").unwrap_err();
        assert_eq!(missing.what, "`tether-no-such-program`");
        assert!(missing.to_string().contains("not installed"));
    }

    #[test]
    fn a_missing_prerequisite_skips_outside_ci_and_fails_in_it() {
        let missing = || {
            Err(MissingTool {
                what: "a thing".into(),
                hint: "get it".into(),
            })
        };
        if in_ci() {
            assert!(std::panic::catch_unwind(|| require(missing())).is_err());
        } else {
            assert!(!require(missing()));
        }
        assert!(require(Ok(())));
    }
}
