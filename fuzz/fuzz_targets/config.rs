//! Go flag, duration and TOML config parsing, for nsqd and nsqlookupd.
//!
//! Input: command-line arguments one per line, then a NUL, then the `--config` file's
//! TOML. Options that parse pass Go's startup checks; every argument that parses as a Go
//! duration formats back to text that parses to the same nanoseconds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsq::go_time::{format_go_duration, parse_deadline, parse_go_duration};
use nsq::nsqd::cli::CliAction;

fuzz_target!(|data: &[u8]| {
    let (args, config) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let args = String::from_utf8_lossy(args);
    let config = String::from_utf8_lossy(config).into_owned();
    let mut argv: Vec<&str> = Vec::new();
    if !config.is_empty() {
        argv.push("--config=fuzz.toml");
    }
    argv.extend(args.split('\n').filter(|a| !a.is_empty()).take(32));

    for arg in &argv {
        let value = arg.split_once('=').map_or(*arg, |(_, v)| v);
        if let Ok(ns) = parse_go_duration(value) {
            let text = format_go_duration(ns);
            assert_eq!(
                parse_go_duration(&text).ok(),
                Some(ns),
                "{value:?} -> {text:?}"
            );
        }
        let _ = parse_deadline(value);
    }

    let read = |_: &str| Ok(config.clone());
    if let Ok(CliAction::Run(options)) = nsq::nsqd::cli::parse_args_with(&argv, read) {
        assert!((1..=9).contains(&options.max_deflate_level));
        assert!((0..1024).contains(&options.id));
        let mut again = (*options).clone();
        nsq::nsqd::cli::startup_checks(&mut again).expect("checked options pass again");
    }
    let read = |_: &str| Ok(config.clone());
    let _ = nsq::lookupd::cli::parse_args_with(&argv, read);
});
