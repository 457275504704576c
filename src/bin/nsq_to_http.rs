//! `nsq_to_http`: Go's nsq_to_http (see [`nsq::tools::to_http`]).

use std::process::ExitCode;

use nsq::env::Env;
use nsq::tools::{app, to_http};

fn main() -> ExitCode {
    let flags = match app::parse_command_line(&to_http::FLAGS) {
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
        to_http::run(Env::real(), &flags, stop, &mut stdout).await
    })
}
