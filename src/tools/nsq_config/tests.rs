// The TLS tests write throwaway PEM files to a real temp dir.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use super::*;

fn config() -> NsqConfig {
    NsqConfig::with_hostname("box.example.com")
}

/// The error text of setting `key` to `value`.
fn set_error(key: &str, value: Option<&str>) -> String {
    match config().set(key, value) {
        Ok(()) => panic!("{key}={value:?} was accepted"),
        Err(error) => error.to_string(),
    }
}

fn set(key: &str, value: &str) -> NsqConfig {
    let mut cfg = config();
    cfg.set(key, Some(value)).unwrap();
    cfg
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn defaults_are_go_s() {
    let cfg = config();
    assert_eq!(cfg.dial_timeout, secs(1));
    assert_eq!(cfg.read_timeout, secs(60));
    assert_eq!(cfg.write_timeout, secs(1));
    assert_eq!(cfg.lookupd_poll_interval, secs(60));
    assert_eq!(cfg.lookupd_poll_jitter, 0.3);
    assert_eq!(cfg.lookupd_poll_timeout, secs(60));
    assert_eq!(cfg.max_requeue_delay, secs(15 * 60));
    assert_eq!(cfg.default_requeue_delay, secs(90));
    assert_eq!(cfg.backoff_strategy, BackoffStrategy::Exponential);
    assert_eq!(cfg.max_backoff_duration, secs(120));
    assert_eq!(cfg.backoff_multiplier, secs(1));
    assert_eq!(cfg.max_attempts, 5);
    assert_eq!(cfg.low_rdy_idle_timeout, secs(10));
    assert_eq!(cfg.low_rdy_timeout, secs(30));
    assert_eq!(cfg.rdy_redistribute_interval, secs(5));
    assert_eq!(cfg.client_id, "box");
    assert_eq!(cfg.hostname, "box.example.com");
    assert_eq!(cfg.user_agent, "go-nsq/1.1.0");
    assert_eq!(cfg.heartbeat_interval_ms, 30_000);
    assert_eq!(cfg.sample_rate, 0);
    assert!(!cfg.tls_v1 && !cfg.deflate && !cfg.snappy);
    assert_eq!(cfg.tls, TlsOptions::default());
    assert_eq!(cfg.deflate_level, 6);
    assert_eq!(cfg.output_buffer_size, 16384);
    assert_eq!(cfg.output_buffer_timeout_ms, 250);
    assert_eq!(cfg.max_in_flight, 1);
    assert_eq!(cfg.msg_timeout_ms, 0);
    assert_eq!(cfg.auth_secret, "");
    assert!(cfg.lookupd_authorization);
    assert_eq!(cfg.validate(), Ok(()));
}

#[test]
fn new_uses_the_os_hostname() {
    let hostname = crate::env::os_hostname();
    let cfg = NsqConfig::new();
    assert_eq!(cfg.hostname, hostname);
    assert_eq!(cfg.client_id, hostname.split('.').next().unwrap());
    assert_eq!(NsqConfig::with_hostname("plain").client_id, "plain");
}

#[test]
fn dashes_count_as_underscores() {
    assert_eq!(set("max-in-flight", "5").max_in_flight, 5);
    assert_eq!(
        set("low-rdy-idle-timeout", "2s").low_rdy_idle_timeout,
        secs(2)
    );
    assert_eq!(
        set_error("no-such-option", Some("1")),
        "invalid option no_such_option"
    );
    assert_eq!(
        set_error("max-in-flight", Some("abc")),
        r#"failed to coerce option max_in_flight (abc) - strconv.ParseInt: parsing "abc": invalid syntax"#
    );
}

#[test]
fn bools_are_strconv_bools() {
    for truthy in ["1", "t", "T", "TRUE", "true", "True"] {
        assert!(set("tls_v1", truthy).tls_v1, "{truthy}");
    }
    for falsy in ["0", "f", "F", "FALSE", "false", "False"] {
        assert!(
            !set("skip_lookupd_authorization", falsy).lookupd_authorization,
            "{falsy}"
        );
    }
    let mut cfg = config();
    cfg.set("snappy", None).unwrap();
    cfg.set("deflate", None).unwrap();
    assert!(cfg.snappy && cfg.deflate);
    assert_eq!(
        set_error("tls_v1", Some("yes")),
        r#"failed to coerce option tls_v1 (yes) - strconv.ParseBool: parsing "yes": invalid syntax"#
    );
}

#[test]
fn ints_are_base_10_with_go_s_errors() {
    assert_eq!(set("max_in_flight", "+5").max_in_flight, 5);
    assert_eq!(set("output_buffer_size", "-1").output_buffer_size, -1);
    assert_eq!(set("deflate_level", "9").deflate_level, 9);
    assert_eq!(set("sample_rate", "99").sample_rate, 99);
    let cases = [
        (
            "max_in_flight",
            "0x10",
            r#"strconv.ParseInt: parsing "0x10": invalid syntax"#,
        ),
        (
            "max_in_flight",
            "1_000",
            r#"strconv.ParseInt: parsing "1_000": invalid syntax"#,
        ),
        (
            "max_in_flight",
            "",
            r#"strconv.ParseInt: parsing "": invalid syntax"#,
        ),
        (
            "max_in_flight",
            "-",
            r#"strconv.ParseInt: parsing "-": invalid syntax"#,
        ),
        (
            "output_buffer_size",
            "99999999999999999999",
            r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#,
        ),
    ];
    for (key, value, reason) in cases {
        assert_eq!(
            set_error(key, Some(value)),
            format!("failed to coerce option {key} ({value}) - {reason}")
        );
    }
    assert_eq!(
        set_error("max_in_flight", None),
        "failed to coerce option max_in_flight (true) - invalid value type"
    );
}

#[test]
fn int_limits_use_go_s_text() {
    assert_eq!(
        set_error("max_in_flight", Some("-1")),
        "invalid max_in_flight ! -1 < 0"
    );
    assert_eq!(
        set_error("deflate_level", Some("0")),
        "invalid deflate_level ! 0 < 1"
    );
    assert_eq!(
        set_error("deflate_level", Some("10")),
        "invalid deflate_level ! 10 > 9"
    );
    assert_eq!(
        set_error("sample_rate", Some("100")),
        "invalid sample_rate ! 100 > 99"
    );
    assert_eq!(
        set_error("sample_rate", Some("-1")),
        "invalid sample_rate ! -1 < 0"
    );
    // Go truncates this to int32 1 and accepts it; we check the parsed value.
    assert_eq!(
        set_error("sample_rate", Some("4294967297")),
        "invalid sample_rate ! 4294967297 > 99"
    );
}

#[test]
fn uints_refuse_signs_and_wide_values() {
    assert_eq!(set("max_attempts", "0").max_attempts, 0);
    assert_eq!(set("max_attempts", "65535").max_attempts, 65535);
    assert_eq!(
        set_error("max_attempts", Some("-1")),
        r#"failed to coerce option max_attempts (-1) - strconv.ParseUint: parsing "-1": invalid syntax"#
    );
    assert_eq!(
        set_error("max_attempts", Some("+1")),
        r#"failed to coerce option max_attempts (+1) - strconv.ParseUint: parsing "+1": invalid syntax"#
    );
    // Go truncates this to uint16 4464 and accepts it.
    assert_eq!(
        set_error("max_attempts", Some("70000")),
        "invalid max_attempts ! 70000 > 65535"
    );
}

#[test]
fn floats_are_checked_and_printed_as_go() {
    assert_eq!(set("lookupd_poll_jitter", "0.5").lookupd_poll_jitter, 0.5);
    assert_eq!(set("lookupd_poll_jitter", "1").lookupd_poll_jitter, 1.0);
    assert_eq!(set("lookupd_poll_jitter", "0").lookupd_poll_jitter, 0.0);
    let cases = [
        ("1.5", "invalid lookupd_poll_jitter ! 1.5 > 1"),
        ("-0.1", "invalid lookupd_poll_jitter ! -0.1 < 0"),
        ("2e6", "invalid lookupd_poll_jitter ! 2e+06 > 1"),
        ("inf", "invalid lookupd_poll_jitter ! +Inf > 1"),
        (
            "abc",
            r#"failed to coerce option lookupd_poll_jitter (abc) - strconv.ParseFloat: parsing "abc": invalid syntax"#,
        ),
        (
            "1e400",
            r#"failed to coerce option lookupd_poll_jitter (1e400) - strconv.ParseFloat: parsing "1e400": value out of range"#,
        ),
        (
            "NaN",
            "failed to coerce option lookupd_poll_jitter (NaN) - not a number",
        ),
    ];
    for (value, want) in cases {
        assert_eq!(
            set_error("lookupd_poll_jitter", Some(value)),
            want,
            "{value}"
        );
    }
}

#[test]
fn durations_need_a_unit_and_respect_limits() {
    assert_eq!(set("read_timeout", "2m").read_timeout, secs(120));
    assert_eq!(set("read_timeout", "1m30s").read_timeout, secs(90));
    assert_eq!(set("dial_timeout", "0").dial_timeout, Duration::ZERO);
    assert_eq!(
        set("rdy_redistribute_interval", "1ms").rdy_redistribute_interval,
        ms(1)
    );
    assert_eq!(
        set("max_requeue_delay", "60m").max_requeue_delay,
        secs(3600)
    );
    let cases = [
        (
            "read_timeout",
            "1000",
            r#"failed to coerce option read_timeout (1000) - time: missing unit in duration "1000""#,
        ),
        (
            "read_timeout",
            "abc",
            r#"failed to coerce option read_timeout (abc) - time: invalid duration "abc""#,
        ),
        (
            "read_timeout",
            "5d",
            r#"failed to coerce option read_timeout (5d) - time: unknown unit "d" in duration "5d""#,
        ),
        (
            "read_timeout",
            "50ms",
            "invalid read_timeout ! 50ms < 100ms",
        ),
        ("write_timeout", "6m", "invalid write_timeout ! 6m0s > 5m0s"),
        (
            "lookupd_poll_interval",
            "1ms",
            "invalid lookupd_poll_interval ! 1ms < 10ms",
        ),
        (
            "max_requeue_delay",
            "-1s",
            "invalid max_requeue_delay ! -1s < 0s",
        ),
        (
            "default_requeue_delay",
            "61m",
            "invalid default_requeue_delay ! 1h1m0s > 1h0m0s",
        ),
        (
            "rdy_redistribute_interval",
            "0.5ms",
            "invalid rdy_redistribute_interval ! 500µs < 1ms",
        ),
        (
            "low_rdy_timeout",
            "999ms",
            "invalid low_rdy_timeout ! 999ms < 1s",
        ),
        (
            "dial_timeout",
            "-1s",
            "failed to coerce option dial_timeout (-1s) - negative duration",
        ),
        (
            "dial_timeout",
            "",
            r#"failed to coerce option dial_timeout () - time: invalid duration """#,
        ),
    ];
    for (key, value, want) in cases {
        assert_eq!(set_error(key, Some(value)), want, "{key}={value}");
    }
    assert_eq!(
        set_error("dial_timeout", None),
        "failed to coerce option dial_timeout (true) - invalid value type"
    );
}

#[test]
fn identify_durations_become_go_s_milliseconds() {
    assert_eq!(
        set("heartbeat_interval", "45s").heartbeat_interval_ms,
        45_000
    );
    assert_eq!(set("heartbeat_interval", "-1ns").heartbeat_interval_ms, -1);
    assert_eq!(set("heartbeat_interval", "-1ms").heartbeat_interval_ms, -1);
    assert_eq!(
        set("heartbeat_interval", "-1s").heartbeat_interval_ms,
        -1000
    );
    assert_eq!(set("heartbeat_interval", "1.9ms").heartbeat_interval_ms, 1);
    assert_eq!(
        set("output_buffer_timeout", "-1ms").output_buffer_timeout_ms,
        -1
    );
    assert_eq!(
        set("output_buffer_timeout", "0").output_buffer_timeout_ms,
        0
    );
    assert_eq!(set("msg_timeout", "1m").msg_timeout_ms, 60_000);
    assert_eq!(
        set_error("msg_timeout", Some("-1ms")),
        "invalid msg_timeout ! -1ms < 0s"
    );
}

#[test]
fn strings_are_taken_as_given() {
    assert_eq!(set("client_id", "worker-1").client_id, "worker-1");
    assert_eq!(set("hostname", "").hostname, "");
    assert_eq!(set("user_agent", "x/1").user_agent, "x/1");
    assert_eq!(set("auth_secret", "s3cret").auth_secret, "s3cret");
    // Go stores "%!s(bool=true)"; we refuse.
    assert_eq!(
        set_error("client_id", None),
        "failed to coerce option client_id (true) - invalid value type"
    );
}

#[test]
fn backoff_strategies_parse_as_go() {
    assert_eq!(
        set("backoff_strategy", "full_jitter").backoff_strategy,
        BackoffStrategy::FullJitter
    );
    let mut cfg = set("backoff_strategy", "full_jitter");
    cfg.set("backoff_strategy", Some("")).unwrap();
    assert_eq!(cfg.backoff_strategy, BackoffStrategy::Exponential);
    cfg.set("backoff_strategy", Some("exponential")).unwrap();
    assert_eq!(cfg.backoff_strategy, BackoffStrategy::Exponential);
    assert_eq!(
        set_error("backoff_strategy", Some("linear")),
        "failed to coerce option backoff_strategy (linear) - invalid value type"
    );
    assert_eq!(
        set_error("backoff_strategy", None),
        "failed to coerce option backoff_strategy (true) - invalid value type"
    );
}

#[test]
fn unsupported_options_are_named() {
    for key in ["local_addr", "local-addr", "tls_config"] {
        let error = config().set(key, Some("x")).unwrap_err();
        let option = key.replace('-', "_");
        assert_eq!(error, ConfigError::Unsupported(option.clone()));
        assert!(error.to_string().contains(&option));
    }
}

#[test]
fn parse_opt_splits_at_the_first_comma() {
    let mut cfg = config();
    cfg.parse_opt("max_in_flight,5").unwrap();
    cfg.parse_opt("auth_secret,a,b").unwrap();
    cfg.parse_opt("snappy").unwrap();
    assert_eq!(
        (cfg.max_in_flight, cfg.auth_secret.as_str(), cfg.snappy),
        (5, "a,b", true)
    );
    assert_eq!(
        cfg.parse_opt("deflate_level").unwrap_err().to_string(),
        "failed to coerce option deflate_level (true) - invalid value type"
    );
    assert_eq!(
        cfg.parse_opt("max_in_flight,abc").unwrap_err().to_string(),
        r#"failed to coerce option max_in_flight (abc) - strconv.ParseInt: parsing "abc": invalid syntax"#
    );
    assert_eq!(
        cfg.parse_opt("bogus,1").unwrap_err().to_string(),
        "invalid option bogus"
    );
}

#[test]
fn validate_names_go_fields_in_go_s_order() {
    let check = |change: fn(&mut NsqConfig)| {
        let mut cfg = config();
        change(&mut cfg);
        cfg.validate().map_err(|e| e.to_string())
    };
    assert_eq!(
        check(|c| c.max_in_flight = -1),
        Err("invalid MaxInFlight ! -1 < 0".into())
    );
    assert_eq!(
        check(|c| c.read_timeout = ms(50)),
        Err("invalid ReadTimeout ! 50ms < 100ms".into())
    );
    assert_eq!(
        check(|c| {
            c.max_in_flight = -1;
            c.write_timeout = secs(301);
        }),
        Err("invalid WriteTimeout ! 5m1s > 5m0s".into())
    );
    assert_eq!(
        check(|c| c.lookupd_poll_jitter = 2.0),
        Err("invalid LookupdPollJitter ! 2 > 1".into())
    );
    assert_eq!(
        check(|c| c.sample_rate = 100),
        Err("invalid SampleRate ! 100 > 99".into())
    );
    assert_eq!(
        check(|c| c.deflate_level = 0),
        Err("invalid DeflateLevel ! 0 < 1".into())
    );
    assert_eq!(
        check(|c| c.msg_timeout_ms = -5),
        Err("invalid MsgTimeout ! -5ms < 0s".into())
    );
    assert_eq!(
        check(|c| c.rdy_redistribute_interval = secs(6)),
        Err("invalid RDYRedistributeInterval ! 6s > 5s".into())
    );
    assert_eq!(
        check(|c| c.heartbeat_interval_ms = 90_000),
        Err("HeartbeatInterval 1m30s must be less than ReadTimeout 1m0s".into())
    );
    assert_eq!(check(|c| c.heartbeat_interval_ms = 60_000), Ok(()));
    assert_eq!(check(|c| c.heartbeat_interval_ms = -1), Ok(()));
    assert_eq!(check(|c| c.max_in_flight = 0), Ok(()));
}

#[test]
fn identify_json_is_go_s_body() {
    let mut cfg = config();
    cfg.user_agent = "nsq_tail/1.3.0 go-nsq/1.1.0".into();
    cfg.parse_opt("snappy").unwrap();
    cfg.parse_opt("heartbeat_interval,-1ms").unwrap();
    cfg.parse_opt("msg_timeout,90s").unwrap();
    cfg.parse_opt("sample_rate,10").unwrap();
    let body = serde_json::to_string(&cfg.identify_json()).unwrap();
    assert_eq!(
        body,
        concat!(
            r#"{"client_id":"box","deflate":false,"deflate_level":6,"feature_negotiation":true,"#,
            r#""heartbeat_interval":-1,"hostname":"box.example.com","long_id":"box.example.com","#,
            r#""msg_timeout":90000,"output_buffer_size":16384,"output_buffer_timeout":250,"#,
            r#""sample_rate":10,"short_id":"box","snappy":true,"tls_v1":false,"#,
            r#""user_agent":"nsq_tail/1.3.0 go-nsq/1.1.0"}"#
        )
    );
}

#[test]
fn requeue_delay_grows_per_attempt_up_to_the_cap() {
    let cfg = config();
    assert_eq!(cfg.requeue_delay(0), Duration::ZERO);
    assert_eq!(cfg.requeue_delay(1), secs(90));
    assert_eq!(cfg.requeue_delay(2), secs(180));
    assert_eq!(cfg.requeue_delay(10), secs(900));
    assert_eq!(cfg.requeue_delay(u16::MAX), secs(900));
}

#[test]
fn exponential_backoff_doubles_up_to_the_cap() {
    let cfg = config();
    assert_eq!(cfg.backoff_duration(0, 0.5), secs(1));
    assert_eq!(cfg.backoff_duration(1, 0.5), secs(2));
    assert_eq!(cfg.backoff_duration(6, 0.5), secs(64));
    assert_eq!(cfg.backoff_duration(7, 0.5), secs(120));
    assert_eq!(cfg.backoff_duration(u32::MAX, 0.5), secs(120));
    // Uncapped, as the consumer's "may the level rise" test needs it.
    let exponential = BackoffStrategy::Exponential;
    assert_eq!(exponential.calculate(secs(1), 7, 0.0), secs(128));
    let go_max = Duration::from_nanos(i64::MAX.unsigned_abs());
    assert_eq!(exponential.calculate(secs(1), 200, 0.0), go_max);
    assert_eq!(
        exponential.calculate(Duration::ZERO, 3, 0.0),
        Duration::ZERO
    );
}

#[test]
fn full_jitter_scales_by_the_draw() {
    let cfg = set("backoff_strategy", "full_jitter");
    assert_eq!(cfg.backoff_duration(3, 0.5), secs(4));
    assert_eq!(cfg.backoff_duration(3, 0.0), Duration::ZERO);
    assert_eq!(
        cfg.backoff_duration(3, 1.0),
        secs(8) - Duration::from_nanos(1)
    );
    assert_eq!(cfg.backoff_duration(3, f64::NAN), Duration::ZERO);
    assert_eq!(cfg.backoff_duration(10, 0.5), secs(120));
    let jitter = BackoffStrategy::FullJitter;
    assert_eq!(jitter.calculate(Duration::ZERO, 3, 0.5), Duration::ZERO);
}

/// A temp dir holding a self-signed `localhost` certificate (`cert.pem`, `key.pem`), a
/// second unrelated key (`other.key`) and a non-PEM file (`junk.pem`).
fn pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let names = vec!["localhost".to_string()];
    let certified = rcgen::generate_simple_self_signed(names.clone()).unwrap();
    let other = rcgen::generate_simple_self_signed(names).unwrap();
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    write("cert.pem", certified.cert.pem());
    write("key.pem", certified.signing_key.serialize_pem());
    write("other.key", other.signing_key.serialize_pem());
    write("junk.pem", "not a certificate\n".into());
    dir
}

fn path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_string_lossy().into_owned()
}

#[test]
fn a_missing_root_ca_file_fails_the_option() {
    let mut cfg = config();
    let error = cfg
        .set("tls_root_ca_file", Some("/nonexistent/ca.pem"))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "ERROR: failed to read custom Certificate Authority file open /nonexistent/ca.pem: no such file or directory"
    );
    assert_eq!(cfg.tls.root_ca_file, None);
    // Go made its tls.Config before failing; the version cap applies from now on.
    assert!(cfg.tls.custom);
    assert_eq!(
        set_error("tls_root_ca_file", None),
        "ERROR: true is not a string"
    );
}

#[test]
fn a_root_ca_file_without_certificates_fails() {
    let dir = pki();
    assert_eq!(
        set_error("tls_root_ca_file", Some(&path(&dir, "junk.pem"))),
        "ERROR: failed to append certificates from Certificate Authority file"
    );
}

#[test]
fn tls_client_trusts_the_root_ca_file() {
    let dir = pki();
    let mut cfg = config();
    cfg.set("tls_root_ca_file", Some(&path(&dir, "cert.pem")))
        .unwrap();
    assert_eq!(cfg.tls.root_ca_file, Some(path(&dir, "cert.pem")));
    assert!(
        cfg.tls_client("localhost").unwrap().is_none(),
        "tls_v1 is off"
    );
    cfg.parse_opt("tls_v1").unwrap();
    let client = cfg.tls_client("localhost").unwrap().unwrap();
    assert_eq!(client.server_name.to_str(), "localhost");
    let ip = cfg.tls_client("127.0.0.1").unwrap().unwrap();
    assert_eq!(ip.server_name.to_str(), "127.0.0.1");
    assert_eq!(
        cfg.tls_client("bad name").unwrap_err(),
        ConfigError::ServerName("bad name".into())
    );
}

#[test]
fn insecure_skip_verify_needs_no_roots() {
    let mut cfg = config();
    cfg.parse_opt("tls_insecure_skip_verify").unwrap();
    cfg.parse_opt("tls_v1,true").unwrap();
    assert!(cfg.tls.insecure_skip_verify && cfg.tls.custom);
    assert!(cfg.tls_client("nsqd.internal").unwrap().is_some());
    assert_eq!(
        set_error("tls_insecure_skip_verify", Some("maybe")),
        r#"failed to coerce option tls_insecure_skip_verify (maybe) - strconv.ParseBool: parsing "maybe": invalid syntax"#
    );
}

#[test]
fn client_certificates_load_once_both_files_are_set() {
    let dir = pki();
    let mut cfg = config();
    cfg.set("tls_cert", Some(&path(&dir, "cert.pem"))).unwrap();
    assert_eq!(cfg.tls.client_cert, None);
    cfg.set("tls_key", Some(&path(&dir, "key.pem"))).unwrap();
    let pair = (path(&dir, "cert.pem"), path(&dir, "key.pem"));
    assert_eq!(cfg.tls.client_cert, Some(pair.clone()));
    // Go keeps the first pair it loaded.
    cfg.set("tls_key", Some(&path(&dir, "other.key"))).unwrap();
    assert_eq!(cfg.tls.client_cert, Some(pair));
    cfg.parse_opt("tls_insecure_skip_verify").unwrap();
    cfg.parse_opt("tls_v1").unwrap();
    assert!(cfg.tls_client("localhost").unwrap().is_some());

    let mut mismatched = config();
    mismatched
        .set("tls_key", Some(&path(&dir, "other.key")))
        .unwrap();
    let error = mismatched
        .set("tls_cert", Some(&path(&dir, "cert.pem")))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "tls: private key does not match public key"
    );

    let mut missing = config();
    missing
        .set("tls_key", Some(&path(&dir, "key.pem")))
        .unwrap();
    let error = missing
        .set("tls_cert", Some("/nonexistent/c.pem"))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "open /nonexistent/c.pem: no such file or directory"
    );

    let mut junk = config();
    junk.set("tls_cert", Some(&path(&dir, "junk.pem"))).unwrap();
    let error = junk
        .set("tls_key", Some(&path(&dir, "key.pem")))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "tls: failed to find any PEM data in certificate input"
    );

    // Go panics here.
    assert_eq!(set_error("tls_cert", None), "ERROR: true is not a string");
    assert_eq!(set_error("tls_key", None), "ERROR: true is not a string");
}

#[test]
fn tls_min_version_takes_go_s_names() {
    assert_eq!(
        set("tls_min_version", "ssl3.0").tls.min_version,
        TlsVersion::Ssl30
    );
    assert_eq!(
        set("tls_min_version", "tls1.1").tls.min_version,
        TlsVersion::Tls11
    );
    assert_eq!(
        set("tls_min_version", "tls1.2").tls.min_version,
        TlsVersion::Tls12
    );
    assert_eq!(
        set_error("tls_min_version", Some("tls1.3")),
        "ERROR: tls1.3 is not a tls version"
    );
    assert_eq!(
        set_error("tls_min_version", None),
        "ERROR: true is not a string"
    );
}
