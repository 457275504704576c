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

mod error;
#[cfg(test)]
mod fake_nsqd;
mod reader;
mod report;
mod writer;

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
