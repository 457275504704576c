//! A producer host: publishes `count` unique bodies to one nsqd at a steady rate, as PUB,
//! MPUB or DPUB, reconnecting after a broken connection, and records every publish and
//! its answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nsq::client::{ClientError, Producer as Client};
use parking_lot::Mutex;

use super::{chance, client_rng, draw, identify, sleep_until_ms, Phases};
use crate::cluster::NSQD_TCP_PORT;
use crate::env::SimNet;
use crate::history::{Event, History};
use crate::now_micros;
use crate::scenario::Producer;

/// How long a producer waits before connecting again.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// Runs one start of a producer host. `start` counts the host's starts, so bodies stay
/// unique across a crash and restart of the producer.
pub async fn run(
    spec: Producer,
    seed: u64,
    start: u64,
    phases: Phases,
    history: Arc<Mutex<History>>,
) -> turmoil::Result {
    let rng = client_rng(seed, &spec.name, start);
    sleep_until_ms(spec.start_ms).await;
    let addr = format!("{}:{NSQD_TCP_PORT}", spec.target);
    let interval = Duration::from_micros(1_000_000 / spec.rate_per_s.max(1));
    let mut sent = 0u64;
    let mut client: Option<(Client, u64)> = None;
    while sent < spec.count && now_micros() / 1000 < phases.produce_until_ms {
        let (producer, conn) = match client.as_mut() {
            Some(c) => c,
            None => match connect(&addr, &spec).await {
                Ok(producer) => {
                    let conn = {
                        let mut h = history.lock();
                        let conn = h.next_conn();
                        h.record(
                            now_micros(),
                            Event::Connected {
                                conn,
                                workload: spec.name.clone(),
                                nsqd: spec.target.clone(),
                            },
                        );
                        conn
                    };
                    client.insert((producer, conn))
                }
                Err(_) => {
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            },
        };
        let batch = spec.batch.min(spec.count - sent);
        let bodies: Vec<Bytes> = (sent..sent + batch)
            .map(|seq| body(&spec, start, seq))
            .collect();
        let defer_ms = (batch == 1 && chance(&rng, spec.dpub)).then(|| draw(&rng, spec.defer_ms));
        sent += batch;
        let publish = {
            let mut h = history.lock();
            let publish = h.next_publish();
            h.record(
                now_micros(),
                Event::PublishSent {
                    publish,
                    conn: *conn,
                    nsqd: spec.target.clone(),
                    topic: spec.topic.clone(),
                    bodies: bodies.clone(),
                    defer_ms,
                },
            );
            publish
        };
        let request = async {
            match (defer_ms, bodies.as_slice()) {
                (Some(defer), [one]) => {
                    let defer = i64::try_from(defer).unwrap_or(i64::MAX);
                    producer
                        .deferred_publish(&spec.topic, defer, one.clone())
                        .await
                }
                (_, [one]) => producer.publish(&spec.topic, one.clone()).await,
                _ => producer.multi_publish(&spec.topic, &bodies).await,
            }
        };
        // No answer within two heartbeats: the connection is given up, the answer unknown.
        let silence = Duration::from_millis(2 * spec.heartbeat_ms);
        let result = tokio::time::timeout(silence, request)
            .await
            .unwrap_or(Err(ClientError::Closed));
        let answer = match &result {
            Ok(()) => Some((true, None)),
            Err(ClientError::Server { code_and_text }) => {
                Some((false, Some(code_and_text.clone())))
            }
            Err(_) => None,
        };
        if let Some((ok, error)) = answer {
            history
                .lock()
                .record(now_micros(), Event::PublishAnswered { publish, ok, error });
        }
        if result.is_err() {
            let conn = *conn;
            client = None;
            history
                .lock()
                .record(now_micros(), Event::Closed { conn, clean: false });
            tokio::time::sleep(RECONNECT_DELAY).await;
        } else {
            tokio::time::sleep(interval).await;
        }
    }
    // Stay alive (a finished host counts as stopped) without holding the connection busy.
    std::future::pending::<()>().await;
    Ok(())
}

/// Connects and identifies with the producer's heartbeat interval.
async fn connect(addr: &str, spec: &Producer) -> Result<Client, ClientError> {
    let mut producer = Client::connect(&SimNet, addr).await?;
    identify(
        producer.connection_mut(),
        &spec.name,
        spec.heartbeat_ms,
        spec.compression,
    )
    .await?;
    Ok(producer)
}

/// A body unique in the run: `<producer>-<start>-<seq>`, padded to the configured size.
fn body(spec: &Producer, start: u64, seq: u64) -> Bytes {
    let mut text = format!("{}-{start}-{seq}", spec.name);
    while text.len() < spec.body_bytes {
        text.push('.');
    }
    Bytes::from(text)
}
