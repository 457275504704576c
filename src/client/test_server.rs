//! The server side of an in-memory pipe, scripted by unit tests (no nsqd needed).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connection::{Connection, ConnectionOptions};
use crate::env::BoxStream;
use crate::protocol::frame::{write_frame, write_message_frame, FrameType};
use crate::protocol::message::{Message, MessageId};

/// A scripted peer: tests assert the exact bytes the client wrote and feed it frames.
pub struct TestServer {
    stream: BoxStream,
}

/// A client connection and its scripted server over a 64 KiB pipe.
pub fn pair() -> (Connection, TestServer) {
    pair_with(64 * 1024, ConnectionOptions::default())
}

/// A client connection and its scripted server over a pipe of `pipe_bytes` capacity
/// (small values force partial reads and writes).
pub fn pair_with(pipe_bytes: usize, options: ConnectionOptions) -> (Connection, TestServer) {
    let (client, server) = tokio::io::duplex(pipe_bytes);
    let conn = Connection::with_options(Box::new(client), options);
    (
        conn,
        TestServer {
            stream: Box::new(server),
        },
    )
}

/// A message as nsqd would deliver it for the first time.
pub fn test_message(id: u64, body: &[u8]) -> Message {
    let mut msg = Message::new(
        MessageId::from_u64(id),
        1_700_000_000_000_000_000,
        Bytes::copy_from_slice(body),
    );
    msg.attempts = 1;
    msg
}

impl TestServer {
    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub async fn expect(&mut self, expected: &[u8]) {
        let mut got = vec![0; expected.len()];
        self.stream.read_exact(&mut got).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// Writes raw bytes and flushes them (a compressed stream sends nothing before).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Switches to a compressed stream, as nsqd does after answering IDENTIFY.
    pub fn upgrade(&mut self, wrap: fn(BoxStream) -> BoxStream) {
        let plain = std::mem::replace(&mut self.stream, Box::new(tokio::io::empty()));
        self.stream = wrap(plain);
    }

    /// Writes a response frame.
    pub async fn send_response(&mut self, data: &[u8]) {
        self.send_frame(FrameType::Response, data).await;
    }

    /// Writes an error frame.
    pub async fn send_error(&mut self, text: &[u8]) {
        self.send_frame(FrameType::Error, text).await;
    }

    /// Writes a message frame.
    pub async fn send_message(&mut self, msg: &Message) {
        let mut buf = BytesMut::new();
        write_message_frame(&mut buf, msg);
        self.send_raw(&buf).await;
    }

    async fn send_frame(&mut self, kind: FrameType, data: &[u8]) {
        let mut buf = BytesMut::new();
        write_frame(&mut buf, kind, data);
        self.send_raw(&buf).await;
    }
}
