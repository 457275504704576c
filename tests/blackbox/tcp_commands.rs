//! V2 commands that succeed, byte for byte as Go nsqd v1.3.0 answers them
//! (golden/tcp-v2.txt). The failures live in `tcp_errors`.

use crate::support::*;

/// Go's IDENTIFY answer to a default nsqd when the client asked for nothing special.
const IDENTIFY_DEFAULT_JSON: &str = r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250}"#;

/// A response frame carrying `data`, as raw bytes.
fn response_frame(data: &str) -> Vec<u8> {
    let mut raw = ((data.len() + 4) as u32).to_be_bytes().to_vec();
    raw.extend_from_slice(&[0, 0, 0, 0]);
    raw.extend_from_slice(data.as_bytes());
    raw
}

#[tokio::test]
async fn identify_without_feature_negotiation_answers_plain_ok() {
    let server = start().await;
    let mut conn = server.conn().await;
    let body = r#"{"client_id":"golden","hostname":"golden-host","user_agent":"golden/1.0","short_id":"legacy","long_id":"legacy"}"#;
    assert_eq!(body.len(), 112);
    conn.send(&identify_bytes(body)).await;
    conn.expect_raw(b"\x00\x00\x00\x06\x00\x00\x00\x00OK").await;
    conn.expect_usable("probe").await;
    server.stop().await;
}

#[tokio::test]
async fn identify_with_feature_negotiation_answers_golden_json() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(&identify_bytes(r#"{"feature_negotiation":true}"#))
        .await;
    let raw = response_frame(IDENTIFY_DEFAULT_JSON);
    assert_eq!(&raw[..8], b"\x00\x00\x01\x0c\x00\x00\x00\x00");
    conn.expect_raw(&raw).await;
    conn.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn identify_with_go_nsq_body_answers_golden_json() {
    let server = start().await;
    let mut conn = server.conn().await;
    let body = r#"{"client_id":"golden","deflate":false,"deflate_level":6,"feature_negotiation":true,"heartbeat_interval":30000,"hostname":"golden-host","long_id":"golden","msg_timeout":0,"output_buffer_size":16384,"output_buffer_timeout":250,"sample_rate":0,"short_id":"golden","snappy":false,"tls_v1":false,"user_agent":"go-nsq/1.1.0"}"#;
    assert_eq!(body.len(), 319);
    conn.send(&identify_bytes(body)).await;
    conn.expect_raw(&response_frame(IDENTIFY_DEFAULT_JSON))
        .await;
    conn.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn identify_echoes_non_default_values() {
    let server = start().await;
    let mut conn = server.conn().await;
    let body = r#"{"feature_negotiation":true,"msg_timeout":30000,"sample_rate":50,"output_buffer_size":8192,"output_buffer_timeout":100,"deflate_level":3,"heartbeat_interval":10000}"#;
    conn.send(&identify_bytes(body)).await;
    let json = r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":30000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":50,"auth_required":false,"output_buffer_size":8192,"output_buffer_timeout":100}"#;
    conn.expect_raw(&response_frame(json)).await;
    conn.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn identify_disabling_output_buffering_reports_size_1_timeout_0() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(&identify_bytes(
        r#"{"feature_negotiation":true,"output_buffer_size":-1,"output_buffer_timeout":-1}"#,
    ))
    .await;
    let json = r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":1,"output_buffer_timeout":0}"#;
    let raw = response_frame(json);
    assert_eq!(&raw[..4], b"\x00\x00\x01\x06");
    conn.expect_raw(&raw).await;
    conn.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn identify_twice_before_sub_is_answered_ok_twice() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(&identify_bytes(r#"{"client_id":"one"}"#)).await;
    conn.expect_ok().await;
    conn.send(&identify_bytes(r#"{"client_id":"two"}"#)).await;
    conn.expect_ok().await;
    conn.sub("twice", "ch").await;
    server.stop().await;
}

#[tokio::test]
async fn identify_unbuffered_client_gets_each_message_at_once() {
    let server = start().await;
    let mut conn = server.conn().await;
    let answer = conn
        .identify(r#"{"output_buffer_size":-1,"output_buffer_timeout":-1}"#)
        .await;
    assert_eq!(&answer.raw[..], OK_FRAME);
    conn.sub("unbuffered", "ch").await;
    conn.rdy(10).await;
    for body in [&b"a"[..], b"b", b"c"] {
        server.publish("unbuffered", &[body]).await;
        let msg = conn.message().await;
        assert_eq!(&msg.body[..], body);
    }
    server.stop().await;
}

#[tokio::test]
async fn pub_without_identify_answers_ok() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(b"PUB golden\n\x00\x00\x00\x05hello").await;
    conn.expect_raw(b"\x00\x00\x00\x06\x00\x00\x00\x00OK").await;
    conn.expect_quiet().await;
    let topic = server.topic_stats("golden").await;
    assert_eq!(topic["message_count"], 1);
    assert_eq!(topic["message_bytes"], 5);
    server.stop().await;
}

#[tokio::test]
async fn mpub_of_two_messages_answers_ok_and_queues_both() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(
        b"MPUB golden\n\x00\x00\x00\x12\x00\x00\x00\x02\x00\x00\x00\x03one\x00\x00\x00\x03two",
    )
    .await;
    conn.expect_ok().await;
    conn.expect_quiet().await;
    let topic = server.topic_stats("golden").await;
    assert_eq!(topic["message_count"], 2);
    assert_eq!(topic["message_bytes"], 6);
    assert_eq!(topic["depth"], 2, "no channel yet: both wait in the topic");
    let mut sub = server.subscriber("golden", "ch", 10).await;
    let bodies: Vec<_> = sub
        .drain_messages(QUIET, true)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, [&b"one"[..], &b"two"[..]]);
    server.stop().await;
}

#[tokio::test]
async fn dpub_answers_ok() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(b"DPUB golden 1000\n\x00\x00\x00\x05later").await;
    conn.expect_ok().await;
    conn.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn sub_without_identify_answers_ok_and_stays_open() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(b"SUB golden ch\n").await;
    conn.expect_raw(b"\x00\x00\x00\x06\x00\x00\x00\x00OK").await;
    conn.expect_quiet().await;
    let channel = server.channel_stats("golden", "ch").await;
    assert_eq!(channel["client_count"], 1);
    server.stop().await;
}

#[tokio::test]
async fn pub_works_on_a_subscribed_connection() {
    let server = start().await;
    let mut conn = server.subscriber("msgs", "ch", 0).await;
    conn.send(b"PUB msgs_other\n\x00\x00\x00\x0bstill works")
        .await;
    conn.expect_ok().await;
    server.stop().await;
}

#[tokio::test]
async fn rdy_and_bare_rdy_draw_no_answer() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.sub("golden_rdy", "ch").await;
    conn.send(b"RDY 10\n").await;
    conn.expect_quiet().await;
    let client = &server.channel_stats("golden_rdy", "ch").await["clients"][0];
    assert_eq!(client["ready_count"], 10);
    conn.send(b"RDY\n").await;
    conn.expect_quiet().await;
    let client = &server.channel_stats("golden_rdy", "ch").await["clients"][0];
    assert_eq!(client["ready_count"], 1, "RDY without a count means 1");
    server.stop().await;
}

#[tokio::test]
async fn nop_draws_no_answer_in_any_state() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(b"NOP\n").await;
    conn.expect_quiet().await;
    conn.sub("nop", "ch").await;
    conn.send(b"NOP\n").await;
    conn.expect_quiet().await;
    conn.send(b"CLS\n").await;
    conn.expect_response(b"CLOSE_WAIT").await;
    conn.send(b"NOP\n").await;
    conn.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn command_lines_ending_in_crlf_are_accepted() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(b"NOP\r\n").await;
    conn.expect_quiet().await;
    conn.send(b"PUB golden\r\n\x00\x00\x00\x02rn").await;
    conn.expect_raw(b"\x00\x00\x00\x06\x00\x00\x00\x00OK").await;
    conn.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn pipelined_identify_sub_rdy_in_one_write_are_all_executed() {
    // nsq_tail and bench_reader send these three before reading SUB's answer.
    let server = start().await;
    server.publish("piped", &[b"x"]).await;
    let mut conn = server.conn().await;
    let mut bytes = identify_bytes(r#"{"client_id":"tail"}"#);
    bytes.extend_from_slice(b"SUB piped ch\nRDY 1\n");
    conn.send(&bytes).await;
    conn.expect_ok().await;
    conn.expect_ok().await;
    let msg = conn.message().await;
    assert_eq!(&msg.body[..], b"x");
    server.stop().await;
}
