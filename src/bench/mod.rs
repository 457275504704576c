//! `nsq-bench`: the Go repo's bench_writer and bench_reader, in Rust, against any nsqd;
//! a latency probe; a zero-work fake nsqd; and the suite that runs them all against nsqd
//! binaries it starts itself.
//!
//! The writer and reader open `connections` V2 connections (Go uses GOMAXPROCS), prepare
//! them, wait for an optional `--deadline`, start the clock, run for `--runfor` and
//! report one [`Summary`] line in Go's exact format.
//!
//! # Layout
//! - `writer.rs`: synchronous MPUB batches, one in flight per connection.
//! - `reader.rs`: SUB + RDY, FIN every message, with Go's flush rule or flush-on-drain.
//! - `latency.rs`: publish at a fixed rate while a consumer FINs; publish-to-deliver
//!   percentiles from the messages' timestamps ([`LatencySummary`]).
//! - `fake_nsqd.rs`: [`FakeNsqd`], the zero-work server (`nsq-bench fake-nsqd`).
//! - `suite/`: [`run_suite`], every case against child nsqd processes, A/B per round,
//!   with nsqd's CPU from `/proc` and a markdown table.
//! - `tls.rs`: the trust-anything TLS client (bench only) and a self-signed certificate.
//! - `report.rs`: the `duration: ... - ...mb/s - ...ops/s - ...us/op` line.
//! - `error.rs`: [`BenchError`].
//!
//! With `--snappy`, `--deflate` or `--tls`, each connection IDENTIFYs and upgrades while
//! it is prepared, before the clock starts; without, IDENTIFY is queued and leaves with
//! the first command, as in Go.

mod error;
mod fake_nsqd;
mod latency;
mod reader;
mod report;
pub mod suite;
mod tls;
mod writer;

pub use crate::client::Compression;
pub use error::BenchError;
pub use fake_nsqd::{FakeNsqd, FakeNsqdOptions};
pub use latency::{run_latency, LatencyConfig, LatencySummary};
pub use reader::{run_reader, FlushPolicy, ReaderConfig};
pub use report::Summary;
pub use suite::{run_suite, SuiteConfig};
pub use tls::{insecure_client, self_signed_pem};
pub use writer::{run_writer, WriterConfig};

/// Go's tools dial with a one-second timeout.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens a connection as Go's `net.DialTimeout("tcp", addr, timeout)` does.
async fn connect(
    net: &dyn crate::env::Net,
    address: &str,
    timeout: std::time::Duration,
) -> Result<crate::client::Connection, crate::client::ClientError> {
    let connecting = crate::client::Connection::connect(net, address);
    match tokio::time::timeout(timeout, connecting).await {
        Ok(result) => result,
        Err(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out").into())
        }
    }
}

/// The `user_agent` our bench connections send in IDENTIFY.
pub fn user_agent() -> String {
    format!("nsq-bench/{}", env!("CARGO_PKG_VERSION"))
}

/// How a bench connection talks to nsqd beyond plain V2.
#[derive(Debug, Clone)]
pub struct Transport {
    /// `--snappy` / `--deflate`.
    pub compression: Compression,
    /// `--tls`: upgrade to TLS after IDENTIFY with this client (the bench's is
    /// [`insecure_client`]).
    pub tls: Option<crate::client::TlsClient>,
    /// How long a connect may take: Go's [`CONNECT_TIMEOUT`] in the command-line modes;
    /// the suite allows more, as it opens up to 1,000 connections on a busy machine.
    pub connect_timeout: std::time::Duration,
}

impl Transport {
    /// Plain V2: no compression, no TLS, Go's connect timeout.
    pub fn plain() -> Self {
        Transport {
            compression: Compression::None,
            tls: None,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }
}

/// Connects and introduces the connection with `identify` (our IDENTIFY fields).
///
/// Without compression or TLS, IDENTIFY is only queued, and `Ok((conn, true))` says its
/// answer is still to be read. Otherwise it is sent at once with `feature_negotiation`,
/// and the connection is upgraded before anything else is written (nsqd reads
/// everything after IDENTIFY through TLS and the decompressor); nsqd turning the feature
/// off is [`ClientError::Negotiation`](crate::client::ClientError::Negotiation), e.g.
/// "nsqd refused snappy".
async fn open(
    net: &dyn crate::env::Net,
    address: &str,
    mut identify: serde_json::Value,
    transport: &Transport,
) -> Result<(crate::client::Connection, bool), crate::client::ClientError> {
    let mut conn = connect(net, address, transport.connect_timeout).await?;
    let (name, fields) = match transport.compression {
        Compression::None if transport.tls.is_none() => {
            conn.send(&crate::protocol::commands::Command::Identify {
                body: bytes::Bytes::from(identify.to_string()),
            });
            return Ok((conn, true));
        }
        Compression::None => ("", serde_json::json!({})),
        Compression::Snappy => ("snappy", serde_json::json!({"snappy": true})),
        Compression::Deflate { level } => (
            "deflate",
            serde_json::json!({"deflate": true, "deflate_level": level}),
        ),
    };
    if let (Some(identify), serde_json::Value::Object(fields)) = (identify.as_object_mut(), fields)
    {
        identify.insert("feature_negotiation".into(), true.into());
        if transport.tls.is_some() {
            identify.insert("tls_v1".into(), true.into());
        }
        identify.extend(fields);
    }
    let negotiated = conn
        .identify_and_upgrade_tls(identify, transport.tls.as_ref())
        .await?;
    if transport.tls.is_some() && !negotiated.tls {
        return Err(refused("TLS"));
    }
    let got = match negotiated.compression {
        Compression::None => "",
        Compression::Snappy => "snappy",
        Compression::Deflate { .. } => "deflate",
    };
    if got != name {
        return Err(refused(name));
    }
    Ok((conn, false))
}

fn refused(name: &str) -> crate::client::ClientError {
    crate::client::ClientError::Negotiation(format!("nsqd refused {name}"))
}

/// `Ok` when nsqd answered `OK`; anything else is
/// [`ClientError::UnexpectedFrame`](crate::client::ClientError::UnexpectedFrame).
pub(crate) fn expect_ok(answer: bytes::Bytes) -> Result<(), crate::client::ClientError> {
    if answer.as_ref() == crate::protocol::frame::OK {
        return Ok(());
    }
    Err(crate::client::ClientError::UnexpectedFrame {
        expected: "OK",
        got: crate::client::Frame::Response(answer).describe(),
    })
}
