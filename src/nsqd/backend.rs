//! The disk side of a topic or channel: its go-diskqueue, opened on first use and shared
//! by the publishers that overflow into it and the consumers that read from it.
//!
//! The queue sits behind an async mutex (its operations do file IO); a depth mirror
//! lets stats and the delivery path look without waiting for it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex;

use super::buggify::Buggify;
use super::deferred_spill::{DeferredSpill, QueueSource, SpillKind, SpillRecord};
use super::diskqueue::{DiskQueue, DiskQueueConfig, DiskQueueError, Hold, Payload, RecordPos};
use super::due_journal::DueJournal;
use super::group_commit::GroupCommit;
use crate::env::Fs;
use crate::protocol::Message;
use crate::protocol::MessageId;

/// A message is stored as its encoded form (26-byte header + body), written straight
/// into the queue's write buffer.
impl Payload for Message {
    fn payload_len(&self) -> usize {
        self.encoded_len()
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header());
        out.extend_from_slice(&self.body);
    }
}

/// A disk queue of messages.
pub struct Backend {
    name: String,
    fs: Arc<dyn Fs>,
    data_path: PathBuf,
    config: DiskQueueConfig,
    queue: Mutex<Option<DiskQueue>>,
    depth: AtomicI64,
    /// Whether the queue was opened once, so `depth` reflects the files.
    opened: std::sync::atomic::AtomicBool,
    /// Group commit of `--sync-every=1` puts.
    commits: GroupCommit,
    /// Messages read for delivery and not yet finished: the metadata's read position
    /// stays at the oldest, so a crash redelivers them instead of losing them.
    holds: parking_lot::Mutex<HoldBook>,
    /// When the deferred messages among those on disk are due.
    due: DueJournal,
    /// Deferred messages beyond the memory budget of the queue's channel.
    spill: DeferredSpill,
    /// Deferred messages read from this queue before they were due, beyond the budget.
    read_early: DeferredSpill,
    /// The read position the metadata named when this run opened the queue.
    opened_read: parking_lot::Mutex<RecordPos>,
    /// `--max-deferred-memory`: bytes of deferred messages the channel keeps in memory.
    deferred_memory_budget: usize,
}

/// The records a channel has handed to consumers and not yet seen finished.
#[derive(Debug, Default)]
struct HoldBook {
    /// Sequence number of the next record read from disk (every record counts).
    next_seq: u64,
    /// Held records in read order (sequence numbers increase from front to back);
    /// released ones stay as tombstones (`None`) until they reach the front or a
    /// compaction drops them, so a release is a binary search, not a tree update.
    /// The front is always a live hold.
    by_seq: std::collections::VecDeque<(u64, Option<(RecordPos, MessageId)>)>,
    /// Tombstones in `by_seq`.
    released: usize,
    /// The held records by message id.
    by_id: rustc_hash::FxHashMap<MessageId, u64>,
}

/// Tombstones tolerated beyond the live holds before the book is compacted.
const HOLD_TOMBSTONE_SLACK: usize = 1024;

impl HoldBook {
    /// Where the metadata's read position must stay, if anything is held.
    fn hold(&self) -> Option<Hold> {
        let &(seq, Some((at, _))) = self.by_seq.front()? else {
            return None;
        };
        Some(Hold {
            at,
            records: self.next_seq - seq,
        })
    }

    /// Holds the record `seq` (the newest read), which starts at `at`.
    fn insert(&mut self, seq: u64, at: RecordPos, id: MessageId) {
        if let Some(old) = self.by_id.insert(id, seq) {
            self.forget(old);
        }
        self.by_seq.push_back((seq, Some((at, id))));
    }

    /// Where the held message `id` is in the queue.
    fn source_of(&self, id: &MessageId) -> Option<QueueSource> {
        let seq = *self.by_id.get(id)?;
        let i = self.by_seq.binary_search_by_key(&seq, |&(s, _)| s).ok()?;
        self.by_seq[i].1.map(|(at, _)| QueueSource { at, seq })
    }

    /// Holds again the record read as `source` (released since, and not read again),
    /// for message `id`.
    fn hold_again(&mut self, source: QueueSource, id: MessageId) {
        if let Some(old) = self.by_id.insert(id, source.seq) {
            if old != source.seq {
                self.forget(old);
            }
        }
        match self.by_seq.binary_search_by_key(&source.seq, |&(s, _)| s) {
            Ok(i) => {
                if self.by_seq[i].1.replace((source.at, id)).is_none() {
                    self.released = self.released.saturating_sub(1);
                }
            }
            Err(i) => self.by_seq.insert(i, (source.seq, Some((source.at, id)))),
        }
    }

    /// Releases the hold of message `id`, if it has one.
    fn release(&mut self, id: &MessageId) {
        if let Some(seq) = self.by_id.remove(id) {
            self.forget(seq);
        }
    }

    fn forget(&mut self, seq: u64) {
        let Ok(i) = self.by_seq.binary_search_by_key(&seq, |&(s, _)| s) else {
            return;
        };
        if self.by_seq[i].1.take().is_some() {
            self.released += 1;
        }
        while self.by_seq.front().is_some_and(|(_, hold)| hold.is_none()) {
            self.by_seq.pop_front();
            self.released = self.released.saturating_sub(1);
        }
        if self.released > self.by_id.len() + HOLD_TOMBSTONE_SLACK {
            self.by_seq.retain(|(_, hold)| hold.is_some());
            self.released = 0;
        }
    }

    fn clear(&mut self) {
        self.by_seq.clear();
        self.by_id.clear();
        self.released = 0;
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// The queue `name` in `data_path` (nothing is touched until first use).
    pub fn new(fs: Arc<dyn Fs>, data_path: PathBuf, name: String, config: DiskQueueConfig) -> Self {
        Backend {
            due: DueJournal::new(fs.clone(), &data_path, &name, false),
            spill: DeferredSpill::new(
                fs.clone(),
                &data_path,
                &name,
                SpillKind::Memory,
                config.max_msg_size as usize,
            ),
            read_early: DeferredSpill::new(
                fs.clone(),
                &data_path,
                &name,
                SpillKind::Synced,
                config.max_msg_size as usize,
            ),
            deferred_memory_budget: usize::MAX,
            opened_read: parking_lot::Mutex::new(RecordPos { file: 0, pos: 0 }),
            name,
            fs,
            data_path,
            config,
            queue: Mutex::new(None),
            depth: AtomicI64::new(0),
            opened: std::sync::atomic::AtomicBool::new(false),
            commits: GroupCommit::default(),
            holds: parking_lot::Mutex::new(HoldBook::default()),
        }
    }

    /// Plants the bugs of `buggify` that concern this queue:
    /// [`Buggify::deferred_due_at_restart`] (the due times its journal left are all
    /// read as the restart time) and [`Buggify::read_early_spill_unsynced`].
    pub fn planting(mut self, buggify: Buggify) -> Self {
        if buggify.deferred_due_at_restart {
            self.due = DueJournal::new(self.fs.clone(), &self.data_path, &self.name, true);
        }
        if buggify.read_early_spill_unsynced {
            self.read_early = self.read_early.planting_unsynced();
        }
        self
    }

    /// The due-time journal of the deferred messages on this queue.
    pub fn due_journal(&self) -> &DueJournal {
        &self.due
    }

    /// Sets `--max-deferred-memory` (unlimited unless set).
    pub fn with_deferred_memory_budget(mut self, bytes: usize) -> Self {
        self.deferred_memory_budget = bytes;
        self
    }

    /// Bytes of deferred messages the channel keeps in memory before it spills.
    pub fn deferred_memory_budget(&self) -> usize {
        self.deferred_memory_budget
    }

    /// Where deferred messages beyond the budget wait.
    pub fn deferred_spill(&self) -> &DeferredSpill {
        &self.spill
    }

    /// Where deferred messages read from this queue before they were due wait, beyond
    /// the budget, once they left the queue.
    pub fn read_early_spill(&self) -> &DeferredSpill {
        &self.read_early
    }

    /// Moves deferred messages read from this queue (and still held) to the synced
    /// spill segments. Each leaves the queue (its hold is released) once its record is
    /// synced there, in this call or a later [`Backend::write_out_read_early`]. Returns
    /// those whose write failed: still held, for the caller to keep in memory.
    pub async fn spill_read_early(&self, entries: &[(Message, i64)]) -> Vec<(Message, i64)> {
        let sources: Vec<QueueSource> = {
            let book = self.holds.lock();
            entries
                .iter()
                .map(|(message, _)| {
                    // Not held (never expected): kept after a crash, at worst twice.
                    book.source_of(&message.id).unwrap_or(QueueSource {
                        at: RecordPos { file: 0, pos: 0 },
                        seq: 0,
                    })
                })
                .collect()
        };
        let failed = self.read_early.put_read_early(entries, &sources).await;
        self.release_many(&self.read_early.take_synced().await);
        failed
    }

    /// Disk loop work: writes and syncs the records [`Backend::spill_read_early`]
    /// gathered, and lets go of their messages' copies in the queue. Returns those whose
    /// write failed, as [`Backend::spill_read_early`] does.
    pub async fn write_out_read_early(&self) -> Vec<(Message, i64)> {
        let failed = self.read_early.write_out().await;
        self.release_many(&self.read_early.take_synced().await);
        failed
    }

    /// Sorts the records of a synced spill window that started. A message whose copy in
    /// the queue a crash could still bring back (at or after the read position the
    /// metadata names) is held there again and returned first, to wait in memory: one
    /// copy is enough. The others' copies are gone for good: they are returned second,
    /// to be written back to the queue.
    pub async fn hold_again_or_return(
        &self,
        records: Vec<SpillRecord>,
    ) -> (Vec<(Message, i64)>, Vec<(Message, i64)>) {
        let (mut held, mut to_write) = (Vec::new(), Vec::new());
        let mut guard = self.queue.lock().await;
        let durable_from = match self.ensure_open(&mut guard).await {
            Ok(queue) => queue
                .committed_read_position()
                .unwrap_or(*self.opened_read.lock()),
            // Not open: hold nothing again, write everything back.
            Err(_) => RecordPos {
                file: u64::MAX,
                pos: u64::MAX,
            },
        };
        {
            let mut book = self.holds.lock();
            for record in records {
                match record.source {
                    Some(source) if source.at >= durable_from => {
                        book.hold_again(source, record.message.id);
                        held.push((record.message, record.due_ns));
                    }
                    _ => to_write.push((record.message, record.due_ns)),
                }
            }
        }
        if let Some(queue) = guard.as_mut() {
            self.apply_holds(queue);
        }
        (held, to_write)
    }

    /// [`Backend::put`], then a sync whatever the sync policy: for messages whose only
    /// other copy is about to be removed. An error means they were not written; a
    /// failed sync is only logged (the messages are in the queue, which syncs again
    /// later, as for any put): writing them again would deliver them twice.
    pub async fn put_synced(&self, messages: &[Message]) -> Result<(), DiskQueueError> {
        let synced = match self.put(messages).await {
            Err(DiskQueueError::Sync { path, source }) => {
                Err(DiskQueueError::Sync { path, source })
            }
            Err(error) => return Err(error),
            Ok(()) => {
                let mut guard = self.queue.lock().await;
                let queue = self.ensure_open(&mut guard).await?;
                self.apply_holds(queue);
                queue.sync().await
            }
        };
        if let Err(error) = synced {
            tracing::error!(queue = %self.name, %error, "deferred messages written back to the disk queue are not synced yet");
        }
        Ok(())
    }

    /// Messages on disk (as of the last operation).
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Acquire)
    }

    /// Whether a read may find something: there is depth, or the queue was never opened
    /// and files of an earlier run may be waiting.
    pub fn may_have_messages(&self) -> bool {
        self.depth() > 0 || !self.opened.load(Ordering::Acquire)
    }

    /// Opens the queue if it is not open yet, picking up what a previous run left.
    pub async fn open(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        self.ensure_open(&mut guard).await.map(|_| ())
    }

    async fn ensure_open<'a>(
        &self,
        slot: &'a mut Option<DiskQueue>,
    ) -> Result<&'a mut DiskQueue, DiskQueueError> {
        if slot.is_none() {
            let queue = DiskQueue::open(
                self.fs.clone(),
                self.data_path.clone(),
                &self.name,
                self.config,
            )
            .await?;
            self.depth.store(queue.depth(), Ordering::Release);
            // Deferred messages a crash left in synced segments wait again, except those
            // the queue hands out again itself.
            *self.opened_read.lock() = queue.read_position();
            self.read_early
                .recover_queue_copies_from(queue.read_position())
                .await;
            self.opened.store(true, Ordering::Release);
            *slot = Some(queue);
        }
        match slot {
            Some(queue) => Ok(queue),
            None => Err(DiskQueueError::Closed),
        }
    }

    /// Writes `messages` (26-byte header + body each), in order.
    pub async fn put(&self, messages: &[Message]) -> Result<(), DiskQueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        if self.config.sync_every <= 1 {
            return self.put_group_committed(messages).await;
        }
        let due = {
            let mut guard = self.queue.lock().await;
            let queue = self.ensure_open(&mut guard).await?;
            self.apply_holds(queue);
            let result = queue.put_many_leaving_sync(messages).await;
            self.depth.store(queue.depth(), Ordering::Release);
            result?
        };
        // The `--sync-every` fsync runs outside the lock: other publishers and readers
        // go on meanwhile, only this put waits for it.
        if let Some(path) = due {
            let synced = match self.fs.sync(&path).await {
                // Emptied or deleted meanwhile: nothing of it is left to make durable.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
            if let Err(source) = synced {
                if let Some(queue) = self.queue.lock().await.as_mut() {
                    queue.sync_failed();
                }
                return Err(DiskQueueError::Sync { path, source });
            }
        }
        Ok(())
    }

    /// `--sync-every=1`: the messages are on disk, fsynced, before this returns, but
    /// writers that arrive while an fsync runs share the next one instead of queueing
    /// one fsync each.
    async fn put_group_committed(&self, messages: &[Message]) -> Result<(), DiskQueueError> {
        let mine = {
            let mut guard = self.queue.lock().await;
            let queue = self.ensure_open(&mut guard).await?;
            self.apply_holds(queue);
            let appended = queue.put_many_unsynced(messages).await;
            self.depth.store(queue.depth(), Ordering::Release);
            appended?;
            self.commits.appended()
        };
        self.commits
            .wait_synced(mine, || async {
                // Everything appended so far is in the current write file, or in a file
                // the queue fsynced when it rolled past it.
                let path = {
                    let mut guard = self.queue.lock().await;
                    self.ensure_open(&mut guard).await?.write_file_path()
                };
                self.fs
                    .sync(&path)
                    .await
                    .map_err(|source| DiskQueueError::Sync { path, source })
            })
            .await
    }

    /// Reads up to `max` messages; each leaves the disk as it is handed out. A record
    /// that is not a message is logged and skipped.
    pub async fn read(&self, max: usize) -> Result<Vec<Message>, DiskQueueError> {
        self.read_with(max, false).await
    }

    /// [`Backend::read`] for a hand-over: the read position is not synced until
    /// [`Backend::commit_reads`], which the caller calls once the messages are durable
    /// elsewhere, so a crash in between repeats them rather than losing them.
    pub async fn read_for_transfer(&self, max: usize) -> Result<Vec<Message>, DiskQueueError> {
        self.read_with(max, true).await
    }

    /// Syncs the reads of [`Backend::read_for_transfer`] when the sync policy calls for it.
    pub async fn commit_reads(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        match guard.as_mut() {
            Some(queue) => {
                self.apply_holds(queue);
                queue.sync_if_due().await
            }
            None => Ok(()),
        }
    }

    /// Reads up to `max` messages for delivery: each stays held (the metadata keeps it
    /// unread) until [`Backend::release`], so a crash before its FIN redelivers it.
    pub async fn read_held(&self, max: usize) -> Result<Vec<Message>, DiskQueueError> {
        if !self.may_have_messages() {
            return Ok(Vec::new());
        }
        let mut guard = self.queue.lock().await;
        let queue = self.ensure_open(&mut guard).await?;
        let mut messages = Vec::new();
        while messages.len() < max {
            self.apply_holds(queue);
            let Some((record, at)) = queue.read_next_positioned().await? else {
                break;
            };
            let mut book = self.holds.lock();
            let seq = book.next_seq;
            book.next_seq += 1;
            match Message::decode(record) {
                Ok(message) => {
                    book.insert(seq, at, message.id);
                    messages.push(message);
                }
                Err(error) => {
                    tracing::error!(queue = %self.name, %error, "skipping a record that is not a message");
                }
            }
        }
        self.apply_holds(queue);
        // The records are read and held: a failed sync must not lose them. The metadata
        // keeps the older read position, so a crash before the next good sync repeats them.
        if let Err(error) = queue.sync_if_due().await {
            tracing::error!(queue = %self.name, %error, "failed to sync after a read; retried later");
        }
        self.depth.store(queue.depth(), Ordering::Release);
        Ok(messages)
    }

    /// The message `id` is done with (FIN): it no longer holds the read position back.
    pub fn release(&self, id: &MessageId) {
        self.holds.lock().release(id);
    }

    /// [`Backend::release`] for several messages at once.
    pub fn release_many<'a>(&self, ids: impl IntoIterator<Item = &'a MessageId>) {
        let mut book = self.holds.lock();
        for id in ids {
            book.release(id);
        }
    }

    /// How many messages are held (read for delivery and not yet released).
    pub fn held_count(&self) -> usize {
        self.holds.lock().by_id.len()
    }

    /// Forgets every hold (the held messages were written again, or thrown away).
    pub fn release_all(&self) {
        self.holds.lock().clear();
    }

    /// Applies the current holds to the queue before an operation that may sync.
    fn apply_holds(&self, queue: &mut DiskQueue) {
        queue.set_hold(self.holds.lock().hold());
    }

    async fn read_with(
        &self,
        max: usize,
        defer_sync: bool,
    ) -> Result<Vec<Message>, DiskQueueError> {
        if !self.may_have_messages() {
            return Ok(Vec::new());
        }
        let mut guard = self.queue.lock().await;
        let queue = self.ensure_open(&mut guard).await?;
        self.apply_holds(queue);
        let mut messages = Vec::new();
        while messages.len() < max {
            let next = if defer_sync {
                queue.read_next_deferring_sync().await?
            } else {
                queue.read_next().await?
            };
            let Some(record) = next else {
                break;
            };
            match Message::decode(record) {
                Ok(message) => messages.push(message),
                Err(error) => {
                    tracing::error!(queue = %self.name, %error, "skipping a record that is not a message");
                }
            }
        }
        self.depth.store(queue.depth(), Ordering::Release);
        Ok(messages)
    }

    /// The periodic `--sync-timeout` sync, when there was activity since the last one:
    /// what the queue gathered is written and fsynced. `Ok(true)` when it synced.
    pub async fn sync_if_due(&self) -> Result<bool, DiskQueueError> {
        let mut guard = self.queue.lock().await;
        match guard.as_mut() {
            Some(queue) if queue.needs_periodic_sync() => {
                self.apply_holds(queue);
                queue.sync().await.map(|()| true)
            }
            _ => Ok(false),
        }
    }

    /// Drops every message on disk (`/topic/empty`, `/channel/empty`), due times too.
    pub async fn empty(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        let queue = self.ensure_open(&mut guard).await?;
        self.release_all();
        let result = queue.empty().await;
        self.depth.store(queue.depth(), Ordering::Release);
        self.remove_due_journal().await;
        self.spill.clear().await;
        self.read_early.clear().await;
        result
    }

    /// Removes the queue's files, the due-time journal too (the topic or channel was
    /// deleted).
    pub async fn delete(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        let queue = self.ensure_open(&mut guard).await?;
        self.release_all();
        let result = queue.delete().await;
        *guard = None;
        self.depth.store(0, Ordering::Release);
        self.remove_due_journal().await;
        self.spill.clear().await;
        self.read_early.clear().await;
        result
    }

    /// A journal left behind names messages that are gone: harmless (nothing with those
    /// ids is read again), so a failure is only logged.
    async fn remove_due_journal(&self) {
        if let Err(error) = self.due.remove().await {
            tracing::error!(queue = %self.name, %error, "failed to remove the due-time journal");
        }
    }

    /// Syncs and closes the queue (exit). A queue never used is opened first, so it
    /// leaves its meta file behind as go-diskqueue does. Later use reopens it.
    pub async fn close(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        let result = match self.ensure_open(&mut guard).await {
            Ok(queue) => {
                self.apply_holds(queue);
                queue.close().await
            }
            Err(error) => Err(error),
        };
        *guard = None;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{CrashMode, MemFs};
    use crate::protocol::MessageId;
    use bytes::Bytes;

    fn message(n: u64) -> Message {
        Message::new(MessageId::from_u64(n), 1, Bytes::from(format!("body-{n}")))
    }

    fn backend(fs: &MemFs, sync_every: u64) -> Backend {
        let config = DiskQueueConfig {
            sync_every,
            max_bytes_per_file: 4096,
            ..DiskQueueConfig::default()
        };
        Backend::new(
            Arc::new(fs.clone()),
            PathBuf::from("data"),
            "t:c".into(),
            config,
        )
    }

    /// With `--sync-every=1`, every put that returned is on disk after a crash that drops
    /// everything unsynced, even with many writers sharing fsyncs and files rolling.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_committed_puts_survive_a_crash() {
        let fs = MemFs::new();
        let queue = Arc::new(backend(&fs, 1));
        let mut writers = Vec::new();
        for writer in 0..16u64 {
            let queue = queue.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..20u64 {
                    let n = writer * 1000 + i;
                    queue.put(&[message(n)]).await.expect("put");
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        assert_eq!(queue.depth(), 320);
        fs.crash(CrashMode::DropUnsynced, 7);

        let reopened = backend(&fs, 1);
        reopened.open().await.expect("reopen");
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let batch = reopened.read(64).await.expect("read");
            if batch.is_empty() {
                break;
            }
            for m in batch {
                assert!(seen.insert(m.id), "no duplicate");
            }
        }
        assert_eq!(seen.len(), 320, "every acknowledged put survived");
    }

    /// A hand-over read is not committed until `commit_reads`: a crash before it repeats
    /// the messages instead of losing them (the topic-to-channel window).
    #[tokio::test]
    async fn transfer_reads_come_back_after_a_crash_until_committed() {
        let fs = MemFs::new();
        let queue = backend(&fs, 1);
        let sent: Vec<Message> = (0..10).map(message).collect();
        queue.put(&sent).await.expect("put");
        let taken = queue.read_for_transfer(4).await.expect("read");
        assert_eq!(taken, sent[..4]);
        fs.crash(CrashMode::DropUnsynced, 1);
        let reopened = backend(&fs, 1);
        assert_eq!(
            reopened.read(100).await.expect("read"),
            sent,
            "nothing lost"
        );

        let fs = MemFs::new();
        let queue = backend(&fs, 1);
        queue.put(&sent).await.expect("put");
        let taken = queue.read_for_transfer(4).await.expect("read");
        assert_eq!(taken.len(), 4);
        queue.commit_reads().await.expect("commit");
        fs.crash(CrashMode::DropUnsynced, 1);
        let reopened = backend(&fs, 1);
        reopened.open().await.expect("open");
        assert_eq!(
            reopened.read(100).await.expect("read"),
            sent[4..],
            "committed reads stay read"
        );
    }

    /// Messages read for delivery stay on disk until released: after a crash the read
    /// position is back at the oldest unreleased one.
    #[tokio::test]
    async fn held_messages_come_back_after_a_crash_until_released() {
        let fs = MemFs::new();
        let queue = backend(&fs, 1);
        let sent: Vec<Message> = (0..6).map(message).collect();
        queue.put(&sent).await.expect("put");
        let delivered = queue.read_held(4).await.expect("read");
        assert_eq!(delivered, sent[..4]);
        queue.release(&sent[0].id);
        queue.release(&sent[1].id);
        queue.release(&sent[3].id);
        queue.put(&[message(99)]).await.expect("put");
        // The periodic sync writes the metadata with the read position at the hold.
        queue.sync_if_due().await.expect("periodic sync");
        fs.crash(CrashMode::DropUnsynced, 3);

        let reopened = backend(&fs, 1);
        let mut expected: Vec<Message> = sent[2..].to_vec();
        expected.push(message(99));
        assert_eq!(
            reopened.read(100).await.expect("read"),
            expected,
            "from the oldest unreleased message on; released ones before it are gone"
        );
    }

    /// The hold is always the oldest unreleased record, whatever the release order, and
    /// tombstones never outgrow the live holds by more than the slack.
    #[test]
    fn hold_book_keeps_the_oldest_unreleased_record() {
        let mut book = HoldBook::default();
        let pos = |n: u64| RecordPos {
            file: 0,
            pos: n * 10,
        };
        for n in 0..5000u64 {
            let seq = book.next_seq;
            book.next_seq += 1;
            book.insert(seq, pos(n), MessageId::from_u64(n));
        }
        assert_eq!(
            book.hold(),
            Some(Hold {
                at: pos(0),
                records: 5000
            })
        );
        // Release everything but message 7, in a scattered order.
        for n in (0..5000u64).map(|i| (i * 7919) % 5000).filter(|&n| n != 7) {
            book.release(&MessageId::from_u64(n));
            assert!(book.by_seq.len() <= 2 * book.by_id.len() + HOLD_TOMBSTONE_SLACK + 1);
        }
        assert_eq!(
            book.hold(),
            Some(Hold {
                at: pos(7),
                records: 4993
            })
        );
        assert!(book.by_seq.len() <= 2 + HOLD_TOMBSTONE_SLACK);
        // A record read again under the same id moves the hold to its new position.
        book.next_seq += 1;
        book.insert(5000, pos(5000), MessageId::from_u64(7));
        assert_eq!(
            book.hold(),
            Some(Hold {
                at: pos(5000),
                records: 1
            })
        );
        book.release(&MessageId::from_u64(7));
        book.release(&MessageId::from_u64(7));
        assert_eq!(book.hold(), None);
        assert!(book.by_seq.is_empty());
    }

    #[tokio::test]
    async fn messages_round_trip_through_disk() {
        let fs = MemFs::new();
        let queue = backend(&fs, 2500);
        let sent: Vec<Message> = (0..50).map(message).collect();
        queue.put(&sent).await.expect("put");
        assert_eq!(queue.depth(), 50);
        let got = queue.read(100).await.expect("read");
        assert_eq!(got, sent);
        assert_eq!(queue.depth(), 0);
    }
}
