//! `nsq_to_file`: Go's nsq_to_file (see [`nsq::tools::to_file`]).

use std::process::ExitCode;

use nsq::env::Env;
use nsq::tools::{app, to_file};
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Go names this tool's flag set "nsqd", so its usage says `Usage of nsqd:`.
    let flags = match app::parse_or_report(&to_file::FLAGS, to_file::USAGE_NAME, &args) {
        Ok(flags) => flags,
        Err(code) => return code,
    };
    let (level, prefix) = match to_file::log_settings(&flags) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    nsq::daemon::init_logging(level, &prefix);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return app::fatal(&error.to_string()),
    };
    runtime.block_on(async {
        let stop = match app::stop_on_signals() {
            Ok(stop) => stop,
            Err(error) => return app::fatal(&error.to_string()),
        };
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => return app::fatal(&error.to_string()),
        };
        let (hup, hup_seen) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                hup.send_modify(|count| *count += 1);
            }
        });
        to_file::run(Env::real(), &flags, stop, hup_seen).await
    })
}
