//! The real `nsqd` binary killed and restarted on one data folder. Crash-safe mode across `kill -9`: with `--mem-queue-size=0 --sync-every=1`, an `OK` is
//! sent only once the message is fsynced, so every acknowledged message must come back
//! after the real `nsqd` binary is killed at a random moment while several connections
//! publish. (Go nsqd with the same flags answers before its fsync and was seen to lose
//! acknowledged messages this way.)
//!
//! The test runs nsqd as a child process (`tests/nsqd_process/mod.rs`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nsq::client::{Consumer, Producer};
use nsq::env::RealNet;

const PUBLISHERS: usize = 4;
const TRIES: u64 = 8;

mod nsqd_process;
use nsqd_process::Nsqd;

/// The flags of crash-safe mode.
const CRASH_SAFE: &[&str] = &["--mem-queue-size=0", "--sync-every=1"];

/// The delay of every tenth message.
const DEFER: Duration = Duration::from_secs(2);

/// Publishes numbered messages until the connection fails; records each acknowledged one
/// with when it was sent.
async fn publish_until_killed(
    addr: String,
    publisher: usize,
    acked: Arc<Mutex<Vec<(Bytes, Instant)>>>,
) {
    let Ok(mut producer) = Producer::connect(&RealNet, &addr).await else {
        return;
    };
    for i in 0.. {
        let body = Bytes::from(format!("p{publisher}-m{i}"));
        // Every tenth is deferred: acknowledged, it must survive too, and not come
        // before its time after the crash (it does with Go, whose disk queue forgets the
        // delay).
        let sent = Instant::now();
        let published = if is_deferred(&body) {
            producer
                .deferred_publish("crash", DEFER.as_millis() as i64, body.clone())
                .await
        } else {
            producer.publish("crash", body.clone()).await
        };
        if published.is_err() {
            return;
        }
        acked.lock().expect("lock").push((body, sent));
    }
}

/// Whether `publish_until_killed` deferred this message.
fn is_deferred(body: &[u8]) -> bool {
    body.ends_with(b"9")
}

/// Consumes `crash`/`ch` until every body of `expected` has arrived (or 20 s passed),
/// then for a short quiet spell more; returns everything received.
/// Reads messages, FINs every other one (recording it) and leaves the rest in flight,
/// until the connection dies.
async fn consume_half_until_killed(mut consumer: Consumer, finished: Arc<Mutex<Vec<Bytes>>>) {
    let mut n = 0u64;
    while let Ok(message) = consumer.next_message().await {
        n += 1;
        if n.is_multiple_of(2) {
            if consumer.finish(&message.id).await.is_err() {
                return;
            }
            finished.lock().expect("lock").push(message.body);
        }
    }
}

async fn consume_all(addr: &str, expected: &BTreeSet<Bytes>) -> Vec<(Bytes, Instant)> {
    let mut missing = expected.clone();
    consume_all_until(addr, |(body, _, _)| {
        missing.remove(body);
        missing.is_empty()
    })
    .await
    .into_iter()
    .map(|(body, _, at)| (body, at))
    .collect()
}

/// Every message of `crash`/`ch` with the attempts it arrived with and when, each
/// FINished: reads until at least `at_least` arrived, then until 500 ms pass with
/// nothing new.
async fn consume_all_with_attempts(addr: &str, at_least: usize) -> Vec<(Bytes, u16, Instant)> {
    let mut count = 0;
    consume_all_until(addr, |_| {
        count += 1;
        count >= at_least
    })
    .await
}

/// Every message of `crash`/`ch` with the attempts it arrived with and when, each
/// FINished: reads until `enough` (told of each arrival) says so (bounded by 20 s; a
/// busy machine may be slow to start), then until 500 ms pass with nothing new.
async fn consume_all_until(
    addr: &str,
    mut enough: impl FnMut(&(Bytes, u16, Instant)) -> bool,
) -> Vec<(Bytes, u16, Instant)> {
    let mut consumer = Consumer::connect(&RealNet, addr).await.expect("connect");
    consumer.subscribe("crash", "ch").await.expect("sub");
    consumer.ready(1000).await.expect("rdy");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    let mut done = false;
    loop {
        let wait = if done {
            Duration::from_millis(500)
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match tokio::time::timeout(wait, consumer.next_message()).await {
            Ok(Ok(message)) => {
                consumer.finish(&message.id).await.expect("fin");
                let arrival = (message.body, message.attempts, Instant::now());
                done |= enough(&arrival);
                got.push(arrival);
            }
            _ => return got,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9() {
    for attempt in 0..TRIES {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nsqd = Nsqd::start(dir.path(), CRASH_SAFE);
        let addr = nsqd.tcp.clone();
        // A consumer that FINs every other message and leaves the rest in flight: those
        // must come back after the crash too. (It also creates the channel first, so
        // publishes go straight to its disk queue.)
        let finished = Arc::new(Mutex::new(Vec::new()));
        let mut consumer = Consumer::connect(&RealNet, &addr).await.expect("connect");
        consumer.subscribe("crash", "ch").await.expect("sub");
        consumer.ready(50).await.expect("rdy");
        let consuming = tokio::spawn(consume_half_until_killed(consumer, finished.clone()));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| tokio::spawn(publish_until_killed(addr.clone(), p, acked.clone())))
            .collect();
        // A different moment each try, the same ones each run.
        let delay_ms = 150 + (attempt * 7919) % 400;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        nsqd.kill_9();
        for publisher in publishers {
            let _ = publisher.await;
        }
        let _ = consuming.await;
        let finished: BTreeSet<Bytes> = finished.lock().expect("lock").iter().cloned().collect();
        let sent_at: BTreeMap<Bytes, Instant> =
            acked.lock().expect("lock").iter().cloned().collect();
        let acked: BTreeSet<Bytes> = sent_at.keys().cloned().collect();
        assert!(
            !acked.is_empty(),
            "try {attempt}: something was acknowledged"
        );

        let mut nsqd = Nsqd::start(dir.path(), CRASH_SAFE);
        let addr = nsqd.tcp.clone();
        let still_expected: BTreeSet<Bytes> = acked.difference(&finished).cloned().collect();
        let arrivals = consume_all(&addr, &still_expected).await;
        for (body, at) in &arrivals {
            if let (true, Some(sent)) = (is_deferred(body), sent_at.get(body)) {
                assert!(
                    at.duration_since(*sent) >= DEFER,
                    "try {attempt}: {body:?} deferred {DEFER:?} arrived after {:?}",
                    at.duration_since(*sent)
                );
            }
        }
        let mut got: BTreeSet<Bytes> = arrivals.into_iter().map(|(body, _)| body).collect();
        got.extend(finished.iter().cloned());
        eprintln!(
            "try {attempt}: killed after {delay_ms} ms; {} acknowledged, {} finished before, {} recovered",
            acked.len(),
            finished.len(),
            got.len() - finished.len()
        );
        let lost: Vec<_> = acked.difference(&got).take(5).collect();
        assert!(
            lost.is_empty(),
            "try {attempt} (killed after {delay_ms} ms): {} of {} acknowledged messages lost, e.g. {lost:?}",
            acked.difference(&got).count(),
            acked.len()
        );
        nsqd.stop();
    }
}

/// SIGTERM on the real binary with the default flags: messages in memory and in flight
/// are flushed to disk and come back after a restart (in-flight ones as redeliveries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_memory_and_in_flight_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nsqd = Nsqd::start(dir.path(), &[]);
    let addr = nsqd.tcp.clone();
    let mut consumer = Consumer::connect(&RealNet, &addr).await.expect("connect");
    consumer.subscribe("crash", "ch").await.expect("sub");
    let mut producer = Producer::connect(&RealNet, &addr).await.expect("connect");
    let sent: Vec<Bytes> = (0..20).map(|i| Bytes::from(format!("m{i}"))).collect();
    producer.multi_publish("crash", &sent).await.expect("mpub");
    consumer.ready(5).await.expect("rdy");
    for _ in 0..5 {
        let message = tokio::time::timeout(Duration::from_secs(3), consumer.next_message())
            .await
            .expect("delivered in time")
            .expect("message");
        assert_eq!(message.attempts, 1);
    }
    // Exits with status 0, without a panic.
    nsqd.stop();
    drop(consumer);

    let mut nsqd = Nsqd::start(dir.path(), &[]);
    let addr = nsqd.tcp.clone();
    let got = consume_all_with_attempts(&addr, sent.len()).await;
    let bodies: BTreeSet<Bytes> = got.iter().map(|(b, _, _)| b.clone()).collect();
    assert_eq!(bodies, sent.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(got.len(), 20, "each once");
    assert_eq!(
        got.iter().filter(|(_, attempts, _)| *attempts == 2).count(),
        5,
        "the 5 in flight at exit come back as second attempts"
    );
    nsqd.stop();
}
