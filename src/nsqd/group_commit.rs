//! Group commit: writers that append while an fsync runs share the next one instead of
//! queueing one fsync each. The disk queue (`--sync-every=1`) and the due-time journal
//! both use it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts appends and the appends a finished fsync covers; one writer at a time leads
/// an fsync for all.
#[derive(Debug, Default)]
pub struct GroupCommit {
    appended: AtomicU64,
    synced: AtomicU64,
    syncing: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    /// Notes one append (call it once the bytes are written, still under the writer's
    /// own lock); returns the ticket [`GroupCommit::wait_synced`] waits for.
    pub fn appended(&self) -> u64 {
        self.appended.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Returns once an fsync that started after append `ticket` has finished, running
    /// `sync` itself when no other writer is: `sync` must make every append noted so far
    /// durable.
    pub async fn wait_synced<E, F, Fut>(&self, ticket: u64, mut sync: F) -> Result<(), E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        loop {
            if self.synced.load(Ordering::Acquire) >= ticket {
                return Ok(());
            }
            let _leader = self.syncing.lock().await;
            if self.synced.load(Ordering::Acquire) >= ticket {
                return Ok(());
            }
            let covers = self.appended.load(Ordering::Acquire);
            sync().await?;
            self.synced.fetch_max(covers, Ordering::AcqRel);
        }
    }
}
