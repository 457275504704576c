//! Discovery end to end: two nsqds and two nsqlookupds on loopback. Registrations follow
//! topics and channels as they come and go, a restarted lookupd is re-synced, and a
//! third-party consumer (`tokio-nsq`) finds both nsqds through lookupd and gets every
//! message.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use nsq::client::{Consumer, Producer};
use nsq::env::{Env, RealNet};
use nsq::lookupd::{self, Lookupd};
use nsq::nsqd::{self, Nsqd};
use serde_json::Value;
use tokio::time::{sleep, timeout, Instant};

/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

async fn start_lookupd(tcp: &str, http: &str) -> Lookupd {
    let options = lookupd::Options {
        tcp_address: tcp.into(),
        http_address: http.into(),
        broadcast_address: "127.0.0.1".into(),
        ..lookupd::Options::default()
    };
    let daemon = Lookupd::new(options, Env::real())
        .await
        .expect("lookupd starts");
    let runner = daemon.clone();
    tokio::spawn(async move {
        let _ = runner.run().await;
    });
    daemon
}

/// [`start_lookupd`] on addresses a moment ago in use: another loopback socket (another
/// test's client, or nsqd reconnecting to the stopped lookupd and connecting to itself
/// through its own ephemeral port) may hold one briefly, so binding is retried.
async fn restart_lookupd(tcp: &str, http: &str) -> Lookupd {
    let options = lookupd::Options {
        tcp_address: tcp.into(),
        http_address: http.into(),
        broadcast_address: "127.0.0.1".into(),
        ..lookupd::Options::default()
    };
    let deadline = Instant::now() + WAIT;
    let daemon = loop {
        match Lookupd::new(options.clone(), Env::real()).await {
            Ok(daemon) => break daemon,
            Err(error) => {
                assert!(Instant::now() < deadline, "lookupd restarts: {error}");
                sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let runner = daemon.clone();
    tokio::spawn(async move {
        let _ = runner.run().await;
    });
    daemon
}

async fn start_nsqd(lookupds: &[&Lookupd], data: &tempfile::TempDir) -> Nsqd {
    let options = nsqd::Options {
        tcp_address: "127.0.0.1:0".into(),
        http_address: "127.0.0.1:0".into(),
        broadcast_address: "127.0.0.1".into(),
        data_path: data.path().to_string_lossy().into_owned(),
        nsqlookupd_tcp_addresses: lookupds.iter().map(|l| l.tcp_addr().to_string()).collect(),
        lookup_ping_interval: Duration::from_millis(200),
        ..nsqd::Options::default()
    };
    let daemon = Nsqd::new(options, Env::real()).await.expect("nsqd starts");
    let runner = daemon.clone();
    tokio::spawn(async move {
        let _ = runner.run().await;
    });
    daemon
}

/// `GET` on a lookupd's HTTP API, as JSON (404 gives `null`).
async fn lookupd_get(lookupd: &Lookupd, path: &str) -> Value {
    let addr = lookupd.http_addr().expect("http").to_string();
    let timeouts = nsq::http_client::HttpTimeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(2),
    };
    nsq::http_client::get_json::<Value>(&RealNet, &addr, path, timeouts, 1 << 20)
        .await
        .unwrap_or(Value::Null)
}

/// The sorted `tcp_port`s `/lookup?topic=` lists on `lookupd`.
async fn producer_ports(lookupd: &Lookupd, topic: &str) -> Vec<u64> {
    let answer = lookupd_get(lookupd, &format!("/lookup?topic={topic}")).await;
    let mut ports: Vec<u64> = answer["producers"]
        .as_array()
        .map(|list| list.iter().filter_map(|p| p["tcp_port"].as_u64()).collect())
        .unwrap_or_default();
    ports.sort_unstable();
    ports
}

async fn channels(lookupd: &Lookupd, topic: &str) -> Vec<String> {
    let answer = lookupd_get(lookupd, &format!("/channels?topic={topic}")).await;
    let mut names: Vec<String> = answer["channels"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Polls `check` until it holds, failing after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(50)).await;
    }
}

async fn publish(nsqd: &Nsqd, topic: &str, bodies: &[String]) {
    let mut producer = Producer::connect(&RealNet, &nsqd.tcp_addr().to_string())
        .await
        .expect("connect");
    let bodies: Vec<bytes::Bytes> = bodies
        .iter()
        .map(|b| bytes::Bytes::from(b.clone()))
        .collect();
    producer.multi_publish(topic, &bodies).await.expect("mpub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_follow_topics_channels_and_nsqd_exits_on_every_lookupd() {
    let l1 = start_lookupd("127.0.0.1:0", "127.0.0.1:0").await;
    let l2 = start_lookupd("127.0.0.1:0", "127.0.0.1:0").await;
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let n1 = start_nsqd(&[&l1, &l2], &d1).await;
    let n2 = start_nsqd(&[&l1, &l2], &d2).await;
    let ports = {
        let mut p = vec![
            u64::from(n1.tcp_addr().port()),
            u64::from(n2.tcp_addr().port()),
        ];
        p.sort_unstable();
        p
    };

    publish(&n1, "shared", &["a".into()]).await;
    publish(&n2, "shared", &["b".into()]).await;
    for lookupd in [&l1, &l2] {
        eventually("both nsqds registered for the topic", || async {
            producer_ports(lookupd, "shared").await == ports
        })
        .await;
    }

    // A channel on one nsqd is known to every lookupd...
    let mut consumer = Consumer::connect(&RealNet, &n1.tcp_addr().to_string())
        .await
        .expect("connect");
    consumer.subscribe("shared", "c1").await.expect("sub");
    let mut ephemeral = Consumer::connect(&RealNet, &n2.tcp_addr().to_string())
        .await
        .expect("connect");
    ephemeral
        .subscribe("shared", "tmp#ephemeral")
        .await
        .expect("sub");
    for lookupd in [&l1, &l2] {
        eventually("channels registered", || async {
            channels(lookupd, "shared").await == vec!["c1", "tmp#ephemeral"]
        })
        .await;
    }
    // ...and the ephemeral one goes with its last client.
    drop(ephemeral);
    for lookupd in [&l1, &l2] {
        eventually("ephemeral channel unregistered", || async {
            channels(lookupd, "shared").await == vec!["c1"]
        })
        .await;
    }

    // An nsqd that exits drops out of every lookupd.
    drop(consumer);
    n2.shutdown().await;
    for lookupd in [&l1, &l2] {
        eventually("the exited nsqd dropped out", || async {
            producer_ports(lookupd, "shared").await == vec![u64::from(n1.tcp_addr().port())]
        })
        .await;
    }
    n1.shutdown().await;
    l1.shutdown().await;
    l2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_lookupd_gets_a_full_resync() {
    let l1 = start_lookupd("127.0.0.1:0", "127.0.0.1:0").await;
    let tcp = l1.tcp_addr().to_string();
    let http = l1.http_addr().expect("http").to_string();
    let dir = tempfile::tempdir().expect("dir");
    let n1 = start_nsqd(&[&l1], &dir).await;
    publish(&n1, "kept", &["x".into()]).await;
    let mut consumer = Consumer::connect(&RealNet, &n1.tcp_addr().to_string())
        .await
        .expect("connect");
    consumer.subscribe("kept", "ch").await.expect("sub");
    eventually("registered", || async {
        channels(&l1, "kept").await == vec!["ch"]
    })
    .await;

    // The same addresses, a fresh (empty) registry.
    l1.shutdown().await;
    let l1 = restart_lookupd(&tcp, &http).await;
    eventually("re-synced after the lookupd restart", || async {
        channels(&l1, "kept").await == vec!["ch"]
            && producer_ports(&l1, "kept").await == vec![u64::from(n1.tcp_addr().port())]
    })
    .await;
    drop(consumer);
    n1.shutdown().await;
    l1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_consumes_from_two_nsqds_found_through_lookupd() {
    use tokio_nsq::{
        NSQChannel, NSQConsumerConfig, NSQConsumerConfigSources, NSQConsumerLookupConfig, NSQTopic,
    };
    let l1 = start_lookupd("127.0.0.1:0", "127.0.0.1:0").await;
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let n1 = start_nsqd(&[&l1], &d1).await;
    let n2 = start_nsqd(&[&l1], &d2).await;
    let first: Vec<String> = (0..100).map(|i| format!("n1-{i}")).collect();
    let second: Vec<String> = (0..100).map(|i| format!("n2-{i}")).collect();
    publish(&n1, "found", &first).await;
    publish(&n2, "found", &second).await;
    eventually("both nsqds registered", || async {
        producer_ports(&l1, "found").await.len() == 2
    })
    .await;

    let lookup = NSQConsumerLookupConfig::new()
        .set_poll_interval(Duration::from_millis(200))
        .set_addresses(HashSet::from([format!(
            "http://{}",
            l1.http_addr().expect("http")
        )]));
    let mut consumer = NSQConsumerConfig::new(
        NSQTopic::new("found").expect("topic"),
        NSQChannel::new("ch").expect("channel"),
    )
    .set_max_in_flight(50)
    .set_rebalance_interval(Duration::from_millis(100))
    .set_sources(NSQConsumerConfigSources::Lookup(lookup))
    .build();
    let expected: BTreeSet<Vec<u8>> = first
        .iter()
        .chain(second.iter())
        .map(|b| b.clone().into_bytes())
        .collect();
    let mut received = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = timeout(left, consumer.consume_filtered())
            .await
            .unwrap_or_else(|_| panic!("only {} of 200 arrived", received.len()))
            .expect("consumer open");
        received.insert(message.body.clone());
        message.finish().await;
    }
    assert_eq!(received, expected, "every message of both nsqds, once");
    n1.shutdown().await;
    n2.shutdown().await;
    l1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsq_tail_finds_both_nsqds_through_lookupd() {
    let l1 = start_lookupd("127.0.0.1:0", "127.0.0.1:0").await;
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let n1 = start_nsqd(&[&l1], &d1).await;
    let n2 = start_nsqd(&[&l1], &d2).await;
    let first: Vec<String> = (0..50).map(|i| format!("n1-{i}")).collect();
    let second: Vec<String> = (0..50).map(|i| format!("n2-{i}")).collect();
    publish(&n1, "tailed", &first).await;
    publish(&n2, "tailed", &second).await;
    eventually("both nsqds registered", || async {
        producer_ports(&l1, "tailed").await.len() == 2
    })
    .await;
    let lookupd = format!("http://{}", l1.http_addr().expect("http"));
    let tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_nsq_tail"))
        .args([
            "--topic=tailed",
            "--lookupd-http-address",
            &lookupd,
            "-n",
            "100",
        ])
        .kill_on_drop(true)
        .output();
    let output = timeout(Duration::from_secs(20), tail)
        .await
        .expect("nsq_tail finished in time")
        .expect("nsq_tail ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let expected: BTreeSet<String> = first.into_iter().chain(second).collect();
    assert_eq!(printed, expected, "every message of both nsqds");
    n1.shutdown().await;
    n2.shutdown().await;
    l1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsq_to_file_discovers_topics_matching_its_pattern_through_lookupd() {
    #![allow(clippy::disallowed_methods)]
    let l1 = start_lookupd("127.0.0.1:0", "127.0.0.1:0").await;
    let d1 = tempfile::tempdir().expect("dir");
    let n1 = start_nsqd(&[&l1], &d1).await;
    for topic in ["logs.a", "logs.b", "other"] {
        publish(&n1, topic, &[format!("{topic}-1"), format!("{topic}-2")]).await;
    }
    eventually("all three topics registered", || async {
        lookupd_get(&l1, "/topics").await["topics"]
            .as_array()
            .is_some_and(|t| t.len() == 3)
    })
    .await;
    let out = tempfile::tempdir().expect("dir");
    let lookupd = l1.http_addr().expect("http").to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nsq_to_file"))
        .args([
            "--lookupd-http-address",
            &lookupd,
            "--topic-pattern=^logs",
            "--topic-refresh=100ms",
            "--sync-interval=50ms",
            "--output-dir",
            out.path().to_str().expect("utf-8 path"),
        ])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nsq_to_file");
    let read_all = || {
        let mut lines = BTreeSet::new();
        for entry in std::fs::read_dir(out.path()).expect("read dir") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
            lines.extend(text.lines().map(str::to_string));
        }
        lines
    };
    let expected: BTreeSet<String> = ["logs.a-1", "logs.a-2", "logs.b-1", "logs.b-2"]
        .into_iter()
        .map(str::to_string)
        .collect();
    eventually("the matching topics written", || {
        let done = read_all() == expected;
        async move { done }
    })
    .await;
    let pid = child.id().expect("running") as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    let status = timeout(WAIT, child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert!(status.success());
    assert_eq!(read_all(), expected, "`other` does not match the pattern");
    n1.shutdown().await;
    l1.shutdown().await;
}
