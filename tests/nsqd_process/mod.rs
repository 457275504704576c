//! A real `nsqd` binary run as a child process for the process-level tests
//! (`tests/process_restart.rs`, `tests/deferred_restart.rs`): started on a data folder
//! with loopback addresses on port 0, its ports read from its start log line, every log
//! line kept, and stopped with SIGTERM or `kill -9` with a check that it never panicked.
// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running `nsqd` binary with its addresses and everything it logged so far.
pub struct Nsqd {
    pub child: Child,
    /// Its TCP address.
    pub tcp: String,
    /// Its HTTP address.
    pub http: String,
    log: Arc<Mutex<Vec<String>>>,
    drain: Option<JoinHandle<()>>,
}

impl Nsqd {
    /// Starts nsqd on `data` with `flags` (besides the addresses and the data path) and
    /// waits for the log line with its ports.
    pub fn start(data: &Path, flags: &[&str]) -> Nsqd {
        Nsqd::start_on(data, ("127.0.0.1:0", "127.0.0.1:0"), flags)
    }

    /// [`Nsqd::start`] on the TCP and HTTP addresses given (peers that must know each
    /// other's address before they start).
    pub fn start_on(data: &Path, (tcp, http): (&str, &str), flags: &[&str]) -> Nsqd {
        Nsqd::spawn(
            env!("CARGO_BIN_EXE_nsqd"),
            &[
                format!("--tcp-address={tcp}"),
                format!("--http-address={http}"),
                format!("--data-path={}", data.display()),
            ],
            flags,
        )
    }

    /// Starts `nsqlookupd` on loopback, port 0 (its addresses are read the same way).
    pub fn start_lookupd() -> Nsqd {
        Nsqd::spawn(
            env!("CARGO_BIN_EXE_nsqlookupd"),
            &[
                "--tcp-address=127.0.0.1:0".to_string(),
                "--http-address=127.0.0.1:0".to_string(),
            ],
            &[],
        )
    }

    fn spawn(binary: &str, addresses: &[String], flags: &[&str]) -> Nsqd {
        let mut child = Command::new(binary)
            .args(addresses)
            .args(flags)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("nsqd starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (started, ports) = std::sync::mpsc::channel();
        let lines = log.clone();
        // Keeps draining stderr, so nsqd never blocks on a full pipe, and keeps every line.
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains(" tcp=") {
                    let _ = started.send(line.clone());
                }
                lines.lock().expect("lock").push(line);
            }
        });
        let line = ports
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "nsqd logged no start line; its log: {:?}",
                    log.lock().expect("lock")
                )
            });
        let tcp = after(&line, "tcp=", |c| c.is_whitespace());
        let http = if line.contains("http=Some(") {
            after(&line, "http=Some(", |c| c == ')')
        } else {
            after(&line, "http=", |c| c.is_whitespace())
        };
        Nsqd {
            child,
            tcp,
            http,
            log,
            drain: Some(drain),
        }
    }

    /// SIGTERM, then waits: nsqd must exit with status 0 and must not have panicked.
    /// Returns its whole log.
    pub fn stop(&mut self) -> String {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM");
        let exit = self.child.wait().expect("nsqd exits");
        let log = self.finish_log();
        assert!(exit.success(), "graceful exit, got {exit:?}; log:\n{log}");
        log
    }

    /// `kill -9`, then waits. Returns its whole log (which must not show a panic).
    pub fn kill_9(&mut self) -> String {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
        self.finish_log()
    }

    /// Everything logged once stderr closed, checked for panics.
    pub fn finish_log(&mut self) -> String {
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        let log = self.log_text();
        assert!(!log.contains("panicked"), "nsqd panicked; log:\n{log}");
        log
    }

    /// What nsqd logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().expect("lock").join("\n")
    }
}

impl Drop for Nsqd {
    /// A failed test must not leave nsqd running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The text of `line` after `key` up to the first character `end` accepts.
fn after(line: &str, key: &str, end: impl Fn(char) -> bool) -> String {
    let rest = line
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("{key} in {line:?}"));
    rest.split(end).next().unwrap_or_default().to_string()
}
