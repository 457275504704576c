//! A FIFO queue of byte records on disk, in go-diskqueue v1.1.0's layout and with its
//! behaviour (`nsq-reference.md` §4.3), so a data directory moves between Go nsqd and
//! ours in both directions. Topics and channels overflow into one each.
//!
//! # Layout on disk
//! In the data directory, for a queue named `<name>` (`<topic>` or `<topic>:<channel>`):
//! - `<name>.diskqueue.%06d.dat`: data files, each a run of records (`int32` big-endian
//!   length, then the payload). Writing rolls to the next number before a record that
//!   would take a non-empty file past `max_bytes_per_file`.
//! - `<name>.diskqueue.meta.dat`: `"%d\n%d,%d\n%d,%d\n"` = depth, read file and
//!   position, write file and position; replaced through a synced temporary file.
//!
//! # Shape
//! Go runs an `ioLoop` goroutine with a read-ahead channel. Here the owner calls methods
//! and drives time: [`DiskQueue::read_next`] hands over the next record, which then counts
//! as consumed; the caller asks [`DiskQueue::needs_periodic_sync`] on its `sync-timeout`
//! tick. No clocks, no tasks, every file operation through [`Fs`].
//!
//! # Where we differ from Go, on purpose
//! The files are the same; these are about what happens around them.
//! - A `put` that reaches `sync_every` fsyncs before it returns (Go answers first).
//! - When the writer rolls while the reader has consumed the whole file, the file is
//!   finished and removed (Go renames it `.bad` on a spurious EOF: go-diskqueue #42).
//! - Finished files are removed after the metadata stops naming them (Go removes first,
//!   so a crash in between looks like data loss); data files older than the read file,
//!   which such a crash leaves, are removed at open.
//! - At open, a write file longer *or shorter* than the metadata says, or data files past
//!   it, move writing to a new file; whole records in an unsynced tail are counted into
//!   the depth, so it stays exact (Go's depth is off until its tail check resets it).
//! - Metadata that cannot be parsed or makes no sense (negative, reader past writer) is
//!   logged and the position is rebuilt from the data files found (Go starts from zero
//!   and overwrites file 0).
//! - A missing data file is skipped, not "renamed" to `.bad`; after a failed write the
//!   file may hold part of a record, so the next write starts a new file.

mod files;
mod meta;
mod open;
mod read;
mod record;
mod write;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::env::Fs;
use files::QueueFiles;
use meta::Meta;
use read::ReadBuf;
pub use record::Payload;
use record::SizeLimits;

/// The settings of one disk queue; nsqd derives them from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskQueueConfig {
    /// `--max-bytes-per-file`: writing rolls to a new file before a record that would take
    /// a non-empty file past this.
    pub max_bytes_per_file: u64,
    /// Smallest valid payload; a smaller length in a file means corruption.
    pub min_msg_size: u32,
    /// Largest valid payload (at most `i32::MAX`).
    pub max_msg_size: u32,
    /// `--sync-every`: fsync and persist the metadata after this many reads plus writes
    /// (0 acts as 1).
    pub sync_every: u64,
    /// Records are gathered in memory and written to the data file in one write once
    /// they reach this many bytes, or when a sync is due, a file rolls or the queue
    /// closes; 0 writes every put through before it returns. Gathered records can be
    /// read at once; a crash loses them as it loses writes that were not synced.
    pub write_buffer_bytes: u64,
}

impl Default for DiskQueueConfig {
    /// What nsqd's defaults give: 100 MiB files, messages of 26 bytes (header, empty body)
    /// up to `--max-msg-size` (1 MiB) plus that header, a sync every 2500 operations;
    /// every put written through.
    fn default() -> Self {
        DiskQueueConfig {
            max_bytes_per_file: 100 * 1024 * 1024,
            min_msg_size: 26,
            max_msg_size: 1024 * 1024 + 26,
            sync_every: 2500,
            write_buffer_bytes: 0,
        }
    }
}

/// What a disk queue operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DiskQueueError {
    /// The payload is outside `min_msg_size..=max_msg_size`; nothing was written.
    #[error("invalid message write size ({len}) minMsgSize={min} maxMsgSize={max}")]
    InvalidSize {
        /// The payload's length.
        len: usize,
        /// The configured minimum.
        min: u32,
        /// The configured maximum.
        max: u32,
    },
    /// The configuration cannot work.
    #[error("invalid disk queue config: {0}")]
    InvalidConfig(&'static str),
    /// The name cannot be part of a file name.
    #[error("invalid disk queue name {0:?}")]
    InvalidName(String),
    /// The queue was closed or deleted (Go's error text).
    #[error("exiting")]
    Closed,
    /// The data directory could not be created or listed.
    #[error("failed to open disk queue in {path}: {source}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing a data file failed. The records of the failed put are not queued, except
    /// those in a file finished before the failure; records of earlier puts that were
    /// still gathered in memory stay there and are written by the next attempt.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The data file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// fsync of the write file failed: the records are written and counted, but not known
    /// to be durable.
    #[error("failed to sync {path}: {source}")]
    Sync {
        /// The data file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The metadata file could not be replaced: the records are written (and synced when
    /// a sync was due), but a restart may not see the newest position.
    #[error("failed to persist metadata {path}: {source}")]
    Meta {
        /// The metadata file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A file of the queue could not be removed.
    #[error("failed to remove {path}: {source}")]
    Remove {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Where a record starts: its data file and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordPos {
    /// The data file's number.
    pub file: u64,
    /// The record's offset in it.
    pub pos: u64,
}

/// Records handed out but not yet done with: the metadata keeps the read position at the
/// first of them, so a crash hands them out again instead of losing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The oldest record not yet done with.
    pub at: RecordPos,
    /// Records read from `at` up to the read position (counted back into the depth).
    pub records: u64,
}

/// One disk queue: records in, the same records out, in order, across restarts.
///
/// Not synchronised: one owner calls it (`&mut self`). Drop it only after [`close`]
/// (which persists the metadata) or [`delete`]; a dropped queue behaves like a crash.
///
/// [`close`]: DiskQueue::close
/// [`delete`]: DiskQueue::delete
pub struct DiskQueue {
    fs: Arc<dyn Fs>,
    files: QueueFiles,
    /// The queue name, for logs.
    name: String,
    config: DiskQueueConfig,
    limits: SizeLimits,
    /// Records between the read and the write position (Go's `depth`; may go negative
    /// only when metadata lied, until the tail check resets it).
    depth: i64,
    /// The data file the next record is read from, and where in it.
    read_file: u64,
    read_pos: u64,
    /// The data file the next record is written to, and where in it.
    write_file: u64,
    write_pos: u64,
    /// Length of the read file once writing has moved past it (Go's
    /// `maxBytesPerFileRead`): reaching it finishes the file.
    read_file_len: Option<u64>,
    /// Bytes of the read file read ahead.
    read_buf: ReadBuf,
    /// Records appended to the write file but not yet written to it: they hold its bytes
    /// `flushed_pos..write_pos`. Reads of that range are served from here.
    unflushed: Vec<u8>,
    /// How much of the write file is written (handed to the file system).
    flushed_pos: u64,
    /// Reads plus writes since the last sync (Go's `count`).
    ops_since_sync: u64,
    /// A sync is due regardless of the count (a file was finished, skipped or renamed).
    need_sync: bool,
    /// The write file has appends that were not fsynced.
    write_unsynced: bool,
    /// Files the reader finished, removed once the metadata no longer names them.
    finished_files: Vec<u64>,
    /// `close` or `delete` was called.
    closed: bool,
    /// Records the caller still holds: the metadata's read position stays at them.
    hold: Option<Hold>,
    /// The read position of the metadata last committed (None: not committed yet).
    committed_read: Option<RecordPos>,
}

/// Whether a sync commits the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaWrite {
    /// Always (explicit syncs, the periodic tick, close).
    Always,
    /// Only when the read position moved or the files changed: a sync due to writes
    /// alone leaves the metadata behind the data, which opening recounts (Go's own
    /// metadata lags its data the same way between syncs), so a busy writer does not
    /// replace the metadata file every `sync_every` records.
    IfReadMoved,
}

impl std::fmt::Debug for DiskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskQueue")
            .field("name", &self.name)
            .field("depth", &self.depth)
            .field("read", &(self.read_file, self.read_pos))
            .field("write", &(self.write_file, self.write_pos))
            .finish_non_exhaustive()
    }
}

impl DiskQueue {
    /// Opens (or creates) queue `name` in `data_path`, picking up where the metadata
    /// says. Damaged metadata or data is logged and worked around; only a data directory
    /// that cannot be created or listed, or a bad name or config, is an error.
    pub async fn open(
        fs: Arc<dyn Fs>,
        data_path: PathBuf,
        name: &str,
        config: DiskQueueConfig,
    ) -> Result<DiskQueue, DiskQueueError> {
        open::open(fs, data_path, name, config).await
    }

    /// Appends one record. Counts toward `sync_every`; when that is reached the record is
    /// fsynced (with the metadata) before this returns.
    pub async fn put(&mut self, payload: &[u8]) -> Result<(), DiskQueueError> {
        self.put_many(std::slice::from_ref(&payload)).await
    }

    /// Appends several records, gathered in memory up to `write_buffer_bytes` and then
    /// written with one write per data file they land in. Every size is checked first, so
    /// an invalid one writes nothing; an IO error may leave the records before it in a
    /// finished file written (and counted).
    pub async fn put_many<P: Payload>(&mut self, payloads: &[P]) -> Result<(), DiskQueueError> {
        self.check_open()?;
        self.write_records(payloads).await
    }

    /// Appends records and returns without the `sync_every` fsync: for a caller that
    /// shares one fsync of [`DiskQueue::write_file_path`] among concurrent writers
    /// (group commit). A file the queue leaves while writing is fsynced as it rolls,
    /// so after that fsync every record appended so far is on disk. The metadata catches
    /// up at the next sync; opening recounts whole records past it.
    pub async fn put_many_unsynced<P: Payload>(
        &mut self,
        payloads: &[P],
    ) -> Result<(), DiskQueueError> {
        self.check_open()?;
        self.append_records(payloads, true).await
    }

    /// [`DiskQueue::put_many`] for a caller that fsyncs outside its lock on the queue:
    /// when only the `sync_every` count calls for a sync, the gathered records are
    /// written and the file to fsync is returned instead of fsynced here (the metadata
    /// catches up at the next sync that moves the read position, the tick or close).
    /// Syncs the queue needs for other reasons (a file finished or skipped) happen here.
    /// A failed fsync of the returned file must be reported with
    /// [`DiskQueue::sync_failed`].
    pub async fn put_many_leaving_sync<P: Payload>(
        &mut self,
        payloads: &[P],
    ) -> Result<Option<std::path::PathBuf>, DiskQueueError> {
        self.check_open()?;
        self.append_records(payloads, false).await?;
        if self.need_sync {
            self.sync_now(MetaWrite::IfReadMoved).await?;
            return Ok(None);
        }
        if self.ops_since_sync < self.sync_every() {
            return Ok(None);
        }
        self.ops_since_sync = 0;
        Ok(Some(self.files.data(self.write_file)))
    }

    /// An fsync left to the caller by [`DiskQueue::put_many_leaving_sync`] failed: the
    /// next sync opportunity retries it.
    pub fn sync_failed(&mut self) {
        self.need_sync = true;
        self.write_unsynced = true;
    }

    /// The data file being written to now.
    pub fn write_file_path(&self) -> std::path::PathBuf {
        self.files.data(self.write_file)
    }

    /// The next record, which from now on counts as consumed (`Ok(None)` when the queue
    /// is empty). A corrupt or unreadable file is logged, renamed `.bad` and skipped;
    /// only a closed queue is an error.
    pub async fn read_next(&mut self) -> Result<Option<Bytes>, DiskQueueError> {
        self.check_open()?;
        Ok(self.read_record_or_skip().await.map(|(record, _)| record))
    }

    /// [`DiskQueue::read_next_deferring_sync`] with where the record starts, for
    /// [`DiskQueue::set_hold`]: the caller holds it, then calls
    /// [`DiskQueue::sync_if_due`].
    pub async fn read_next_positioned(
        &mut self,
    ) -> Result<Option<(Bytes, RecordPos)>, DiskQueueError> {
        self.check_open()?;
        Ok(self.read_record_deferring_sync().await)
    }

    /// Keeps the read position the metadata records at `hold` (None: at the real read
    /// position): records handed out but not yet done with are read again after a crash.
    /// Files at or after the held one are kept until the hold moves past them.
    pub fn set_hold(&mut self, hold: Option<Hold>) {
        self.hold = hold;
    }

    /// [`DiskQueue::read_next`] without the sync that may follow it: the read position
    /// reaches the metadata only at the next sync. For a caller that must first make
    /// the record durable elsewhere (a topic handing messages to its channels), then
    /// calls [`DiskQueue::sync_if_due`], so a crash in between repeats the record
    /// instead of losing it.
    pub async fn read_next_deferring_sync(&mut self) -> Result<Option<Bytes>, DiskQueueError> {
        self.check_open()?;
        Ok(self
            .read_record_deferring_sync()
            .await
            .map(|(record, _)| record))
    }

    /// Syncs when `sync_every` operations (or a pending file change) call for it.
    pub async fn sync_if_due(&mut self) -> Result<(), DiskQueueError> {
        self.check_open()?;
        if self.sync_due() {
            self.sync_now(MetaWrite::IfReadMoved).await?;
        }
        Ok(())
    }

    /// Whether `sync_every` operations, or a file change, are waiting for a sync.
    fn sync_due(&self) -> bool {
        self.need_sync || self.ops_since_sync >= self.sync_every()
    }

    /// Records written and not yet read.
    pub fn depth(&self) -> i64 {
        self.depth
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fsyncs the write file and persists the metadata.
    pub async fn sync(&mut self) -> Result<(), DiskQueueError> {
        self.check_open()?;
        self.sync_now(MetaWrite::Always).await
    }

    /// Whether the caller's `sync-timeout` tick should call [`DiskQueue::sync`]: only when
    /// something happened since the last sync, as in Go.
    pub fn needs_periodic_sync(&self) -> bool {
        !self.closed && (self.ops_since_sync > 0 || self.need_sync)
    }

    /// Throws away every record: removes the data files and the metadata file, and moves
    /// both positions to a new, empty file (Go's `Empty`).
    pub async fn empty(&mut self) -> Result<(), DiskQueueError> {
        self.check_open()?;
        tracing::info!(queue = %self.name, "emptying");
        self.remove_all_files().await
    }

    /// Removes every data and metadata file of this queue and closes it (`.bad` files
    /// stay for inspection).
    pub async fn delete(&mut self) -> Result<(), DiskQueueError> {
        self.check_open()?;
        tracing::info!(queue = %self.name, "deleting");
        self.closed = true;
        self.remove_all_files().await
    }

    /// Syncs and persists the metadata, then refuses further use.
    pub async fn close(&mut self) -> Result<(), DiskQueueError> {
        self.check_open()?;
        tracing::info!(queue = %self.name, "closing");
        self.closed = true;
        self.sync_now(MetaWrite::Always).await
    }

    fn check_open(&self) -> Result<(), DiskQueueError> {
        if self.closed {
            return Err(DiskQueueError::Closed);
        }
        Ok(())
    }

    /// `sync_every`, with 0 meaning every operation.
    fn sync_every(&self) -> u64 {
        self.config.sync_every.max(1)
    }

    /// Whether a record lies between the read and the write position.
    fn has_unread(&self) -> bool {
        self.read_file < self.write_file || self.read_pos < self.write_pos
    }

    /// Moves the reader to the start of file `num`.
    fn set_read_file(&mut self, num: u64) {
        self.read_file = num;
        self.read_pos = 0;
        self.read_file_len = None;
        self.read_buf.clear();
    }

    /// The position as the metadata file spells it.
    fn meta(&self) -> Meta {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (read, held) = match self.hold {
            Some(hold) => (hold.at, hold.records),
            None => (
                RecordPos {
                    file: self.read_file,
                    pos: self.read_pos,
                },
                0,
            ),
        };
        Meta {
            depth: self.depth.saturating_add(signed(held)),
            read_file: signed(read.file),
            read_pos: signed(read.pos),
            write_file: signed(self.write_file),
            write_pos: signed(self.write_pos),
        }
    }

    /// Writes out what was gathered and fsyncs the write file if it has unsynced
    /// appends, then commits the metadata as `meta` says.
    async fn sync_now(&mut self, meta: MetaWrite) -> Result<(), DiskQueueError> {
        // Go resets its count whether or not the sync works; a failure keeps `need_sync`.
        self.ops_since_sync = 0;
        if let Err(error) = self.flush().await {
            self.need_sync = true;
            return Err(error);
        }
        if self.write_unsynced {
            let path = self.files.data(self.write_file);
            if let Err(source) = self.fs.sync(&path).await {
                self.need_sync = true;
                return Err(DiskQueueError::Sync { path, source });
            }
            self.write_unsynced = false;
        }
        let read_moved = self.committed_read != Some(self.meta_read_pos());
        if meta == MetaWrite::IfReadMoved && !read_moved && !self.need_sync {
            return Ok(());
        }
        self.commit_meta().await
    }

    /// Where the next read starts (at open: where the metadata left it).
    pub fn read_position(&self) -> RecordPos {
        RecordPos {
            file: self.read_file,
            pos: self.read_pos,
        }
    }

    /// The read position of the metadata last committed in this run (None: none yet).
    pub fn committed_read_position(&self) -> Option<RecordPos> {
        self.committed_read
    }

    /// The read position the metadata records now (the oldest held record, if any).
    fn meta_read_pos(&self) -> RecordPos {
        match self.hold {
            Some(hold) => hold.at,
            None => RecordPos {
                file: self.read_file,
                pos: self.read_pos,
            },
        }
    }

    /// Persists the metadata, then removes the files it no longer names.
    async fn commit_meta(&mut self) -> Result<(), DiskQueueError> {
        let path = self.files.meta();
        let written = meta::persist(&*self.fs, &path, &self.files.meta_tmp(), &self.meta()).await;
        if let Err(source) = written {
            self.need_sync = true;
            return Err(DiskQueueError::Meta { path, source });
        }
        self.need_sync = false;
        self.committed_read = Some(self.meta_read_pos());
        // A held file is still named by the metadata: it goes once the hold moves on.
        let kept_from = self.hold.map_or(u64::MAX, |hold| hold.at.file);
        let (removable, kept): (Vec<u64>, Vec<u64>) = std::mem::take(&mut self.finished_files)
            .into_iter()
            .partition(|num| *num < kept_from);
        self.finished_files = kept;
        for num in removable {
            let path = self.files.data(num);
            if let Err(error) = remove_if_present(&*self.fs, &path).await {
                tracing::error!(queue = %self.name, path = %path.display(), %error, "failed to remove finished data file");
            }
        }
        Ok(())
    }

    /// Syncs, logging a failure: for paths that must go on (a record already handed
    /// over, a roll already decided).
    async fn sync_or_log(&mut self, why: &'static str) {
        if let Err(error) = self.sync_now(MetaWrite::Always).await {
            tracing::error!(queue = %self.name, %error, why, "failed to sync");
        }
    }

    /// Go's `deleteAllFiles`: the data files from the reader's to the writer's and the
    /// metadata file go, and both positions move to a new, empty file.
    async fn remove_all_files(&mut self) -> Result<(), DiskQueueError> {
        self.hold = None;
        let data_removed = self.remove_all_files_but_meta().await;
        self.ops_since_sync = 0;
        let path = self.files.meta();
        if let Err(source) = remove_if_present(&*self.fs, &path).await {
            tracing::error!(queue = %self.name, error = %source, "failed to remove metadata file");
            return Err(DiskQueueError::Remove { path, source });
        }
        data_removed
    }

    /// Go's `skipToNextRWFile`: removes the data files from the reader's to the writer's
    /// (and finished ones not yet removed); both positions move to a new file, depth 0.
    async fn remove_all_files_but_meta(&mut self) -> Result<(), DiskQueueError> {
        let mut first_error = None;
        let mut doomed = std::mem::take(&mut self.finished_files);
        match self.fs.list(self.files.dir()).await {
            Ok(paths) => doomed.extend(
                paths
                    .iter()
                    .filter_map(|p| self.files.data_file_num(p))
                    .filter(|n| (self.read_file..=self.write_file).contains(n)),
            ),
            Err(source) => {
                first_error = Some(DiskQueueError::Open {
                    path: self.files.dir().to_path_buf(),
                    source,
                })
            }
        }
        for num in doomed {
            let path = self.files.data(num);
            if let Err(source) = remove_if_present(&*self.fs, &path).await {
                tracing::error!(queue = %self.name, path = %path.display(), error = %source, "failed to remove data file");
                first_error.get_or_insert(DiskQueueError::Remove { path, source });
            }
        }
        self.write_file = self.write_file.saturating_add(1);
        self.write_pos = 0;
        self.discard_unflushed();
        self.write_unsynced = false;
        self.set_read_file(self.write_file);
        self.depth = 0;
        first_error.map_or(Ok(()), Err)
    }
}

/// Removes `path`; a file that is already gone is fine.
async fn remove_if_present(fs: &dyn Fs, path: &std::path::Path) -> io::Result<()> {
    match fs.remove(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
