//! nsq-rs: a faithful, faster re-implementation of NSQ's `nsqd` and `nsqlookupd`.
//!
//! # Layout
//! - [`env`]: the seams (clock, network, files, randomness, task spawning) every daemon
//!   goes through, so the same code runs on real sockets and inside turmoil simulations.
//! - [`protocol`]: pure, IO-free wire code: V2 commands (one file each), frames, message
//!   encoding, names, error codes, GUIDs, IDENTIFY.
//! - [`nsqd`]: the nsqd daemon: options, topics, channels, queues, client connections,
//!   the queue scan loop, the HTTP API and stats.
//! - [`http_client`]: a bounded JSON `GET` over the seams, plain or TLS (lookupd and auth
//!   server queries), and any request to an `http://` URL with keep-alive (nsq_to_http).
//! - [`lookupd`]: the nsqlookupd daemon: the registration DB, the V1 TCP protocol and
//!   its HTTP API.
//! - [`http_common`]: the HTTP accept loop and Go's V1 response conventions both daemons use.
//! - [`http_front`]: what Go's HTTP server does with a request head before hyper sees it
//!   (long targets, Go's 400 and 431 answers).
//! - [`compress`]: the snappy (framing format) and raw deflate stream wrappers nsqd and
//!   clients switch to after IDENTIFY.
//! - [`client`]: a small async producer/consumer used by tests, tools and benches.
//! - [`go_cli`]: Go's command-line conventions (flag syntax, `-h` layout, value syntax,
//!   config-file values) shared by nsqd, nsqlookupd and the tools.
//! - [`go_fmt`]: Go's `%q` quoting, for messages that must read as Go's.
//! - [`go_json`]: JSON strings and floats byte-for-byte as Go's encoder writes them.
//! - [`go_time`]: Go's duration syntax (`time.ParseDuration`, `Duration.String`) and the
//!   bench's `--deadline` layout, shared by nsqd's flags, config file and stats and the bench.
//! - [`bench`]: the `nsq-bench` writer and reader (Go's bench_writer and bench_reader), the
//!   latency probe, the zero-work fake nsqd, and `suite`, which starts nsqd binaries and
//!   runs every benchmark case against them.
//! - [`tools`]: the NSQ utility apps (`nsq_tail`, `to_nsq`, ...): go-nsq's config and
//!   consumer, Go's flag tables, each app's logic.
//! - [`daemon`]: what the daemon binaries share: Go-style logging and the exit signals.
//! - `bin/`: thin mains for `nsqd`, `nsqlookupd`, `nsq-bench` and the tools.

pub mod bench;
pub mod client;
pub mod compress;
pub mod daemon;
pub mod env;
pub mod go_cli;
pub mod go_fmt;
pub mod go_json;
pub mod go_time;
pub mod http_client;
pub mod http_common;
pub mod http_front;
pub mod lookupd;
pub mod nsqd;
pub mod protocol;
pub mod tools;
