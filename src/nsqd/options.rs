//! nsqd's options: every setting with Go nsqd's name and default.
//!
//! The flag and TOML parsing that fills this struct lives in [`crate::nsqd::cli`]; this
//! file only says what each option is and what it defaults to, in one place.

use std::time::Duration;

/// nsqd's version string, as Go nsqd v1.3.0 reports it (clients and tools compare it).
pub const VERSION: &str = "1.3.0";

/// Fixed settings Go keeps out of flags and config (only tests change them).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Every nsqd option. Field names are Go's config (TOML) names.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `--node-id` (cfg `id`): the 10-bit node id in every message id.
    pub id: i64,
    /// `--log-level`: debug, info, warn, error, fatal.
    pub log_level: String,
    /// `--log-prefix`.
    pub log_prefix: String,
    /// `--tcp-address`: where the V2 protocol listens.
    pub tcp_address: String,
    /// `--http-address`: where the HTTP API listens ("" disables it).
    pub http_address: String,
    /// `--https-address`: used only once TLS is configured.
    pub https_address: String,
    /// `--broadcast-address`: the address registered with lookupd (default: hostname).
    pub broadcast_address: String,
    /// `--broadcast-tcp-port`: 0 means the real listening port.
    pub broadcast_tcp_port: u16,
    /// `--broadcast-http-port`: 0 means the real listening port.
    pub broadcast_http_port: u16,
    /// `--lookupd-tcp-address` (cfg `nsqlookupd_tcp_addresses`), repeatable.
    pub nsqlookupd_tcp_addresses: Vec<String>,
    /// `--auth-http-address` (cfg `auth_http_addresses`), repeatable.
    pub auth_http_addresses: Vec<String>,
    /// `--http-client-connect-timeout`.
    pub http_client_connect_timeout: Duration,
    /// `--http-client-request-timeout`.
    pub http_client_request_timeout: Duration,
    /// `--data-path`: "" means the current directory.
    pub data_path: String,
    /// `--mem-queue-size`: messages kept in memory per topic and per channel.
    pub mem_queue_size: i64,
    /// `--max-deferred-memory` (ours, not Go's): bytes of deferred messages a channel
    /// keeps in memory; the rest wait in spill segments on disk.
    pub max_deferred_memory: i64,
    /// `--max-bytes-per-file`: disk queue file roll size.
    pub max_bytes_per_file: i64,
    /// `--sync-every`: messages per disk queue fsync.
    pub sync_every: i64,
    /// `--sync-timeout`: disk queue fsync period.
    pub sync_timeout: Duration,
    /// `--queue-scan-interval`: not a Go flag; fixed at 100 ms outside tests.
    pub queue_scan_interval: Duration,
    /// Not a Go flag; fixed at 5 s outside tests.
    pub queue_scan_refresh_interval: Duration,
    /// `--queue-scan-selection-count`: channels sampled per scan cycle.
    pub queue_scan_selection_count: i64,
    /// `--queue-scan-worker-pool-max`.
    pub queue_scan_worker_pool_max: i64,
    /// Not a Go flag; fixed at 0.25.
    pub queue_scan_dirty_percent: f64,
    /// Not a Go flag; fixed at 15 s outside tests: how often each nsqlookupd is PINGed.
    pub lookup_ping_interval: Duration,
    /// `--msg-timeout`: default time a message may stay in flight.
    pub msg_timeout: Duration,
    /// `--max-msg-timeout`: the largest msg timeout a client may ask for.
    pub max_msg_timeout: Duration,
    /// `--max-msg-size`: the largest message body.
    pub max_msg_size: i64,
    /// `--max-body-size`: the largest command body (MPUB, IDENTIFY).
    pub max_body_size: i64,
    /// `--max-req-timeout`: bounds REQ, DPUB and HTTP defer.
    pub max_req_timeout: Duration,
    /// Not a Go flag; fixed at 60 s. Default heartbeat = half of it.
    pub client_timeout: Duration,
    /// `--max-heartbeat-interval`.
    pub max_heartbeat_interval: Duration,
    /// `--max-rdy-count`.
    pub max_rdy_count: i64,
    /// `--max-output-buffer-size`.
    pub max_output_buffer_size: i64,
    /// `--max-output-buffer-timeout`.
    pub max_output_buffer_timeout: Duration,
    /// `--min-output-buffer-timeout`.
    pub min_output_buffer_timeout: Duration,
    /// `--output-buffer-timeout`: the default for clients.
    pub output_buffer_timeout: Duration,
    /// `--max-channel-consumers`: 0 means unlimited.
    pub max_channel_consumers: i64,
    /// `--statsd-address`.
    pub statsd_address: String,
    /// `--statsd-prefix`.
    pub statsd_prefix: String,
    /// `--statsd-interval`.
    pub statsd_interval: Duration,
    /// `--statsd-mem-stats`.
    pub statsd_mem_stats: bool,
    /// `--statsd-udp-packet-size`.
    pub statsd_udp_packet_size: i64,
    /// `--statsd-exclude-ephemeral`.
    pub statsd_exclude_ephemeral: bool,
    /// `--e2e-processing-latency-percentile` (cfg `e2e_processing_latency_percentiles`).
    pub e2e_processing_latency_percentiles: Vec<f64>,
    /// `--e2e-processing-latency-window-time`.
    pub e2e_processing_latency_window_time: Duration,
    /// `--tls-cert`.
    pub tls_cert: String,
    /// `--tls-key`.
    pub tls_key: String,
    /// `--tls-client-auth-policy`.
    pub tls_client_auth_policy: String,
    /// `--tls-root-ca-file`.
    pub tls_root_ca_file: String,
    /// `--tls-required`: 0 no, 1 tcp-https, 2 everywhere (Go's TLSNotRequired.. values).
    pub tls_required: i64,
    /// `--tls-min-version`.
    pub tls_min_version: String,
    /// `--deflate`: allow clients to negotiate deflate.
    pub deflate: bool,
    /// `--max-deflate-level`.
    pub max_deflate_level: i64,
    /// `--snappy`: allow clients to negotiate snappy.
    pub snappy: bool,
    /// `--replication-factor` (ours, not Go's): how many nsqds of the replica set hold
    /// a published message before it is acknowledged (1: no replication).
    pub replication_factor: i64,
    /// `--replica-peer` (cfg `replica_peers`, ours), repeatable: the TCP addresses of
    /// the other nsqds of this node's replica set.
    pub replica_peers: Vec<String>,
    /// `--replica-timeout` (ours): how long a replicated publish waits for its peers'
    /// acknowledgements before it fails.
    pub replica_timeout: Duration,
    /// `--replica-failover-timeout` (ours): how long a peer goes without hearing from
    /// an owner before it delivers that owner's standby copies itself.
    pub replica_failover_timeout: Duration,
    /// `--replica-auth-secret` (ours): the secret sent with AUTH to replica peers that
    /// have `--auth-http-address`; their auth server must grant it publish.
    pub replica_auth_secret: String,
    /// Deliberate bugs for the simulator's self-tests; never set by flags or config.
    pub buggify: super::Buggify,
}

/// `--max-deferred-memory`'s default: 32 MiB per channel.
pub const DEFAULT_MAX_DEFERRED_MEMORY: i64 = 32 * 1024 * 1024;

impl Options {
    /// The defaults, listening on loopback ports the system picks (no HTTPS), with data
    /// in `data_path`: an nsqd for the crate's own tests.
    #[cfg(test)]
    pub(crate) fn on_loopback(data_path: &std::path::Path) -> Options {
        Options {
            tcp_address: "127.0.0.1:0".into(),
            http_address: "127.0.0.1:0".into(),
            https_address: String::new(),
            data_path: data_path.to_string_lossy().into_owned(),
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        let hostname = crate::env::os_hostname();
        Options {
            id: default_node_id(&hostname),
            log_level: "info".into(),
            log_prefix: "[nsqd] ".into(),
            tcp_address: "0.0.0.0:4150".into(),
            http_address: "0.0.0.0:4151".into(),
            https_address: "0.0.0.0:4152".into(),
            broadcast_address: hostname,
            broadcast_tcp_port: 0,
            broadcast_http_port: 0,
            nsqlookupd_tcp_addresses: Vec::new(),
            auth_http_addresses: Vec::new(),
            http_client_connect_timeout: Duration::from_secs(2),
            http_client_request_timeout: Duration::from_secs(5),
            data_path: String::new(),
            mem_queue_size: 10_000,
            max_deferred_memory: DEFAULT_MAX_DEFERRED_MEMORY,
            max_bytes_per_file: 100 * 1024 * 1024,
            sync_every: 2500,
            sync_timeout: Duration::from_secs(2),
            queue_scan_interval: Duration::from_millis(100),
            queue_scan_refresh_interval: Duration::from_secs(5),
            queue_scan_selection_count: 20,
            queue_scan_worker_pool_max: 4,
            queue_scan_dirty_percent: 0.25,
            lookup_ping_interval: Duration::from_secs(15),
            msg_timeout: Duration::from_secs(60),
            max_msg_timeout: Duration::from_secs(15 * 60),
            max_msg_size: 1024 * 1024,
            max_body_size: 5 * 1024 * 1024,
            max_req_timeout: Duration::from_secs(60 * 60),
            client_timeout: CLIENT_TIMEOUT,
            max_heartbeat_interval: Duration::from_secs(60),
            max_rdy_count: 2500,
            max_output_buffer_size: 64 * 1024,
            max_output_buffer_timeout: Duration::from_secs(30),
            min_output_buffer_timeout: Duration::from_millis(25),
            output_buffer_timeout: Duration::from_millis(250),
            max_channel_consumers: 0,
            statsd_address: String::new(),
            statsd_prefix: "nsq.%s".into(),
            statsd_interval: Duration::from_secs(60),
            statsd_mem_stats: true,
            statsd_udp_packet_size: 508,
            statsd_exclude_ephemeral: false,
            e2e_processing_latency_percentiles: Vec::new(),
            e2e_processing_latency_window_time: Duration::from_secs(10 * 60),
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_client_auth_policy: String::new(),
            tls_root_ca_file: String::new(),
            tls_required: 0,
            tls_min_version: "tls1.0".into(),
            deflate: true,
            max_deflate_level: 6,
            snappy: true,
            replication_factor: 1,
            replica_peers: Vec::new(),
            replica_timeout: Duration::from_secs(5),
            replica_failover_timeout: Duration::from_secs(30),
            replica_auth_secret: String::new(),
            buggify: super::Buggify::default(),
        }
    }
}

/// Go's default node id: `crc32(md5(hostname)) % 1024` (IEEE crc32 of the 16-byte digest).
pub fn default_node_id(hostname: &str) -> i64 {
    let digest = md5::compute(hostname.as_bytes());
    i64::from(crc32fast::hash(&digest.0) % 1024)
}
