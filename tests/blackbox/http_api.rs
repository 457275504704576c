//! The HTTP API against golden/http-nsqd.txt: statuses, bodies and the headers clients
//! look at (Content-Type, X-Nsq-Content-Type, Allow), and `/stats` compared byte for byte
//! with Go's answer for the same state once volatile values are masked.

use std::time::Duration;

use crate::support::*;

const MAX_MSG_SIZE: usize = 1024 * 1024;
const MAX_BODY_SIZE: usize = 5 * 1024 * 1024;

#[tokio::test]
async fn ping_answers_plain_ok_without_the_v1_header() {
    let server = start().await;
    let response = server.http("GET", "/ping", None).await;
    assert_eq!((response.status, response.reason.as_str()), (200, "OK"));
    assert_eq!(response.text(), "OK");
    response.assert_header("Content-Type", "text/plain; charset=utf-8");
    response.assert_header("Content-Length", "2");
    assert_eq!(response.header("X-Nsq-Content-Type"), None, "{response:?}");
    let date = response.header("Date").expect("Date header");
    assert_eq!(date.len(), 29, "RFC 1123 date: {date:?}");
    assert!(date.ends_with(" GMT"), "{date:?}");
    server.stop().await;
}

#[tokio::test]
async fn info_reports_version_host_ports_and_limits() {
    let server = start().await;
    let response = server.http("GET", "/info", None).await;
    assert_eq!(response.status, 200);
    response.assert_header("Content-Type", "application/json; charset=utf-8");
    response.assert_header("X-Nsq-Content-Type", "nsq; version=1.0");
    let host = nsq::env::os_hostname();
    let expected = format!(
        r#"{{"version":"1.3.0","broadcast_address":"{host}","hostname":"{host}","http_port":{},"tcp_port":{},"start_time":<TS>,"max_heartbeat_interval":60000000000,"max_output_buffer_size":65536,"max_output_buffer_timeout":30000000000,"max_deflate_level":6}}"#,
        server.http.port(),
        server.tcp.port()
    );
    assert_eq!(
        mask_number(&response.text(), "start_time", "<TS>"),
        expected
    );
    let info: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let start_time = info["start_time"].as_i64().unwrap();
    let now_s = wall_ns() / 1_000_000_000;
    assert!(
        (now_s - 5..=now_s).contains(&start_time),
        "start_time {start_time} vs now {now_s}"
    );
    server.stop().await;
}

#[tokio::test]
async fn pub_ok_queues_the_message() {
    let server = start().await;
    let response = server.http("POST", "/pub?topic=t", Some(b"hello")).await;
    response.assert_v1_ok();
    let topic = server.topic_stats("t").await;
    assert_eq!(topic["message_count"], 1, "{topic}");
    assert_eq!(topic["message_bytes"], 5, "{topic}");
    let mut sub = server.subscriber("t", "ch", 1).await;
    assert_eq!(&sub.message().await.body[..], b"hello");
    server.stop().await;
}

#[tokio::test]
async fn pub_checks_the_body_before_the_topic() {
    let server = start().await;
    let cases: [(&str, &[u8], u16, &str); 4] = [
        ("/pub?topic=t", b"", 400, "MSG_EMPTY"),
        ("/pub", b"hello", 400, "MISSING_ARG_TOPIC"),
        ("/pub", b"", 400, "MSG_EMPTY"),
        ("/pub?topic=bad!topic", b"hello", 400, "INVALID_TOPIC"),
    ];
    for (path, body, status, text) in cases {
        let response = server.http("POST", path, Some(body)).await;
        response.assert_v1_error(status, text);
    }
    assert!(
        server.topic_names().await.is_empty(),
        "no topic was created"
    );
    server.stop().await;
}

#[tokio::test]
async fn pub_too_big_is_refused_from_content_length_alone() {
    let server = start().await;
    // Only the head is sent: nsqd must answer from Content-Length without the body.
    let response = http_head_only(server.http, "POST", "/pub?topic=t", MAX_MSG_SIZE + 1).await;
    response.assert_v1_error(413, "MSG_TOO_BIG");
    assert!(server.topic_names().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn pub_of_exactly_max_msg_size_is_accepted() {
    let server = start().await;
    let body = vec![b'x'; MAX_MSG_SIZE];
    let response = server.http("POST", "/pub?topic=t", Some(&body)).await;
    response.assert_v1_ok();
    let topic = server.topic_stats("t").await;
    assert_eq!(topic["message_bytes"], MAX_MSG_SIZE, "{topic}");
    server.stop().await;
}

#[tokio::test]
async fn pub_with_defer_delays_the_message() {
    let server = start_with(fast_options()).await;
    let mut sub = server.subscriber("t", "ch", 1).await;
    let response = server
        .http("POST", "/pub?topic=t&defer=300", Some(b"later"))
        .await;
    response.assert_v1_ok();
    let channel = server.channel_stats("t", "ch").await;
    assert_eq!(channel["deferred_count"], 1, "{channel}");
    sub.expect_quiet_for(Duration::from_millis(200)).await;
    let msg = sub.message().await;
    assert_eq!(&msg.body[..], b"later");
    server.stop().await;
}

#[tokio::test]
async fn pub_with_invalid_defer_answers_invalid_defer() {
    let server = start().await;
    for defer in ["-1", "3600001", "abc"] {
        let path = format!("/pub?topic=t&defer={defer}");
        let response = server.http("POST", &path, Some(b"later")).await;
        response.assert_v1_error(400, "INVALID_DEFER");
    }
    let ok = server
        .http("POST", "/pub?topic=t&defer=3600000", Some(b"later"))
        .await;
    ok.assert_v1_ok();
    let topic = server.topic_stats("t").await;
    assert_eq!(
        topic["message_count"], 1,
        "only the valid one was queued: {topic}"
    );
    server.stop().await;
}

/// Go looks the topic up (creating it) before it parses `defer`.
#[tokio::test]
async fn pub_with_invalid_defer_still_creates_the_topic() {
    let server = start().await;
    let response = server
        .http("POST", "/pub?topic=t_defer&defer=abc", Some(b"later"))
        .await;
    response.assert_v1_error(400, "INVALID_DEFER");
    assert_eq!(server.topic_names().await, ["t_defer"]);
    server.stop().await;
}

#[tokio::test]
async fn mpub_text_mode_splits_lines_and_drops_empty_ones() {
    let server = start().await;
    let response = server
        .http("POST", "/mpub?topic=t", Some(b"one\ntwo\n\nthree\n"))
        .await;
    response.assert_v1_ok();
    let mut sub = server.subscriber("t", "ch", 10).await;
    let got: Vec<_> = sub
        .drain_messages(QUIET, true)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(got, [&b"one"[..], b"two", b"three"]);
    server.stop().await;
}

#[tokio::test]
async fn mpub_with_empty_text_body_answers_ok_and_creates_the_topic() {
    let server = start().await;
    let response = server.http("POST", "/mpub?topic=t", Some(b"")).await;
    response.assert_v1_ok();
    let topic = server.topic_stats("t").await;
    assert_eq!(topic["message_count"], 0, "{topic}");
    server.stop().await;
}

#[tokio::test]
async fn mpub_binary_mode_reads_sized_messages() {
    let server = start().await;
    let body = b"\x00\x00\x00\x02\x00\x00\x00\x03one\x00\x00\x00\x03two";
    server
        .http("POST", "/mpub?topic=t&binary=true", Some(body))
        .await
        .assert_v1_ok();
    // Any value Go cannot parse as a bool also means binary.
    server
        .http(
            "POST",
            "/mpub?topic=t&binary=yes",
            Some(b"\x00\x00\x00\x01\x00\x00\x00\x03one"),
        )
        .await
        .assert_v1_ok();
    let mut sub = server.subscriber("t", "ch", 10).await;
    let got: Vec<_> = sub
        .drain_messages(QUIET, true)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(got, [&b"one"[..], b"two", b"one"]);
    server.stop().await;
}

#[tokio::test]
async fn mpub_binary_mode_rejects_malformed_bodies_with_413() {
    let server = start().await;
    let cases: [(&[u8], &str); 5] = [
        (b"", "BAD_BODY"),
        (b"\x00\x00\x00\x00", "BAD_BODY"),
        (b"\x00\x00\x00\x01\x00\x00\x00\x00", "BAD_MESSAGE"),
        (b"\x00\x00\x00\x02\x00\x00\x00\x03one", "BAD_MESSAGE"),
        (b"\x00\x00\x00\x01\x00\x10\x00\x01", "BAD_MESSAGE"),
    ];
    for (body, text) in cases {
        let response = server
            .http("POST", "/mpub?topic=t&binary=true", Some(body))
            .await;
        response.assert_v1_error(413, text);
    }
    let topic = server.topic_stats("t").await;
    assert_eq!(topic["message_count"], 0, "nothing queued: {topic}");
    server.stop().await;
}

/// Go looks the topic up (creating it) before it reads the /mpub body.
#[tokio::test]
async fn failing_mpub_body_still_creates_the_topic() {
    let server = start().await;
    server
        .http(
            "POST",
            "/mpub?topic=t_bin&binary=true",
            Some(b"\x00\x00\x00\x00"),
        )
        .await
        .assert_v1_error(413, "BAD_BODY");
    let mut line = vec![b'y'; MAX_MSG_SIZE + 1];
    line.push(b'\n');
    server
        .http("POST", "/mpub?topic=t_text", Some(&line))
        .await
        .assert_v1_error(413, "MSG_TOO_BIG");
    let mut names = server.topic_names().await;
    names.sort();
    assert_eq!(names, ["t_bin", "t_text"]);
    server.stop().await;
}

#[tokio::test]
async fn mpub_argument_and_size_errors() {
    let server = start().await;
    server
        .http("POST", "/mpub", Some(b"one\n"))
        .await
        .assert_v1_error(400, "MISSING_ARG_TOPIC");
    server
        .http("POST", "/mpub?topic=bad!topic", Some(b"one\n"))
        .await
        .assert_v1_error(400, "INVALID_TOPIC");
    let response = http_head_only(server.http, "POST", "/mpub?topic=t", MAX_BODY_SIZE + 1).await;
    response.assert_v1_error(413, "BODY_TOO_BIG");
    assert!(
        server.topic_names().await.is_empty(),
        "BODY_TOO_BIG comes before the topic"
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_not_found() {
    let server = start().await;
    for (method, path) in [("GET", "/nope"), ("POST", "/create_topic?topic=x")] {
        let response = server.http(method, path, None).await;
        assert_eq!(response.reason, "Not Found");
        response.assert_v1_error(404, "NOT_FOUND");
    }
    server.stop().await;
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let server = start().await;
    let cases = [
        ("POST", "/ping", "GET, OPTIONS"),
        ("DELETE", "/stats", "GET, OPTIONS"),
        ("POST", "/info", "GET, OPTIONS"),
        ("GET", "/pub?topic=t", "OPTIONS, POST"),
        ("GET", "/mpub?topic=t", "OPTIONS, POST"),
    ];
    for (method, path, allow) in cases {
        let response = server.http(method, path, None).await;
        assert_eq!(response.reason, "Method Not Allowed");
        response.assert_v1_error(405, "METHOD_NOT_ALLOWED");
        response.assert_header("Allow", allow);
    }
    assert!(server.topic_names().await.is_empty());
    server.stop().await;
}

/// The golden /stats state: a consumer (IDENTIFYed, SUB golden ch, RDY 1) holding
/// `hello` in flight, and a producer that published `hello` and `world`; both stay.
async fn golden_stats_state(server: &Server) -> (Conn, Conn) {
    let mut consumer = server.conn().await;
    let answer = consumer
        .identify(r#"{"client_id":"consumer","hostname":"consumer-host","user_agent":"golden/1.0","feature_negotiation":true}"#)
        .await;
    assert!(
        answer.text().starts_with(r#"{"max_rdy_count":2500"#),
        "{answer:?}"
    );
    consumer.sub("golden", "ch").await;
    consumer.rdy(1).await;
    let mut producer = server.conn().await;
    producer.publish("golden", b"hello").await;
    producer.publish("golden", b"world").await;
    assert_eq!(&consumer.message().await.body[..], b"hello");
    server
        .wait_for_stats("hello in flight", |s| {
            let topic = find_named(&s["topics"], "topic_name", "golden");
            let channel = find_named(&topic["channels"], "channel_name", "ch");
            channel["in_flight_count"] == 1 && channel["depth"] == 1
        })
        .await;
    (consumer, producer)
}

/// Masks what differs between runs and between Go and us (ports, times, Go's heap).
fn mask_stats_json(json: &str) -> String {
    let mut masked = mask_number(json, "start_time", "<TS>");
    if masked.contains("\"connect_ts\":") {
        masked = mask_number(&masked, "connect_ts", "<TS>");
    }
    for key in [
        "heap_objects",
        "heap_idle_bytes",
        "heap_in_use_bytes",
        "heap_released_bytes",
        "gc_pause_usec_100",
        "gc_pause_usec_99",
        "gc_pause_usec_95",
        "next_gc_bytes",
        "gc_total_runs",
    ] {
        if masked.contains(&format!("\"{key}\":")) {
            masked = mask_number(&masked, key, "<N>");
        }
    }
    mask_port_after(&masked, "\"127.0.0.1:", "<PORT>")
}

#[tokio::test]
async fn stats_json_matches_golden_for_the_same_state() {
    let server = start().await;
    let _clients = golden_stats_state(&server).await;
    let response = server.http("GET", "/stats?format=json", None).await;
    assert_eq!(response.status, 200);
    response.assert_header("Content-Type", "application/json; charset=utf-8");
    response.assert_header("X-Nsq-Content-Type", "nsq; version=1.0");
    let golden = r#"{"version":"1.3.0","health":"OK","start_time":<TS>,"topics":[{"topic_name":"golden","channels":[{"channel_name":"ch","depth":1,"backend_depth":0,"in_flight_count":1,"deferred_count":0,"message_count":2,"requeue_count":0,"timeout_count":0,"client_count":1,"clients":[{"client_id":"consumer","hostname":"consumer-host","version":"V2","remote_address":"127.0.0.1:<PORT>","state":3,"ready_count":1,"in_flight_count":1,"message_count":1,"finish_count":0,"requeue_count":0,"connect_ts":<TS>,"sample_rate":0,"deflate":false,"snappy":false,"user_agent":"golden/1.0","tls":false,"tls_cipher_suite":"","tls_version":"","tls_negotiated_protocol":"","tls_negotiated_protocol_is_mutual":false}],"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}],"depth":0,"backend_depth":0,"message_count":2,"message_bytes":10,"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}],"memory":{"heap_objects":<N>,"heap_idle_bytes":<N>,"heap_in_use_bytes":<N>,"heap_released_bytes":<N>,"gc_pause_usec_100":<N>,"gc_pause_usec_99":<N>,"gc_pause_usec_95":<N>,"next_gc_bytes":<N>,"gc_total_runs":<N>},"producers":[{"client_id":"127.0.0.1","hostname":"127.0.0.1","version":"V2","remote_address":"127.0.0.1:<PORT>","state":0,"ready_count":0,"in_flight_count":0,"message_count":0,"finish_count":0,"requeue_count":0,"connect_ts":<TS>,"sample_rate":0,"deflate":false,"snappy":false,"user_agent":"","pub_counts":[{"topic":"golden","count":2}],"tls":false,"tls_cipher_suite":"","tls_version":"","tls_negotiated_protocol":"","tls_negotiated_protocol_is_mutual":false}]}"#;
    assert_eq!(mask_stats_json(&response.text()), golden);
    let stats: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let now_s = wall_ns() / 1_000_000_000;
    for ts in [
        &stats["start_time"],
        &stats["producers"][0]["connect_ts"],
        &stats["topics"][0]["channels"][0]["clients"][0]["connect_ts"],
    ] {
        let ts = ts.as_i64().expect("unix seconds");
        assert!(
            (now_s - 5..=now_s).contains(&ts),
            "{ts} is not a recent unix time"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn stats_without_clients_has_null_clients_and_producers() {
    let server = start().await;
    let _clients = golden_stats_state(&server).await;
    let response = server
        .http("GET", "/stats?format=json&include_clients=false", None)
        .await;
    let golden = r#"{"version":"1.3.0","health":"OK","start_time":<TS>,"topics":[{"topic_name":"golden","channels":[{"channel_name":"ch","depth":1,"backend_depth":0,"in_flight_count":1,"deferred_count":0,"message_count":2,"requeue_count":0,"timeout_count":0,"client_count":1,"clients":null,"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}],"depth":0,"backend_depth":0,"message_count":2,"message_bytes":10,"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}],"memory":{"heap_objects":<N>,"heap_idle_bytes":<N>,"heap_in_use_bytes":<N>,"heap_released_bytes":<N>,"gc_pause_usec_100":<N>,"gc_pause_usec_99":<N>,"gc_pause_usec_95":<N>,"next_gc_bytes":<N>,"gc_total_runs":<N>},"producers":null}"#;
    assert_eq!(mask_stats_json(&response.text()), golden);
    server.stop().await;
}

#[tokio::test]
async fn stats_filtered_like_nsq_stat_omits_memory() {
    let server = start().await;
    let _clients = golden_stats_state(&server).await;
    let response = server
        .http(
            "GET",
            "/stats?format=json&topic=golden&channel=ch&include_clients=false&include_mem=false",
            None,
        )
        .await;
    let golden = r#"{"version":"1.3.0","health":"OK","start_time":<TS>,"topics":[{"topic_name":"golden","channels":[{"channel_name":"ch","depth":1,"backend_depth":0,"in_flight_count":1,"deferred_count":0,"message_count":2,"requeue_count":0,"timeout_count":0,"client_count":1,"clients":null,"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}],"depth":0,"backend_depth":0,"message_count":2,"message_bytes":10,"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}],"producers":null}"#;
    assert_eq!(mask_stats_json(&response.text()), golden);
    server.stop().await;
}

#[tokio::test]
async fn stats_topic_filter_matching_nothing_gives_null_topics() {
    let server = start().await;
    let _clients = golden_stats_state(&server).await;
    let response = server
        .http(
            "GET",
            "/stats?format=json&topic=nope&include_mem=false",
            None,
        )
        .await;
    assert_eq!(
        mask_stats_json(&response.text()),
        r#"{"version":"1.3.0","health":"OK","start_time":<TS>,"topics":null,"producers":null}"#
    );
    server.stop().await;
}

#[tokio::test]
async fn stats_with_a_bad_boolean_is_invalid_request() {
    let server = start().await;
    let response = server
        .http("GET", "/stats?format=json&include_clients=maybe", None)
        .await;
    response.assert_v1_error(400, "INVALID_REQUEST");
    server.stop().await;
}

/// Masks the values of Go's text layout that differ between runs and builds.
fn mask_stats_text(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let masked = if let Some(rest) = line.strip_prefix("nsqd v1.3.0 (built w/") {
            assert!(rest.ends_with(')'), "{line}");
            "nsqd v1.3.0 (built w/<BUILD>)".to_string()
        } else if line.starts_with("start_time ") {
            "start_time <TS>".to_string()
        } else if line.starts_with("uptime ") {
            "uptime <UPTIME>".to_string()
        } else if let Some((name, _)) = line.split_once('\t') {
            format!("{name}\t<N>")
        } else if let Some((head, _)) = line.split_once("connected: ") {
            let head = mask_port_after(head, "consumer-host:", "<PORT>");
            format!(
                "{}connected: <DURATION>",
                mask_port_after(&head, "127.0.0.1:", "<PORT>")
            )
        } else {
            line.to_string()
        };
        out.push_str(&masked);
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn stats_text_matches_golden_layout() {
    let server = start().await;
    let _clients = golden_stats_state(&server).await;
    let response = server.http("GET", "/stats", None).await;
    assert_eq!(response.status, 200);
    response.assert_header("Content-Type", "text/plain; charset=utf-8");
    response.assert_header("X-Nsq-Content-Type", "nsq; version=1.0");
    let golden = "nsqd v1.3.0 (built w/<BUILD>)
start_time <TS>
uptime <UPTIME>

Health: OK

Memory:
   heap_objects             \t<N>
   heap_idle_bytes          \t<N>
   heap_in_use_bytes        \t<N>
   heap_released_bytes      \t<N>
   gc_pause_usec_100        \t<N>
   gc_pause_usec_99         \t<N>
   gc_pause_usec_95         \t<N>
   next_gc_bytes            \t<N>
   gc_total_runs            \t<N>

Topics:
   [golden         ] depth: 0     be-depth: 0     msgs: 2        e2e%: 
      [ch                       ] depth: 1     be-depth: 0     inflt: 1    def: 0    re-q: 0     timeout: 0     msgs: 2        e2e%: 
        [V2 consumer-host:<PORT> golden/1.0] state: 3 inflt: 1    rdy: 1    fin: 0        re-q: 0        msgs: 1        connected: <DURATION>

Producers:
   [V2 127.0.0.1:<PORT>      ] msgs: 2        topics: golden=2 connected: <DURATION>
";
    let text = response.text();
    assert!(text.ends_with('\n'), "ends with a newline");
    assert_eq!(mask_stats_text(&text), golden);
    server.stop().await;
}

#[tokio::test]
async fn stats_with_no_producers_has_null_producers_and_empty_topics() {
    let server = start().await;
    let response = server
        .http("GET", "/stats?format=json&include_mem=false", None)
        .await;
    assert_eq!(
        mask_stats_json(&response.text()),
        r#"{"version":"1.3.0","health":"OK","start_time":<TS>,"topics":[],"producers":null}"#
    );
    server.stop().await;
}

#[tokio::test]
async fn stats_channel_filter_leaves_out_topics_without_that_channel() {
    let server = start().await;
    let _a = server.subscriber("a", "ch", 0).await;
    let _b = server.subscriber("b", "other", 0).await;
    let stats = server.stats("channel=ch&include_mem=false").await;
    let names: Vec<_> = stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic_name"].clone())
        .collect();
    assert_eq!(names, ["a"], "{stats}");
    let stats = server.stats("topic=b&channel=ch&include_mem=false").await;
    assert_eq!(stats["topics"], serde_json::json!([]), "{stats}");
    server.stop().await;
}

#[tokio::test]
async fn stats_topic_filter_limits_producer_pub_counts_to_that_topic() {
    let server = start().await;
    let mut producer = server.conn().await;
    producer.publish("a", b"1").await;
    producer.publish("b", b"2").await;
    producer.publish("b", b"3").await;
    let stats = server.stats("topic=b&include_mem=false").await;
    assert_eq!(
        stats["producers"][0]["pub_counts"],
        serde_json::json!([{"topic": "b", "count": 2}]),
        "{stats}"
    );
    // An empty filter value filters nothing.
    let stats = server.stats("topic=&include_mem=false").await;
    assert_eq!(stats["topics"].as_array().map(Vec::len), Some(2), "{stats}");
    server.stop().await;
}
