//! A small async NSQ V2 client for tests, tools, benches and simulations.
//!
//! It speaks plain V2 over any [`BoxStream`](crate::env::BoxStream), so the same code runs
//! on a real socket, an in-memory `tokio::io::duplex` pipe or a turmoil stream. All wire
//! bytes come from [`crate::protocol`]; this module only adds buffering and the
//! request/answer choreography. Snappy and deflate are spoken after IDENTIFY negotiates
//! them (through [`crate::compress`]), and TLS when the caller hands a [`TlsClient`] to
//! [`Connection::identify_and_upgrade_tls`]; AUTH is not: a caller must not ask for it.
//!
//! # Layout
//! - [`Connection`] (`connection.rs`): magic, buffered command writes, bounded frame reads,
//!   automatic heartbeat answers. Use it directly for raw or pipelined traffic.
//! - [`Connection::identify_and_upgrade`] (`negotiate.rs`): IDENTIFY, then the snappy or
//!   deflate upgrade the answer turned on ([`Negotiated`], [`Compression`]).
//! - [`TlsClient`] (`tls.rs`): the rustls configuration and server name for the TLS
//!   upgrade ([`Connection::upgrade_tls`]), and [`AcceptAnyServerCert`] for callers asked
//!   not to verify the server (Go's `InsecureSkipVerify`).
//! - [`Producer`] (`producer.rs`): PUB, MPUB and DPUB, each waiting for its `OK`.
//! - [`Consumer`] (`consumer.rs`): SUB, RDY, FIN, REQ, TOUCH, CLS and a message stream.
//! - [`lookup_nsqds`] (`lookup.rs`): the nsqds holding a topic, asked of nsqlookupds.
//! - [`ClientError`] (`error.rs`): everything that can go wrong, server errors included.
//!
//! Neither type runs a background task: heartbeats are answered only while the caller
//! reads, so a connection left unread for two heartbeat intervals is closed by nsqd.

mod connection;
mod consumer;
mod error;
mod lookup;
mod negotiate;
mod producer;
#[cfg(test)]
mod test_server;
mod tls;

pub use connection::{Connection, ConnectionOptions, Frame, DEFAULT_MAX_FRAME_SIZE};
pub use consumer::Consumer;
pub use error::ClientError;
pub use lookup::lookup_nsqds;
pub use negotiate::{Compression, Negotiated};
pub use producer::Producer;
pub use tls::{AcceptAnyServerCert, TlsClient};
