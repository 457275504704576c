//! `nsq-bench`: the Go repo's bench_writer and bench_reader, in Rust, against any nsqd.
//!
//! Both open `connections` V2 connections (Go uses GOMAXPROCS), prepare them, wait for an
//! optional `--deadline`, start the clock, run for `--runfor` and report one
//! [`Summary`] line in Go's exact format.
//!
//! # Layout
//! - `writer.rs`: synchronous MPUB batches, one in flight per connection.
//! - `reader.rs`: SUB + RDY, FIN every message, with Go's flush rule or flush-on-drain.
//! - `report.rs`: the `duration: ... - ...mb/s - ...ops/s - ...us/op` line.
//! - `error.rs`: [`BenchError`].
//!
//! With `--snappy` or `--deflate`, each connection IDENTIFYs and upgrades while it is
//! prepared, before the clock starts; without, IDENTIFY is queued and leaves with the
//! first command, as in Go.

mod error;
#[cfg(test)]
mod fake_nsqd;
mod reader;
mod report;
mod writer;

pub use crate::client::Compression;
pub use error::BenchError;
pub use reader::{run_reader, FlushPolicy, ReaderConfig};
pub use report::Summary;
pub use writer::{run_writer, WriterConfig};

/// Go's tools dial with a one-second timeout.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens a connection as Go's `net.DialTimeout("tcp", addr, time.Second)` does.
async fn connect(
    net: &dyn crate::env::Net,
    address: &str,
) -> Result<crate::client::Connection, crate::client::ClientError> {
    let connecting = crate::client::Connection::connect(net, address);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
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

/// Connects and introduces the connection with `identify` (our IDENTIFY fields).
///
/// Without compression IDENTIFY is only queued, and `Ok((conn, true))` says its answer is
/// still to be read. With compression it is sent at once with `feature_negotiation`, and
/// the connection is upgraded before anything else is written (nsqd reads everything
/// after IDENTIFY through the decompressor); nsqd turning the compression off is
/// [`ClientError::Negotiation`](crate::client::ClientError::Negotiation), e.g.
/// "nsqd refused snappy".
async fn open(
    net: &dyn crate::env::Net,
    address: &str,
    mut identify: serde_json::Value,
    compression: Compression,
) -> Result<(crate::client::Connection, bool), crate::client::ClientError> {
    let mut conn = connect(net, address).await?;
    let (name, fields) = match compression {
        Compression::None => {
            conn.send(&crate::protocol::commands::Command::Identify {
                body: bytes::Bytes::from(identify.to_string()),
            });
            return Ok((conn, true));
        }
        Compression::Snappy => ("snappy", serde_json::json!({"snappy": true})),
        Compression::Deflate { level } => (
            "deflate",
            serde_json::json!({"deflate": true, "deflate_level": level}),
        ),
    };
    if let (Some(identify), serde_json::Value::Object(fields)) = (identify.as_object_mut(), fields)
    {
        identify.insert("feature_negotiation".into(), true.into());
        identify.extend(fields);
    }
    let negotiated = conn.identify_and_upgrade(identify).await?;
    let got = match negotiated.compression {
        Compression::None => return Err(refused(name)),
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
