//! `nsq_to_http`: Go's nsq_to_http (see [`nsq::tools::to_http`]).

use std::process::ExitCode;

use nsq::tools::{app, to_http};

fn main() -> ExitCode {
    app::main(&to_http::FLAGS, |env, flags, stop| async move {
        to_http::run(env, &flags, stop, &mut std::io::stdout()).await
    })
}
