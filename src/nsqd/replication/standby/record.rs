//! The records of a standby store file and the reader that streams them back.
//!
//! A record is `len` (u32 BE: the bytes of kind and payload), a kind byte, the payload,
//! and a CRC-32C of kind and payload (u32 BE). The layouts of the payloads are in
//! `docs/replication.md` ("Standby store format").

use std::path::Path;

use crate::env::Fs;
use crate::nsqd::due_journal::{check_header, HeaderProblem, HEADER_LEN};
use crate::protocol::message::MSG_ID_LENGTH;
use crate::protocol::{names, MessageId};

/// A message the owner sent: the copy of it this store keeps.
const KIND_MESSAGE: u8 = 1;
/// The owner created a channel of the topic.
const KIND_CHANNEL_CREATED: u8 = 2;
/// The owner deleted a channel of the topic.
const KIND_CHANNEL_DELETED: u8 = 3;
/// Messages finished on one channel.
const KIND_FINISHED: u8 = 4;
/// A message's new due time after a REQ.
const KIND_REQUEUED: u8 = 5;
/// The highest sequence number held (a compaction writes it first, since it may drop
/// every record that carried it).
const KIND_HIGHEST_SEQ: u8 = 6;

/// Length prefix and checksum around a record's kind and payload.
pub(super) const RECORD_OVERHEAD: usize = 4 + 4;
/// What a message record holds besides the body and the channel names.
const MESSAGE_FIXED_LEN: usize = 8 + MSG_ID_LENGTH + 8 + 2 + 8 + 2;
/// Bytes a record's kind and payload may take beyond `--max-msg-size`: the channel names
/// of a message (the same slack a replication frame has around its messages).
pub(super) const RECORD_SLACK: usize = 64 * 1024;
/// Ids in one FIN record at most, so that a record stays far below [`RECORD_SLACK`].
pub(super) const FINISHED_IDS_PER_RECORD: usize = 1024;
/// Bytes read at once when a file is streamed.
const CHUNK_BYTES: usize = 1 << 20;

/// A message record: a [`super::Replicated`] with the body borrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MessageRecord<'a> {
    pub seq: u64,
    pub id: MessageId,
    pub timestamp_ns: i64,
    pub attempts: u16,
    pub due_ns: i64,
    /// The channels not finished yet (none: a topic-level copy).
    pub channels: Vec<&'a str>,
    pub body: &'a [u8],
}

/// One record, its strings and body borrowed from where it was read or built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record<'a> {
    Message(MessageRecord<'a>),
    ChannelCreated {
        seq: u64,
        name: &'a str,
    },
    ChannelDeleted {
        seq: u64,
        name: &'a str,
    },
    Finished {
        channel: &'a str,
        ids: Vec<MessageId>,
    },
    Requeued {
        id: MessageId,
        due_ns: i64,
    },
    HighestSeq(u64),
}

impl Record<'_> {
    /// Appends the whole record (length, kind, payload, checksum) to `out`; returns its
    /// length.
    pub fn encode(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        self.encode_kind_and_payload(out);
        let len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&out[start + 4..]);
        out.extend_from_slice(&crc.to_be_bytes());
        out.len() - start
    }

    fn encode_kind_and_payload(&self, out: &mut Vec<u8>) {
        match self {
            Record::Message(message) => {
                out.push(KIND_MESSAGE);
                out.extend_from_slice(&message.seq.to_be_bytes());
                out.extend_from_slice(&message.id.0);
                out.extend_from_slice(&message.timestamp_ns.to_be_bytes());
                out.extend_from_slice(&message.attempts.to_be_bytes());
                out.extend_from_slice(&message.due_ns.to_be_bytes());
                let count = u16::try_from(message.channels.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&count.to_be_bytes());
                for name in message.channels.iter().take(usize::from(count)) {
                    put_name(out, name);
                }
                out.extend_from_slice(message.body);
            }
            Record::ChannelCreated { seq, name } | Record::ChannelDeleted { seq, name } => {
                let created = matches!(self, Record::ChannelCreated { .. });
                out.push(if created {
                    KIND_CHANNEL_CREATED
                } else {
                    KIND_CHANNEL_DELETED
                });
                out.extend_from_slice(&seq.to_be_bytes());
                put_name(out, name);
            }
            Record::Finished { channel, ids } => {
                out.push(KIND_FINISHED);
                put_name(out, channel);
                let count = u32::try_from(ids.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&count.to_be_bytes());
                for id in ids {
                    out.extend_from_slice(&id.0);
                }
            }
            Record::Requeued { id, due_ns } => {
                out.push(KIND_REQUEUED);
                out.extend_from_slice(&id.0);
                out.extend_from_slice(&due_ns.to_be_bytes());
            }
            Record::HighestSeq(seq) => {
                out.push(KIND_HIGHEST_SEQ);
                out.extend_from_slice(&seq.to_be_bytes());
            }
        }
    }
}

/// Names are valid channel names (at most 64 bytes): one length byte is enough.
fn put_name(out: &mut Vec<u8>, name: &str) {
    let len = u8::try_from(name.len()).unwrap_or(u8::MAX);
    out.push(len);
    out.extend_from_slice(&name.as_bytes()[..usize::from(len)]);
}

/// Decodes a record's kind and payload (length and checksum already checked); `None`
/// for anything this version would not have written.
pub(super) fn decode(bytes: &[u8]) -> Option<Record<'_>> {
    let (&kind, payload) = bytes.split_first()?;
    let mut r = Cursor(payload);
    let record = match kind {
        KIND_MESSAGE => {
            let mut message = MessageRecord {
                seq: r.u64()?,
                id: r.id()?,
                timestamp_ns: r.i64()?,
                attempts: r.u16()?,
                due_ns: r.i64()?,
                channels: Vec::new(),
                body: &[],
            };
            let count = usize::from(r.u16()?);
            // Each name takes at least two bytes: a lying count allocates nothing.
            if count.saturating_mul(2) > r.0.len() {
                return None;
            }
            message.channels.reserve_exact(count);
            for _ in 0..count {
                message.channels.push(r.name()?);
            }
            message.body = std::mem::take(&mut r.0);
            Record::Message(message)
        }
        KIND_CHANNEL_CREATED => Record::ChannelCreated {
            seq: r.u64()?,
            name: r.name()?,
        },
        KIND_CHANNEL_DELETED => Record::ChannelDeleted {
            seq: r.u64()?,
            name: r.name()?,
        },
        KIND_FINISHED => {
            let channel = r.name()?;
            let count = usize::try_from(r.u32()?).ok()?;
            if count.checked_mul(MSG_ID_LENGTH)? != r.0.len() {
                return None;
            }
            let ids =
                r.0.chunks_exact(MSG_ID_LENGTH)
                    .filter_map(MessageId::from_slice);
            let ids = ids.collect();
            r.0 = &[];
            Record::Finished { channel, ids }
        }
        KIND_REQUEUED => Record::Requeued {
            id: r.id()?,
            due_ns: r.i64()?,
        },
        KIND_HIGHEST_SEQ => Record::HighestSeq(r.u64()?),
        _ => return None,
    };
    r.0.is_empty().then_some(record)
}

/// Reads fields off the front of a payload, each checked against what is left.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_be_bytes)
    }

    fn id(&mut self) -> Option<MessageId> {
        self.array().map(MessageId)
    }

    fn name(&mut self) -> Option<&'a str> {
        let len = usize::from(*self.take(1)?.first()?);
        let name = std::str::from_utf8(self.take(len)?).ok()?;
        names::is_valid_channel_name(name).then_some(name)
    }
}

/// The length a message record of `body_len` bytes and these channel names has.
pub(super) fn message_record_len(body_len: usize, channels: &[String]) -> usize {
    let names: usize = channels.iter().map(|name| 1 + name.len()).sum();
    RECORD_OVERHEAD + 1 + MESSAGE_FIXED_LEN + names + body_len
}

/// Where reading a file stopped before its end; logged, and cut off by the next write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadProblem {
    /// Fewer bytes than a header: the file was being created when the process died.
    #[error("{0} bytes, fewer than a header: a torn creation, read as empty")]
    TornHeader(u64),
    /// A record cut short, or whose length, checksum or contents are wrong: nothing from
    /// there on can be trusted.
    #[error(
        "the record at byte {offset} is torn or corrupt; the {bytes} bytes from it are dropped"
    )]
    BadRecord {
        /// Where it starts in the file.
        offset: u64,
        /// Bytes dropped from there.
        bytes: u64,
    },
}

/// What [`RecordReader::open`] found at the start of a file.
pub(super) enum Opened<'a> {
    /// No file, or a torn creation (the problem, if any): nothing to read.
    Empty(Option<ReadProblem>),
    /// A header of ours: records follow.
    Records(RecordReader<'a>),
    /// A header of another kind or version: not ours to read or overwrite.
    Foreign(HeaderProblem),
}

/// Streams a standby store file a chunk at a time, however large, so that neither
/// opening nor compacting nor adopting holds it whole. A record's length is checked
/// against `max_record_len` before its bytes are read.
pub(super) struct RecordReader<'a> {
    fs: &'a dyn Fs,
    path: &'a Path,
    /// Where reading stops: the file's length, or the end of its last whole record.
    len: u64,
    /// Bytes of the file from `buf_at` on.
    buf: Vec<u8>,
    buf_at: u64,
    /// Where the next record starts in `buf`.
    pos: usize,
    max_record_len: usize,
    problem: Option<ReadProblem>,
}

impl<'a> RecordReader<'a> {
    /// Opens `path` and checks its header; reads at most `limit` bytes of it (`None`: the
    /// whole file).
    pub async fn open(
        fs: &'a dyn Fs,
        path: &'a Path,
        limit: Option<u64>,
        max_record_len: usize,
    ) -> std::io::Result<Opened<'a>> {
        let len = match fs.len(path).await {
            Ok(len) => len,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(error),
        };
        let len = limit.map_or(len, |limit| len.min(limit));
        if len < HEADER_LEN as u64 {
            return Ok(Opened::Empty(
                (len > 0).then_some(ReadProblem::TornHeader(len)),
            ));
        }
        let header = fs.read_at(path, 0, HEADER_LEN).await?;
        if let Err(problem) = check_header(&header, super::KIND_STANDBY) {
            return Ok(Opened::Foreign(problem));
        }
        Ok(Opened::Records(RecordReader {
            fs,
            path,
            len,
            buf: Vec::new(),
            buf_at: HEADER_LEN as u64,
            pos: 0,
            max_record_len,
            problem: None,
        }))
    }

    /// The next whole record: its offset in the file, its length and the record. `None`
    /// at the end, or at a torn or corrupt record (then [`RecordReader::problem`] says
    /// which).
    pub async fn next(&mut self) -> std::io::Result<Option<(u64, usize, Record<'_>)>> {
        let offset = self.end_of_whole_records();
        if offset >= self.len || self.problem.is_some() {
            return Ok(None);
        }
        if !self.fill(4).await? {
            return Ok(self.stop(offset));
        }
        let len_bytes = [0, 1, 2, 3].map(|i| self.buf[self.pos + i]);
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len == 0 || len > self.max_record_len {
            return Ok(self.stop(offset));
        }
        let total = len + RECORD_OVERHEAD;
        if !self.fill(total).await? {
            return Ok(self.stop(offset));
        }
        let start = self.pos;
        let (body, crc) = self.buf[start + 4..start + total].split_at(len);
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Ok(self.stop(offset));
        }
        match decode(&self.buf[start + 4..start + 4 + len]) {
            Some(record) => {
                self.pos = start + total;
                Ok(Some((offset, total, record)))
            }
            None => {
                self.problem = Some(ReadProblem::BadRecord {
                    offset,
                    bytes: self.len - offset,
                });
                Ok(None)
            }
        }
    }

    /// Where the whole records read so far end: where the next write belongs.
    pub fn end_of_whole_records(&self) -> u64 {
        self.buf_at + self.pos as u64
    }

    /// Why reading stopped before the end, if it did.
    pub fn problem(&self) -> Option<&ReadProblem> {
        self.problem.as_ref()
    }

    fn stop<T>(&mut self, offset: u64) -> Option<T> {
        self.problem = Some(ReadProblem::BadRecord {
            offset,
            bytes: self.len - offset,
        });
        None
    }

    /// Makes `n` bytes from the next record's start available in `buf`; false when the
    /// file (up to `len`) ends first.
    async fn fill(&mut self, n: usize) -> std::io::Result<bool> {
        if self.buf.len() - self.pos >= n {
            return Ok(true);
        }
        self.buf.drain(..self.pos);
        self.buf_at += self.pos as u64;
        self.pos = 0;
        while self.buf.len() < n {
            let end = self.buf_at + self.buf.len() as u64;
            let left = usize::try_from(self.len - end).unwrap_or(usize::MAX);
            if self.buf.len().saturating_add(left) < n {
                return Ok(false);
            }
            let want = (n - self.buf.len()).max(CHUNK_BYTES).min(left);
            let more = self.fs.read_at(self.path, end, want).await?;
            if more.is_empty() {
                return Ok(false);
            }
            let usable = more.len().min(left);
            self.buf.extend_from_slice(&more[..usable]);
        }
        Ok(true)
    }
}
