//! End-to-end processing latency in `/stats` (nsq-reference §4.10): with
//! `--e2e-processing-latency-percentile` set, each channel reports the publish-to-FIN
//! latency of the FINs in its window and the topic merges its channels; without it both
//! are `{"count":0,"percentiles":null}`.

use std::time::Duration;

use nsq::nsqd::Options;
use serde_json::{json, Value};

use crate::support::*;

/// How long each message is held before its FIN, so every latency is at least this.
const HOLD: Duration = Duration::from_millis(30);

fn tracking_options() -> Options {
    Options {
        e2e_processing_latency_percentiles: vec![1.0, 0.99, 0.5],
        e2e_processing_latency_window_time: Duration::from_secs(600),
        ..golden_options()
    }
}

/// Receives `n` messages on `conn`, waits [`HOLD`], then FINs them all.
async fn receive_hold_fin(conn: &mut Conn, n: usize) {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(conn.message().await);
    }
    tokio::time::sleep(HOLD).await;
    for msg in &got {
        conn.fin(msg).await;
    }
}

/// The `(quantile, value)` pairs of an e2e block, checking its shape on the way.
fn percentiles(e2e: &Value) -> Vec<(f64, i64)> {
    let list = e2e["percentiles"].as_array().expect("percentiles list");
    list.iter()
        .map(|p| {
            assert_eq!(p.as_object().map(|o| o.len()), Some(2), "{p}");
            (
                p["quantile"].as_f64().expect("quantile"),
                p["value"].as_i64().expect("integer ns"),
            )
        })
        .collect()
}

/// Values are ordered as the quantiles [1, 0.99, 0.5] and lie between `low` and `high` ns.
fn assert_plausible(e2e: &Value, low: i64, high: i64) {
    let got = percentiles(e2e);
    let quantiles: Vec<f64> = got.iter().map(|(q, _)| *q).collect();
    assert_eq!(quantiles, [1.0, 0.99, 0.5], "configured order kept: {e2e}");
    let values: Vec<i64> = got.iter().map(|(_, v)| *v).collect();
    assert!(
        values[0] >= values[1] && values[1] >= values[2],
        "p100 >= p99 >= p50: {e2e}"
    );
    for value in values {
        assert!(
            (low..=high).contains(&value),
            "{value} not in {low}..={high}: {e2e}"
        );
    }
}

#[tokio::test]
async fn channel_and_topic_report_latency_of_finished_messages() {
    let server = start_with(tracking_options()).await;
    let mut a = server.subscriber("lat", "a", 10).await;
    let mut b = server.subscriber("lat", "b", 10).await;
    let _idle = server.subscriber("lat", "idle", 0).await;
    let before = wall_ns();
    server.publish("lat", &[b"1", b"2", b"3", b"4", b"5"]).await;
    receive_hold_fin(&mut a, 5).await;
    receive_hold_fin(&mut b, 5).await;
    let stats = server
        .wait_for_stats("10 FINs counted", |s| {
            let topic = find_named(&s["topics"], "topic_name", "lat");
            topic["e2e_processing_latency"]["count"] == 10
        })
        .await;
    // Every latency is at least the hold and at most the time since publishing (the
    // estimate may round up by 1%).
    let (low, high) = (HOLD.as_nanos() as i64, (wall_ns() - before) * 101 / 100);
    let topic = find_named(&stats["topics"], "topic_name", "lat");
    assert_plausible(&topic["e2e_processing_latency"], low, high);
    for name in ["a", "b"] {
        let channel = find_named(&topic["channels"], "channel_name", name);
        assert_eq!(channel["e2e_processing_latency"]["count"], 5, "{channel}");
        assert_plausible(&channel["e2e_processing_latency"], low, high);
    }
    // A channel with no FIN yet reports an empty window: zeros, not null.
    let idle = find_named(&topic["channels"], "channel_name", "idle");
    assert_eq!(
        idle["e2e_processing_latency"],
        json!({"count": 0, "percentiles": [
            {"quantile": 1, "value": 0},
            {"quantile": 0.99, "value": 0},
            {"quantile": 0.5, "value": 0},
        ]})
    );
    server.stop().await;
}

#[tokio::test]
async fn json_writes_whole_quantiles_as_go_does_and_text_lists_values() {
    let server = start_with(tracking_options()).await;
    let mut sub = server.subscriber("fmt", "ch", 1).await;
    server.publish("fmt", &[b"x"]).await;
    receive_hold_fin(&mut sub, 1).await;
    server
        .wait_for_stats("the FIN counted", |s| {
            let topic = find_named(&s["topics"], "topic_name", "fmt");
            topic["e2e_processing_latency"]["count"] == 1
        })
        .await;
    let raw = server
        .http(
            "GET",
            "/stats?format=json&topic=fmt&include_mem=false",
            None,
        )
        .await
        .text();
    assert!(
        raw.contains(r#""percentiles":[{"quantile":1,"value":"#)
            && raw.contains(r#"},{"quantile":0.99,"value":"#)
            && raw.contains(r#"},{"quantile":0.5,"value":"#),
        "{raw}"
    );
    // Text: Go prints only the values, in human units, joined by ", ".
    let text = server.http("GET", "/stats?topic=fmt", None).await.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("[fmt") || l.contains("[ch "))
        .collect();
    assert_eq!(lines.len(), 2, "a topic and a channel line: {text}");
    for line in lines {
        let (_, e2e) = line.split_once("e2e%: ").expect("e2e column");
        let values: Vec<&str> = e2e.split(", ").collect();
        assert_eq!(values.len(), 3, "{line}");
        for value in values {
            // One message held 30 ms or more: each value reads like `31.2ms`.
            let number = value.strip_suffix("ms").unwrap_or_else(|| panic!("{line}"));
            let ms: f64 = number.parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(ms >= 30.0 && number.split_once('.').is_some_and(|(_, d)| d.len() == 1));
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_topic_without_channels_has_null_percentiles_while_tracking() {
    let server = start_with(tracking_options()).await;
    server.publish("lonely", &[b"x"]).await;
    let topic = server.topic_stats("lonely").await;
    assert_eq!(
        topic["e2e_processing_latency"],
        json!({"count": 0, "percentiles": null})
    );
    server.stop().await;
}

#[tokio::test]
async fn without_percentiles_the_blocks_stay_empty() {
    let server = start().await;
    let mut sub = server.subscriber("off", "ch", 1).await;
    server.publish("off", &[b"x"]).await;
    receive_hold_fin(&mut sub, 1).await;
    server
        .wait_for_stats("the FIN seen", |s| {
            let topic = find_named(&s["topics"], "topic_name", "off");
            let channel = find_named(&topic["channels"], "channel_name", "ch");
            channel["in_flight_count"] == 0
        })
        .await;
    let topic = server.topic_stats("off").await;
    let empty = json!({"count": 0, "percentiles": null});
    assert_eq!(topic["e2e_processing_latency"], empty);
    assert_eq!(topic["channels"][0]["e2e_processing_latency"], empty);
    server.stop().await;
}
