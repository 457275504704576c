//! `nsq_stat`: Go's nsq_stat (see [`nsq::tools::stat`]).

use std::process::ExitCode;

use nsq::tools::{app, stat};

fn main() -> ExitCode {
    app::main(&stat::FLAGS, |env, flags, stop| async move {
        stat::run(env, &flags, stop, &mut std::io::stdout()).await
    })
}
