//! Deferred messages (DPUB, REQ with a timeout) keep their due time across restarts of
//! the real `nsqd` binary: SIGTERM, `kill -9` in crash-safe mode, and a due-time journal
//! (`<queue>.deferred.journal`, see `src/nsqd/due_journal.rs`) that was cut, corrupted,
//! replaced or deleted in between.
//!
//! Every test runs the binary as a child process on a temporary data folder, reads its
//! stderr for its ports, and talks to it over loopback with the crate's own client.
//! "Never early" is strict: an arrival is compared with the moment just before the
//! command was sent plus its delay. "On time" is generous (a noisy 2-core VM):
//! [`SLACK`] after the due time.
//!
//! DPUB's bad timeouts (negative, above `--max-req-timeout`) are covered with the default
//! limit in `tests/blackbox/tcp_errors.rs` (`dpub_failures_are_fatal`); here only a
//! non-default `--max-req-timeout` given on the binary's command line.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nsq::client::{ClientError, Consumer, Producer};
use nsq::env::RealNet;
use nsq::protocol::MessageId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOPIC: &str = "later";
const CHANNEL: &str = "ch";
/// How late after its due time a message may still count as on time.
const SLACK: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------
// The nsqd process: `tests/nsqd_process/mod.rs`.

mod nsqd_process;
use nsqd_process::Nsqd;

/// `deferred_count` and `depth` of the test channel in `/stats?format=json` (0, 0 when
/// the channel is missing).
async fn channel_counts(nsqd: &Nsqd) -> (u64, u64) {
    let stats = http_get_json(&nsqd.http, "/stats?format=json").await;
    let stats = stats.get("data").unwrap_or(&stats);
    let channel = stats["topics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["topic_name"] == TOPIC)
        .flat_map(|t| t["channels"].as_array().into_iter().flatten())
        .find(|c| c["channel_name"] == CHANNEL);
    match channel {
        Some(c) => (
            c["deferred_count"].as_u64().expect("deferred_count"),
            c["depth"].as_u64().expect("depth"),
        ),
        None => (0, 0),
    }
}

/// A plain HTTP/1.0 GET; the body parsed as JSON.
async fn http_get_json(addr: &str, path: &str) -> serde_json::Value {
    let body = http_ok(addr, "GET", path).await;
    serde_json::from_slice(&body).expect("JSON body")
}

/// A plain HTTP/1.0 request without a body, which must be answered 200; the body.
async fn http_ok(addr: &str, method: &str, path: &str) -> Vec<u8> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("response");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("HTTP answer in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]);
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{method} {path}: {head}"
    );
    raw[split + 4..].to_vec()
}

// ---------------------------------------------------------------------------------------
// Publishing and consuming.

/// One acknowledged deferred publish (or REQ): when it was sent and acknowledged.
#[derive(Debug, Clone)]
struct Sent {
    body: Bytes,
    delay: Duration,
    /// Just before the command was written.
    sent: Instant,
    /// The wall clock just before, for comparing with the journal's due times.
    sent_wall: SystemTime,
    /// When nsqd's OK was read (for REQ, which has no answer: when a later answer was).
    acked: Instant,
}

impl Sent {
    /// The earliest moment it may arrive.
    fn not_before(&self) -> Instant {
        self.sent + self.delay
    }

    /// The latest moment it still counts as on time.
    fn not_after(&self) -> Instant {
        self.acked + self.delay + SLACK
    }
}

/// A subscribed consumer on the test channel.
async fn subscribe(addr: &str, rdy: i64) -> Consumer {
    let mut consumer = Consumer::connect(&RealNet, addr).await.expect("connect");
    consumer.subscribe(TOPIC, CHANNEL).await.expect("sub");
    consumer.ready(rdy).await.expect("rdy");
    consumer
}

/// Creates the test channel (so publishes reach it) and leaves.
async fn create_channel(addr: &str) {
    let mut consumer = subscribe(addr, 0).await;
    let _ = consumer.close().await;
}

/// DPUBs each `(body, delay in ms)` in order on one connection.
async fn dpub_all(addr: &str, messages: &[(&str, u64)]) -> Vec<Sent> {
    let mut producer = Producer::connect(&RealNet, addr).await.expect("connect");
    let mut sent = Vec::new();
    for (body, delay_ms) in messages {
        let body = Bytes::from(body.to_string());
        let (at, wall) = (Instant::now(), SystemTime::now());
        producer
            .deferred_publish(TOPIC, *delay_ms as i64, body.clone())
            .await
            .expect("DPUB acknowledged");
        sent.push(Sent {
            body,
            delay: Duration::from_millis(*delay_ms),
            sent: at,
            sent_wall: wall,
            acked: Instant::now(),
        });
    }
    sent
}

/// One delivered message.
#[derive(Debug, Clone)]
struct Arrival {
    body: Bytes,
    id: MessageId,
    attempts: u16,
    at: Instant,
}

/// Reads from `consumer` (FINishing each) until `expected` distinct bodies arrived or
/// `within` passed, then 300 ms more to catch duplicates.
async fn collect(consumer: &mut Consumer, expected: usize, within: Duration) -> Vec<Arrival> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got: Vec<Arrival> = Vec::new();
    let mut bodies = BTreeSet::new();
    let mut quiet_until = None;
    loop {
        let until = quiet_until.unwrap_or(deadline);
        let wait = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(wait, consumer.next_message()).await {
            Ok(Ok(message)) => {
                let at = Instant::now();
                consumer.finish(&message.id).await.expect("fin");
                bodies.insert(message.body.clone());
                got.push(Arrival {
                    body: message.body,
                    id: message.id,
                    attempts: message.attempts,
                    at,
                });
                if bodies.len() >= expected && quiet_until.is_none() {
                    quiet_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
                }
            }
            Ok(Err(error)) => panic!("consumer failed: {error}"),
            Err(_) => return got,
        }
    }
}

/// Subscribes to the test channel and collects, see [`collect`].
async fn consume(addr: &str, expected: usize, within: Duration) -> Vec<Arrival> {
    let mut consumer = subscribe(addr, 100).await;
    collect(&mut consumer, expected, within).await
}

/// The one arrival of each body; a body missing or arriving twice fails the test.
fn once_each<'a>(arrivals: &'a [Arrival], bodies: &[Bytes]) -> BTreeMap<Bytes, &'a Arrival> {
    let mut by_body: BTreeMap<Bytes, &Arrival> = BTreeMap::new();
    for arrival in arrivals {
        let earlier = by_body.insert(arrival.body.clone(), arrival);
        assert!(earlier.is_none(), "{:?} delivered twice", arrival.body);
    }
    let missing: Vec<_> = bodies
        .iter()
        .filter(|b| !by_body.contains_key(*b))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}; got {arrivals:?}");
    by_body
}

/// Each of `sent` arrived once, not before its due time and at most [`SLACK`] after.
fn assert_on_time(arrivals: &[Arrival], sent: &[Sent]) {
    let bodies: Vec<Bytes> = sent.iter().map(|s| s.body.clone()).collect();
    let by_body = once_each(arrivals, &bodies);
    for s in sent {
        let arrival = by_body[&s.body];
        assert!(
            arrival.at >= s.not_before(),
            "{:?} deferred {:?} arrived {:?} early",
            s.body,
            s.delay,
            s.not_before() - arrival.at
        );
        assert!(
            arrival.at <= s.not_after(),
            "{:?} deferred {:?} arrived {:?} after its due time",
            s.body,
            s.delay,
            arrival.at - (s.acked + s.delay)
        );
    }
}

/// Nothing is delivered to `consumer` for `spell` (nothing is due yet).
async fn assert_nothing_for(consumer: &mut Consumer, spell: Duration) {
    if let Ok(message) = tokio::time::timeout(spell, consumer.next_message()).await {
        panic!("nothing is due yet, got {message:?}");
    }
}

/// nsqd processed every command this consumer sent before: a FIN of an unknown id gets
/// the non-fatal `E_FIN_FAILED` back, after the commands before it were handled.
async fn sync_commands(consumer: &mut Consumer) {
    consumer
        .finish(&MessageId(*b"0000000000000000"))
        .await
        .expect("fin");
    match consumer.next_message().await {
        Err(ClientError::Server { code_and_text }) if code_and_text.starts_with("E_FIN_FAILED") => {
        }
        other => panic!("expected E_FIN_FAILED, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// 1, 2: SIGTERM.

/// "DPUB 20 s, SIGTERM after 3 s, restart" (issue 15): the messages wait for their due
/// time after the restart, /stats counts them as deferred, then all come on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpub_keeps_its_time_across_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &[]);
    let mut consumer = subscribe(&nsqd.tcp, 10).await;
    let messages: Vec<(String, u64)> = (0..5).map(|i| (format!("d{i}"), 20_000)).collect();
    let messages: Vec<(&str, u64)> = messages.iter().map(|(b, d)| (b.as_str(), *d)).collect();
    let sent = dpub_all(&nsqd.tcp, &messages).await;
    // "SIGTERM after 3 s"; a subscribed consumer gets nothing meanwhile.
    assert_nothing_for(&mut consumer, Duration::from_secs(3)).await;
    nsqd.stop();
    drop(consumer);

    let mut nsqd = Nsqd::start(dir.path(), &[]);
    assert_eq!(
        channel_counts(&nsqd).await,
        (5, 5),
        "after the restart (deferred_count, depth): all five wait on disk"
    );
    let mut consumer = subscribe(&nsqd.tcp, 100).await;
    assert_nothing_for(&mut consumer, Duration::from_secs(1)).await;
    assert_eq!(
        channel_counts(&nsqd).await.0,
        5,
        "deferred_count once a consumer is subscribed: all five still wait"
    );
    let arrivals = collect(&mut consumer, sent.len(), Duration::from_secs(30)).await;
    assert_on_time(&arrivals, &sent);
    assert_eq!(channel_counts(&nsqd).await, (0, 0), "all delivered");
    nsqd.stop();
}

/// A delivered message REQ'd with a 20 s timeout, SIGTERM after 3 s, restart: it is
/// redelivered (as its second attempt) at its due time, not before. With the default
/// memory queue, and with `--mem-queue-size=0` where the message came from disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_with_timeout_keeps_its_time_across_sigterm() {
    tokio::join!(
        req_across_sigterm(&[]),
        req_across_sigterm(&["--mem-queue-size=0"])
    );
}

async fn req_across_sigterm(flags: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), flags);
    let mut consumer = subscribe(&nsqd.tcp, 1).await;
    let mut producer = Producer::connect(&RealNet, &nsqd.tcp)
        .await
        .expect("connect");
    producer.publish(TOPIC, "r").await.expect("pub");
    let message = tokio::time::timeout(Duration::from_secs(5), consumer.next_message())
        .await
        .expect("delivered in time")
        .expect("message");
    assert_eq!(message.attempts, 1, "{flags:?}");
    let delay = Duration::from_secs(20);
    let (sent, sent_wall) = (Instant::now(), SystemTime::now());
    consumer
        .requeue(&message.id, delay.as_millis() as i64)
        .await
        .expect("req");
    sync_commands(&mut consumer).await;
    let req = Sent {
        body: message.body.clone(),
        delay,
        sent,
        sent_wall,
        acked: Instant::now(),
    };
    assert_nothing_for(
        &mut consumer,
        Duration::from_secs(3).saturating_sub(sent.elapsed()),
    )
    .await;
    nsqd.stop();
    drop(consumer);

    let mut nsqd = Nsqd::start(dir.path(), flags);
    assert_eq!(
        channel_counts(&nsqd).await.0,
        1,
        "{flags:?}: deferred_count after the restart"
    );
    let arrivals = consume(&nsqd.tcp, 1, Duration::from_secs(30)).await;
    assert_on_time(&arrivals, std::slice::from_ref(&req));
    assert_eq!(arrivals[0].id, message.id, "{flags:?}: the same message");
    assert_eq!(arrivals[0].attempts, 2, "{flags:?}: its second attempt");
    nsqd.stop();
}

// ---------------------------------------------------------------------------------------
// 3: kill -9 in crash-safe mode.

const CRASH_SAFE: [&str; 2] = ["--mem-queue-size=0", "--sync-every=1"];

/// Several connections DPUB (5-8 s) until nsqd is killed with `kill -9` after 1 s; after
/// a restart, every acknowledged DPUB arrives, none before its due time. And a message
/// REQ'd with a timeout just before the kill (once, or a second time when it came back)
/// is not redelivered early either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_safe_dpub_survives_kill_9() {
    tokio::join!(
        dpubs_across_kill_9(),
        req_across_kill_9(&[5000]),
        req_across_kill_9(&[1000, 5000])
    );
}

async fn dpubs_across_kill_9() {
    const PUBLISHERS: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &CRASH_SAFE);
    create_channel(&nsqd.tcp).await;
    // Every DPUB tried (acknowledged or not), and the acknowledged ones.
    let tried = Arc::new(Mutex::new(BTreeMap::new()));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (addr, tried, acked) = (nsqd.tcp.clone(), tried.clone(), acked.clone());
            tokio::spawn(async move {
                let Ok(mut producer) = Producer::connect(&RealNet, &addr).await else {
                    return;
                };
                for i in 0u64.. {
                    let body = Bytes::from(format!("p{p}-m{i}"));
                    let delay = Duration::from_millis(5000 + (i + p as u64) % 4 * 1000);
                    let (sent, sent_wall) = (Instant::now(), SystemTime::now());
                    tried
                        .lock()
                        .expect("lock")
                        .insert(body.clone(), (sent, delay));
                    let published = producer
                        .deferred_publish(TOPIC, delay.as_millis() as i64, body.clone())
                        .await;
                    if published.is_err() {
                        return;
                    }
                    acked.lock().expect("lock").push(Sent {
                        body,
                        delay,
                        sent,
                        sent_wall,
                        acked: Instant::now(),
                    });
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    nsqd.kill_9();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let acked = acked.lock().expect("lock").clone();
    let tried = tried.lock().expect("lock").clone();
    assert!(!acked.is_empty(), "some DPUB was acknowledged");

    let mut nsqd = Nsqd::start(dir.path(), &CRASH_SAFE);
    let arrivals = consume(&nsqd.tcp, acked.len(), Duration::from_secs(25)).await;
    // At most one DPUB per connection was cut by the kill; it may have arrived, and must
    // not be early either.
    for arrival in &arrivals {
        let (sent, delay) = tried[&arrival.body];
        assert!(
            arrival.at >= sent + delay,
            "{:?} deferred {delay:?} arrived {:?} early after kill -9",
            arrival.body,
            sent + delay - arrival.at
        );
    }
    let acked_bodies: BTreeSet<&Bytes> = acked.iter().map(|s| &s.body).collect();
    let acked_arrivals: Vec<Arrival> = arrivals
        .iter()
        .filter(|a| acked_bodies.contains(&a.body))
        .cloned()
        .collect();
    assert_on_time(&acked_arrivals, &acked);
    eprintln!(
        "kill -9: {} DPUBs acknowledged, {} delivered after the restart",
        acked.len(),
        arrivals.len()
    );
    nsqd.stop();
}

/// A message REQ'd with each of `delays` in turn (each redelivery REQ'd again), then
/// `kill -9`: after a restart it comes at the last REQ's due time (a message's last
/// journal record counts).
async fn req_across_kill_9(delays: &[u64]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &CRASH_SAFE);
    let mut consumer = subscribe(&nsqd.tcp, 1).await;
    let mut producer = Producer::connect(&RealNet, &nsqd.tcp)
        .await
        .expect("connect");
    producer.publish(TOPIC, "q").await.expect("pub");
    let mut last = None;
    for (i, delay_ms) in delays.iter().enumerate() {
        let message = tokio::time::timeout(Duration::from_secs(10), consumer.next_message())
            .await
            .expect("delivered in time")
            .expect("message");
        assert_eq!(usize::from(message.attempts), i + 1, "{delays:?}");
        let delay = Duration::from_millis(*delay_ms);
        let (sent, sent_wall) = (Instant::now(), SystemTime::now());
        consumer
            .requeue(&message.id, *delay_ms as i64)
            .await
            .expect("req");
        // Once a later command is answered, the REQ's due time is journaled.
        sync_commands(&mut consumer).await;
        let req = Sent {
            body: message.body.clone(),
            delay,
            sent,
            sent_wall,
            acked: Instant::now(),
        };
        last = Some((message.id, req));
    }
    let (id, req) = last.expect("some REQ");
    nsqd.kill_9();
    drop(consumer);

    let mut nsqd = Nsqd::start(dir.path(), &CRASH_SAFE);
    let arrivals = consume(&nsqd.tcp, 1, Duration::from_secs(20)).await;
    assert_on_time(&arrivals, std::slice::from_ref(&req));
    assert_eq!(arrivals[0].id, id, "{delays:?}: the same message");
    nsqd.stop();
}

/// DPUBs to a topic that has no channel yet wait in the topic's own disk queue, with the
/// topic's journal (`<topic>.deferred.journal`): after a SIGTERM (default flags) or a
/// `kill -9` (crash-safe mode) and a restart, the first channel gets them on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpub_to_a_topic_without_channels_keeps_its_time() {
    tokio::join!(
        dpub_without_channels(&[], false),
        dpub_without_channels(&CRASH_SAFE, true)
    );
}

async fn dpub_without_channels(flags: &[&str], kill_9: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), flags);
    let sent = dpub_all(&nsqd.tcp, &[("t0", 5000), ("t1", 6000), ("t2", 5500)]).await;
    if kill_9 {
        nsqd.kill_9();
    } else {
        nsqd.stop();
    }
    let journal = dir.path().join(format!("{TOPIC}.deferred.journal"));
    let journaled = read_journal(&std::fs::read(&journal).expect("the topic's journal"));
    assert_eq!(journaled.len(), 3, "{flags:?}: one record each");

    let mut nsqd = Nsqd::start(dir.path(), flags);
    let arrivals = consume(&nsqd.tcp, sent.len(), Duration::from_secs(20)).await;
    assert_on_time(&arrivals, &sent);
    nsqd.stop();
}

/// Past `--max-deferred-memory`, the deferred messages a crash-safe channel reads before
/// their time (to get past them) move to synced spill segments
/// (`<topic>:<channel>.deferred-synced.<window>.dat`) and leave the disk queue. After a
/// `kill -9` and a restart, each arrives once, on time: whether its queue copy comes
/// back (`kill -9` before the queue's read position was synced past it) or only its
/// segment record does (a message read after them synced the position).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_early_messages_past_the_budget_survive_kill_9() {
    tokio::join!(
        read_early_across_kill_9(false),
        read_early_across_kill_9(true)
    );
}

async fn read_early_across_kill_9(read_past: bool) {
    let flags = [
        "--mem-queue-size=0",
        "--sync-every=1",
        "--max-deferred-memory=0",
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &flags);
    create_channel(&nsqd.tcp).await;
    let plan: Vec<(String, u64)> = (0..200u64)
        .map(|i| (format!("m{i}"), 4_000 + i * 37 % 3_000))
        .collect();
    let refs: Vec<(&str, u64)> = plan.iter().map(|(b, d)| (b.as_str(), *d)).collect();
    let sent = dpub_all(&nsqd.tcp, &refs).await;
    // A consumer makes the channel read all of them before their time.
    let mut consumer = subscribe(&nsqd.tcp, 10).await;
    if read_past {
        let mut producer = Producer::connect(&RealNet, &nsqd.tcp)
            .await
            .expect("connect");
        producer
            .publish(TOPIC, Bytes::from_static(b"now"))
            .await
            .expect("PUB");
        let now = collect(&mut consumer, 1, Duration::from_secs(5)).await;
        assert_eq!(now.len(), 1, "only the message not deferred: {now:?}");
        sync_commands(&mut consumer).await;
    }
    // The disk loop's next ticks write and sync the segments.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let synced = std::fs::read_dir(dir.path())
        .expect("data dir")
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .contains(".deferred-synced.")
        })
        .count();
    assert!(synced > 0, "read_past {read_past}: no synced spill segment");
    nsqd.kill_9();

    let mut nsqd = Nsqd::start(dir.path(), &flags);
    // `now`, finished before the kill, may come back too (its FIN was not synced).
    let arrivals = consume(&nsqd.tcp, sent.len() + 1, Duration::from_secs(12)).await;
    let deferred: Vec<Arrival> = arrivals.into_iter().filter(|a| a.body != "now").collect();
    assert_on_time(&deferred, &sent);
    nsqd.stop();
}

/// Two restarts before the due time: the due times an earlier run left are kept by the
/// next one, whether the messages stayed on disk (no consumer) or were read into memory
/// by a subscribed consumer in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_restart_before_the_due_time_keeps_it_too() {
    tokio::join!(two_restarts(false), two_restarts(true));
}

async fn two_restarts(read_in_between: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &[]);
    create_channel(&nsqd.tcp).await;
    let sent = dpub_all(&nsqd.tcp, &[("s0", 6000), ("s1", 6500), ("s2", 7000)]).await;
    nsqd.stop();

    let mut nsqd = Nsqd::start(dir.path(), &[]);
    if read_in_between {
        let mut consumer = subscribe(&nsqd.tcp, 100).await;
        assert_nothing_for(&mut consumer, Duration::from_secs(1)).await;
        nsqd.stop();
    } else {
        tokio::time::sleep(Duration::from_secs(1)).await;
        nsqd.stop();
    }

    let mut nsqd = Nsqd::start(dir.path(), &[]);
    assert_eq!(
        channel_counts(&nsqd).await.0,
        3,
        "read in between: {read_in_between}; deferred_count after the second restart"
    );
    let arrivals = consume(&nsqd.tcp, sent.len(), Duration::from_secs(20)).await;
    assert_on_time(&arrivals, &sent);
    nsqd.stop();
}

// ---------------------------------------------------------------------------------------
// 4: due order.

/// Distinct delays published in shuffled order, SIGTERM, restart: one consumer gets them
/// in the order of their due times, each on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_delays_keep_due_order_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &[]);
    create_channel(&nsqd.tcp).await;
    let messages = [
        ("e", 5000),
        ("b", 3500),
        ("g", 6500),
        ("a", 3000),
        ("f", 6000),
        ("c", 4000),
        ("h", 7000),
        ("d", 4500),
    ];
    let sent = dpub_all(&nsqd.tcp, &messages).await;
    nsqd.stop();

    let mut nsqd = Nsqd::start(dir.path(), &[]);
    let arrivals = consume(&nsqd.tcp, sent.len(), Duration::from_secs(20)).await;
    assert_on_time(&arrivals, &sent);
    // Where due times cannot overlap (one was acknowledged plus its delay before the
    // other was sent plus its delay), the earlier must arrive first.
    let position: BTreeMap<&Bytes, usize> = arrivals
        .iter()
        .enumerate()
        .map(|(i, a)| (&a.body, i))
        .collect();
    for x in &sent {
        for y in &sent {
            if x.acked + x.delay < y.sent + y.delay {
                assert!(
                    position[&x.body] < position[&y.body],
                    "{:?} (due first) arrived after {:?}: {:?}",
                    x.body,
                    y.body,
                    arrivals.iter().map(|a| &a.body).collect::<Vec<_>>()
                );
            }
        }
    }
    let order: String = arrivals
        .iter()
        .map(|a| String::from_utf8_lossy(&a.body).into_owned())
        .collect();
    assert_eq!(order, "abcdefgh");
    nsqd.stop();
}

// ---------------------------------------------------------------------------------------
// 5: a damaged journal.

/// The deferred messages of the journal cases: five, due in 8 s.
const DAMAGE_DELAY_MS: u64 = 8000;

/// How the journal is damaged between a graceful exit and the restart.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut in the middle of the record at this index.
    CutInRecord(usize),
    /// One byte flipped in the middle of the record at this index.
    FlipInRecord(usize),
    /// The header's version field set to this.
    Version(u16),
    /// The magic overwritten.
    Magic,
    /// Zero bytes long.
    Empty,
    /// Replaced by random bytes.
    Garbage,
}

/// The journal records a graceful exit leaves: `(message id, due ns)`, checked strictly
/// against the format (header, 29-byte records with a CRC-32C each).
fn read_journal(bytes: &[u8]) -> Vec<([u8; 16], i64)> {
    assert!(bytes.len() >= 12, "journal header: {bytes:?}");
    assert_eq!(&bytes[..8], b"NSQRSDEF", "magic");
    assert_eq!(&bytes[8..10], &1u16.to_be_bytes(), "version");
    assert_eq!(&bytes[10..12], &1u16.to_be_bytes(), "file kind");
    let records = &bytes[12..];
    assert_eq!(records.len() % 29, 0, "whole records");
    records
        .chunks_exact(29)
        .map(|record| {
            assert_eq!(record[0], 1, "record kind deferred-until");
            let crc = u32::from_be_bytes(record[25..].try_into().expect("4 bytes"));
            assert_eq!(crc32c::crc32c(&record[..25]), crc, "record checksum");
            let id: [u8; 16] = record[1..17].try_into().expect("16 bytes");
            assert!(id.iter().all(u8::is_ascii_hexdigit), "ASCII id {id:?}");
            (
                id,
                i64::from_be_bytes(record[17..25].try_into().expect("8")),
            )
        })
        .collect()
}

/// The journal of the test channel in `data`.
fn journal_path(data: &Path) -> std::path::PathBuf {
    data.join(format!("{TOPIC}:{CHANNEL}.deferred.journal"))
}

/// Nanoseconds since the Unix epoch.
fn unix_ns(at: SystemTime) -> i64 {
    i64::try_from(
        at.duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos(),
    )
    .expect("i64")
}

/// Five deferred messages, a graceful exit, the journal damaged, a restart: nsqd does not
/// panic, loses nothing, and each message whose record survived keeps its due time.
/// Returns the restarted nsqd's log.
async fn damaged_journal(damage: Damage) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &[]);
    create_channel(&nsqd.tcp).await;
    let messages: Vec<(String, u64)> = (0..5).map(|i| (format!("j{i}"), DAMAGE_DELAY_MS)).collect();
    let messages: Vec<(&str, u64)> = messages.iter().map(|(b, d)| (b.as_str(), *d)).collect();
    let sent = dpub_all(&nsqd.tcp, &messages).await;
    nsqd.stop();

    let path = journal_path(dir.path());
    let mut bytes = std::fs::read(&path).expect("the exit left a journal");
    let records = read_journal(&bytes);
    assert_eq!(
        records.len(),
        5,
        "{damage:?}: one record per deferred message"
    );
    for (_, due_ns) in &records {
        let earliest = unix_ns(sent[0].sent_wall) + DAMAGE_DELAY_MS as i64 * 1_000_000;
        assert!(*due_ns >= earliest, "{damage:?}: due time in ns since 1970");
        assert!(*due_ns < earliest + 60_000_000_000, "{damage:?}: due time");
    }
    let record_at = |index: usize| 12 + index * 29;
    // The ids whose record survives the damage.
    let kept: BTreeSet<[u8; 16]> = match damage {
        Damage::CutInRecord(index) => {
            bytes.truncate(record_at(index) + 14);
            records[..index].iter().map(|(id, _)| *id).collect()
        }
        Damage::FlipInRecord(index) => {
            bytes[record_at(index) + 14] ^= 0x5a;
            records
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != index)
                .map(|(_, (id, _))| *id)
                .collect()
        }
        Damage::Version(version) => {
            bytes[8..10].copy_from_slice(&version.to_be_bytes());
            BTreeSet::new()
        }
        Damage::Magic => {
            bytes[..8].copy_from_slice(b"GARBAGE!");
            BTreeSet::new()
        }
        Damage::Empty => {
            bytes.clear();
            BTreeSet::new()
        }
        Damage::Garbage => {
            let mut rng = fastrand::Rng::with_seed(15);
            bytes = (0..12 + 3 * 29 + 7).map(|_| rng.u8(..)).collect();
            BTreeSet::new()
        }
    };
    std::fs::write(&path, &bytes).expect("damage the journal");

    let restarted = Instant::now();
    let mut nsqd = Nsqd::start(dir.path(), &[]);
    let arrivals = consume(&nsqd.tcp, sent.len(), Duration::from_secs(20)).await;
    let bodies: Vec<Bytes> = sent.iter().map(|s| s.body.clone()).collect();
    let by_body = once_each(&arrivals, &bodies);
    let kept_sent: Vec<Sent> = sent
        .iter()
        .filter(|s| kept.contains(&by_body[&s.body].id.0))
        .cloned()
        .collect();
    let kept_arrivals: Vec<Arrival> = arrivals
        .iter()
        .filter(|a| kept.contains(&a.id.0))
        .cloned()
        .collect();
    assert_eq!(
        kept_sent.len(),
        kept.len(),
        "{damage:?}: kept ids delivered"
    );
    assert_on_time(&kept_arrivals, &kept_sent);
    if kept.is_empty() {
        // Nothing to go by: delivered when read, as Go would, long before the due time.
        for s in &sent {
            let at = by_body[&s.body].at;
            assert!(
                at < restarted + SLACK && at < s.not_before(),
                "{damage:?}: {:?} delivered at once, got it {:?} after the restart",
                s.body,
                at - restarted
            );
        }
    }
    let log = nsqd.log_text();
    nsqd.stop();
    // Whatever is left of the journal is clean again.
    if let Ok(bytes) = std::fs::read(&path) {
        read_journal(&bytes);
    }
    log
}

/// Whether `log` has a warning about the due-time journal.
fn warns_about_the_journal(log: &str) -> bool {
    log.lines()
        .any(|line| line.contains("WARN") && line.contains("journal"))
}

/// (a) The journal cut in the middle of its third record: the first two keep their due
/// times, the rest may come at once, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_cut_short_keeps_the_records_before_the_cut() {
    let log = damaged_journal(Damage::CutInRecord(2)).await;
    assert!(
        warns_about_the_journal(&log),
        "the torn tail is logged:\n{log}"
    );
}

/// (b) One byte flipped in the third record: the others keep their due times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_journal_record_is_skipped_alone() {
    let log = damaged_journal(Damage::FlipInRecord(2)).await;
    assert!(
        warns_about_the_journal(&log),
        "the bad record is logged:\n{log}"
    );
}

/// (c) A journal of an unknown version or with a foreign magic is ignored with a
/// warning: every message is delivered at once, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_with_an_unknown_header_is_ignored_with_a_warning() {
    let (version, magic) = tokio::join!(
        damaged_journal(Damage::Version(2)),
        damaged_journal(Damage::Magic)
    );
    for log in [version, magic] {
        assert!(warns_about_the_journal(&log), "a warning:\n{log}");
    }
}

/// (d) A zero-length journal and one of random bytes: nsqd starts and delivers all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_garbage_journal_loses_nothing() {
    let (_, garbage) = tokio::join!(
        damaged_journal(Damage::Empty),
        damaged_journal(Damage::Garbage)
    );
    assert!(warns_about_the_journal(&garbage), "a warning:\n{garbage}");
}

// ---------------------------------------------------------------------------------------
// 6: Go's data folder.

/// Whether `name` is one of the files Go nsqd keeps in its data folder.
fn is_go_file(name: &str) -> bool {
    if name == "nsqd.dat" || name.ends_with(".diskqueue.meta.dat") {
        return true;
    }
    let Some(stem) = name.strip_suffix(".dat") else {
        return false;
    };
    match stem.rsplit_once(".diskqueue.") {
        Some((queue, number)) => {
            !queue.is_empty() && number.len() == 6 && number.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The `(id, body)` of each record of a go-diskqueue data file (length-prefixed
/// messages: timestamp, attempts, id, body).
fn diskqueue_records(bytes: &[u8]) -> Vec<([u8; 16], Bytes)> {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let size = u32::from_be_bytes(rest[..4].try_into().expect("size")) as usize;
        let message = &rest[4..4 + size];
        let id: [u8; 16] = message[10..26].try_into().expect("id");
        records.push((id, Bytes::copy_from_slice(&message[26..])));
        rest = &rest[4 + size..];
    }
    records
}

/// After a graceful exit with deferred messages waiting, the data folder holds Go's files
/// (the messages in Go's disk queue format) and, besides them, only our journals; with
/// the journals deleted (Go ignores them), a restart delivers everything at once, as Go
/// would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_stays_go_compatible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &[]);
    create_channel(&nsqd.tcp).await;
    let sent = dpub_all(&nsqd.tcp, &[("x0", 30_000), ("x1", 30_000), ("x2", 30_000)]).await;
    let mut producer = Producer::connect(&RealNet, &nsqd.tcp)
        .await
        .expect("connect");
    producer.publish(TOPIC, "now").await.expect("pub");
    nsqd.stop();

    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("data folder")
        .map(|entry| {
            let entry = entry.expect("entry");
            assert!(entry.file_type().expect("type").is_file(), "{entry:?}");
            entry.file_name().into_string().expect("UTF-8 name")
        })
        .collect();
    names.sort();
    let foreign: Vec<&String> = names
        .iter()
        .filter(|n| !is_go_file(n) && !n.ends_with(".deferred.journal"))
        .collect();
    assert!(
        foreign.is_empty(),
        "files Go does not know: {foreign:?} in {names:?}"
    );
    let channel_queue = format!("{TOPIC}:{CHANNEL}");
    for name in [
        "nsqd.dat".to_string(),
        format!("{channel_queue}.diskqueue.meta.dat"),
        format!("{channel_queue}.diskqueue.000000.dat"),
        format!("{channel_queue}.deferred.journal"),
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    // The deferred messages are in Go's disk queue, and the journal names them.
    let on_disk = diskqueue_records(
        &std::fs::read(
            dir.path()
                .join(format!("{channel_queue}.diskqueue.000000.dat")),
        )
        .expect("channel disk queue"),
    );
    let bodies: BTreeSet<Bytes> = on_disk.iter().map(|(_, b)| b.clone()).collect();
    let all: Vec<Bytes> = ["x0", "x1", "x2", "now"].map(Bytes::from).to_vec();
    assert_eq!(
        bodies,
        all.iter().cloned().collect(),
        "the channel's disk queue"
    );
    let ids_on_disk: BTreeSet<[u8; 16]> = on_disk.iter().map(|(id, _)| *id).collect();
    let journaled =
        read_journal(&std::fs::read(journal_path(dir.path())).expect("the channel's journal"));
    assert_eq!(journaled.len(), 3, "the three deferred ones");
    assert!(journaled.iter().all(|(id, _)| ids_on_disk.contains(id)));

    for name in names.iter().filter(|n| n.ends_with(".deferred.journal")) {
        std::fs::remove_file(dir.path().join(name)).expect("remove journal");
    }
    let restarted = Instant::now();
    let mut nsqd = Nsqd::start(dir.path(), &[]);
    assert_eq!(
        channel_counts(&nsqd).await,
        (0, 4),
        "(deferred_count, depth) without journals"
    );
    let arrivals = consume(&nsqd.tcp, all.len(), Duration::from_secs(10)).await;
    let by_body = once_each(&arrivals, &all);
    for s in &sent {
        let at = by_body[&s.body].at;
        assert!(
            at < restarted + SLACK,
            "{:?} delivered at once without its journal, got it {:?} after the restart",
            s.body,
            at - restarted
        );
    }
    nsqd.stop();
}

// ---------------------------------------------------------------------------------------
// Emptying and deleting.

/// Deferred messages waiting on disk after a restart, then `/channel/empty` (or
/// `/topic/delete`): the journal files go too, and another restart delivers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptying_or_deleting_removes_the_journal() {
    let empty = format!("/channel/empty?topic={TOPIC}&channel={CHANNEL}");
    let delete = format!("/topic/delete?topic={TOPIC}");
    tokio::join!(emptied_or_deleted(&empty), emptied_or_deleted(&delete));
}

async fn emptied_or_deleted(action: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &[]);
    create_channel(&nsqd.tcp).await;
    dpub_all(&nsqd.tcp, &[("z0", 30_000), ("z1", 30_000)]).await;
    nsqd.stop();
    let journal = journal_path(dir.path());
    assert!(journal.exists(), "{action}: the exit left a journal");

    let mut nsqd = Nsqd::start(dir.path(), &[]);
    assert_eq!(channel_counts(&nsqd).await, (2, 2), "{action}: before");
    http_ok(&nsqd.http, "POST", action).await;
    assert_eq!(channel_counts(&nsqd).await, (0, 0), "{action}: after");
    let journals_left = || -> Vec<String> {
        std::fs::read_dir(dir.path())
            .expect("data folder")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".deferred.journal"))
            .collect()
    };
    // A deleted topic's files are removed by a task of their own, after the reply.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = journals_left();
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = journals_left();
    }
    assert!(left.is_empty(), "{action}: journals left: {left:?}");
    nsqd.stop();

    let mut nsqd = Nsqd::start(dir.path(), &[]);
    assert_eq!(
        channel_counts(&nsqd).await.0,
        0,
        "{action}: after a restart"
    );
    let mut consumer = subscribe(&nsqd.tcp, 100).await;
    assert_nothing_for(&mut consumer, Duration::from_millis(500)).await;
    nsqd.stop();
}

// ---------------------------------------------------------------------------------------
// 7: bad timeouts against a non-default limit.

/// With `--max-req-timeout=30s` on the command line, DPUB takes 0-30000 ms: 30001 and -1
/// are `E_INVALID` (fatal, Go's texts), 30000 is accepted and leaves a deferred message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpub_timeouts_follow_max_req_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &["--max-req-timeout=30s"]);
    create_channel(&nsqd.tcp).await;
    for (timeout, text) in [
        (30_001, "E_INVALID DPUB timeout 30001 out of range 0-30000"),
        (-1, "E_INVALID DPUB could not parse timeout -1"),
    ] {
        let mut producer = Producer::connect(&RealNet, &nsqd.tcp)
            .await
            .expect("connect");
        match producer.deferred_publish(TOPIC, timeout, "bad").await {
            Err(ClientError::Server { code_and_text }) => assert_eq!(code_and_text, text),
            other => panic!("DPUB {timeout}: expected {text}, got {other:?}"),
        }
    }
    let mut producer = Producer::connect(&RealNet, &nsqd.tcp)
        .await
        .expect("connect");
    producer
        .deferred_publish(TOPIC, 30_000, "max")
        .await
        .expect("DPUB at the limit");
    // Go counts a deferred message in memory in deferred_count, not in depth.
    assert_eq!(
        channel_counts(&nsqd).await,
        (1, 0),
        "(deferred_count, depth)"
    );
    nsqd.stop();
}
