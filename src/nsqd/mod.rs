//! The nsqd daemon.

pub mod cli;
pub mod options;

pub use options::Options;

// TEMPORARY stub of the `Nsqd` API the lead is writing, only so `cli` and `bin/nsqd.rs`
// compile on the `cli` branch. Drop it when merging the real `Nsqd`.
pub use stub::{Nsqd, NsqdError};

mod stub {
    use std::net::SocketAddr;

    use tokio_util::sync::CancellationToken;

    use super::Options;
    use crate::env::Env;

    /// TEMPORARY: why nsqd failed.
    #[derive(Debug, thiserror::Error)]
    pub enum NsqdError {
        /// TEMPORARY: a bad listen address.
        #[error("listen ({0}) failed - invalid address")]
        Listen(String),
    }

    /// TEMPORARY: an nsqd that serves nothing until shut down.
    #[derive(Clone)]
    pub struct Nsqd {
        tcp_addr: SocketAddr,
        shutdown: CancellationToken,
    }

    impl Nsqd {
        /// TEMPORARY: checks the TCP address only.
        pub async fn new(opts: Options, _env: Env) -> Result<Nsqd, NsqdError> {
            let tcp_addr = opts
                .tcp_address
                .parse()
                .map_err(|_| NsqdError::Listen(opts.tcp_address.clone()))?;
            Ok(Nsqd {
                tcp_addr,
                shutdown: CancellationToken::new(),
            })
        }

        /// TEMPORARY.
        pub fn tcp_addr(&self) -> SocketAddr {
            self.tcp_addr
        }

        /// TEMPORARY.
        pub fn http_addr(&self) -> Option<SocketAddr> {
            None
        }

        /// TEMPORARY: waits for `shutdown`.
        pub async fn run(&self) -> Result<(), NsqdError> {
            self.shutdown.cancelled().await;
            Ok(())
        }

        /// TEMPORARY.
        pub async fn shutdown(&self) {
            self.shutdown.cancel();
        }
    }
}
