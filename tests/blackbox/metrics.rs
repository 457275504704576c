//! `GET /metrics`: Prometheus text that a Prometheus parser reads, with the same numbers
//! as `/stats`.

use std::collections::BTreeMap;
use std::time::Duration;

use nsq::nsqd::Options;

use crate::support::*;

/// Every sample of a scrape, keyed by metric name and sorted label pairs.
fn scrape(body: &[u8]) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    let text = String::from_utf8(body.to_vec()).expect("utf-8 body");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    parsed
        .samples
        .into_iter()
        .map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("unexpected sample kind {other:?}"),
            };
            let mut labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            ((sample.metric, labels), value)
        })
        .collect()
}

fn channel_labels(topic: &str, channel: &str) -> Vec<(String, String)> {
    vec![
        ("channel".to_string(), channel.to_string()),
        ("topic".to_string(), topic.to_string()),
    ]
}

#[tokio::test]
async fn metrics_parse_and_match_stats() {
    let server = start().await;
    let mut consumer = server.subscriber("metered", "ch", 1).await;
    server.publish("metered", &[b"one", b"two", b"three"]).await;
    let _first = consumer.message().await;
    server
        .wait_for_stats("one in flight", |stats| {
            stats["topics"][0]["channels"][0]["in_flight_count"] == 1
        })
        .await;

    let response = server.http("GET", "/metrics", None).await;
    assert_eq!(response.status, 200);
    assert!(response
        .header("Content-Type")
        .is_some_and(|v| v.starts_with("application/openmetrics-text")));
    let samples = scrape(&response.body);
    let get = |name: &str, labels: Vec<(String, String)>| {
        *samples
            .get(&(name.to_string(), labels.clone()))
            .unwrap_or_else(|| panic!("missing {name} {labels:?} in {samples:?}"))
    };
    let topic = vec![("topic".to_string(), "metered".to_string())];
    assert_eq!(get("nsq_topic_messages_total", topic.clone()), 3.0);
    assert_eq!(get("nsq_topic_message_bytes_total", topic.clone()), 11.0);
    assert_eq!(get("nsq_topic_paused", topic), 0.0);
    let ch = channel_labels("metered", "ch");
    assert_eq!(get("nsq_channel_depth", ch.clone()), 2.0);
    assert_eq!(get("nsq_channel_in_flight", ch.clone()), 1.0);
    assert_eq!(get("nsq_channel_messages_total", ch.clone()), 3.0);
    assert_eq!(get("nsq_channel_clients", ch.clone()), 1.0);
    assert_eq!(get("nsq_channel_timeouts_total", ch), 0.0);
    assert_eq!(get("nsq_healthy", vec![]), 1.0);
    assert_eq!(get("nsq_clients", vec![]), 1.0);
    consumer.expect_quiet_for(Duration::from_millis(50)).await;
    server.stop().await;
}

#[tokio::test]
async fn metrics_is_get_only() {
    let server = start().await;
    let response = server.http("POST", "/metrics", Some(b"")).await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("Allow"), Some("GET, OPTIONS"));
    server.stop().await;
}

#[tokio::test]
async fn metrics_carry_e2e_percentiles_in_seconds() {
    let server = start_with(Options {
        e2e_processing_latency_percentiles: vec![0.99, 0.5],
        ..fast_options()
    })
    .await;
    let mut consumer = server.subscriber("timed", "ch", 10).await;
    server.publish("timed", &[b"a", b"b"]).await;
    for _ in 0..2 {
        let msg = consumer.message().await;
        consumer.fin(&msg).await;
    }
    server
        .wait_for_stats("two finished", |stats| {
            stats["topics"][0]["channels"][0]["e2e_processing_latency"]["count"] == 2
        })
        .await;
    let samples = scrape(&server.http("GET", "/metrics", None).await.body);
    for quantile in ["0.99", "0.5"] {
        let mut labels = channel_labels("timed", "ch");
        labels.push(("quantile".to_string(), quantile.to_string()));
        labels.sort();
        let seconds = samples
            .get(&(
                "nsq_channel_e2e_processing_latency_seconds".to_string(),
                labels,
            ))
            .copied()
            .unwrap_or_else(|| panic!("no channel e2e sample for {quantile}: {samples:?}"));
        assert!((0.0..5.0).contains(&seconds), "{seconds}");
        let topic_labels = vec![
            ("quantile".to_string(), quantile.to_string()),
            ("topic".to_string(), "timed".to_string()),
        ];
        assert!(samples.contains_key(&(
            "nsq_topic_e2e_processing_latency_seconds".to_string(),
            topic_labels
        )));
    }
    server.stop().await;
}
