//! The frames peers exchange on a replication connection: the TCP port, opened with the
//! magic [`MAGIC`] instead of a client's `"  V2"` (`docs/replication.md`, "Protocol").
//!
//! A frame is `size` (u32 BE, the bytes after it), a type byte, the payload, and a
//! CRC-32C of type and payload (u32 BE). A peer is never trusted: the size is checked
//! against the caller's maximum before anything is allocated, and every length inside
//! the payload against the bytes left, so garbage gives a [`FrameError`], never a panic
//! or a huge allocation.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::protocol::message::MSG_ID_LENGTH;
use crate::protocol::{names, Message, MessageId};

/// What a peer sends first on the TCP port, where a client sends `"  V2"`.
pub const MAGIC: &[u8; 4] = b"  R1";
/// The protocol version in [`Hello`] (2: `ADOPTED` names a lost owner's copies taken
/// over; version 1 only reserved it).
pub const VERSION: u16 = 2;
/// Size, type byte and checksum around a payload.
const FRAME_OVERHEAD: usize = 4 + 1 + 4;

/// Why bytes from a peer are not a frame; the connection is closed with it logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The size is above what this nsqd accepts.
    #[error("frame of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The size the peer announced.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The size is too small to hold a type and a checksum.
    #[error("frame of {0} bytes is too short")]
    TooShort(usize),
    /// The checksum does not match.
    #[error("frame checksum mismatch")]
    Checksum,
    /// A type byte this version does not know.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// A length inside the payload runs past its end, or bytes are left over.
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    /// A topic or channel name NSQ would refuse.
    #[error("invalid name {0:?}")]
    BadName(String),
}

/// The first frame of each side: who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// [`VERSION`].
    pub version: u16,
    /// `--node-id` (message ids carry it: two peers must differ).
    pub node_id: u16,
    /// Random per data directory, kept in `replication.dat`: a node that comes back
    /// with another one lost its disk.
    pub data_id: u64,
    /// The broadcast TCP address, as peers name it in `--replica-peer`.
    pub address: String,
    /// `--replication-factor`.
    pub replication_factor: u16,
    /// Whether this side wants TLS before anything else.
    pub tls: bool,
}

/// One replicated message: the owner's sequence number for it, the message as the
/// owner holds it, its due time, and the channels that existed when it was published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicated {
    /// The owner's sequence number for the topic.
    pub seq: u64,
    /// Id, timestamp, attempts and body.
    pub message: Message,
    /// When it is due (ns since the Unix epoch; 0: now).
    pub due_ns: i64,
    /// The channels it is for.
    pub channels: Vec<String>,
}

/// A frame of the replication protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The owner introduces itself.
    Hello(Hello),
    /// The peer's answer to [`Frame::Hello`].
    HelloOk(Hello),
    /// A refusal; the sender closes.
    Error(String),
    /// The owner's secret for the peer's auth server.
    Auth(Bytes),
    /// The secret was accepted.
    AuthOk,
    /// Per topic, the last sequence number the peer holds from this owner.
    CatchUp(Vec<(String, u64)>),
    /// Messages to keep standby copies of.
    Messages {
        /// Their topic.
        topic: String,
        /// The messages, in sequence order.
        records: Vec<Replicated>,
    },
    /// The highest sequence number the peer holds without a gap.
    Ack {
        /// The topic.
        topic: String,
        /// The sequence number.
        seq: u64,
    },
    /// A channel was created or deleted on the owner.
    Channel {
        /// The topic.
        topic: String,
        /// The channel.
        channel: String,
        /// Created (or deleted).
        created: bool,
        /// Its place in the topic's sequence.
        seq: u64,
    },
    /// A topic was deleted on the owner.
    TopicDeleted(String),
    /// Messages finished on one channel, and delays of requeued ones.
    Fins {
        /// The topic.
        topic: String,
        /// The channel.
        channel: String,
        /// The finished messages.
        finished: Vec<MessageId>,
        /// Requeued messages and their new due times.
        deferred: Vec<(MessageId, i64)>,
    },
    /// Liveness, both ways.
    Ping {
        /// The sender's data directory id.
        data_id: u64,
    },
    /// The answer to [`Frame::Ping`].
    Pong {
        /// The sender's data directory id.
        data_id: u64,
    },
    /// After a failover, sent by the node that took copies over to its own peers: it
    /// now delivers these copies of `owner`'s `topic`, so a peer holding them too
    /// keeps them standby for it instead of delivering them again.
    Adopted {
        /// The lost owner's node id.
        owner: u16,
        /// The topic.
        topic: String,
        /// The messages taken over.
        ids: Vec<MessageId>,
    },
}

const HELLO: u8 = 1;
const HELLO_OK: u8 = 2;
const ERROR: u8 = 3;
const AUTH: u8 = 4;
const AUTH_OK: u8 = 5;
const CATCH_UP: u8 = 6;
const MESSAGES: u8 = 7;
const ACK: u8 = 8;
const CHANNEL: u8 = 9;
const TOPIC_DELETED: u8 = 10;
const FINS: u8 = 11;
const PING: u8 = 12;
const PONG: u8 = 13;
const ADOPTED: u8 = 14;

impl Frame {
    /// Appends the frame's bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0);
        out.put_u8(self.kind());
        self.encode_payload(out);
        let crc = crc32c::crc32c(&out[start + 4..]);
        out.put_u32(crc);
        let size = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
        out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    fn kind(&self) -> u8 {
        match self {
            Frame::Hello(_) => HELLO,
            Frame::HelloOk(_) => HELLO_OK,
            Frame::Error(_) => ERROR,
            Frame::Auth(_) => AUTH,
            Frame::AuthOk => AUTH_OK,
            Frame::CatchUp(_) => CATCH_UP,
            Frame::Messages { .. } => MESSAGES,
            Frame::Ack { .. } => ACK,
            Frame::Channel { .. } => CHANNEL,
            Frame::TopicDeleted(_) => TOPIC_DELETED,
            Frame::Fins { .. } => FINS,
            Frame::Ping { .. } => PING,
            Frame::Pong { .. } => PONG,
            Frame::Adopted { .. } => ADOPTED,
        }
    }

    fn encode_payload(&self, out: &mut BytesMut) {
        match self {
            Frame::Hello(hello) | Frame::HelloOk(hello) => {
                out.put_u16(hello.version);
                out.put_u16(hello.node_id);
                out.put_u64(hello.data_id);
                put_str(out, &hello.address);
                out.put_u16(hello.replication_factor);
                out.put_u8(u8::from(hello.tls));
            }
            Frame::Error(text) => put_str(out, text),
            Frame::Auth(secret) => put_bytes(out, secret),
            Frame::AuthOk => {}
            Frame::CatchUp(topics) => {
                put_count(out, topics.len());
                for (topic, seq) in topics {
                    put_str(out, topic);
                    out.put_u64(*seq);
                }
            }
            Frame::Messages { topic, records } => {
                put_str(out, topic);
                put_count(out, records.len());
                for record in records {
                    out.put_u64(record.seq);
                    out.put_slice(&record.message.id.0);
                    out.put_i64(record.message.timestamp_ns);
                    out.put_u16(record.message.attempts);
                    out.put_i64(record.due_ns);
                    put_count(out, record.channels.len());
                    for channel in &record.channels {
                        put_str(out, channel);
                    }
                    put_bytes(out, &record.message.body);
                }
            }
            Frame::Ack { topic, seq } => {
                put_str(out, topic);
                out.put_u64(*seq);
            }
            Frame::Channel {
                topic,
                channel,
                created,
                seq,
            } => {
                put_str(out, topic);
                put_str(out, channel);
                out.put_u8(u8::from(*created));
                out.put_u64(*seq);
            }
            Frame::TopicDeleted(topic) => put_str(out, topic),
            Frame::Fins {
                topic,
                channel,
                finished,
                deferred,
            } => {
                put_str(out, topic);
                put_str(out, channel);
                put_ids(out, finished);
                put_count(out, deferred.len());
                for (id, due) in deferred {
                    out.put_slice(&id.0);
                    out.put_i64(*due);
                }
            }
            Frame::Ping { data_id } | Frame::Pong { data_id } => {
                out.put_u64(*data_id);
            }
            Frame::Adopted { owner, topic, ids } => {
                out.put_u16(*owner);
                put_str(out, topic);
                put_ids(out, ids);
            }
        }
    }

    /// Takes one whole frame off the front of `buf`: `Ok(None)` until all its bytes are
    /// there. `max_size` bounds the announced size, checked before anything else.
    pub fn decode(buf: &mut BytesMut, max_size: usize) -> Result<Option<Frame>, FrameError> {
        let Some(size) = buf.get(..4) else {
            return Ok(None);
        };
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        if size > max_size {
            return Err(FrameError::TooLarge {
                size,
                max: max_size,
            });
        }
        if size < FRAME_OVERHEAD - 4 {
            return Err(FrameError::TooShort(size));
        }
        if buf.len() < 4 + size {
            return Ok(None);
        }
        buf.advance(4);
        let mut frame = buf.split_to(size).freeze();
        let crc = frame.split_off(size - 4);
        let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(&frame) != crc {
            return Err(FrameError::Checksum);
        }
        let kind = frame.get_u8();
        decode_payload(kind, frame).map(Some)
    }
}

fn decode_payload(kind: u8, bytes: Bytes) -> Result<Frame, FrameError> {
    let name = match kind {
        HELLO => "HELLO",
        HELLO_OK => "HELLO_OK",
        ERROR => "ERROR",
        AUTH => "AUTH",
        AUTH_OK => "AUTH_OK",
        CATCH_UP => "CATCH_UP",
        MESSAGES => "MESSAGES",
        ACK => "ACK",
        CHANNEL => "CHANNEL",
        TOPIC_DELETED => "TOPIC_DELETED",
        FINS => "FINS",
        PING => "PING",
        PONG => "PONG",
        ADOPTED => "ADOPTED",
        other => return Err(FrameError::UnknownType(other)),
    };
    let mut r = Reader { bytes, name };
    let frame = match kind {
        HELLO | HELLO_OK => {
            let hello = Hello {
                version: r.u16()?,
                node_id: r.u16()?,
                data_id: r.u64()?,
                address: r.string()?,
                replication_factor: r.u16()?,
                tls: r.u8()? != 0,
            };
            if kind == HELLO {
                Frame::Hello(hello)
            } else {
                Frame::HelloOk(hello)
            }
        }
        ERROR => Frame::Error(r.string()?),
        AUTH => Frame::Auth(r.bytes()?),
        AUTH_OK => Frame::AuthOk,
        CATCH_UP => {
            let count = r.count(2 + 8)?;
            let mut topics = Vec::with_capacity(count);
            for _ in 0..count {
                topics.push((r.topic()?, r.u64()?));
            }
            Frame::CatchUp(topics)
        }
        MESSAGES => {
            let topic = r.topic()?;
            let count = r.count(8 + MSG_ID_LENGTH + 8 + 2 + 8 + 4 + 4)?;
            let mut records = Vec::with_capacity(count);
            for _ in 0..count {
                let seq = r.u64()?;
                let id = r.id()?;
                let timestamp_ns = r.i64()?;
                let attempts = r.u16()?;
                let due_ns = r.i64()?;
                let channels = r.count(2)?;
                let mut names = Vec::with_capacity(channels);
                for _ in 0..channels {
                    names.push(r.channel()?);
                }
                let mut message = Message::new(id, timestamp_ns, r.bytes()?);
                message.attempts = attempts;
                records.push(Replicated {
                    seq,
                    message,
                    due_ns,
                    channels: names,
                });
            }
            Frame::Messages { topic, records }
        }
        ACK => Frame::Ack {
            topic: r.topic()?,
            seq: r.u64()?,
        },
        CHANNEL => Frame::Channel {
            topic: r.topic()?,
            channel: r.channel()?,
            created: r.u8()? != 0,
            seq: r.u64()?,
        },
        TOPIC_DELETED => Frame::TopicDeleted(r.topic()?),
        FINS => {
            let topic = r.topic()?;
            let channel = r.channel()?;
            let finished = r.ids()?;
            let count = r.count(MSG_ID_LENGTH + 8)?;
            let mut deferred = Vec::with_capacity(count);
            for _ in 0..count {
                deferred.push((r.id()?, r.i64()?));
            }
            Frame::Fins {
                topic,
                channel,
                finished,
                deferred,
            }
        }
        PING => Frame::Ping { data_id: r.u64()? },
        PONG => Frame::Pong { data_id: r.u64()? },
        _ => Frame::Adopted {
            owner: r.u16()?,
            topic: r.topic()?,
            ids: r.ids()?,
        },
    };
    if r.bytes.has_remaining() {
        return Err(FrameError::Malformed(name));
    }
    Ok(frame)
}

fn put_count(out: &mut BytesMut, count: usize) {
    out.put_u32(u32::try_from(count).unwrap_or(u32::MAX));
}

fn put_str(out: &mut BytesMut, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    put_count(out, bytes.len());
    out.put_slice(bytes);
}

fn put_ids(out: &mut BytesMut, ids: &[MessageId]) {
    put_count(out, ids.len());
    for id in ids {
        out.put_slice(&id.0);
    }
}

/// Reads a payload, every length checked against what is left.
struct Reader {
    bytes: Bytes,
    name: &'static str,
}

impl Reader {
    fn need(&self, n: usize) -> Result<(), FrameError> {
        if self.bytes.remaining() < n {
            return Err(FrameError::Malformed(self.name));
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        self.need(1)?;
        Ok(self.bytes.get_u8())
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        self.need(2)?;
        Ok(self.bytes.get_u16())
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        self.need(8)?;
        Ok(self.bytes.get_u64())
    }

    fn i64(&mut self) -> Result<i64, FrameError> {
        self.need(8)?;
        Ok(self.bytes.get_i64())
    }

    /// A count of items of at least `min_item` bytes each: more than the bytes left
    /// could hold is malformed, so a lying count allocates nothing.
    fn count(&mut self, min_item: usize) -> Result<usize, FrameError> {
        self.need(4)?;
        let count = self.bytes.get_u32() as usize;
        if count.saturating_mul(min_item.max(1)) > self.bytes.remaining() {
            return Err(FrameError::Malformed(self.name));
        }
        Ok(count)
    }

    fn bytes(&mut self) -> Result<Bytes, FrameError> {
        let len = self.count(1)?;
        Ok(self.bytes.split_to(len))
    }

    fn string(&mut self) -> Result<String, FrameError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FrameError::Malformed(self.name))
    }

    fn topic(&mut self) -> Result<String, FrameError> {
        let name = self.string()?;
        if !names::is_valid_topic_name(&name) {
            return Err(FrameError::BadName(name));
        }
        Ok(name)
    }

    fn channel(&mut self) -> Result<String, FrameError> {
        let name = self.string()?;
        if !names::is_valid_channel_name(&name) {
            return Err(FrameError::BadName(name));
        }
        Ok(name)
    }

    fn id(&mut self) -> Result<MessageId, FrameError> {
        self.need(MSG_ID_LENGTH)?;
        let id = MessageId::from_slice(&self.bytes[..MSG_ID_LENGTH])
            .ok_or(FrameError::Malformed(self.name))?;
        self.bytes.advance(MSG_ID_LENGTH);
        Ok(id)
    }

    fn ids(&mut self) -> Result<Vec<MessageId>, FrameError> {
        let count = self.count(MSG_ID_LENGTH)?;
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            ids.push(self.id()?);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests;
