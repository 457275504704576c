//! What nsqd knows about one connected client, shared between its connection tasks, the
//! channel it subscribed to, the queue scan loop and `/stats`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::protocol::ClientState;

/// The settings a client chose with IDENTIFY (or the defaults).
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// IDENTIFY `client_id` (defaults to the remote IP).
    pub client_id: String,
    /// IDENTIFY `hostname` (defaults to the remote IP).
    pub hostname: String,
    /// IDENTIFY `user_agent`.
    pub user_agent: String,
    /// Heartbeat interval in ms; `<= 0` disables heartbeats and read deadlines.
    pub heartbeat_interval_ms: i64,
    /// Output buffer size in bytes (1 means unbuffered).
    pub output_buffer_size: i64,
    /// Output buffer timeout in ms (0 disables the timed flush).
    pub output_buffer_timeout_ms: i64,
    /// Sampling rate 0..=99 (0: every message).
    pub sample_rate: i64,
    /// How long a message may stay in flight with this client, in ms.
    pub msg_timeout_ms: i64,
}

/// One client connection's shared state and counters.
#[derive(Debug)]
pub struct ClientShared {
    /// nsqd-wide unique id (Go's `clientIDSequence`).
    pub id: u64,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// When it connected (unix seconds).
    pub connect_ts: i64,
    /// The IDENTIFY settings.
    pub settings: Mutex<ClientSettings>,
    state: AtomicU8,
    ready_count: AtomicI64,
    in_flight_count: AtomicI64,
    /// Messages sent to this client.
    pub message_count: AtomicU64,
    /// Messages this client FINished.
    pub finish_count: AtomicU64,
    /// Messages this client REQueued.
    pub requeue_count: AtomicU64,
    /// Messages this client published, per topic (Go's `pub_counts`).
    pub pub_counts: Mutex<BTreeMap<String, u64>>,
    /// Wakes the message pump when RDY or in-flight changed.
    pub ready_changed: Notify,
    /// Cancelled to close the connection from the daemon's side (channel deleted, exit).
    pub close: CancellationToken,
    /// The stream upgrades IDENTIFY negotiated (TLS, snappy, deflate).
    pub transport: Mutex<Transport>,
    /// What the auth servers granted this connection (AUTH).
    pub(crate) auth: Mutex<super::auth::AuthSession>,
}

/// What the connection's stream was upgraded to, for `/stats`, the TLS-required check and
/// the auth server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    /// The TLS handshake's outcome, once upgraded.
    pub tls: Option<crate::nsqd::tls::TlsInfo>,
    /// Snappy framing is on.
    pub snappy: bool,
    /// Raw deflate is on.
    pub deflate: bool,
}

impl ClientShared {
    /// A freshly connected client in state `init` with nsqd's defaults.
    pub fn new(
        id: u64,
        remote_addr: SocketAddr,
        connect_ts: i64,
        settings: ClientSettings,
    ) -> Self {
        ClientShared {
            id,
            remote_addr,
            connect_ts,
            settings: Mutex::new(settings),
            state: AtomicU8::new(ClientState::Init as u8),
            ready_count: AtomicI64::new(0),
            in_flight_count: AtomicI64::new(0),
            message_count: AtomicU64::new(0),
            finish_count: AtomicU64::new(0),
            requeue_count: AtomicU64::new(0),
            pub_counts: Mutex::new(BTreeMap::new()),
            ready_changed: Notify::new(),
            close: CancellationToken::new(),
            transport: Mutex::new(Transport::default()),
            auth: Mutex::new(super::auth::AuthSession::default()),
        }
    }

    /// The protocol state.
    pub fn state(&self) -> ClientState {
        match self.state.load(Ordering::Acquire) {
            0 => ClientState::Init,
            1 => ClientState::Disconnected,
            2 => ClientState::Connected,
            3 => ClientState::Subscribed,
            _ => ClientState::Closing,
        }
    }

    /// Moves to `state`.
    pub fn set_state(&self, state: ClientState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// The client's RDY count.
    pub fn ready_count(&self) -> i64 {
        self.ready_count.load(Ordering::Acquire)
    }

    /// Messages in flight with this client.
    pub fn in_flight_count(&self) -> i64 {
        self.in_flight_count.load(Ordering::Acquire)
    }

    /// Sets RDY and wakes the pump.
    pub fn set_ready_count(&self, count: i64) {
        self.ready_count.store(count, Ordering::Release);
        self.ready_changed.notify_one();
    }

    /// How many more messages may be sent now: `RDY - in_flight`, never negative.
    pub fn room(&self) -> i64 {
        (self.ready_count() - self.in_flight_count()).max(0)
    }

    /// Counts `n` messages sent.
    pub fn sent_messages(&self, n: u64) {
        self.in_flight_count.fetch_add(n as i64, Ordering::AcqRel);
        self.message_count.fetch_add(n, Ordering::Relaxed);
    }

    /// One in-flight message left the client (FIN, REQ, timeout): frees a slot.
    pub fn in_flight_done(&self) {
        let _ = self
            .in_flight_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some((n - 1).max(0))
            });
        self.ready_changed.notify_one();
    }

    /// `n` in-flight messages were FINished at once: counts them and frees their slots.
    /// The pump is woken only when it may be waiting for room, i.e. when there was
    /// none before: it looks at the room before it waits, and every FIN that finds no
    /// room wakes it (RDY changes wake it too), so no wake-up is lost.
    pub fn finished(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.finish_count.fetch_add(n, Ordering::Relaxed);
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let before = self
            .in_flight_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                Some(count.saturating_sub(n).max(0))
            })
            .unwrap_or_else(|count| count);
        if before >= self.ready_count() {
            self.ready_changed.notify_one();
        }
    }

    /// The channel was emptied: nothing is in flight any more.
    pub fn in_flight_cleared(&self) {
        self.in_flight_count.store(0, Ordering::Release);
        self.ready_changed.notify_one();
    }

    /// Counts `n` messages published to `topic`.
    pub fn published(&self, topic: &str, n: u64) {
        *self.pub_counts.lock().entry(topic.to_string()).or_insert(0) += n;
    }
}

/// A handle to a client as the registry keeps it.
pub type ClientRef = Arc<ClientShared>;

/// A client with Go's default settings and id 1, for unit tests of the queues.
#[cfg(test)]
pub(crate) fn test_client() -> ClientRef {
    let settings = ClientSettings {
        client_id: "c".into(),
        hostname: "h".into(),
        user_agent: String::new(),
        heartbeat_interval_ms: 30_000,
        output_buffer_size: 16_384,
        output_buffer_timeout_ms: 250,
        sample_rate: 0,
        msg_timeout_ms: 60_000,
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    Arc::new(ClientShared::new(1, addr, 0, settings))
}
