//! nsq_to_nsq as a process, between two in-process nsqds.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{channel_figure, wait_drained, wait_until, Running};
use crate::support::*;
use crate::tools::{finish, tool};
use nsq::nsqd::Options;

const NSQ_TO_NSQ: &str = env!("CARGO_BIN_EXE_nsq_to_nsq");

/// How many messages `topic` on `server` has taken in.
async fn topic_count(server: &Server, topic: &str) -> i64 {
    server.topic_stats(topic).await["message_count"]
        .as_i64()
        .unwrap_or(0)
}

/// Every body waiting on `topic` of `server` (read through a new channel; the topic
/// holds them until a channel exists).
async fn bodies_on(server: &Server, topic: &str) -> Vec<Vec<u8>> {
    let mut conn = server.subscriber(topic, "check", 1000).await;
    conn.drain_messages(Duration::from_millis(300), true)
        .await
        .into_iter()
        .map(|m| m.body.to_vec())
        .collect()
}

/// Waits until a relay has subscribed to `topic` (so it also handles SIGTERM: a signal
/// before that ends a process Go's way, by the default action).
async fn wait_subscribed(server: &Server, topic: &str) {
    wait_until("the relay subscribed", || async {
        channel_figure(server, topic, "nsq_to_nsq", "client_count").await >= 1
    })
    .await;
}

fn set(list: &[&str]) -> BTreeSet<Vec<u8>> {
    list.iter().map(|b| b.as_bytes().to_vec()).collect()
}

#[tokio::test]
async fn relays_every_message_from_one_nsqd_to_a_topic_on_another() {
    let source = start_with(fast_options()).await;
    let destination = start_with(fast_options()).await;
    let messages: Vec<String> = (0..20).map(|i| format!("msg-{i}")).collect();
    let raw: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
    source.publish("from", &raw).await;
    let (src, dst) = (source.tcp.to_string(), destination.tcp.to_string());
    let running = Running::start(
        NSQ_TO_NSQ,
        &[
            "--topic=from",
            "--nsqd-tcp-address",
            &src,
            "--destination-nsqd-tcp-address",
            &dst,
            "--destination-topic=to",
        ],
    );
    wait_until("20 messages at the destination", || async {
        topic_count(&destination, "to").await >= 20
    })
    .await;
    wait_drained(&source, "from", "nsq_to_nsq").await;
    running.terminate().await;
    assert_eq!(topic_count(&destination, "to").await, 20);
    let mut got = bodies_on(&destination, "to").await;
    got.sort();
    let mut want: Vec<Vec<u8>> = messages.iter().map(|m| m.as_bytes().to_vec()).collect();
    want.sort();
    assert_eq!(got, want);
    source.stop().await;
    destination.stop().await;
}

#[tokio::test]
async fn without_destination_topic_each_topic_keeps_its_name() {
    let source = start_with(fast_options()).await;
    let destination = start_with(fast_options()).await;
    source.publish("left", &[b"l"]).await;
    source.publish("right", &[b"r1", b"r2"]).await;
    let (src, dst) = (source.tcp.to_string(), destination.tcp.to_string());
    let running = Running::start(
        NSQ_TO_NSQ,
        &[
            "--topic=left",
            "--topic=right",
            "--nsqd-tcp-address",
            &src,
            "--destination-nsqd-tcp-address",
            &dst,
            // Zero is no dial limit, as in Go.
            "--consumer-opt=dial_timeout,0",
            "--producer-opt=dial_timeout,0",
        ],
    );
    wait_until("three messages at the destination", || async {
        topic_count(&destination, "left").await + topic_count(&destination, "right").await >= 3
    })
    .await;
    running.terminate().await;
    assert_eq!(bodies_on(&destination, "left").await, vec![b"l".to_vec()]);
    let right: BTreeSet<Vec<u8>> = bodies_on(&destination, "right").await.into_iter().collect();
    assert_eq!(right, set(&["r1", "r2"]));
    source.stop().await;
    destination.stop().await;
}

#[tokio::test]
async fn json_filters_pass_match_and_whitelist_as_go() {
    let source = start_with(fast_options()).await;
    let destination = start_with(fast_options()).await;
    source
        .publish(
            "json",
            &[
                br#"{"kind":"a","x":1.0,"y":2,"s":"<b>"}"#,
                br#"{"kind":"b","x":3}"#,
                b"not json",
                br#"{"kind":7,"x":5}"#,
                br#"{"x":4}"#,
            ],
        )
        .await;
    let (src, dst) = (source.tcp.to_string(), destination.tcp.to_string());
    let running = Running::start(
        NSQ_TO_NSQ,
        &[
            "--topic=json",
            "--nsqd-tcp-address",
            &src,
            "--destination-nsqd-tcp-address",
            &dst,
            "--require-json-field=kind",
            "--require-json-value=a",
            "--whitelist-json-field=x",
            "--whitelist-json-field=s",
            // The message without "kind" backs off and is requeued until go-nsq's
            // max_attempts (5) gives up on it.
            "--consumer-opt=default_requeue_delay,0",
            "--consumer-opt=max_backoff_duration,0",
        ],
    );
    wait_drained(&source, "json", "nsq_to_nsq").await;
    let stderr = running.terminate().await;
    assert!(
        stderr.contains("ERROR: Unable to decode json: not json"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ERROR: missing field to check required value"),
        "{stderr}"
    );
    assert_eq!(
        channel_figure(&source, "json", "nsq_to_nsq", "requeue_count").await,
        5
    );
    assert_eq!(
        bodies_on(&destination, "json").await,
        vec![br#"{"s":"\u003cb\u003e","x":1}"#.to_vec()]
    );
    source.stop().await;
    destination.stop().await;
}

#[tokio::test]
async fn a_destination_down_at_first_loses_nothing() {
    let source = start_with(fast_options()).await;
    // A port with nothing on it yet; the destination nsqd starts there later.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let later = listener.local_addr().expect("address").to_string();
    drop(listener);
    let messages = ["d1", "d2", "d3", "d4"];
    let raw: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
    source.publish("down", &raw).await;
    let src = source.tcp.to_string();
    let running = Running::start(
        NSQ_TO_NSQ,
        &[
            "--topic=down",
            "--nsqd-tcp-address",
            &src,
            "--destination-nsqd-tcp-address",
            &later,
            "--consumer-opt=max_attempts,0",
            "--consumer-opt=default_requeue_delay,10ms",
            "--consumer-opt=backoff_multiplier,10ms",
            "--consumer-opt=max_backoff_duration,100ms",
        ],
    );
    // Publishes fail and are requeued; none is FIN'd: every message is still on the
    // channel, queued, in flight or deferred.
    wait_until("failed publishes requeued", || async {
        channel_figure(&source, "down", "nsq_to_nsq", "requeue_count").await >= 8
    })
    .await;
    let stats = source.channel_stats("down", "nsq_to_nsq").await;
    let held = ["depth", "in_flight_count", "deferred_count"]
        .iter()
        .map(|figure| stats[*figure].as_i64().unwrap_or(0))
        .sum::<i64>();
    assert_eq!(held, 4, "{stats}");
    let destination = start_with(Options {
        tcp_address: later.clone(),
        ..fast_options()
    })
    .await;
    wait_drained(&source, "down", "nsq_to_nsq").await;
    let stderr = running.terminate().await;
    assert!(stderr.contains("backing off"), "{stderr}");
    let got: BTreeSet<Vec<u8>> = bodies_on(&destination, "down").await.into_iter().collect();
    assert_eq!(got, set(&messages));
    source.stop().await;
    destination.stop().await;
}

#[tokio::test]
async fn a_sigterm_mid_stream_then_a_restart_relays_every_message() {
    let source = start_with(fast_options()).await;
    let destination = start_with(fast_options()).await;
    let messages: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
    let raw: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
    source.publish("stop", &raw).await;
    let (src, dst) = (source.tcp.to_string(), destination.tcp.to_string());
    let args = [
        "--topic=stop",
        "--nsqd-tcp-address",
        &src,
        "--destination-nsqd-tcp-address",
        &dst,
        "--max-in-flight=1",
    ];
    let running = Running::start(NSQ_TO_NSQ, &args);
    wait_until("the relay under way", || async {
        topic_count(&destination, "stop").await >= 1
    })
    .await;
    running.terminate().await;
    // A graceful stop leaves nothing in flight: every message was FIN'd after its OK or
    // handed back.
    let in_flight = channel_figure(&source, "stop", "nsq_to_nsq", "in_flight_count").await;
    assert_eq!(in_flight, 0);
    let running = Running::start(NSQ_TO_NSQ, &args);
    wait_subscribed(&source, "stop").await;
    wait_drained(&source, "stop", "nsq_to_nsq").await;
    running.terminate().await;
    let got: BTreeSet<Vec<u8>> = bodies_on(&destination, "stop").await.into_iter().collect();
    let want: BTreeSet<Vec<u8>> = messages.iter().map(|m| m.as_bytes().to_vec()).collect();
    assert_eq!(got, want);
    source.stop().await;
    destination.stop().await;
}

#[tokio::test]
async fn a_sigkill_mid_stream_then_a_restart_relays_every_message_at_least_once() {
    let source = start_with(fast_options()).await;
    let destination = start_with(fast_options()).await;
    let messages: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let raw: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
    source.publish("killed", &raw).await;
    let (src, dst) = (source.tcp.to_string(), destination.tcp.to_string());
    let args = [
        "--topic=killed",
        "--nsqd-tcp-address",
        &src,
        "--destination-nsqd-tcp-address",
        &dst,
        "--max-in-flight=5",
    ];
    let running = Running::start(NSQ_TO_NSQ, &args);
    wait_until("the relay under way", || async {
        topic_count(&destination, "killed").await >= 10
    })
    .await;
    let (code, _) = running.stop(rustix::process::Signal::KILL).await;
    assert_eq!(code, None, "killed by the signal");
    // What the killed relay held times out (fast_options: 300 ms) and goes to the next.
    let running = Running::start(NSQ_TO_NSQ, &args);
    wait_subscribed(&source, "killed").await;
    wait_drained(&source, "killed", "nsq_to_nsq").await;
    running.terminate().await;
    let got: BTreeSet<Vec<u8>> = bodies_on(&destination, "killed")
        .await
        .into_iter()
        .collect();
    let want: BTreeSet<Vec<u8>> = messages.iter().map(|m| m.as_bytes().to_vec()).collect();
    assert_eq!(
        got, want,
        "every message at least once (duplicates allowed)"
    );
    source.stop().await;
    destination.stop().await;
}

#[tokio::test]
async fn round_robin_spreads_over_two_destinations() {
    let source = start_with(fast_options()).await;
    let first = start_with(fast_options()).await;
    let second = start_with(fast_options()).await;
    source.publish("spread", &[b"1", b"2", b"3", b"4"]).await;
    let (src, a, b) = (
        source.tcp.to_string(),
        first.tcp.to_string(),
        second.tcp.to_string(),
    );
    let running = Running::start(
        NSQ_TO_NSQ,
        &[
            "--topic=spread",
            "--nsqd-tcp-address",
            &src,
            "--destination-nsqd-tcp-address",
            &a,
            "--destination-nsqd-tcp-address",
            &b,
            "--mode=round-robin",
        ],
    );
    wait_drained(&source, "spread", "nsq_to_nsq").await;
    running.terminate().await;
    assert_eq!(
        (
            topic_count(&first, "spread").await,
            topic_count(&second, "spread").await
        ),
        (2, 2)
    );
    source.stop().await;
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn dash_h_and_version() {
    let help = finish(tool(NSQ_TO_NSQ, &["-h"]).spawn().expect("spawn")).await;
    assert_eq!(help.code, Some(0));
    let (first, rest) = help.stderr.split_once('\n').expect("a header line");
    assert_eq!(first, format!("Usage of {NSQ_TO_NSQ}:"));
    assert_eq!(
        rest,
        "  -channel string\n    \tnsq channel (default \"nsq_to_nsq\")\n  -consumer-opt value\n    \toption to passthrough to nsq.Consumer (may be given multiple times, see http://godoc.org/github.com/nsqio/go-nsq#Config)\n  -destination-nsqd-tcp-address value\n    \tdestination nsqd TCP address (may be given multiple times)\n  -destination-topic string\n    \tuse this destination topic for all consumed topics (default is consumed topic name)\n  -lookupd-http-address value\n    \tlookupd HTTP address (may be given multiple times)\n  -max-in-flight int\n    \tmax number of messages to allow in flight (default 200)\n  -mode string\n    \tthe upstream request mode options: round-robin, hostpool (default), epsilon-greedy (default \"hostpool\")\n  -nsqd-tcp-address value\n    \tnsqd TCP address (may be given multiple times)\n  -producer-opt value\n    \toption to passthrough to nsq.Producer (may be given multiple times, see http://godoc.org/github.com/nsqio/go-nsq#Config)\n  -require-json-field string\n    \tfor JSON messages: only pass messages that contain this field\n  -require-json-value string\n    \tfor JSON messages: only pass messages in which the required field has this value\n  -status-every int\n    \tthe # of requests between logging status (per destination), 0 disables (default 250)\n  -topic value\n    \tnsq topic (may be given multiple times)\n  -version\n    \tprint version string\n  -whitelist-json-field value\n    \tfor JSON messages: pass this field (may be given multiple times)\n"
    );
    let version = finish(tool(NSQ_TO_NSQ, &["--version"]).spawn().expect("spawn")).await;
    assert_eq!(
        (version.code, version.stdout.as_str()),
        (Some(0), "nsq_to_nsq v1.3.0\n")
    );
}

#[tokio::test]
async fn bad_command_lines_exit_with_gos_codes_and_messages() {
    let nsqd = "--nsqd-tcp-address=127.0.0.1:1";
    let dest = "--destination-nsqd-tcp-address=127.0.0.1:2";
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--nope"], 2, "flag provided but not defined: -nope"),
        (
            &["--producer-opt=nope,1"],
            2,
            "invalid value \"nope,1\" for flag -producer-opt: invalid option nope",
        ),
        (&[nsqd, dest], 1, "--topic and --channel are required"),
        (
            &["--topic=t", "--channel="],
            1,
            "--topic and --channel are required",
        ),
        (&["--topic=ok", "--topic=bad!"], 1, "--topic is invalid"),
        (
            &["--topic=t", "--destination-topic=b c"],
            1,
            "--destination-topic is invalid",
        ),
        (&["--topic=t", "--channel=x y"], 1, "--channel is invalid"),
        (
            &["--topic=t", dest],
            1,
            "--nsqd-tcp-address or --lookupd-http-address required",
        ),
        (
            &["--topic=t", nsqd, "--lookupd-http-address=127.0.0.1:3"],
            1,
            "use --nsqd-tcp-address or --lookupd-http-address not both",
        ),
        (
            &["--topic=t", nsqd],
            1,
            "--destination-nsqd-tcp-address required",
        ),
        (
            &[
                "--topic=t",
                nsqd,
                dest,
                "--producer-opt=heartbeat_interval,2m",
            ],
            1,
            "failed creating producer HeartbeatInterval 2m0s must be less than ReadTimeout 1m0s",
        ),
        (
            &["--topic=t", nsqd, dest, "--max-in-flight=-1"],
            1,
            "invalid MaxInFlight ! -1 < 0",
        ),
    ];
    for (args, code, want) in cases {
        let failed = finish(tool(NSQ_TO_NSQ, args).spawn().expect("spawn")).await;
        assert_eq!(failed.code, Some(*code), "{args:?}: {}", failed.stderr);
        let line = failed.stderr.lines().next().unwrap_or_default();
        assert!(line.contains(want), "{args:?}: {}", failed.stderr);
        if *code == 1 {
            assert!(line.ends_with(want), "{args:?}: {}", failed.stderr);
        }
    }
}
