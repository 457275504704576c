//! What the NSQ utility apps (nsq_tail, to_nsq, nsq_stat, nsq_to_file, nsq_to_http,
//! nsq_to_nsq) share, and each app's logic behind its thin `main` in `src/bin/`.
//!
//! - [`flag_set`]: a tool's flag table, read with Go's `flag` syntax, with Go's `-h`.
//! - [`app`]: the command line, fatal errors and version line every `main` shares.
//! - [`nsq_config`]: go-nsq's `Config`, set by `--consumer-opt`/`--producer-opt`.
//! - [`handshake`]: dial, IDENTIFY, upgrades and AUTH, as go-nsq opens a connection.
//! - [`backoff`]: go-nsq's backoff state machine.
//! - [`consumer`]: go-nsq's consumer: nsqds direct or through nsqlookupd, RDY spread,
//!   FIN/REQ, graceful stop.
//! - [`producer`]: go-nsq's producer: lazy connect, pipelined PUBs, reconnect on use.
//! - [`relay`]: how the relays run their consumers: concurrent handlers, graceful stop.
//! - [`upstream`]: `--mode`: round-robin, go-hostpool ([`hostpool`]) or every address.
//! - [`timer_metrics`]: bitly/timer_metrics, the relays' `--status-every` lines.
//! - [`tail`]: `nsq_tail`. [`to_nsq`]: `to_nsq`. [`stat`]: `nsq_stat`.
//!   [`to_file`]: `nsq_to_file`. [`to_http`]: `nsq_to_http`. [`nsq_to_nsq`]: `nsq_to_nsq`.

pub mod app;
pub mod backoff;
pub mod consumer;
pub mod flag_set;
pub mod handshake;
pub mod hostpool;
pub mod nsq_config;
pub mod nsq_to_nsq;
pub mod producer;
pub mod relay;
pub mod stat;
pub mod tail;
pub mod timer_metrics;
pub mod to_file;
pub mod to_http;
pub mod to_nsq;
pub mod upstream;
