//! The seams between the daemons and the outside world.
//!
//! `nsqd` and `nsqlookupd` never touch sockets, files, the wall clock or randomness
//! directly: they go through one [`Env`] handed to them at construction. The real
//! implementations live here ([`Env::real`]); the simulator in `sim/` supplies turmoil-backed
//! ones, so the very same daemon code runs on real loopback and inside deterministic
//! simulations.
//!
//! Timers, intervals and deadlines use `tokio::time` directly: turmoil simulates it per
//! host, so there is nothing to wrap.

mod clock;
mod dir_lock;
mod fs;
mod memfs;
mod net;
mod rng;
mod tasks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use clock::{Clock, RealClock};
pub use dir_lock::DirLock;
pub use fs::{Fs, RealFs};
pub use memfs::{CrashMode, MemFs};
pub use net::{AsyncStream, BoxStream, Datagram, Listener, Net, RealNet};
pub use rng::{Rng, SeededRng};
pub use tasks::{TaskMode, Tasks};

/// A boxed, sendable future: the return type of every seam method (no `async-trait`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything a daemon may use to reach the world: network, files, wall time, randomness.
#[derive(Clone)]
pub struct Env {
    /// Wall-clock time (message timestamps, GUIDs, stats).
    pub clock: Arc<dyn Clock>,
    /// TCP listeners and streams, UDP sockets.
    pub net: Arc<dyn Net>,
    /// The file operations of the disk queue and metadata.
    pub fs: Arc<dyn Fs>,
    /// Seeded randomness (queue-scan sampling, message sampling, jitter).
    pub rng: Arc<dyn Rng>,
    /// Where the daemon's tasks run (the runtime, or a simulated host's `LocalSet`).
    pub tasks: TaskMode,
}

impl Env {
    /// The production environment: real sockets, real files, the system clock and an RNG
    /// seeded from the OS.
    pub fn real() -> Self {
        Env {
            clock: Arc::new(RealClock),
            net: Arc::new(RealNet),
            fs: Arc::new(RealFs),
            rng: Arc::new(SeededRng::from_entropy()),
            tasks: TaskMode::Runtime,
        }
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

/// The OS hostname, as Go's `os.Hostname()` gives it (nsqd's default broadcast address).
pub fn os_hostname() -> String {
    #[allow(clippy::disallowed_methods)]
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname");
    from_kernel
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Reads a config file (`--config`). It happens once, before any daemon exists, in the
/// real binaries only: simulations build their options directly.
pub fn read_config_file(path: &str) -> std::io::Result<String> {
    #[allow(clippy::disallowed_methods)]
    let text = std::fs::read_to_string(path);
    text
}

/// Reads a file a tool's command line names (a TLS CA, certificate or key given with
/// `--consumer-opt`). Like [`read_config_file`] it happens at startup, in the real
/// binaries only, before any connection exists; the bytes are returned as they are (PEM
/// need not be UTF-8 clean around its blocks).
pub fn read_startup_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    #[allow(clippy::disallowed_methods)]
    let bytes = std::fs::read(path);
    bytes
}
