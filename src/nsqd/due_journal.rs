//! The due-time journal of a disk queue: when each deferred message whose body waits in
//! the queue becomes due. Go's disk format has no room for a delay, so without it a
//! restart or a crash would deliver such a message at once. The journal is a file of
//! ours beside Go's files (`<queue name>.deferred.journal`), which Go never opens; its
//! format is written down in `docs/deferred.md`.
//!
//! The file is a header and fixed-size records, each with its own checksum, appended as
//! messages are deferred. It is read and compacted in chunks, never whole: compaction
//! copies the records still in the future, whatever the owner's memory says. A message's
//! due time is its latest record (records of one id are appended in non-decreasing due
//! order, so that is also its last). A torn tail is cut, a corrupt record is skipped, an
//! unknown header makes the file ignored: each is logged, none is a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::due_times::DueTimes;
use super::group_commit::GroupCommit;
use crate::env::Fs;
use crate::protocol::message::MSG_ID_LENGTH;
use crate::protocol::MessageId;

/// The first bytes of every file of ours in the data directory.
pub const MAGIC: &[u8; 8] = b"NSQRSDEF";
/// The format version this nsqd writes and reads.
pub const VERSION: u16 = 1;
/// The file kind of a due-time journal (the header leaves room for other kinds).
pub const KIND_JOURNAL: u16 = 1;
/// Magic, version and file kind.
pub const HEADER_LEN: usize = 12;
/// Record kind, message id, due time and checksum.
pub const RECORD_LEN: usize = 1 + MSG_ID_LENGTH + 8 + 4;
/// The record kind "deferred until".
const RECORD_DEFERRED: u8 = 1;

/// Records beyond twice those live after the last rewrite a journal may hold before it is
/// compacted.
const REWRITE_SLACK_RECORDS: u64 = 1024;
/// Records read (or written) at once when the file is streamed: about 1 MiB.
const CHUNK_RECORDS: usize = (1 << 20) / RECORD_LEN;

/// How much of a rewritten journal is gathered in memory before it is written.
const REWRITE_CHUNK_BYTES: usize = 1 << 20;

/// The file name suffix after the queue name.
const SUFFIX: &str = ".deferred.journal";

/// What a journal's header says when it is not ours to read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderProblem {
    /// Fewer bytes than a header.
    #[error("the header is cut short ({0} bytes)")]
    Short(usize),
    /// Not our magic.
    #[error("the file does not start with NSQRSDEF")]
    BadMagic,
    /// A version this nsqd does not know (a newer nsq-rs wrote it).
    #[error("format version {0} is unknown (this nsqd reads version {VERSION})")]
    UnknownVersion(u16),
    /// Another kind of file of ours.
    #[error("file kind {0} is not the kind expected here")]
    WrongKind(u16),
}

/// What could not be read back of a journal; logged, and recovered as far as it goes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The header is not ours: every record is ignored.
    #[error("ignored: {0}")]
    Header(HeaderProblem),
    /// A whole record whose checksum or kind is wrong: skipped.
    #[error("the record at byte {offset} is corrupt; skipped")]
    CorruptRecord {
        /// Where it starts in the file.
        offset: u64,
    },
    /// Fewer bytes than a record at the end (a crash during an append): cut off.
    #[error("{bytes} bytes at byte {offset} are a torn record; cut off")]
    TornTail {
        /// Where they start in the file.
        offset: u64,
        /// How many there are.
        bytes: usize,
    },
}

/// A journal file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading it failed.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The journal file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Writing, syncing, renaming or removing it failed.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file written.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// The records of a journal, oldest first, and what could not be read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// `(message id, due time in ns since the Unix epoch)`, in file order.
    pub records: Vec<(MessageId, i64)>,
    /// Everything skipped, cut or ignored.
    pub problems: Vec<Problem>,
}

/// The header every journal starts with.
pub fn encode_header() -> [u8; HEADER_LEN] {
    header_of_kind(KIND_JOURNAL)
}

/// The header of a file of ours of the given kind.
pub fn header_of_kind(kind: u16) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..10].copy_from_slice(&VERSION.to_be_bytes());
    header[10..12].copy_from_slice(&kind.to_be_bytes());
    header
}

/// One "deferred until `due_ns`" record for message `id`.
pub fn encode_record(id: &MessageId, due_ns: i64) -> [u8; RECORD_LEN] {
    let mut record = [0u8; RECORD_LEN];
    record[0] = RECORD_DEFERRED;
    record[1..1 + MSG_ID_LENGTH].copy_from_slice(&id.0);
    record[1 + MSG_ID_LENGTH..RECORD_LEN - 4].copy_from_slice(&due_ns.to_be_bytes());
    let crc = crc32c::crc32c(&record[..RECORD_LEN - 4]);
    record[RECORD_LEN - 4..].copy_from_slice(&crc.to_be_bytes());
    record
}

/// Reads a whole journal. An empty file holds nothing and has no problem.
///
/// nsqd itself reads journals in chunks ([`Reader`]); this is the same decoding for a
/// journal already in memory (tests and the fuzz target).
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut decoded = Decoded::default();
    if bytes.is_empty() {
        return decoded;
    }
    if let Err(problem) = check_header(bytes, KIND_JOURNAL) {
        decoded.problems.push(Problem::Header(problem));
        return decoded;
    }
    let Decoded { records, problems } = &mut decoded;
    let body = &bytes[HEADER_LEN..];
    let whole = decode_records(body, HEADER_LEN as u64, problems, |_, id, due| {
        records.push((id, due));
    });
    if whole < body.len() {
        problems.push(Problem::TornTail {
            offset: (HEADER_LEN + whole) as u64,
            bytes: body.len() - whole,
        });
    }
    decoded
}

/// Decodes the whole records at the start of `bytes`, which start at byte `offset` of
/// the file: calls `each` with every good record (its bytes, id and due time) and notes
/// every corrupt one in `problems`. Returns how many bytes the whole records take.
fn decode_records(
    bytes: &[u8],
    offset: u64,
    problems: &mut Vec<Problem>,
    mut each: impl FnMut(&[u8], MessageId, i64),
) -> usize {
    let mut records = bytes.chunks_exact(RECORD_LEN);
    let mut at = offset;
    for record in records.by_ref() {
        match decode_record(record) {
            Some((id, due)) => each(record, id, due),
            None => problems.push(Problem::CorruptRecord { offset: at }),
        }
        at += RECORD_LEN as u64;
    }
    bytes.len() - records.remainder().len()
}

/// Whether `bytes` start with the header of a file of ours of `expected` kind.
pub(crate) fn check_header(bytes: &[u8], expected: u16) -> Result<(), HeaderProblem> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or(HeaderProblem::Short(bytes.len()))?;
    if &header[..8] != MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    let version = u16::from_be_bytes([header[8], header[9]]);
    if version != VERSION {
        return Err(HeaderProblem::UnknownVersion(version));
    }
    let kind = u16::from_be_bytes([header[10], header[11]]);
    if kind != expected {
        return Err(HeaderProblem::WrongKind(kind));
    }
    Ok(())
}

fn decode_record(record: &[u8]) -> Option<(MessageId, i64)> {
    let (body, crc) = record.split_at(RECORD_LEN - 4);
    let crc = u32::from_be_bytes(crc.try_into().ok()?);
    if crc32c::crc32c(body) != crc || body[0] != RECORD_DEFERRED {
        return None;
    }
    let id = MessageId::from_slice(&body[1..1 + MSG_ID_LENGTH])?;
    let due = i64::from_be_bytes(body[1 + MSG_ID_LENGTH..].try_into().ok()?);
    Some((id, due))
}

/// Reads a journal file about a megabyte at a time, so that neither loading nor
/// compacting a journal of millions of records holds it whole in memory. Decodes as
/// [`decode`] does, with the same problems at the same offsets.
struct Reader<'a> {
    fs: &'a dyn Fs,
    path: &'a Path,
    /// The file's length when it was opened (nothing appends while the file lock is
    /// held).
    len: u64,
    /// Where the next chunk starts; `len` once everything was read.
    offset: u64,
    /// Whether the file starts with a journal header.
    header_ok: bool,
    /// Bytes read at once: whole records (a field so tests can make it small).
    chunk_bytes: usize,
    /// Everything skipped, cut or ignored so far.
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    /// Opens the journal at `path` and checks its header. A missing or empty file is one
    /// with nothing to read.
    async fn open(fs: &'a dyn Fs, path: &'a Path) -> std::io::Result<Reader<'a>> {
        let len = match fs.len(path).await {
            Ok(len) => len,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(error),
        };
        let mut reader = Reader {
            fs,
            path,
            len,
            offset: len,
            header_ok: false,
            chunk_bytes: CHUNK_RECORDS * RECORD_LEN,
            problems: Vec::new(),
        };
        if len == 0 {
            return Ok(reader);
        }
        let header = fs.read_at(path, 0, HEADER_LEN).await?;
        match check_header(&header, KIND_JOURNAL) {
            Ok(()) => {
                reader.header_ok = true;
                reader.offset = HEADER_LEN as u64;
            }
            Err(problem) => reader.problems.push(Problem::Header(problem)),
        }
        Ok(reader)
    }

    /// Whole records left to read, at most (to size what they are read into).
    fn records_left(&self) -> usize {
        usize::try_from(self.len.saturating_sub(self.offset) / RECORD_LEN as u64).unwrap_or(0)
    }

    /// Decodes the next chunk, calling `each` with every good record in it (its bytes,
    /// id and due time). False once the whole file was read.
    async fn next_chunk(
        &mut self,
        each: impl FnMut(&[u8], MessageId, i64),
    ) -> std::io::Result<bool> {
        if self.offset >= self.len {
            return Ok(false);
        }
        let want = self.chunk_bytes;
        let mut bytes = self.fs.read_at(self.path, self.offset, want).await?;
        let left = usize::try_from(self.len - self.offset).unwrap_or(usize::MAX);
        bytes.truncate(left);
        let whole = decode_records(&bytes, self.offset, &mut self.problems, each);
        if whole < bytes.len() {
            // Only the last chunk can end inside a record: the others are whole records.
            self.problems.push(Problem::TornTail {
                offset: self.offset + whole as u64,
                bytes: bytes.len() - whole,
            });
        }
        self.offset = if bytes.len() < want {
            self.len
        } else {
            self.offset + bytes.len() as u64
        };
        Ok(true)
    }
}

/// The due-time journal of one disk queue.
///
/// Appends are synced before they return (writers that arrive during an fsync share the
/// next one), so a caller can write the message itself afterwards and know that no
/// crash leaves it on disk without its due time. Every operation on the file holds one
/// async lock, so a rewrite never loses an append made meanwhile.
pub struct DueJournal {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    file: tokio::sync::Mutex<FileState>,
    commits: GroupCommit,
    /// [`Buggify::deferred_due_at_restart`](crate::nsqd::Buggify).
    due_at_restart: bool,
}

#[derive(Debug)]
struct FileState {
    /// Whether the file exists with its header.
    exists: bool,
    /// Records in the file.
    records: u64,
    /// Records still in the future right after the last load or rewrite: once the file
    /// holds more than twice as many (plus some slack), it is compacted.
    records_at_rewrite: u64,
    /// The latest due time of any record in the file (`i64::MIN` when none): once it
    /// has passed, so has every record, and the file is removed.
    latest_due: i64,
    /// Whether what an earlier run left was read (once per process).
    loaded: bool,
    /// What was read before the owner asked for it (an append came first).
    unclaimed: Option<DueTimes>,
}

impl Default for FileState {
    fn default() -> Self {
        FileState {
            exists: false,
            records: 0,
            records_at_rewrite: 0,
            latest_due: i64::MIN,
            loaded: false,
            unclaimed: None,
        }
    }
}

impl FileState {
    /// The file was just rewritten with `records` records (none: it is gone), all in the
    /// future, the latest due at `latest_due`.
    fn rewritten(&mut self, records: u64, latest_due: i64) {
        self.exists = records > 0;
        self.records = records;
        self.records_at_rewrite = records;
        self.latest_due = if records > 0 { latest_due } else { i64::MIN };
    }
}

impl std::fmt::Debug for DueJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DueJournal {
    /// The journal of the disk queue `queue_name` in `data_path` (nothing is touched
    /// until first use). `due_at_restart` plants the simulator's lost-delay bug.
    pub fn new(fs: Arc<dyn Fs>, data_path: &Path, queue_name: &str, due_at_restart: bool) -> Self {
        DueJournal {
            fs,
            path: data_path.join(format!("{queue_name}{SUFFIX}")),
            file: tokio::sync::Mutex::new(FileState::default()),
            commits: GroupCommit::default(),
            due_at_restart,
        }
    }

    /// The first call returns what an earlier run left: the due times still in the
    /// future at `now_ns` (a message's latest record counts). Later calls return `None`:
    /// the owner's memory is the truth by then.
    pub async fn load_once(&self, now_ns: i64) -> Option<DueTimes> {
        let mut file = self.file.lock().await;
        let mut due = if !file.loaded {
            self.read_locked(&mut file, now_ns).await
        } else {
            let mut due = file.unclaimed.take()?;
            due.retain(|_, at| *at > now_ns);
            due
        };
        if self.due_at_restart {
            due.clear();
        }
        Some(due)
    }

    /// Reads the file an earlier run left, chunk by chunk, into the due times after
    /// `after` (records at or before it are skipped as they are read), logging whatever
    /// could not be read. A file with problems is compacted at once, so appends never
    /// follow a torn or foreign tail; one with many records that passed is left to the
    /// next [`DueJournal::rewrite_if_stale`].
    async fn read_locked(&self, file: &mut FileState, after: i64) -> DueTimes {
        file.loaded = true;
        let mut reader = match Reader::open(&*self.fs, &self.path).await {
            Ok(reader) => reader,
            Err(source) => {
                self.log_read_error(source);
                return DueTimes::default();
            }
        };
        let mut builder = DueTimes::builder(reader.records_left());
        let (mut good, mut live, mut latest) = (0u64, 0u64, i64::MIN);
        let read = loop {
            let chunk = reader
                .next_chunk(|_, id, due| {
                    good += 1;
                    latest = latest.max(due);
                    if due > after {
                        live += 1;
                        builder.push(id, due);
                    }
                })
                .await;
            match chunk {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(source) => break Err(source),
            }
        };
        for problem in &reader.problems {
            tracing::warn!(path = %self.path.display(), %problem, "due-time journal");
        }
        let due = builder.finish();
        if let Err(source) = read {
            self.log_read_error(source);
            // What was read is kept, and the file is appended to as it is; what could
            // not be read is compacted away once it has grown.
            file.exists = reader.header_ok;
            file.records = u64::try_from(reader.records_left()).unwrap_or(u64::MAX) + good;
            file.records_at_rewrite = file.records;
            file.latest_due = i64::MAX;
            return due;
        }
        if reader.len == 0 {
            return due;
        }
        if reader.problems.is_empty() {
            file.exists = true;
            file.records = good;
            file.records_at_rewrite = live;
            file.latest_due = latest;
            return due;
        }
        if let Err(error) = self.compact_locked(file, after, false).await {
            tracing::error!(%error, "failed to rewrite the due-time journal after reading it");
        }
        due
    }

    fn log_read_error(&self, source: std::io::Error) {
        let error = self.read_error(source);
        tracing::error!(%error, "due times of deferred messages lost: they are delivered when read");
    }

    /// Records that each message of `entries` is deferred until its due time, synced
    /// before this returns.
    pub async fn append(&self, entries: &[(MessageId, i64)]) -> Result<(), JournalError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mine = {
            let mut file = self.file.lock().await;
            if !file.loaded {
                let earlier = self.read_locked(&mut file, i64::MIN).await;
                file.unclaimed = Some(earlier);
            }
            let mut bytes = Vec::with_capacity(HEADER_LEN + entries.len() * RECORD_LEN);
            if !file.exists {
                bytes.extend_from_slice(&encode_header());
            }
            for (id, due) in entries {
                bytes.extend_from_slice(&encode_record(id, *due));
            }
            // Written where the last whole record ends, cutting whatever a failed append
            // may have left past it, so records never follow a partial one.
            let end = if file.exists {
                HEADER_LEN as u64 + file.records * RECORD_LEN as u64
            } else {
                0
            };
            let (_, written) = self.fs.write_at(&self.path, end, bytes).await;
            written.map_err(|source| self.write_error(&self.path, source))?;
            file.exists = true;
            file.records += entries.len() as u64;
            let latest = entries.iter().map(|(_, due)| *due).max();
            file.latest_due = file.latest_due.max(latest.unwrap_or(i64::MIN));
            self.commits.appended()
        };
        self.commits
            .wait_synced(mine, || async {
                self.fs
                    .sync(&self.path)
                    .await
                    .map_err(|source| self.write_error(&self.path, source))
            })
            .await
    }

    /// Compacts the file when it holds more than twice the records that were live after
    /// the last load or rewrite (plus some slack), or when every record's due time has
    /// passed at `now_ns` (the file is then removed). Returns whether it did.
    ///
    /// Compaction keeps every record due after `now_ns`, in file order, whatever the
    /// owner's memory holds: a message may have left the owner's memory (moved to a
    /// spill segment, say) while its queue could still read it again after a crash, and
    /// it must wait then. Dropping the records that passed needs no memory either: the
    /// records of one id are appended with non-decreasing due times (a REQ comes after
    /// the delivery, which comes after the earlier due time), so once an id's latest
    /// record has passed, all of its records have, and a message read with no record
    /// left is delivered at once, as it would be with one that passed. Should the wall
    /// clock go back, the load still takes an id's latest record, never an earlier one:
    /// the worst is a message delivered late, never early.
    pub async fn rewrite_if_stale(&self, now_ns: i64) -> Result<bool, JournalError> {
        let mut file = self.file.lock().await;
        if !file.loaded || file.records == 0 {
            return Ok(false);
        }
        let grown = file.records > 2 * file.records_at_rewrite + REWRITE_SLACK_RECORDS;
        if !grown && now_ns < file.latest_due {
            return Ok(false);
        }
        self.compact_locked(&mut file, now_ns, true)
            .await
            .map(|()| true)
    }

    /// Records in the file, for tests and diagnostics.
    pub async fn records(&self) -> u64 {
        self.file.lock().await.records
    }

    /// Streams the file, about a megabyte at a time, into `<journal>.tmp` with every
    /// good record due after `after`, in file order; syncs it and renames it over the
    /// file. When no record is left, removes the file instead. On failure the old file is
    /// still there, whole (the caller holds the file lock, so nothing appends meanwhile).
    async fn compact_locked(
        &self,
        file: &mut FileState,
        after: i64,
        log_problems: bool,
    ) -> Result<(), JournalError> {
        let tmp = self.tmp_path();
        let (mut kept, mut latest) = (0u64, i64::MIN);
        let mut problems = Vec::new();
        let copied = async {
            let mut reader = Reader::open(&*self.fs, &self.path)
                .await
                .map_err(|source| self.read_error(source))?;
            let chunk_bytes = CHUNK_RECORDS * RECORD_LEN;
            let mut out = Vec::with_capacity(HEADER_LEN + chunk_bytes);
            out.extend_from_slice(&encode_header());
            let mut written = 0u64;
            loop {
                let more = reader
                    .next_chunk(|record, _, due| {
                        if due > after {
                            out.extend_from_slice(record);
                            kept += 1;
                            latest = latest.max(due);
                        }
                    })
                    .await
                    .map_err(|source| self.read_error(source))?;
                if out.len() >= chunk_bytes || (!more && kept > 0) {
                    let (buf, result) = self
                        .fs
                        .write_at(&tmp, written, std::mem::take(&mut out))
                        .await;
                    result.map_err(|source| self.write_error(&tmp, source))?;
                    written += buf.len() as u64;
                    out = buf;
                    out.clear();
                }
                if !more {
                    break;
                }
            }
            problems = reader.problems;
            if kept == 0 {
                return match self.fs.remove(&self.path).await {
                    Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                        Err(self.write_error(&self.path, source))
                    }
                    _ => Ok(()),
                };
            }
            self.fs
                .sync(&tmp)
                .await
                .map_err(|source| self.write_error(&tmp, source))?;
            self.fs
                .rename(&tmp, &self.path)
                .await
                .map_err(|source| self.write_error(&tmp, source))
        }
        .await;
        if let Err(error) = copied {
            let _ = self.fs.remove(&tmp).await;
            return Err(error);
        }
        if log_problems {
            for problem in &problems {
                tracing::warn!(path = %self.path.display(), %problem, "due-time journal");
            }
        }
        tracing::debug!(path = %self.path.display(), before = file.records, after = kept, "due-time journal compacted");
        file.rewritten(kept, latest);
        Ok(())
    }

    /// Writes the file whole with the entries `snapshot` returns (taken while no append
    /// can run, so none made before is lost), synced and renamed over the old one; an
    /// empty snapshot removes the file. What an earlier run left and the owner has not
    /// claimed yet is kept too.
    pub async fn rewrite<I>(&self, snapshot: impl FnOnce() -> I) -> Result<(), JournalError>
    where
        I: IntoIterator<Item = (MessageId, i64)>,
        I::IntoIter: Send,
    {
        let mut file = self.file.lock().await;
        if !file.loaded {
            let earlier = self.read_locked(&mut file, i64::MIN).await;
            file.unclaimed = Some(earlier);
        }
        let unclaimed = file.unclaimed.take();
        let entries = snapshot()
            .into_iter()
            .chain(unclaimed.iter().flat_map(|u| u.iter()));
        let written = self.write_whole(&mut file, entries).await;
        file.unclaimed = unclaimed;
        written
    }

    /// Removes the file and forgets what it held (its queue was deleted or emptied).
    pub async fn remove(&self) -> Result<(), JournalError> {
        let mut file = self.file.lock().await;
        file.loaded = true;
        file.unclaimed = Some(DueTimes::default());
        self.write_whole(&mut file, std::iter::empty()).await
    }

    /// Writes the file anew with `entries`, [`REWRITE_CHUNK_BYTES`] at a time (memory
    /// holds a chunk, not the file), to a tmp file that is synced and renamed over it;
    /// no entry removes the file.
    async fn write_whole(
        &self,
        file: &mut FileState,
        entries: impl Iterator<Item = (MessageId, i64)> + Send,
    ) -> Result<(), JournalError> {
        let tmp = self.tmp_path();
        let (mut records, mut latest) = (0u64, i64::MIN);
        let written = async {
            let mut chunk = Vec::with_capacity(REWRITE_CHUNK_BYTES + RECORD_LEN);
            chunk.extend_from_slice(&encode_header());
            let mut started = false;
            for (id, due) in entries {
                chunk.extend_from_slice(&encode_record(&id, due));
                records += 1;
                latest = latest.max(due);
                if chunk.len() >= REWRITE_CHUNK_BYTES {
                    self.write_chunk(&tmp, &chunk, started).await?;
                    started = true;
                    chunk.clear();
                }
            }
            if records == 0 {
                return Ok(());
            }
            self.write_chunk(&tmp, &chunk, started).await?;
            self.fs.sync(&tmp).await?;
            self.fs.rename(&tmp, &self.path).await
        }
        .await;
        match written {
            Ok(()) if records == 0 => match self.fs.remove(&self.path).await {
                Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                    Err(self.write_error(&self.path, source))
                }
                _ => {
                    file.rewritten(0, i64::MIN);
                    Ok(())
                }
            },
            Ok(()) => {
                file.rewritten(records, latest);
                Ok(())
            }
            Err(source) => {
                let _ = self.fs.remove(&tmp).await;
                // The old file, if any, is still there and still valid to append to.
                Err(self.write_error(&tmp, source))
            }
        }
    }

    /// Writes the first chunk of a rewrite (creating `tmp` anew), or appends a later one.
    async fn write_chunk(&self, tmp: &Path, chunk: &[u8], started: bool) -> std::io::Result<()> {
        if started {
            self.fs.append(tmp, chunk).await
        } else {
            self.fs.write(tmp, chunk).await
        }
    }

    /// Where a rewrite is written before it is renamed over the journal.
    fn tmp_path(&self) -> PathBuf {
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        PathBuf::from(tmp)
    }

    fn read_error(&self, source: std::io::Error) -> JournalError {
        JournalError::Read {
            path: self.path.clone(),
            source,
        }
    }

    fn write_error(&self, path: &Path, source: std::io::Error) -> JournalError {
        JournalError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
