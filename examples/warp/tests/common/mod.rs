//! Starting the example binary on a free port.
#![allow(dead_code)] // each test binary uses part of it

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts the binary with `--addr 127.0.0.1:0` and returns it with its base URL.
pub(crate) async fn start() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-warp"))
        .args(["--addr", "127.0.0.1:0", "--drain-secs", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the example starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_owned();
            }
        }
        panic!("the example exited before listening");
    })
    .await
    .expect("the example prints its address");
    (child, url)
}
