//! The `nsqlookupd` binary's command line, against `golden/nsqlookupd-help.txt`: help and
//! version exit 0, an unknown flag exits 2 with Go's message and the usage text.

use std::process::Command;

fn nsqlookupd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nsqlookupd"))
        .args(args)
        .output()
        .expect("nsqlookupd runs")
}

fn golden_usage() -> String {
    include_str!("../data/nsqlookupd-help.txt").replace("<HOST>", &nsq::env::os_hostname())
}

#[test]
fn help_prints_gos_usage_to_stderr_and_exits_0() {
    let out = nsqlookupd(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&out.stderr), golden_usage());
}

#[test]
fn version_prints_one_line_and_exits_0() {
    let out = nsqlookupd(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nsqlookupd v1.3.0 (built w/"));
    assert!(out.stderr.is_empty());
}

#[test]
fn an_unknown_flag_exits_2_with_one_line() {
    let out = nsqlookupd(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "flag provided but not defined: -no-such-flag (run nsqlookupd -h for the flags)\n"
    );
}
