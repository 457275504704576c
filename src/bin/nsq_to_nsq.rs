//! `nsq_to_nsq`: Go's nsq_to_nsq (see [`nsq::tools::nsq_to_nsq`]).

use std::process::ExitCode;

use nsq::tools::{app, nsq_to_nsq};

fn main() -> ExitCode {
    app::main(&nsq_to_nsq::FLAGS, |env, flags, stop| async move {
        nsq_to_nsq::run(env, &flags, stop, &mut std::io::stdout()).await
    })
}
