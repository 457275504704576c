//! `nsq_to_http`: consumes a topic and sends every message to HTTP endpoints, as Go's
//! nsq_to_http does: a POST of the body, or a GET with the escaped body in the URL;
//! success FINs the message, a failure (an error status, a timeout, a refused connect)
//! requeues it with backoff.
//!
//! - this file: the flags, Go's checks in Go's order, and the handler;
//! - `request.rs`: one message's request to one address.

mod request;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;
use tokio::sync::watch;
use tokio::time::Instant;

use super::app::{
    fatal, http_timeouts, nsq_config, sources_error, user_agent, version_requested, CONSUMER_OPT,
    HTTP_CLIENT_CONNECT_TIMEOUT, LOOKUPD_HTTP_ADDRESS, MAX_IN_FLIGHT, NSQD_TCP_ADDRESS,
    VERSION_FLAG,
};
use super::consumer::{Consumer, Delivery, Subscription};
use super::flag_set::{Flag, FlagSet, FlagValues, Kind};
use super::nsq_config::system_https_config;
use super::relay;
use super::timer_metrics::TimerMetrics;
use super::upstream::{Mode, Pick, Upstreams};
use crate::env::{Env, Rng};
use crate::http_client::{HttpClient, HttpTarget};
pub use request::{get_url, parse_headers, query_escape, HeaderError, Requests, SendError};

/// `--content-type`'s default.
const CONTENT_TYPE: &str = "application/octet-stream";

/// Go nsq_to_http v1.3.0's flags.
pub static FLAGS: FlagSet = FlagSet {
    flags: &[
        Flag::new("channel", Kind::Str, "nsq_to_http", "nsq channel"),
        CONSUMER_OPT,
        Flag::new(
            "content-type",
            Kind::Str,
            CONTENT_TYPE,
            "the Content-Type used for POST requests",
        ),
        Flag::new(
            "get",
            Kind::List,
            "",
            "HTTP address to make a GET request to. '%s' will be printf replaced with data (may be given multiple times)",
        ),
        Flag::new(
            "header",
            Kind::List,
            "",
            "Custom header for HTTP requests (may be given multiple times)",
        ),
        HTTP_CLIENT_CONNECT_TIMEOUT,
        Flag::new(
            "http-client-request-timeout",
            Kind::Duration,
            "20s",
            "timeout for HTTP request",
        ),
        LOOKUPD_HTTP_ADDRESS,
        MAX_IN_FLIGHT,
        Flag::new(
            "mode",
            Kind::Str,
            "hostpool",
            "the upstream request mode options: round-robin, hostpool (default), epsilon-greedy",
        ),
        Flag::new("n", Kind::Int, "100", "number of concurrent publishers"),
        NSQD_TCP_ADDRESS,
        Flag::new(
            "post",
            Kind::List,
            "",
            "HTTP address to make a POST request to.  data will be in the body (may be given multiple times)",
        ),
        Flag::new(
            "sample",
            Kind::Float,
            "1",
            "% of messages to publish (float b/w 0 -> 1)",
        ),
        Flag::new(
            "status-every",
            Kind::Int,
            "250",
            "the # of requests between logging status (per handler), 0 disables",
        ),
        Flag::new("topic", Kind::Str, "", "nsq topic"),
        VERSION_FLAG,
    ],
};

/// What every message's handler shares.
struct Publisher {
    requests: Requests,
    upstreams: Upstreams,
    /// The destinations' count, for `Pick::Every`.
    len: usize,
    /// Per destination (disabled with one destination, as in Go).
    per_address: Vec<Arc<TimerMetrics>>,
    aggregate: TimerMetrics,
    sample: f64,
    rng: Arc<dyn Rng>,
}

impl Publisher {
    /// Go's `PublishHandler.HandleMessage`, then go-nsq's FIN or REQ with backoff.
    async fn handle(self: Arc<Self>, delivery: Delivery) {
        if self.sample < 1.0 && unit_random(&*self.rng) > self.sample {
            delivery.finish();
            return;
        }
        let started = Instant::now();
        match self.publish(&delivery.message.body, started).await {
            Ok(()) => {
                self.aggregate.status(started);
                delivery.finish();
            }
            Err(error) => {
                tracing::error!(
                    "Handler returned error ({error}) for msg {}",
                    delivery.message.id
                );
                delivery.requeue();
            }
        }
    }

    async fn publish(&self, body: &Bytes, started: Instant) -> Result<(), SendError> {
        match self.upstreams.pick() {
            Pick::Every => {
                for index in 0..self.len {
                    let sent = Instant::now();
                    self.requests.send(index, body).await?;
                    self.status(index, sent);
                }
            }
            Pick::One(index) => {
                let result = self.requests.send(index, body).await;
                self.upstreams.mark(index, result.is_ok());
                result?;
                self.status(index, started);
            }
        }
        Ok(())
    }

    fn status(&self, index: usize, started: Instant) {
        if let Some(metrics) = self.per_address.get(index) {
            metrics.status(started);
        }
    }
}

/// A uniform draw in `[0, 1)` (Go's `rand.Float64`).
fn unit_random(rng: &dyn Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs nsq_to_http with parsed flags until a stop signal on `stop` and the consumer's
/// graceful close; `--version` prints to `out`.
pub async fn run(
    env: Env,
    flags: &FlagValues,
    stop: watch::Receiver<bool>,
    out: &mut (dyn Write + Send),
) -> ExitCode {
    if let Some(code) = version_requested(flags, "nsq_to_http", out) {
        return code;
    }
    let custom = match parse_headers(flags.list("header")) {
        Ok(custom) => custom,
        Err(_) => return fatal("--header value format should be 'key=value'"),
    };
    let topic = flags.string("topic");
    let channel = flags.string("channel");
    if topic.is_empty() || channel.is_empty() {
        return fatal("--topic and --channel are required");
    }
    let posts = flags.list("post");
    let gets = flags.list("get");
    let content_type = flags.string("content-type");
    if content_type != CONTENT_TYPE {
        if posts.is_empty() {
            return fatal("--content-type only used with --post");
        }
        if content_type.is_empty() {
            return fatal("--content-type requires a value when used");
        }
    }
    let nsqds = flags.list("nsqd-tcp-address");
    let lookupds = flags.list("lookupd-http-address");
    if let Some(message) = sources_error(nsqds, lookupds) {
        return fatal(message);
    }
    if gets.is_empty() && posts.is_empty() {
        return fatal("--get or --post required");
    }
    if !gets.is_empty() && !posts.is_empty() {
        return fatal("use --get or --post not both");
    }
    if gets.iter().any(|get| get.matches("%s").count() != 1) {
        return fatal("invalid GET address - must be a printf string");
    }
    let mode = Mode::for_http(&flags.string("mode"));
    let sample = flags.float("sample");
    if !(0.0..=1.0).contains(&sample) {
        return fatal("ERROR: --sample must be between 0.0 and 1.0");
    }

    let timeouts = http_timeouts(flags);
    let mut client = HttpClient::new(env.net.clone(), timeouts);
    let https = gets.iter().chain(posts.iter()).any(|address| {
        address
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    });
    if https {
        // Go's default client: the system's roots (or the file SSL_CERT_FILE names).
        match system_https_config() {
            Ok(config) => client = client.with_tls(config),
            Err(error) => {
                return fatal(&format!("ERROR: https addresses need TLS roots - {error}"))
            }
        }
    }
    let (requests, addresses) = if posts.is_empty() {
        // Go would fail every request to a URL it cannot use; we refuse at the start.
        for get in gets {
            if let Err(error) = HttpTarget::parse(&get_url(get, b"")) {
                return fatal(&format!("ERROR: invalid --get address {get:?} - {error}"));
            }
        }
        (Requests::get(client, gets.to_vec(), custom), gets)
    } else {
        let mut targets = Vec::with_capacity(posts.len());
        for post in posts {
            match HttpTarget::parse(post) {
                Ok(target) => targets.push(target),
                Err(error) => {
                    return fatal(&format!("ERROR: invalid --post address {post:?} - {error}"))
                }
            }
        }
        let Ok(content_type) = HeaderValue::from_str(&content_type) else {
            return fatal(&format!("ERROR: invalid --content-type {content_type:?}"));
        };
        (Requests::post(client, targets, content_type, custom), posts)
    };

    let mut config = match nsq_config(flags.list("consumer-opt")) {
        Ok(config) => config,
        Err(error) => return fatal(&error.to_string()),
    };
    config.user_agent = user_agent("nsq_to_http");
    config.max_in_flight = flags.int("max-in-flight");
    let subscription = Subscription {
        topic,
        channel,
        nsqd_tcp_addresses: nsqds.to_vec(),
        lookupd_http_addresses: lookupds.to_vec(),
        config,
    };
    if let Err(error) = subscription.validate() {
        return fatal(&error.to_string());
    }

    let status_every = flags.int("status-every");
    let per_address = TimerMetrics::per_address(addresses, status_every);
    let publisher = Arc::new(Publisher {
        requests,
        upstreams: Upstreams::new(mode, addresses.len()),
        len: addresses.len(),
        per_address,
        aggregate: TimerMetrics::new(status_every, "[aggregate]:"),
        sample,
        rng: env.rng.clone(),
    });
    let concurrency = match usize::try_from(flags.int("n")) {
        Ok(n) if n > 0 => n,
        _ => return fatal("no handlers"),
    };
    let consumer = match Consumer::start(env, subscription).await {
        Ok(consumer) => consumer,
        Err(error) => return fatal(&error.to_string()),
    };
    relay::run(vec![consumer], concurrency, stop, |_, delivery| {
        publisher.clone().handle(delivery)
    })
    .await;
    ExitCode::SUCCESS
}
