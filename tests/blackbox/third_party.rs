//! A third-party client, `tokio-nsq` 0.14, against our nsqd: it must handshake,
//! publish and consume with no knowledge of our implementation.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::{timeout, Instant};
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConfigSharedCompression, NSQConfigSharedTLS, NSQConsumerConfig,
    NSQConsumerConfigSources, NSQDeflateLevel, NSQEvent, NSQProducerConfig, NSQTopic,
};

use crate::support::*;

const MESSAGES: usize = 1000;
/// Bounds the whole exchange: far more than it needs on 2 cores.
const EXCHANGE_MAX: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_publishes_and_consumes_1000_messages_exactly_once() {
    let server = start().await;
    exchange(&server, NSQConfigShared::new, None).await;
    server.stop().await;
}

/// tokio-nsq's TLS is insecure by default (it accepts any server certificate), so the
/// test's self-made certificate needs no trust set-up on its side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_over_tls_publishes_and_consumes_every_message() {
    let pki = crate::tls::Pki::new();
    // TLS required on TCP: a client that did not upgrade could not publish at all.
    let server = start_with(nsq::nsqd::Options {
        tls_required: 1,
        ..pki.options()
    })
    .await;
    exchange(
        &server,
        || NSQConfigShared::new().set_tls(NSQConfigSharedTLS::new("localhost")),
        Some("tls"),
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_with_snappy_publishes_and_consumes_every_message() {
    let server = start().await;
    exchange(
        &server,
        || NSQConfigShared::new().set_compression(NSQConfigSharedCompression::Snappy),
        Some("snappy"),
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_with_deflate_publishes_and_consumes_every_message() {
    let server = start().await;
    exchange(
        &server,
        || {
            let level = NSQDeflateLevel::new(5).expect("valid level");
            NSQConfigShared::new().set_compression(NSQConfigSharedCompression::Deflate(level))
        },
        Some("deflate"),
    )
    .await;
    server.stop().await;
}

/// Publishes [`MESSAGES`] bodies with a tokio-nsq producer and consumes them with a
/// tokio-nsq consumer, both made with `shared()`: each arrives exactly once. With
/// `upgraded`, `/stats` must show the consumer's connection with that field (`tls`,
/// `snappy`, `deflate`) true while it consumes.
async fn exchange(server: &Server, shared: impl Fn() -> NSQConfigShared, upgraded: Option<&str>) {
    let address = server.tcp.to_string();
    let topic = NSQTopic::new("third_party").expect("valid topic");
    let channel = NSQChannel::new("ch").expect("valid channel");
    let sent: BTreeSet<Vec<u8>> = (0..MESSAGES)
        .map(|i| format!("message-{i:04}").into_bytes())
        .collect();

    let mut producer = NSQProducerConfig::new(address.clone())
        .set_shared(shared())
        .build();
    let healthy = timeout(WAIT, producer.consume())
        .await
        .expect("producer event in time");
    assert!(matches!(healthy, Some(NSQEvent::Healthy())), "{healthy:?}");
    for body in &sent {
        producer
            .publish(&topic, body.clone())
            .await
            .expect("queued");
    }
    let deadline = Instant::now() + EXCHANGE_MAX;
    let mut acks = 0;
    while acks < MESSAGES {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, producer.consume())
            .await
            .expect("acks in time")
        {
            Some(NSQEvent::Ok()) => acks += 1,
            other => panic!("unexpected producer event after {acks} acks: {other:?}"),
        }
    }
    let topic_stats = server.topic_stats("third_party").await;
    assert_eq!(topic_stats["message_count"], MESSAGES, "{topic_stats}");

    let mut consumer = NSQConsumerConfig::new(topic, channel)
        .set_shared(shared())
        .set_max_in_flight(100)
        .set_rebalance_interval(Duration::from_millis(100))
        .set_sources(NSQConsumerConfigSources::Daemons(vec![address]))
        .build();
    let mut received = Vec::with_capacity(MESSAGES);
    while received.len() < MESSAGES {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = timeout(left, consumer.consume_filtered())
            .await
            .unwrap_or_else(|_| panic!("only {} messages arrived in time", received.len()))
            .expect("consumer open");
        assert_eq!(message.attempt, 1, "no redelivery");
        received.push(message.body.clone());
        message.finish().await;
        if let (Some(field), 1) = (upgraded, received.len()) {
            let stats = server.channel_stats("third_party", "ch").await;
            assert_eq!(stats["clients"][0][field], true, "{stats}");
        }
    }
    // Nothing more may come: every message was delivered exactly once.
    let extra = timeout(QUIET, consumer.consume_filtered()).await;
    assert!(extra.is_err(), "an extra message arrived: {extra:?}");
    let unique: BTreeSet<Vec<u8>> = received.iter().cloned().collect();
    assert_eq!(unique.len(), received.len(), "no duplicates");
    assert_eq!(unique, sent, "the bodies received are the bodies sent");

    let channel_stats = server
        .wait_for_stats("every FIN to land", |s| {
            let topic = find_named(&s["topics"], "topic_name", "third_party");
            let channel = find_named(&topic["channels"], "channel_name", "ch");
            channel["in_flight_count"] == 0 && channel["depth"] == 0
        })
        .await;
    let channel = find_named(
        &find_named(&channel_stats["topics"], "topic_name", "third_party")["channels"],
        "channel_name",
        "ch",
    );
    assert_eq!(channel["message_count"], MESSAGES, "{channel}");
    assert_eq!(channel["requeue_count"], 0, "{channel}");
    assert_eq!(channel["timeout_count"], 0, "{channel}");
    drop(consumer);
    drop(producer);
}
