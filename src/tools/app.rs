//! What every tool's `main` does the same way: read the command line (Go's `-h`, its exit
//! codes), report a fatal error as Go's `log.Fatal` does, and the version line.

use std::process::ExitCode;

use super::flag_set::{Flag, FlagSet, FlagValues, Kind};
use super::nsq_config::NsqConfig;
use crate::go_cli::{CliAction, CliError};

/// The NSQ version our tools answer to, as Go's tools print it (`nsq_tail v1.3.0`).
pub const VERSION: &str = "1.3.0";

/// The User-Agent a tool sends in IDENTIFY, in Go's `<app>/<version> <client>` shape.
pub fn user_agent(app: &str) -> String {
    format!("{app}/{VERSION} nsq-rs/{}", env!("CARGO_PKG_VERSION"))
}

/// The command line after `argv[0]`, read with `flags`. `Err` holds the exit code after
/// the answer was printed: `-h` prints Go's usage to stderr (exit 0); a bad flag prints
/// Go's one-line message and where to find the flags (exit 2), so the error is not lost
/// above a long usage text.
pub fn parse_command_line(flags: &FlagSet) -> Result<FlagValues, ExitCode> {
    let mut argv = std::env::args();
    let program = argv.next().unwrap_or_else(|| "nsq-tool".to_string());
    let args: Vec<String> = argv.collect();
    parse_or_report(flags, &program, &args)
}

/// [`parse_command_line`] for a given `program` name and arguments.
pub fn parse_or_report(
    flags: &FlagSet,
    program: &str,
    args: &[String],
) -> Result<FlagValues, ExitCode> {
    match flags.parse(program, args) {
        Ok(CliAction::Run(values)) => Ok(*values),
        Ok(CliAction::Help(usage)) | Ok(CliAction::Version(usage)) => {
            eprint!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(CliError::Usage { message, .. }) => {
            eprintln!("{message} (run {program} -h for the flags)");
            Err(ExitCode::from(2))
        }
        Err(other) => Err(fatal(&other.to_string())),
    }
}

/// Go's `log.Fatal`: one line on stderr with the standard logger's date and time, exit 1.
pub fn fatal(message: &str) -> ExitCode {
    eprintln!("{} {message}", log_time());
    ExitCode::from(1)
}

/// The time as Go's standard logger prints it: `2006/01/02 15:04:05` (UTC here). Read
/// from the system clock: a fatal line ends the process, so no simulation sees it.
pub fn log_time() -> String {
    use crate::env::Clock;
    let ns = u64::try_from(crate::env::RealClock.now_ns()).unwrap_or(0);
    let wall = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    let now = humantime::format_rfc3339_seconds(wall).to_string();
    // "2006-01-02T15:04:05Z" -> "2006/01/02 15:04:05"
    now.trim_end_matches('Z')
        .replacen('-', "/", 2)
        .replacen('T', " ", 1)
}

/// `--consumer-opt`, as every consuming tool of Go's declares it.
pub const CONSUMER_OPT: Flag = Flag::new(
    "consumer-opt",
    Kind::List,
    "",
    "option to passthrough to nsq.Consumer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)",
)
.checked(check_nsq_opt);

/// `--lookupd-http-address`, as every consuming tool of Go's declares it.
pub const LOOKUPD_HTTP_ADDRESS: Flag = Flag::new(
    "lookupd-http-address",
    Kind::List,
    "",
    "lookupd HTTP address (may be given multiple times)",
);

/// `--max-in-flight`, as every consuming tool of Go's declares it.
pub const MAX_IN_FLIGHT: Flag = Flag::new(
    "max-in-flight",
    Kind::Int,
    "200",
    "max number of messages to allow in flight",
);

/// `--nsqd-tcp-address`, as every consuming tool of Go's declares it.
pub const NSQD_TCP_ADDRESS: Flag = Flag::new(
    "nsqd-tcp-address",
    Kind::List,
    "",
    "nsqd TCP address (may be given multiple times)",
);

/// `--version`, as the tools that have one declare it.
pub const VERSION_FLAG: Flag = Flag::new("version", Kind::Bool, "false", "print version string");

/// `--http-client-connect-timeout`, the same in every tool that asks HTTP APIs.
pub const HTTP_CLIENT_CONNECT_TIMEOUT: Flag = Flag::new(
    "http-client-connect-timeout",
    Kind::Duration,
    "2s",
    "timeout for HTTP connect",
);

/// `--version`: prints `<tool> v<VERSION>` to `out` and gives the exit code to return,
/// or `None` when it was not asked for.
pub fn version_requested(
    flags: &FlagValues,
    tool: &str,
    out: &mut (dyn std::io::Write + Send),
) -> Option<ExitCode> {
    if !flags.bool("version") {
        return None;
    }
    let _ = writeln!(out, "{tool} v{VERSION}");
    Some(ExitCode::SUCCESS)
}

/// The HTTP client timeouts from `--http-client-connect-timeout` and
/// `--http-client-request-timeout`.
pub fn http_timeouts(flags: &FlagValues) -> crate::http_client::HttpTimeouts {
    crate::http_client::HttpTimeouts {
        connect: flags.duration("http-client-connect-timeout"),
        request: flags.duration("http-client-request-timeout"),
    }
}

/// A `--consumer-opt`/`--producer-opt` value check for the flag table: the option must
/// be one go-nsq knows and its value must parse.
pub fn check_nsq_opt(value: &str) -> Result<(), String> {
    NsqConfig::new()
        .parse_opt(value)
        .map_err(|error| error.to_string())
}

/// go-nsq's config with every `--<kind>-opt` applied in order, then validated.
pub fn nsq_config(opts: &[String]) -> Result<NsqConfig, super::nsq_config::ConfigError> {
    let mut config = NsqConfig::new();
    for opt in opts {
        config.parse_opt(opt)?;
    }
    Ok(config)
}

/// Go's checks of where a consumer reads from: the fatal message when neither
/// `--nsqd-tcp-address` nor `--lookupd-http-address` is given, or both are.
pub fn sources_error(nsqds: &[String], lookupds: &[String]) -> Option<&'static str> {
    match (nsqds.is_empty(), lookupds.is_empty()) {
        (true, true) => Some("--nsqd-tcp-address or --lookupd-http-address required"),
        (false, false) => Some("use --nsqd-tcp-address or --lookupd-http-address not both"),
        _ => None,
    }
}

/// A tool's whole `main`: reads the command line with `flags` (answering `-h` and bad
/// flags as Go does), logs at info to stderr, and runs `tool` on a one-thread runtime
/// with the real environment and a flag that turns true at SIGINT or SIGTERM.
pub fn main<F, Fut>(flags: &FlagSet, tool: F) -> ExitCode
where
    F: FnOnce(crate::env::Env, FlagValues, tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let values = match parse_command_line(flags) {
        Ok(values) => values,
        Err(code) => return code,
    };
    crate::daemon::init_logging("info", "");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fatal(&error.to_string()),
    };
    runtime.block_on(async {
        let stop = match stop_on_signals() {
            Ok(stop) => stop,
            Err(error) => return fatal(&error.to_string()),
        };
        tool(crate::env::Env::real(), values, stop).await
    })
}

/// A flag that turns true at the first SIGINT or SIGTERM (later ones are swallowed, as
/// in Go's tools). Must run inside the tokio runtime.
pub fn stop_on_signals() -> std::io::Result<tokio::sync::watch::Receiver<bool>> {
    let mut signals = crate::daemon::ExitSignals::watch()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signals.recv().await;
        stop.send_replace(true);
        loop {
            signals.recv().await;
        }
    });
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_time_reads_like_gos_standard_logger() {
        let time = log_time();
        assert_eq!(time.len(), "2006/01/02 15:04:05".len(), "{time}");
        assert_eq!(&time[4..5], "/");
        assert_eq!(&time[10..11], " ");
    }
}
