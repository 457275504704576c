//! The server under test as a child process: free loopback ports, a fresh temporary
//! directory, readiness, CPU time and RSS from `/proc`, and a clean stop.
//!
//! CPU time is `utime + stime` of `/proc/PID/stat` (fields 14 and 15) divided by the
//! clock tick rate from `sysconf(_SC_CLK_TCK)` (`getconf CLK_TCK`; 100 on Linux, and
//! assumed 100 if sysconf fails). RSS is `VmRSS` of `/proc/PID/status`.

// The suite drives real processes and real files: this module is the one place in the
// bench that uses std::fs (temporary directory, /proc, certificates, child logs) and the
// wall clock, none of which the determinism rules (clippy.toml) are about: they keep
// daemons simulable, and this runs only in the nsq-bench binary.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::SuiteError;

/// How long a server may take to answer its first ping.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a failed server's log shown in the error.
const LOG_TAIL_LINES: usize = 15;

/// A directory under the system temp dir, removed (with its content) when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/nsq-bench-<pid>-<n>-<nanos>`.
    pub fn new() -> io::Result<TempDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "nsq-bench-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns the file's path.
    pub fn write(&self, name: &str, contents: &[u8]) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port that was free a moment ago (bound to 127.0.0.1:0, then released).
/// Another process may take it before the child binds it: [`Server::start`] retries.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Which program a [`Server`] runs, and how to tell it is ready.
#[derive(Debug, Clone)]
pub enum Program {
    /// An nsqd binary (ours or Go's): `--tcp-address`, `--http-address`,
    /// `--https-address`, `--data-path`, `--log-level=warn` and the case's flags; ready
    /// when `GET /ping` answers 200.
    Nsqd(PathBuf),
    /// `nsq-bench fake-nsqd --tcp-address=... --size=...` from this nsq-bench binary;
    /// ready when its TCP port accepts.
    FakeNsqd {
        /// The nsq-bench executable.
        bench: PathBuf,
        /// Body bytes of the messages it streams.
        size: usize,
    },
}

/// A running server under test: the child process and its temporary directory.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `127.0.0.1:<port>` of its V2 TCP listener.
    pub tcp: SocketAddr,
    /// `127.0.0.1:<port>` of its HTTP listener (nsqd only).
    pub http: Option<SocketAddr>,
    dir: TempDir,
    log: PathBuf,
}

impl Server {
    /// Starts `program` with `flags` (nsqd only) in a fresh temporary directory, which
    /// also holds its log; `files` are written there first (name, content) and may be
    /// named in `flags` as `{dir}/name`. Waits until it is ready; a start whose child
    /// exits at once (e.g. a port taken meanwhile) is retried on new ports, twice.
    pub async fn start(
        program: &Program,
        flags: &[String],
        files: &[(&str, Vec<u8>)],
    ) -> Result<Server, SuiteError> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(program, flags, files).await {
                Ok(server) => return Ok(server),
                Err(err @ SuiteError::Exited { .. }) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| SuiteError::Io {
            what: "starting the server".into(),
            source: io::Error::other("no attempt made"),
        }))
    }

    async fn start_once(
        program: &Program,
        flags: &[String],
        files: &[(&str, Vec<u8>)],
    ) -> Result<Server, SuiteError> {
        let io_err = |what: &str| {
            let what = what.to_owned();
            move |source| SuiteError::Io { what, source }
        };
        let dir = TempDir::new().map_err(io_err("creating the temporary directory"))?;
        for (name, contents) in files {
            dir.write(name, contents).map_err(io_err(name))?;
        }
        let dir_text = dir.path().to_string_lossy().into_owned();
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).map_err(io_err("creating the log"))?;
        let log_err = log_file.try_clone().map_err(io_err("creating the log"))?;
        let tcp_port = free_port().map_err(io_err("picking a port"))?;
        let tcp = SocketAddr::from(([127, 0, 0, 1], tcp_port));
        let (mut command, http) = match program {
            Program::Nsqd(path) => {
                let http_port = free_port().map_err(io_err("picking a port"))?;
                let https_port = free_port().map_err(io_err("picking a port"))?;
                let data = dir.path().join("data");
                std::fs::create_dir_all(&data).map_err(io_err("creating the data path"))?;
                let mut command = Command::new(path);
                command
                    .arg(format!("--tcp-address={tcp}"))
                    .arg(format!("--http-address=127.0.0.1:{http_port}"))
                    .arg(format!("--https-address=127.0.0.1:{https_port}"))
                    .arg(format!("--data-path={}", data.display()))
                    .arg("--log-level=warn")
                    .args(flags.iter().map(|flag| flag.replace("{dir}", &dir_text)));
                (command, Some(SocketAddr::from(([127, 0, 0, 1], http_port))))
            }
            Program::FakeNsqd { bench, size } => {
                let mut command = Command::new(bench);
                command
                    .arg("fake-nsqd")
                    .arg(format!("--tcp-address={tcp}"))
                    .arg(format!("--size={size}"));
                (command, None)
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|source| SuiteError::Spawn {
                program: program_path(program).display().to_string(),
                source,
            })?;
        let mut server = Server {
            child,
            tcp,
            http,
            dir,
            log,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory (data path, log, certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Polls until the server answers (HTTP `/ping` 200, or a TCP connect for the fake).
    async fn wait_ready(&mut self) -> Result<(), SuiteError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(SuiteError::Exited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            let ready = match self.http {
                Some(http) => ping(http).await,
                None => tokio::net::TcpStream::connect(self.tcp).await.is_ok(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = self.log_tail();
                self.kill();
                return Err(SuiteError::NotReady {
                    waited: READY_TIMEOUT,
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The child's user + system CPU time so far.
    pub fn cpu_time(&self) -> Result<Duration, SuiteError> {
        let path = format!("/proc/{}/stat", self.pid());
        let text = std::fs::read_to_string(&path).map_err(|source| SuiteError::Io {
            what: path.clone(),
            source,
        })?;
        let ticks = parse_stat_cpu_ticks(&text).ok_or(SuiteError::Proc { path })?;
        Ok(ticks_to_duration(ticks, clock_ticks_per_second()))
    }

    /// The child's resident set size in KiB.
    pub fn rss_kib(&self) -> Result<u64, SuiteError> {
        let path = format!("/proc/{}/status", self.pid());
        let text = std::fs::read_to_string(&path).map_err(|source| SuiteError::Io {
            what: path.clone(),
            source,
        })?;
        parse_status_rss_kib(&text).ok_or(SuiteError::Proc { path })
    }

    /// The last lines of the child's stdout and stderr.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// SIGTERM, then up to [`STOP_TIMEOUT`] for it to exit, then SIGKILL; removes the
    /// temporary directory.
    pub async fn stop(mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(self.pid());
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.kill();
    }

    /// SIGKILL (if still running) and reap.
    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    /// A server dropped on an error path is killed, so no child outlives the suite.
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fails unless `path` is an existing file with an execute bit.
pub fn check_executable(path: &Path) -> Result<(), SuiteError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(()),
        _ => Err(SuiteError::NotExecutable(path.display().to_string())),
    }
}

/// `uname -srm`, or the compile-time OS and architecture if uname cannot run.
pub fn uname() -> String {
    match Command::new("uname").arg("-srm").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// `<path> (<first line of path --version>)`; a binary that does not exit within two
/// seconds is killed and described by its path alone.
pub fn describe_binary(path: &Path) -> String {
    let shown = path.display().to_string();
    let child = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return shown;
    };
    for _ in 0..200 {
        match child.try_wait() {
            Ok(Some(_)) => {
                let mut text = String::new();
                if let Some(mut stdout) = child.stdout.take() {
                    use std::io::Read;
                    let _ = stdout.read_to_string(&mut text);
                }
                return match text.lines().next().map(str::trim) {
                    Some(line) if !line.is_empty() => format!("{shown} ({line})"),
                    _ => shown,
                };
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    shown
}

fn program_path(program: &Program) -> &Path {
    match program {
        Program::Nsqd(path) => path,
        Program::FakeNsqd { bench, .. } => bench,
    }
}

/// `GET /ping` answered `200`.
async fn ping(http: SocketAddr) -> bool {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(http).await?;
        stream
            .write_all(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        io::Result::Ok(answer)
    };
    match tokio::time::timeout(Duration::from_secs(1), exchange).await {
        Ok(Ok(answer)) => {
            answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200")
        }
        _ => false,
    }
}

/// Sends SIGTERM to `pid` (our own child, not yet reaped, so the id is still its).
fn terminate(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of `/proc/PID/stat`'s CPU times.
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    let per_second = per_second.max(1);
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

/// `utime + stime` (clock ticks) from the text of `/proc/PID/stat`.
///
/// The second field, the command name in parentheses, may itself hold spaces and
/// parentheses, so the fields are counted from after the *last* `)`: there, the state
/// is field 3, and utime and stime are fields 14 and 15.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    // Field 3 (state) is the first after the name; utime is 11 further on.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        clock_ticks_per_second, free_port, parse_stat_cpu_ticks, parse_status_rss_kib,
        ticks_to_duration, Program, Server, TempDir,
    };
    use crate::bench::suite::SuiteError;

    /// A real line of a process whose name holds spaces and parentheses.
    const STAT: &str = "4242 (nsqd (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                        250 37 0 0 20 0 6 0 123456 1000000 2000 18446744073709551615 \
                        1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        assert_eq!(parse_stat_cpu_ticks(STAT), Some(287));
        assert_eq!(
            parse_stat_cpu_ticks("1 (a) b) R 0 0 0 0 0 0 0 0 0 0 7 8 0"),
            Some(15)
        );
    }

    #[test]
    fn a_short_or_garbled_stat_is_none() {
        assert_eq!(parse_stat_cpu_ticks("4242 (nsqd) S 1 2 3"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis 1 2 3"), None);
        assert_eq!(
            parse_stat_cpu_ticks("1 (a) R 0 0 0 0 0 0 0 0 0 0 x 8 0"),
            None
        );
    }

    #[test]
    fn our_own_stat_parses() {
        #[allow(clippy::disallowed_methods)]
        let text = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat_cpu_ticks(&text).is_some(), "{text}");
        assert!(clock_ticks_per_second() > 0);
    }

    #[test]
    fn rss_comes_from_the_vmrss_line() {
        let status = "Name:\tnsqd\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t6\n";
        assert_eq!(parse_status_rss_kib(status), Some(12345));
        assert_eq!(parse_status_rss_kib("Name:\tkthreadd\n"), None);
        assert_eq!(parse_status_rss_kib("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn ticks_become_time() {
        assert_eq!(ticks_to_duration(287, 100), Duration::from_millis(2870));
        assert_eq!(ticks_to_duration(3, 1000), Duration::from_millis(3));
        assert_eq!(ticks_to_duration(5, 0), Duration::from_secs(5));
    }

    #[test]
    fn the_temp_dir_goes_away() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().to_path_buf();
        let file = dir.write("a.txt", b"x").unwrap();
        #[allow(clippy::disallowed_methods)]
        let read = std::fs::read(&file).unwrap();
        assert_eq!(read, b"x");
        drop(dir);
        #[allow(clippy::disallowed_methods)]
        let gone = !path.exists();
        assert!(gone);
        assert_ne!(free_port().unwrap(), 0);
    }

    /// A child that exits at once is reported with its log, after the retries.
    #[tokio::test]
    async fn a_server_that_exits_is_an_error_with_its_log() {
        // sh refuses `--tcp-address=...` as an option and exits at once.
        let program = Program::Nsqd("/bin/sh".into());
        let err = Server::start(&program, &[], &[]).await.unwrap_err();
        assert!(matches!(err, SuiteError::Exited { .. }), "{err}");
    }
}
