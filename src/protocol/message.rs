//! Message ids and the 26-byte message header nsqd puts in front of every body, both in
//! message frames and in the disk queue.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes in a message id on the wire.
pub const MSG_ID_LENGTH: usize = 16;
/// Bytes before the body: timestamp (8) + attempts (2) + id (16).
pub const MESSAGE_HEADER_LENGTH: usize = 26;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Every byte as its two lowercase hex digits: an id is 8 look-ups, one per byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX_DIGITS[byte >> 4], HEX_DIGITS[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// A message id: 16 raw bytes as on the wire. nsqd makes them 16 lowercase hex digits,
/// but a client may echo any 16 bytes back in FIN/REQ/TOUCH, so no format is assumed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; MSG_ID_LENGTH]);

impl MessageId {
    /// The id for a GUID: its 64 bits as 16 lowercase hex digits, most significant first.
    pub fn from_u64(v: u64) -> Self {
        let mut id = [0u8; MSG_ID_LENGTH];
        for (pair, byte) in id.chunks_exact_mut(2).zip(v.to_be_bytes()) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
        }
        MessageId(id)
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; MSG_ID_LENGTH] {
        &self.0
    }

    /// The id in `b`, or None unless `b` is exactly 16 bytes long.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; MSG_ID_LENGTH]>::try_from(b).ok().map(MessageId)
    }
}

impl std::fmt::Display for MessageId {
    /// Like Go's `%s` of a MessageID: the bytes as text (invalid UTF-8 replaced).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl std::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageId({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// Why a stored or received message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Fewer bytes than the fixed header.
    #[error("invalid message buffer size ({0})")]
    TooShort(usize),
}

/// One message: what a topic stores, a channel queues and a client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    /// Nanoseconds since the Unix epoch when the message was created.
    pub timestamp_ns: i64,
    /// Deliveries so far; nsqd increments it before each send, so a client sees 1 first.
    pub attempts: u16,
    /// Shared, never copied: every channel of a topic holds the same bytes.
    pub body: Bytes,
}

impl Message {
    /// A new message that has not been delivered yet (attempts 0).
    pub fn new(id: MessageId, timestamp_ns: i64, body: Bytes) -> Self {
        Message {
            id,
            timestamp_ns,
            attempts: 0,
            body,
        }
    }

    /// Bytes [`Message::encode`] writes: the header plus the body.
    pub fn encoded_len(&self) -> usize {
        MESSAGE_HEADER_LENGTH + self.body.len()
    }

    /// The 26-byte header: timestamp (i64 BE), attempts (u16 BE), id (16 bytes).
    pub fn header(&self) -> [u8; MESSAGE_HEADER_LENGTH] {
        let mut header = [0u8; MESSAGE_HEADER_LENGTH];
        header[..8].copy_from_slice(&self.timestamp_ns.to_be_bytes());
        header[8..10].copy_from_slice(&self.attempts.to_be_bytes());
        header[10..].copy_from_slice(&self.id.0);
        header
    }

    /// Appends the header and the body.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_slice(&self.header());
        dst.put_slice(&self.body);
    }

    /// Decodes what [`Message::encode`] wrote; the body is a slice of `src`, not a copy.
    pub fn decode(mut src: Bytes) -> Result<Message, MessageError> {
        if src.len() < MESSAGE_HEADER_LENGTH {
            return Err(MessageError::TooShort(src.len()));
        }
        let timestamp_ns = src.get_i64();
        let attempts = src.get_u16();
        let mut id = [0u8; MSG_ID_LENGTH];
        src.copy_to_slice(&mut id);
        Ok(Message {
            id: MessageId(id),
            timestamp_ns,
            attempts,
            body: src,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_from_u64_is_lowercase_hex() {
        assert_eq!(
            MessageId::from_u64(0x18a8c28d96e69000).to_string(),
            "18a8c28d96e69000"
        );
        assert_eq!(MessageId::from_u64(0).to_string(), "0000000000000000");
        assert_eq!(
            MessageId::from_u64(u64::MAX).to_string(),
            "ffffffffffffffff"
        );
    }

    #[test]
    fn id_from_slice_needs_16_bytes() {
        assert!(MessageId::from_slice(b"abc").is_none());
        assert!(MessageId::from_slice(b"0000000000000000x").is_none());
        let id = MessageId::from_slice(b"0123456789abcdef").unwrap();
        assert_eq!(id.as_bytes(), b"0123456789abcdef");
    }

    #[test]
    fn encode_layout_matches_the_golden_frame() {
        let id = MessageId(*b"18a8c28d96e69000");
        let mut msg = Message::new(id, 0x18eb79738ab61316, Bytes::from_static(b"hello"));
        msg.attempts = 1;
        let mut buf = BytesMut::new();
        msg.encode(&mut buf);
        assert_eq!(buf.len(), msg.encoded_len());
        assert_eq!(&buf[..8], &0x18eb79738ab61316i64.to_be_bytes());
        assert_eq!(&buf[8..10], b"\x00\x01");
        assert_eq!(&buf[10..26], b"18a8c28d96e69000");
        assert_eq!(&buf[26..], b"hello");
    }

    #[test]
    fn decode_round_trips_and_shares_the_body() {
        let mut msg = Message::new(MessageId::from_u64(7), -5, Bytes::from_static(b"body"));
        msg.attempts = 65535;
        let mut buf = BytesMut::new();
        msg.encode(&mut buf);
        let frozen = buf.freeze();
        let decoded = Message::decode(frozen.clone()).unwrap();
        assert_eq!(decoded, msg);
        assert_eq!(decoded.body.as_ptr(), frozen[26..].as_ptr());
    }

    #[test]
    fn decode_rejects_short_buffers() {
        assert_eq!(
            Message::decode(Bytes::from_static(&[0u8; 25])),
            Err(MessageError::TooShort(25))
        );
        let empty_body = Message::decode(Bytes::from_static(&[b'0'; 26])).unwrap();
        assert!(empty_body.body.is_empty());
    }
}
