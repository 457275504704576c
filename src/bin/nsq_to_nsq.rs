//! `nsq_to_nsq`: Go's nsq_to_nsq (see [`nsq::tools::nsq_to_nsq`]).

use std::process::ExitCode;

use nsq::env::Env;
use nsq::tools::{app, nsq_to_nsq};

fn main() -> ExitCode {
    let flags = match app::parse_command_line(&nsq_to_nsq::FLAGS) {
        Ok(flags) => flags,
        Err(code) => return code,
    };
    nsq::daemon::init_logging("info", "");
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
        let mut stdout = std::io::stdout();
        nsq_to_nsq::run(Env::real(), &flags, stop, &mut stdout).await
    })
}
