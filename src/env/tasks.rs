//! Spawning the daemons' tasks: on the tokio runtime in production, on the current
//! `LocalSet` in simulations.
//!
//! turmoil crashes a host by dropping its runtime. The runtime drops its tasks in an order
//! that depends on tokio's process-wide task ids, so the order in which a crashed host's
//! sockets close (and with it the rest of the simulated history) would change with
//! whatever ran earlier in the process. A `LocalSet` drops its tasks in the order they
//! were spawned, so a run replays exactly even after other runs in the same process.

use std::future::Future;

use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio_util::task::TaskTracker;

/// Where spawned tasks run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TaskMode {
    /// `tokio::spawn`: any worker thread of the runtime (production).
    #[default]
    Runtime,
    /// `tokio::task::spawn_local`: the current `LocalSet` (turmoil hosts).
    Local,
}

/// A daemon's tasks: spawned as its [`TaskMode`] says and tracked, so shutdown can wait
/// for all of them.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    mode: TaskMode,
}

impl Tasks {
    /// No tasks yet; later ones spawn as `mode` says.
    pub fn new(mode: TaskMode) -> Self {
        Tasks {
            tracker: TaskTracker::new(),
            mode,
        }
    }

    /// Spawns and tracks `future`.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let future = self.tracker.track_future(future);
        match self.mode {
            TaskMode::Runtime => tokio::spawn(future),
            TaskMode::Local => tokio::task::spawn_local(future),
        }
    }

    /// Spawns `future` into `set` (tracked as well), as the mode says.
    pub fn spawn_into<F>(&self, set: &mut JoinSet<F::Output>, future: F) -> AbortHandle
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let future = self.tracker.track_future(future);
        match self.mode {
            TaskMode::Runtime => set.spawn(future),
            TaskMode::Local => set.spawn_local(future),
        }
    }

    /// No more tasks will be spawned; [`wait`](Self::wait) can finish.
    pub fn close(&self) {
        self.tracker.close();
    }

    /// Resolves once closed and every tracked task has ended.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }
}
