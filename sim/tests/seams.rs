//! The seams work from day one: an unmodified `Nsqd` runs as a turmoil host, a client
//! host publishes and consumes 1,000 messages over the simulated network, and the same
//! seed gives the same history twice.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use nsq::client::{Consumer, Producer};
use nsq::env::MemFs;
use nsq::nsqd::{Nsqd, Options};
use nsq_sim::env::{sim_env, SimNet};
use parking_lot::Mutex;

const MESSAGES: usize = 1_000;
const BATCH: usize = 50;

/// One consumed message as the history records it.
type Delivery = (String, Vec<u8>, u16, i64);

/// Runs the scenario from `seed` and returns what the consumer saw, in order.
fn run(seed: u64) -> Vec<Delivery> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .simulation_duration(Duration::from_secs(60))
        .build();
    let fs = MemFs::new();
    sim.host("nsqd", move || {
        let fs = fs.clone();
        async move {
            let options = Options {
                tcp_address: "0.0.0.0:4150".into(),
                http_address: "0.0.0.0:4151".into(),
                broadcast_address: "nsqd".into(),
                id: 1,
                ..Options::default()
            };
            let nsqd = Nsqd::new(options, sim_env(fs, seed)).await?;
            nsqd.run().await?;
            Ok(())
        }
    });
    let history: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let seen = history.clone();
    sim.client("client", async move {
        let mut consumer = Consumer::from_connection(connect(&SimNet).await?.into_connection());
        consumer.subscribe("sim", "ch").await?;
        consumer.ready(100).await?;
        let mut producer = Producer::from_connection(connect(&SimNet).await?.into_connection());
        for batch in 0..MESSAGES / BATCH {
            let bodies: Vec<Bytes> = (0..BATCH)
                .map(|i| Bytes::from(format!("message {}", batch * BATCH + i)))
                .collect();
            producer.multi_publish("sim", &bodies).await?;
        }
        for _ in 0..MESSAGES {
            let message = consumer.next_message().await?;
            consumer.finish(&message.id).await?;
            seen.lock().push((
                message.id.to_string(),
                message.body.to_vec(),
                message.attempts,
                message.timestamp_ns,
            ));
        }
        Ok(())
    });
    if let Err(error) = sim.run() {
        panic!("simulation from seed {seed} failed: {error}");
    }
    let history = history.lock().clone();
    history
}

/// Connects once nsqd's host is listening (hosts start in the same tick, in any order).
async fn connect(net: &SimNet) -> Result<Consumer, nsq::client::ClientError> {
    let mut last_error = None;
    for _ in 0..50 {
        match Consumer::connect(net, "nsqd:4150").await {
            Ok(consumer) => return Ok(consumer),
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(last_error.unwrap_or(nsq::client::ClientError::Closed))
}

#[test]
fn nsqd_publishes_and_consumes_1000_messages_in_simulation() {
    let history = run(7);
    assert_eq!(history.len(), MESSAGES);
    let mut bodies: Vec<&[u8]> = history.iter().map(|d| d.1.as_slice()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), MESSAGES, "every message exactly once");
    assert!(history.iter().all(|d| d.2 == 1), "no redelivery");
}

#[test]
fn the_same_seed_gives_the_same_history() {
    assert_eq!(run(11), run(11));
}
