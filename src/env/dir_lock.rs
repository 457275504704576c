//! The guard of an exclusive directory lock (`Fs::lock_dir`).

use std::path::{Path, PathBuf};

/// Proof that this process holds the exclusive lock on a directory; dropping it releases
/// the lock.
///
/// nsqd holds one on its `--data-path` for its whole life, so that a second nsqd on the
/// same directory refuses to start instead of corrupting the first one's queues. Each
/// [`Fs`](super::Fs) puts its own release mechanism inside (an open, flock'ed file for
/// `RealFs`, a registration in the shared state for `MemFs`).
pub struct DirLock {
    /// The directory as it was asked for, for logs.
    dir: PathBuf,
    /// Whatever releases the lock when dropped.
    _release: Box<dyn Send + Sync>,
}

impl DirLock {
    /// Wraps the lock on `dir`; `release` must give the lock back when dropped.
    pub fn new(dir: &Path, release: impl Send + Sync + 'static) -> Self {
        DirLock {
            dir: dir.to_path_buf(),
            _release: Box::new(release),
        }
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl std::fmt::Debug for DirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirLock")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}
