//! The standby store of a peer (`docs/replication.md`, "State"): the copies it keeps of
//! one owner's messages of one topic, until the owner finished each of them on every
//! channel it was published for, and the copies it adopts when the owner is lost.
//!
//! One file per owner and topic, `<topic>.standby.<owner node id>.dat` in the data
//! directory, which Go never opens: our header ([`KIND_STANDBY`]) and then records,
//! appended (never synced here: the caller syncs by its sync policy). Each record is
//! length-prefixed and checksummed: a message (sequence number, id, timestamp, attempts,
//! due time, channel names, body), a channel created or deleted, messages finished on a
//! channel, a REQ's new due time, or the highest sequence number (written first by a
//! compaction). The layouts are in `docs/replication.md`, "Standby store format".
//!
//! The rules:
//! - A message, or a channel change, whose sequence number is at or below the highest
//!   held is a resend and is ignored.
//! - A copy is kept for the channels its record names; a FIN on one of them, or the
//!   deletion of the channel, drops it from the copy, and a copy left with none is gone.
//! - A message published when the topic had no channel is a *topic-level copy*: at the
//!   next "channel created" it gets every channel the topic has then.
//!
//! Records are written as they come by default. [`StandbyStore::gather_up_to`] lets
//! them gather in memory first, as a disk queue gathers publishes where memory queues
//! are on: they reach the file at the threshold, at [`StandbyStore::sync`], and before
//! anything reads the file back (a crash loses them, as it loses a memory queue).
//!
//! Memory holds, per unfinished copy, its id, where its record is and a bitmap of its
//! unfinished channels (32 bytes; a copy on more than 32 channel slots has a side word
//! per 32 more); the bodies stay on disk until [`StandbyStore::adopt`] reads them.
//! Loading replays the records through the same code the live operations use, so a
//! reopened store is the one that was written. A torn or corrupt record ends reading
//! with a warning and is cut off by the next write, which goes where the last whole
//! record ends. When dead records make up most of a large file, it is rewritten with
//! the live copies only, through `<file>.tmp`, synced and renamed.

mod copies;
mod index;
mod record;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::index::Index;
pub use self::record::ReadProblem;
use self::record::{
    message_record_len, MessageRecord, Opened, Record, RecordReader, FINISHED_IDS_PER_RECORD,
    RECORD_OVERHEAD, RECORD_SLACK,
};
use super::frame::Replicated;
use crate::env::Fs;
use crate::nsqd::due_journal::{header_of_kind, HeaderProblem};
use crate::protocol::{names, Message, MessageId};

/// The file kind of a standby store in our header.
pub const KIND_STANDBY: u16 = 4;
/// What follows the topic name in a store's file name, before the owner's node id.
const INFIX: &str = ".standby.";
/// The file name's end.
const SUFFIX: &str = ".dat";
/// A file smaller than this is never compacted: rewriting it would gain little.
pub const COMPACT_MIN_BYTES: u64 = 1 << 20;
/// Bytes of a compacted file gathered in memory before they are written.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Why a standby store could not be opened, read or written. The store in memory is
/// unchanged by a failed operation; the file is still valid to append to.
#[derive(Debug, thiserror::Error)]
pub enum StandbyError {
    /// Reading the file failed.
    #[error("failed to read standby store {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Writing, syncing, renaming or removing a file failed.
    #[error("failed to write standby store {path}: {source}")]
    Write {
        /// The file written.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The file starts with a header of another kind or version: it is left alone
    /// rather than overwritten.
    #[error("standby store {path} is not one this nsqd can read: {source}")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What the header says.
        #[source]
        source: HeaderProblem,
    },
    /// A message too large to be read back under `--max-msg-size`.
    #[error("a standby record of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The record's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A topic or channel name NSQ would refuse (a channel's could not be read back,
    /// a topic's could name a path outside the data directory).
    #[error("invalid topic or channel name {0:?}")]
    BadName(String),
    /// A compaction found fewer copies in the file than memory holds: the file was
    /// damaged since it was opened. The old file is kept.
    #[error("standby store {path} holds {found} of the {expected} unfinished copies")]
    Missing {
        /// The file.
        path: PathBuf,
        /// Copies found.
        found: usize,
        /// Copies memory holds.
        expected: usize,
    },
}

/// A copy's record in a compacted file: the id, where the record is, its length.
type Moved = (MessageId, u64, usize);

/// An unfinished copy handed over at failover, for the adopter to deliver as its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoptable {
    /// Id, timestamp, attempts and body, as the owner sent them.
    pub message: Message,
    /// When it is due (ns since the Unix epoch; 0: now), after the last REQ heard of.
    pub due_ns: i64,
    /// The channels it is still unfinished on; empty for a topic-level copy (for the
    /// topic, whatever channels it has).
    pub channels: Vec<String>,
}

/// Which copies of a store a failover hands over. In every scope, copies a live node
/// took over (`ADOPTED`) are left to it, and copies taken over by a node lost since are
/// handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The owner is silent: every copy.
    Silent,
    /// The owner came back blank (or crashed with memory queues on): the copies of its
    /// earlier run, numbered up to `up_to_seq`; those above are its new run's, which it
    /// delivers itself.
    EarlierRun {
        /// The highest number of the earlier run.
        up_to_seq: u64,
    },
    /// The owner is alive: only the copies a node took over and was lost since.
    Orphans,
}

/// Stands for a node that took copies over and came back without them: never alive.
/// (`--node-id` is below 1024.)
pub const LOST_ADOPTER: u16 = u16::MAX;

/// The unfinished copies of a store, read back a batch at a time for a failover.
pub struct Adoption<'a> {
    store: &'a StandbyStore,
    /// None: the store has no file.
    reader: Option<RecordReader<'a>>,
    /// Nodes alive: copies another node took over and still delivers are left to it.
    live: &'a BTreeSet<u16>,
    /// Which copies are handed over.
    scope: Scope,
    /// Copies handed over so far.
    taken: Vec<MessageId>,
    /// Copies left to the node that took them over.
    skipped: usize,
}

/// What a failover handed over, for [`StandbyStore::forget_adopted`].
#[derive(Debug, Default)]
pub struct Taken {
    ids: Vec<MessageId>,
    skipped: usize,
}

impl Adoption<'_> {
    /// The next copies in sequence order, at least one and about `max_bytes` of bodies
    /// at most; `None` once every record was read.
    pub async fn next_batch(
        &mut self,
        max_bytes: usize,
    ) -> Result<Option<Vec<Adoptable>>, StandbyError> {
        let store = self.store;
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while batch.is_empty() || bytes < max_bytes {
            let next = reader.next().await;
            let next = next.map_err(|source| store.read_error(source))?;
            let Some((offset, _, record)) = next else {
                break;
            };
            let Record::Message(message) = record else {
                continue;
            };
            if !store.is_live(offset, &message.id) {
                continue;
            }
            let skip = match (store.delegated.get(&message.id), self.scope) {
                (Some(adopter), _) => self.live.contains(adopter),
                (None, Scope::Silent) => false,
                (None, Scope::EarlierRun { up_to_seq }) => message.seq > up_to_seq,
                (None, Scope::Orphans) => true,
            };
            if skip {
                self.skipped += 1;
                continue;
            }
            bytes = bytes.saturating_add(message.body.len());
            self.taken.push(message.id);
            batch.push(store.adoptable_copy(&message));
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// Fails unless the batches held every copy memory holds (the file was damaged
    /// since it was opened otherwise).
    pub fn check_all_found(&self) -> Result<(), StandbyError> {
        self.store.check_found(self.taken.len() + self.skipped)
    }

    /// What was handed over.
    pub fn into_taken(self) -> Taken {
        Taken {
            ids: self.taken,
            skipped: self.skipped,
        }
    }
}

/// The standby copies a peer keeps of one owner's messages of one topic.
pub struct StandbyStore {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    tmp: PathBuf,
    /// The longest record's length and kind and payload may have.
    max_record_len: usize,
    /// Where the last whole record ends, gathered ones included: the next record goes
    /// there. 0: no record yet.
    end: u64,
    /// Where the last whole record written to the file ends: the next write goes there.
    flushed: u64,
    /// Records encoded and not written yet (after a header when the file has none).
    gathered: Vec<u8>,
    /// Bytes gathered before they are written (0: every record is written at once).
    gather_bytes: usize,
    index: Index,
    /// Copies another node took over from the lost owner and delivers (it said so with
    /// `ADOPTED`), by the node: kept standby for it, and adopted here only if it is
    /// lost too. Memory only: after a restart they may be delivered twice.
    delegated: BTreeMap<MessageId, u16>,
    /// The nodes in `delegated` (some of whose copies may be finished since): checked
    /// every failover tick without walking `delegated`.
    adopters: BTreeSet<u16>,
    /// Why the load stopped before the file's end, if it did.
    problem: Option<ReadProblem>,
}

impl std::fmt::Debug for StandbyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandbyStore")
            .field("path", &self.path)
            .field("end", &self.end)
            .field("highest_seq", &self.index.highest_seq)
            .field("unfinished", &self.index.copies.len())
            .finish_non_exhaustive()
    }
}

/// The file of the store of `topic` from owner `owner_node_id` in `data_path`.
pub fn file_path(data_path: &Path, topic: &str, owner_node_id: u16) -> PathBuf {
    data_path.join(format!("{topic}{INFIX}{owner_node_id}{SUFFIX}"))
}

/// The topic and owner of a store's file name, or `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<(String, u16)> {
    let rest = name.strip_suffix(SUFFIX)?;
    let (rest, owner) = rest.rsplit_once('.')?;
    let owner_node_id: u16 = owner.parse().ok()?;
    if owner_node_id.to_string() != owner {
        return None;
    }
    let topic = rest.strip_suffix(INFIX.trim_end_matches('.'))?;
    names::is_valid_topic_name(topic).then(|| (topic.to_string(), owner_node_id))
}

impl StandbyStore {
    /// Opens the store of `topic` from `owner_node_id` in `data_path` (none yet: an
    /// empty one; the file is created by the first write), reading its records back a
    /// chunk at a time. A record longer than `max_msg_size` plus the room for channel
    /// names is corrupt. A torn or corrupt tail is logged and cut by the next write; a
    /// leftover `.tmp` of a compaction is removed; a file with a foreign header is an
    /// error, and so is an invalid topic name.
    pub async fn open(
        fs: Arc<dyn Fs>,
        data_path: &Path,
        topic: &str,
        owner_node_id: u16,
        max_msg_size: usize,
    ) -> Result<StandbyStore, StandbyError> {
        if !names::is_valid_topic_name(topic) {
            return Err(StandbyError::BadName(topic.to_string()));
        }
        let path = file_path(data_path, topic, owner_node_id);
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let max_record_len = max_msg_size
            .saturating_add(RECORD_SLACK)
            .min(u32::MAX as usize - RECORD_OVERHEAD);
        let mut store = StandbyStore {
            fs,
            path,
            tmp: PathBuf::from(tmp),
            max_record_len,
            end: 0,
            flushed: 0,
            gathered: Vec::new(),
            gather_bytes: 0,
            index: Index::default(),
            delegated: BTreeMap::new(),
            adopters: BTreeSet::new(),
            problem: None,
        };
        store.remove_if_present(&store.tmp).await?;
        store.load().await?;
        Ok(store)
    }

    async fn load(&mut self) -> Result<(), StandbyError> {
        let opened = RecordReader::open(&*self.fs, &self.path, None, self.max_record_len).await;
        let mut reader = match opened.map_err(|source| self.read_error(source))? {
            Opened::Empty(problem) => {
                self.problem = problem;
                self.warn_problem();
                return Ok(());
            }
            Opened::Foreign(source) => {
                return Err(StandbyError::Foreign {
                    path: self.path.clone(),
                    source,
                })
            }
            Opened::Records(reader) => reader,
        };
        loop {
            let next = reader.next().await;
            let next = next.map_err(|source| read_error(&self.path, source))?;
            let Some((offset, len, record)) = next else {
                break;
            };
            self.index.apply(offset, len, &record);
        }
        self.end = reader.end_of_whole_records();
        self.flushed = self.end;
        self.problem = reader.problem().cloned();
        self.warn_problem();
        Ok(())
    }

    fn warn_problem(&self) {
        if let Some(problem) = &self.problem {
            tracing::warn!(path = %self.path.display(), %problem, "standby store");
        }
    }

    /// Lets records gather in memory up to `bytes` before they are written (0, the
    /// default: each batch is written at once). See the module's doc.
    pub fn gather_up_to(&mut self, bytes: usize) {
        self.gather_bytes = bytes;
    }

    /// Why loading stopped before the file's end, if it did (the next write cuts the
    /// rest off).
    pub fn read_problem(&self) -> Option<&ReadProblem> {
        self.problem.as_ref()
    }

    /// The highest sequence number held: what the peer tells the owner it has.
    pub fn highest_seq(&self) -> u64 {
        self.index.highest_seq
    }

    /// How many copies are unfinished on some channel (or wait for the topic's first).
    pub fn unfinished(&self) -> usize {
        self.index.copies.len()
    }

    /// Notes that `adopter` took over the copies `ids` (those held here) and delivers
    /// them: a failover here leaves them to it while it is alive.
    pub fn delegate(&mut self, ids: &[MessageId], adopter: u16) {
        for id in ids {
            if self.index.copies.contains_key(id) {
                self.delegated.insert(*id, adopter);
                self.adopters.insert(adopter);
            }
        }
        if self.delegated.len() > 2 * self.index.copies.len() + 1024 {
            let copies = &self.index.copies;
            self.delegated.retain(|id, _| copies.contains_key(id));
            self.adopters = self.delegated.values().copied().collect();
        }
    }

    /// Unfinished copies a failover here would hand over while the nodes `live` are
    /// alive: all but those left to a live node that took them over.
    pub fn adoptable(&self, live: &BTreeSet<u16>) -> usize {
        if self.adopters.is_disjoint(live) {
            return self.index.copies.len();
        }
        let left = self
            .delegated
            .iter()
            .filter(|(id, adopter)| live.contains(adopter) && self.index.copies.contains_key(id))
            .count();
        self.index.copies.len().saturating_sub(left)
    }

    /// `node` came back without the copies it had taken over (blank, or crashed with
    /// them in memory): they are orphaned, and due for a takeover at once.
    pub fn orphan_copies_of(&mut self, node: u16) {
        if !self.adopters.remove(&node) {
            return;
        }
        for adopter in self.delegated.values_mut() {
            if *adopter == node {
                *adopter = LOST_ADOPTER;
            }
        }
        self.adopters.insert(LOST_ADOPTER);
    }

    /// The nodes that said they took over copies held here (some of those copies may
    /// be finished since).
    pub fn adopters(&self) -> impl Iterator<Item = u16> + '_ {
        self.adopters.iter().copied()
    }

    /// Unfinished copies a node took over and was lost since (it is not in `live`):
    /// they are handed over even while their owner is alive, since it no longer has
    /// them.
    pub fn orphaned(&self, live: &BTreeSet<u16>) -> usize {
        self.delegated
            .iter()
            .filter(|(id, adopter)| !live.contains(adopter) && self.index.copies.contains_key(id))
            .count()
    }

    /// The topic's channels as the owner last said (created and not deleted since).
    pub fn channels(&self) -> Vec<&str> {
        self.index.channels()
    }

    /// The file's length up to its last whole record, gathered records included (0:
    /// no record yet).
    pub fn file_len(&self) -> u64 {
        self.end
    }

    /// Keeps copies of `records` (written, not synced). One at or below the highest
    /// sequence number held is a resend and is skipped; nothing of the batch is kept if
    /// one has an invalid channel name or is too long to be read back.
    pub async fn append(&mut self, records: &[Replicated]) -> Result<(), StandbyError> {
        let mut highest = self.index.highest_seq;
        let mut new = Vec::with_capacity(records.len());
        for replicated in records {
            if replicated.seq <= highest {
                continue;
            }
            highest = replicated.seq;
            self.check_message(replicated)?;
            new.push(Record::Message(MessageRecord {
                seq: replicated.seq,
                id: replicated.message.id,
                timestamp_ns: replicated.message.timestamp_ns,
                attempts: replicated.message.attempts,
                due_ns: replicated.due_ns,
                channels: replicated.channels.iter().map(String::as_str).collect(),
                body: &replicated.message.body,
            }));
        }
        self.write_records(&new).await
    }

    fn check_message(&self, replicated: &Replicated) -> Result<(), StandbyError> {
        if let Some(bad) = replicated
            .channels
            .iter()
            .find(|name| !names::is_valid_channel_name(name))
        {
            return Err(StandbyError::BadName(bad.clone()));
        }
        let len = message_record_len(replicated.message.body.len(), &replicated.channels);
        if len - RECORD_OVERHEAD > self.max_record_len || replicated.channels.len() > 0xffff {
            return Err(StandbyError::TooLarge {
                len,
                max: self.max_record_len,
            });
        }
        Ok(())
    }

    /// The owner created the channel `name` (its sequence number `seq`): topic-level
    /// copies get every channel the topic has now.
    pub async fn channel_created(&mut self, name: &str, seq: u64) -> Result<(), StandbyError> {
        self.channel_changed(Record::ChannelCreated { seq, name }, name, seq)
            .await
    }

    /// The owner deleted the channel `name` (its sequence number `seq`): no copy is
    /// kept for it any more, and a copy left with no channel is finished.
    pub async fn channel_deleted(&mut self, name: &str, seq: u64) -> Result<(), StandbyError> {
        self.channel_changed(Record::ChannelDeleted { seq, name }, name, seq)
            .await
    }

    async fn channel_changed(
        &mut self,
        record: Record<'_>,
        name: &str,
        seq: u64,
    ) -> Result<(), StandbyError> {
        if !names::is_valid_channel_name(name) {
            return Err(StandbyError::BadName(name.to_string()));
        }
        if seq <= self.index.highest_seq {
            return Ok(());
        }
        self.write_records(&[record]).await
    }

    /// The owner finished `ids` on `channel`. Ids with no copy unfinished on that
    /// channel are ignored (and not written).
    pub async fn finish(&mut self, channel: &str, ids: &[MessageId]) -> Result<(), StandbyError> {
        let mut unfinished: Vec<MessageId> = ids
            .iter()
            .filter(|id| self.index.is_unfinished_on(id, channel))
            .copied()
            .collect();
        unfinished.sort_unstable();
        unfinished.dedup();
        let records: Vec<Record<'_>> = unfinished
            .chunks(FINISHED_IDS_PER_RECORD)
            .map(|ids| Record::Finished {
                channel,
                ids: ids.to_vec(),
            })
            .collect();
        self.write_records(&records).await
    }

    /// The owner requeued `id` until `due_ns`: an adopter delivers it then. Ignored
    /// when no copy of `id` is unfinished.
    pub async fn requeued(&mut self, id: MessageId, due_ns: i64) -> Result<(), StandbyError> {
        if !self.index.copies.contains_key(&id) {
            return Ok(());
        }
        self.write_records(&[Record::Requeued { id, due_ns }]).await
    }

    /// Writes the gathered records and makes every write so far durable (the caller
    /// decides when, by its sync policy).
    pub async fn sync(&mut self) -> Result<(), StandbyError> {
        self.flush().await?;
        if self.flushed == 0 {
            return Ok(());
        }
        let synced = self.fs.sync(&self.path).await;
        synced.map_err(|source| write_error(&self.path, source))
    }

    /// Gathers `records` after the last whole record (and a header if there is no
    /// record yet), writes what is gathered unless the threshold lets it wait, and then
    /// applies them to memory. On failure they are dropped and memory is unchanged
    /// (records gathered before stay gathered).
    async fn write_records(&mut self, records: &[Record<'_>]) -> Result<(), StandbyError> {
        if records.is_empty() {
            return Ok(());
        }
        let mark = self.gathered.len();
        if self.end == 0 {
            self.gathered
                .extend_from_slice(&header_of_kind(KIND_STANDBY));
        }
        let first = self.flushed + self.gathered.len() as u64;
        let mut lens = Vec::with_capacity(records.len());
        for record in records {
            lens.push(record.encode(&mut self.gathered));
        }
        if self.gathered.len() >= self.gather_bytes {
            if let Err(error) = self.flush().await {
                self.gathered.truncate(mark);
                return Err(error);
            }
        }
        let mut offset = first;
        for (record, len) in records.iter().zip(lens) {
            self.index.apply(offset, len, record);
            offset += len as u64;
        }
        self.end = offset;
        Ok(())
    }

    /// Writes the gathered records where the file's last whole record ends, cutting
    /// whatever a failed or torn write left there. On failure they stay gathered.
    async fn flush(&mut self) -> Result<(), StandbyError> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        let gathered = std::mem::take(&mut self.gathered);
        let (mut gathered, written) = self.fs.write_at(&self.path, self.flushed, gathered).await;
        if let Err(source) = written {
            self.gathered = gathered;
            return Err(write_error(&self.path, source));
        }
        self.flushed += gathered.len() as u64;
        gathered.clear();
        self.gathered = gathered;
        Ok(())
    }

    /// Reads the body of every unfinished copy, in sequence order, all at once (the
    /// gathered records written first); fails unless every copy memory holds was
    /// found. A failover goes through [`StandbyStore::adoption`] instead, a batch at a
    /// time.
    pub async fn adopt(&mut self) -> Result<Vec<Adoptable>, StandbyError> {
        let live = BTreeSet::new();
        let mut adoption = self.adoption(&live, Scope::Silent).await?;
        let mut adoptable = Vec::new();
        while let Some(batch) = adoption.next_batch(usize::MAX).await? {
            adoptable.extend(batch);
        }
        adoption.check_all_found()?;
        Ok(adoptable)
    }

    /// Starts handing the unfinished copies over for a failover (the gathered records
    /// written first): [`Adoption::next_batch`] reads them in sequence order, a batch
    /// of bounded size at a time, for the adopter to deliver as its own before it asks
    /// for the next; then it calls [`StandbyStore::forget_all`].
    /// Hands over the copies of `scope`, copies a node in `live` took over left to it.
    pub async fn adoption<'a>(
        &'a mut self,
        live: &'a BTreeSet<u16>,
        scope: Scope,
    ) -> Result<Adoption<'a>, StandbyError> {
        self.flush().await?;
        let reader = self.open_reader().await?;
        Ok(Adoption {
            store: self,
            reader,
            live,
            scope,
            taken: Vec::new(),
            skipped: 0,
        })
    }

    fn adoptable_copy(&self, record: &MessageRecord<'_>) -> Adoptable {
        let body = bytes::Bytes::copy_from_slice(record.body);
        let mut message = Message::new(record.id, record.timestamp_ns, body);
        message.attempts = record.attempts;
        let channels = self.index.unfinished_channels(&record.id);
        Adoptable {
            message,
            due_ns: self.due_of(&record.id, record.due_ns),
            channels: channels.into_iter().map(str::to_string).collect(),
        }
    }

    /// The due time of the copy of `id`, whose record says `recorded`.
    fn due_of(&self, id: &MessageId, recorded: i64) -> i64 {
        self.index.requeued.get(id).copied().unwrap_or(recorded)
    }

    /// A reader of the file's whole records (none: no file yet). Gathered records are
    /// not in it: callers flush first.
    async fn open_reader(&self) -> Result<Option<RecordReader<'_>>, StandbyError> {
        if self.flushed == 0 {
            return Ok(None);
        }
        let opened = RecordReader::open(
            &*self.fs,
            &self.path,
            Some(self.flushed),
            self.max_record_len,
        )
        .await
        .map_err(|source| self.read_error(source))?;
        match opened {
            Opened::Records(reader) => Ok(Some(reader)),
            Opened::Empty(_) => Ok(None),
            Opened::Foreign(source) => Err(StandbyError::Foreign {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Whether the message record at `offset` is the one of an unfinished copy (an
    /// earlier record of the same id is not).
    fn is_live(&self, offset: u64, id: &MessageId) -> bool {
        self.index.copies.get(id).map(|copy| copy.offset) == Some(offset)
    }

    /// Fails unless streaming the file found every copy memory holds.
    fn check_found(&self, found: usize) -> Result<(), StandbyError> {
        let expected = self.index.copies.len();
        if found != expected {
            return Err(StandbyError::Missing {
                path: self.path.clone(),
                found,
                expected,
            });
        }
        Ok(())
    }

    /// Drops every copy: they were handed over (adopted). The file is rewritten with
    /// the channels and the highest sequence number only, synced.
    pub async fn forget_all(&mut self) -> Result<(), StandbyError> {
        self.index.forget_copies();
        self.delegated.clear();
        self.adopters.clear();
        self.compact().await
    }

    /// Drops the copies a failover handed over ([`Adoption::into_taken`]); those left
    /// to another node stay. The file is rewritten with what is left, synced.
    pub async fn forget_adopted(&mut self, taken: Taken) -> Result<(), StandbyError> {
        if taken.skipped == 0 {
            return self.forget_all().await;
        }
        for id in &taken.ids {
            self.index.forget(id);
            self.delegated.remove(id);
        }
        self.compact().await
    }

    /// Compacts the file when it is at least [`COMPACT_MIN_BYTES`] long and less than
    /// half of it is live copies. Returns whether it did.
    pub async fn compact_if_mostly_dead(&mut self) -> Result<bool, StandbyError> {
        if self.end < COMPACT_MIN_BYTES || self.index.live_bytes >= self.end / 2 {
            return Ok(false);
        }
        self.compact().await.map(|()| true)
    }

    /// Rewrites the file with only what is live: the highest sequence number, the
    /// topic's channels, and each unfinished copy with its unfinished channels and
    /// latest due time, in sequence order. Written to `<file>.tmp`, synced, renamed
    /// over the file: until the rename the old file is whole, and after it the new one.
    pub async fn compact(&mut self) -> Result<(), StandbyError> {
        self.flush().await?;
        let compacted = self.write_compacted().await;
        let (moved, end) = match compacted {
            Ok(done) => done,
            Err(error) => {
                let _ = self.fs.remove(&self.tmp).await;
                return Err(error);
            }
        };
        let renamed = self.fs.rename(&self.tmp, &self.path).await;
        if let Err(source) = renamed {
            let _ = self.fs.remove(&self.tmp).await;
            return Err(write_error(&self.tmp, source));
        }
        let before = self.end;
        for (id, offset, len) in moved {
            self.index.moved(&id, offset, len);
        }
        self.end = end;
        self.flushed = end;
        self.problem = None;
        tracing::debug!(path = %self.path.display(), before, after = end, "standby store compacted");
        Ok(())
    }

    /// Writes and syncs `<file>.tmp` for [`StandbyStore::compact`], a chunk at a time;
    /// returns where each copy's record is in it and its length, and the tmp's length.
    async fn write_compacted(&self) -> Result<(Vec<Moved>, u64), StandbyError> {
        let mut out = Vec::with_capacity(WRITE_CHUNK_BYTES);
        out.extend_from_slice(&header_of_kind(KIND_STANDBY));
        Record::HighestSeq(self.index.highest_seq).encode(&mut out);
        for name in self.index.channels() {
            Record::ChannelCreated { seq: 0, name }.encode(&mut out);
        }
        let mut moved = Vec::with_capacity(self.index.copies.len());
        let mut written = 0u64;
        if let Some(mut reader) = self.open_reader().await? {
            loop {
                let next = reader.next().await;
                let next = next.map_err(|source| self.read_error(source))?;
                let Some((offset, _, record)) = next else {
                    break;
                };
                let Record::Message(message) = record else {
                    continue;
                };
                if !self.is_live(offset, &message.id) {
                    continue;
                }
                let id = message.id;
                let record = Record::Message(MessageRecord {
                    channels: self.index.unfinished_channels(&id),
                    due_ns: self.due_of(&id, message.due_ns),
                    ..message
                });
                let at = written + out.len() as u64;
                moved.push((id, at, record.encode(&mut out)));
                if out.len() >= WRITE_CHUNK_BYTES {
                    out = self.write_tmp_chunk(&mut written, out).await?;
                }
            }
        }
        self.check_found(moved.len())?;
        self.write_tmp_chunk(&mut written, out).await?;
        let synced = self.fs.sync(&self.tmp).await;
        synced.map_err(|source| write_error(&self.tmp, source))?;
        Ok((moved, written))
    }

    /// Writes `chunk` at `*written` in the tmp file, advances `*written`, and hands the
    /// buffer back, emptied.
    async fn write_tmp_chunk(
        &self,
        written: &mut u64,
        chunk: Vec<u8>,
    ) -> Result<Vec<u8>, StandbyError> {
        let (mut chunk, result) = self.fs.write_at(&self.tmp, *written, chunk).await;
        result.map_err(|source| write_error(&self.tmp, source))?;
        *written += chunk.len() as u64;
        chunk.clear();
        Ok(chunk)
    }

    /// Removes the store's files: the topic was deleted on the owner.
    pub async fn delete(self) -> Result<(), StandbyError> {
        self.remove_if_present(&self.tmp).await?;
        self.remove_if_present(&self.path).await
    }

    async fn remove_if_present(&self, path: &Path) -> Result<(), StandbyError> {
        match self.fs.remove(path).await {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(write_error(path, source))
            }
            _ => Ok(()),
        }
    }

    /// The stores in `data_path` (topic, owner node id), sorted: those to open at
    /// startup. Other files, `.tmp` leftovers included, are not stores.
    pub async fn find_all(
        fs: &dyn Fs,
        data_path: &Path,
    ) -> Result<Vec<(String, u16)>, StandbyError> {
        let paths = fs
            .list(data_path)
            .await
            .map_err(|source| read_error(data_path, source))?;
        let mut stores: Vec<(String, u16)> = paths
            .iter()
            .filter_map(|path| parse_file_name(path.file_name()?.to_str()?))
            .collect();
        stores.sort();
        Ok(stores)
    }

    fn read_error(&self, source: std::io::Error) -> StandbyError {
        read_error(&self.path, source)
    }
}

fn read_error(path: &Path, source: std::io::Error) -> StandbyError {
    StandbyError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn write_error(path: &Path, source: std::io::Error) -> StandbyError {
    StandbyError::Write {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests;
