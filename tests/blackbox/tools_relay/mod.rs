//! `nsq_to_http` and `nsq_to_nsq` run as processes: against small HTTP servers of the
//! tests' own (`http_server`), and between two in-process nsqds.
//!
//! - `http_server`: a loopback HTTP server that records every request and answers with a
//!   status the test chooses.
//! - `to_http`: nsq_to_http: POST and GET, retries, modes, fatal checks, stop and kill.
//! - `nsq_to_nsq`: nsq_to_nsq: relaying, JSON filters, a destination down at first,
//!   fatal checks, stop and restart.

mod http_server;
mod nsq_to_nsq;
mod to_http;

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Child;
use tokio::task::JoinHandle;

use crate::support::Server;
use crate::tools::{tool, TOOL_WAIT};

/// A tool running in the background, its stderr read as it comes (so its logs never
/// fill the pipe and stall it).
struct Running {
    child: Child,
    stderr: JoinHandle<String>,
}

impl Running {
    /// Starts `path` with `args`.
    fn start(path: &str, args: &[&str]) -> Running {
        let mut child = tool(path, args).spawn().expect("spawn the tool");
        let mut err = child.stderr.take().expect("stderr piped");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text).await;
            text
        });
        Running { child, stderr }
    }

    /// Sends `signal` and waits for the exit: the code (None when killed) and stderr.
    async fn stop(mut self, with: rustix::process::Signal) -> (Option<i32>, String) {
        signal(&self.child, with);
        let status = tokio::time::timeout(TOOL_WAIT, self.child.wait())
            .await
            .expect("the tool exits in time")
            .expect("wait");
        let stderr = self.stderr.await.unwrap_or_default();
        (status.code(), stderr)
    }

    /// Stops the tool with SIGTERM; it must exit 0.
    async fn terminate(self) -> String {
        let (code, stderr) = self.stop(rustix::process::Signal::TERM).await;
        assert_eq!(code, Some(0), "{stderr}");
        stderr
    }
}

/// Sends `signal` to a running tool.
fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = child.id().expect("running") as i32;
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).expect("a pid"), signal)
        .expect("signal sent");
}

/// Polls `check` every 20 ms until it holds, failing after [`TOOL_WAIT`].
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TOOL_WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A channel's figure from `/stats` (0 when the channel does not exist yet).
async fn channel_figure(server: &Server, topic: &str, channel: &str, figure: &str) -> i64 {
    server.channel_stats(topic, channel).await[figure]
        .as_i64()
        .unwrap_or(0)
}

/// Waits until the channel exists (the tool subscribed) and holds no message at all:
/// nothing queued, in flight or deferred.
pub(crate) async fn wait_drained(server: &Server, topic: &str, channel: &str) {
    wait_until("the channel to drain", || async {
        let stats = server.channel_stats(topic, channel).await;
        !stats.is_null()
            && stats["depth"] == 0
            && stats["in_flight_count"] == 0
            && stats["deferred_count"] == 0
    })
    .await;
}
