//! The nsqlookupd daemon: the directory consumers ask where a topic lives, kept by the
//! nsqds that register with it (nsq-reference §5), reached through one [`Lookupd`] handle.
//!
//! # Layout
//! - `options`: every setting with Go's names and defaults; `cli`: argv and TOML into it.
//! - `registry`: the registration DB (client, topic and channel registrations per
//!   producer, tombstones, activity).
//! - `tcp`: the V1 listener and one connection's command loop (the wire rules are in
//!   [`crate::protocol::lookup`]).
//! - `http`: the HTTP API.

pub mod cli;
mod http;
pub mod options;
pub mod registry;
#[cfg(test)]
mod registry_props;
mod tcp;

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::env::{Env, Listener};
use registry::RegistrationDb;

pub use options::Options;

/// Why nsqlookupd could not start.
#[derive(Debug, thiserror::Error)]
pub enum LookupdError {
    /// A listener could not be bound.
    #[error("listen ({addr}) failed - {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The shared state of one nsqlookupd.
pub(crate) struct LookupdInner {
    pub(crate) opts: Options,
    pub(crate) env: Env,
    /// Who holds which topic and channel.
    pub(crate) db: RegistrationDb,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: crate::env::Tasks,
    tcp_listener: Mutex<Option<Box<dyn Listener>>>,
    http_listener: Mutex<Option<Box<dyn Listener>>>,
    pub(crate) tcp_addr: SocketAddr,
    pub(crate) http_addr: SocketAddr,
}

impl LookupdInner {
    /// Wall time in ns.
    pub(crate) fn now_ns(&self) -> i64 {
        self.env.clock.now_ns()
    }
}

/// A running nsqlookupd. Cheap to clone; every clone is the same daemon.
#[derive(Clone)]
pub struct Lookupd {
    inner: Arc<LookupdInner>,
}

impl std::fmt::Debug for Lookupd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookupd")
            .field("tcp_addr", &self.inner.tcp_addr)
            .field("http_addr", &self.inner.http_addr)
            .finish_non_exhaustive()
    }
}

impl Lookupd {
    /// Binds the listeners; nothing is served until [`Lookupd::run`].
    pub async fn new(opts: Options, env: Env) -> Result<Lookupd, LookupdError> {
        let task_mode = env.tasks;
        let tcp = bind(&env, &opts.tcp_address).await?;
        let tcp_addr = local_addr(&*tcp, &opts.tcp_address)?;
        let http = bind(&env, &opts.http_address).await?;
        let http_addr = local_addr(&*http, &opts.http_address)?;
        tracing::info!(version = options::VERSION, tcp = %tcp_addr, http = %http_addr, "nsqlookupd starting");
        Ok(Lookupd {
            inner: Arc::new(LookupdInner {
                opts,
                env,
                db: RegistrationDb::default(),
                shutdown: CancellationToken::new(),
                tasks: crate::env::Tasks::new(task_mode),
                tcp_listener: Mutex::new(Some(tcp)),
                http_listener: Mutex::new(Some(http)),
                tcp_addr,
                http_addr,
            }),
        })
    }

    /// The address the V1 protocol listens on.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.inner.tcp_addr
    }

    /// The address the HTTP API listens on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        Some(self.inner.http_addr)
    }

    /// Serves until [`Lookupd::shutdown`] is called.
    pub async fn run(&self) -> Result<(), LookupdError> {
        let inner = &self.inner;
        if let Some(listener) = inner.tcp_listener.lock().take() {
            inner.tasks.spawn(tcp::accept_loop(inner.clone(), listener));
        }
        if let Some(listener) = inner.http_listener.lock().take() {
            inner.tasks.spawn(http::serve(inner.clone(), listener));
        }
        inner.shutdown.cancelled().await;
        Ok(())
    }

    /// Stops the listeners and closes every connection; returns when all tasks ended.
    pub async fn shutdown(&self) {
        tracing::info!("nsqlookupd exiting");
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

async fn bind(env: &Env, addr: &str) -> Result<Box<dyn Listener>, LookupdError> {
    env.net
        .bind_tcp(addr)
        .await
        .map_err(|source| LookupdError::Listen {
            addr: addr.to_string(),
            source,
        })
}

fn local_addr(listener: &dyn Listener, addr: &str) -> Result<SocketAddr, LookupdError> {
    listener
        .local_addr()
        .map_err(|source| LookupdError::Listen {
            addr: addr.to_string(),
            source,
        })
}
