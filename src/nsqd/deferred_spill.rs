//! Where a channel's deferred messages wait on disk once its memory budget
//! (`--max-deferred-memory`) is spent: spill segments, one file per due-time window of
//! [`WINDOW_NS`], files of ours that Go never opens (format in `docs/deferred.md`).
//! There are two kinds ([`SpillKind`]): messages only memory held, and messages read
//! early from the disk queue, which must stay as durable as the queue kept them.
//!
//! Messages are appended to the segment of their window in arrival order. Memory holds
//! a few numbers per segment, none per message. When a window starts, its segment is
//! read whole and handed back in arrival order (the caller orders by due time, so
//! messages due at the same time leave in publish order). The scan's cost is one look
//! at the earliest window, however many wait.
//!
//! Records are gathered in memory up to [`WRITE_BUFFER_BYTES`] before they are written.
//! Segments of [`SpillKind::Memory`] are never synced: like the memory they relieve, a
//! crash may lose them. Segments of [`SpillKind::Synced`] are synced before their
//! messages are reported in [`DeferredSpill::take_synced`], and only then may the disk
//! queue let go of them. What a crash leaves is read back as far as it is whole; a torn
//! or corrupt record ends its segment's reading, with a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::diskqueue::RecordPos;
use super::due_journal::{check_header, header_of_kind, HeaderProblem, HEADER_LEN};
use crate::env::Fs;
use crate::protocol::{Message, MessageId, MESSAGE_HEADER_LENGTH};

/// The file kind of a spill segment of messages only memory held.
pub const KIND_SPILL: u16 = 2;
/// The file kind of a spill segment of messages read early from the disk queue.
pub const KIND_SYNCED_SPILL: u16 = 3;
/// The due-time span of one segment: 1 s.
pub const WINDOW_NS: i64 = 1_000_000_000;
/// Record length and due time before the message (the checksum follows it).
const RECORD_PREFIX: usize = 4 + 8;
/// What a synced segment's record adds after the due time: where the message was in
/// the disk queue (data file number, offset, and read sequence number).
const SOURCE_LEN: usize = 8 + 8 + 8;

/// Where a message read from the disk queue was: the record's position, and the
/// sequence number of the read in the run that read it (meaningless in later runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSource {
    /// The record's position.
    pub at: RecordPos,
    /// Its read sequence number.
    pub seq: u64,
}
/// Records gathered in memory, over all windows, before they are written out: a DPUB
/// carries one message, and one write per message would cost more than the message.
pub const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// A spill segment that could not be written, read or removed.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// An IO operation failed.
    #[error("spill segment {path}: {source}")]
    Io {
        /// The segment.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// What could not be read back of a segment; logged, and read as far as it goes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentProblem {
    /// The header is not ours: the segment is ignored.
    #[error("ignored: {0}")]
    Header(HeaderProblem),
    /// A record whose length, checksum or message is wrong, or cut short: the rest of
    /// the segment cannot be trusted and is dropped.
    #[error(
        "the record at byte {offset} is torn or corrupt; the {bytes} bytes from it are dropped"
    )]
    BadRecord {
        /// Where it starts.
        offset: u64,
        /// Bytes dropped from there.
        bytes: usize,
    },
}

/// Which deferred messages a store of spill segments keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpillKind {
    /// Messages only memory held (DPUBs, REQs of messages not on disk):
    /// `<queue name>.deferred.<window>.dat`, never synced; a window comes back to memory.
    Memory,
    /// Messages read from the disk queue before they were due:
    /// `<queue name>.deferred-synced.<window>.dat`, synced before the disk queue lets go
    /// of them; a window goes back to the disk queue.
    Synced,
}

impl SpillKind {
    /// The file kind in the segments' header.
    pub fn file_kind(self) -> u16 {
        match self {
            SpillKind::Memory => KIND_SPILL,
            SpillKind::Synced => KIND_SYNCED_SPILL,
        }
    }

    /// What follows the queue name in the segments' file names, before the window.
    fn infix(self) -> &'static str {
        match self {
            SpillKind::Memory => ".deferred.",
            SpillKind::Synced => ".deferred-synced.",
        }
    }
}

/// One record: a message deferred until `due_ns`; `source`, for a synced segment, is
/// where the message was in the disk queue.
pub fn encode_record(
    out: &mut Vec<u8>,
    message: &Message,
    due_ns: i64,
    source: Option<QueueSource>,
) {
    let start = out.len();
    let len = u32::try_from(message.encoded_len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&due_ns.to_be_bytes());
    if let Some(source) = source {
        out.extend_from_slice(&source.at.file.to_be_bytes());
        out.extend_from_slice(&source.at.pos.to_be_bytes());
        out.extend_from_slice(&source.seq.to_be_bytes());
    }
    out.extend_from_slice(&message.header());
    out.extend_from_slice(&message.body);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// One record read back from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillRecord {
    /// The deferred message.
    pub message: Message,
    /// When it is due (ns since the Unix epoch).
    pub due_ns: i64,
    /// Of a synced segment: where the message was in the disk queue.
    pub source: Option<QueueSource>,
}

/// Reads a segment's records in file order; `max_message_len` bounds a record's length
/// before anything is allocated for it. `file_kind` is the kind its header must have
/// (and says whether records carry their source position).
pub fn decode_segment(
    bytes: &[u8],
    file_kind: u16,
    max_message_len: usize,
) -> (Vec<SpillRecord>, Option<SegmentProblem>) {
    if let Err(problem) = check_header(bytes, file_kind) {
        return (Vec::new(), Some(SegmentProblem::Header(problem)));
    }
    let with_source = file_kind == KIND_SYNCED_SPILL;
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match decode_record(&bytes[at..], with_source, max_message_len) {
            Some((record, used)) => {
                records.push(record);
                at += used;
            }
            None => {
                let problem = SegmentProblem::BadRecord {
                    offset: at as u64,
                    bytes: bytes.len() - at,
                };
                return (records, Some(problem));
            }
        }
    }
    (records, None)
}

fn decode_record(
    bytes: &[u8],
    with_source: bool,
    max_message_len: usize,
) -> Option<(SpillRecord, usize)> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    if !(MESSAGE_HEADER_LENGTH..=max_message_len).contains(&len) {
        return None;
    }
    let source_len = if with_source { SOURCE_LEN } else { 0 };
    let end = RECORD_PREFIX + source_len + len;
    let checked = bytes.get(4..end)?;
    let crc = u32::from_be_bytes(bytes.get(end..end + 4)?.try_into().ok()?);
    if crc32c::crc32c(checked) != crc {
        return None;
    }
    let due_ns = i64::from_be_bytes(checked[..8].try_into().ok()?);
    let source = if with_source {
        Some(QueueSource {
            at: RecordPos {
                file: u64::from_be_bytes(checked[8..16].try_into().ok()?),
                pos: u64::from_be_bytes(checked[16..24].try_into().ok()?),
            },
            seq: u64::from_be_bytes(checked[24..32].try_into().ok()?),
        })
    } else {
        None
    };
    let message = Message::decode(Bytes::copy_from_slice(&checked[8 + source_len..])).ok()?;
    let record = SpillRecord {
        message,
        due_ns,
        source,
    };
    Some((record, end + 4))
}

fn without_source(records: Vec<SpillRecord>) -> Vec<(Message, i64)> {
    records.into_iter().map(|r| (r.message, r.due_ns)).collect()
}

/// The spill segments of one channel's disk queue.
pub struct DeferredSpill {
    fs: Arc<dyn Fs>,
    data_path: PathBuf,
    kind: SpillKind,
    /// [`Buggify::read_early_spill_unsynced`](crate::nsqd::Buggify): syncs are skipped.
    skip_sync: bool,
    /// `<queue name>.deferred.` or `<queue name>.deferred-synced.`
    prefix: String,
    max_message_len: usize,
    segments: tokio::sync::Mutex<Segments>,
    /// Messages in all segments (a mirror for `/stats`).
    count: AtomicU64,
    /// The earliest window with a segment (`i64::MAX`: none), for the scan to look at
    /// without the lock.
    earliest: AtomicI64,
}

#[derive(Debug, Default)]
struct Segments {
    /// The segments by window.
    counts: BTreeMap<i64, Segment>,
    /// Bytes of records not written yet, over all segments.
    pending_bytes: usize,
    /// Whether the segments a crash left were looked for.
    recovered: bool,
    /// Of a synced store: messages whose records were synced since the last
    /// [`DeferredSpill::take_synced`].
    synced: Vec<MessageId>,
}

/// What memory knows of one segment.
#[derive(Debug, Default)]
struct Segment {
    /// Messages in it, written or not.
    count: u64,
    /// Bytes written to its file: the next write goes there, over whatever a failed
    /// write left.
    len: u64,
    /// Records not written yet (after the header, when the file has none yet).
    pending: Vec<u8>,
    /// Messages in `pending`.
    pending_count: u64,
    /// Of a synced store: the ids of the messages written and not yet synced, or still
    /// in `pending`.
    unsynced: Vec<MessageId>,
}

impl std::fmt::Debug for DeferredSpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredSpill")
            .field("prefix", &self.prefix)
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

impl DeferredSpill {
    /// The segments of `kind` of the disk queue `queue_name` in `data_path`; a record
    /// longer than `max_message_len` (header and body) is corrupt.
    pub fn new(
        fs: Arc<dyn Fs>,
        data_path: &Path,
        queue_name: &str,
        kind: SpillKind,
        max_message_len: usize,
    ) -> Self {
        DeferredSpill {
            fs,
            data_path: data_path.to_path_buf(),
            kind,
            skip_sync: false,
            prefix: format!("{queue_name}{}", kind.infix()),
            max_message_len,
            segments: tokio::sync::Mutex::new(Segments::default()),
            count: AtomicU64::new(0),
            earliest: AtomicI64::new(i64::MAX),
        }
    }

    /// [`Buggify::read_early_spill_unsynced`](crate::nsqd::Buggify): segments are
    /// reported synced without a sync.
    pub fn planting_unsynced(mut self) -> Self {
        self.skip_sync = true;
        self
    }

    /// Messages waiting in segments.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// When the earliest segment's window starts (`i64::MAX` when none waits).
    pub fn next_window_start(&self) -> i64 {
        self.earliest
            .load(Ordering::Acquire)
            .saturating_mul(WINDOW_NS)
    }

    fn path(&self, window: i64) -> PathBuf {
        self.data_path.join(format!("{}{window}.dat", self.prefix))
    }

    /// Adds `entries` (message, due time) to the segments of their windows. They are
    /// gathered in memory and written once [`WRITE_BUFFER_BYTES`] are; a failed write
    /// hands its messages back, for the caller to keep in memory.
    pub async fn put(&self, entries: &[(Message, i64)]) -> Vec<(Message, i64)> {
        self.put_records(entries, None).await
    }

    /// [`DeferredSpill::put`] for a [`SpillKind::Synced`] store: `sources[i]` is where
    /// `entries[i]` is in the disk queue, so that after a crash a record whose queue
    /// copy comes back is dropped (see [`DeferredSpill::recover_queue_copies_from`]).
    pub async fn put_read_early(
        &self,
        entries: &[(Message, i64)],
        sources: &[QueueSource],
    ) -> Vec<(Message, i64)> {
        self.put_records(entries, Some(sources)).await
    }

    async fn put_records(
        &self,
        entries: &[(Message, i64)],
        sources: Option<&[QueueSource]>,
    ) -> Vec<(Message, i64)> {
        let mut segments = self.segments.lock().await;
        self.recover_locked(&mut segments, None).await;
        let mut added = 0;
        for (i, (message, due)) in entries.iter().enumerate() {
            let source = match (self.kind, sources) {
                (SpillKind::Memory, _) => None,
                // Unknown: kept after a crash, at worst as a duplicate.
                (SpillKind::Synced, sources) => Some(
                    sources
                        .and_then(|s| s.get(i).copied())
                        .unwrap_or(QueueSource {
                            at: RecordPos { file: 0, pos: 0 },
                            seq: 0,
                        }),
                ),
            };
            let window = due.div_euclid(WINDOW_NS);
            let segment = segments.counts.entry(window).or_default();
            let before = segment.pending.len();
            if segment.len == 0 && segment.pending.is_empty() {
                segment
                    .pending
                    .extend_from_slice(&header_of_kind(self.kind.file_kind()));
            }
            encode_record(&mut segment.pending, message, *due, source);
            if self.kind == SpillKind::Synced {
                segment.unsynced.push(message.id);
            }
            segment.count += 1;
            segment.pending_count += 1;
            added += segment.pending.len() - before;
        }
        segments.pending_bytes += added;
        self.count.fetch_add(entries.len() as u64, Ordering::AcqRel);
        self.mirror_earliest(&segments);
        if segments.pending_bytes < WRITE_BUFFER_BYTES {
            return Vec::new();
        }
        self.write_pending(&mut segments).await
    }

    /// Writes the records gathered so far (the disk loop calls it every tick, so a
    /// killed process loses at most a tick's worth); returns the messages whose write
    /// failed, for the caller to keep in memory.
    pub async fn write_out(&self) -> Vec<(Message, i64)> {
        let mut segments = self.segments.lock().await;
        if segments.pending_bytes == 0 {
            return Vec::new();
        }
        self.write_pending(&mut segments).await
    }

    /// Writes every segment's gathered records, and syncs them if the store is
    /// [`SpillKind::Synced`] (all segments at once, so a journaling file system commits
    /// them together); returns the messages of those whose write or sync failed (no
    /// longer counted here).
    async fn write_pending(&self, segments: &mut Segments) -> Vec<(Message, i64)> {
        let mut failed = Vec::new();
        let windows: Vec<i64> = segments
            .counts
            .iter()
            .filter(|(_, segment)| !segment.pending.is_empty())
            .map(|(window, _)| *window)
            .collect();
        let mut to_sync: Vec<(i64, Vec<u8>)> = Vec::new();
        for window in windows {
            let path = self.path(window);
            let Some(segment) = segments.counts.get_mut(&window) else {
                continue;
            };
            let bytes = std::mem::take(&mut segment.pending);
            let (bytes, outcome) = self.fs.write_at(&path, segment.len, bytes).await;
            segments.pending_bytes = segments.pending_bytes.saturating_sub(bytes.len());
            match outcome {
                Ok(()) if self.kind == SpillKind::Synced => {
                    segment.len += bytes.len() as u64;
                    to_sync.push((window, bytes));
                }
                Ok(()) => {
                    segment.len += bytes.len() as u64;
                    segment.pending_count = 0;
                }
                Err(source) => {
                    let error = SpillError::Io { path, source };
                    tracing::error!(%error, "deferred messages stay in memory: spilling them failed");
                    failed.extend(self.give_back_unwritten(segments, window, &bytes));
                }
            }
        }
        let paths: Vec<PathBuf> = to_sync.iter().map(|(w, _)| self.path(*w)).collect();
        let synced = futures_util::future::join_all(paths.iter().map(|p| async move {
            if self.skip_sync {
                return Ok(());
            }
            self.fs.sync(p).await
        }))
        .await;
        for (((window, bytes), path), outcome) in to_sync.into_iter().zip(paths).zip(synced) {
            let Some(segment) = segments.counts.get_mut(&window) else {
                continue;
            };
            match outcome {
                Ok(()) => {
                    segment.pending_count = 0;
                    segments.synced.append(&mut segment.unsynced);
                }
                Err(source) => {
                    // The next write goes over the unsynced records.
                    segment.len = segment.len.saturating_sub(bytes.len() as u64);
                    let error = SpillError::Io { path, source };
                    tracing::error!(%error, "deferred messages stay in memory: syncing their spill segment failed");
                    failed.extend(self.give_back_unwritten(segments, window, &bytes));
                }
            }
        }
        self.mirror_earliest(segments);
        failed
    }

    /// Forgets the records `bytes` of `window` that could not be written (or synced),
    /// and returns their messages.
    fn give_back_unwritten(
        &self,
        segments: &mut Segments,
        window: i64,
        bytes: &[u8],
    ) -> Vec<(Message, i64)> {
        let Some(segment) = segments.counts.get_mut(&window) else {
            return Vec::new();
        };
        let records = self.decode_pending(segment.len, bytes);
        segment.count = segment.count.saturating_sub(segment.pending_count);
        self.count
            .fetch_sub(segment.pending_count, Ordering::AcqRel);
        segment.pending_count = 0;
        segment.unsynced.clear();
        if segment.count == 0 {
            segments.counts.remove(&window);
        }
        records
    }

    /// Of a [`SpillKind::Synced`] store: the messages whose records were synced since the
    /// last call. Their copies in the disk queue may go.
    pub async fn take_synced(&self) -> Vec<MessageId> {
        std::mem::take(&mut self.segments.lock().await.synced)
    }

    /// The records of a segment's unwritten bytes (which start with the header when the
    /// file has none yet).
    fn decode_pending(&self, written: u64, pending: &[u8]) -> Vec<(Message, i64)> {
        if pending.is_empty() {
            return Vec::new();
        }
        let kind = self.kind.file_kind();
        let (records, _) = if written == 0 {
            decode_segment(pending, kind, self.max_message_len)
        } else {
            let mut whole = header_of_kind(kind).to_vec();
            whole.extend_from_slice(pending);
            decode_segment(&whole, kind, self.max_message_len)
        };
        without_source(records)
    }

    /// Takes the messages of the earliest segment if its window started by `now_ns`, in
    /// arrival order, and removes the segment. Empty when none is due.
    pub async fn take_due(&self, now_ns: i64) -> Vec<(Message, i64)> {
        if self.next_window_start() > now_ns {
            return Vec::new();
        }
        let mut segments = self.segments.lock().await;
        let Some((&window, _)) = segments.counts.first_key_value() else {
            return Vec::new();
        };
        if window.saturating_mul(WINDOW_NS) > now_ns {
            return Vec::new();
        }
        self.take_window(&mut segments, window).await
    }

    /// The earliest window with a segment, if it started by `now_ns`. Its messages are
    /// read with [`DeferredSpill::read_window`], and the segment removed once they are
    /// safe elsewhere.
    pub async fn started_window(&self, now_ns: i64) -> Option<i64> {
        if self.next_window_start() > now_ns {
            return None;
        }
        let segments = self.segments.lock().await;
        let (&window, _) = segments.counts.first_key_value()?;
        (window.saturating_mul(WINDOW_NS) <= now_ns).then_some(window)
    }

    /// The windows that have a segment, earliest first (exit writes them to the disk
    /// queue one by one, where Go can read them).
    pub async fn windows(&self) -> Vec<i64> {
        let mut segments = self.segments.lock().await;
        self.recover_locked(&mut segments, None).await;
        segments.counts.keys().copied().collect()
    }

    /// The messages of one window's segment, in arrival order (the segment stays).
    pub async fn read_window(&self, window: i64) -> Vec<(Message, i64)> {
        let segments = self.segments.lock().await;
        self.read_whole_window(&segments, window).await
    }

    /// The records of one window's written segment with their sources, in arrival
    /// order (the segment stays). For a synced store, whose records are written out
    /// before their window is read.
    pub async fn read_window_records(&self, window: i64) -> Vec<SpillRecord> {
        let segments = self.segments.lock().await;
        match segments.counts.get(&window) {
            Some(segment) if segment.len > 0 => {
                self.read_segment(&self.path(window), Some(segment.len))
                    .await
                    .0
            }
            _ => Vec::new(),
        }
    }

    /// A window's messages: those in its file, then those not written yet.
    async fn read_whole_window(&self, segments: &Segments, window: i64) -> Vec<(Message, i64)> {
        let Some(segment) = segments.counts.get(&window) else {
            return Vec::new();
        };
        let mut records = if segment.len > 0 {
            without_source(
                self.read_segment(&self.path(window), Some(segment.len))
                    .await
                    .0,
            )
        } else {
            Vec::new()
        };
        records.extend(self.decode_pending(segment.len, &segment.pending));
        records
    }

    /// Removes one window's segment.
    pub async fn remove_window(&self, window: i64) {
        let mut segments = self.segments.lock().await;
        self.remove_segment(&mut segments, window).await;
    }

    /// Removes every segment (the channel was emptied or deleted).
    pub async fn clear(&self) {
        let mut segments = self.segments.lock().await;
        self.recover_locked(&mut segments, None).await;
        let windows: Vec<i64> = segments.counts.keys().copied().collect();
        for window in windows {
            self.remove_segment(&mut segments, window).await;
        }
    }

    /// Looks, once, for segments an earlier run left (a crash; a graceful exit leaves
    /// none) and counts what they hold. For a [`SpillKind::Memory`] store; a synced one
    /// recovers through [`DeferredSpill::recover_queue_copies_from`].
    pub async fn recover(&self) {
        let mut segments = self.segments.lock().await;
        self.recover_locked(&mut segments, None).await;
    }

    /// [`DeferredSpill::recover`] for a [`SpillKind::Synced`] store, when the disk queue
    /// opens at `read_from` after an earlier run: a record of a message at or after
    /// that position is dropped, because the queue hands that message out again (a
    /// crash came before the queue's read position was synced past it), and one copy
    /// is enough. Segments that lose records are rewritten (synced, then renamed over).
    pub async fn recover_queue_copies_from(&self, read_from: RecordPos) {
        let mut segments = self.segments.lock().await;
        self.recover_locked(&mut segments, Some(read_from)).await;
    }

    async fn recover_locked(&self, segments: &mut Segments, read_from: Option<RecordPos>) {
        if segments.recovered {
            return;
        }
        segments.recovered = true;
        let files = match self.fs.list(&self.data_path).await {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(dir = %self.data_path.display(), %error, "failed to look for deferred spill segments");
                return;
            }
        };
        for path in files {
            if self.is_rewrite_leftover(&path) {
                // A crash between writing a rewritten segment and its rename: the
                // segment itself is whole (the old one), and this copy is not needed.
                if let Err(error) = self.fs.remove(&path).await {
                    tracing::error!(path = %path.display(), %error, "failed to remove what a crash left of a spill segment rewrite");
                }
                continue;
            }
            let Some(window) = self.window_of(&path) else {
                continue;
            };
            let (mut records, mut len) = self.read_segment(&path, None).await;
            if let Some(read_from) = read_from {
                let before = records.len();
                records.retain(|r| r.source.is_none_or(|source| source.at < read_from));
                if records.len() < before && !records.is_empty() {
                    len = self.rewrite_segment(&path, &records).await;
                }
            }
            if records.is_empty() {
                if let Err(error) = self.fs.remove(&path).await {
                    tracing::error!(path = %path.display(), %error, "failed to remove an empty deferred spill segment");
                }
                continue;
            }
            let n = records.len() as u64;
            let segment = Segment {
                count: n,
                len,
                ..Segment::default()
            };
            segments.counts.insert(window, segment);
            self.count.fetch_add(n, Ordering::AcqRel);
            tracing::info!(path = %path.display(), messages = n, "deferred messages a crash left in a spill segment wait again");
        }
        self.mirror_earliest(segments);
    }

    /// Writes a segment anew with `records` (to a tmp file, synced, renamed over), and
    /// returns its length. Should that fail, the old segment stays: its extra records
    /// are duplicates at worst.
    async fn rewrite_segment(&self, path: &Path, records: &[SpillRecord]) -> u64 {
        let mut bytes = header_of_kind(self.kind.file_kind()).to_vec();
        for record in records {
            encode_record(&mut bytes, &record.message, record.due_ns, record.source);
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let written = async {
            self.fs.write(&tmp, &bytes).await?;
            self.fs.sync(&tmp).await?;
            self.fs.rename(&tmp, path).await
        }
        .await;
        match written {
            Ok(()) => bytes.len() as u64,
            Err(error) => {
                let _ = self.fs.remove(&tmp).await;
                tracing::error!(path = %path.display(), %error, "failed to drop the records of a spill segment whose messages the disk queue hands out again");
                self.fs.len(path).await.unwrap_or(0)
            }
        }
    }

    /// Whether `path` is a `<segment>.tmp` that [`Self::rewrite_segment`] left when a
    /// crash came before its rename.
    fn is_rewrite_leftover(&self, path: &Path) -> bool {
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            return false;
        };
        name.strip_suffix(".tmp")
            .is_some_and(|segment| self.window_of(Path::new(segment)).is_some())
    }

    /// The window of `path` if it is one of this queue's segments.
    fn window_of(&self, path: &Path) -> Option<i64> {
        let name = path.file_name()?.to_str()?;
        let window = name.strip_prefix(&self.prefix)?.strip_suffix(".dat")?;
        window.parse().ok()
    }

    /// The whole records of a segment, and the length they take (where the next
    /// record goes).
    /// `written`, when known, is how much of the file holds records this run wrote
    /// and kept: bytes past it are records whose write or sync failed, handed back
    /// already.
    async fn read_segment(&self, path: &Path, written: Option<u64>) -> (Vec<SpillRecord>, u64) {
        let bytes = match self.fs.read(path).await {
            Ok(mut bytes) => {
                if let Some(written) = written {
                    bytes.truncate(usize::try_from(written).unwrap_or(usize::MAX));
                }
                bytes
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "deferred messages lost: their spill segment cannot be read");
                return (Vec::new(), 0);
            }
        };
        let (records, problem) =
            decode_segment(&bytes, self.kind.file_kind(), self.max_message_len);
        let mut whole = bytes.len() as u64;
        if let Some(problem) = &problem {
            tracing::warn!(path = %path.display(), %problem, "deferred spill segment");
            whole = match problem {
                SegmentProblem::BadRecord { offset, .. } => *offset,
                SegmentProblem::Header(_) => 0,
            };
        }
        (records, whole)
    }

    async fn take_window(&self, segments: &mut Segments, window: i64) -> Vec<(Message, i64)> {
        let records = self.read_whole_window(segments, window).await;
        self.remove_segment(segments, window).await;
        records
    }

    async fn remove_segment(&self, segments: &mut Segments, window: i64) {
        let path = self.path(window);
        if let Err(error) = self.fs.remove(&path).await {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(path = %path.display(), %error, "failed to remove a deferred spill segment");
            }
        }
        if let Some(segment) = segments.counts.remove(&window) {
            self.count.fetch_sub(segment.count, Ordering::AcqRel);
            segments.pending_bytes = segments.pending_bytes.saturating_sub(segment.pending.len());
        }
        self.mirror_earliest(segments);
    }

    fn mirror_earliest(&self, segments: &Segments) {
        let earliest = segments
            .counts
            .first_key_value()
            .map_or(i64::MAX, |(&window, _)| window);
        self.earliest.store(earliest, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
