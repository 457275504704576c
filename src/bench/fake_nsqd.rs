//! A zero-work nsqd for the bench's tests: it answers IDENTIFY, SUB, PUB and MPUB with
//! `OK`, counts what was published and FINished, and streams messages under RDY. It has no
//! topics or queues, so the tests exercise the bench's loops and nothing else. A first
//! IDENTIFY with `feature_negotiation` gets nsqd's JSON answer and, when asked (and not
//! turned off), the snappy or deflate upgrade with its compressed `OK`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::compress;
use crate::env::{BoxStream, Net, RealNet};
use crate::protocol::commands::{decode, ClientState, Command, Decoded, Limits, ParseContext};
use crate::protocol::frame::{write_frame, write_message_frame, FrameType, MAGIC_V2, OK};
use crate::protocol::message::{Message, MessageId};

/// A running fake on 127.0.0.1; stops when dropped.
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
}

impl FakeNsqd {
    /// Binds 127.0.0.1:0 and starts accepting; snappy and deflate are on, as in nsqd.
    pub async fn start() -> Self {
        Self::start_with_compression(true).await
    }

    /// Like [`start`](Self::start); with `false`, IDENTIFY answers snappy and deflate off
    /// (nsqd's `--snappy=false --deflate=false`).
    pub async fn start_with_compression(compression_enabled: bool) -> Self {
        let listener = RealNet.bind_tcp("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let accept_task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared), compression_enabled));
            }
        });
        FakeNsqd {
            address,
            counters,
            accept_task,
        }
    }

    /// `"127.0.0.1:<port>"`.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Messages accepted by PUB and MPUB so far.
    pub fn published(&self) -> u64 {
        self.counters.published.load(Ordering::SeqCst)
    }

    /// FINs received so far.
    pub fn finished(&self) -> u64 {
        self.counters.finished.load(Ordering::SeqCst)
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
    max_rdy_count: 2500,
    max_req_timeout_ms: 3_600_000,
};

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
        "max_rdy_count": 2500, "version": "1.3.0", "tls_v1": false,
        "deflate": deflate, "deflate_level": level, "max_deflate_level": 6,
        "snappy": snappy,
    });
    Some((answer.to_string(), deflate.then_some(level), snappy))
}

async fn serve(mut stream: BoxStream, counters: Arc<Counters>, compression_enabled: bool) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while buf.len() < MAGIC_V2.len() {
        if !matches!(stream.read_buf(&mut buf).await, Ok(n) if n > 0) {
            return;
        }
    }
    assert_eq!(&buf[..4], MAGIC_V2);
    buf.advance(4);
    let mut state = ClientState::Init;
    // A negotiated upgrade swaps the stream, so the first command is handled before the
    // stream is split.
    let first = match read_command(&mut stream, &mut buf, state).await {
        None => return,
        Some(Err(text)) => Some(Event::Fail(text)),
        Some(Ok(Command::Identify { body })) => match negotiate(&body, compression_enabled) {
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
        },
        Some(Ok(command)) => apply(command, &mut state, &counters),
    };
    let (mut reader, writer) = tokio::io::split(stream);
    let (events, inbox) = mpsc::unbounded_channel();
    let writer_task = tokio::spawn(write_loop(writer, inbox));
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
        Command::Pub { .. } => {
            counters.published.fetch_add(1, Ordering::SeqCst);
            Some(Event::Respond(OK))
        }
        Command::Mpub { bodies, .. } => {
            counters
                .published
                .fetch_add(bodies.len() as u64, Ordering::SeqCst);
            Some(Event::Respond(OK))
        }
        Command::Rdy { count } => Some(Event::Rdy(count)),
        Command::Fin { .. } => {
            counters.finished.fetch_add(1, Ordering::SeqCst);
            Some(Event::Fin)
        }
        Command::Nop => None,
        other => Some(Event::Fail(format!(
            "E_INVALID fake nsqd does not do {}",
            other.name()
        ))),
    }
}

/// Sends responses, and messages while fewer than RDY are in flight.
async fn write_loop(mut writer: WriteHalf<BoxStream>, mut inbox: mpsc::UnboundedReceiver<Event>) {
    let (mut rdy, mut in_flight, mut next_id) = (0i64, 0i64, 0u64);
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
            }
            event = inbox.try_recv().ok();
        }
        while !fatal && in_flight < rdy {
            next_id += 1;
            let msg = Message::new(
                MessageId::from_u64(next_id),
                0,
                Bytes::from_static(&[0; 16]),
            );
            write_message_frame(&mut out, &msg);
            in_flight += 1;
        }
        let sent = writer.write_all(&out).await.is_ok() && writer.flush().await.is_ok();
        if !sent || fatal {
            return;
        }
        out.clear();
    }
}
