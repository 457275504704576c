//! The nsqd daemon: topics, channels, client connections, the queue scan loop and the
//! HTTP API, all reached through one [`Nsqd`] handle.
//!
//! # Layout
//! - `options`: every setting with Go's names and defaults; `cli`: argv and TOML into it.
//! - `topic`, `channel`: the message flow (topic → channel copies → clients).
//! - `in_flight`, `deferred`: a channel's priority queues.
//! - `diskqueue`: the go-diskqueue-compatible queue a topic or channel overflows to.
//! - `backend`: a topic's or channel's disk queue as the message flow uses it.
//! - `client`: what is shared about one connection (settings, RDY, counters).
//! - `tcp`: the V2 listener; `conn`: one connection (command reader, message pump and the
//!   IDENTIFY stream upgrades).
//! - `tls`: the TLS server configuration (and system roots) and the handshake.
//! - `auth`: AUTH (asking the auth servers, caching their answer, permission checks).
//! - `scan`: the queue scan loop (timeouts and deferred messages).
//! - `http`: the HTTP API; `stats`: the `/stats` shapes.
//! - `statsd`: the statsd push loop (runs only with `--statsd-address`).
//! - `e2e`: end-to-end latency quantiles over a sliding window (per channel, per topic).
//! - `replication`: replicated topics; `finished_elsewhere`: what peers finished.
//! - `runtime_options`: the options `PUT /config/:opt` changes while nsqd runs.
//! - `metadata`: `nsqd.dat` (load and persist, Go's bytes) and the `--data-path` lock.
//! - `lookup`: the lookupd loop (registrations, PING, re-sync) and channel pre-creation.
//! - `durability`: loading and persisting metadata, the disk loop, health, exit flush.
//! - `buggify`: deliberate bugs the simulator's self-tests switch on (never flags).

mod auth;
pub mod backend;
pub mod buggify;
pub mod channel;
pub mod cli;
pub mod client;
mod conn;
pub mod deferred;
pub mod deferred_spill;
pub mod diskqueue;
pub mod due_journal;
#[cfg(test)]
mod due_restart_tests;
pub mod due_times;
mod durability;
pub mod e2e;
pub mod finished_elsewhere;
pub(crate) mod group_commit;
mod http;
pub mod in_flight;
pub mod lookup;
pub mod metadata;
pub mod options;
pub mod replication;
pub mod runtime_options;
mod scan;
pub mod stats;
mod stats_text;
mod statsd;
mod tcp;
pub mod tls;
pub mod topic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::env::{Env, Listener};
use channel::ChannelRef;
use client::ClientRef;
use runtime_options::{LogLevelHook, LookupdAddresses, RuntimeOptions};
use topic::{Topic, TopicRef};

pub use buggify::Buggify;
pub use options::Options;

/// Why nsqd could not start.
#[derive(Debug, thiserror::Error)]
pub enum NsqdError {
    /// A listener could not be bound.
    #[error("listen ({addr}) failed - {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An option is out of range.
    #[error("{0}")]
    InvalidOption(String),
    /// `--data-path` is locked by another nsqd, or cannot be locked.
    #[error("{0}")]
    DataPath(String),
    /// `nsqd.dat` could not be read.
    #[error("{0}")]
    Metadata(String),
    /// The TLS certificate, key or CA could not be loaded (Go: "failed to build TLS
    /// config").
    #[error("failed to build TLS config - {0}")]
    Tls(#[from] tls::TlsConfigError),
    /// Replication's files could not be opened.
    #[error("failed to start replication - {0}")]
    Replication(#[from] replication::ReplicationStartError),
}

/// The shared state of one nsqd.
pub(crate) struct NsqdInner {
    /// The options nsqd started with. `log_level` and `nsqlookupd_tcp_addresses` keep
    /// their start values here: their current values are in `runtime`.
    pub(crate) opts: Options,
    /// The options `PUT /config/:opt` changes.
    pub(crate) runtime: RuntimeOptions,
    pub(crate) env: Env,
    /// Unix seconds at start.
    pub(crate) start_time: i64,
    topics: Mutex<BTreeMap<String, TopicRef>>,
    clients: Mutex<BTreeMap<u64, ClientRef>>,
    next_client_id: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: crate::env::Tasks,
    tcp_listener: Mutex<Option<Box<dyn Listener>>>,
    http_listener: Mutex<Option<Box<dyn Listener>>>,
    https_listener: Mutex<Option<Box<dyn Listener>>>,
    pub(crate) tcp_addr: SocketAddr,
    pub(crate) http_addr: Option<SocketAddr>,
    /// Where HTTPS listens: only with a TLS certificate and key.
    pub(crate) https_addr: Option<SocketAddr>,
    /// The TLS server configuration, when `--tls-cert` and `--tls-key` are set.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// The client configuration for `https://` auth servers (the system's roots).
    pub(crate) auth_tls: Option<Arc<rustls::ClientConfig>>,
    /// Makes the disk queues (knows `--data-path` and the sizes).
    pub(crate) backends: topic::BackendFactory,
    /// Held until exit so a second nsqd cannot use the same `--data-path`.
    dir_lock: Mutex<Option<crate::env::DirLock>>,
    /// The last disk write error, until a write succeeds (`/ping`, `/stats` health).
    health: Mutex<Option<String>>,
    /// The bytes of the last `nsqd.dat` written, so unchanged metadata is not rewritten.
    last_metadata: Mutex<Option<Vec<u8>>>,
    /// The registration changes and peer answers shared with the lookupd loop.
    pub(crate) lookup: lookup::LookupShared,
    /// Replicated topics (None: `--replication-factor` 1).
    pub(crate) replication: Option<replication::Replication>,
}

/// Starts a new topic when its channel pre-creation ends, however it ends.
struct StartOnDrop<'a>(&'a NsqdInner, &'a TopicRef);

impl Drop for StartOnDrop<'_> {
    fn drop(&mut self) {
        self.1.start(self.0.now_ns());
    }
}

/// `--data-path`, or the current directory when empty (as Go does).
pub(crate) fn data_path(opts: &Options) -> std::path::PathBuf {
    if opts.data_path.is_empty() {
        std::path::PathBuf::from(".")
    } else {
        std::path::PathBuf::from(&opts.data_path)
    }
}

/// A running nsqd. Cheap to clone; every clone is the same daemon.
#[derive(Clone)]
pub struct Nsqd {
    inner: Arc<NsqdInner>,
}

impl std::fmt::Debug for Nsqd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nsqd")
            .field("tcp_addr", &self.inner.tcp_addr)
            .field("http_addr", &self.inner.http_addr)
            .finish_non_exhaustive()
    }
}

impl Nsqd {
    /// Validates `opts` and binds the listeners; nothing is served until [`Nsqd::run`].
    pub async fn new(opts: Options, env: Env) -> Result<Nsqd, NsqdError> {
        let task_mode = env.tasks;
        validate(&opts)?;
        let backends = durability::backend_factory(&env, &opts);
        let dir_lock = metadata::lock_data_path(&*env.fs, &backends.data_path)
            .await
            .map_err(|e| NsqdError::DataPath(e.to_string()))?;
        let tcp = bind(&env, &opts.tcp_address).await?;
        let tcp_addr = local_addr(&*tcp, &opts.tcp_address)?;
        let (http, http_addr) = if opts.http_address.is_empty() {
            (None, None)
        } else {
            let listener = bind(&env, &opts.http_address).await?;
            let addr = local_addr(&*listener, &opts.http_address)?;
            (Some(listener), Some(addr))
        };
        let tls = tls::server_config(&opts, &env).await?;
        let auth_tls = if opts.auth_http_addresses.iter().any(|a| auth::is_https(a)) {
            Some(tls::system_client_config(&env).await?)
        } else {
            None
        };
        let (https, https_addr) = match (&tls, opts.https_address.is_empty()) {
            (Some(_), false) => {
                let listener = bind(&env, &opts.https_address).await?;
                let addr = local_addr(&*listener, &opts.https_address)?;
                (Some(listener), Some(addr))
            }
            _ => (None, None),
        };
        let replication =
            replication::Replication::open(&opts, &env, &backends.data_path, tcp_addr).await?;
        let start_time = env.clock.now_ns() / 1_000_000_000;
        tracing::info!(version = options::VERSION, tcp = %tcp_addr, http = ?http_addr, "nsqd starting");
        let nsqd = Nsqd {
            inner: Arc::new(NsqdInner {
                runtime: RuntimeOptions::new(&opts),
                opts,
                env,
                start_time,
                topics: Mutex::new(BTreeMap::new()),
                clients: Mutex::new(BTreeMap::new()),
                next_client_id: AtomicU64::new(1),
                shutdown: CancellationToken::new(),
                tasks: crate::env::Tasks::new(task_mode),
                tcp_listener: Mutex::new(Some(tcp)),
                http_listener: Mutex::new(http),
                https_listener: Mutex::new(https),
                tcp_addr,
                http_addr,
                https_addr,
                tls,
                auth_tls,
                backends,
                dir_lock: Mutex::new(Some(dir_lock)),
                health: Mutex::new(None),
                last_metadata: Mutex::new(None),
                lookup: lookup::LookupShared::default(),
                replication,
            }),
        };
        nsqd.inner.load_metadata().await?;
        nsqd.inner.lookup.registrations.activate();
        Ok(nsqd)
    }

    /// The address the TCP protocol listens on.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.inner.tcp_addr
    }

    /// The address the HTTPS API listens on, if TLS is configured.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.inner.https_addr
    }

    /// The address the HTTP API listens on, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.inner.http_addr
    }

    /// Installs what applies a log level changed by `PUT /config/log_level` to the
    /// process's logging. Without a hook the change is only stored (and shown by `GET`).
    pub fn set_log_level_hook(&self, hook: LogLevelHook) {
        self.inner.runtime.set_log_level_hook(hook);
    }

    /// The nsqlookupd addresses, marked changed on every `PUT
    /// /config/nsqlookupd_tcp_addresses`; the lookupd loop reconnects on a change.
    pub fn watch_lookupd_addresses(&self) -> tokio::sync::watch::Receiver<LookupdAddresses> {
        self.inner.runtime.watch_lookupd_addresses()
    }

    /// Serves until [`Nsqd::shutdown`] is called.
    pub async fn run(&self) -> Result<(), NsqdError> {
        let inner = &self.inner;
        if let Some(listener) = inner.tcp_listener.lock().take() {
            inner.tasks.spawn(tcp::accept_loop(inner.clone(), listener));
        }
        if let Some(listener) = inner.http_listener.lock().take() {
            inner.tasks.spawn(http::serve(inner.clone(), listener));
        }
        if let (Some(listener), Some(tls)) = (inner.https_listener.lock().take(), &inner.tls) {
            inner
                .tasks
                .spawn(http::serve_https(inner.clone(), listener, tls.clone()));
        }
        inner.tasks.spawn(scan::queue_scan_loop(inner.clone()));
        if !inner.opts.statsd_address.is_empty() {
            inner.tasks.spawn(statsd::statsd_loop(inner.clone()));
        }
        inner.tasks.spawn(durability::disk_loop(inner.clone()));
        inner.tasks.spawn(lookup::lookup_loop(inner.clone()));
        if let Some(replication) = &inner.replication {
            replication
                .replicator
                .start(&inner.env, &inner.tasks, &inner.shutdown);
            inner
                .tasks
                .spawn(replication::node::failover_loop(inner.clone()));
        }
        inner.shutdown.cancelled().await;
        Ok(())
    }

    /// Stops every loop and closes every connection; returns when all tasks ended.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        tracing::info!("nsqd exiting");
        inner.shutdown.cancel();
        let clients: Vec<ClientRef> = inner.clients.lock().values().cloned().collect();
        for client in clients {
            client.close.cancel();
        }
        inner.tasks.close();
        inner.tasks.wait().await;
        inner.flush_to_disk().await;
        if let Some(replication) = &inner.replication {
            replication.stores.sync_all().await;
            if let Err(error) = replication.identity.exited_gracefully().await {
                tracing::error!(%error, "failed to note the graceful exit in replication.dat");
            }
        }
        inner.dir_lock.lock().take();
    }
}

fn validate(opts: &Options) -> Result<(), NsqdError> {
    if !(0..1024).contains(&opts.id) {
        return Err(NsqdError::InvalidOption(format!(
            "--node-id must be [0,1024), got {}",
            opts.id
        )));
    }
    if !(1..=9).contains(&opts.max_deflate_level) {
        return Err(NsqdError::InvalidOption(
            "--max-deflate-level must be [1,9]".into(),
        ));
    }
    // The CLI refuses 1 s or less (Go's limit); the library only needs a timer period.
    if !opts.statsd_address.is_empty() && opts.statsd_interval.is_zero() {
        return Err(NsqdError::InvalidOption(
            "--statsd-interval must be positive".into(),
        ));
    }
    Ok(())
}

async fn bind(env: &Env, addr: &str) -> Result<Box<dyn Listener>, NsqdError> {
    env.net
        .bind_tcp(addr)
        .await
        .map_err(|source| NsqdError::Listen {
            addr: addr.to_string(),
            source,
        })
}

fn local_addr(listener: &dyn Listener, addr: &str) -> Result<SocketAddr, NsqdError> {
    listener.local_addr().map_err(|source| NsqdError::Listen {
        addr: addr.to_string(),
        source,
    })
}

impl NsqdInner {
    /// Wall time in ns.
    pub(crate) fn now_ns(&self) -> i64 {
        self.env.clock.now_ns()
    }

    /// The topic `name`, created if missing (the caller validated the name). A new topic
    /// is registered with every lookupd, but its channels are not pre-created: use
    /// [`NsqdInner::topic`] where that matters (everywhere but metadata load).
    pub(crate) fn get_or_create_topic(&self, name: &str) -> TopicRef {
        self.get_or_create_topic_inner(name, false).0
    }

    /// Go's `GetTopic`: the topic `name`, created if missing; a new topic first gets the
    /// non-ephemeral channels the lookupds know of it (nsq-reference §4.1), so the caller
    /// publishes only once they exist. Until then the topic holds what others publish to
    /// it (Go's not-yet-started message pump), so those messages reach them too.
    pub(crate) async fn topic(&self, name: &str) -> TopicRef {
        let (topic, lookupd_http) = self.get_or_create_topic_inner(name, true);
        if let Some(lookupd_http) = lookupd_http {
            // Started however this ends, even if the caller goes away mid-query.
            let _start = StartOnDrop(self, &topic);
            self.precreate_channels(&topic, &lookupd_http).await;
        }
        topic
    }

    /// The topic and, when it was just created, the lookupd HTTP addresses to ask for its
    /// channels (none when `precreate` is false); it holds its messages if there are any.
    fn get_or_create_topic_inner(
        &self,
        name: &str,
        precreate: bool,
    ) -> (TopicRef, Option<Vec<String>>) {
        let mut topics = self.topics.lock();
        if let Some(topic) = topics.get(name) {
            if !topic.is_exiting() {
                return (topic.clone(), None);
            }
        }
        let lookupd_http = if precreate {
            self.lookup.http_addresses()
        } else {
            Vec::new()
        };
        let mut topic = Topic::new(
            name,
            self.opts.id,
            self.opts.mem_queue_size,
            self.opts.max_channel_consumers,
            e2e::E2eConfig::from_options(&self.opts),
            Some(self.backends.clone()),
        )
        .with_registrations(self.lookup.registrations.clone());
        if let Some(replication) = &self.replication {
            topic = topic.with_watcher(replication.replicator.clone());
        }
        if !lookupd_http.is_empty() {
            topic = topic.hold_until_started();
        }
        let topic = Arc::new(topic);
        topics.insert(name.to_string(), topic.clone());
        self.lookup.registrations.register(name, None);
        tracing::info!(topic = %name, "new topic");
        (topic, precreate.then_some(lookupd_http))
    }

    /// Asks every lookupd for the channels of the new `topic` and creates the
    /// non-ephemeral ones (ephemeral channels have no consumer here yet).
    async fn precreate_channels(&self, topic: &TopicRef, addresses: &[String]) {
        if addresses.is_empty() {
            if !self.runtime.lookupd_addresses().addresses.is_empty() {
                tracing::error!(topic = %topic.name, "no available nsqlookupd to query for channels to pre-create");
            }
            return;
        }
        let timeouts = lookup::channels::HttpTimeouts {
            connect: self.opts.http_client_connect_timeout,
            request: self.opts.http_client_request_timeout,
        };
        let channels = match lookup::channels::lookupd_topic_channels(
            &*self.env.net,
            addresses,
            &topic.name,
            timeouts,
        )
        .await
        {
            Ok(channels) => channels,
            Err(error) => {
                tracing::warn!(topic = %topic.name, %error, "failed to query nsqlookupd for channels to pre-create");
                return;
            }
        };
        for name in channels {
            if crate::protocol::names::is_ephemeral(&name)
                || !crate::protocol::names::is_valid_channel_name(&name)
            {
                continue;
            }
            let _ = topic.get_or_create_channel(&name, self.now_ns());
        }
    }

    /// The topic `name` if it exists (Go's `GetExistingTopic`).
    pub(crate) fn existing_topic(&self, name: &str) -> Option<TopicRef> {
        self.topics.lock().get(name).cloned()
    }

    /// Deletes the topic `name` (Go's `DeleteExistingTopic`): its channels go, their
    /// clients are disconnected and every message is dropped. False when there is none.
    pub(crate) fn delete_topic(&self, name: &str) -> bool {
        let (topic, channels) = {
            // Under the map's lock, so a topic of the same name made next registers after
            // this one unregisters.
            let mut topics = self.topics.lock();
            let Some(topic) = topics.remove(name) else {
                return false;
            };
            let channels = topic.delete();
            self.unregister_deleted(&topic, &channels);
            if let (Some(replication), false) = (&self.replication, topic.ephemeral) {
                replication.replicator.topic_deleted(&topic.name);
            }
            (topic, channels)
        };
        self.tasks
            .spawn(async move { topic.delete_files(&channels).await });
        tracing::info!(topic = %name, "deleted topic");
        true
    }

    /// Queues `UNREGISTER topic`, then `UNREGISTER topic channel` for each of its deleted
    /// channels, in Go's order.
    fn unregister_deleted(&self, topic: &Topic, channels: &[ChannelRef]) {
        let registrations = &self.lookup.registrations;
        registrations.unregister(&topic.name, None);
        for channel in channels {
            registrations.unregister(&topic.name, Some(&channel.name));
        }
    }

    /// Deletes `topic`'s channel `name` (Go's `DeleteExistingChannel`), and the topic too
    /// when it is ephemeral and that was its last channel. False when there is none.
    pub(crate) fn delete_channel(&self, topic: &TopicRef, name: &str) -> bool {
        if let Some(backend) = topic.channel(name).and_then(|c| c.backend().cloned()) {
            self.tasks.spawn(async move {
                if let Err(error) = backend.delete().await {
                    tracing::error!(%error, "failed to delete a channel's disk queue files");
                }
            });
        }
        match topic.delete_channel(name) {
            None => false,
            Some(last_of_ephemeral_topic) => {
                if last_of_ephemeral_topic {
                    self.remove_topic(topic);
                }
                true
            }
        }
    }

    /// Every topic, by name.
    pub(crate) fn topics(&self) -> Vec<TopicRef> {
        self.topics.lock().values().cloned().collect()
    }

    /// Every channel of every topic (the queue scan loop's work list).
    pub(crate) fn channels(&self) -> Vec<ChannelRef> {
        self.topics().iter().flat_map(|t| t.channels()).collect()
    }

    /// Deletes and removes a topic that lost its last channel (an ephemeral topic). It is
    /// unregistered only if it is still the one in the map: a newer topic of the same name
    /// has registered itself already.
    pub(crate) fn remove_topic(&self, topic: &TopicRef) {
        let mut topics = self.topics.lock();
        let channels = topic.delete();
        if let Some(current) = topics.get(&topic.name) {
            if Arc::ptr_eq(current, topic) {
                topics.remove(&topic.name);
                self.unregister_deleted(topic, &channels);
                tracing::info!(topic = %topic.name, "deleted topic");
            }
        }
    }

    /// A new, unique client id.
    pub(crate) fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a connected client (for `/stats` producers and shutdown).
    pub(crate) fn add_client(&self, client: ClientRef) {
        self.clients.lock().insert(client.id, client);
    }

    /// Forgets a disconnected client.
    pub(crate) fn remove_client(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Every connected client, by id.
    pub(crate) fn clients(&self) -> Vec<ClientRef> {
        self.clients.lock().values().cloned().collect()
    }
}
