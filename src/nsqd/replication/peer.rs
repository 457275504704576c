//! The peer's side: an owner connects with the magic `"  R1"`, says HELLO, and sends
//! the messages it publishes, its channel changes and its FINs; this node keeps standby
//! copies of them (in [`StandbyStores`], one store per owner and topic) and
//! acknowledges each MESSAGES and CHANNEL frame once its own sync policy holds it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::frame::{Frame, Hello, VERSION};
use super::identity::{Identity, OwnerDisk};
use super::link::{write_frame, FrameReader, LinkError};
use super::standby::StandbyError;
use super::stores::StandbyStores;
use crate::env::BoxStream;
use crate::protocol::{MessageId, ProtocolError};

/// What [`serve`] needs of this nsqd.
pub struct PeerContext<'a> {
    /// `--node-id`.
    pub node_id: u16,
    /// This node's HELLO fields.
    pub hello: Hello,
    /// `--auth-http-address` is set: an owner must AUTH right after HELLO (and TLS),
    /// and its secret must be granted publish on every topic it replicates here.
    pub auth_required: bool,
    /// The TLS server configuration, when `--tls-required` asks every TCP connection
    /// for TLS: peers too switch to it after `HELLO_OK`, under the same client
    /// certificate policy as clients.
    pub tls_required: Option<Arc<rustls::ServerConfig>>,
    /// The stores.
    pub stores: &'a StandbyStores,
    /// `replication.dat`.
    pub identity: &'a Identity,
    /// The largest frame accepted.
    pub max_frame: usize,
    /// How long to wait for HELLO, and for any frame after it.
    pub silence: Duration,
    /// `--sync-every`: records appended between syncs.
    pub sync_every: u64,
    /// `--sync-timeout`: the longest an appended record waits for its sync.
    pub sync_timeout: std::time::Duration,
    /// The planted bug [`crate::nsqd::Buggify::replica_fin_drops_every_channel`].
    pub fin_drops_every_channel: bool,
    /// Cancelled when nsqd exits: the connection closes.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// What the connection asks of nsqd that this module cannot do itself.
pub trait PeerHost {
    /// What an accepted AUTH secret may do.
    type Grant: Send + Sync;
    /// Asks the auth servers about an owner's `secret`; the error says why it failed.
    fn authenticate(
        &self,
        secret: &[u8],
        peer: SocketAddr,
    ) -> impl std::future::Future<Output = Result<Self::Grant, ProtocolError>> + Send;
    /// Whether `grant` allows publishing to `topic` (renewed when expired).
    fn may_publish(
        &self,
        grant: &Self::Grant,
        topic: &str,
    ) -> impl std::future::Future<Output = Result<(), ProtocolError>> + Send;
    /// Delivers everything `owner` left here at once: its disk was lost (and with it what
    /// it had taken over from others, which is orphaned here).
    fn adopt_now(&self, owner: u16) -> impl std::future::Future<Output = ()> + Send;
    /// `ids` were finished on `topic`'s `channel` by the peer this connection is from:
    /// those this node may also hold (its own, or taken over) are not delivered again.
    fn finished_elsewhere(&self, topic: &str, channel: &str, ids: &[MessageId]);
}

/// Serves one owner's connection (the magic was read) until it closes.
pub async fn serve(
    ctx: PeerContext<'_>,
    host: &impl PeerHost,
    stream: BoxStream,
    peer: SocketAddr,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = FrameReader::new(read, ctx.max_frame);
    // Until the session runs, exiting is not held up by a slow or silent owner either.
    let shutdown = ctx.shutdown.clone();
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        handshake = handshake(&ctx, host, &mut reader, &mut write) => handshake,
    };
    let owner = match handshake {
        Ok(owner) => owner,
        Err(error) => {
            tracing::warn!(%peer, %error, "replica connection refused");
            if let Some(reason) = error.refusal() {
                let _ = write_frame(&mut write, &Frame::Error(reason)).await;
            }
            let _ = write.shutdown().await;
            return;
        }
    };
    if let Some(tls) = &ctx.tls_required {
        let Some(read) = reader.into_inner() else {
            tracing::warn!(%peer, owner, "replica connection closed: bytes before the TLS handshake");
            return;
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = crate::nsqd::tls::accept(tls.clone(), read.unsplit(write)) => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let (read, upgraded) = tokio::io::split(stream);
                reader = FrameReader::new(read, ctx.max_frame);
                write = upgraded;
            }
            Err(error) => {
                tracing::warn!(%peer, owner, %error, "replica connection closed: TLS handshake failed");
                return;
            }
        }
    }
    let grant = if ctx.auth_required {
        let authenticated = tokio::select! {
            _ = shutdown.cancelled() => return,
            authenticated = authenticate(&ctx, host, &mut reader, &mut write, peer) => authenticated,
        };
        match authenticated {
            Ok(grant) => Some(grant),
            Err(error) => {
                tracing::warn!(%peer, owner, %error, "replica connection refused");
                if let Some(reason) = error.refusal() {
                    let _ = write_frame(&mut write, &Frame::Error(reason)).await;
                }
                let _ = write.shutdown().await;
                return;
            }
        }
    } else {
        None
    };
    tracing::info!(%peer, owner, "replica connection from owner");
    let mut session = Session {
        ctx: &ctx,
        host,
        grant,
        owner,
        unsynced: BTreeSet::new(),
        records_since_sync: 0,
    };
    let error = session.run(&mut reader, &mut write).await;
    tracing::warn!(%peer, owner, %error, "replica connection closed");
    // What was acknowledged and gathered is written now, not at the next frame.
    if let Err(error) = session.sync().await {
        tracing::error!(%peer, owner, %error, "failed to write standby copies");
    }
    if let Some(reason) = error.refusal() {
        let _ = write_frame(&mut write, &Frame::Error(reason)).await;
    }
    let _ = write.shutdown().await;
}

/// Reads HELLO and answers it; returns the owner's node id.
async fn handshake<R, W>(
    ctx: &PeerContext<'_>,
    host: &impl PeerHost,
    reader: &mut FrameReader<R>,
    write: &mut W,
) -> Result<u16, LinkError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let hello = match reader.next_within(ctx.silence).await? {
        Frame::Hello(hello) => hello,
        _ => return Err(LinkError::Unexpected("first")),
    };
    if hello.version != VERSION {
        return Err(LinkError::Refused(format!(
            "replication version {} is not {VERSION}",
            hello.version
        )));
    }
    if ctx.tls_required.is_some() && !hello.tls {
        return Err(LinkError::Refused(
            "this nsqd requires TLS: give the owner --tls-root-ca-file (and a client \
             certificate if --tls-client-auth-policy asks for one)"
                .into(),
        ));
    }
    if hello.node_id == ctx.node_id {
        return Err(LinkError::Refused(format!(
            "node id {} is this node's: peers must have different --node-id",
            hello.node_id
        )));
    }
    let disk = ctx
        .identity
        .owner_seen(hello.node_id, hello.data_id)
        .await
        .map_err(|error| LinkError::Refused(format!("replication.dat: {error}")))?;
    if disk == OwnerDisk::Replaced {
        tracing::warn!(
            owner = hello.node_id,
            "owner came back with another data directory: delivering its standby copies"
        );
        host.adopt_now(hello.node_id).await;
    }
    if hello.replication_factor != ctx.hello.replication_factor {
        // Allowed (a rolling change of the factor passes through it), but worth knowing.
        tracing::warn!(
            owner = hello.node_id,
            theirs = hello.replication_factor,
            ours = ctx.hello.replication_factor,
            "an owner's --replication-factor differs from this node's"
        );
    }
    ctx.stores.heard(hello.node_id);
    let answer = Hello {
        tls: ctx.tls_required.is_some(),
        ..ctx.hello.clone()
    };
    write_frame(write, &Frame::HelloOk(answer)).await?;
    Ok(hello.node_id)
}

/// Reads the owner's AUTH (the first frame after HELLO and TLS) and has it checked.
async fn authenticate<R, W, H>(
    ctx: &PeerContext<'_>,
    host: &H,
    reader: &mut FrameReader<R>,
    write: &mut W,
    peer: SocketAddr,
) -> Result<H::Grant, LinkError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
    H: PeerHost,
{
    let Frame::Auth(secret) = reader.next_within(ctx.silence).await? else {
        return Err(LinkError::Refused(
            "this nsqd requires AUTH: give the owner --replica-auth-secret".into(),
        ));
    };
    let grant = host
        .authenticate(&secret, peer)
        .await
        .map_err(LinkError::NotAuthorized)?;
    write_frame(write, &Frame::AuthOk).await?;
    Ok(grant)
}

/// One owner's connection after HELLO.
struct Session<'a, H: PeerHost> {
    ctx: &'a PeerContext<'a>,
    host: &'a H,
    /// What the owner's AUTH secret may do (None: AUTH is off here).
    grant: Option<H::Grant>,
    owner: u16,
    /// Topics with records appended since their last sync.
    unsynced: BTreeSet<String>,
    records_since_sync: u64,
}

impl<H: PeerHost> Session<'_, H> {
    async fn run<R, W>(&mut self, reader: &mut FrameReader<R>, write: &mut W) -> LinkError
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        // The first tick a whole period on: an interval's first tick is at once.
        let first_sync = Instant::now() + self.ctx.sync_timeout;
        let mut sync_tick = tokio::time::interval_at(first_sync, self.ctx.sync_timeout);
        let mut last_frame = Instant::now();
        loop {
            let silent_at = last_frame + self.ctx.silence;
            let frame = tokio::select! {
                _ = self.ctx.shutdown.cancelled() => return LinkError::Closed,
                frame = tokio::time::timeout_at(silent_at, reader.next()) => {
                    last_frame = Instant::now();
                    frame.unwrap_or(Err(LinkError::Silent(self.ctx.silence)))
                }
                _ = sync_tick.tick() => {
                    if let Err(error) = self.sync().await {
                        return store_failed(error);
                    }
                    continue;
                }
            };
            let answer = match frame {
                Ok(frame) => self.on_frame(frame).await,
                Err(error) => return error,
            };
            match answer {
                Ok(Some(answer)) => {
                    if let Err(error) = write_frame(write, &answer).await {
                        return error;
                    }
                    if let Err(error) = self.sync_if_due().await {
                        return store_failed(error);
                    }
                }
                Ok(None) => {}
                Err(error) => return error,
            }
        }
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<Option<Frame>, LinkError> {
        let stores = self.ctx.stores;
        stores.heard(self.owner);
        // Every frame that changes what is kept of a topic needs a grant for it: FINs and
        // ADOPTED reach the copies of other owners too.
        if let (
            Frame::Messages { topic, .. }
            | Frame::Channel { topic, .. }
            | Frame::Fins { topic, .. }
            | Frame::Adopted { topic, .. },
            Some(grant),
        ) = (&frame, &self.grant)
        {
            self.host
                .may_publish(grant, topic)
                .await
                .map_err(LinkError::NotAuthorized)?;
        }
        match frame {
            Frame::Auth(_) => Ok(Some(Frame::AuthOk)),
            Frame::Messages { topic, records } => {
                let seq = records.last().map_or(0, |r| r.seq);
                let count = records.len() as u64;
                stores
                    .with_store(self.owner, &topic, async |s| s.append(&records).await)
                    .await
                    .map_err(store_failed)?;
                self.appended(&topic, count).await?;
                Ok(Some(Frame::Ack { topic, seq }))
            }
            Frame::Channel {
                topic,
                channel,
                created,
                seq,
            } => {
                stores
                    .with_store(self.owner, &topic, async |s| {
                        if created {
                            s.channel_created(&channel, seq).await
                        } else {
                            s.channel_deleted(&channel, seq).await
                        }
                    })
                    .await
                    .map_err(store_failed)?;
                self.appended(&topic, 1).await?;
                Ok(Some(Frame::Ack { topic, seq }))
            }
            Frame::Fins {
                topic,
                channel,
                finished,
                deferred,
            } => {
                let every_channel = self.ctx.fin_drops_every_channel;
                stores
                    .with_store(self.owner, &topic, async |s| {
                        if every_channel {
                            let channels: Vec<String> =
                                s.channels().into_iter().map(str::to_string).collect();
                            for channel in channels {
                                s.finish(&channel, &finished).await?;
                            }
                        }
                        s.finish(&channel, &finished).await?;
                        for (id, due_ns) in &deferred {
                            s.requeued(*id, *due_ns).await?;
                        }
                        s.compact_if_mostly_dead().await.map(drop)
                    })
                    .await
                    .map_err(store_failed)?;
                stores
                    .finish_elsewhere(self.owner, &topic, &channel, &finished, &deferred)
                    .await
                    .map_err(store_failed)?;
                self.host.finished_elsewhere(&topic, &channel, &finished);
                Ok(None)
            }
            Frame::Adopted { owner, topic, ids } => {
                stores.delegate(owner, &topic, &ids, self.owner).await;
                Ok(None)
            }
            Frame::TopicDeleted(topic) => {
                self.unsynced.remove(&topic);
                stores
                    .delete(self.owner, &topic)
                    .await
                    .map_err(store_failed)?;
                Ok(None)
            }
            Frame::Ping { .. } => Ok(Some(Frame::Pong {
                data_id: self.ctx.hello.data_id,
            })),
            _ => Err(LinkError::Unexpected("owner")),
        }
    }

    /// Counts records toward `--sync-every`. With `--sync-every=1` (crash-safe) they
    /// are synced before the ACK; past a larger count, right after it, as the disk
    /// queue's policy lets a publish be answered before the sync its count starts.
    async fn appended(&mut self, topic: &str, records: u64) -> Result<(), LinkError> {
        self.unsynced.insert(topic.to_string());
        self.records_since_sync += records;
        if self.ctx.sync_every <= 1 {
            self.sync().await.map_err(store_failed)?;
        }
        Ok(())
    }

    /// Syncs once `--sync-every` records were appended since the last sync.
    async fn sync_if_due(&mut self) -> Result<(), StandbyError> {
        if self.records_since_sync >= self.ctx.sync_every {
            self.sync().await?;
        }
        Ok(())
    }

    async fn sync(&mut self) -> Result<(), StandbyError> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        self.ctx.stores.sync(self.owner, &self.unsynced).await?;
        self.unsynced.clear();
        self.records_since_sync = 0;
        Ok(())
    }
}

/// A store that cannot keep what the owner sent ends the connection: the owner sees
/// no ACK, so nothing is counted as held here.
fn store_failed(error: StandbyError) -> LinkError {
    LinkError::Store(error)
}
