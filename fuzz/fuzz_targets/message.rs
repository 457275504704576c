//! Message decoding (the body of a message frame) and client-side frame decoding.
//!
//! Input: bytes 0-1 set the frame size limit, the rest is what the server sent. Each
//! frame decoded is within the limit; each message decoded re-encodes to its bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use nsq::protocol::frame::decode_frame;
use nsq::protocol::{FrameType, Message, MESSAGE_HEADER_LENGTH};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max_frame_size = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let payload = Bytes::copy_from_slice(&data[2..]);
    message(payload.clone());
    let mut src = BytesMut::from(&payload[..]);
    while let Ok(Some((kind, frame))) = decode_frame(&mut src, max_frame_size) {
        assert!(
            frame.len() + 4 <= max_frame_size,
            "frame of {} bytes",
            frame.len()
        );
        if kind == FrameType::Message {
            message(frame);
        }
    }
});

fn message(bytes: Bytes) {
    match Message::decode(bytes.clone()) {
        Ok(msg) => {
            assert_eq!(msg.encoded_len(), bytes.len());
            assert_eq!(msg.body.len(), bytes.len() - MESSAGE_HEADER_LENGTH);
            let mut again = BytesMut::new();
            msg.encode(&mut again);
            assert_eq!(
                &again[..],
                &bytes[..],
                "decode then encode changed the bytes"
            );
        }
        Err(_) => assert!(bytes.len() < MESSAGE_HEADER_LENGTH),
    }
}
