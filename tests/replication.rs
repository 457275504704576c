//! Replicated topics with real processes on loopback (issue 16): three `nsqd` binaries in
//! one replica set and an `nsqlookupd`; a publisher on one nsqd and tokio-nsq consumers
//! finding the nsqds through lookupd. The owner is killed with `kill -9` mid-stream and
//! its data directory deleted: every acknowledged message must still arrive, delivered
//! by the peers that held standby copies. Duplicates are allowed (at-least-once).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nsq::client::Producer;
use nsq::env::RealNet;
use tokio::time::timeout;
use tokio_nsq::{
    NSQChannel, NSQConsumerConfig, NSQConsumerConfigSources, NSQConsumerLookupConfig, NSQTopic,
};

mod nsqd_process;
use nsqd_process::Nsqd;

const TOPIC: &str = "replicated";
const CHANNEL: &str = "work";
/// How long every acknowledged message has to arrive after the losses.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

/// Ports for `count` nsqds (TCP and HTTP each): peers must know each other's address
/// before any of them starts. Each is bound on port 0 and released just before use.
fn reserve_ports(count: usize) -> Vec<(String, String)> {
    let listeners: Vec<std::net::TcpListener> = (0..count * 2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").to_string())
        .collect();
    addrs
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

/// A replica set of `count` nsqds with `factor`, all registered with `lookupd`.
struct ReplicaSet {
    nodes: Vec<Option<Nsqd>>,
    dirs: Vec<tempfile::TempDir>,
}

impl ReplicaSet {
    fn start(count: usize, factor: usize, lookupd_tcp: &str) -> ReplicaSet {
        let addrs = reserve_ports(count);
        let dirs: Vec<tempfile::TempDir> = (0..count)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let mut nodes = Vec::new();
        for (i, (tcp, http)) in addrs.iter().enumerate() {
            let mut flags = vec![
                format!("--node-id={}", i + 1),
                "--broadcast-address=127.0.0.1".to_string(),
                format!("--lookupd-tcp-address={lookupd_tcp}"),
                format!("--replication-factor={factor}"),
                "--replica-failover-timeout=2s".to_string(),
                "--replica-timeout=3s".to_string(),
                "--mem-queue-size=0".to_string(),
                "--sync-every=1".to_string(),
            ];
            for (j, (peer, _)) in addrs.iter().enumerate() {
                if j != i {
                    flags.push(format!("--replica-peer={peer}"));
                }
            }
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            nodes.push(Some(Nsqd::start_on(dirs[i].path(), (tcp, http), &flags)));
        }
        ReplicaSet { nodes, dirs }
    }

    fn tcp(&self, i: usize) -> String {
        self.nodes[i].as_ref().expect("running").tcp.clone()
    }

    /// `kill -9` node `i` and delete its data directory.
    fn lose(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            node.kill_9();
        }
        wipe(self.dirs[i].path());
    }
}

fn wipe(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        std::fs::remove_file(&path).expect("remove");
    }
}

/// Publishes numbered messages to `addr` (every fifth as an MPUB of 5, every seventh
/// deferred) until it has `count` acknowledged or the connection fails; returns the
/// acknowledged bodies.
async fn publish(addr: String, count: usize, acked: Arc<Mutex<Vec<Bytes>>>) {
    let Ok(mut producer) = Producer::connect(&RealNet, &addr).await else {
        return;
    };
    for i in 0.. {
        if acked.lock().expect("lock").len() >= count {
            return;
        }
        let bodies: Vec<Bytes> = (0..if i % 5 == 0 { 5 } else { 1 })
            .map(|k| Bytes::from(format!("m{i}-{k}")))
            .collect();
        let published = if bodies.len() > 1 {
            producer.multi_publish(TOPIC, &bodies).await
        } else if i % 7 == 0 {
            producer
                .deferred_publish(TOPIC, 500, bodies[0].clone())
                .await
        } else {
            producer.publish(TOPIC, bodies[0].clone()).await
        };
        if published.is_err() {
            return;
        }
        acked.lock().expect("lock").extend(bodies);
    }
}

/// A tokio-nsq consumer finding nsqds through `lookupd_http`, FINishing everything and
/// noting each body in `received`.
fn consume(
    lookupd_http: &str,
    received: Arc<Mutex<BTreeSet<Vec<u8>>>>,
) -> tokio::task::JoinHandle<()> {
    let lookup = NSQConsumerLookupConfig::new()
        .set_poll_interval(Duration::from_millis(300))
        .set_addresses(HashSet::from([format!("http://{lookupd_http}")]));
    let topic = NSQTopic::new(TOPIC).expect("topic name");
    let channel = NSQChannel::new(CHANNEL).expect("channel name");
    let mut consumer = NSQConsumerConfig::new(topic, channel)
        .set_max_in_flight(50)
        .set_rebalance_interval(Duration::from_millis(100))
        .set_sources(NSQConsumerConfigSources::Lookup(lookup))
        .build();
    tokio::spawn(async move {
        while let Some(message) = consumer.consume_filtered().await {
            received.lock().expect("lock").insert(message.body.clone());
            message.finish().await;
        }
    })
}

/// Waits until every body of `acked` is in `received`, or fails naming what is missing.
async fn expect_all_delivered(acked: &[Bytes], received: &Mutex<BTreeSet<Vec<u8>>>) {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    loop {
        let missing: Vec<String> = {
            let received = received.lock().expect("lock");
            acked
                .iter()
                .filter(|b| !received.contains(b.as_ref()))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect()
        };
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged messages never arrived, e.g. {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `POST` to nsqd's HTTP API with a bare HTTP/1.0 request; it must answer 200.
async fn post(http: &str, path: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(http)
        .await
        .expect("connect http");
    let request = format!("POST {path} HTTP/1.0\r\nHost: {http}\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
}

async fn lose_owner_mid_stream(factor: usize, losses: &[usize]) {
    let lookupd = Nsqd::start_lookupd();
    let mut set = ReplicaSet::start(3, factor, &lookupd.tcp);
    let owner_http = set.nodes[0].as_ref().expect("running").http.clone();
    // The channel exists before the first publish, so every message is for it.
    post(&owner_http, &format!("/topic/create?topic={TOPIC}")).await;
    post(
        &owner_http,
        &format!("/channel/create?topic={TOPIC}&channel={CHANNEL}"),
    )
    .await;
    let received = Arc::new(Mutex::new(BTreeSet::new()));
    let consumer = consume(&lookupd.http, received.clone());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let publisher = tokio::spawn(publish(set.tcp(0), 100_000, acked.clone()));
    // Let a backlog build, some of it delivered and finished, some not.
    let start = Instant::now();
    while acked.lock().expect("lock").len() < 600 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for &node in losses {
        set.lose(node);
        // The next loss comes once the peers had time to take over.
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let _ = timeout(Duration::from_secs(10), publisher).await;
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 600,
        "only {} acknowledged before the loss",
        acked.len()
    );
    expect_all_delivered(&acked, &received).await;
    consumer.abort();
}

/// Factor 2: the owner is lost with its disk; its peers deliver what it held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factor_two_survives_the_loss_of_the_owner_and_its_disk() {
    lose_owner_mid_stream(2, &[0]).await;
}

/// Factor 3: the owner, then a second node, each lost with its disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factor_three_survives_losing_two_nodes_one_after_the_other() {
    lose_owner_mid_stream(3, &[0, 1]).await;
}
