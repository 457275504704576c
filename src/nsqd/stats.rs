//! The `/stats` JSON shapes, field for field and in Go's order (nsq-reference §2.3).

use std::sync::atomic::Ordering;

use serde::{Serialize, Serializer};

use super::channel::{ChannelRef, ChannelSnapshot};
use super::client::ClientShared;
use super::e2e::{E2eConfig, LatencyWindow};
use super::options::VERSION;
use super::topic::TopicSnapshot;
use super::NsqdInner;

/// The whole `/stats?format=json` answer.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// nsqd's version.
    pub version: &'static str,
    /// "OK" or the health error.
    pub health: String,
    /// Unix seconds at start.
    pub start_time: i64,
    /// Topics (null when a filter matched nothing, as Go's nil slice).
    pub topics: Option<Vec<TopicStats>>,
    /// Go runtime memory numbers; omitted with `include_mem=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// Clients that published (null with `include_clients=false`).
    pub producers: Option<Vec<ClientStats>>,
}

/// Go's runtime memory block. Rust has no garbage collector and no equivalent numbers:
/// every field is reported as 0 so parsers of Go's shape keep working.
#[derive(Debug, Default, Serialize)]
pub struct MemoryStats {
    /// Go: live heap objects.
    pub heap_objects: u64,
    /// Go: idle heap bytes.
    pub heap_idle_bytes: u64,
    /// Go: heap bytes in use.
    pub heap_in_use_bytes: u64,
    /// Go: heap bytes released to the OS.
    pub heap_released_bytes: u64,
    /// Go: GC pause percentile.
    pub gc_pause_usec_100: u64,
    /// Go: GC pause percentile.
    pub gc_pause_usec_99: u64,
    /// Go: GC pause percentile.
    pub gc_pause_usec_95: u64,
    /// Go: next GC target.
    pub next_gc_bytes: u64,
    /// Go: GC runs.
    pub gc_total_runs: u64,
}

/// One topic.
#[derive(Debug, Serialize)]
pub struct TopicStats {
    /// Name.
    pub topic_name: String,
    /// Its channels, by name.
    pub channels: Vec<ChannelStats>,
    /// Messages held in memory plus on disk.
    pub depth: u64,
    /// Messages on disk.
    pub backend_depth: u64,
    /// Messages published.
    pub message_count: u64,
    /// Bytes published.
    pub message_bytes: u64,
    /// Paused?
    pub paused: bool,
    /// End-to-end latency merged over its channels.
    pub e2e_processing_latency: E2eLatency,
}

/// One channel.
#[derive(Debug, Serialize)]
pub struct ChannelStats {
    /// Name.
    pub channel_name: String,
    /// Messages waiting in memory plus on disk.
    pub depth: u64,
    /// Messages on disk.
    pub backend_depth: u64,
    /// Messages in flight.
    pub in_flight_count: u64,
    /// Messages deferred.
    pub deferred_count: u64,
    /// Messages put on the channel.
    pub message_count: u64,
    /// REQs.
    pub requeue_count: u64,
    /// Timeouts.
    pub timeout_count: u64,
    /// Subscribed clients.
    pub client_count: u64,
    /// The clients (null with `include_clients=false`).
    pub clients: Option<Vec<ClientStats>>,
    /// Paused?
    pub paused: bool,
    /// End-to-end latency.
    pub e2e_processing_latency: E2eLatency,
}

/// Go's e2e latency block: `{"count":0,"percentiles":null}` when not configured (and for
/// a topic without channels).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct E2eLatency {
    /// FINs in the window.
    pub count: u64,
    /// The configured quantiles in their configured order, or null.
    pub percentiles: Option<Vec<Percentile>>,
}

/// One quantile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentile {
    /// e.g. 0.99.
    #[serde(serialize_with = "go_float")]
    pub quantile: f64,
    /// Nanoseconds.
    pub value: i64,
}

/// A float as Go's `encoding/json` writes it where that differs from serde_json: a whole
/// number has no fraction (`1`, not `1.0`).
fn go_float<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// One client.
#[derive(Debug, Serialize)]
pub struct ClientStats {
    /// IDENTIFY client_id.
    pub client_id: String,
    /// IDENTIFY hostname.
    pub hostname: String,
    /// Always "V2".
    pub version: &'static str,
    /// ip:port.
    pub remote_address: String,
    /// Protocol state number.
    pub state: u8,
    /// RDY.
    pub ready_count: i64,
    /// In flight.
    pub in_flight_count: i64,
    /// Messages sent.
    pub message_count: u64,
    /// FINs.
    pub finish_count: u64,
    /// REQs.
    pub requeue_count: u64,
    /// Unix seconds.
    pub connect_ts: i64,
    /// Sampling rate.
    pub sample_rate: i64,
    /// Deflate on?
    pub deflate: bool,
    /// Snappy on?
    pub snappy: bool,
    /// IDENTIFY user_agent.
    pub user_agent: String,
    /// Whether an auth server answered this client's AUTH (omitted when not).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub authed: bool,
    /// The identity the auth server named (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity: String,
    /// The auth server's identity URL (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity_url: String,
    /// Messages published per topic (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pub_counts: Vec<PubCount>,
    /// TLS on?
    pub tls: bool,
    /// TLS cipher suite.
    pub tls_cipher_suite: String,
    /// TLS version.
    pub tls_version: String,
    /// ALPN protocol.
    pub tls_negotiated_protocol: String,
    /// ALPN mutual?
    pub tls_negotiated_protocol_is_mutual: bool,
}

/// Messages a client published to one topic.
#[derive(Debug, Serialize)]
pub struct PubCount {
    /// Topic.
    pub topic: String,
    /// Messages.
    pub count: u64,
}

/// What `/stats` was asked for.
#[derive(Debug, Clone, Default)]
pub struct StatsFilter {
    /// Only this topic.
    pub topic: Option<String>,
    /// Only this channel (with `topic`).
    pub channel: Option<String>,
    /// Include client lists and producers.
    pub include_clients: bool,
    /// Include the memory block.
    pub include_mem: bool,
}

impl NsqdInner {
    /// Builds the `/stats` answer.
    pub(crate) fn stats(&self, filter: &StatsFilter) -> Stats {
        let matching: Vec<_> = self
            .topics()
            .into_iter()
            .filter(|t| filter.topic.as_deref().is_none_or(|name| name == t.name))
            .collect();
        // Go returns early, with topics and producers both nil, for an unknown topic.
        let topic_missing = matching.is_empty() && filter.topic.is_some();
        let e2e = E2eConfig::from_options(&self.opts);
        let now_ns = self.now_ns();
        let mut topics: Vec<TopicStats> = matching
            .iter()
            .map(|t| topic_stats(t.snapshot(), e2e.as_ref(), now_ns, filter))
            .collect();
        if let Some(channel) = &filter.channel {
            // Go leaves out a topic that lacks the channel.
            topics.retain_mut(|topic| {
                topic.channels.retain(|c| &c.channel_name == channel);
                !topic.channels.is_empty()
            });
        }
        let topics = (!topic_missing).then_some(topics);
        let producers: Vec<ClientStats> = if filter.include_clients && !topic_missing {
            self.clients()
                .iter()
                .filter(|c| !c.pub_counts.lock().is_empty())
                .map(|c| client_stats(c, filter))
                .collect()
        } else {
            Vec::new()
        };
        // Go's nil slice: no producers is `null`, not `[]`.
        let producers = (!producers.is_empty()).then_some(producers);
        Stats {
            version: VERSION,
            health: self.health().unwrap_or_else(|| "OK".into()),
            start_time: self.start_time,
            topics,
            memory: filter.include_mem.then(MemoryStats::default),
            producers,
        }
    }
}

fn topic_stats(
    topic: TopicSnapshot,
    e2e: Option<&E2eConfig>,
    now_ns: i64,
    filter: &StatsFilter,
) -> TopicStats {
    TopicStats {
        e2e_processing_latency: topic_e2e(&topic.channels, e2e, now_ns),
        topic_name: topic.name,
        channels: topic
            .channels
            .iter()
            .map(|c| channel_stats(c.snapshot(), c.e2e_latency(now_ns), filter))
            .collect(),
        depth: topic.depth,
        backend_depth: topic.backend_depth,
        message_count: topic.message_count,
        message_bytes: topic.message_bytes,
        paused: topic.paused,
    }
}

/// The topic's latency: every channel's window merged, as Go's
/// `AggregateChannelE2eProcessingLatency`. Null percentiles when tracking is off or the
/// topic has no channel (Go has no stream to report then).
fn topic_e2e(channels: &[ChannelRef], e2e: Option<&E2eConfig>, now_ns: i64) -> E2eLatency {
    let Some(config) = e2e.filter(|_| !channels.is_empty()) else {
        return E2eLatency::default();
    };
    let mut total = LatencyWindow::new(config, now_ns);
    for channel in channels {
        channel.merge_e2e_into(&mut total, now_ns);
    }
    total.query(now_ns)
}

fn channel_stats(
    channel: ChannelSnapshot,
    e2e_processing_latency: E2eLatency,
    filter: &StatsFilter,
) -> ChannelStats {
    ChannelStats {
        channel_name: channel.name,
        depth: channel.depth,
        backend_depth: channel.backend_depth,
        in_flight_count: channel.in_flight_count,
        deferred_count: channel.deferred_count,
        message_count: channel.message_count,
        requeue_count: channel.requeue_count,
        timeout_count: channel.timeout_count,
        client_count: channel.clients.len() as u64,
        clients: filter.include_clients.then(|| {
            channel
                .clients
                .iter()
                .map(|c| client_stats(c, filter))
                .collect()
        }),
        paused: channel.paused,
        e2e_processing_latency,
    }
}

/// One client; with a topic filter, `pub_counts` lists only that topic, as Go's does.
fn client_stats(client: &ClientShared, filter: &StatsFilter) -> ClientStats {
    let settings = client.settings.lock().clone();
    let pub_counts = client
        .pub_counts
        .lock()
        .iter()
        .filter(|(topic, _)| filter.topic.as_deref().is_none_or(|only| only == *topic))
        .map(|(topic, count)| PubCount {
            topic: topic.clone(),
            count: *count,
        })
        .collect();
    let transport = client.transport.lock().clone();
    let is_tls = transport.tls.is_some();
    let tls = transport.tls.unwrap_or_default();
    let identity = client.auth.lock().identity();
    let authed = identity.is_some();
    let (auth_identity, auth_identity_url) = identity.unwrap_or_default();
    ClientStats {
        client_id: settings.client_id,
        hostname: settings.hostname,
        version: "V2",
        remote_address: client.remote_addr.to_string(),
        state: client.state() as u8,
        ready_count: client.ready_count(),
        in_flight_count: client.in_flight_count(),
        message_count: client.message_count.load(Ordering::Relaxed),
        finish_count: client.finish_count.load(Ordering::Relaxed),
        requeue_count: client.requeue_count.load(Ordering::Relaxed),
        connect_ts: client.connect_ts,
        sample_rate: settings.sample_rate,
        deflate: transport.deflate,
        snappy: transport.snappy,
        user_agent: settings.user_agent,
        authed,
        auth_identity,
        auth_identity_url,
        pub_counts,
        tls: is_tls,
        tls_cipher_suite: tls.cipher_suite,
        tls_version: tls.version,
        tls_negotiated_protocol: tls.negotiated_protocol,
        // Go's `NegotiatedProtocolIsMutual` is always true on a TLS connection.
        tls_negotiated_protocol_is_mutual: is_tls,
    }
}
