//! Server-to-client frames: `[i32 BE size][i32 BE type][data]`, size = len(data) + 4.
//! Encoders for the server, and a decoder for our own client.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::ProtocolError;
use super::message::Message;

/// The kind of a server frame.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    Response = 0,
    Error = 1,
    Message = 2,
}

impl FrameType {
    /// The frame type for a wire value, None for anything else.
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            0 => Some(FrameType::Response),
            1 => Some(FrameType::Error),
            2 => Some(FrameType::Message),
            _ => None,
        }
    }
}

/// Sent every heartbeat interval; a client answers with NOP.
pub const HEARTBEAT: &[u8] = b"_heartbeat_";
/// The plain success answer.
pub const OK: &[u8] = b"OK";
/// The answer to CLS.
pub const CLOSE_WAIT: &[u8] = b"CLOSE_WAIT";
/// The 4 bytes a V2 client sends first.
pub const MAGIC_V2: &[u8; 4] = b"  V2";

/// Bytes of the size and type fields in front of a frame's data.
const FRAME_HEADER_LENGTH: usize = 8;

/// Appends one frame: `[i32 BE size=len+4][i32 BE type][data]`.
pub fn write_frame(dst: &mut BytesMut, kind: FrameType, data: &[u8]) {
    dst.reserve(FRAME_HEADER_LENGTH + data.len());
    dst.put_i32((data.len() + 4) as i32);
    dst.put_i32(kind as i32);
    dst.put_slice(data);
}

/// Appends an error frame carrying `err.text()`.
pub fn write_error(dst: &mut BytesMut, err: &ProtocolError) {
    write_frame(dst, FrameType::Error, err.text().as_bytes());
}

/// Appends a message frame (type 2): the 26-byte header, then the body.
pub fn write_message_frame(dst: &mut BytesMut, msg: &Message) {
    let len = msg.encoded_len();
    dst.reserve(FRAME_HEADER_LENGTH + len);
    dst.put_i32((len + 4) as i32);
    dst.put_i32(FrameType::Message as i32);
    msg.encode(dst);
}

/// Why a server frame could not be decoded; the connection is unusable after it.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} out of range")]
    BadSize(i64),
    #[error("unknown frame type {0}")]
    BadType(i32),
}

/// Client side: one server frame off the front of `src` (consumed), None if incomplete.
/// Err if the size is < 4 or > max_frame_size (never allocate past it).
pub fn decode_frame(
    src: &mut BytesMut,
    max_frame_size: usize,
) -> Result<Option<(FrameType, Bytes)>, FrameError> {
    if src.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
    if size < 4 || size as u64 > max_frame_size as u64 {
        return Err(FrameError::BadSize(i64::from(size)));
    }
    if src.len() < FRAME_HEADER_LENGTH {
        return Ok(None);
    }
    let raw_type = i32::from_be_bytes([src[4], src[5], src[6], src[7]]);
    let kind = FrameType::from_i32(raw_type).ok_or(FrameError::BadType(raw_type))?;
    let total = 4 + size as usize;
    if src.len() < total {
        return Ok(None);
    }
    src.advance(FRAME_HEADER_LENGTH);
    let data = src.split_to(total - FRAME_HEADER_LENGTH).freeze();
    Ok(Some((kind, data)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error::ErrorCode;
    use crate::protocol::message::MessageId;

    #[test]
    fn ok_frame_matches_golden_bytes() {
        let mut buf = BytesMut::new();
        write_frame(&mut buf, FrameType::Response, OK);
        assert_eq!(&buf[..], b"\x00\x00\x00\x06\x00\x00\x00\x00OK");
    }

    #[test]
    fn heartbeat_and_close_wait_frames_match_golden_bytes() {
        let mut buf = BytesMut::new();
        write_frame(&mut buf, FrameType::Response, HEARTBEAT);
        assert_eq!(&buf[..], b"\x00\x00\x00\x0f\x00\x00\x00\x00_heartbeat_");
        buf.clear();
        write_frame(&mut buf, FrameType::Response, CLOSE_WAIT);
        assert_eq!(&buf[..], b"\x00\x00\x00\x0e\x00\x00\x00\x00CLOSE_WAIT");
    }

    #[test]
    fn error_frames_match_golden_bytes() {
        let mut buf = BytesMut::new();
        write_error(&mut buf, &ProtocolError::new(ErrorCode::BadProtocol, ""));
        assert_eq!(&buf[..], b"\x00\x00\x00\x12\x00\x00\x00\x01E_BAD_PROTOCOL");
        buf.clear();
        let err = ProtocolError::new(ErrorCode::Invalid, "invalid command FOO");
        write_error(&mut buf, &err);
        assert_eq!(
            &buf[..],
            b"\x00\x00\x00!\x00\x00\x00\x01E_INVALID invalid command FOO"
        );
    }

    #[test]
    fn message_frame_matches_golden_layout() {
        let mut msg = Message::new(
            MessageId(*b"18a8c28d96e69000"),
            0x18eb79738ab61316,
            Bytes::from_static(b"hello"),
        );
        msg.attempts = 1;
        let mut buf = BytesMut::new();
        write_message_frame(&mut buf, &msg);
        assert_eq!(&buf[..8], b"\x00\x00\x00#\x00\x00\x00\x02");
        assert_eq!(&buf[8..16], &0x18eb79738ab61316i64.to_be_bytes());
        assert_eq!(&buf[16..], b"\x00\x0118a8c28d96e69000hello");
    }

    #[test]
    fn decode_frame_waits_then_consumes_one_frame() {
        let mut wire = BytesMut::new();
        write_frame(&mut wire, FrameType::Response, OK);
        write_frame(&mut wire, FrameType::Error, b"E_INVALID x");
        let full = wire.clone();
        for cut in 0..10 {
            let mut part = BytesMut::from(&full[..cut]);
            assert!(decode_frame(&mut part, 1024).unwrap().is_none());
            assert_eq!(part.len(), cut, "nothing consumed while incomplete");
        }
        let (kind, data) = decode_frame(&mut wire, 1024).unwrap().unwrap();
        assert_eq!((kind, &data[..]), (FrameType::Response, OK));
        let (kind, data) = decode_frame(&mut wire, 1024).unwrap().unwrap();
        assert_eq!((kind, &data[..]), (FrameType::Error, &b"E_INVALID x"[..]));
        assert!(wire.is_empty());
        assert!(decode_frame(&mut wire, 1024).unwrap().is_none());
    }

    #[test]
    fn decode_frame_rejects_bad_sizes_and_types() {
        let mut small = BytesMut::from(&b"\x00\x00\x00\x03"[..]);
        assert!(matches!(
            decode_frame(&mut small, 1024),
            Err(FrameError::BadSize(3))
        ));
        let mut negative = BytesMut::from(&b"\xff\xff\xff\xff"[..]);
        assert!(matches!(
            decode_frame(&mut negative, 1024),
            Err(FrameError::BadSize(-1))
        ));
        let mut big = BytesMut::from(&b"\x00\x00\x04\x01"[..]);
        assert!(matches!(
            decode_frame(&mut big, 1024),
            Err(FrameError::BadSize(1025))
        ));
        let mut bad_type = BytesMut::from(&b"\x00\x00\x00\x04\x00\x00\x00\x03"[..]);
        assert!(matches!(
            decode_frame(&mut bad_type, 1024),
            Err(FrameError::BadType(3))
        ));
    }
}
