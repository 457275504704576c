//! Tests of the whole command line: syntax, precedence, config errors, help and version.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use super::*;
use crate::nsqd::options::default_node_id;

/// Parses `args` with the config files in `files` (path → text) standing in for the disk.
fn parse_with_files(args: &[&str], files: &[(&str, &str)]) -> Result<CliAction, CliError> {
    let files: BTreeMap<String, String> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    parse_args_with(args, |path| {
        files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    })
}

fn run(args: &[&str]) -> Options {
    run_with_config(args, "")
}

fn run_with_config(args: &[&str], config: &str) -> Options {
    match parse_with_files(args, &[("nsqd.cfg", config)]) {
        Ok(CliAction::Run(options)) => *options,
        other => panic!("expected Run for {args:?}, got {other:?}"),
    }
}

fn fail(args: &[&str]) -> CliError {
    fail_with_config(args, "")
}

fn fail_with_config(args: &[&str], config: &str) -> CliError {
    match parse_with_files(args, &[("nsqd.cfg", config)]) {
        Err(e) => e,
        Ok(action) => panic!("expected an error for {args:?}, got {action:?}"),
    }
}

/// The first line of an error: Go's message, before the usage text.
fn first_line(err: &CliError) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn no_arguments_give_the_defaults() {
    assert_eq!(run(&[]), Options::default());
}

#[test]
fn every_go_syntax_form_sets_a_value() {
    for form in [
        &["-mem-queue-size=7"][..],
        &["-mem-queue-size", "7"],
        &["--mem-queue-size=7"],
        &["--mem-queue-size", "7"],
    ] {
        assert_eq!(run(form).mem_queue_size, 7, "{form:?}");
    }
}

#[test]
fn booleans_bare_and_with_every_go_spelling() {
    assert!(!run(&["-snappy=false"]).snappy);
    assert!(
        run(&["-snappy=false", "-snappy"]).snappy,
        "bare means true; the last one wins"
    );
    for word in ["1", "t", "T", "true", "TRUE", "True"] {
        assert!(
            run(&["-deflate=false", &format!("--deflate={word}")]).deflate,
            "{word}"
        );
    }
    for word in ["0", "f", "F", "false", "FALSE", "False"] {
        assert!(
            !run(&[&format!("-statsd-mem-stats={word}")]).statsd_mem_stats,
            "{word}"
        );
    }
    assert!(run(&["-statsd-exclude-ephemeral"]).statsd_exclude_ephemeral);
}

#[test]
fn durations_in_go_syntax() {
    let cases = [
        ("90s", Duration::from_secs(90)),
        ("1m30s", Duration::from_secs(90)),
        ("500ms", Duration::from_millis(500)),
        ("1.5h", Duration::from_secs(5400)),
        ("300us", Duration::from_micros(300)),
        ("10ns", Duration::from_nanos(10)),
        ("0", Duration::ZERO),
        ("-0", Duration::ZERO),
        ("-0s", Duration::ZERO),
    ];
    for (text, want) in cases {
        assert_eq!(run(&["-msg-timeout", text]).msg_timeout, want, "{text}");
    }
    assert_eq!(
        first_line(&fail(&["-msg-timeout=60"])),
        "invalid value \"60\" for flag -msg-timeout: time: missing unit in duration \"60\""
    );
    assert_eq!(
        first_line(&fail(&["-sync-timeout=-1s"])),
        "invalid value \"-1s\" for flag -sync-timeout: negative duration"
    );
}

#[test]
fn integers_take_go_literals() {
    assert_eq!(run(&["-max-msg-size=0x100"]).max_msg_size, 256);
    assert_eq!(run(&["-max-rdy-count=1_000"]).max_rdy_count, 1000);
    assert_eq!(
        run(&["-node-id=010"]).id,
        8,
        "a leading zero is octal in Go"
    );
    assert_eq!(run(&["-broadcast-tcp-port=4000"]).broadcast_tcp_port, 4000);
    assert_eq!(
        first_line(&fail(&["-broadcast-http-port=70000"])),
        "invalid value \"70000\" for flag -broadcast-http-port: value out of range"
    );
}

#[test]
fn repeatable_flags_collect_every_value() {
    let options = run(&[
        "-lookupd-tcp-address=a:4160",
        "--lookupd-tcp-address",
        "b:4160",
        "-auth-http-address=http://auth/",
        "-auth-http-address=auth2:80",
    ]);
    assert_eq!(options.nsqlookupd_tcp_addresses, vec!["a:4160", "b:4160"]);
    assert_eq!(
        options.auth_http_addresses,
        vec!["http://auth/", "auth2:80"]
    );
}

#[test]
fn percentiles_repeat_or_comma_separate_and_sort_descending() {
    let options = run(&[
        "-e2e-processing-latency-percentile=0.5,1.0",
        "-e2e-processing-latency-percentile",
        "0.99",
    ]);
    assert_eq!(
        options.e2e_processing_latency_percentiles,
        vec![1.0, 0.99, 0.5]
    );
    assert!(matches!(
        fail(&["-e2e-processing-latency-percentile=0.5,0"]),
        CliError::Startup(StartupError::E2ePercentile(p)) if p == 0.0
    ));
    assert!(first_line(&fail(&["-e2e-processing-latency-percentile=x"]))
        .starts_with("invalid value \"x\" for flag -e2e-processing-latency-percentile: "));
}

#[test]
fn tls_required_is_a_bool_flag_that_takes_tcp_https() {
    // A certificate makes the combinations valid.
    let with_cert = |extra: &str| run(&["-tls-cert=c.pem", "-tls-key=k.pem", extra]).tls_required;
    assert_eq!(with_cert("-tls-required"), 2);
    assert_eq!(with_cert("-tls-required=true"), 2);
    assert_eq!(with_cert("-tls-required=tcp-https"), 1);
    assert_eq!(with_cert("-tls-required=false"), 0);
    assert_eq!(
        first_line(&fail(&["-tls-required=maybe"])),
        "invalid boolean value \"maybe\" for -tls-required: strconv.ParseBool: parsing \"maybe\": invalid syntax"
    );
    assert!(matches!(
        fail(&["-tls-required"]),
        CliError::Startup(StartupError::TlsWithoutCert)
    ));
}

#[test]
fn tls_client_auth_policy_forces_tls_required() {
    let options = run(&[
        "-tls-cert=c.pem",
        "-tls-key=k.pem",
        "-tls-client-auth-policy=require",
    ]);
    assert_eq!(options.tls_required, 2);
}

#[test]
fn tls_min_version_and_log_level_values() {
    for version in ["ssl3.0", "tls1.0", "tls1.1", "tls1.2", "tls1.3"] {
        assert_eq!(
            run(&[&format!("-tls-min-version={version}")]).tls_min_version,
            version
        );
    }
    assert_eq!(run(&["-tls-min-version=TLS1.2"]).tls_min_version, "tls1.2");
    assert_eq!(
        first_line(&fail(&["-tls-min-version=tls2"])),
        "invalid value \"tls2\" for flag -tls-min-version: unknown tlsVersionOption \"tls2\""
    );
    for (text, want) in [
        ("debug", "debug"),
        ("INFO", "info"),
        ("Warn", "warn"),
        ("error", "error"),
        ("FATAL", "fatal"),
    ] {
        assert_eq!(run(&["-log-level", text]).log_level, want);
    }
    assert_eq!(
        first_line(&fail(&["-log-level=loud"])),
        "invalid value \"loud\" for flag -log-level: invalid log level 'loud' (debug, info, warn, error, fatal)"
    );
}

#[test]
fn deprecated_flags_are_accepted_and_do_nothing() {
    assert_eq!(run(&["-verbose", "-worker-id"]), Options::default());
    assert_eq!(
        run(&["--verbose=false", "--worker-id=true"]),
        Options::default()
    );
    assert_eq!(
        first_line(&fail(&["-worker-id=5"])),
        "invalid boolean value \"5\" for -worker-id: parse error",
        "Go v1.3.0's --worker-id is a boolean"
    );
}

#[test]
fn parsing_stops_at_the_first_non_flag() {
    let options = run(&["-mem-queue-size=3", "extra", "-mem-queue-size=4", "-nope"]);
    assert_eq!(options.mem_queue_size, 3);
    assert_eq!(run(&["--", "-nope"]), Options::default());
}

#[test]
fn help_and_version() {
    for form in ["-h", "--help", "-help"] {
        assert_eq!(parse_args([form]).unwrap(), CliAction::Help(usage()));
    }
    let version = CliAction::Version("nsqd v1.3.0 (built w/rustc)".into());
    assert_eq!(parse_args(["--version"]).unwrap(), version);
    assert_eq!(
        parse_args(["-version", "-config=/nonexistent"]).unwrap(),
        version,
        "before the config"
    );
    assert!(matches!(
        parse_args(["-version=false"]).unwrap(),
        CliAction::Run(_)
    ));
}

#[test]
fn command_line_errors_print_go_message_then_usage_and_exit_2() {
    let err = fail(&["--no-such-flag"]);
    assert_eq!(err.exit_code(), 2);
    assert_eq!(
        err.to_string(),
        format!("flag provided but not defined: -no-such-flag\n{}", usage())
    );
    let err = fail(&["-mem-queue-size=big"]);
    assert_eq!(
        err.to_string(),
        format!(
            "invalid value \"big\" for flag -mem-queue-size: parse error\n{}",
            usage()
        )
    );
    assert_eq!(
        first_line(&fail(&["-data-path"])),
        "flag needs an argument: -data-path"
    );
}

#[test]
fn startup_checks_run_and_exit_1() {
    let err = fail(&["-max-deflate-level=10"]);
    assert_eq!(err.exit_code(), 1);
    assert_eq!(
        err.to_string(),
        "failed to instantiate nsqd - --max-deflate-level must be [1,9]"
    );
    assert!(matches!(
        fail(&["-node-id=1024"]),
        CliError::Startup(StartupError::NodeId)
    ));
    assert!(matches!(
        fail(&["-statsd-address=127.0.0.1:8125", "-statsd-interval=1s"]),
        CliError::Startup(StartupError::StatsdInterval)
    ));
}

#[test]
fn e2e_latency_percentiles_are_supported() {
    let options = run(&[
        "--e2e-processing-latency-percentile=0.99,0.5",
        "--e2e-processing-latency-window-time=1m",
    ]);
    assert_eq!(options.e2e_processing_latency_percentiles, vec![0.99, 0.5]);
}

#[test]
fn precedence_flag_over_config_over_default() {
    let config =
        "mem_queue_size = 5\nmsg_timeout = \"30s\"\nnsqlookupd_tcp_addresses = [\"cfg:4160\"]\n";
    let from_config = run_with_config(&["-config=nsqd.cfg"], config);
    assert_eq!(from_config.mem_queue_size, 5);
    assert_eq!(from_config.msg_timeout, Duration::from_secs(30));
    assert_eq!(
        from_config.max_rdy_count,
        Options::default().max_rdy_count,
        "untouched keys keep defaults"
    );

    let overridden = run_with_config(
        &[
            "-mem-queue-size=9",
            "--config",
            "nsqd.cfg",
            "-lookupd-tcp-address=flag:4160",
        ],
        config,
    );
    assert_eq!(
        overridden.mem_queue_size, 9,
        "a flag wins even when given before --config"
    );
    assert_eq!(overridden.msg_timeout, Duration::from_secs(30));
    assert_eq!(
        overridden.nsqlookupd_tcp_addresses,
        vec!["flag:4160"],
        "flags replace the config list"
    );
}

#[test]
fn config_values_go_accepts() {
    let config = r#"
id = 42
msg_timeout = 1500            # integers are milliseconds
sync_timeout = "1m30s"
deflate = "false"             # booleans may be strings
max_rdy_count = "77"          # integers may be strings
nsqlookupd_tcp_addresses = "a:4160,b:4160"
e2e_processing_latency_percentiles = [1, 0.99]
log_level = "WARN"
tls_min_version = ""          # empty keeps the default
verbose = false
"#;
    let options = run_with_config(&["-config=nsqd.cfg"], config);
    assert_eq!(options.id, 42);
    assert_eq!(options.msg_timeout, Duration::from_millis(1500));
    assert_eq!(options.sync_timeout, Duration::from_secs(90));
    assert!(!options.deflate);
    assert_eq!(options.max_rdy_count, 77);
    assert_eq!(options.nsqlookupd_tcp_addresses, vec!["a:4160", "b:4160"]);
    assert_eq!(options.e2e_processing_latency_percentiles, vec![1.0, 0.99]);
    assert_eq!(options.log_level, "warn");
    assert_eq!(options.tls_min_version, "tls1.0");

    let tls = "tls_cert = \"c\"\ntls_key = \"k\"\n";
    for (value, want) in [("true", 2), ("false", 0), ("\"tcp-https\"", 1), ("1", 2)] {
        let options = run_with_config(
            &["-config=nsqd.cfg"],
            &format!("{tls}tls_required = {value}\n"),
        );
        assert_eq!(options.tls_required, want, "tls_required = {value}");
    }
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        ("mem_queue_sise = 5", "unknown key \"mem_queue_sise\""),
        ("mem-queue-size = 5", "unknown key \"mem-queue-size\""),
        (
            "mem_queue_size = \"lots\"",
            "key \"mem_queue_size\": invalid integer \"lots\"",
        ),
        (
            "mem_queue_size = 1.5",
            "key \"mem_queue_size\": expected an integer, found float",
        ),
        (
            "msg_timeout = \"60\"",
            "key \"msg_timeout\": time: missing unit in duration \"60\"",
        ),
        (
            "msg_timeout = \"-1s\"",
            "key \"msg_timeout\": negative duration \"-1s\" is not allowed",
        ),
        (
            "msg_timeout = true",
            "key \"msg_timeout\": expected a duration string such as \"60s\", found boolean",
        ),
        (
            "snappy = 1",
            "key \"snappy\": expected a boolean, found integer",
        ),
        (
            "tcp_address = 4150",
            "key \"tcp_address\": expected a string, found integer",
        ),
        (
            "nsqlookupd_tcp_addresses = [1]",
            "key \"nsqlookupd_tcp_addresses\": expected strings, found integer",
        ),
        (
            "log_level = \"loud\"",
            "key \"log_level\": invalid log level 'loud' (debug, info, warn, error, fatal)",
        ),
        (
            "tls_min_version = \"tls2\"",
            "key \"tls_min_version\": unknown tlsVersionOption \"tls2\"",
        ),
        (
            "broadcast_tcp_port = 65536",
            "key \"broadcast_tcp_port\": not a port number (0-65535)",
        ),
        ("[section]\nx = 1", "unknown key \"section\""),
    ];
    for (config, want) in cases {
        let err = fail_with_config(&["-config=nsqd.cfg"], config);
        assert_eq!(err.exit_code(), 1);
        assert_eq!(
            err.to_string(),
            format!("failed to load config file nsqd.cfg - {want}"),
            "{config}"
        );
    }
}

#[test]
fn config_that_is_not_toml_or_missing() {
    let err = fail_with_config(&["-config=nsqd.cfg"], "mem_queue_size = = 5");
    assert!(
        matches!(
            err,
            CliError::Cli(crate::go_cli::CliError::Config {
                source: crate::go_cli::ConfigError::NotToml(_),
                ..
            })
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with("failed to load config file nsqd.cfg - "));
    let err = fail(&["-config=missing.cfg"]);
    assert_eq!(
        err.to_string(),
        "failed to load config file missing.cfg - no such file"
    );
    assert_eq!(err.exit_code(), 1);
    assert_eq!(
        run(&["-config="]),
        Options::default(),
        "an empty path means no file"
    );
}

/// `tests/data/nsqd.cfg.example` (modelled on Go's contrib/nsqd.cfg.example) holds every
/// config key and parses.
#[test]
fn example_config_with_every_key_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nsqd.cfg.example");
    let text = crate::env::read_config_file(path).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    for flag in flags::FLAGS {
        if let Some(key) = flag.cfg_key {
            assert!(table.contains_key(key), "the example lacks {key}");
        }
    }
    let options = match parse_args(["-config", path]).unwrap() {
        CliAction::Run(options) => options,
        other => panic!("{other:?}"),
    };
    assert_eq!(options.id, 515);
    assert_eq!(options.nsqlookupd_tcp_addresses, vec!["127.0.0.1:4160"]);
    assert_eq!(
        options.e2e_processing_latency_percentiles,
        vec![1.0, 0.99, 0.95]
    );
    assert_eq!(options.max_output_buffer_timeout, Duration::from_secs(30));
}

/// The usage text matches Go nsqd v1.3.0's `--help` line for line.
#[test]
fn help_matches_go_golden_transcript() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/golden/nsqd-help.txt"
    );
    let Ok(golden) = crate::env::read_config_file(path) else {
        println!("note: {path} is absent; skipping the golden help comparison");
        return;
    };
    let hostname = crate::env::os_hostname();
    let expected: Vec<String> = golden
        .lines()
        .skip_while(|line| *line != "Usage of nsqd:")
        .take_while(|line| !line.starts_with("====="))
        .map(|line| {
            line.replace("<HOST>", &hostname)
                .replace("<NODE_ID>", &default_node_id(&hostname).to_string())
        })
        .collect();
    assert!(expected.len() > 100, "golden usage block found");
    let ours = usage();
    let ours = without_flags_of_ours(&ours);
    for (i, (want, got)) in expected.iter().zip(&ours).enumerate() {
        assert_eq!(got, want, "usage line {}", i + 1);
    }
    assert_eq!(ours.len(), expected.len());
}

/// The usage text without the flags nsq-rs has and Go has not (each a name line and a
/// description line).
fn without_flags_of_ours(usage: &str) -> Vec<&str> {
    const OURS: &[&str] = &[
        "  -max-deferred-memory int",
        "  -replica-auth-secret string",
        "  -replica-failover-timeout duration",
        "  -replica-peer value",
        "  -replica-timeout duration",
        "  -replication-factor int",
    ];
    let mut lines = Vec::new();
    let mut skip_next = false;
    for line in usage.lines() {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if OURS.contains(&line) {
            skip_next = true;
            continue;
        }
        lines.push(line);
    }
    lines
}

#[test]
fn max_deferred_memory_is_a_flag_and_a_config_key() {
    let usage = usage();
    assert!(
        usage.contains("  -max-deferred-memory int\n    \tmaximum bytes of deferred messages kept in memory per channel; the rest wait on disk (nsq-rs only) (default 33554432)\n"),
        "{usage}"
    );
}
