//! What keeps messages and metadata across restarts: `nsqd.dat` loaded at start and
//! persisted on change, the disk loop (periodic syncs, topic disk queues drained to
//! their channels), health, and the flush to disk at exit (nsq-reference §4.6-4.8).

use std::sync::Arc;
use std::time::Duration;

use super::diskqueue::{DiskQueueConfig, DiskQueueError};
use super::metadata::{self, ChannelMetadata, Metadata, TopicMetadata};
use super::topic::{BackendFactory, TopicError};
use super::{NsqdError, NsqdInner};
use crate::protocol::{names, MESSAGE_HEADER_LENGTH};

/// Messages moved from a topic's disk queue to its channels per step of the disk loop.
const DRAIN_BATCH_MAX: usize = 1024;

/// Bytes of messages a disk queue gathers before writing them out in one go (a sync due
/// every `--sync-every` messages, a roll, the `--sync-timeout` tick or exit write them
/// sooner). A crash of the process loses them as it loses what is in memory, so this
/// applies only where memory queues are on (`--mem-queue-size` > 0): with
/// `--mem-queue-size=0` every publish reaches its file before its `OK`, and
/// `--sync-every=1` also syncs it.
const WRITE_BUFFER_BYTES: u64 = 1 << 20;

/// The disk queue settings from the options.
pub(crate) fn disk_queue_config(opts: &super::Options) -> DiskQueueConfig {
    let header = MESSAGE_HEADER_LENGTH as u64;
    DiskQueueConfig {
        max_bytes_per_file: u64::try_from(opts.max_bytes_per_file).unwrap_or(0),
        min_msg_size: MESSAGE_HEADER_LENGTH as u32,
        max_msg_size: u32::try_from(u64::try_from(opts.max_msg_size).unwrap_or(0) + header)
            .unwrap_or(u32::MAX),
        sync_every: u64::try_from(opts.sync_every).unwrap_or(1),
        write_buffer_bytes: if opts.mem_queue_size > 0 {
            WRITE_BUFFER_BYTES
        } else {
            0
        },
    }
}

/// The factory of a daemon's disk queues.
pub(crate) fn backend_factory(env: &crate::env::Env, opts: &super::Options) -> BackendFactory {
    BackendFactory {
        fs: env.fs.clone(),
        data_path: super::data_path(opts),
        config: disk_queue_config(opts),
        buggify: opts.buggify,
        deferred_memory_budget: usize::try_from(opts.max_deferred_memory).unwrap_or(0),
    }
}

impl NsqdInner {
    /// Startup: recreates the topics and channels of `nsqd.dat` (paused as recorded,
    /// invalid names skipped), opens their disk queues, and persists the metadata.
    pub(crate) async fn load_metadata(&self) -> Result<(), NsqdError> {
        let data_path = &self.backends.data_path;
        let loaded = metadata::load(&*self.env.fs, data_path)
            .await
            .map_err(|e| NsqdError::Metadata(e.to_string()))?;
        let now = self.now_ns();
        for topic_meta in loaded.map(|m| m.topics).unwrap_or_default() {
            if !names::is_valid_topic_name(&topic_meta.name) {
                continue;
            }
            let topic = self.get_or_create_topic(&topic_meta.name);
            for channel_meta in &topic_meta.channels {
                if !names::is_valid_channel_name(&channel_meta.name) {
                    continue;
                }
                if let Ok(channel) = topic.get_or_create_channel(&channel_meta.name, now) {
                    channel.set_paused(channel_meta.paused);
                    if let Some(backend) = channel.backend() {
                        if let Err(error) = backend.open().await {
                            tracing::error!(topic = %topic.name, channel = %channel.name, %error, "failed to open disk queue");
                        }
                    }
                    channel.restore_due_times(now).await;
                }
            }
            topic.set_paused(topic_meta.paused, now);
            if let Some(backend) = topic.backend() {
                if let Err(error) = backend.open().await {
                    tracing::error!(topic = %topic.name, %error, "failed to open disk queue");
                }
            }
            topic.restore_due_times(now).await;
        }
        self.persist_metadata().await;
        Ok(())
    }

    /// What `nsqd.dat` should say now (ephemeral names are left out by the encoder).
    pub(crate) fn current_metadata(&self) -> Metadata {
        let topics = self
            .topics()
            .iter()
            .map(|topic| TopicMetadata {
                name: topic.name.clone(),
                paused: topic.snapshot().paused,
                channels: topic
                    .channels()
                    .iter()
                    .map(|channel| ChannelMetadata {
                        name: channel.name.clone(),
                        paused: channel.is_paused(),
                    })
                    .collect(),
            })
            .collect();
        Metadata::new(topics)
    }

    /// Writes `nsqd.dat` now if it differs from what was last written.
    pub(crate) async fn persist_metadata(&self) {
        let metadata = self.current_metadata();
        let encoded = metadata.encode();
        if self.last_metadata.lock().as_deref() == Some(encoded.as_slice()) {
            return;
        }
        let data_path = &self.backends.data_path;
        match metadata::persist(&*self.env.fs, data_path, &metadata, &*self.env.rng).await {
            Ok(()) => *self.last_metadata.lock() = Some(encoded),
            Err(error) => tracing::error!(%error, "failed to persist metadata"),
        }
    }

    /// Records the outcome of a disk write: a failure makes nsqd unhealthy (`/ping`
    /// answers 500 with it) until a write succeeds again.
    pub(crate) fn note_disk_write<T, E: std::fmt::Display>(&self, result: &Result<T, E>) {
        let mut health = self.health.lock();
        match result {
            Ok(_) => *health = None,
            Err(error) => *health = Some(error.to_string()),
        }
    }

    /// [`NsqdInner::note_disk_write`] for a topic's write: a topic that refused because
    /// it is being deleted (or nsqd exits) says nothing about the disk, as in Go.
    pub(crate) fn note_topic_write<T>(&self, result: &Result<T, TopicError>) {
        if !matches!(result, Err(TopicError::Exiting)) {
            self.note_disk_write(result);
        }
    }

    /// "OK", or the last disk error.
    pub(crate) fn health(&self) -> Option<String> {
        self.health.lock().clone()
    }

    /// Exit: persist the metadata, flush every topic and channel to disk, close the
    /// disk queues (Go's order, §4.7).
    pub(crate) async fn flush_to_disk(&self) {
        self.persist_metadata().await;
        for topic in self.topics() {
            if let Err(error) = topic.flush_to_backends(self.now_ns()).await {
                tracing::error!(topic = %topic.name, %error, "failed to flush to disk at exit");
            }
        }
    }
}

/// The disk loop: every scan interval, move what topics hold on disk to their channels
/// and persist changed metadata; every sync timeout, sync the disk queues that had
/// activity (go-diskqueue's sync ticker).
pub(crate) async fn disk_loop(nsqd: Arc<NsqdInner>) {
    let mut drain_tick =
        tokio::time::interval(nsqd.opts.queue_scan_interval.max(Duration::from_millis(1)));
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sync_tick = tokio::time::interval(nsqd.opts.sync_timeout.max(Duration::from_millis(1)));
    sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = nsqd.shutdown.cancelled() => break,
            _ = sync_tick.tick() => sync_due(&nsqd).await,
            _ = drain_tick.tick() => {
                drain_topics(&nsqd).await;
                tend_deferred_on_disk(&nsqd).await;
                nsqd.persist_metadata().await;
            }
        }
    }
}

async fn drain_topics(nsqd: &NsqdInner) {
    for topic in nsqd.topics() {
        loop {
            let moved = topic.drain_backend(nsqd.now_ns(), DRAIN_BATCH_MAX).await;
            if !matches!(moved, Ok(false)) {
                // Only a drain that wrote (or failed to) says something about the disk.
                nsqd.note_topic_write(&moved);
            }
            if !matches!(moved, Ok(true)) || nsqd.shutdown.is_cancelled() {
                break;
            }
        }
    }
}

/// Brings back to memory the spilled deferred messages whose window started, and
/// rewrites the due-time journals that have grown past what they still need.
async fn tend_deferred_on_disk(nsqd: &NsqdInner) {
    let now = nsqd.now_ns();
    for topic in nsqd.topics() {
        if let Err(error) = topic.compact_due_journal(now).await {
            tracing::error!(topic = %topic.name, %error, "failed to compact the due-time journal");
        }
        for channel in topic.channels() {
            channel.load_due_spill(now).await;
            if let Err(error) = channel.compact_due_journal(now).await {
                tracing::error!(topic = %topic.name, channel = %channel.name, %error, "failed to compact the due-time journal");
            }
        }
    }
}

/// The periodic sync of every disk queue that had activity. Its outcome is the disk's
/// health too: a queue whose gathered messages cannot be written makes nsqd unhealthy
/// until a sync works again.
async fn sync_due(nsqd: &NsqdInner) {
    let mut outcome: Option<Result<(), DiskQueueError>> = None;
    for topic in nsqd.topics() {
        let channels = topic.channels();
        let backends = channels
            .iter()
            .filter_map(|c| c.backend())
            .chain(topic.backend());
        for backend in backends {
            match backend.sync_if_due().await {
                Ok(false) => {}
                Ok(true) => {
                    outcome.get_or_insert(Ok(()));
                }
                Err(error) => {
                    tracing::error!(topic = %topic.name, %error, "disk queue sync failed");
                    if !matches!(outcome, Some(Err(_))) {
                        outcome = Some(Err(error));
                    }
                }
            }
        }
    }
    if let Some(outcome) = outcome {
        nsqd.note_disk_write(&outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Env;
    use crate::nsqd::{Nsqd, Options};

    #[tokio::test]
    async fn only_a_topic_write_that_failed_on_disk_changes_health() {
        let dir = tempfile::tempdir().unwrap();
        let nsqd = Nsqd::new(Options::on_loopback(dir.path()), Env::real())
            .await
            .unwrap();
        let inner = &nsqd.inner;
        inner.note_topic_write::<()>(&Err(TopicError::Exiting));
        assert_eq!(
            inner.health(),
            None,
            "a topic being deleted is not a disk error"
        );
        let failed = std::io::Error::other("disk on fire");
        let journal = crate::nsqd::due_journal::JournalError::Write {
            path: "t.due".into(),
            source: failed,
        };
        inner.note_topic_write::<()>(&Err(TopicError::DueTimes(journal)));
        assert!(inner.health().is_some_and(|h| h.contains("disk on fire")));
        inner.note_topic_write(&Ok(()));
        assert_eq!(inner.health(), None);
    }
}
