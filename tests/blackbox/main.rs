//! Black-box tests of nsqd over real loopback sockets, one module per feature, gathered
//! into one test binary so it links once.
//!
//! - `support`: start an nsqd, a raw V2 connection, a tiny HTTP client, asserts.
//! - `auth`: AUTH against a fake auth server (grants, denials, expiry, garbage, hangs).
//! - `tcp_commands`: V2 commands that succeed, byte for byte as Go answers them.
//! - `tcp_errors`: every V2 error case, its text, and fatal vs non-fatal.
//! - `delivery`: RDY, timeouts, REQ, TOUCH, DPUB, CLS, heartbeats, ephemeral, fan-out.
//! - `e2e`: end-to-end processing latency quantiles in `/stats`.
//! - `hardening`: connection bursts, long URLs, a TCP client on the HTTP port.
//! - `health`: a failed disk write turns `/ping` to 500 until a write succeeds.
//! - `http_api`: the HTTP API and `/stats` against Go's golden answers.
//! - `statsd`: the statsd push loop against Go's golden packets.
//! - `http_admin`: topic/channel administration, `/config`, routing and debug endpoints.
//! - `lookup_loop`: nsqd's lookupd loop against a fake nsqlookupd (registrations, PING,
//!   re-sync, live peers, channel pre-creation).
//! - `metrics`: `/metrics` read back with a Prometheus parser.
//! - `restart`: what a graceful exit keeps on `--data-path`, and its lock.
//! - `third_party`: the `tokio-nsq` client publishing and consuming against us.
//! - `tools`: `nsq_tail` and `to_nsq` as processes: round trips, `-h`, bad flags, stop.
//! - `tools_relay`: `nsq_to_http` and `nsq_to_nsq` as processes against test HTTP servers
//!   and two nsqds: delivery, retries, modes, JSON filters, fatal checks, stop and kill.

mod auth;
mod compression;
mod delivery;
mod e2e;
mod hardening;
mod health;
mod http_admin;
mod http_api;
mod lookup_loop;
mod metrics;
mod replication;
mod restart;
mod statsd;
mod support;
mod tcp_commands;
mod tcp_errors;
mod third_party;
mod tls;
mod tools;
mod tools_relay;
