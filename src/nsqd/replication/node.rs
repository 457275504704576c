//! Replication as one nsqd runs it: the owner side ([`Replicator`]), the peer side
//! ([`StandbyStores`]), the identity of the data directory, the failover loop, and the
//! publish every TCP and HTTP publish goes through.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::frame::{Hello, VERSION};
use super::identity::{Identity, IdentityError};
use super::owner::{OwnerConfig, ReplicationError, Replicator, PING_INTERVAL};
use super::peer::{self, PeerContext, PeerHost};
use super::standby::{Adoptable, Scope, StandbyError, StandbyStore, Taken};
use super::stores::StandbyStores;
use crate::env::{BoxStream, Env};
use crate::nsqd::channel::Channel;
use crate::nsqd::durability::disk_queue_config;
use crate::nsqd::topic::{AdoptedMessage, Topic, TopicError, TopicRef};
use crate::nsqd::{NsqdInner, Options};
use crate::protocol::{guid, names, MessageId, ProtocolError};

/// Room in a frame beyond `--max-msg-size` (headers, channel names, other records).
const FRAME_SLACK: usize = 4 << 20;

/// Why replication could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationStartError {
    /// `replication.dat` could not be read or written.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A standby store could not be opened.
    #[error(transparent)]
    Standby(#[from] StandbyError),
}

/// Why a publish was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The topic refused it (exiting, disk error).
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// Too few replicas hold it.
    #[error(transparent)]
    Replication(#[from] ReplicationError),
}

/// The replication state of an nsqd with `--replication-factor` of 2 or more.
#[derive(Debug)]
pub struct Replication {
    /// The owner side.
    pub replicator: Arc<Replicator>,
    /// `replication.dat`.
    pub identity: Identity,
    /// The peer side.
    pub stores: StandbyStores,
    hello: Hello,
    max_frame: usize,
    /// Owners that came back with another data directory, whose earlier run's copies
    /// the failover loop hands over, silent or not: those this node ranks second for
    /// (another peer takes them over first), or could not hand over at once.
    adoption_owed: parking_lot::Mutex<BTreeMap<u16, Owed>>,
}

/// The copies of an owner's earlier run owed to consumers ([`Replication`]).
#[derive(Debug, Clone, Copy)]
struct Owed {
    /// The highest number of the earlier run.
    up_to_seq: u64,
    /// Not before then: a peer ranked first takes them over meanwhile.
    not_before: Instant,
}

/// The longest wait before a failed failover is tried again.
const MAX_FAILOVER_RETRY: Duration = Duration::from_secs(8);

/// Bytes of bodies a failover reads from a standby store and queues at a time.
const ADOPT_BATCH_BYTES: usize = 8 << 20;

impl Replication {
    /// Opens replication for `opts` (None when the factor is 1): reads or makes
    /// `replication.dat` and opens every standby store in the data directory.
    pub async fn open(
        opts: &Options,
        env: &Env,
        data_path: &Path,
        tcp_addr: SocketAddr,
    ) -> Result<Option<Replication>, ReplicationStartError> {
        if opts.replication_factor < 2 {
            return Ok(None);
        }
        let crash_safe = (opts.mem_queue_size == 0 && opts.sync_every == 1)
            || opts.buggify.identity_kept_after_crash;
        let identity =
            Identity::load_or_create(env.fs.clone(), data_path, &*env.rng, crash_safe).await?;
        let max_msg_size = usize::try_from(opts.max_msg_size).unwrap_or(0);
        // Standby copies gather in memory as the disk queues' publishes do.
        let gather_bytes =
            usize::try_from(disk_queue_config(opts).write_buffer_bytes).unwrap_or(usize::MAX);
        let stores = StandbyStores::open(
            env.fs.clone(),
            data_path.to_path_buf(),
            max_msg_size,
            gather_bytes,
        )
        .await?;
        let port = match opts.broadcast_tcp_port {
            0 => tcp_addr.port(),
            port => port,
        };
        let node_id = u16::try_from(opts.id).unwrap_or(0);
        let factor = usize::try_from(opts.replication_factor).unwrap_or(1);
        let tls = peer_tls(opts, env).await;
        let hello = Hello {
            version: VERSION,
            node_id,
            data_id: identity.data_id(),
            address: format!("{}:{port}", opts.broadcast_address),
            replication_factor: u16::try_from(factor).unwrap_or(u16::MAX),
            tls: tls.is_some(),
        };
        let max_frame = max_msg_size.saturating_add(FRAME_SLACK);
        let config = OwnerConfig {
            hello: hello.clone(),
            factor,
            peers: opts.replica_peers.clone(),
            timeout: opts.replica_timeout,
            max_frame,
            tls,
            auth_secret: (!opts.replica_auth_secret.is_empty())
                .then(|| Bytes::from(opts.replica_auth_secret.clone().into_bytes())),
        };
        let first_seq = u64::try_from(env.clock.now_ns()).unwrap_or(1);
        Ok(Some(Replication {
            replicator: Replicator::new(config, first_seq),
            identity,
            stores,
            hello,
            max_frame,
            adoption_owed: parking_lot::Mutex::default(),
        }))
    }
}

/// Whether `topic`'s `channel` keeps standby copies on the peers.
fn replicated(topic: &Topic, channel: &Channel) -> bool {
    !topic.ephemeral && !names::is_ephemeral(&channel.name)
}

impl Replication {
    /// Tells the peers that `ids` (but those at the indexes in `failed`) were finished
    /// on `topic`'s `channel`, unless either is ephemeral.
    pub(crate) fn finished(
        &self,
        topic: &Topic,
        channel: &Channel,
        ids: &[MessageId],
        failed: &[usize],
    ) {
        if !replicated(topic, channel) {
            return;
        }
        let finished: Vec<MessageId> = if failed.is_empty() {
            ids.to_vec()
        } else {
            ids.iter()
                .enumerate()
                .filter(|(i, _)| !failed.contains(i))
                .map(|(_, id)| *id)
                .collect()
        };
        self.replicator
            .finished(&topic.name, &channel.name, &finished, &[]);
    }

    /// Tells the peers that `id` was requeued on `topic`'s `channel` to be due at
    /// `due_ns`, so a failover does not deliver it earlier.
    pub(crate) fn requeued(&self, topic: &Topic, channel: &Channel, id: MessageId, due_ns: i64) {
        if replicated(topic, channel) {
            self.replicator
                .finished(&topic.name, &channel.name, &[], &[(id, due_ns)]);
        }
    }

    /// A takeover of `owner`'s copies in `scope` succeeded: what was owed of its earlier
    /// run is paid if `scope` covered it (orphans do not; an owed run newer than the
    /// one taken over stays owed).
    fn settle_owed(&self, owner: u16, scope: Scope) {
        let mut owed = self.adoption_owed.lock();
        let paid = match (scope, owed.get(&owner)) {
            (_, None) | (Scope::Orphans, _) => false,
            (Scope::Silent, Some(_)) => true,
            (Scope::EarlierRun { up_to_seq }, Some(entry)) => entry.up_to_seq <= up_to_seq,
        };
        if paid {
            owed.remove(&owner);
        }
    }
}

/// The TLS client configuration for peers that require TLS, when this node was given a
/// CA (`--tls-root-ca-file`) or a certificate of its own; without either it cannot
/// reach such peers, and says so when one asks.
async fn peer_tls(opts: &Options, env: &Env) -> Option<Arc<rustls::ClientConfig>> {
    if opts.tls_root_ca_file.is_empty() && opts.tls_cert.is_empty() {
        return None;
    }
    match crate::nsqd::tls::peer_client_config(opts, env).await {
        Ok(config) => Some(config),
        Err(error) => {
            tracing::warn!(%error, "no TLS for replica peers");
            None
        }
    }
}

impl NsqdInner {
    /// Publishes `bodies` to `topic`, and, when it is replicated, waits until enough
    /// peers hold them: what every PUB, MPUB, DPUB and HTTP publish answers `OK` after.
    pub(crate) async fn publish(
        &self,
        topic: &TopicRef,
        bodies: Vec<Bytes>,
        defer_ns: i64,
    ) -> Result<(), PublishError> {
        let ticket = topic.publish_watched(bodies, self.now_ns(), defer_ns).await;
        self.note_topic_write(&ticket);
        if let (Some(ticket), Some(replication)) = (ticket?, &self.replication) {
            if !self.opts.buggify.replica_ok_before_ack {
                replication.replicator.wait(ticket).await?;
            }
        }
        Ok(())
    }

    /// Serves a peer connection that opened with `"  R1"`.
    pub(crate) async fn serve_replica(
        &self,
        replication: &Replication,
        stream: BoxStream,
        peer: SocketAddr,
    ) {
        let tls_required = self.tls.clone().filter(|_| self.opts.tls_required != 0);
        let ctx = PeerContext {
            node_id: replication.hello.node_id,
            hello: replication.hello.clone(),
            auth_required: self.auth_enabled(),
            tls_required,
            stores: &replication.stores,
            identity: &replication.identity,
            max_frame: replication.max_frame,
            silence: self.opts.replica_failover_timeout.max(PING_INTERVAL * 3),
            sync_every: u64::try_from(self.opts.sync_every).unwrap_or(1).max(1),
            sync_timeout: self.opts.sync_timeout.max(Duration::from_millis(1)),
            fin_drops_every_channel: self.opts.buggify.replica_fin_drops_every_channel,
            shutdown: self.shutdown.clone(),
        };
        peer::serve(ctx, self, stream, peer).await;
    }

    /// Delivers, as this node's own, what `owner` left in the standby stores, but for
    /// copies a live node said it took over (`ADOPTED`), and tells the peers what it
    /// took over. False when a store could not be handed over whole (it is tried again
    /// later).
    async fn adopt_from(&self, replication: &Replication, owner: u16, scope: Scope) -> bool {
        let live = replication
            .stores
            .live_nodes(self.opts.replica_failover_timeout);
        let mut all_adopted = true;
        let mut stores = replication.stores.lock().await;
        for ((store_owner, topic), store) in stores.iter_mut() {
            let copies = match scope {
                Scope::Orphans => store.orphaned(&live),
                Scope::Silent | Scope::EarlierRun { .. } => store.adoptable(&live),
            };
            if *store_owner != owner || copies == 0 {
                continue;
            }
            tracing::warn!(owner, %topic, copies, ?scope, "failover: delivering a peer's standby copies");
            if let Err(error) = replication.identity.adopting_from(owner).await {
                tracing::error!(owner, %error, "failover: replication.dat could not note the takeover; FINs of the owner may not reconcile after a restart");
            }
            let adopted = self
                .adopt_store(replication, (owner, topic), store, &live, scope)
                .await;
            let Some(taken) = adopted else {
                all_adopted = false;
                continue;
            };
            if let Err(error) = store.forget_adopted(taken).await {
                tracing::error!(owner, %topic, %error, "failover: adopted copies could not be forgotten; they may come again");
                all_adopted = false;
            }
        }
        all_adopted
    }

    /// Delivers the copies of `store` a batch at a time, so a failover holds one batch
    /// of bodies in memory, not the backlog, and names each batch to the peers. None
    /// when a batch could not be read or queued: the store keeps every copy for the
    /// next round, and what was delivered already comes again (duplicates, which
    /// at-least-once allows).
    async fn adopt_store(
        &self,
        replication: &Replication,
        (owner, topic): (u16, &str),
        store: &mut StandbyStore,
        live: &BTreeSet<u16>,
        scope: Scope,
    ) -> Option<Taken> {
        let mut adoption = match store.adoption(live, scope).await {
            Ok(adoption) => adoption,
            Err(error) => {
                tracing::error!(%topic, %error, "failover: standby copies could not be read");
                return None;
            }
        };
        loop {
            match adoption.next_batch(ADOPT_BATCH_BYTES).await {
                Ok(Some(batch)) => {
                    let ids: Vec<MessageId> = batch.iter().map(|copy| copy.message.id).collect();
                    if !self.adopt_copies(topic, batch).await {
                        return None;
                    }
                    replication.replicator.adopted(owner, topic, &ids);
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::error!(%topic, %error, "failover: standby copies could not be read");
                    return None;
                }
            }
        }
        // Copies the file lost since it was opened cannot be read by a retry either:
        // what was read is delivered, and the store is done with.
        if let Err(error) = adoption.check_all_found() {
            tracing::error!(%topic, %error, "failover: some standby copies were unreadable");
        }
        Some(adoption.into_taken())
    }

    async fn adopt_copies(&self, topic: &str, mut copies: Vec<Adoptable>) -> bool {
        // Not `topic()`: asking lookupd for channels to pre-create could wait seconds
        // with the stores locked. The copies name the channels they need.
        let topic = self.get_or_create_topic(topic);
        if self.opts.buggify.failover_skips_deferred {
            let now = self.now_ns();
            copies.retain(|copy| copy.due_ns <= now);
        }
        let messages = copies
            .into_iter()
            .map(|copy| AdoptedMessage {
                message: copy.message,
                due_ns: copy.due_ns,
                channels: copy.channels,
            })
            .collect();
        let adopted = topic.adopt(messages, self.now_ns()).await;
        self.note_topic_write(&adopted);
        match adopted {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(topic = %topic.name, %error, "failover: standby copies could not be queued");
                false
            }
        }
    }
}

impl PeerHost for NsqdInner {
    type Grant = Arc<crate::nsqd::client::ClientShared>;

    async fn authenticate(
        &self,
        secret: &[u8],
        peer: SocketAddr,
    ) -> Result<Self::Grant, ProtocolError> {
        let settings = crate::nsqd::conn::default_settings(self, peer);
        let client = Arc::new(crate::nsqd::client::ClientShared::new(
            self.next_client_id(),
            peer,
            self.now_ns() / 1_000_000_000,
            settings,
        ));
        crate::nsqd::auth::authenticate(self, &client, secret).await?;
        Ok(client)
    }

    async fn may_publish(&self, grant: &Self::Grant, topic: &str) -> Result<(), ProtocolError> {
        crate::nsqd::auth::check(self, grant, "PUB", topic, "").await
    }

    async fn adopt_now(&self, owner: u16) {
        let Some(replication) = &self.replication else {
            return;
        };
        let stores = &replication.stores;
        stores.orphan_copies_of(owner).await;
        let up_to_seq = stores.highest_seq_of(owner).await;
        let rank_wait = stores.rank_wait(
            replication.hello.node_id,
            owner,
            self.opts.replica_failover_timeout,
            !self.opts.buggify.every_peer_takes_over,
        );
        let scope = Scope::EarlierRun { up_to_seq };
        if rank_wait.is_zero() && self.adopt_from(replication, owner, scope).await {
            return;
        }
        let not_before = Instant::now() + rank_wait;
        let owed = Owed {
            up_to_seq,
            not_before,
        };
        replication.adoption_owed.lock().insert(owner, owed);
    }

    fn finished_elsewhere(&self, topic: &str, channel: &str, ids: &[MessageId]) {
        let Some(replication) = &self.replication else {
            return;
        };
        let Some(channel) = self.existing_topic(topic).and_then(|t| t.channel(channel)) else {
            return;
        };
        let mine = replication.hello.node_id;
        let adopted_from = replication.identity.adopted_from();
        let here = ids.iter().copied().filter(|id| {
            guid::node_id_of(id).is_some_and(|node| node == mine || adopted_from.contains(&node))
        });
        channel.finished_elsewhere(here);
    }
}

/// Every [`PING_INTERVAL`], delivers the standby copies of owners silent long enough
/// (`--replica-failover-timeout`, longer for a node ranked after live ones: see
/// [`StandbyStores::owners_due`]), copies taken over by a node lost since, and copies
/// owed since their owner came back blank. A failover that failed (a disk error here) is tried
/// again after a delay that doubles up to [`MAX_FAILOVER_RETRY`]: each try queues again
/// what the failed one had queued, so trying every tick would flood consumers with
/// duplicates while the disk is bad.
pub(crate) async fn failover_loop(nsqd: Arc<NsqdInner>) {
    let Some(replication) = &nsqd.replication else {
        return;
    };
    let mut tick = tokio::time::interval(PING_INTERVAL);
    let mut retry: BTreeMap<u16, (Instant, Duration)> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = nsqd.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let timeout = nsqd.opts.replica_failover_timeout;
        let me = replication.hello.node_id;
        let rank_peers = !nsqd.opts.buggify.every_peer_takes_over;
        let mut due: BTreeMap<u16, Scope> = replication
            .stores
            .owners_due(me, timeout, rank_peers)
            .await
            .into_iter()
            .collect();
        let owed = replication.adoption_owed.lock().clone();
        for (owner, owed) in &owed {
            if Instant::now() >= owed.not_before {
                let up_to_seq = owed.up_to_seq;
                due.entry(*owner).or_insert(Scope::EarlierRun { up_to_seq });
            }
        }
        for (owner, scope) in due {
            if retry
                .get(&owner)
                .is_some_and(|(at, _)| Instant::now() < *at)
            {
                continue;
            }
            match scope {
                Scope::EarlierRun { .. } => tracing::warn!(
                    owner,
                    "failover: copies owed since the owner came back blank"
                ),
                Scope::Orphans => tracing::warn!(
                    owner,
                    "failover: the node that took over copies of this owner is silent"
                ),
                Scope::Silent => tracing::warn!(owner, ?timeout, "failover: owner silent"),
            }
            if nsqd.adopt_from(replication, owner, scope).await {
                retry.remove(&owner);
                replication.settle_owed(owner, scope);
                continue;
            }
            let delay = retry
                .get(&owner)
                .map_or(PING_INTERVAL, |(_, delay)| *delay * 2)
                .min(MAX_FAILOVER_RETRY);
            retry.insert(owner, (Instant::now() + delay, delay));
        }
    }
}
