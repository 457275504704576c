//! `to_nsq`: publishes stdin, split on a delimiter byte, to a topic on every given nsqd,
//! as Go's to_nsq does.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::watch;

use super::app::{check_nsq_opt, fatal, nsq_config, user_agent};
use super::consumer::stopped;
use super::flag_set::{Flag, FlagSet, FlagValues, Kind};
use super::producer::Producer;
use crate::env::Env;

/// Go to_nsq v1.3.0's flags (it has no `--version`).
pub static FLAGS: FlagSet = FlagSet {
    flags: &[
        Flag::new(
            "delimiter",
            Kind::Str,
            "\n",
            "character to split input from stdin",
        ),
        Flag::new(
            "nsqd-tcp-address",
            Kind::List,
            "",
            "destination nsqd TCP address (may be given multiple times)",
        ),
        Flag::new(
            "producer-opt",
            Kind::List,
            "",
            "option to passthrough to nsq.Producer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)",
        )
        .checked(check_nsq_opt),
        Flag::new(
            "rate",
            Kind::Int,
            "0",
            "Throttle messages to n/second. 0 to disable",
        ),
        Flag::new("topic", Kind::Str, "", "NSQ topic to publish to"),
    ],
};

/// Runs to_nsq with parsed flags over `input` until its end or a stop signal.
pub async fn run(
    env: Env,
    flags: &FlagValues,
    input: &mut (dyn AsyncBufRead + Send + Unpin),
    mut stop: watch::Receiver<bool>,
) -> ExitCode {
    let topic = flags.string("topic");
    if topic.is_empty() {
        return fatal("--topic required");
    }
    let delimiter = flags.string("delimiter");
    let &[delimiter] = delimiter.as_bytes() else {
        return fatal("--delimiter must be a single byte");
    };
    let mut config = match nsq_config(flags.list("producer-opt")) {
        Ok(config) => config,
        Err(error) => return fatal(&format!("failed to create nsq.Producer - {error}")),
    };
    config.user_agent = user_agent("to_nsq");
    if let Err(error) = config.validate() {
        return fatal(&format!("failed to create nsq.Producer - {error}"));
    }
    let mut producers: BTreeMap<&str, Producer> = BTreeMap::new();
    for address in flags.list("nsqd-tcp-address") {
        producers
            .entry(address)
            .or_insert_with(|| Producer::new(&env, address, config.clone()));
    }
    if producers.is_empty() {
        return fatal("--nsqd-tcp-address required");
    }

    let mut throttle = Throttle::new(flags.int("rate"));
    let mut segment = Vec::new();
    loop {
        throttle.wait().await;
        segment.clear();
        let read = tokio::select! {
            read = input.read_until(delimiter, &mut segment) => read,
            () = stopped(&mut stop) => break,
        };
        let read = match read {
            Ok(read) => read,
            Err(error) => return fatal(&error.to_string()),
        };
        if segment.last() == Some(&delimiter) {
            segment.pop();
        }
        if !segment.is_empty() {
            let body = bytes::Bytes::copy_from_slice(&segment);
            for producer in producers.values() {
                if let Err(error) = producer.publish(&topic, body.clone()).await {
                    return fatal(&error.to_string());
                }
            }
        }
        throttle.spent();
        if read == 0 {
            break;
        }
    }
    for producer in producers.into_values() {
        producer.stop().await;
    }
    ExitCode::SUCCESS
}

/// Go to_nsq's `--rate`: a balance refilled by one every `1s / rate`, at most `rate`,
/// spent by every read; an empty balance waits one interval.
struct Throttle {
    interval: Option<Duration>,
    rate: i64,
    balance: i64,
    refilled_at: tokio::time::Instant,
}

impl Throttle {
    fn new(rate: i64) -> Self {
        let interval = u64::try_from(rate)
            .ok()
            .filter(|rate| *rate > 0)
            .map(|rate| Duration::from_nanos(1_000_000_000 / rate));
        if interval.is_some() {
            tracing::info!("Throttling messages rate to max:{rate}/second");
        }
        Throttle {
            interval,
            rate,
            balance: 1,
            refilled_at: tokio::time::Instant::now(),
        }
    }

    fn refill(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        while self.refilled_at + interval <= tokio::time::Instant::now() {
            self.refilled_at += interval;
            self.balance = (self.balance + 1).min(self.rate);
        }
    }

    async fn wait(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        self.refill();
        if self.balance <= 0 {
            tokio::time::sleep(interval).await;
            self.refill();
        }
    }

    fn spent(&mut self) {
        if self.interval.is_some() {
            self.balance -= 1;
        }
    }
}
