//! A zero-work nsqd: the bench's "ceiling" server (`nsq-bench fake-nsqd`) and its tests'
//! peer. It answers IDENTIFY, SUB, PUB, DPUB and MPUB with `OK`, counts what was published and
//! FINished, ignores NOP, and streams messages under RDY. It has no topics or queues, so
//! what a bench measures against it is the client and the kernel's loopback alone. A
//! first IDENTIFY with `feature_negotiation` gets nsqd's JSON answer and, when asked (and
//! not turned off), the snappy or deflate upgrade with its compressed `OK`.
//!
//! Messages leave as fast as RDY allows: each connection encodes one block of message
//! frames when it starts (one per RDY slot, up to nsqd's max RDY of 2500) and then writes
//! slices of that block, so a message costs no encoding and no copy. Ids repeat from
//! block to block (a bench reader FINs them and nobody checks), and every message carries
//! the time the block was made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::compress;
use crate::env::{BoxStream, Clock, Net, RealClock, RealNet};
use crate::protocol::commands::{decode, ClientState, Command, Decoded, Limits, ParseContext};
use crate::protocol::frame::{
    write_frame, write_message_frame, FrameType, CLOSE_WAIT, MAGIC_V2, OK,
};
use crate::protocol::message::{Message, MessageId};

/// How a [`FakeNsqd`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeNsqdOptions {
    /// Offer snappy and deflate in IDENTIFY (nsqd's `--snappy` and `--deflate`).
    pub compression_enabled: bool,
    /// Body bytes of every streamed message.
    pub message_size: usize,
}

impl Default for FakeNsqdOptions {
    /// Compression on, 200-byte messages (the bench's default `--size`).
    fn default() -> Self {
        FakeNsqdOptions {
            compression_enabled: true,
            message_size: 200,
        }
    }
}

/// A running fake; stops accepting when dropped (open connections run on until their
/// peer closes them).
pub struct FakeNsqd {
    address: String,
    counters: Arc<Counters>,
    accept_task: JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    finished: AtomicU64,
}

/// What a connection's reader tells its writer.
enum Event {
    Respond(&'static [u8]),
    Fail(String),
    Rdy(i64),
    Fin,
    /// CLS: no more messages, then `CLOSE_WAIT`.
    Close,
}

impl FakeNsqd {
    /// Binds `address` (`"host:port"`, port 0 for any) and starts accepting on the current
    /// runtime.
    pub async fn bind(address: &str, options: FakeNsqdOptions) -> std::io::Result<Self> {
        let listener = RealNet.bind_tcp(address).await?;
        let address = listener.local_addr()?.to_string();
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let accept_task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared), options));
            }
        });
        Ok(FakeNsqd {
            address,
            counters,
            accept_task,
        })
    }

    /// Binds 127.0.0.1:0 with 16-byte messages; snappy and deflate are on, as in nsqd.
    #[cfg(test)]
    pub async fn start() -> Self {
        Self::start_with_compression(true).await
    }

    /// Like [`start`](Self::start); with `false`, IDENTIFY answers snappy and deflate off
    /// (nsqd's `--snappy=false --deflate=false`).
    #[cfg(test)]
    pub async fn start_with_compression(compression_enabled: bool) -> Self {
        let options = FakeNsqdOptions {
            compression_enabled,
            message_size: 16,
        };
        Self::bind("127.0.0.1:0", options)
            .await
            .expect("bind 127.0.0.1:0")
    }

    /// The address it listens on, `"127.0.0.1:<port>"`.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Messages accepted by PUB and MPUB so far.
    pub fn published(&self) -> u64 {
        self.counters.published.load(Ordering::Relaxed)
    }

    /// FINs received so far.
    pub fn finished(&self) -> u64 {
        self.counters.finished.load(Ordering::Relaxed)
    }
}

impl Drop for FakeNsqd {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// The fake's parser limits (nsqd's defaults).
const LIMITS: Limits = Limits {
    max_body_size: 5 * 1024 * 1024,
    max_msg_size: 1024 * 1024,
    max_rdy_count: MAX_RDY,
    max_req_timeout_ms: 3_600_000,
};

/// nsqd's default `--max-rdy-count`: also the number of frames in a connection's block.
const MAX_RDY: i64 = 2500;

/// The next command, reading as needed; None at EOF, Err(text) for a parse error.
async fn read_command<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    state: ClientState,
) -> Option<Result<Command, String>> {
    loop {
        let ctx = ParseContext {
            state,
            limits: &LIMITS,
            heartbeats_enabled: true,
            tls_pending: false,
        };
        match decode(buf, &ctx) {
            Ok(Decoded::Complete(command)) => return Some(Ok(command)),
            Ok(Decoded::Incomplete { .. }) => {
                if !matches!(reader.read_buf(buf).await, Ok(n) if n > 0) {
                    return None;
                }
            }
            Err(err) => return Some(Err(err.error.text())),
        }
    }
}

/// The JSON answer to a negotiating IDENTIFY and the compression it turns on, as nsqd
/// (with `--snappy` and `--deflate` as given) decides them; None without negotiation.
fn negotiate(body: &[u8], compression_enabled: bool) -> Option<(String, Option<u32>, bool)> {
    let asked: serde_json::Value = serde_json::from_slice(body).ok()?;
    let flag = |name: &str| asked.get(name).and_then(|v| v.as_bool()) == Some(true);
    if !flag("feature_negotiation") {
        return None;
    }
    let snappy = compression_enabled && flag("snappy");
    let deflate = compression_enabled && flag("deflate");
    let level = asked
        .get("deflate_level")
        .and_then(|v| v.as_u64())
        .filter(|level| (1..=9).contains(level))
        .unwrap_or(6) as u32;
    let answer = serde_json::json!({
        "max_rdy_count": MAX_RDY, "version": "1.3.0", "tls_v1": false,
        "deflate": deflate, "deflate_level": level, "max_deflate_level": 6,
        "snappy": snappy,
    });
    Some((answer.to_string(), deflate.then_some(level), snappy))
}

async fn serve(mut stream: BoxStream, counters: Arc<Counters>, options: FakeNsqdOptions) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while buf.len() < MAGIC_V2.len() {
        if !matches!(stream.read_buf(&mut buf).await, Ok(n) if n > 0) {
            return;
        }
    }
    if &buf[..MAGIC_V2.len()] != MAGIC_V2 {
        // nsqd answers E_BAD_PROTOCOL and closes; the fake just closes.
        return;
    }
    buf.advance(MAGIC_V2.len());
    let mut state = ClientState::Init;
    // A negotiated upgrade swaps the stream, so the first command is handled before the
    // stream is split.
    let first = match read_command(&mut stream, &mut buf, state).await {
        None => return,
        Some(Err(text)) => Some(Event::Fail(text)),
        Some(Ok(Command::Identify { body })) => {
            match negotiate(&body, options.compression_enabled) {
                Some((answer, deflate_level, snappy)) => {
                    let mut out = BytesMut::new();
                    write_frame(&mut out, FrameType::Response, answer.as_bytes());
                    if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
                        return;
                    }
                    if snappy {
                        stream = compress::snappy(stream);
                    } else if let Some(level) = deflate_level {
                        stream = compress::deflate(stream, level);
                    }
                    (snappy || deflate_level.is_some()).then_some(Event::Respond(OK))
                }
                None => Some(Event::Respond(OK)),
            }
        }
        Some(Ok(command)) => apply(command, &mut state, &counters),
    };
    let (mut reader, writer) = tokio::io::split(stream);
    let (events, inbox) = mpsc::unbounded_channel();
    let writer_task = tokio::spawn(write_loop(writer, inbox, options.message_size));
    let mut event = first;
    loop {
        let failed = matches!(event, Some(Event::Fail(_)));
        if let Some(event) = event.take() {
            if events.send(event).is_err() {
                break;
            }
        }
        if failed {
            break;
        }
        event = match read_command(&mut reader, &mut buf, state).await {
            None => break,
            Some(Ok(command)) => apply(command, &mut state, &counters),
            Some(Err(text)) => Some(Event::Fail(text)),
        };
    }
    drop(events);
    let _ = writer_task.await;
}

fn apply(command: Command, state: &mut ClientState, counters: &Counters) -> Option<Event> {
    match command {
        Command::Identify { .. } => Some(Event::Respond(OK)),
        Command::Sub { .. } => {
            *state = ClientState::Subscribed;
            Some(Event::Respond(OK))
        }
        Command::Pub { .. } | Command::Dpub { .. } => {
            counters.published.fetch_add(1, Ordering::Relaxed);
            Some(Event::Respond(OK))
        }
        Command::Mpub { bodies, .. } => {
            counters
                .published
                .fetch_add(bodies.len() as u64, Ordering::Relaxed);
            Some(Event::Respond(OK))
        }
        Command::Rdy { count } => Some(Event::Rdy(count)),
        Command::Fin { .. } => {
            counters.finished.fetch_add(1, Ordering::Relaxed);
            Some(Event::Fin)
        }
        Command::Nop => None,
        Command::Cls => Some(Event::Close),
        other => Some(Event::Fail(format!(
            "E_INVALID fake nsqd does not do {}",
            other.name()
        ))),
    }
}

/// `count` message frames with `size`-byte bodies, back to back, ids 1..=count.
fn encoded_block(count: usize, size: usize, timestamp_ns: i64) -> (Bytes, usize) {
    let body = Bytes::from(vec![0u8; size]);
    let mut block = BytesMut::new();
    for id in 1..=count as u64 {
        let msg = Message::new(MessageId::from_u64(id), timestamp_ns, body.clone());
        write_message_frame(&mut block, &msg);
    }
    let frame_len = block.len() / count.max(1);
    (block.freeze(), frame_len)
}

/// Sends responses, and messages while fewer than RDY are in flight.
async fn write_loop(
    mut writer: WriteHalf<BoxStream>,
    mut inbox: mpsc::UnboundedReceiver<Event>,
    message_size: usize,
) {
    let (block, frame_len) = encoded_block(MAX_RDY as usize, message_size, RealClock.now_ns());
    let block_frames = MAX_RDY;
    let (mut rdy, mut in_flight) = (0i64, 0i64);
    let mut out = BytesMut::new();
    while let Some(first) = inbox.recv().await {
        let mut event = Some(first);
        let mut fatal = false;
        while let Some(current) = event.take() {
            match current {
                Event::Respond(data) => write_frame(&mut out, FrameType::Response, data),
                Event::Fail(text) => {
                    write_frame(&mut out, FrameType::Error, text.as_bytes());
                    fatal = true;
                }
                Event::Rdy(count) => rdy = count,
                Event::Fin => in_flight -= 1,
                Event::Close => {
                    rdy = 0;
                    write_frame(&mut out, FrameType::Response, CLOSE_WAIT);
                }
            }
            event = inbox.try_recv().ok();
        }
        if !out.is_empty() {
            if writer.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if fatal {
            // The error frame goes out (through the compressor, if any) before we close.
            let _ = writer.flush().await;
            return;
        }
        while in_flight < rdy {
            let frames = (rdy - in_flight).min(block_frames);
            let bytes = frames as usize * frame_len;
            if writer.write_all(&block[..bytes]).await.is_err() {
                return;
            }
            in_flight += frames;
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::encoded_block;
    use crate::protocol::frame::{decode_frame, FrameType};
    use crate::protocol::message::{Message, MessageId};

    #[test]
    fn the_block_is_whole_frames_with_counting_ids() {
        let (block, frame_len) = encoded_block(3, 5, 42);
        assert_eq!(frame_len, 8 + 26 + 5);
        assert_eq!(block.len(), 3 * frame_len);
        let mut buf = BytesMut::from(&block[..]);
        for id in 1..=3 {
            let (kind, data) = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
            assert_eq!(kind, FrameType::Message);
            let msg = Message::decode(data).unwrap();
            assert_eq!(msg.id, MessageId::from_u64(id));
            assert_eq!(msg.timestamp_ns, 42);
            assert_eq!(msg.body.len(), 5);
        }
        assert!(buf.is_empty());
    }
}
