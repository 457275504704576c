//! `nsq_tail`: consumes topics and prints message bodies, one per line, as Go's nsq_tail.

use std::io::Write;
use std::process::ExitCode;

use tokio::sync::{mpsc, watch};

use super::app::{
    fatal, nsq_config, user_agent, version_requested, CONSUMER_OPT, LOOKUPD_HTTP_ADDRESS,
    MAX_IN_FLIGHT, NSQD_TCP_ADDRESS, VERSION_FLAG,
};
use super::consumer::{stopped, Consumer, Delivery, Subscription};
use super::flag_set::{Flag, FlagSet, FlagValues, Kind};
use super::relay::forward;
use crate::env::Env;

/// Go nsq_tail v1.3.0's flags.
pub static FLAGS: FlagSet = FlagSet {
    flags: &[
        Flag::new("channel", Kind::Str, "", "NSQ channel"),
        CONSUMER_OPT,
        LOOKUPD_HTTP_ADDRESS,
        MAX_IN_FLIGHT,
        Flag::new(
            "n",
            Kind::Int,
            "0",
            "total messages to show (will wait if starved)",
        ),
        NSQD_TCP_ADDRESS,
        Flag::new(
            "print-topic",
            Kind::Bool,
            "false",
            "print topic name where message was received",
        ),
        Flag::new(
            "topic",
            Kind::List,
            "",
            "NSQ topic (may be given multiple times)",
        ),
        VERSION_FLAG,
    ],
};

/// Runs nsq_tail with parsed flags until `-n` messages were shown on some topic, or a
/// stop signal arrives on `stop`; prints to `out`.
pub async fn run(
    env: Env,
    flags: &FlagValues,
    mut stop: watch::Receiver<bool>,
    out: &mut (dyn Write + Send),
) -> ExitCode {
    if let Some(code) = version_requested(flags, "nsq_tail", out) {
        return code;
    }
    let channel = match flags.string("channel") {
        channel if channel.is_empty() => {
            format!("tail{:06}#ephemeral", env.rng.below(999_999))
        }
        channel => channel,
    };
    let nsqds = flags.list("nsqd-tcp-address");
    let lookupds = flags.list("lookupd-http-address");
    if nsqds.is_empty() && lookupds.is_empty() {
        return fatal("--nsqd-tcp-address or --lookupd-http-address required");
    }
    if !nsqds.is_empty() && !lookupds.is_empty() {
        return fatal("use --nsqd-tcp-address or --lookupd-http-address not both");
    }
    let topics = flags.list("topic");
    if topics.is_empty() {
        return fatal("--topic required");
    }
    let total = flags.int("n");
    let mut max_in_flight = flags.int("max-in-flight");
    if total > 0 && total < max_in_flight {
        max_in_flight = total;
    }
    let mut config = match nsq_config(flags.list("consumer-opt")) {
        Ok(config) => config,
        Err(error) => return fatal(&error.to_string()),
    };
    config.user_agent = user_agent("nsq_tail");
    config.max_in_flight = max_in_flight;
    if let Err(error) = config.validate() {
        return fatal(&error.to_string());
    }

    let (merged_tx, mut merged) = mpsc::channel::<(usize, Delivery)>(1);
    let (stop_all, _) = watch::channel(false);
    let mut forwarders = tokio::task::JoinSet::new();
    for (index, topic) in topics.iter().enumerate() {
        tracing::info!("Adding consumer for topic: {topic}");
        let subscription = Subscription {
            topic: topic.clone(),
            channel: channel.clone(),
            nsqd_tcp_addresses: nsqds.to_vec(),
            lookupd_http_addresses: lookupds.to_vec(),
            config: config.clone(),
        };
        let consumer = match Consumer::start(env.clone(), subscription).await {
            Ok(consumer) => consumer,
            Err(error) => return fatal(&error.to_string()),
        };
        forwarders.spawn(forward(
            index,
            consumer,
            merged_tx.clone(),
            stop_all.subscribe(),
        ));
    }
    drop(merged_tx);

    let print_topic = flags.bool("print-topic");
    let mut shown = vec![0i64; topics.len()];
    let mut done = false;
    loop {
        let next = tokio::select! {
            next = merged.recv() => next,
            () = stopped(&mut stop), if !done => {
                done = true;
                stop_all.send_replace(true);
                continue;
            }
        };
        let Some((index, delivery)) = next else { break };
        if done {
            // Stopping: what arrives now is given back at once, not shown.
            delivery.requeue_now();
            continue;
        }
        let written = if print_topic {
            write!(out, "{} | ", topics[index]).and_then(|()| out.write_all(&delivery.message.body))
        } else {
            out.write_all(&delivery.message.body)
        }
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
        if let Err(error) = written {
            return fatal(&format!("ERROR: failed to write to os.Stdout - {error}"));
        }
        delivery.finish();
        shown[index] += 1;
        if total > 0 && shown[index] >= total {
            done = true;
            stop_all.send_replace(true);
        }
    }
    while forwarders.join_next().await.is_some() {}
    ExitCode::SUCCESS
}
