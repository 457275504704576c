//! `nsq_stat`: polls the `/stats` of every nsqd holding a topic and prints one channel's
//! totals every `--interval`, in Go nsq_stat's columns.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Deserialize;
use tokio::sync::watch;

use super::app::{fatal, version_requested, HTTP_CLIENT_CONNECT_TIMEOUT};
use super::consumer::stopped;
use super::flag_set::{Flag, FlagSet, FlagValues, Kind};
use crate::env::Env;
use crate::http_client::{get_json, HttpGetError, HttpTimeouts};

/// Go nsq_stat v1.3.0's flags.
pub static FLAGS: FlagSet = FlagSet {
    flags: &[
        Flag::new("channel", Kind::Str, "", "NSQ channel"),
        Flag::new("count", Kind::Value, "", "number of reports").checked(check_count),
        HTTP_CLIENT_CONNECT_TIMEOUT,
        Flag::new(
            "http-client-request-timeout",
            Kind::Duration,
            "5s",
            "timeout for HTTP request",
        ),
        Flag::new(
            "interval",
            Kind::Duration,
            "2s",
            "duration of time between polling/printing output",
        ),
        Flag::new(
            "lookupd-http-address",
            Kind::List,
            "",
            "lookupd HTTP address (may be given multiple times)",
        ),
        Flag::new(
            "nsqd-http-address",
            Kind::List,
            "",
            "nsqd HTTP address (may be given multiple times)",
        ),
        Flag::new("topic", Kind::Str, "", "NSQ topic"),
        Flag::new("version", Kind::Bool, "false", "print version"),
    ],
};

/// The most of an HTTP answer nsq_stat reads.
const BODY_MAX: usize = 64 * 1024 * 1024;

/// Go's `numValue.Set`: `strconv.ParseInt(s, 10, 32)`.
fn check_count(text: &str) -> Result<(), String> {
    parse_count(text).map(|_| ())
}

fn parse_count(text: &str) -> Result<i32, String> {
    let syntax = || {
        format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            crate::go_fmt::go_quote(text)
        )
    };
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    text.parse::<i32>().map_err(|_| {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            crate::go_fmt::go_quote(text)
        )
    })
}

/// One channel's figures, summed over the nsqds (Go's `ChannelStats` fields nsq_stat
/// prints).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelTotals {
    /// `depth`.
    pub depth: i64,
    /// `depth - backend_depth`, per nsqd.
    pub memory_depth: i64,
    /// `backend_depth`.
    pub backend_depth: i64,
    /// `in_flight_count`.
    pub in_flight: i64,
    /// `deferred_count`.
    pub deferred: i64,
    /// `requeue_count`.
    pub requeued: i64,
    /// `timeout_count`.
    pub timed_out: i64,
    /// `message_count`.
    pub messages: i64,
    /// `client_count`.
    pub clients: i64,
}

#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    topics: Option<Vec<TopicStats>>,
}

#[derive(Deserialize)]
struct TopicStats {
    topic_name: String,
    #[serde(default)]
    channels: Option<Vec<ChannelStats>>,
}

#[derive(Deserialize)]
struct ChannelStats {
    channel_name: String,
    depth: i64,
    backend_depth: i64,
    in_flight_count: i64,
    deferred_count: i64,
    requeue_count: i64,
    timeout_count: i64,
    message_count: i64,
    client_count: i64,
}

#[derive(Deserialize)]
struct Lookup {
    #[serde(default)]
    producers: Option<Vec<LookupProducer>>,
}

#[derive(Deserialize)]
struct LookupProducer {
    broadcast_address: String,
    http_port: u16,
}

/// Go's two header lines.
pub const HEADER: &str = "------rate------+----------------depth----------------+--------------metadata---------------\ningress  egress |   total     mem    disk inflt   def |     req     t-o         msgs clients\n";

/// One data row: the rates since `before` over `interval`, and `now`'s figures.
pub fn row(before: &ChannelTotals, now: &ChannelTotals, interval: Duration) -> String {
    let seconds = interval.as_secs_f64();
    let published = now.messages - before.messages;
    let ingress = (published as f64 / seconds) as i64;
    let egress = ((published - (now.depth - before.depth)) as f64 / seconds) as i64;
    format!(
        "{:7} {:7} | {:7} {:7} {:7} {:5} {:5} | {:7} {:7} {:12} {:7}\n",
        ingress,
        egress,
        now.depth,
        now.memory_depth,
        now.backend_depth,
        now.in_flight,
        now.deferred,
        now.requeued,
        now.timed_out,
        now.messages,
        now.clients
    )
}

/// Where the figures come from, and how long to wait for them.
struct Source<'a> {
    env: &'a Env,
    topic: &'a str,
    channel: &'a str,
    nsqds: &'a [String],
    lookupds: &'a [String],
    timeouts: HttpTimeouts,
}

impl Source<'_> {
    /// The HTTP addresses of the nsqds holding the topic.
    async fn producers(&self) -> Result<Vec<String>, String> {
        let topic: String = form_urlencoded::byte_serialize(self.topic.as_bytes()).collect();
        if !self.lookupds.is_empty() {
            let path = format!("/lookup?topic={topic}");
            let answers = join_all(self.lookupds.iter().map(|addr| {
                get_json::<Lookup>(&*self.env.net, addr, &path, self.timeouts, BODY_MAX)
            }))
            .await;
            let mut found = std::collections::BTreeSet::new();
            let errors = collect(self.lookupds, answers, |lookup| {
                for producer in lookup.producers.unwrap_or_default() {
                    found.insert(format!(
                        "{}:{}",
                        producer.broadcast_address, producer.http_port
                    ));
                }
            });
            return match errors {
                Some(errors) if found.is_empty() => {
                    Err(format!("failed to query any nsqlookupd: {errors}"))
                }
                Some(errors) => Err(errors),
                None => Ok(found.into_iter().collect()),
            };
        }
        let path = format!("/stats?format=json&topic={topic}&include_clients=false");
        let answers =
            join_all(self.nsqds.iter().map(|addr| {
                get_json::<Stats>(&*self.env.net, addr, &path, self.timeouts, BODY_MAX)
            }))
            .await;
        let mut found = Vec::new();
        let mut holds = Vec::new();
        let errors = collect(self.nsqds, answers, |stats| {
            holds.push(
                stats
                    .topics
                    .unwrap_or_default()
                    .iter()
                    .any(|t| t.topic_name == self.topic),
            );
        });
        if let Some(errors) = errors {
            return Err(format!("failed to query any nsqd: {errors}"));
        }
        for (addr, holds) in self.nsqds.iter().zip(holds) {
            if holds {
                found.push(addr.clone());
            }
        }
        Ok(found)
    }

    /// The channel's figures summed over `producers`; `None` when no nsqd has it.
    async fn totals(&self, producers: &[String]) -> Result<Option<ChannelTotals>, String> {
        let topic: String = form_urlencoded::byte_serialize(self.topic.as_bytes()).collect();
        let channel: String = form_urlencoded::byte_serialize(self.channel.as_bytes()).collect();
        let path =
            format!("/stats?format=json&topic={topic}&channel={channel}&include_clients=false");
        let answers =
            join_all(producers.iter().map(|addr| {
                get_json::<Stats>(&*self.env.net, addr, &path, self.timeouts, BODY_MAX)
            }))
            .await;
        let mut totals = None::<ChannelTotals>;
        let errors = collect(producers, answers, |stats| {
            let channels = stats
                .topics
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t.topic_name == self.topic)
                .flat_map(|t| t.channels.unwrap_or_default())
                .filter(|c| c.channel_name == self.channel);
            for c in channels {
                let sum = totals.get_or_insert_with(ChannelTotals::default);
                sum.depth += c.depth;
                sum.memory_depth += c.depth - c.backend_depth;
                sum.backend_depth += c.backend_depth;
                sum.in_flight += c.in_flight_count;
                sum.deferred += c.deferred_count;
                sum.requeued += c.requeue_count;
                sum.timed_out += c.timeout_count;
                sum.messages += c.message_count;
                sum.clients += c.client_count;
            }
        });
        if producers.is_empty() {
            return Err("failed to query any nsqd: ".to_string());
        }
        if let Some(errors) = errors {
            return Err(format!("failed to query any nsqd: {errors}"));
        }
        Ok(totals)
    }
}

/// Runs `on_answer` for every answer; the failures, one per line, if any.
fn collect<T>(
    addresses: &[String],
    answers: Vec<Result<T, HttpGetError>>,
    mut on_answer: impl FnMut(T),
) -> Option<String> {
    let mut errors = Vec::new();
    for (addr, answer) in addresses.iter().zip(answers) {
        match answer {
            Ok(answer) => on_answer(answer),
            Err(error) => errors.push(format!("{addr}: {error}")),
        }
    }
    (!errors.is_empty()).then(|| errors.join("\n"))
}

/// Runs nsq_stat with parsed flags, printing to `out`, until `--count` reports or a stop
/// signal (which ends it at once, as Go's does).
pub async fn run(
    env: Env,
    flags: &FlagValues,
    mut stop: watch::Receiver<bool>,
    out: &mut (dyn Write + Send),
) -> ExitCode {
    if let Some(code) = version_requested(flags, "nsq_stat", out) {
        return code;
    }
    let topic = flags.string("topic");
    let channel = flags.string("channel");
    if topic.is_empty() || channel.is_empty() {
        return fatal("--topic and --channel are required");
    }
    let interval = flags.duration("interval");
    if interval.is_zero() {
        return fatal("--interval should be positive");
    }
    let connect = flags.duration("http-client-connect-timeout");
    if connect.is_zero() {
        return fatal("--http-client-connect-timeout should be positive");
    }
    let request = flags.duration("http-client-request-timeout");
    if request.is_zero() {
        return fatal("--http-client-request-timeout should be positive");
    }
    let count = match flags.list("count").last() {
        Some(text) => match parse_count(text) {
            Ok(count) if count > 0 => Some(count),
            _ => return fatal("--count should be positive"),
        },
        None => None,
    };
    let nsqds = flags.list("nsqd-http-address");
    let lookupds = flags.list("lookupd-http-address");
    if nsqds.is_empty() && lookupds.is_empty() {
        return fatal("--nsqd-http-address or --lookupd-http-address required");
    }
    if !nsqds.is_empty() && !lookupds.is_empty() {
        return fatal("use --nsqd-http-address or --lookupd-http-address not both");
    }
    for (flag, addresses) in [("nsqd", nsqds), ("lookupd", lookupds)] {
        if addresses.iter().any(|a| a.starts_with("http")) {
            return fatal(&format!(
                "--{flag}-http-address error - address should not contain scheme"
            ));
        }
    }
    let source = Source {
        env: &env,
        topic: &topic,
        channel: &channel,
        nsqds,
        lookupds,
        timeouts: HttpTimeouts { connect, request },
    };
    let poll = async {
        let mut before = None;
        let mut i: i64 = 0;
        while count.is_none_or(|count| i64::from(count) >= i) {
            let producers = match source.producers().await {
                Ok(producers) => producers,
                Err(error) => {
                    return fatal(&format!("ERROR: failed to get topic producers - {error}"))
                }
            };
            let now = match source.totals(&producers).await {
                Ok(Some(now)) => now,
                Ok(None) => {
                    return fatal(&format!(
                    "ERROR: failed to find channel({channel}) in stats metadata for topic({topic})"
                ))
                }
                Err(error) => return fatal(&format!("ERROR: failed to get nsqd stats - {error}")),
            };
            let mut text = String::new();
            if i % 25 == 0 {
                text.push_str(HEADER);
            }
            if let Some(before) = &before {
                text.push_str(&row(before, &now, interval));
            }
            if out
                .write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return ExitCode::from(1);
            }
            before = Some(now);
            tokio::time::sleep(interval).await;
            i += 1;
        }
        ExitCode::SUCCESS
    };
    tokio::select! {
        code = poll => code,
        () = stopped(&mut stop) => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_like_gos() {
        let before = ChannelTotals {
            messages: 100,
            depth: 10,
            ..ChannelTotals::default()
        };
        let now = ChannelTotals {
            depth: 24660,
            memory_depth: 24660,
            deferred: 20,
            requeued: 102688,
            messages: 100 + 24,
            clients: 1,
            ..ChannelTotals::default()
        };
        assert_eq!(
            row(&before, &now, Duration::from_secs(2)),
            "     12  -12313 |   24660   24660       0     0    20 |  102688       0          124       1\n"
        );
    }

    #[test]
    fn count_takes_what_go_parse_int_32_takes() {
        assert_eq!(parse_count("5"), Ok(5));
        assert_eq!(parse_count("-1"), Ok(-1));
        assert_eq!(
            parse_count("x"),
            Err("strconv.ParseInt: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(
            parse_count("0x10"),
            Err("strconv.ParseInt: parsing \"0x10\": invalid syntax".into())
        );
        assert_eq!(
            parse_count("3000000000"),
            Err("strconv.ParseInt: parsing \"3000000000\": value out of range".into())
        );
    }
}
