//! `nsq_tail`: Go's nsq_tail (see [`nsq::tools::tail`]).

use std::process::ExitCode;

use nsq::tools::{app, tail};

fn main() -> ExitCode {
    app::main(&tail::FLAGS, |env, flags, stop| async move {
        tail::run(env, &flags, stop, &mut std::io::stdout()).await
    })
}
