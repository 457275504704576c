//! The disk seams under simulation: an nsqd host in crash-safe mode
//! (`--mem-queue-size=0 --sync-every=1`) is crashed mid-publish, its `MemFs` (kept outside
//! the host) drops every unsynced write, the host restarts, and a consumer still gets every
//! message the producer saw acknowledged. The same seed gives the same history.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use nsq::client::{Consumer, Producer};
use nsq::env::{CrashMode, MemFs};
use nsq::nsqd::{Nsqd, Options};
use nsq_sim::env::{sim_env, SimNet};
use parking_lot::Mutex;

/// Acknowledged publishes after which the host is crashed.
const CRASH_AFTER: usize = 150;

#[derive(Default)]
struct History {
    acked: Vec<Bytes>,
    received: Vec<Bytes>,
}

async fn connect(net: &SimNet) -> Result<Consumer, nsq::client::ClientError> {
    let mut last_error = None;
    for _ in 0..500 {
        match Consumer::connect(net, "nsqd:4150").await {
            Ok(consumer) => return Ok(consumer),
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last_error.unwrap_or(nsq::client::ClientError::Closed))
}

fn run(seed: u64) -> (Vec<Bytes>, Vec<Bytes>) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .simulation_duration(Duration::from_secs(120))
        .build();
    let fs = MemFs::new();
    let host_fs = fs.clone();
    sim.host("nsqd", move || {
        let fs = host_fs.clone();
        async move {
            let options = Options {
                tcp_address: "0.0.0.0:4150".into(),
                http_address: String::new(),
                broadcast_address: "nsqd".into(),
                id: 1,
                mem_queue_size: 0,
                sync_every: 1,
                ..Options::default()
            };
            let nsqd = Nsqd::new(options, sim_env(fs, seed)).await?;
            nsqd.run().await?;
            Ok(())
        }
    });
    let history: Arc<Mutex<History>> = Arc::default();
    let producer_history = history.clone();
    sim.client("producer", async move {
        let mut setup = connect(&SimNet).await?;
        setup.subscribe("sim", "ch").await?;
        drop(setup);
        let mut producer = Producer::from_connection(connect(&SimNet).await?.into_connection());
        for i in 0.. {
            let body = Bytes::from(format!("m{i}"));
            if producer.publish("sim", body.clone()).await.is_err() {
                break;
            }
            producer_history.lock().acked.push(body);
        }
        Ok(())
    });
    let consumer_history = history.clone();
    sim.client("consumer", async move {
        // Long after the crash and restart.
        tokio::time::sleep(Duration::from_secs(20)).await;
        let mut consumer = connect(&SimNet).await?;
        consumer.subscribe("sim", "ch").await?;
        consumer.ready(100).await?;
        loop {
            let expected: BTreeSet<Bytes> = consumer_history.lock().acked.iter().cloned().collect();
            let got: BTreeSet<Bytes> = consumer_history.lock().received.iter().cloned().collect();
            if expected.is_subset(&got) {
                break;
            }
            let message = consumer.next_message().await?;
            consumer.finish(&message.id).await?;
            consumer_history.lock().received.push(message.body);
        }
        Ok(())
    });
    let mut crashed = false;
    loop {
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(error) => panic!("simulation from seed {seed} failed: {error}"),
        }
        if !crashed && history.lock().acked.len() >= CRASH_AFTER {
            sim.crash("nsqd");
            fs.crash(CrashMode::DropUnsynced, seed);
            sim.bounce("nsqd");
            crashed = true;
        }
    }
    assert!(crashed, "the host was crashed");
    let history = history.lock();
    (history.acked.clone(), history.received.clone())
}

#[test]
fn acknowledged_messages_survive_a_host_crash_that_drops_unsynced_writes() {
    let (acked, received) = run(5);
    assert!(acked.len() >= CRASH_AFTER);
    let got: BTreeSet<Bytes> = received.iter().cloned().collect();
    let lost: Vec<&Bytes> = acked.iter().filter(|b| !got.contains(*b)).collect();
    assert!(
        lost.is_empty(),
        "lost {} acknowledged messages: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn the_crash_replays_the_same_from_a_seed() {
    assert_eq!(run(9), run(9));
}
