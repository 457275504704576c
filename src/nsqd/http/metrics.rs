//! `GET /metrics`: the numbers of `/stats` in the Prometheus/OpenMetrics text format, so
//! a Prometheus server scrapes nsqd without an exporter (beyond Go nsqd).
//!
//! Each scrape builds a fresh registry from one stats snapshot: the daemon keeps no
//! metric state of its own, and `/stats`, statsd and `/metrics` can never disagree.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::respond::{error, HttpResponse};
use crate::nsqd::stats::{E2eLatency, Stats, StatsFilter};
use crate::nsqd::NsqdInner;

/// The content type Prometheus negotiates for this format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    topic: String,
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicQuantileLabels {
    topic: String,
    quantile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelQuantileLabels {
    topic: String,
    channel: String,
    quantile: String,
}

type GaugeF64 = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Answers `GET /metrics`.
pub(super) fn metrics(nsqd: &NsqdInner) -> HttpResponse {
    let stats = nsqd.stats(&StatsFilter::default());
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry(&stats, nsqd)).is_err() {
        return error(
            nsqd,
            hyper::StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
        );
    }
    let mut response = super::respond::plain(nsqd, hyper::StatusCode::OK, &text, false);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(OPENMETRICS),
    );
    response
}

/// Registers a family under `name` and hands it back for filling.
fn family<L, M>(registry: &mut Registry, name: &str, help: &str) -> Family<L, M>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Default
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let family = Family::<L, M>::default();
    registry.register(name, help, family.clone());
    family
}

fn registry(stats: &Stats, nsqd: &NsqdInner) -> Registry {
    let mut r = Registry::with_prefix("nsq");
    let up: Gauge = Gauge::default();
    up.set(i64::from(stats.health == "OK"));
    r.register(
        "healthy",
        "1 while nsqd is healthy (what /ping answers OK to)",
        up.clone(),
    );
    let start: Gauge = Gauge::default();
    start.set(stats.start_time);
    r.register(
        "start_time_seconds",
        "When nsqd started (unix seconds)",
        start,
    );
    let clients: Gauge = Gauge::default();
    clients.set(nsqd.clients().len() as i64);
    r.register("clients", "Connected TCP clients", clients);

    let t_depth = family::<TopicLabels, Gauge>(
        &mut r,
        "topic_depth",
        "Messages held by the topic (memory and disk)",
    );
    let t_backend = family::<TopicLabels, Gauge>(
        &mut r,
        "topic_backend_depth",
        "Messages of the topic on disk",
    );
    let t_messages =
        family::<TopicLabels, Counter>(&mut r, "topic_messages", "Messages published to the topic");
    let t_bytes = family::<TopicLabels, Counter>(
        &mut r,
        "topic_message_bytes",
        "Bytes published to the topic",
    );
    let t_paused =
        family::<TopicLabels, Gauge>(&mut r, "topic_paused", "1 while the topic is paused");
    let t_e2e = family::<TopicQuantileLabels, GaugeF64>(
        &mut r,
        "topic_e2e_processing_latency_seconds",
        "End-to-end processing latency percentiles of the topic",
    );
    let c_depth = family::<ChannelLabels, Gauge>(
        &mut r,
        "channel_depth",
        "Messages waiting in the channel (memory and disk)",
    );
    let c_backend = family::<ChannelLabels, Gauge>(
        &mut r,
        "channel_backend_depth",
        "Messages of the channel on disk",
    );
    let c_in_flight = family::<ChannelLabels, Gauge>(
        &mut r,
        "channel_in_flight",
        "Messages sent and not yet finished",
    );
    let c_deferred = family::<ChannelLabels, Gauge>(
        &mut r,
        "channel_deferred",
        "Messages waiting for their time",
    );
    let c_messages =
        family::<ChannelLabels, Counter>(&mut r, "channel_messages", "Messages put on the channel");
    let c_requeues =
        family::<ChannelLabels, Counter>(&mut r, "channel_requeues", "Messages requeued (REQ)");
    let c_timeouts = family::<ChannelLabels, Counter>(
        &mut r,
        "channel_timeouts",
        "Messages that timed out in flight",
    );
    let c_clients = family::<ChannelLabels, Gauge>(
        &mut r,
        "channel_clients",
        "Clients subscribed to the channel",
    );
    let c_paused =
        family::<ChannelLabels, Gauge>(&mut r, "channel_paused", "1 while the channel is paused");
    let c_e2e = family::<ChannelQuantileLabels, GaugeF64>(
        &mut r,
        "channel_e2e_processing_latency_seconds",
        "End-to-end processing latency percentiles of the channel",
    );

    for topic in stats.topics.as_deref().unwrap_or(&[]) {
        let t = TopicLabels {
            topic: topic.topic_name.clone(),
        };
        t_depth.get_or_create(&t).set(gauge(topic.depth));
        t_backend.get_or_create(&t).set(gauge(topic.backend_depth));
        t_messages.get_or_create(&t).inc_by(topic.message_count);
        t_bytes.get_or_create(&t).inc_by(topic.message_bytes);
        t_paused.get_or_create(&t).set(i64::from(topic.paused));
        for (quantile, seconds) in quantiles(&topic.e2e_processing_latency) {
            let labels = TopicQuantileLabels {
                topic: topic.topic_name.clone(),
                quantile,
            };
            t_e2e.get_or_create(&labels).set(seconds);
        }
        for channel in &topic.channels {
            let c = ChannelLabels {
                topic: topic.topic_name.clone(),
                channel: channel.channel_name.clone(),
            };
            c_depth.get_or_create(&c).set(gauge(channel.depth));
            c_backend
                .get_or_create(&c)
                .set(gauge(channel.backend_depth));
            c_in_flight
                .get_or_create(&c)
                .set(gauge(channel.in_flight_count));
            c_deferred
                .get_or_create(&c)
                .set(gauge(channel.deferred_count));
            c_messages.get_or_create(&c).inc_by(channel.message_count);
            c_requeues.get_or_create(&c).inc_by(channel.requeue_count);
            c_timeouts.get_or_create(&c).inc_by(channel.timeout_count);
            c_clients.get_or_create(&c).set(gauge(channel.client_count));
            c_paused.get_or_create(&c).set(i64::from(channel.paused));
            for (quantile, seconds) in quantiles(&channel.e2e_processing_latency) {
                let labels = ChannelQuantileLabels {
                    topic: topic.topic_name.clone(),
                    channel: channel.channel_name.clone(),
                    quantile,
                };
                c_e2e.get_or_create(&labels).set(seconds);
            }
        }
    }
    r
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `(quantile label, seconds)` pairs of an e2e block.
fn quantiles(latency: &E2eLatency) -> Vec<(String, f64)> {
    latency
        .percentiles
        .iter()
        .flatten()
        .map(|p| (p.quantile.to_string(), p.value as f64 / 1e9))
        .collect()
}
