//! Replication frames from a peer (`docs/replication.md`, "Protocol").
//!
//! Input: bytes 0-1 set the frame size limit; byte 2 picks what the rest is: the raw
//! bytes the peer sent (even), or a frame's type and payload, given a right size and
//! checksum so that the payload parser is reached (odd). Decoding never panics; each
//! frame decoded is within the limit and re-encodes to a frame that decodes to itself.
#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use nsq::nsqd::replication::frame::Frame;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max_size = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let rest = &data[3..];
    let mut wire = BytesMut::new();
    if data[2] % 2 == 0 {
        wire.put_slice(rest);
    } else {
        wire.put_u32(u32::try_from(rest.len() + 4).unwrap_or(u32::MAX));
        wire.put_slice(rest);
        wire.put_u32(crc32c::crc32c(rest));
    }
    loop {
        let before = wire.len();
        match Frame::decode(&mut wire, max_size) {
            Ok(Some(frame)) => {
                assert!(before - wire.len() <= max_size + 4, "frame within the limit");
                let mut again = BytesMut::new();
                frame.encode(&mut again);
                let back = Frame::decode(&mut again, usize::MAX).expect("re-encoded frame");
                assert_eq!(back, Some(frame), "round trip");
                assert!(again.is_empty());
            }
            Ok(None) | Err(_) => break,
        }
    }
});
