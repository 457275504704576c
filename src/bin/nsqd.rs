//! The `nsqd` binary: Go nsqd's command line and exit codes around [`nsq::nsqd::Nsqd`].
//!
//! Parse flags and config (help and version exit 0, a bad command line exits 2), set up
//! logging, start nsqd, serve until SIGINT or SIGTERM, shut down gracefully, exit 0. Any
//! startup failure prints one `FATAL` line and exits 1.

use std::process::ExitCode;
use std::sync::Arc;

use nsq::daemon::{self, init_logging, level_filter, ExitSignals, LogFilterHandle};
use nsq::env::Env;
use nsq::nsqd::cli::{self, CliAction, CliError};
use nsq::nsqd::runtime_options::LogLevel;
use nsq::nsqd::{Nsqd, Options};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let options = match cli::parse_args(args) {
        Ok(CliAction::Run(options)) => *options,
        Ok(CliAction::Help(text)) => {
            eprint!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(CliAction::Version(line)) => {
            println!("{line}");
            return ExitCode::SUCCESS;
        }
        Err(err) => return report(&err),
    };
    let options = match with_data_path(options) {
        Ok(options) => options,
        Err(message) => return fatal(&message),
    };
    let log_filter = init_logging(&options.log_level, &options.log_prefix);
    daemon::raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fatal(&format!("failed to start the tokio runtime - {e}")),
    };
    runtime.block_on(serve(options, log_filter))
}

/// Starts nsqd and serves until a signal (exit 0) or until it fails (exit 1).
async fn serve(options: Options, log_filter: LogFilterHandle) -> ExitCode {
    let mut signals = match ExitSignals::watch() {
        Ok(signals) => signals,
        Err(e) => return fatal(&format!("failed to watch SIGINT/SIGTERM - {e}")),
    };
    let nsqd = match Nsqd::new(options, Env::real()).await {
        Ok(nsqd) => nsqd,
        Err(e) => return fatal(&format!("failed to instantiate nsqd - {e}")),
    };
    nsqd.set_log_level_hook(Arc::new(move |level: LogLevel| {
        if let Err(error) = log_filter.reload(level_filter(level.name())) {
            tracing::warn!(%error, "could not change the log level");
        }
    }));
    let server = nsqd.clone();
    let mut running = tokio::spawn(async move { server.run().await });
    let finished_early = tokio::select! {
        biased;
        _ = signals.recv() => None,
        result = &mut running => Some(result),
    };
    if let Some(result) = finished_early {
        nsqd.shutdown().await;
        return match result {
            Ok(Ok(())) => {
                tracing::info!("nsqd stopped");
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => fatal(&e.to_string()),
            Err(e) => fatal(&format!("nsqd task failed - {e}")),
        };
    }
    tracing::info!("received a signal, shutting down");
    nsqd.shutdown().await;
    match running.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => fatal(&e.to_string()),
        Err(e) => fatal(&format!("nsqd task failed - {e}")),
    }
}

/// Go's `--data-path` default: the current working directory.
fn with_data_path(mut options: Options) -> Result<Options, String> {
    if options.data_path.is_empty() {
        let cwd = std::env::current_dir()
            .map_err(|e| format!("failed to read the current directory - {e}"))?;
        options.data_path = cwd.to_string_lossy().into_owned();
    }
    Ok(options)
}

/// Go's exit for a command-line failure.
fn report(err: &CliError) -> ExitCode {
    match err {
        CliError::Cli(err) => daemon::report("nsqd", err),
        CliError::Startup(_) => fatal(&err.to_string()),
    }
}

/// One fatal line (Go's `[nsqd] FATAL: ...`), exit 1.
fn fatal(message: &str) -> ExitCode {
    daemon::fatal("nsqd", message)
}
