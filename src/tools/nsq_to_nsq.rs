//! `nsq_to_nsq`: consumes topics on some nsqds and publishes every message to a topic on
//! other nsqds, as Go's nsq_to_nsq does. A message is FIN'd only once the destination
//! answered `OK`; a failed publish requeues it with backoff.
//!
//! - this file: the flags, Go's checks in Go's order, and the handler;
//! - `json_filter.rs`: `--require-json-field`/`-value` and `--whitelist-json-field`.

mod json_filter;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::app::{
    check_nsq_opt, fatal, nsq_config, sources_error, user_agent, version_requested,
    LOOKUPD_HTTP_ADDRESS, MAX_IN_FLIGHT, NSQD_TCP_ADDRESS, VERSION_FLAG,
};
use super::consumer::{Consumer, Delivery, Subscription};
use super::flag_set::{Flag, FlagSet, FlagValues, Kind};
use super::producer::{PendingPublish, Producer};
use super::relay;
use super::timer_metrics::TimerMetrics;
use super::upstream::{Mode, Pick, Upstreams};
use crate::env::Env;
use crate::protocol::names::{is_valid_channel_name, is_valid_topic_name};
pub use json_filter::{JsonFilter, Verdict};

/// Go nsq_to_nsq v1.3.0's flags.
pub static FLAGS: FlagSet = FlagSet {
    flags: &[
        Flag::new("channel", Kind::Str, "nsq_to_nsq", "nsq channel"),
        Flag::new(
            "consumer-opt",
            Kind::List,
            "",
            "option to passthrough to nsq.Consumer (may be given multiple times, see http://godoc.org/github.com/nsqio/go-nsq#Config)",
        )
        .checked(check_nsq_opt),
        Flag::new(
            "destination-nsqd-tcp-address",
            Kind::List,
            "",
            "destination nsqd TCP address (may be given multiple times)",
        ),
        Flag::new(
            "destination-topic",
            Kind::Str,
            "",
            "use this destination topic for all consumed topics (default is consumed topic name)",
        ),
        LOOKUPD_HTTP_ADDRESS,
        MAX_IN_FLIGHT,
        Flag::new(
            "mode",
            Kind::Str,
            "hostpool",
            "the upstream request mode options: round-robin, hostpool (default), epsilon-greedy",
        ),
        NSQD_TCP_ADDRESS,
        Flag::new(
            "producer-opt",
            Kind::List,
            "",
            "option to passthrough to nsq.Producer (may be given multiple times, see http://godoc.org/github.com/nsqio/go-nsq#Config)",
        )
        .checked(check_nsq_opt),
        Flag::new(
            "require-json-field",
            Kind::Str,
            "",
            "for JSON messages: only pass messages that contain this field",
        ),
        Flag::new(
            "require-json-value",
            Kind::Str,
            "",
            "for JSON messages: only pass messages in which the required field has this value",
        ),
        Flag::new(
            "status-every",
            Kind::Int,
            "250",
            "the # of requests between logging status (per destination), 0 disables",
        ),
        Flag::new(
            "topic",
            Kind::List,
            "",
            "nsq topic (may be given multiple times)",
        ),
        VERSION_FLAG,
        Flag::new(
            "whitelist-json-field",
            Kind::List,
            "",
            "for JSON messages: pass this field (may be given multiple times)",
        ),
    ],
};

/// What every message's handler shares.
struct Publisher {
    /// The producer of each destination address (a repeated address shares one).
    producers: Vec<Arc<Producer>>,
    upstreams: Upstreams,
    filter: Option<JsonFilter>,
    /// The topic each consumer's messages go to.
    destination_topics: Vec<String>,
    per_address: Vec<Arc<TimerMetrics>>,
    aggregate: TimerMetrics,
}

/// What a message's task has left to do.
enum Step {
    /// Already answered (dropped by the filter, or requeued).
    Done,
    /// Wait for the destination's answer, then FIN or REQ.
    Answer {
        delivery: Delivery,
        pending: PendingPublish,
        index: usize,
        started: Instant,
    },
}

impl Publisher {
    /// Go's `PublishHandler.HandleMessage` for the message of consumer `topic`: filter,
    /// then queue the publish at once (so one destination sees messages in delivery
    /// order); the returned future is Go's responder for it.
    fn handle(
        self: &Arc<Self>,
        topic: usize,
        delivery: Delivery,
    ) -> impl Future<Output = ()> + Send + 'static {
        let step = self.start(topic, delivery);
        let publisher = self.clone();
        async move {
            if let Step::Answer {
                delivery,
                pending,
                index,
                started,
            } = step
            {
                publisher.respond(delivery, pending, index, started).await;
            }
        }
    }

    fn start(&self, topic: usize, delivery: Delivery) -> Step {
        let body = match &self.filter {
            None => delivery.message.body.clone(),
            Some(filter) => match filter.apply(&delivery.message.body) {
                Verdict::Pass(body) => body,
                Verdict::Drop => {
                    delivery.finish();
                    return Step::Done;
                }
                Verdict::Backoff => {
                    tracing::error!(
                        "Handler returned error (backoff) for msg {}",
                        delivery.message.id
                    );
                    delivery.requeue();
                    return Step::Done;
                }
            },
        };
        let started = Instant::now();
        let index = match self.upstreams.pick() {
            Pick::One(index) => index,
            Pick::Every => 0,
        };
        let (Some(producer), Some(topic)) = (
            self.producers.get(index),
            self.destination_topics.get(topic),
        ) else {
            delivery.requeue();
            return Step::Done;
        };
        let pending = producer.publish_async(topic, body);
        Step::Answer {
            delivery,
            pending,
            index,
            started,
        }
    }

    /// Go's `responder`: mark the host, FIN on `OK`, REQ with backoff otherwise, and
    /// count the time either way.
    async fn respond(
        &self,
        delivery: Delivery,
        pending: PendingPublish,
        index: usize,
        started: Instant,
    ) {
        let published = pending.await;
        self.upstreams.mark(index, published.is_ok());
        match published {
            Ok(()) => delivery.finish(),
            Err(error) => {
                let address = self.producers.get(index).map_or("", |p| p.address());
                tracing::error!(
                    nsqd = address,
                    "publish of msg {} failed - {error}",
                    delivery.message.id
                );
                delivery.requeue();
            }
        }
        if let Some(metrics) = self.per_address.get(index) {
            metrics.status(started);
        }
        self.aggregate.status(started);
    }
}

/// Runs nsq_to_nsq with parsed flags until a stop signal on `stop` and the consumers'
/// graceful close; `--version` prints to `out`.
pub async fn run(
    env: Env,
    flags: &FlagValues,
    stop: watch::Receiver<bool>,
    out: &mut (dyn Write + Send),
) -> ExitCode {
    if let Some(code) = version_requested(flags, "nsq_to_nsq", out) {
        return code;
    }
    let topics = flags.list("topic");
    let channel = flags.string("channel");
    if topics.is_empty() || channel.is_empty() {
        return fatal("--topic and --channel are required");
    }
    if !topics.iter().all(|topic| is_valid_topic_name(topic)) {
        return fatal("--topic is invalid");
    }
    let destination_topic = flags.string("destination-topic");
    if !destination_topic.is_empty() && !is_valid_topic_name(&destination_topic) {
        return fatal("--destination-topic is invalid");
    }
    if !is_valid_channel_name(&channel) {
        return fatal("--channel is invalid");
    }
    let nsqds = flags.list("nsqd-tcp-address");
    let lookupds = flags.list("lookupd-http-address");
    if let Some(message) = sources_error(nsqds, lookupds) {
        return fatal(message);
    }
    let destinations = flags.list("destination-nsqd-tcp-address");
    if destinations.is_empty() {
        return fatal("--destination-nsqd-tcp-address required");
    }
    let mode = Mode::for_nsq(&flags.string("mode"));

    let agent = user_agent("nsq_to_nsq");
    let mut consumer_config = match nsq_config(flags.list("consumer-opt")) {
        Ok(config) => config,
        Err(error) => return fatal(&error.to_string()),
    };
    consumer_config.user_agent = agent.clone();
    consumer_config.max_in_flight = flags.int("max-in-flight");
    let mut producer_config = match nsq_config(flags.list("producer-opt")) {
        Ok(config) => config,
        Err(error) => return fatal(&format!("failed creating producer {error}")),
    };
    producer_config.user_agent = agent;
    if let Err(error) = producer_config.validate() {
        return fatal(&format!("failed creating producer {error}"));
    }
    let mut unique: BTreeMap<&str, Arc<Producer>> = BTreeMap::new();
    let producers = destinations
        .iter()
        .map(|address| {
            unique
                .entry(address)
                .or_insert_with(|| Arc::new(Producer::new(&env, address, producer_config.clone())))
                .clone()
        })
        .collect();

    let status_every = flags.int("status-every");
    let per_address = TimerMetrics::per_address(destinations, status_every);
    let publisher = Arc::new(Publisher {
        producers,
        upstreams: Upstreams::new(mode, destinations.len()),
        filter: JsonFilter::new(
            &flags.string("require-json-field"),
            &flags.string("require-json-value"),
            flags.list("whitelist-json-field"),
        ),
        destination_topics: topics
            .iter()
            .map(|topic| match destination_topic.as_str() {
                "" => topic.clone(),
                destination => destination.to_string(),
            })
            .collect(),
        per_address,
        aggregate: TimerMetrics::new(status_every, "[aggregate]:"),
    });

    let subscriptions: Vec<Subscription> = topics
        .iter()
        .map(|topic| Subscription {
            topic: topic.clone(),
            channel: channel.clone(),
            nsqd_tcp_addresses: nsqds.to_vec(),
            lookupd_http_addresses: lookupds.to_vec(),
            config: consumer_config.clone(),
        })
        .collect();
    for subscription in &subscriptions {
        if let Err(error) = subscription.validate() {
            return fatal(&error.to_string());
        }
    }
    let mut consumers = Vec::with_capacity(subscriptions.len());
    for subscription in subscriptions {
        match Consumer::start(env.clone(), subscription).await {
            Ok(consumer) => consumers.push(consumer),
            Err(error) => return fatal(&error.to_string()),
        }
    }
    // Go runs len(destinations) handlers per consumer, each only queueing a publish;
    // the answers come back asynchronously, so in-flight is bounded by max-in-flight.
    relay::run(consumers, usize::MAX, stop, |topic, delivery| {
        publisher.handle(topic, delivery)
    })
    .await;
    drop(publisher);
    for producer in unique.into_values() {
        if let Ok(producer) = Arc::try_unwrap(producer) {
            producer.stop().await;
        }
    }
    ExitCode::SUCCESS
}
