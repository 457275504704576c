//! One V2 connection: buffered command writes and bounded frame reads.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::ClientError;
use super::tls::TlsClient;
use crate::compress::{self, Prefixed};
use crate::env::{BoxStream, Net};
use crate::protocol::commands::Command;
use crate::protocol::frame::{self, FrameType, HEARTBEAT, MAGIC_V2};
use crate::protocol::message::Message;

/// The largest frame accepted unless configured otherwise (16 MiB): well above nsqd's
/// default max-msg-size of 1 MiB, and small enough that a corrupt size cannot make the
/// client allocate without bound.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// Spare room made in the read buffer before each read, so one syscall can bring many
/// small frames.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How a [`Connection`] behaves.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// A frame whose size field exceeds this is a protocol error; the read buffer never
    /// grows past it (plus one read chunk).
    pub max_frame_size: usize,
    /// Answer `_heartbeat_` with `NOP` as soon as it is read. Turn off to test what nsqd
    /// does with a silent client.
    pub answer_heartbeats: bool,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            answer_heartbeats: true,
        }
    }
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Frame type 0: `OK`, `CLOSE_WAIT`, `_heartbeat_` or a JSON document.
    Response(Bytes),
    /// Frame type 1: `"<CODE> <description>"`.
    Error(Bytes),
    /// Frame type 2: a delivered message.
    Message(Message),
}

impl Frame {
    /// True for the `_heartbeat_` response.
    pub fn is_heartbeat(&self) -> bool {
        matches!(self, Frame::Response(data) if data.as_ref() == HEARTBEAT)
    }

    /// A short human description, for errors and logs.
    pub fn describe(&self) -> String {
        match self {
            Frame::Response(data) => format!("response {:?}", String::from_utf8_lossy(data)),
            Frame::Error(data) => format!("error {:?}", String::from_utf8_lossy(data)),
            Frame::Message(msg) => format!("message {}", msg.id),
        }
    }
}

/// A V2 connection to nsqd over any stream.
///
/// Commands are appended to a write buffer by [`send`](Self::send) and go out on
/// [`flush`](Self::flush), so callers can pipeline (IDENTIFY + SUB + RDY in one write, as
/// Go's tools do) or batch FINs. The magic `"  V2"` is queued at construction and leaves
/// with the first flush.
///
/// Reads are cancel-safe: a cancelled [`read_frame`](Self::read_frame) keeps every byte it
/// read, so `select!` loops may race it against timers. At worst a cancelled read drops a
/// heartbeat notification whose `NOP` is still queued.
pub struct Connection {
    stream: BoxStream,
    read_buf: BytesMut,
    write_buf: BytesMut,
    options: ConnectionOptions,
    /// A heartbeat answer is queued but not yet flushed.
    nop_pending: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("buffered_read_bytes", &self.read_buf.len())
            .field("buffered_write_bytes", &self.write_buf.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Wraps a connected stream with the default options.
    pub fn new(stream: BoxStream) -> Self {
        Self::with_options(stream, ConnectionOptions::default())
    }

    /// Wraps a connected stream.
    pub fn with_options(stream: BoxStream, options: ConnectionOptions) -> Self {
        let mut write_buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        write_buf.extend_from_slice(MAGIC_V2);
        Connection {
            stream,
            read_buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            write_buf,
            options,
            nop_pending: false,
        }
    }

    /// Opens a TCP connection to `addr` (`"host:port"`) through `net`.
    pub async fn connect(net: &dyn Net, addr: &str) -> Result<Self, ClientError> {
        Self::connect_with_options(net, addr, ConnectionOptions::default()).await
    }

    /// Opens a TCP connection to `addr` through `net` with the given options.
    pub async fn connect_with_options(
        net: &dyn Net,
        addr: &str,
        options: ConnectionOptions,
    ) -> Result<Self, ClientError> {
        let stream = net.connect_tcp(addr).await?;
        Ok(Self::with_options(stream, options))
    }

    /// The options this connection was made with.
    pub fn options(&self) -> &ConnectionOptions {
        &self.options
    }

    /// Queues a command; nothing is written until [`flush`](Self::flush).
    pub fn send(&mut self, command: &Command) {
        command.encode(&mut self.write_buf);
    }

    /// Queues raw bytes, for tests that need malformed or pre-encoded commands.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.write_buf.extend_from_slice(bytes);
    }

    /// Bytes queued and not yet written.
    pub fn pending_write_bytes(&self) -> usize {
        self.write_buf.len()
    }

    /// Writes everything queued. Cancel-safe: bytes already written are dropped from the
    /// buffer as they go, so a later flush neither repeats nor loses any.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        while !self.write_buf.is_empty() {
            let written = self.stream.write(&self.write_buf).await?;
            if written == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            self.write_buf.advance(written);
        }
        self.stream.flush().await?;
        self.nop_pending = false;
        Ok(())
    }

    /// The next frame, reading from the stream as needed. A heartbeat is answered (when
    /// enabled) before it is returned.
    pub async fn read_frame(&mut self) -> Result<Frame, ClientError> {
        if self.nop_pending {
            self.flush().await?;
        }
        loop {
            if let Some(frame) = self.try_read_frame()? {
                if self.nop_pending {
                    self.flush().await?;
                }
                return Ok(frame);
            }
            self.fill_read_buf().await?;
        }
    }

    /// The next frame if a whole one is already buffered; never touches the stream. A
    /// heartbeat's `NOP` is queued and goes out with the next flush or read.
    pub fn try_read_frame(&mut self) -> Result<Option<Frame>, ClientError> {
        let Some((kind, data)) =
            frame::decode_frame(&mut self.read_buf, self.options.max_frame_size)?
        else {
            return Ok(None);
        };
        let frame = match kind {
            FrameType::Response => Frame::Response(data),
            FrameType::Error => Frame::Error(data),
            FrameType::Message => Frame::Message(Message::decode(data)?),
        };
        if self.options.answer_heartbeats && frame.is_heartbeat() {
            self.send(&Command::Nop);
            self.nop_pending = true;
        }
        Ok(Some(frame))
    }

    /// Waits for the answer to a request already flushed: the first frame that is not a
    /// heartbeat. A response frame's data is returned, an error frame becomes
    /// [`ClientError::Server`], and a message is [`ClientError::UnexpectedFrame`].
    pub async fn read_response(&mut self) -> Result<Bytes, ClientError> {
        loop {
            match self.read_frame().await? {
                frame if frame.is_heartbeat() => continue,
                Frame::Response(data) => return Ok(data),
                Frame::Error(data) => return Err(server_error(&data)),
                frame @ Frame::Message(_) => {
                    return Err(ClientError::UnexpectedFrame {
                        expected: "a response",
                        got: frame.describe(),
                    })
                }
            }
        }
    }

    /// Sends one command, flushes, and waits for its response (see
    /// [`read_response`](Self::read_response)).
    pub async fn request(&mut self, command: &Command) -> Result<Bytes, ClientError> {
        self.send(command);
        self.flush().await?;
        self.read_response().await
    }

    /// Like [`request`](Self::request), but anything other than `OK` is an error.
    pub async fn request_ok(&mut self, command: &Command) -> Result<(), ClientError> {
        expect_response(self.request(command).await?, frame::OK, "OK")
    }

    /// Sends IDENTIFY with `json` as its body and returns the server's answer: `OK`, or
    /// the negotiation JSON when `feature_negotiation` was asked for.
    pub async fn identify(&mut self, json: serde_json::Value) -> Result<Bytes, ClientError> {
        let body = Bytes::from(json.to_string());
        self.request(&Command::Identify { body }).await
    }

    /// Switches the connection to snappy after an IDENTIFY answered `"snappy":true`, and
    /// reads the `OK` nsqd then sends compressed. Bytes already read past the IDENTIFY
    /// answer are the start of the compressed stream and are decoded first; anything
    /// still queued for writing leaves compressed.
    pub async fn upgrade_snappy(&mut self) -> Result<(), ClientError> {
        self.wrap_stream(compress::snappy);
        expect_response(self.read_response().await?, frame::OK, "OK")
    }

    /// Like [`upgrade_snappy`](Self::upgrade_snappy) for `"deflate":true`; our writes
    /// compress at `level`.
    pub async fn upgrade_deflate(&mut self, level: u32) -> Result<(), ClientError> {
        self.wrap_stream(|stream| compress::deflate(stream, level));
        expect_response(self.read_response().await?, frame::OK, "OK")
    }

    /// Runs the TLS handshake after an IDENTIFY answered `"tls_v1":true`, and reads the
    /// `OK` nsqd then sends over TLS. A failed handshake leaves the connection unusable.
    pub async fn upgrade_tls(&mut self, tls: &TlsClient) -> Result<(), ClientError> {
        let plain = self.take_stream();
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let secured = connector.connect(tls.server_name.clone(), plain).await?;
        self.stream = Box::new(secured);
        expect_response(self.read_response().await?, frame::OK, "OK")
    }

    /// Replaces the stream with `wrap(stream)`, handing the read buffer's bytes to the
    /// wrapper as the start of its input.
    fn wrap_stream(&mut self, wrap: impl FnOnce(BoxStream) -> BoxStream) {
        let plain = self.take_stream();
        self.stream = wrap(plain);
    }

    /// Takes the stream out (leaving an empty one) with the read buffer's bytes put back
    /// in front of it, for a wrapper to read first.
    fn take_stream(&mut self) -> BoxStream {
        let plain = std::mem::replace(&mut self.stream, Box::new(tokio::io::empty()));
        let already_read = self.read_buf.split().freeze();
        if already_read.is_empty() {
            plain
        } else {
            Box::new(Prefixed::new(already_read, plain))
        }
    }

    /// Flushes what is queued and shuts the write side down (the server sees EOF).
    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        self.flush().await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    /// Reads once from the stream into the read buffer; EOF is [`ClientError::Closed`].
    async fn fill_read_buf(&mut self) -> Result<(), ClientError> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK_BYTES / 2 {
            self.read_buf.reserve(READ_CHUNK_BYTES);
        }
        let read = self.stream.read_buf(&mut self.read_buf).await?;
        if read == 0 {
            return Err(ClientError::Closed);
        }
        Ok(())
    }
}

/// An error frame's text as a [`ClientError::Server`].
pub(super) fn server_error(data: &[u8]) -> ClientError {
    ClientError::Server {
        code_and_text: String::from_utf8_lossy(data).into_owned(),
    }
}

/// Checks a response frame's data against the one answer the request allows.
pub(super) fn expect_response(
    data: Bytes,
    wanted: &[u8],
    expected: &'static str,
) -> Result<(), ClientError> {
    if data.as_ref() == wanted {
        Ok(())
    } else {
        Err(ClientError::UnexpectedFrame {
            expected,
            got: Frame::Response(data).describe(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use serde_json::json;

    use super::{Connection, ConnectionOptions, Frame};
    use crate::client::test_server::{pair, pair_with, test_message};
    use crate::client::ClientError;
    use crate::protocol::commands::Command;
    use crate::protocol::frame::FrameError;

    #[tokio::test]
    async fn magic_and_pipelined_commands_leave_in_one_flush() {
        let (mut conn, mut server) = pair();
        conn.send(&Command::Nop);
        conn.send(&Command::Rdy { count: 3 });
        assert_eq!(conn.pending_write_bytes(), 4 + 4 + 6);
        conn.flush().await.unwrap();
        assert_eq!(conn.pending_write_bytes(), 0);
        server.expect(b"  V2NOP\nRDY 3\n").await;
    }

    #[tokio::test]
    async fn every_frame_type_is_decoded() {
        let (mut conn, mut server) = pair();
        let msg = test_message(7, b"hello");
        server.send_response(b"OK").await;
        server.send_error(b"E_INVALID invalid command X").await;
        server.send_message(&msg).await;
        assert_eq!(
            conn.read_frame().await.unwrap(),
            Frame::Response(Bytes::from_static(b"OK"))
        );
        assert_eq!(
            conn.read_frame().await.unwrap(),
            Frame::Error(Bytes::from_static(b"E_INVALID invalid command X"))
        );
        assert_eq!(conn.read_frame().await.unwrap(), Frame::Message(msg));
    }

    #[tokio::test]
    async fn frames_split_into_tiny_pieces_are_reassembled() {
        let (mut conn, mut server) = pair_with(3, ConnectionOptions::default());
        let msg = test_message(1, &[b'x'; 100]);
        let writer = tokio::spawn(async move {
            server.send_message(&msg).await;
            server.send_response(b"CLOSE_WAIT").await;
            (server, msg)
        });
        let first = conn.read_frame().await.unwrap();
        let second = conn.read_frame().await.unwrap();
        let (_server, msg) = writer.await.unwrap();
        assert_eq!(first, Frame::Message(msg));
        assert_eq!(second, Frame::Response(Bytes::from_static(b"CLOSE_WAIT")));
    }

    #[tokio::test]
    async fn heartbeat_is_returned_and_answered_with_nop() {
        let (mut conn, mut server) = pair();
        conn.flush().await.unwrap();
        server.expect(b"  V2").await;
        server.send_response(b"_heartbeat_").await;
        assert!(conn.read_frame().await.unwrap().is_heartbeat());
        server.expect(b"NOP\n").await;
    }

    #[tokio::test]
    async fn heartbeat_is_not_answered_when_disabled() {
        let options = ConnectionOptions {
            answer_heartbeats: false,
            ..ConnectionOptions::default()
        };
        let (mut conn, mut server) = pair_with(1024, options);
        server.send_response(b"_heartbeat_").await;
        assert!(conn.read_frame().await.unwrap().is_heartbeat());
        conn.send(&Command::Cls);
        conn.flush().await.unwrap();
        server.expect(b"  V2CLS\n").await;
    }

    #[tokio::test]
    async fn frame_larger_than_the_limit_is_rejected_before_reading_it() {
        let options = ConnectionOptions {
            max_frame_size: 100,
            ..ConnectionOptions::default()
        };
        let (mut conn, mut server) = pair_with(1024, options);
        server.send_raw(&[0, 0, 0, 101, 0, 0, 0, 0]).await;
        let err = conn.read_frame().await.unwrap_err();
        assert!(
            matches!(err, ClientError::Frame(FrameError::BadSize(101))),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn unknown_frame_type_and_short_message_are_errors() {
        let (mut conn, mut server) = pair();
        server.send_raw(&[0, 0, 0, 4, 0, 0, 0, 9]).await;
        let err = conn.read_frame().await.unwrap_err();
        assert!(
            matches!(err, ClientError::Frame(FrameError::BadType(9))),
            "{err:?}"
        );

        let (mut conn, mut server) = pair();
        server.send_raw(&[0, 0, 0, 6, 0, 0, 0, 2, 1, 2]).await;
        let err = conn.read_frame().await.unwrap_err();
        assert!(matches!(err, ClientError::Message(_)), "{err:?}");
    }

    #[tokio::test]
    async fn eof_is_closed_even_in_the_middle_of_a_frame() {
        let (mut conn, server) = pair();
        drop(server);
        assert!(matches!(conn.read_frame().await, Err(ClientError::Closed)));

        let (mut conn, mut server) = pair();
        server.send_raw(&[0, 0, 0, 6, 0, 0]).await;
        drop(server);
        assert!(matches!(conn.read_frame().await, Err(ClientError::Closed)));
    }

    /// The timeout must fire: the frame cannot complete before the test sends the rest.
    #[tokio::test]
    async fn a_cancelled_read_keeps_the_partial_frame() {
        let (mut conn, mut server) = pair();
        server.send_raw(&[0, 0, 0, 6, 0, 0, 0]).await;
        let timed_out = tokio::time::timeout(Duration::from_millis(10), conn.read_frame()).await;
        assert!(timed_out.is_err());
        server.send_raw(&[0, b'O', b'K']).await;
        assert_eq!(
            conn.read_frame().await.unwrap(),
            Frame::Response(Bytes::from_static(b"OK"))
        );
    }

    #[tokio::test]
    async fn identify_returns_the_negotiation_json() {
        let (mut conn, mut server) = pair();
        let answer = br#"{"max_rdy_count":2500,"version":"1.3.0"}"#;
        let script = tokio::spawn(async move {
            let body = br#"{"feature_negotiation":true}"#;
            let mut expected = b"  V2IDENTIFY\n".to_vec();
            expected.extend_from_slice(&(body.len() as u32).to_be_bytes());
            expected.extend_from_slice(body);
            server.expect(&expected).await;
            server.send_response(b"_heartbeat_").await;
            server.send_response(answer).await;
            server.expect(b"NOP\n").await;
        });
        let got = conn
            .identify(json!({"feature_negotiation": true}))
            .await
            .unwrap();
        assert_eq!(got.as_ref(), answer);
        conn.flush().await.unwrap();
        script.await.unwrap();
    }

    #[tokio::test]
    async fn request_ok_turns_an_error_frame_into_a_server_error() {
        let (mut conn, mut server) = pair();
        server
            .send_error(b"E_BAD_BODY IDENTIFY failed to decode JSON body")
            .await;
        let err = conn.request_ok(&Command::Nop).await.unwrap_err();
        assert_eq!(err.server_code(), Some("E_BAD_BODY"));
        assert_eq!(
            err.to_string(),
            "server error: E_BAD_BODY IDENTIFY failed to decode JSON body"
        );
    }

    #[tokio::test]
    async fn request_ok_rejects_another_response() {
        let (mut conn, mut server) = pair();
        server.send_response(b"CLOSE_WAIT").await;
        let err = conn.request_ok(&Command::Nop).await.unwrap_err();
        assert!(
            matches!(err, ClientError::UnexpectedFrame { expected: "OK", .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn connect_goes_through_the_net_seam() {
        let net = crate::env::RealNet;
        let listener = crate::env::Net::bind_tcp(&net, "127.0.0.1:0")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut conn = Connection::connect(&net, &addr).await.unwrap();
        let (mut accepted, _) = listener.accept().await.unwrap();
        conn.shutdown().await.unwrap();
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut accepted, &mut got)
            .await
            .unwrap();
        assert_eq!(got, b"  V2");
    }
}
