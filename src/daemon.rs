//! What the daemon binaries share around the library types: Go-style logging to stderr
//! (every line led by `--log-prefix`, the level changeable at run time) and the wait for
//! SIGINT or SIGTERM, and Go's raised open file limit.

use std::io::Write;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Registry};

/// Changes the level of the installed log filter (`PUT /config/log_level`).
pub type LogFilterHandle = reload::Handle<LevelFilter, Registry>;

/// Logs to stderr at Go level `level`, every line starting with `prefix` as in Go; the
/// level sits behind a reload layer so it can change while the daemon runs.
pub fn init_logging(level: &str, prefix: &str) -> LogFilterHandle {
    let (filter, handle) = reload::Layer::new(level_filter(level));
    let prefix = prefix.to_string();
    let output = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(move || PrefixedStderr {
            prefix: prefix.clone(),
        });
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    handle
}

/// The tracing filter for a Go level name (`fatal` keeps errors too: tracing has no level
/// above error).
pub fn level_filter(level: &str) -> LevelFilter {
    match level {
        "debug" => LevelFilter::DEBUG,
        "warn" => LevelFilter::WARN,
        "error" | "fatal" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// Stderr with a prefix before each write; the fmt layer writes one event per call.
struct PrefixedStderr {
    prefix: String,
}

impl Write for PrefixedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(self.prefix.as_bytes())?;
        stderr.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// SIGINT and SIGTERM, the two signals Go's daemons exit gracefully on.
pub struct ExitSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ExitSignals {
    /// Starts watching both signals (must run inside the tokio runtime).
    pub fn watch() -> std::io::Result<ExitSignals> {
        Ok(ExitSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either.
    pub async fn recv(&mut self) {
        tokio::select! {
            biased;
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// One fatal line on stderr, as Go's `[<daemon>] FATAL: ...`; exit status 1.
pub fn fatal(daemon: &str, message: &str) -> std::process::ExitCode {
    eprintln!("[{daemon}] FATAL: {message}");
    std::process::ExitCode::from(1)
}

/// Prints a command-line failure (anything but a bad command line as Go's fatal line) and
/// returns Go's exit status.
///
/// A bad command line prints Go's one-line message and where the flags are, instead of
/// Go's message followed by the whole usage text, where the message scrolls out of
/// sight; the exit status stays Go's 2.
pub fn report(daemon: &str, err: &crate::go_cli::CliError) -> std::process::ExitCode {
    match err {
        crate::go_cli::CliError::Usage { message, .. } => {
            eprintln!("{message} (run {daemon} -h for the flags)");
            std::process::ExitCode::from(err.exit_code())
        }
        _ => fatal(daemon, &err.to_string()),
    }
}

/// Raises the soft limit on open files to the hard limit, as every Go program does at
/// start (Go 1.19 and later), so Go nsqd's users get the same number of connections
/// from ours without touching `ulimit`. Failing to raise it is not fatal: the daemon runs
/// with what it has.
pub fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current >= limit.maximum {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(error) = setrlimit(Resource::Nofile, raised) {
        tracing::warn!(%error, "could not raise the open file limit");
    }
}
