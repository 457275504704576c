//! What can stop a bench run.

use crate::client::ClientError;

/// A bench failure. Go's tools panic on any of these; we report which connection failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Connecting or preparing connection `index` failed.
    #[error("connection {index}: {source}")]
    Connection {
        /// 0-based, in the order the connections were opened.
        index: usize,
        /// What went wrong.
        #[source]
        source: ClientError,
    },
    /// A worker task panicked or was cancelled.
    #[error("worker task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The latency histogram could not be made.
    #[error("histogram: {0}")]
    Histogram(String),
    /// The bench's TLS client configuration could not be built.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Tags a connection's failure with its index.
pub(super) fn on_connection(index: usize) -> impl Fn(ClientError) -> BenchError {
    move |source| BenchError::Connection { index, source }
}
