//! go-nsq v1.1.0's `Config`: the consumer and producer settings the NSQ apps take from
//! `--consumer-opt key,value` and `--producer-opt key,value`, with Go's option names,
//! defaults, coercions, range checks and error texts, and what a client derives from
//! them (the IDENTIFY body, the TLS client, requeue delays, backoff durations).
//!
//! # Layout
//! - this file: [`NsqConfig`], `Set`, `Validate` and the derived values;
//! - `coerce.rs`: Go's `strconv`/`time.ParseDuration` coercions and their error texts;
//! - `limits.rs`: the `min`/`max` tags both `Set` and `Validate` check;
//! - `tls.rs`: the `tls_*` pseudo-options and the rustls client.
//!
//! # Where this differs from Go, on purpose
//! Where Go crashes or silently stores a wrong value, we refuse instead:
//! - a value-less `tls_cert`/`tls_key` (Go panics): `ERROR: true is not a string`, as Go
//!   says for `tls_root_ca_file`;
//! - `tls_config` (Go panics: a `*tls.Config` cannot come from text) and `local_addr`
//!   (which Go supports, but our client does not bind a local address):
//!   [`ConfigError::Unsupported`];
//! - a value-less string option (Go stores `%!s(bool=true)`): `invalid value type`;
//! - integers wider than the field (Go truncates: `max_attempts,70000` becomes 4464):
//!   the range check runs on the parsed value, so `invalid max_attempts ! 70000 > 65535`;
//! - `NaN` for `lookupd_poll_jitter` (passes Go's checks): `not a number`;
//! - a negative `dial_timeout` or `lookupd_poll_timeout` (every dial then fails at once
//!   in Go): `negative duration`.
//!
//! The millisecond fields (`heartbeat_interval`, `output_buffer_timeout`, `msg_timeout`)
//! hold what IDENTIFY sends, converted as go-nsq converts them at send time; so
//! `Validate`'s heartbeat check sees whole milliseconds, where Go compares nanoseconds.
//! Floats parse as [`parse_go_float`](crate::go_cli::values::parse_go_float) does (plain
//! decimal, `inf`; not Go's hex floats or `1_000`).

mod coerce;
mod limits;
mod tls;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use coerce::{CoerceError, NumError, NumErrorKind};
pub use tls::{system_https_config, TlsOptions, TlsVersion};

use crate::client::TlsClient;
use crate::go_time::{format_go_duration, go_nanos};
use coerce::Raw;
use limits::{check, LIMITS};

/// The go-nsq version the apps report (`<app>/1.3.0 go-nsq/1.1.0`) and whose behaviour
/// this module copies.
pub const GO_NSQ_VERSION: &str = "1.1.0";

/// Why an option or a whole configuration was refused. The texts are go-nsq's, so the
/// apps can print them as Go's do (e.g. after `invalid value "<arg>" for flag
/// -consumer-opt: `).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// No such option.
    #[error("invalid option {0}")]
    InvalidOption(String),
    /// An option go-nsq has that we do not implement (`local_addr`, `tls_config`).
    #[error("option {0} is not supported by this implementation")]
    Unsupported(String),
    /// The value does not parse as the option's type.
    #[error("failed to coerce option {option} ({value}) - {reason}")]
    Coerce {
        /// The option, dashes turned into underscores.
        option: String,
        /// The value as given (`true` when the flag had none).
        value: String,
        /// Go's parse error.
        reason: CoerceError,
    },
    /// Below the `min` tag; `name` is the option (`Set`) or the Go field (`Validate`).
    #[error("invalid {name} ! {value} < {min}")]
    BelowMin {
        /// The option or Go field name.
        name: String,
        /// The value, printed as Go's `%v`.
        value: String,
        /// The minimum, printed as Go's `%v`.
        min: String,
    },
    /// Above the `max` tag (see [`ConfigError::BelowMin`]).
    #[error("invalid {name} ! {value} > {max}")]
    AboveMax {
        /// The option or Go field name.
        name: String,
        /// The value, printed as Go's `%v`.
        value: String,
        /// The maximum, printed as Go's `%v`.
        max: String,
    },
    /// `Validate`: a heartbeat longer than the read timeout.
    #[error("HeartbeatInterval {heartbeat} must be less than ReadTimeout {read_timeout}")]
    HeartbeatAboveReadTimeout {
        /// The heartbeat interval, as a Go duration.
        heartbeat: String,
        /// The read timeout, as a Go duration.
        read_timeout: String,
    },
    /// A TLS option that wants text got none.
    #[error("ERROR: {0} is not a string")]
    NotAString(String),
    /// `tls_min_version` is not `ssl3.0`, `tls1.0`, `tls1.1` or `tls1.2`.
    #[error("ERROR: {0} is not a tls version")]
    NotATlsVersion(String),
    /// `tls_root_ca_file` could not be read (Go's file error text).
    #[error("ERROR: failed to read custom Certificate Authority file {0}")]
    ReadRootCa(String),
    /// `tls_root_ca_file` held no usable certificate.
    #[error("ERROR: failed to append certificates from Certificate Authority file")]
    NoRootCaCerts,
    /// `tls_cert` and `tls_key` do not make a key pair (Go's `LoadX509KeyPair` text).
    #[error("{0}")]
    KeyPair(String),
    /// No `tls_root_ca_file`, and no system root certificates were found.
    #[error("no system root certificates found")]
    NoSystemRoots,
    /// The host is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0}")]
    ServerName(String),
    /// rustls refused the client configuration.
    #[error("tls: {0}")]
    Tls(String),
}

/// How the consumer backs off after failures (`backoff_strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackoffStrategy {
    /// `exponential` (the default): `backoff_multiplier × 2^level`.
    #[default]
    Exponential,
    /// `full_jitter`: uniformly random in `[0, backoff_multiplier × 2^level)`.
    FullJitter,
}

impl BackoffStrategy {
    /// Go's `Calculate(level)`, uncapped: the consumer raises its backoff level only while
    /// this stays within `max_backoff_duration`. `random` in `[0, 1)` is the jitter draw
    /// (unused by `Exponential`). The product saturates at Go's largest duration; a zero
    /// multiplier gives zero (Go's full jitter panics on it).
    pub fn calculate(self, multiplier: Duration, level: u32, random: f64) -> Duration {
        let max_ns = u128::from(i64::MAX.unsigned_abs());
        let ns = 1u128
            .checked_shl(level)
            .and_then(|factor| multiplier.as_nanos().checked_mul(factor))
            .map_or(max_ns, |ns| ns.min(max_ns));
        let full = Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
        match self {
            BackoffStrategy::Exponential => full,
            BackoffStrategy::FullJitter => {
                // NaN or out-of-range draws are pinned into [0, 1] (mul_f64 panics on NaN).
                let random = if random.is_nan() {
                    0.0
                } else {
                    random.clamp(0.0, 1.0)
                };
                let below = full.saturating_sub(Duration::from_nanos(1));
                full.mul_f64(random).min(below)
            }
        }
    }
}

/// go-nsq's `Config`, field for field (Go's field names in the docs where they differ).
/// Build it with [`NsqConfig::new`], change it with [`NsqConfig::set`] (or the public
/// fields, as the apps do for `user_agent` and `max_in_flight`), then check it with
/// [`NsqConfig::validate`] before connecting, as `NewConsumer`/`NewProducer` do.
#[derive(Debug, Clone, PartialEq)]
pub struct NsqConfig {
    /// `dial_timeout` (1s). Zero means no timeout, as for Go's dialer.
    pub dial_timeout: Duration,
    /// `read_timeout` (60s, 100ms..=5m).
    pub read_timeout: Duration,
    /// `write_timeout` (1s, 100ms..=5m).
    pub write_timeout: Duration,
    /// `lookupd_poll_interval` (60s, 10ms..=5m); also the reconnect delay for nsqds
    /// given directly.
    pub lookupd_poll_interval: Duration,
    /// `lookupd_poll_jitter` (0.3, 0..=1): the fraction of the interval the first poll
    /// waits at random.
    pub lookupd_poll_jitter: f64,
    /// `lookupd_poll_timeout` (1m): dial, header and total timeout of a lookupd query.
    /// Zero means none, as in Go.
    pub lookupd_poll_timeout: Duration,
    /// `max_requeue_delay` (15m, 0..=60m): the cap of [`NsqConfig::requeue_delay`].
    pub max_requeue_delay: Duration,
    /// `default_requeue_delay` (90s, 0..=60m): the requeue delay per attempt.
    pub default_requeue_delay: Duration,
    /// `backoff_strategy` (exponential).
    pub backoff_strategy: BackoffStrategy,
    /// `max_backoff_duration` (2m, 0..=60m); zero disables backoff.
    pub max_backoff_duration: Duration,
    /// `backoff_multiplier` (1s, 0..=60m).
    pub backoff_multiplier: Duration,
    /// `max_attempts` (5; 0 = unlimited): deliveries after which a message is FIN'd
    /// without calling the handler.
    pub max_attempts: u16,
    /// `low_rdy_idle_timeout` (10s, 1s..=5m).
    pub low_rdy_idle_timeout: Duration,
    /// `low_rdy_timeout` (30s, 1s..=5m).
    pub low_rdy_timeout: Duration,
    /// `rdy_redistribute_interval` (5s, 1ms..=5s; Go: `RDYRedistributeInterval`).
    pub rdy_redistribute_interval: Duration,
    /// `client_id` (the hostname up to its first dot).
    pub client_id: String,
    /// `hostname` (the OS hostname).
    pub hostname: String,
    /// `user_agent` (`go-nsq/1.1.0`; the apps set their own).
    pub user_agent: String,
    /// `heartbeat_interval` (30s), as IDENTIFY sends it: milliseconds, `-1` disables
    /// (Go sends `-1` for exactly `-1ns`, and `-1ms` truncates to it).
    pub heartbeat_interval_ms: i64,
    /// `sample_rate` (0, 0..=99): the percentage of messages nsqd sends.
    pub sample_rate: i32,
    /// `tls_v1`: ask nsqd for TLS in IDENTIFY.
    pub tls_v1: bool,
    /// The `tls_*` options (Go's `TlsConfig`).
    pub tls: TlsOptions,
    /// `deflate`: ask nsqd for deflate compression.
    pub deflate: bool,
    /// `deflate_level` (6, 1..=9).
    pub deflate_level: i32,
    /// `snappy`: ask nsqd for snappy compression.
    pub snappy: bool,
    /// `output_buffer_size` (16384 bytes) nsqd buffers for this client.
    pub output_buffer_size: i64,
    /// `output_buffer_timeout` (250ms), as IDENTIFY sends it (see `heartbeat_interval_ms`).
    pub output_buffer_timeout_ms: i64,
    /// `max_in_flight` (1, min 0; the apps set it from `--max-in-flight`).
    pub max_in_flight: i64,
    /// `msg_timeout` (0: nsqd's default, min 0), as IDENTIFY sends it.
    pub msg_timeout_ms: i64,
    /// `auth_secret`: sent with AUTH, and to lookupd (see `lookupd_authorization`).
    pub auth_secret: String,
    /// `skip_lookupd_authorization` (true; Go's field `LookupdAuthorization`). Despite the
    /// option's name, true means: send `Authorization: Bearer <auth_secret>` to lookupd
    /// when a secret is set.
    pub lookupd_authorization: bool,
}

impl Default for NsqConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl NsqConfig {
    /// Go's `NewConfig()`: the defaults, with this machine's hostname.
    pub fn new() -> Self {
        Self::with_hostname(&crate::env::os_hostname())
    }

    /// Go's defaults for a given hostname (`client_id` is its part before the first dot).
    pub fn with_hostname(hostname: &str) -> Self {
        let secs = Duration::from_secs;
        NsqConfig {
            dial_timeout: secs(1),
            read_timeout: secs(60),
            write_timeout: secs(1),
            lookupd_poll_interval: secs(60),
            lookupd_poll_jitter: 0.3,
            lookupd_poll_timeout: secs(60),
            max_requeue_delay: secs(15 * 60),
            default_requeue_delay: secs(90),
            backoff_strategy: BackoffStrategy::Exponential,
            max_backoff_duration: secs(120),
            backoff_multiplier: secs(1),
            max_attempts: 5,
            low_rdy_idle_timeout: secs(10),
            low_rdy_timeout: secs(30),
            rdy_redistribute_interval: secs(5),
            client_id: hostname.split('.').next().unwrap_or_default().to_owned(),
            hostname: hostname.to_owned(),
            user_agent: format!("go-nsq/{GO_NSQ_VERSION}"),
            heartbeat_interval_ms: 30_000,
            sample_rate: 0,
            tls_v1: false,
            tls: TlsOptions::default(),
            deflate: false,
            deflate_level: 6,
            snappy: false,
            output_buffer_size: 16384,
            output_buffer_timeout_ms: 250,
            max_in_flight: 1,
            msg_timeout_ms: 0,
            auth_secret: String::new(),
            lookupd_authorization: true,
        }
    }

    /// go-nsq's `ConfigFlag.Set`: `key,value` split at the first comma (so the value may
    /// hold commas); a flag without a comma sets the option to Go's `true`.
    pub fn parse_opt(&mut self, flag_value: &str) -> Result<(), ConfigError> {
        match flag_value.split_once(',') {
            Some((key, value)) => self.set(key, Some(value)),
            None => self.set(flag_value, None),
        }
    }

    /// go-nsq's `Config.Set(key, value)`: dashes in `key` count as underscores; `None` is
    /// Go's `true`. The value is coerced to the option's type and range-checked, with
    /// Go's error texts; see the module doc for where we refuse what Go would not.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), ConfigError> {
        let option = key.replace('-', "_");
        let raw = Raw {
            option: &option,
            value,
        };
        match option.as_str() {
            "dial_timeout" => self.dial_timeout = raw.duration()?,
            "read_timeout" => self.read_timeout = raw.duration()?,
            "write_timeout" => self.write_timeout = raw.duration()?,
            "lookupd_poll_interval" => self.lookupd_poll_interval = raw.duration()?,
            "lookupd_poll_jitter" => self.lookupd_poll_jitter = raw.float()?,
            "lookupd_poll_timeout" => self.lookupd_poll_timeout = raw.duration()?,
            "max_requeue_delay" => self.max_requeue_delay = raw.duration()?,
            "default_requeue_delay" => self.default_requeue_delay = raw.duration()?,
            "backoff_strategy" => self.backoff_strategy = raw.backoff_strategy()?,
            "max_backoff_duration" => self.max_backoff_duration = raw.duration()?,
            "backoff_multiplier" => self.backoff_multiplier = raw.duration()?,
            "max_attempts" => self.max_attempts = raw.uint()?,
            "low_rdy_idle_timeout" => self.low_rdy_idle_timeout = raw.duration()?,
            "low_rdy_timeout" => self.low_rdy_timeout = raw.duration()?,
            "rdy_redistribute_interval" => self.rdy_redistribute_interval = raw.duration()?,
            "client_id" => self.client_id = raw.string()?,
            "hostname" => self.hostname = raw.string()?,
            "user_agent" => self.user_agent = raw.string()?,
            "heartbeat_interval" => self.heartbeat_interval_ms = raw.identify_millis()?,
            "sample_rate" => self.sample_rate = raw.int()?,
            "tls_v1" => self.tls_v1 = raw.bool()?,
            "deflate" => self.deflate = raw.bool()?,
            "deflate_level" => self.deflate_level = raw.int()?,
            "snappy" => self.snappy = raw.bool()?,
            "output_buffer_size" => self.output_buffer_size = raw.int()?,
            "output_buffer_timeout" => self.output_buffer_timeout_ms = raw.identify_millis()?,
            "max_in_flight" => self.max_in_flight = raw.int()?,
            "msg_timeout" => self.msg_timeout_ms = raw.identify_millis()?,
            "auth_secret" => self.auth_secret = raw.string()?,
            "skip_lookupd_authorization" => self.lookupd_authorization = raw.bool()?,
            "tls_root_ca_file"
            | "tls_insecure_skip_verify"
            | "tls_cert"
            | "tls_key"
            | "tls_min_version" => self.tls.set(&raw)?,
            "local_addr" | "tls_config" => return Err(ConfigError::Unsupported(option)),
            _ => return Err(ConfigError::InvalidOption(option)),
        }
        Ok(())
    }

    /// go-nsq's `Config.Validate`: every field within its `min`/`max` (errors name the
    /// Go field: `invalid MaxInFlight ! -1 < 0`), in Go's field order, then the heartbeat
    /// no longer than the read timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for limit in &LIMITS {
            check(limit.field, limit.opt, (limit.get)(self))?;
        }
        let heartbeat_ns = self.heartbeat_interval_ms.saturating_mul(1_000_000);
        let read_timeout_ns = go_nanos(self.read_timeout);
        if heartbeat_ns > read_timeout_ns {
            return Err(ConfigError::HeartbeatAboveReadTimeout {
                heartbeat: format_go_duration(heartbeat_ns),
                read_timeout: format_go_duration(read_timeout_ns),
            });
        }
        Ok(())
    }

    /// The IDENTIFY body go-nsq's `Conn.identify` sends (keys sort as Go's `json.Marshal`
    /// of a map sorts them). `short_id` and `long_id` are Go's deprecated copies of
    /// `client_id` and `hostname`. Serialized with serde_json it is the same JSON value
    /// as Go's, not the same bytes (Go also escapes `<`, `>` and `&`).
    pub fn identify_json(&self) -> serde_json::Value {
        serde_json::json!({
            "client_id": self.client_id,
            "hostname": self.hostname,
            "user_agent": self.user_agent,
            "short_id": self.client_id,
            "long_id": self.hostname,
            "tls_v1": self.tls_v1,
            "deflate": self.deflate,
            "deflate_level": self.deflate_level,
            "snappy": self.snappy,
            "feature_negotiation": true,
            "heartbeat_interval": self.heartbeat_interval_ms,
            "sample_rate": self.sample_rate,
            "output_buffer_size": self.output_buffer_size,
            "output_buffer_timeout": self.output_buffer_timeout_ms,
            "msg_timeout": self.msg_timeout_ms,
        })
    }

    /// The TLS client for a connection to `host` (the host part of the nsqd address),
    /// or `None` unless `tls_v1` is set. It honours `tls_root_ca_file` (else the
    /// system's roots), `tls_insecure_skip_verify`, `tls_cert` + `tls_key` and Go's
    /// version range (see [`TlsOptions`]).
    pub fn tls_client(&self, host: &str) -> Result<Option<TlsClient>, ConfigError> {
        if !self.tls_v1 {
            return Ok(None);
        }
        self.tls.client(host).map(Some)
    }

    /// The delay of a `REQ` the handler did not choose (go-nsq's `Requeue(-1)`):
    /// `default_requeue_delay × attempts`, capped at `max_requeue_delay`.
    pub fn requeue_delay(&self, attempts: u16) -> Duration {
        self.default_requeue_delay
            .saturating_mul(u32::from(attempts))
            .min(self.max_requeue_delay)
    }

    /// How long the consumer backs off at `level`: the strategy's duration
    /// ([`BackoffStrategy::calculate`], `random` in `[0, 1)` scaling full jitter), capped
    /// at `max_backoff_duration`.
    pub fn backoff_duration(&self, level: u32, random: f64) -> Duration {
        self.backoff_strategy
            .calculate(self.backoff_multiplier, level, random)
            .min(self.max_backoff_duration)
    }
}
