//! A zero-work nsqd for the bench's tests: it answers IDENTIFY, SUB, PUB and MPUB with
//! `OK`, counts what was published and FINished, and streams messages under RDY. It has no
//! topics or queues, so the tests exercise the bench's loops and nothing else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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
    /// Binds 127.0.0.1:0 and starts accepting.
    pub async fn start() -> Self {
        let listener = RealNet.bind_tcp("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let accept_task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared)));
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

async fn serve(stream: BoxStream, counters: Arc<Counters>) {
    let (mut reader, writer) = tokio::io::split(stream);
    let (events, inbox) = mpsc::unbounded_channel();
    let writer_task = tokio::spawn(write_loop(writer, inbox));
    let limits = Limits {
        max_body_size: 5 * 1024 * 1024,
        max_msg_size: 1024 * 1024,
        max_rdy_count: 2500,
        max_req_timeout_ms: 3_600_000,
    };
    let mut state = ClientState::Init;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while buf.len() < MAGIC_V2.len() {
        if !matches!(reader.read_buf(&mut buf).await, Ok(n) if n > 0) {
            return;
        }
    }
    assert_eq!(&buf[..4], MAGIC_V2);
    buf.advance(4);
    loop {
        let ctx = ParseContext {
            state,
            limits: &limits,
            heartbeats_enabled: true,
            tls_pending: false,
        };
        let event = match decode(&mut buf, &ctx) {
            Ok(Decoded::Complete(command)) => apply(command, &mut state, &counters),
            Ok(Decoded::Incomplete { .. }) => {
                if !matches!(reader.read_buf(&mut buf).await, Ok(n) if n > 0) {
                    break;
                }
                continue;
            }
            Err(err) => Some(Event::Fail(err.error.text())),
        };
        let failed = matches!(event, Some(Event::Fail(_)));
        if let Some(event) = event {
            if events.send(event).is_err() {
                break;
            }
        }
        if failed {
            break;
        }
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
        if writer.write_all(&out).await.is_err() || fatal {
            return;
        }
        out.clear();
    }
}
