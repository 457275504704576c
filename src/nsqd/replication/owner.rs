//! The owner's side: every message published here to a replicated topic goes to every
//! peer, and the publish is answered only once `--replication-factor - 1` of them
//! acknowledged it (`docs/replication.md`, "The contract").
//!
//! Each replicated change gets a sequence number and goes, in that order, into every
//! peer's outbox, all under one lock, so a peer's acknowledgement of number `s` means it
//! holds everything up to `s`. One task per peer connects, says HELLO, and writes its
//! outbox; frames written and not yet acknowledged are kept and written again after a
//! reconnect (the peer ignores numbers it already holds). FINs ride in the same order,
//! so a FIN never reaches a peer before the message it finishes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::frame::{Frame, Hello, Replicated, MAGIC};
use super::link::{write_frame, FrameReader, LinkError};
use crate::env::Env;
use crate::nsqd::topic::TopicWatcher;
use crate::protocol::message::MSG_ID_LENGTH;
use crate::protocol::{Message, MessageId};

/// How often a connected peer is PINGed (its failover clock counts from the last frame).
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// The first reconnect delay; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Bytes a peer's outbox and unacknowledged frames may hold before the oldest are
/// dropped: a peer away that long misses them (they failed, or other peers hold them).
const OUTBOX_LIMIT_BYTES: usize = 256 << 20;
/// Records per MESSAGES frame are cut at about this many bytes, so a frame stays far
/// below any peer's limit (a single message is at most `--max-msg-size`).
const FRAME_TARGET_BYTES: usize = 512 << 10;

/// Why a replicated publish was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// Too few peers acknowledged within `--replica-timeout`.
    #[error("only {acked} of {needed} replicas acknowledged within {timeout:?}")]
    TooFewReplicas {
        /// Peers that acknowledged.
        acked: usize,
        /// Peers needed.
        needed: usize,
        /// The timeout.
        timeout: Duration,
    },
}

/// What this node needs to say HELLO and to reach its peers.
#[derive(Debug, Clone)]
pub struct OwnerConfig {
    /// What this node says in HELLO.
    pub hello: Hello,
    /// `--replication-factor`.
    pub factor: usize,
    /// `--replica-peer`.
    pub peers: Vec<String>,
    /// `--replica-timeout`.
    pub timeout: Duration,
    /// The largest frame a peer may send back.
    pub max_frame: usize,
    /// How to open TLS to a peer that requires it (None: no CA or certificate given).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `--replica-auth-secret`, sent with AUTH right after HELLO (and TLS) when set.
    pub auth_secret: Option<Bytes>,
}

/// One replicated change, shared by every peer's outbox and encoded once.
#[derive(Debug)]
struct Item {
    /// Its sequence number: acknowledged by the peer's ACK of any number at or above it.
    seq: u64,
    frame: Frame,
    encoded: OnceLock<Bytes>,
}

impl Item {
    fn bytes(&self) -> &Bytes {
        self.encoded.get_or_init(|| {
            let mut out = BytesMut::with_capacity(self.size_hint());
            self.frame.encode(&mut out);
            out.freeze()
        })
    }

    fn size_hint(&self) -> usize {
        match &self.frame {
            Frame::Adopted { ids, .. } => 64 + ids.len() * MSG_ID_LENGTH,
            Frame::Messages { records, .. } => records
                .iter()
                .map(|r| {
                    r.message.body.len()
                        + 64
                        + r.channels.iter().map(|c| c.len() + 2).sum::<usize>()
                })
                .sum::<usize>(),
            _ => 64,
        }
    }
}

/// A peer's frames not yet written, and what its task shares with publishers.
#[derive(Debug, Default)]
struct Outbox {
    items: VecDeque<Arc<Item>>,
    bytes: usize,
}

/// What publishers and one peer's task share.
#[derive(Debug)]
struct PeerShared {
    address: String,
    /// The highest sequence number the peer acknowledged.
    acked: AtomicU64,
    /// Woken when the outbox gains an item.
    wake: Notify,
}

/// The sequence counter and the outboxes, changed together under one lock.
#[derive(Debug)]
struct Sending {
    next_seq: u64,
    outboxes: Vec<Outbox>,
}

/// The owner side of replication: one per nsqd with `--replication-factor` of 2 or more.
#[derive(Debug)]
pub struct Replicator {
    config: OwnerConfig,
    sending: Mutex<Sending>,
    peers: Vec<PeerShared>,
    /// Woken at every acknowledgement.
    acked: Notify,
}

impl Replicator {
    /// A replicator for `config`'s peers. Sequence numbers start at `first_seq` (the
    /// wall clock in ns), above anything an earlier run of this node sent.
    pub fn new(config: OwnerConfig, first_seq: u64) -> Arc<Replicator> {
        let peers = config
            .peers
            .iter()
            .map(|address| PeerShared {
                address: address.clone(),
                acked: AtomicU64::new(0),
                wake: Notify::new(),
            })
            .collect::<Vec<_>>();
        Arc::new(Replicator {
            sending: Mutex::new(Sending {
                next_seq: first_seq.max(1),
                outboxes: peers.iter().map(|_| Outbox::default()).collect(),
            }),
            peers,
            acked: Notify::new(),
            config,
        })
    }

    /// Peers that must acknowledge a change before it counts as kept.
    pub fn needed(&self) -> usize {
        self.config.factor.saturating_sub(1)
    }

    /// Queues `messages`, just minted for `topic` and due at `due_ns` (0: now), for the
    /// channels `channels`, to every peer. Returns the number to wait for. Called under
    /// the topic's lock, so it only queues.
    pub fn published(
        &self,
        topic: &str,
        messages: &[Message],
        due_ns: i64,
        channels: &[String],
    ) -> u64 {
        let mut sending = self.sending.lock();
        let mut items = Vec::new();
        let mut records = Vec::new();
        let mut bytes = 0;
        let names: usize = channels.iter().map(|c| c.len() + 2).sum();
        for message in messages {
            bytes += message.body.len() + 64 + names;
            records.push(Replicated {
                seq: sending.next_seq,
                message: message.clone(),
                due_ns,
                channels: channels.to_vec(),
            });
            sending.next_seq += 1;
            if bytes >= FRAME_TARGET_BYTES {
                items.push(messages_item(topic, std::mem::take(&mut records)));
                bytes = 0;
            }
        }
        if !records.is_empty() {
            items.push(messages_item(topic, records));
        }
        let last = sending.next_seq - 1;
        self.push(&mut sending, items);
        last
    }

    /// Queues a channel's creation or deletion to every peer; returns its number.
    pub fn channel_changed(&self, topic: &str, channel: &str, created: bool) -> u64 {
        let mut sending = self.sending.lock();
        let seq = sending.next_seq;
        sending.next_seq += 1;
        let frame = Frame::Channel {
            topic: topic.to_string(),
            channel: channel.to_string(),
            created,
            seq,
        };
        self.push(&mut sending, vec![new_item(seq, frame)]);
        seq
    }

    /// Queues a topic's deletion to every peer.
    pub fn topic_deleted(&self, topic: &str) {
        let mut sending = self.sending.lock();
        let seq = sending.next_seq;
        self.push(
            &mut sending,
            vec![new_item(seq, Frame::TopicDeleted(topic.to_string()))],
        );
    }

    /// Queues FINs of `ids` on `topic`'s `channel`, and the new due times of messages
    /// requeued there with a delay. They are not acknowledged: they carry the next
    /// number, so the acknowledgement of whatever follows them covers them. Consecutive
    /// ones of one channel share a frame.
    pub fn finished(
        &self,
        topic: &str,
        channel: &str,
        ids: &[MessageId],
        requeued: &[(MessageId, i64)],
    ) {
        if ids.is_empty() && requeued.is_empty() {
            return;
        }
        let mut sending = self.sending.lock();
        let seq = sending.next_seq;
        for (outbox, peer) in sending.outboxes.iter_mut().zip(&self.peers) {
            let open_fins = outbox
                .items
                .back_mut()
                .filter(|last| last_is_fins(last, topic, channel))
                .and_then(Arc::get_mut);
            if let Some(Item {
                frame: Frame::Fins {
                    finished, deferred, ..
                },
                ..
            }) = open_fins
            {
                finished.extend_from_slice(ids);
                deferred.extend_from_slice(requeued);
                outbox.bytes += ids.len() * 16 + requeued.len() * 24;
                continue;
            }
            let frame = Frame::Fins {
                topic: topic.to_string(),
                channel: channel.to_string(),
                finished: ids.to_vec(),
                deferred: requeued.to_vec(),
            };
            push_one(outbox, new_item(seq, frame));
            peer.wake.notify_one();
        }
    }

    /// Tells every peer that this node took over, and now delivers, the copies `ids`
    /// of the lost `owner`'s `topic` (a failover), so that one holding them too keeps
    /// them standby instead of delivering them again. Not acknowledged, as FINs.
    pub fn adopted(&self, owner: u16, topic: &str, ids: &[MessageId]) {
        let mut sending = self.sending.lock();
        let seq = sending.next_seq;
        let items = ids
            .chunks(FRAME_TARGET_BYTES / MSG_ID_LENGTH)
            .map(|ids| {
                let frame = Frame::Adopted {
                    owner,
                    topic: topic.to_string(),
                    ids: ids.to_vec(),
                };
                new_item(seq, frame)
            })
            .collect();
        self.push(&mut sending, items);
    }

    fn push(&self, sending: &mut Sending, items: Vec<Arc<Item>>) {
        for (outbox, peer) in sending.outboxes.iter_mut().zip(&self.peers) {
            for item in &items {
                push_one(outbox, item.clone());
            }
            peer.wake.notify_one();
        }
    }

    /// Waits until enough peers acknowledged number `seq`, or `--replica-timeout`.
    pub async fn wait(&self, seq: u64) -> Result<(), ReplicationError> {
        let needed = self.needed();
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        loop {
            let acked = self.acked.notified();
            tokio::pin!(acked);
            acked.as_mut().enable();
            let count = self.acked_count(seq);
            if count >= needed {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, acked).await.is_err() {
                return Err(ReplicationError::TooFewReplicas {
                    acked: self.acked_count(seq),
                    needed,
                    timeout: self.config.timeout,
                });
            }
        }
    }

    fn acked_count(&self, seq: u64) -> usize {
        self.peers
            .iter()
            .filter(|p| p.acked.load(Ordering::Acquire) >= seq)
            .count()
    }

    /// Starts one task per peer; they end at `shutdown`.
    pub fn start(
        self: &Arc<Self>,
        env: &Env,
        tasks: &crate::env::Tasks,
        shutdown: &CancellationToken,
    ) {
        for index in 0..self.peers.len() {
            let link = PeerLink {
                replicator: self.clone(),
                index,
                env: env.clone(),
                shutdown: shutdown.clone(),
                unacked: VecDeque::new(),
                unacked_bytes: 0,
            };
            tasks.spawn(link.run());
        }
    }

    /// Takes what `index`'s outbox holds.
    fn take_outbox(&self, index: usize) -> Vec<Arc<Item>> {
        let mut sending = self.sending.lock();
        let Some(outbox) = sending.outboxes.get_mut(index) else {
            return Vec::new();
        };
        outbox.bytes = 0;
        outbox.items.drain(..).collect()
    }
}

impl TopicWatcher for Replicator {
    fn published(
        &self,
        topic: &str,
        messages: &[Message],
        due_ns: i64,
        channels: &[String],
    ) -> u64 {
        Replicator::published(self, topic, messages, due_ns, channels)
    }

    fn channel_changed(&self, topic: &str, channel: &str, created: bool) {
        Replicator::channel_changed(self, topic, channel, created);
    }
}

fn last_is_fins(item: &Item, topic: &str, channel: &str) -> bool {
    matches!(&item.frame, Frame::Fins { topic: t, channel: c, .. } if t == topic && c == channel)
        && item.encoded.get().is_none()
}

fn messages_item(topic: &str, records: Vec<Replicated>) -> Arc<Item> {
    let seq = records.last().map_or(0, |r| r.seq);
    new_item(
        seq,
        Frame::Messages {
            topic: topic.to_string(),
            records,
        },
    )
}

fn new_item(seq: u64, frame: Frame) -> Arc<Item> {
    Arc::new(Item {
        seq,
        frame,
        encoded: OnceLock::new(),
    })
}

/// Adds `item`, dropping the oldest items past [`OUTBOX_LIMIT_BYTES`].
fn push_one(outbox: &mut Outbox, item: Arc<Item>) {
    outbox.bytes += item.size_hint();
    outbox.items.push_back(item);
    while outbox.bytes > OUTBOX_LIMIT_BYTES {
        match outbox.items.pop_front() {
            Some(dropped) => outbox.bytes = outbox.bytes.saturating_sub(dropped.size_hint()),
            None => break,
        }
    }
}

/// One peer's connection task.
struct PeerLink {
    replicator: Arc<Replicator>,
    index: usize,
    env: Env,
    shutdown: CancellationToken,
    /// Written and not yet acknowledged: written again after a reconnect.
    unacked: VecDeque<Arc<Item>>,
    unacked_bytes: usize,
}

impl PeerLink {
    fn peer(&self) -> &PeerShared {
        &self.replicator.peers[self.index]
    }

    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        while !self.shutdown.is_cancelled() {
            let address = self.peer().address.clone();
            let shutdown = self.shutdown.clone();
            let served = tokio::select! {
                _ = shutdown.cancelled() => return,
                served = self.connect_and_serve() => served,
            };
            match served {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(peer = %address, %error, "replica connection lost; reconnecting");
                    if let LinkError::Refused(_) = error {
                        // Written again, what the peer refused would be refused again
                        // and hold up everything after it; those publishes fail.
                        self.unacked.clear();
                        self.unacked_bytes = 0;
                    }
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection: HELLO, then frames until it fails or nsqd exits (`Ok`).
    async fn connect_and_serve(&mut self) -> Result<(), LinkError> {
        let replicator = self.replicator.clone();
        let config = &replicator.config;
        let address = self.peer().address.clone();
        let connect = self.env.net.connect_tcp(&address);
        let stream = tokio::time::timeout(config.timeout, connect)
            .await
            .map_err(|_| LinkError::Silent(config.timeout))??;
        let (read, mut write) = tokio::io::split(stream);
        let mut reader = FrameReader::new(read, config.max_frame);
        write.write_all(MAGIC).await?;
        write_frame(&mut write, &Frame::Hello(config.hello.clone())).await?;
        let theirs = match reader.next_within(config.timeout).await? {
            Frame::HelloOk(theirs) => theirs,
            Frame::Error(reason) => return Err(LinkError::Refused(reason)),
            _ => return Err(LinkError::Unexpected("HELLO answer")),
        };
        if theirs.tls {
            // The peer requires TLS: the rest of the connection is encrypted.
            let tls_config = config.tls.clone().ok_or_else(|| {
                LinkError::Refused(
                    "the peer requires TLS; give this nsqd --tls-root-ca-file".into(),
                )
            })?;
            let read = reader.into_inner().ok_or(LinkError::Unexpected("early"))?;
            let stream = read.unsplit(write);
            let stream = crate::nsqd::tls::connect(tls_config, host_of(&address), stream).await?;
            let (read, upgraded) = tokio::io::split(stream);
            reader = FrameReader::new(read, config.max_frame);
            write = upgraded;
        }
        if let Some(secret) = &config.auth_secret {
            write_frame(&mut write, &Frame::Auth(secret.clone())).await?;
            match reader.next_within(config.timeout).await? {
                Frame::AuthOk => {}
                Frame::Error(reason) => return Err(LinkError::Refused(reason)),
                _ => return Err(LinkError::Unexpected("AUTH answer")),
            }
        }
        tracing::info!(peer = %address, node_id = theirs.node_id, tls = theirs.tls, "replica connected");
        let resend: Vec<Arc<Item>> = self.unacked.iter().cloned().collect();
        write_items(&mut write, &resend).await?;
        let silent_after = config.timeout.max(PING_INTERVAL * 3);
        let peer = &replicator.peers[self.index];
        tokio::select! {
            read = read_acks(&replicator, peer, &mut reader, silent_after) => read,
            written = self.write_outbox(peer, &mut write) => written,
        }
    }

    /// Writes what the outbox gains, and PINGs, until nsqd exits (`Ok`) or a write
    /// fails.
    async fn write_outbox<W: tokio::io::AsyncWrite + Unpin>(
        &mut self,
        peer: &PeerShared,
        write: &mut W,
    ) -> Result<(), LinkError> {
        let data_id = self.replicator.config.hello.data_id;
        let mut ping = tokio::time::interval(PING_INTERVAL);
        loop {
            let wake = peer.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            self.forget_acked(peer.acked.load(Ordering::Acquire));
            let items = self.replicator.take_outbox(self.index);
            if !items.is_empty() {
                write_items(write, &items).await?;
                for item in items {
                    self.unacked_bytes += item.size_hint();
                    self.unacked.push_back(item);
                }
                self.trim_unacked();
                continue;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = wake => {}
                _ = ping.tick() => write_frame(write, &Frame::Ping { data_id }).await?,
            }
        }
    }

    /// Drops the frames the peer acknowledged: they are not written again.
    fn forget_acked(&mut self, acked: u64) {
        while self.unacked.front().is_some_and(|item| item.seq <= acked) {
            if let Some(item) = self.unacked.pop_front() {
                self.unacked_bytes = self.unacked_bytes.saturating_sub(item.size_hint());
            }
        }
    }

    fn trim_unacked(&mut self) {
        while self.unacked_bytes > OUTBOX_LIMIT_BYTES {
            match self.unacked.pop_front() {
                Some(item) => {
                    self.unacked_bytes = self.unacked_bytes.saturating_sub(item.size_hint())
                }
                None => break,
            }
        }
    }
}

/// Reads the peer's answers: each ACK raises its acknowledged number and wakes the
/// publishers waiting. Fails when the peer says nothing for `silent_after` (it PONGs
/// every PING).
async fn read_acks<R: tokio::io::AsyncRead + Unpin>(
    replicator: &Replicator,
    peer: &PeerShared,
    reader: &mut FrameReader<R>,
    silent_after: Duration,
) -> Result<(), LinkError> {
    loop {
        match reader.next_within(silent_after).await? {
            Frame::Ack { seq, .. } => {
                peer.acked.fetch_max(seq, Ordering::AcqRel);
                replicator.acked.notify_waiters();
            }
            Frame::Pong { .. } => {}
            Frame::Error(reason) => return Err(LinkError::Refused(reason)),
            _ => return Err(LinkError::Unexpected("peer")),
        }
    }
}

/// The host part of a `host:port` address (brackets of an IPv6 address removed): the
/// name a peer's TLS certificate must carry.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Writes `items` in order with one flush.
async fn write_items<W: tokio::io::AsyncWrite + Unpin>(
    write: &mut W,
    items: &[Arc<Item>],
) -> Result<(), LinkError> {
    for item in items {
        write.write_all(item.bytes()).await?;
    }
    write.flush().await?;
    Ok(())
}
