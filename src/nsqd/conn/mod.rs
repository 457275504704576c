//! One V2 client connection: the magic, then a command reader and a message pump running
//! side by side.
//!
//! The reader (this file) parses commands and executes them ([`handler`]); everything it
//! wants written goes in order through a bounded queue to the pump ([`pump`]), which owns
//! the write half, interleaves responses with messages under RDY, and flushes when
//! nothing more is ready.

mod handler;
mod pump;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::channel::ChannelRef;
use super::client::{ClientRef, ClientSettings, ClientShared};
use super::topic::TopicRef;
use super::NsqdInner;
use crate::env::BoxStream;
use crate::protocol::{
    self, frame, Decoded, FrameType, MessageId, ParseContext, ParseError, ProtocolError,
};

/// Bytes asked of the socket per read, at most beyond what a command needs: reached by
/// doubling from [`READ_CHUNK_MIN`] while each read fills the buffer, so a busy client
/// is read in large gulps and an idle one costs a small buffer.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bytes asked of the socket per read when a client starts or comes back from quiet.
const READ_CHUNK_MIN: usize = 512;
/// A connection whose client sends nothing for this long between commands gives its
/// read buffer back; the next command is read into a fresh one.
const QUIET_AFTER: Duration = Duration::from_secs(1);
/// Frames the reader may queue for the pump before it waits (back-pressure on a client
/// that pipelines commands but never reads answers).
const PUMP_QUEUE_DEPTH: usize = 256;

/// What the reader asks the pump to do, in order. Kept no bigger than a frame: the
/// queue allocates room for a block of these per connection, busy or idle.
pub(crate) enum ToPump {
    /// Write this frame and flush.
    Frame(Bytes),
    /// Write this error frame, flush and close the connection.
    Fatal(Bytes),
    /// The client subscribed: write SUB's `OK`, then start delivering from this channel.
    Subscribed(TopicRef, ChannelRef),
    /// IDENTIFY changed the settings (heartbeat, buffering, sampling, msg timeout).
    SettingsChanged,
    /// IDENTIFY negotiated a stream upgrade.
    Upgrade(Box<UpgradeHandOff>),
}

/// A stream upgrade as the pump sees it: write and flush `answer` in the clear, hand the
/// write half over, and wait for the upgraded one (`Err`: closing).
pub(crate) struct UpgradeHandOff {
    answer: Bytes,
    writer_out: oneshot::Sender<WriteHalf<BoxStream>>,
    writer_in: oneshot::Receiver<WriteHalf<BoxStream>>,
}

/// How a wait for more bytes ended.
enum ReadMore {
    /// Bytes arrived.
    Read,
    /// Bytes arrived after the client was quiet and its buffer was given back.
    AfterQuiet,
    /// The connection is done (EOF, error, read deadline, close requested).
    Done,
}

/// What the reader does after a command.
enum Next {
    /// Read the next command.
    Continue,
    /// Close the connection.
    Close,
    /// Send this IDENTIFY answer, then upgrade the stream.
    Upgrade(Bytes, upgrade::Upgrades),
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(nsqd: Arc<NsqdInner>, mut stream: BoxStream, peer: SocketAddr) {
    let mut magic = [0u8; 4];
    // A connection that has not said which protocol it speaks holds up no exit.
    let read = tokio::select! {
        _ = nsqd.shutdown.cancelled() => return,
        read = tokio::time::timeout(nsqd.opts.client_timeout, stream.read_exact(&mut magic)) => read,
    };
    if !matches!(read, Ok(Ok(_))) {
        return;
    }
    if let (true, Some(replication)) = (
        &magic == super::replication::frame::MAGIC,
        &nsqd.replication,
    ) {
        nsqd.serve_replica(replication, stream, peer).await;
        return;
    }
    if &magic != protocol::frame::MAGIC_V2 {
        tracing::warn!(%peer, magic = ?magic, "bad protocol magic");
        let mut out = BytesMut::new();
        frame::write_error(
            &mut out,
            &ProtocolError::new(protocol::ErrorCode::BadProtocol, ""),
        );
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
        return;
    }
    let client = Arc::new(ClientShared::new(
        nsqd.next_client_id(),
        peer,
        nsqd.now_ns() / 1_000_000_000,
        default_settings(&nsqd, peer),
    ));
    tracing::info!(client = client.id, %peer, "new V2 client");
    nsqd.add_client(client.clone());
    let (read_half, write_half) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(PUMP_QUEUE_DEPTH);
    let pump = nsqd
        .tasks
        .spawn(pump::run(nsqd.clone(), client.clone(), write_half, rx));
    let mut reader = Reader {
        nsqd: nsqd.clone(),
        client: client.clone(),
        to_pump: tx,
        subscription: None,
        pending_upgrade: None,
        auth_gate: super::auth::MpubGate::default(),
    };
    reader.run(read_half).await;
    let subscription = reader.subscription.take();
    drop(reader);
    let _ = pump.await;
    if let Some((topic, channel)) = subscription {
        unsubscribe(&nsqd, &client, &topic, &channel);
    }
    nsqd.remove_client(client.id);
    tracing::info!(client = client.id, %peer, "client closed");
}

/// Removes the client from its channel, deleting an ephemeral channel (and topic) left empty.
fn unsubscribe(nsqd: &NsqdInner, client: &ClientShared, topic: &TopicRef, channel: &ChannelRef) {
    if channel.remove_client(client.id) {
        nsqd.delete_channel(topic, &channel.name);
    }
}

/// The settings a client has before (or without) IDENTIFY.
/// The settings of a connection before IDENTIFY (also a replica peer's, for AUTH).
pub(crate) fn default_settings(nsqd: &NsqdInner, peer: SocketAddr) -> ClientSettings {
    let opts = &nsqd.opts;
    ClientSettings {
        client_id: peer.ip().to_string(),
        hostname: peer.ip().to_string(),
        user_agent: String::new(),
        heartbeat_interval_ms: millis(opts.client_timeout) / 2,
        output_buffer_size: 16 * 1024,
        output_buffer_timeout_ms: millis(opts.output_buffer_timeout),
        sample_rate: 0,
        msg_timeout_ms: millis(opts.msg_timeout),
    }
}

/// A duration in whole milliseconds as Go's int64 arithmetic gives it.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The command side of a connection.
struct Reader {
    nsqd: Arc<NsqdInner>,
    client: ClientRef,
    to_pump: mpsc::Sender<ToPump>,
    subscription: Option<(TopicRef, ChannelRef)>,
    /// Set by IDENTIFY when it negotiated TLS, snappy or deflate.
    pending_upgrade: Option<upgrade::Upgrades>,
    /// Whether the MPUB being read already passed its auth check.
    auth_gate: super::auth::MpubGate,
}

/// What the reader caches of the connection's settings between commands; only IDENTIFY
/// and a stream upgrade change it.
#[derive(Debug, Clone, Copy)]
struct ConnFacts {
    heartbeat_ms: i64,
    tls_pending: bool,
}

/// FINs decoded back to back, at most, before they are run as one batch.
const FIN_BATCH_MAX: usize = 1024;

impl Reader {
    async fn run(&mut self, mut read_half: ReadHalf<BoxStream>) {
        let limits = self.nsqd.limits();
        let mut buf = BytesMut::new();
        let mut read_chunk = READ_CHUNK_MIN;
        let auth_enabled = self.nsqd.auth_enabled();
        let mut facts = self.conn_facts();
        // FINs already buffered run as one batch (one channel lock, one pump wake-up)
        // before anything else happens: the next command, a read, an error.
        let mut fins: Vec<MessageId> = Vec::new();
        loop {
            if auth_enabled && !fins.is_empty() && !self.finish_batch(&mut fins).await {
                return;
            }
            let ctx = ParseContext {
                state: self.client.state(),
                limits: &limits,
                heartbeats_enabled: facts.heartbeat_ms > 0,
                tls_pending: facts.tls_pending,
            };
            if auth_enabled {
                let gate = self
                    .auth_gate
                    .check(&self.nsqd, &self.client, &buf, ctx.tls_pending);
                // Rare and large futures are boxed: the reader's own future is what
                // every idle connection holds, so it stays small.
                if let Err(error) = Box::pin(gate).await {
                    self.send_error(&error).await;
                    return;
                }
            }
            let decoded = protocol::decode(&mut buf, &ctx);
            if let Ok(Decoded::Complete(protocol::Command::Fin { id })) = decoded {
                fins.push(id);
                if fins.len() < FIN_BATCH_MAX {
                    continue;
                }
            }
            if !fins.is_empty() && !self.finish_batch(&mut fins).await {
                return;
            }
            match decoded {
                Ok(Decoded::Complete(protocol::Command::Fin { .. })) => {}
                Ok(Decoded::Complete(command)) => {
                    let identify = matches!(command, protocol::Command::Identify { .. });
                    let next = Box::pin(self.execute(command)).await;
                    self.auth_gate.reset();
                    if identify {
                        facts = self.conn_facts();
                    }
                    match next {
                        Next::Continue => {}
                        Next::Close => return,
                        Next::Upgrade(answer, upgrades) => {
                            let unread = buf.split();
                            let upgrade = self.upgrade(read_half, unread, answer, upgrades);
                            match Box::pin(upgrade).await {
                                Some(upgraded) => read_half = upgraded,
                                None => return,
                            }
                            facts = self.conn_facts();
                        }
                    }
                }
                Ok(Decoded::Incomplete { needed }) => {
                    let want = needed.max(buf.len() + read_chunk);
                    buf.reserve(want - buf.len());
                    let room = buf.capacity() - buf.len();
                    let before = buf.len();
                    let more = self
                        .read_more(&mut read_half, &mut buf, facts.heartbeat_ms)
                        .await;
                    match more {
                        ReadMore::Done => return,
                        ReadMore::AfterQuiet => read_chunk = READ_CHUNK_MIN,
                        ReadMore::Read if buf.len() - before >= room => {
                            read_chunk = (read_chunk * 2).min(READ_CHUNK_BYTES);
                        }
                        ReadMore::Read => {}
                    }
                }
                Err(failure) => {
                    Box::pin(self.parse_failed(failure)).await;
                    return;
                }
            }
        }
    }

    /// The settings the read loop needs, as they are now.
    fn conn_facts(&self) -> ConnFacts {
        let tls_required = self.nsqd.opts.tls_required != 0;
        ConnFacts {
            heartbeat_ms: self.client.settings.lock().heartbeat_interval_ms,
            tls_pending: tls_required && self.client.transport.lock().tls.is_none(),
        }
    }

    /// Runs the FINs in `fins` (emptied) in order; their errors are sent in order.
    /// False when the connection is closing.
    async fn finish_batch(&mut self, fins: &mut Vec<MessageId>) -> bool {
        let errors = handler::finish_many(self, fins);
        fins.clear();
        for error in errors {
            if !self.send_error(&error).await {
                return false;
            }
        }
        true
    }

    /// Reads more bytes, within the read deadline (2 x heartbeat) when heartbeats are on.
    /// Between commands, a client quiet for [`QUIET_AFTER`] gives its read buffer back
    /// while it idles.
    async fn read_more(
        &self,
        read_half: &mut ReadHalf<BoxStream>,
        buf: &mut BytesMut,
        heartbeat_ms: i64,
    ) -> ReadMore {
        let deadline = (heartbeat_ms > 0).then(|| {
            let ms = u64::try_from(heartbeat_ms.saturating_mul(2)).unwrap_or(u64::MAX);
            Instant::now() + Duration::from_millis(ms)
        });
        let mut outcome = ReadMore::Read;
        if buf.is_empty() && buf.capacity() > READ_CHUNK_MIN {
            let quiet_at = Instant::now() + QUIET_AFTER;
            let wake_at = deadline.map_or(quiet_at, |deadline| deadline.min(quiet_at));
            match self.read_until(read_half, buf, Some(wake_at)).await {
                Some(true) => return ReadMore::Read,
                Some(false) => return ReadMore::Done,
                None if deadline.is_some_and(|deadline| deadline <= wake_at) => {
                    return self.deadline_passed();
                }
                None => {
                    *buf = BytesMut::with_capacity(READ_CHUNK_MIN);
                    outcome = ReadMore::AfterQuiet;
                }
            }
        }
        match self.read_until(read_half, buf, deadline).await {
            Some(true) => outcome,
            Some(false) => ReadMore::Done,
            None => self.deadline_passed(),
        }
    }

    /// One read into `buf`, given up at `wake_at` (None: never). `Some(false)` when the
    /// connection is done, `None` when `wake_at` came first.
    async fn read_until(
        &self,
        read_half: &mut ReadHalf<BoxStream>,
        buf: &mut BytesMut,
        wake_at: Option<Instant>,
    ) -> Option<bool> {
        let read = read_half.read_buf(buf);
        let wake = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.client.close.cancelled() => Some(false),
            result = read => match result {
                Ok(0) => Some(false),
                Ok(_) => Some(true),
                Err(error) => {
                    tracing::debug!(client = self.client.id, %error, "read failed");
                    Some(false)
                }
            },
            _ = wake => None,
        }
    }

    fn deadline_passed(&self) -> ReadMore {
        tracing::info!(client = self.client.id, "read deadline passed; closing");
        ReadMore::Done
    }

    /// Runs one command.
    async fn execute(&mut self, command: protocol::Command) -> Next {
        let keep_going = match handler::handle(self, command).await {
            Ok(None) => true,
            Ok(Some(response)) => match self.pending_upgrade.take() {
                Some(upgrades) => return Next::Upgrade(response, upgrades),
                None => self.send(ToPump::Frame(response)).await,
            },
            Err(error) => self.send_error(&error).await,
        };
        if keep_going {
            Next::Continue
        } else {
            Next::Close
        }
    }

    /// Has the pump send `answer` in the clear and give up its write half, upgrades the
    /// joined stream, and hands the pump its new write half. The new read half, or
    /// `None` when the connection is done.
    async fn upgrade(
        &mut self,
        read_half: ReadHalf<BoxStream>,
        unread: BytesMut,
        answer: Bytes,
        upgrades: upgrade::Upgrades,
    ) -> Option<ReadHalf<BoxStream>> {
        let (writer_out, from_pump) = oneshot::channel();
        let (to_pump, writer_in) = oneshot::channel();
        let asked = ToPump::Upgrade(Box::new(UpgradeHandOff {
            answer,
            writer_out,
            writer_in,
        }));
        if !self.send(asked).await {
            return None;
        }
        let write_half = from_pump.await.ok()?;
        let stream = read_half.unsplit(write_half);
        let upgraded = upgrade::apply(&self.nsqd, &self.client, stream, unread, upgrades).await;
        let stream = match upgraded {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(client = self.client.id, %error, "IDENTIFY upgrade failed");
                return None;
            }
        };
        let (read_half, write_half) = tokio::io::split(stream);
        to_pump.send(write_half).ok()?;
        Some(read_half)
    }

    async fn parse_failed(&mut self, failure: ParseError) {
        if let Some(topic) = &failure.mpub_topic {
            self.nsqd.topic(topic).await;
        }
        if failure.close_silently {
            tracing::warn!(client = self.client.id, "command line too long; closing");
            return;
        }
        self.send_error(&failure.error).await;
    }

    /// Sends an error frame; fatal errors close the connection. False when closing.
    async fn send_error(&self, error: &ProtocolError) -> bool {
        tracing::warn!(client = self.client.id, error = %error.text(), "client error");
        let mut out = BytesMut::new();
        frame::write_error(&mut out, error);
        if error.is_fatal() {
            let _ = self.to_pump.send(ToPump::Fatal(out.freeze())).await;
            return false;
        }
        self.send(ToPump::Frame(out.freeze())).await
    }

    async fn send(&self, what: ToPump) -> bool {
        self.to_pump.send(what).await.is_ok()
    }

    /// The `OK` response frame, built once: it answers every publish.
    fn ok() -> Bytes {
        Bytes::from_static(b"\x00\x00\x00\x06\x00\x00\x00\x00OK")
    }

    fn response(data: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(8 + data.len());
        frame::write_frame(&mut out, FrameType::Response, data);
        out.freeze()
    }
}

impl NsqdInner {
    /// The sizes the command parser checks before reading anything.
    pub(crate) fn limits(&self) -> protocol::Limits {
        protocol::Limits {
            max_body_size: self.opts.max_body_size,
            max_msg_size: self.opts.max_msg_size,
            max_rdy_count: self.opts.max_rdy_count,
            max_req_timeout_ms: millis(self.opts.max_req_timeout),
        }
    }
}

impl NsqdInner {
    /// What IDENTIFY may ask for, from the options.
    pub(crate) fn identify_limits(&self) -> protocol::identify::IdentifyLimits {
        let opts = &self.opts;
        protocol::identify::IdentifyLimits {
            default_heartbeat_interval_ms: millis(opts.client_timeout) / 2,
            max_heartbeat_interval_ms: millis(opts.max_heartbeat_interval),
            default_output_buffer_size: 16 * 1024,
            max_output_buffer_size: opts.max_output_buffer_size,
            default_output_buffer_timeout_ms: millis(opts.output_buffer_timeout),
            min_output_buffer_timeout_ms: millis(opts.min_output_buffer_timeout),
            max_output_buffer_timeout_ms: millis(opts.max_output_buffer_timeout),
            default_msg_timeout_ms: millis(opts.msg_timeout),
            max_msg_timeout_ms: millis(opts.max_msg_timeout),
            max_rdy_count: opts.max_rdy_count,
            tls_available: self.tls.is_some(),
            snappy_enabled: opts.snappy,
            deflate_enabled: opts.deflate,
            max_deflate_level: opts.max_deflate_level,
            auth_required: self.auth_enabled(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prebuilt_ok_frame_is_the_encoded_ok_response() {
        assert_eq!(Reader::ok(), Reader::response(frame::OK));
    }
}
