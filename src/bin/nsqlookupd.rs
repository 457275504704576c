//! The `nsqlookupd` binary: Go nsqlookupd's command line and exit codes around
//! [`nsq::lookupd::Lookupd`].
//!
//! Parse flags and config (help and version exit 0, a bad command line exits 2), set up
//! logging, start, serve until SIGINT or SIGTERM, shut down, exit 0. Any startup failure
//! prints one `FATAL` line and exits 1.

use std::process::ExitCode;

use nsq::daemon::{self, init_logging, ExitSignals};
use nsq::env::Env;
use nsq::lookupd::cli::{self, CliAction, CliError};
use nsq::lookupd::{Lookupd, Options};

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
    let _log_filter = init_logging(&options.log_level, &options.log_prefix);
    daemon::raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fatal(&format!("failed to start the tokio runtime - {e}")),
    };
    runtime.block_on(serve(options))
}

/// Starts nsqlookupd and serves until a signal (exit 0) or until it fails (exit 1).
async fn serve(options: Options) -> ExitCode {
    let mut signals = match ExitSignals::watch() {
        Ok(signals) => signals,
        Err(e) => return fatal(&format!("failed to watch SIGINT/SIGTERM - {e}")),
    };
    let lookupd = match Lookupd::new(options, Env::real()).await {
        Ok(lookupd) => lookupd,
        Err(e) => return fatal(&format!("failed to instantiate nsqlookupd - {e}")),
    };
    let server = lookupd.clone();
    let mut running = tokio::spawn(async move { server.run().await });
    let finished_early = tokio::select! {
        biased;
        _ = signals.recv() => None,
        result = &mut running => Some(result),
    };
    lookupd.shutdown().await;
    let result = match finished_early {
        Some(result) => result,
        None => running.await,
    };
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => fatal(&e.to_string()),
        Err(e) => fatal(&format!("nsqlookupd task failed - {e}")),
    }
}

/// Go's exit for a command-line failure.
fn report(err: &CliError) -> ExitCode {
    daemon::report("nsqlookupd", err)
}

/// One fatal line (Go's `[nsqlookupd] FATAL: ...`), exit 1.
fn fatal(message: &str) -> ExitCode {
    daemon::fatal("nsqlookupd", message)
}
