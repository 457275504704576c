//! The table of Go nsqd v1.3.0's flags: name, config key, kind and usage text, and how a
//! value from the command line is stored into [`Options`].
//!
//! Each entry's [`Target`] names the `Options` field it writes, so the value's kind and the
//! field's type cannot disagree.

use std::time::Duration;

use crate::go_cli::usage::push_usage_entry;
use crate::go_cli::values::{
    go_log_level_name, parse_flag_duration, parse_float_list, parse_go_bool, parse_go_int,
    parse_log_level, IntError,
};
use crate::go_fmt::go_quote;
use crate::go_time::{format_go_duration, go_nanos};
use crate::nsqd::Options;

/// What a flag writes into, and therefore how its value is parsed.
#[derive(Clone, Copy)]
pub enum Target {
    /// A Go `bool` flag.
    Bool(fn(&mut Options) -> &mut bool),
    /// A Go `int`/`int64` flag (Go's integer syntax, base prefixes included).
    Int(fn(&mut Options) -> &mut i64),
    /// A Go `int` flag holding a TCP port.
    Port(fn(&mut Options) -> &mut u16),
    /// A Go `duration` flag.
    Duration(fn(&mut Options) -> &mut Duration),
    /// A Go `string` flag.
    Str(fn(&mut Options) -> &mut String),
    /// A repeatable string flag (`app.StringArray`).
    StrList(fn(&mut Options) -> &mut Vec<String>),
    /// A repeatable, comma-separated float flag (`app.FloatArray`).
    FloatList(fn(&mut Options) -> &mut Vec<f64>),
    /// `--log-level` (Go's `lg.LogLevel`).
    LogLevel,
    /// `--tls-required`: a boolean flag that also takes `tcp-https`.
    TlsRequired,
    /// `--tls-min-version`.
    TlsMinVersion,
    /// A deprecated boolean flag Go accepts and ignores (`--verbose`, `--worker-id`).
    NoEffect,
    /// `--version`: handled by the parser, not stored.
    Version,
    /// `--config`: handled by the parser, not stored.
    Config,
}

impl Target {
    /// Go's `IsBoolFlag`: the flag may stand alone, and `-flag value` does not take `value`.
    pub fn is_bool(self) -> bool {
        matches!(
            self,
            Target::Bool(_) | Target::TlsRequired | Target::NoEffect | Target::Version
        )
    }

    /// The type word `flag.PrintDefaults` shows after the name ("" for booleans).
    fn type_name(self) -> &'static str {
        match self {
            Target::Bool(_) | Target::TlsRequired | Target::NoEffect | Target::Version => "",
            Target::Int(_) | Target::Port(_) => "int",
            Target::Duration(_) => "duration",
            Target::Str(_) | Target::Config => "string",
            Target::StrList(_)
            | Target::FloatList(_)
            | Target::LogLevel
            | Target::TlsMinVersion => "value",
        }
    }
}

/// One Go nsqd flag.
pub struct Flag {
    /// The flag name, without dashes.
    pub name: &'static str,
    /// The TOML key (Go's `cfg` tag, else the name with `_`); `None` for flags Go never
    /// reads from the config file.
    pub cfg_key: Option<&'static str>,
    /// Where the value goes.
    pub target: Target,
    /// The usage text, verbatim from Go.
    pub usage: &'static str,
}

/// Shorthand for a table entry whose config key is the flag name with `_`.
macro_rules! flag {
    ($name:literal, $key:literal, $target:expr, $usage:literal) => {
        Flag {
            name: $name,
            cfg_key: Some($key),
            target: $target,
            usage: $usage,
        }
    };
    ($name:literal, none, $target:expr, $usage:literal) => {
        Flag {
            name: $name,
            cfg_key: None,
            target: $target,
            usage: $usage,
        }
    };
}

/// Every flag of Go nsqd v1.3.0, sorted by name as `flag.PrintDefaults` prints them.
pub static FLAGS: &[Flag] = &[
    flag!(
        "auth-http-address", "auth_http_addresses",
        Target::StrList(|o| &mut o.auth_http_addresses),
        "<addr>:<port> or a full url to query auth server (may be given multiple times)"
    ),
    flag!(
        "broadcast-address", "broadcast_address",
        Target::Str(|o| &mut o.broadcast_address),
        "address that will be registered with lookupd (defaults to the OS hostname)"
    ),
    flag!(
        "broadcast-http-port", "broadcast_http_port",
        Target::Port(|o| &mut o.broadcast_http_port),
        "HTTP port that will be registered with lookupd (defaults to the HTTP port that this nsqd is listening on)"
    ),
    flag!(
        "broadcast-tcp-port", "broadcast_tcp_port",
        Target::Port(|o| &mut o.broadcast_tcp_port),
        "TCP port that will be registered with lookupd (defaults to the TCP port that this nsqd is listening on)"
    ),
    flag!(
        "config", none,
        Target::Config,
        "path to config file"
    ),
    flag!(
        "data-path", "data_path",
        Target::Str(|o| &mut o.data_path),
        "path to store disk-backed messages"
    ),
    flag!(
        "deflate", "deflate",
        Target::Bool(|o| &mut o.deflate),
        "enable deflate feature negotiation (client compression)"
    ),
    flag!(
        "e2e-processing-latency-percentile", "e2e_processing_latency_percentiles",
        Target::FloatList(|o| &mut o.e2e_processing_latency_percentiles),
        "message processing time percentiles (as float (0, 1.0]) to track (can be specified multiple times or comma separated '1.0,0.99,0.95', default none)"
    ),
    flag!(
        "e2e-processing-latency-window-time", "e2e_processing_latency_window_time",
        Target::Duration(|o| &mut o.e2e_processing_latency_window_time),
        "calculate end to end latency quantiles for this duration of time (ie: 60s would only show quantile calculations from the past 60 seconds)"
    ),
    flag!(
        "http-address", "http_address",
        Target::Str(|o| &mut o.http_address),
        "address to listen on for HTTP clients (<addr>:<port> for TCP/IP or <path> for unix socket)"
    ),
    flag!(
        "http-client-connect-timeout", "http_client_connect_timeout",
        Target::Duration(|o| &mut o.http_client_connect_timeout),
        "timeout for HTTP connect"
    ),
    flag!(
        "http-client-request-timeout", "http_client_request_timeout",
        Target::Duration(|o| &mut o.http_client_request_timeout),
        "timeout for HTTP request"
    ),
    flag!(
        "https-address", "https_address",
        Target::Str(|o| &mut o.https_address),
        "<addr>:<port> to listen on for HTTPS clients"
    ),
    flag!(
        "log-level", "log_level",
        Target::LogLevel,
        "set log verbosity: debug, info, warn, error, or fatal"
    ),
    flag!(
        "log-prefix", "log_prefix",
        Target::Str(|o| &mut o.log_prefix),
        "log message prefix"
    ),
    flag!(
        "lookupd-tcp-address", "nsqlookupd_tcp_addresses",
        Target::StrList(|o| &mut o.nsqlookupd_tcp_addresses),
        "lookupd TCP address (may be given multiple times)"
    ),
    flag!(
        "max-body-size", "max_body_size",
        Target::Int(|o| &mut o.max_body_size),
        "maximum size of a single command body"
    ),
    flag!(
        "max-bytes-per-file", "max_bytes_per_file",
        Target::Int(|o| &mut o.max_bytes_per_file),
        "number of bytes per diskqueue file before rolling"
    ),
    flag!(
        "max-channel-consumers", "max_channel_consumers",
        Target::Int(|o| &mut o.max_channel_consumers),
        "maximum channel consumer connection count per nsqd instance (default 0, i.e., unlimited)"
    ),
    flag!(
        "max-deferred-memory", "max_deferred_memory",
        Target::Int(|o| &mut o.max_deferred_memory),
        "maximum bytes of deferred messages kept in memory per channel; the rest wait on disk (nsq-rs only)"
    ),
    flag!(
        "max-deflate-level", "max_deflate_level",
        Target::Int(|o| &mut o.max_deflate_level),
        "max deflate compression level a client can negotiate (> values == > nsqd CPU usage)"
    ),
    flag!(
        "max-heartbeat-interval", "max_heartbeat_interval",
        Target::Duration(|o| &mut o.max_heartbeat_interval),
        "maximum client configurable duration of time between client heartbeats"
    ),
    flag!(
        "max-msg-size", "max_msg_size",
        Target::Int(|o| &mut o.max_msg_size),
        "maximum size of a single message in bytes"
    ),
    flag!(
        "max-msg-timeout", "max_msg_timeout",
        Target::Duration(|o| &mut o.max_msg_timeout),
        "maximum duration before a message will timeout"
    ),
    flag!(
        "max-output-buffer-size", "max_output_buffer_size",
        Target::Int(|o| &mut o.max_output_buffer_size),
        "maximum client configurable size (in bytes) for a client output buffer"
    ),
    flag!(
        "max-output-buffer-timeout", "max_output_buffer_timeout",
        Target::Duration(|o| &mut o.max_output_buffer_timeout),
        "maximum client configurable duration of time between flushing to a client"
    ),
    flag!(
        "max-rdy-count", "max_rdy_count",
        Target::Int(|o| &mut o.max_rdy_count),
        "maximum RDY count for a client"
    ),
    flag!(
        "max-req-timeout", "max_req_timeout",
        Target::Duration(|o| &mut o.max_req_timeout),
        "maximum requeuing timeout for a message"
    ),
    flag!(
        "mem-queue-size", "mem_queue_size",
        Target::Int(|o| &mut o.mem_queue_size),
        "number of messages to keep in memory (per topic/channel)"
    ),
    flag!(
        "min-output-buffer-timeout", "min_output_buffer_timeout",
        Target::Duration(|o| &mut o.min_output_buffer_timeout),
        "minimum client configurable duration of time between flushing to a client"
    ),
    flag!(
        "msg-timeout", "msg_timeout",
        Target::Duration(|o| &mut o.msg_timeout),
        "default duration to wait before auto-requeing a message"
    ),
    flag!(
        "node-id", "id",
        Target::Int(|o| &mut o.id),
        "unique part for message IDs, (int) in range [0,1024) (default is hash of hostname)"
    ),
    flag!(
        "output-buffer-timeout", "output_buffer_timeout",
        Target::Duration(|o| &mut o.output_buffer_timeout),
        "default duration of time between flushing data to clients"
    ),
    flag!(
        "queue-scan-selection-count", "queue_scan_selection_count",
        Target::Int(|o| &mut o.queue_scan_selection_count),
        "number of channels to check per cycle (every 100ms) for in-flight and deferred timeouts"
    ),
    flag!(
        "queue-scan-worker-pool-max", "queue_scan_worker_pool_max",
        Target::Int(|o| &mut o.queue_scan_worker_pool_max),
        "max concurrency for checking in-flight and deferred message timeouts"
    ),
    flag!(
        "replica-auth-secret", "replica_auth_secret",
        Target::Str(|o| &mut o.replica_auth_secret),
        "secret sent with AUTH to replica peers that require it (nsq-rs only)"
    ),
    flag!(
        "replica-failover-timeout", "replica_failover_timeout",
        Target::Duration(|o| &mut o.replica_failover_timeout),
        "how long a replica goes without hearing from a peer before it delivers that peer's standby messages itself (nsq-rs only)"
    ),
    flag!(
        "replica-peer", "replica_peers",
        Target::StrList(|o| &mut o.replica_peers),
        "TCP address of another nsqd of this replica set (may be given multiple times) (nsq-rs only)"
    ),
    flag!(
        "replica-timeout", "replica_timeout",
        Target::Duration(|o| &mut o.replica_timeout),
        "how long a replicated publish waits for its replicas before it fails (nsq-rs only)"
    ),
    flag!(
        "replication-factor", "replication_factor",
        Target::Int(|o| &mut o.replication_factor),
        "number of nsqds that hold each published message before it is acknowledged; 1 disables replication (nsq-rs only)"
    ),
    flag!(
        "snappy", "snappy",
        Target::Bool(|o| &mut o.snappy),
        "enable snappy feature negotiation (client compression)"
    ),
    flag!(
        "statsd-address", "statsd_address",
        Target::Str(|o| &mut o.statsd_address),
        "UDP <addr>:<port> of a statsd daemon for pushing stats"
    ),
    flag!(
        "statsd-exclude-ephemeral", "statsd_exclude_ephemeral",
        Target::Bool(|o| &mut o.statsd_exclude_ephemeral),
        "Skip ephemeral topics and channels when sending stats to statsd"
    ),
    flag!(
        "statsd-interval", "statsd_interval",
        Target::Duration(|o| &mut o.statsd_interval),
        "duration between pushing to statsd"
    ),
    flag!(
        "statsd-mem-stats", "statsd_mem_stats",
        Target::Bool(|o| &mut o.statsd_mem_stats),
        "toggle sending memory and GC stats to statsd"
    ),
    flag!(
        "statsd-prefix", "statsd_prefix",
        Target::Str(|o| &mut o.statsd_prefix),
        "prefix used for keys sent to statsd (%s for host replacement)"
    ),
    flag!(
        "statsd-udp-packet-size", "statsd_udp_packet_size",
        Target::Int(|o| &mut o.statsd_udp_packet_size),
        "the size in bytes of statsd UDP packets"
    ),
    flag!(
        "sync-every", "sync_every",
        Target::Int(|o| &mut o.sync_every),
        "number of messages per diskqueue fsync"
    ),
    flag!(
        "sync-timeout", "sync_timeout",
        Target::Duration(|o| &mut o.sync_timeout),
        "duration of time per diskqueue fsync"
    ),
    flag!(
        "tcp-address", "tcp_address",
        Target::Str(|o| &mut o.tcp_address),
        "address to listen on for TCP clients (<addr>:<port> for TCP/IP or <path> for unix socket)"
    ),
    flag!(
        "tls-cert", "tls_cert",
        Target::Str(|o| &mut o.tls_cert),
        "path to certificate file"
    ),
    flag!(
        "tls-client-auth-policy", "tls_client_auth_policy",
        Target::Str(|o| &mut o.tls_client_auth_policy),
        "client certificate auth policy ('require' or 'require-verify')"
    ),
    flag!(
        "tls-key", "tls_key",
        Target::Str(|o| &mut o.tls_key),
        "path to key file"
    ),
    flag!(
        "tls-min-version", "tls_min_version",
        Target::TlsMinVersion,
        "minimum SSL/TLS version acceptable ('ssl3.0', 'tls1.0', 'tls1.1', 'tls1.2' or 'tls1.3')"
    ),
    flag!(
        "tls-required", "tls_required",
        Target::TlsRequired,
        "require TLS for client connections (true, false, tcp-https)"
    ),
    flag!(
        "tls-root-ca-file", "tls_root_ca_file",
        Target::Str(|o| &mut o.tls_root_ca_file),
        "path to certificate authority file"
    ),
    // Go has no option field behind `--verbose`; old example configs still carry the key.
    flag!(
        "verbose", "verbose",
        Target::NoEffect,
        "[deprecated] has no effect, use --log-level"
    ),
    flag!(
        "version", none,
        Target::Version,
        "print version string"
    ),
    flag!(
        "worker-id", none,
        Target::NoEffect,
        "[deprecated] use --node-id"
    ),
];

/// The flag called `name`, if Go nsqd has one.
pub fn find(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
}

/// The flag whose config key is `key`.
pub fn find_by_cfg_key(key: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.cfg_key == Some(key))
}

/// Parses one command-line value as Go's flag `Set` would and stores it. The error text is
/// the reason part of Go's `invalid value "x" for flag -name: <reason>`.
pub fn set_from_text(target: Target, options: &mut Options, text: &str) -> Result<(), String> {
    match target {
        Target::Bool(field) => *field(options) = parse_go_bool(text).ok_or("parse error")?,
        Target::Int(field) => *field(options) = parse_go_int(text).map_err(|e| e.to_string())?,
        Target::Port(field) => *field(options) = parse_port(text).map_err(|e| e.to_string())?,
        Target::Duration(field) => *field(options) = parse_flag_duration(text)?,
        Target::Str(field) => *field(options) = text.to_string(),
        Target::StrList(field) => field(options).push(text.to_string()),
        Target::FloatList(field) => {
            let list = field(options);
            list.extend(parse_float_list(text)?);
            // Go's FloatArray keeps its values sorted, largest first.
            list.sort_by(|a, b| b.total_cmp(a));
        }
        Target::LogLevel => options.log_level = parse_log_level(text)?.to_string(),
        Target::TlsRequired => options.tls_required = parse_tls_required(text)?,
        Target::TlsMinVersion => {
            if let Some(version) = parse_tls_min_version(text)? {
                options.tls_min_version = version.to_string();
            }
        }
        Target::NoEffect | Target::Version => {
            parse_go_bool(text).ok_or("parse error")?;
        }
        Target::Config => {}
    }
    Ok(())
}

/// A Go `int` flag that must fit a port.
pub fn parse_port(text: &str) -> Result<u16, IntError> {
    u16::try_from(parse_go_int(text)?).map_err(|_| IntError::Range)
}

/// Go's `tlsRequiredOption`: false → 0, `tcp-https` → 1, true → 2 (case-insensitive).
pub fn parse_tls_required(text: &str) -> Result<i64, String> {
    let lower = text.to_ascii_lowercase();
    if lower == "tcp-https" {
        return Ok(1);
    }
    match parse_go_bool(&lower) {
        Some(true) => Ok(2),
        Some(false) => Ok(0),
        None => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            go_quote(&lower)
        )),
    }
}

/// Go's `tlsMinVersionOption`: `None` for "" (keep the default), else the canonical name.
pub fn parse_tls_min_version(text: &str) -> Result<Option<&'static str>, String> {
    let lower = text.to_ascii_lowercase();
    const VERSIONS: [&str; 5] = ["ssl3.0", "tls1.0", "tls1.1", "tls1.2", "tls1.3"];
    if lower.is_empty() {
        return Ok(None);
    }
    match VERSIONS.iter().find(|v| **v == lower) {
        Some(v) => Ok(Some(v)),
        None => Err(format!("unknown tlsVersionOption {}", go_quote(&lower))),
    }
}

/// The flag's current value in `options` as Go's `Value.String()` shows it, or `None`
/// when it is the type's zero value (then `PrintDefaults` shows no default).
pub fn shown_default(target: Target, options: &mut Options) -> Option<String> {
    let shown = match target {
        Target::Bool(field) => (*field(options)).then(|| "true".to_string()),
        Target::Int(field) => Some(*field(options))
            .filter(|v| *v != 0)
            .map(|v| v.to_string()),
        Target::Port(field) => Some(*field(options))
            .filter(|v| *v != 0)
            .map(|v| v.to_string()),
        Target::Duration(field) => Some(*field(options))
            .filter(|d| !d.is_zero())
            .map(|d| format_go_duration(go_nanos(d))),
        Target::Str(field) => Some(field(options).clone())
            .filter(|s| !s.is_empty())
            .map(|s| go_quote(&s)),
        Target::StrList(field) => Some(field(options).join(",")).filter(|s| !s.is_empty()),
        Target::FloatList(field) => {
            let items: Vec<String> = field(options).iter().map(|v| format!("{v:.6}")).collect();
            Some(items.join(",")).filter(|s| !s.is_empty())
        }
        Target::LogLevel => Some(go_log_level_name(&options.log_level).to_string()),
        Target::TlsRequired => Some(options.tls_required)
            .filter(|v| *v != 0)
            .map(|v| v.to_string()),
        Target::TlsMinVersion => Some(options.tls_min_version.clone()),
        Target::NoEffect | Target::Version | Target::Config => None,
    };
    shown.map(|s| format!(" (default {s})"))
}

/// Go's usage text (`flag.PrintDefaults` after `Usage of nsqd:`), with the defaults of
/// `defaults` (the real hostname and node id).
pub fn render_usage(defaults: &Options) -> String {
    let mut options = defaults.clone();
    let mut out = String::from("Usage of nsqd:\n");
    for flag in FLAGS {
        let default = shown_default(flag.target, &mut options);
        push_usage_entry(
            &mut out,
            flag.name,
            flag.target.type_name(),
            flag.usage,
            default.as_deref(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in FLAGS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        let mut keys: Vec<_> = FLAGS.iter().filter_map(|f| f.cfg_key).collect();
        let count = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), count, "config keys are unique");
        assert_eq!(
            FLAGS.len(),
            59,
            "Go nsqd v1.3.0 has 53 flags, and nsq-rs adds --max-deferred-memory and five \
             replication flags"
        );
    }

    #[test]
    fn tls_required_takes_bools_and_tcp_https() {
        assert_eq!(parse_tls_required("false"), Ok(0));
        assert_eq!(parse_tls_required("0"), Ok(0));
        assert_eq!(parse_tls_required("TCP-HTTPS"), Ok(1));
        assert_eq!(parse_tls_required("true"), Ok(2));
        assert_eq!(parse_tls_required("T"), Ok(2));
        assert!(parse_tls_required("yes").is_err());
    }

    #[test]
    fn tls_min_version_names() {
        for v in ["ssl3.0", "tls1.0", "tls1.1", "tls1.2", "tls1.3"] {
            assert_eq!(parse_tls_min_version(v), Ok(Some(v)));
        }
        assert_eq!(parse_tls_min_version("TLS1.2"), Ok(Some("tls1.2")));
        assert_eq!(parse_tls_min_version(""), Ok(None));
        assert_eq!(
            parse_tls_min_version("tls9"),
            Err("unknown tlsVersionOption \"tls9\"".into())
        );
    }
}
