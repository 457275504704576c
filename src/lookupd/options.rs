//! nsqlookupd's options: every setting with Go nsqlookupd's name and default
//! (nsq-reference §5.1).

use std::time::Duration;

/// nsqlookupd's version string, as Go nsqlookupd v1.3.0 reports it.
pub const VERSION: &str = "1.3.0";

/// Every nsqlookupd option. Field names are Go's config (TOML) names.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `--log-level`: debug, info, warn, error, fatal.
    pub log_level: String,
    /// `--log-prefix`.
    pub log_prefix: String,
    /// `--tcp-address`: where the V1 protocol listens.
    pub tcp_address: String,
    /// `--http-address`: where the HTTP API listens.
    pub http_address: String,
    /// `--broadcast-address`: this lookupd's address in its IDENTIFY answer.
    pub broadcast_address: String,
    /// `--inactive-producer-timeout`: a producer not heard from (IDENTIFY or PING) for
    /// longer drops out of `/lookup` and `/nodes`.
    pub inactive_producer_timeout: Duration,
    /// `--tombstone-lifetime`: how long a tombstoned producer stays hidden from `/lookup`.
    pub tombstone_lifetime: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_level: "info".to_string(),
            log_prefix: "[nsqlookupd] ".to_string(),
            tcp_address: "0.0.0.0:4160".to_string(),
            http_address: "0.0.0.0:4161".to_string(),
            broadcast_address: crate::env::os_hostname(),
            inactive_producer_timeout: Duration::from_secs(300),
            tombstone_lifetime: Duration::from_secs(45),
        }
    }
}
