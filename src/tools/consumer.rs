//! go-nsq's `Consumer` as the tools need it: one subscription (topic, channel) over every
//! nsqd given directly or found through nsqlookupd, `max_in_flight` spread over the
//! connections, messages handed out one at a time with a way to FIN or REQ each, and a
//! graceful stop (CLS, then wait for what is in flight to be answered).
//!
//! After a failed message it backs off as go-nsq does ([`super::backoff`]). Not yet here:
//! AUTH.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::backoff::{Backoff, Outcome, Step};
use super::handshake::{self, HandshakeError};
use super::nsq_config::NsqConfig;
use crate::client::{lookup_nsqds, ClientError, Connection, Frame};
use crate::env::Env;
use crate::http_client::HttpTimeouts;
use crate::protocol::commands::Command;
use crate::protocol::frame::CLOSE_WAIT;
use crate::protocol::message::{Message, MessageId};

/// How long a stopping connection waits for its in-flight messages to be answered, as
/// go-nsq's `Stop` does.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What to subscribe to, where, and with which go-nsq options.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The topic.
    pub topic: String,
    /// The channel.
    pub channel: String,
    /// nsqds to connect to directly (`--nsqd-tcp-address`).
    pub nsqd_tcp_addresses: Vec<String>,
    /// nsqlookupds to find the topic's nsqds through (`--lookupd-http-address`).
    pub lookupd_http_addresses: Vec<String>,
    /// go-nsq's options (`--consumer-opt`, `--max-in-flight`).
    pub config: NsqConfig,
}

/// Why go-nsq's `NewConsumer` refuses a subscription.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The config fails go-nsq's `Validate` (`invalid MaxInFlight ! -1 < 0`).
    #[error(transparent)]
    Config(#[from] super::nsq_config::ConfigError),
    /// The topic is not a valid NSQ name.
    #[error("invalid topic name")]
    Topic,
    /// The channel is not a valid NSQ name.
    #[error("invalid channel name")]
    Channel,
}

impl Subscription {
    /// go-nsq's `NewConsumer` checks, in its order: the config, the topic, the channel.
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        self.config.validate()?;
        if !crate::protocol::names::is_valid_topic_name(&self.topic) {
            return Err(SubscriptionError::Topic);
        }
        if !crate::protocol::names::is_valid_channel_name(&self.channel) {
            return Err(SubscriptionError::Channel);
        }
        Ok(())
    }
}

/// Why a consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// An nsqd given directly could not be reached or refused the subscription (go-nsq's
    /// `ConnectToNSQD` error, fatal in the tools).
    #[error("{address}: {source}")]
    Connect {
        /// The nsqd's address.
        address: String,
        /// What went wrong.
        #[source]
        source: SubscribeError,
    },
}

/// Why one nsqd connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// Dialling, IDENTIFY, an upgrade or AUTH failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// SUB failed.
    #[error("failed to subscribe - {0}")]
    Sub(#[from] ClientError),
}

/// An answer to a delivered message, sent back to the connection it came on.
#[derive(Debug)]
enum Reply {
    Finish(MessageId),
    Requeue(MessageId, i64),
}

/// One message handed to the tool, with the way back to its connection.
pub struct Delivery {
    /// The message as nsqd sent it.
    pub message: Message,
    replies: mpsc::UnboundedSender<Reply>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// FIN: the message is done (a success, for the backoff).
    pub fn finish(self) {
        let _ = self.replies.send(Reply::Finish(self.message.id));
        record(&self.shared, Outcome::Finished);
    }

    /// REQ without delay and without backoff: handed back unseen (e.g. while stopping).
    pub fn requeue_now(self) {
        let _ = self.replies.send(Reply::Requeue(self.message.id, 0));
        record(&self.shared, Outcome::Neutral);
    }

    /// REQ after a failure, with go-nsq's default delay (`default_requeue_delay` ×
    /// attempts, at most `max_requeue_delay`), and backoff.
    pub fn requeue(self) {
        let config = &self.shared.subscription.config;
        let delay = config.requeue_delay(self.message.attempts);
        let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        let _ = self.replies.send(Reply::Requeue(self.message.id, ms));
        record(&self.shared, Outcome::Failed);
    }
}

/// What RDY the connections should hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RdyPlan {
    /// Each its share of `max_in_flight` (capped by its nsqd's `max_rdy_count`).
    Share(i64),
    /// All at 0: backing off.
    Paused,
    /// Only this connection at 1: testing the water after a backoff pause.
    One(u64),
}

/// What every connection task shares.
struct Shared {
    subscription: Subscription,
    env: Env,
    deliveries: mpsc::Sender<Delivery>,
    connected: std::sync::Mutex<BTreeSet<String>>,
    connections: AtomicUsize,
    /// Live connections, by id (one is picked for RDY 1 after a backoff pause).
    live: std::sync::Mutex<Vec<u64>>,
    next_id: AtomicU64,
    /// The RDY the connections should hold.
    rdy: watch::Sender<RdyPlan>,
    backoff: std::sync::Mutex<Backoff>,
    stopping: watch::Sender<bool>,
}

/// A running subscription. Read messages with [`next`](Self::next); [`stop`](Self::stop)
/// closes gracefully, after which `next` returns what was already delivered and then
/// `None`.
pub struct Consumer {
    shared: Arc<Shared>,
    deliveries: mpsc::Receiver<Delivery>,
    tasks: JoinSet<()>,
}

impl Consumer {
    /// Connects as go-nsq's `ConnectToNSQDs` then `ConnectToNSQLookupds` do: every nsqd
    /// given directly must accept the subscription; nsqlookupd failures are only logged,
    /// and nsqlookupd is asked again every `lookupd_poll_interval`.
    pub async fn start(env: Env, mut subscription: Subscription) -> Result<Self, ConsumerError> {
        for address in &mut subscription.lookupd_http_addresses {
            *address = lookupd_host_port(address).to_string();
        }
        let buffer = usize::try_from(subscription.config.max_in_flight.max(1)).unwrap_or(1);
        let (deliveries_tx, deliveries) = mpsc::channel(buffer);
        let (rdy, _) = watch::channel(RdyPlan::Share(0));
        let (stopping, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            subscription,
            env,
            deliveries: deliveries_tx,
            connected: std::sync::Mutex::new(BTreeSet::new()),
            connections: AtomicUsize::new(0),
            live: std::sync::Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            rdy,
            backoff: std::sync::Mutex::new(Backoff::default()),
            stopping,
        });
        let mut tasks = JoinSet::new();
        for address in shared.subscription.nsqd_tcp_addresses.clone() {
            let conn =
                subscribe(&shared, &address)
                    .await
                    .map_err(|source| ConsumerError::Connect {
                        address: address.clone(),
                        source,
                    })?;
            let shared = shared.clone();
            tasks.spawn(async move { run_direct(shared, address, conn).await });
        }
        if !shared.subscription.lookupd_http_addresses.is_empty() {
            poll_lookupd_once(&shared, &mut tasks).await;
            let shared_for_poll = shared.clone();
            tasks.spawn(async move { poll_lookupd(shared_for_poll).await });
        }
        Ok(Consumer {
            shared,
            deliveries,
            tasks,
        })
    }

    /// The next message, or `None` once stopped and every connection has closed.
    /// Messages over go-nsq's `max_attempts` are FIN'd here without being returned, as
    /// go-nsq does. Cancel-safe.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            let delivery = if self.tasks.is_empty() {
                self.deliveries.try_recv().ok()?
            } else {
                tokio::select! {
                    biased;
                    Some(delivery) = self.deliveries.recv() => delivery,
                    _ = self.tasks.join_next() => continue,
                }
            };
            let max_attempts = self.shared.subscription.config.max_attempts;
            if max_attempts > 0 && delivery.message.attempts > max_attempts {
                tracing::warn!(
                    id = %delivery.message.id,
                    attempts = delivery.message.attempts,
                    "giving up on a message"
                );
                delivery.finish();
                continue;
            }
            return Some(delivery);
        }
    }

    /// Starts a graceful stop: CLS on every connection; each closes once nsqd has
    /// answered `CLOSE_WAIT` and every message it delivered is answered (or after 30 s).
    pub fn stop(&self) {
        self.shared.stopping.send_replace(true);
    }

    /// Waits until every connection has closed (after [`stop`](Self::stop)); messages
    /// still undelivered to the tool are given back to nsqd at once.
    pub async fn wait(mut self) {
        loop {
            tokio::select! {
                Some(delivery) = self.deliveries.recv() => delivery.requeue_now(),
                joined = self.tasks.join_next() => {
                    if joined.is_none() {
                        break;
                    }
                }
            }
        }
    }
}

/// The `host:port` of a `--lookupd-http-address`, which go-nsq also takes as a URL
/// (`http://host:port/lookup`): the scheme and path are dropped.
fn lookupd_host_port(address: &str) -> &str {
    let address = address.strip_prefix("http://").unwrap_or(address);
    address.split('/').next().unwrap_or(address)
}

/// Dials, identifies, upgrades and subscribes; returns the connection and the RDY limit
/// nsqd announced.
async fn subscribe(shared: &Shared, address: &str) -> Result<(Connection, i64), SubscribeError> {
    let opened = handshake::open(&*shared.env.net, address, &shared.subscription.config).await?;
    let max_rdy = opened.max_rdy_count();
    let mut conn = opened.conn;
    let sub = Command::Sub {
        topic: shared.subscription.topic.clone(),
        channel: shared.subscription.channel.clone(),
    };
    conn.request_ok(&sub).await?;
    tracing::info!(nsqd = address, "connected");
    Ok((conn, max_rdy))
}

/// A directly given nsqd: served, and reconnected every `lookupd_poll_interval` after a
/// loss (go-nsq's rule) until the consumer stops.
async fn run_direct(shared: Arc<Shared>, address: String, first: (Connection, i64)) {
    let mut next = Some(first);
    loop {
        if let Some((conn, max_rdy)) = next.take() {
            serve(&shared, &address, conn, max_rdy).await;
        }
        if *shared.stopping.borrow() {
            return;
        }
        let interval = shared.subscription.config.lookupd_poll_interval;
        tracing::info!(nsqd = %address, "re-connecting in {}", go_duration(interval));
        let mut stopping = shared.stopping.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            () = stopped(&mut stopping) => return,
        }
        match subscribe(&shared, &address).await {
            Ok(connected) => next = Some(connected),
            Err(error) => tracing::error!(nsqd = %address, %error, "error connecting to nsqd"),
        }
    }
}

/// Asks every nsqlookupd now and connects to the nsqds it names that are not connected.
async fn poll_lookupd_once(shared: &Arc<Shared>, tasks: &mut JoinSet<()>) {
    let config = &shared.subscription.config;
    let timeouts = HttpTimeouts {
        connect: config.lookupd_poll_timeout,
        request: config.lookupd_poll_timeout,
    };
    let found = match lookup_nsqds(
        &*shared.env.net,
        &shared.subscription.lookupd_http_addresses,
        &shared.subscription.topic,
        timeouts,
    )
    .await
    {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(%error, "error querying nsqlookupd");
            return;
        }
    };
    for address in found {
        let known = shared
            .connected
            .lock()
            .map(|connected| connected.contains(&address))
            .unwrap_or(true);
        if known {
            continue;
        }
        match subscribe(shared, &address).await {
            Ok((conn, max_rdy)) => {
                let shared = shared.clone();
                tasks.spawn(async move { serve(&shared, &address, conn, max_rdy).await });
            }
            Err(error) => tracing::error!(nsqd = %address, %error, "error connecting to nsqd"),
        }
    }
}

/// Asks nsqlookupd again every `lookupd_poll_interval` (after a random part of it, go-nsq's
/// jitter) until the consumer stops.
async fn poll_lookupd(shared: Arc<Shared>) {
    let config = &shared.subscription.config;
    let jitter = config
        .lookupd_poll_interval
        .mul_f64(shared.env.rng.below(1_000_000) as f64 / 1e6 * config.lookupd_poll_jitter);
    let mut stopping = shared.stopping.subscribe();
    let mut tasks = JoinSet::new();
    let mut wait = jitter;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            () = stopped(&mut stopping) => break,
        }
        poll_lookupd_once(&shared, &mut tasks).await;
        wait = config.lookupd_poll_interval;
    }
    while tasks.join_next().await.is_some() {}
}

/// Serves one subscribed connection until it closes: messages go to the tool, replies go
/// back to nsqd, RDY follows the share of `max_in_flight`, and a stop sends CLS.
async fn serve(shared: &Arc<Shared>, address: &str, mut conn: Connection, max_rdy: i64) {
    if let Ok(mut connected) = shared.connected.lock() {
        connected.insert(address.to_string());
    }
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut live) = shared.live.lock() {
        live.push(id);
    }
    let count = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
    update_rdy(shared, count);
    let result = pump(shared, &mut conn, max_rdy, id).await;
    if let Ok(mut live) = shared.live.lock() {
        live.retain(|other| *other != id);
    }
    if let Err(error) = result {
        if !*shared.stopping.borrow() {
            tracing::warn!(nsqd = address, %error, "connection closed");
        }
    }
    let _ = conn.shutdown().await;
    let count = shared.connections.fetch_sub(1, Ordering::SeqCst) - 1;
    update_rdy(shared, count);
    if let Ok(mut connected) = shared.connected.lock() {
        connected.remove(address);
    }
}

/// go-nsq's share: `max_in_flight / connections`, at least 1, at most `max_in_flight`.
fn share(shared: &Shared, connections: usize) -> i64 {
    let max_in_flight = shared.subscription.config.max_in_flight;
    let connections = i64::try_from(connections.max(1)).unwrap_or(i64::MAX);
    (max_in_flight / connections).max(1).min(max_in_flight)
}

/// A connection came or went: the shares change, unless a backoff holds RDY.
fn update_rdy(shared: &Shared, connections: usize) {
    let backing_off = shared.backoff.lock().is_ok_and(|b| b.active());
    if !backing_off {
        shared
            .rdy
            .send_replace(RdyPlan::Share(share(shared, connections)));
    }
}

/// Feeds a message's outcome to the backoff and applies its decision.
fn record(shared: &Arc<Shared>, outcome: Outcome) {
    let random = shared.env.rng.below(1_000_000) as f64 / 1e6;
    let step = match shared.backoff.lock() {
        Ok(mut backoff) => backoff.record(outcome, &shared.subscription.config, random),
        Err(_) => return,
    };
    match step {
        Step::Stay => {}
        Step::Resume => {
            tracing::warn!("exiting backoff, returning all to RDY");
            let connections = shared.connections.load(Ordering::SeqCst);
            shared
                .rdy
                .send_replace(RdyPlan::Share(share(shared, connections)));
        }
        Step::Pause(pause) => {
            tracing::warn!(
                "backing off for {}, setting all to RDY 0",
                go_duration(pause)
            );
            shared.rdy.send_replace(RdyPlan::Paused);
            tokio::spawn(end_pause(shared.clone(), pause));
        }
    }
}

/// After a backoff pause: one connection, picked at random, gets RDY 1; with none, wait
/// a second and try again (go-nsq's rule).
async fn end_pause(shared: Arc<Shared>, mut pause: Duration) {
    loop {
        tokio::time::sleep(pause).await;
        let live = shared
            .live
            .lock()
            .map(|live| live.clone())
            .unwrap_or_default();
        if let Some(&id) = live.get(shared.env.rng.below(live.len() as u64) as usize) {
            if let Ok(mut backoff) = shared.backoff.lock() {
                backoff.timeout_over();
            }
            shared.rdy.send_replace(RdyPlan::One(id));
            return;
        }
        if *shared.stopping.borrow() {
            return;
        }
        tracing::warn!("no connection available to resume, backing off for 1s");
        pause = Duration::from_secs(1);
    }
}

async fn pump(
    shared: &Arc<Shared>,
    conn: &mut Connection,
    max_rdy: i64,
    id: u64,
) -> Result<(), ClientError> {
    let (replies_tx, mut replies) = mpsc::unbounded_channel();
    let mut rdy = shared.rdy.subscribe();
    let mut stopping = shared.stopping.subscribe();
    let mut sent_rdy = -1;
    let mut outstanding: i64 = 0;
    let mut closing = false;
    let mut stop_deadline = None;
    loop {
        let wanted = if closing {
            0
        } else {
            match *rdy.borrow_and_update() {
                RdyPlan::Share(share) => share.min(max_rdy),
                RdyPlan::Paused => 0,
                RdyPlan::One(chosen) => i64::from(chosen == id),
            }
        };
        if wanted != sent_rdy && !closing {
            conn.send(&Command::Rdy { count: wanted });
            conn.flush().await?;
            sent_rdy = wanted;
        }
        if closing && outstanding == 0 && stop_deadline.is_some() {
            return Ok(());
        }
        let far = tokio::time::Instant::now() + STOP_TIMEOUT;
        let deadline = stop_deadline.unwrap_or(far);
        tokio::select! {
            frame = conn.read_frame() => {
                match frame? {
                    Frame::Message(message) => {
                        outstanding += 1;
                        let delivery = Delivery {
                            message,
                            replies: replies_tx.clone(),
                            shared: shared.clone(),
                        };
                        if shared.deliveries.send(delivery).await.is_err() {
                            return Ok(());
                        }
                    }
                    Frame::Response(data) if data == CLOSE_WAIT => {
                        stop_deadline = Some(tokio::time::Instant::now() + STOP_TIMEOUT);
                    }
                    Frame::Response(_) => {}
                    Frame::Error(data) => {
                        tracing::error!(error = %String::from_utf8_lossy(&data), "nsqd answered an error");
                    }
                }
            }
            Some(reply) = replies.recv() => {
                outstanding -= 1;
                match reply {
                    Reply::Finish(id) => conn.send(&Command::Fin { id }),
                    Reply::Requeue(id, timeout_ms) => conn.send(&Command::Req { id, timeout_ms }),
                }
                conn.flush().await?;
            }
            Ok(()) = rdy.changed(), if !closing => {}
            () = stopped(&mut stopping), if !closing => {
                closing = true;
                conn.send(&Command::Cls);
                conn.flush().await?;
            }
            _ = tokio::time::sleep_until(deadline), if stop_deadline.is_some() => {
                tracing::warn!(outstanding, "closing with messages unanswered");
                return Ok(());
            }
        }
    }
}

/// Resolves once `stopping` turns true (never, if its sender is gone first).
pub(crate) async fn stopped(stopping: &mut watch::Receiver<bool>) {
    if stopping.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A duration as Go prints it (`1m30s`), for log lines.
pub(crate) fn go_duration(duration: Duration) -> String {
    crate::go_time::format_go_duration(crate::go_time::go_nanos(duration))
}
