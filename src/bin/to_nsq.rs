//! `to_nsq`: Go's to_nsq (see [`nsq::tools::to_nsq`]).

use std::process::ExitCode;

use nsq::tools::{app, to_nsq};

fn main() -> ExitCode {
    app::main(&to_nsq::FLAGS, |env, flags, stop| async move {
        to_nsq::run(
            env,
            &flags,
            &mut tokio::io::BufReader::new(tokio::io::stdin()),
            stop,
        )
        .await
    })
}
