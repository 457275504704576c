//! Every V2 error case of golden/tcp-v2.txt: the exact error text in an error frame
//! (type 1), and whether nsqd then closes the connection (fatal) or keeps it usable
//! (E_FIN_FAILED, E_REQ_FAILED, E_TOUCH_FAILED). Also which failing commands still
//! create their topic.

use crate::support::*;

/// Sends the magic, then `bytes` in one write; expects the error `text`, then EOF.
async fn fatal_case(server: &Server, bytes: &[u8], text: &str) {
    let mut conn = server.conn().await;
    conn.send(bytes).await;
    conn.expect_fatal(text).await;
}

#[tokio::test]
async fn identify_with_invalid_fields_is_fatal_bad_body() {
    let server = start().await;
    let cases = [
        (
            r#"{"heartbeat_interval":500}"#,
            "E_BAD_BODY IDENTIFY heartbeat interval (500) is invalid",
        ),
        (
            r#"{"heartbeat_interval":60001}"#,
            "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid",
        ),
        (
            r#"{"output_buffer_size":10}"#,
            "E_BAD_BODY IDENTIFY output buffer size (10) is invalid",
        ),
        (
            r#"{"output_buffer_timeout":10}"#,
            "E_BAD_BODY IDENTIFY output buffer timeout (10) is invalid",
        ),
        (
            r#"{"msg_timeout":10}"#,
            "E_BAD_BODY IDENTIFY msg timeout (10) is invalid",
        ),
        (
            r#"{"sample_rate":100}"#,
            "E_BAD_BODY IDENTIFY sample rate (100) is invalid",
        ),
        (
            r#"{"sample_rate":-1}"#,
            "E_BAD_BODY IDENTIFY sample rate (-1) is invalid",
        ),
        (
            "{bad json",
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
    ];
    for (body, text) in cases {
        fatal_case(&server, &identify_bytes(body), text).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn identify_error_frames_match_golden_bytes() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(&identify_bytes(r#"{"heartbeat_interval":500}"#))
        .await;
    conn.expect_raw(
        b"\x00\x00\x00;\x00\x00\x00\x01E_BAD_BODY IDENTIFY heartbeat interval (500) is invalid",
    )
    .await;
    conn.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn identify_with_bad_body_size_is_fatal_bad_body() {
    let server = start().await;
    fatal_case(
        &server,
        b"IDENTIFY\n\x00\x00\x00\x00",
        "E_BAD_BODY IDENTIFY invalid body size 0",
    )
    .await;
    fatal_case(
        &server,
        b"IDENTIFY\n\xff\xff\xff\xff",
        "E_BAD_BODY IDENTIFY invalid body size -1",
    )
    .await;
    // Only the size is sent: nsqd must answer before any body byte arrives.
    fatal_case(
        &server,
        b"IDENTIFY\n\x00P\x00\x01",
        "E_BAD_BODY IDENTIFY body too big 5242881 > 5242880",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn identify_after_sub_is_fatal_invalid() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.sub("golden", "ch").await;
    conn.send(&identify_bytes(r#"{"client_id":"late"}"#)).await;
    conn.expect_raw(b"\x00\x00\x00.\x00\x00\x00\x01E_INVALID cannot IDENTIFY in current state")
        .await;
    conn.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn identify_asking_snappy_and_deflate_is_fatal_without_json_answer() {
    let server = start().await;
    fatal_case(
        &server,
        &identify_bytes(r#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#),
        "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn pub_failures_are_fatal() {
    let server = start().await;
    fatal_case(
        &server,
        b"PUB golden_pub_empty\n\x00\x00\x00\x00",
        "E_BAD_MESSAGE PUB invalid message body size 0",
    )
    .await;
    // Only the size is sent: nsqd answers before reading the body.
    fatal_case(
        &server,
        b"PUB golden_pub_big\n\x00\x10\x00\x01",
        "E_BAD_MESSAGE PUB message too big 1048577 > 1048576",
    )
    .await;
    // Only the line is sent: the name is checked before the body size is read.
    fatal_case(
        &server,
        b"PUB bad!topic\n",
        r#"E_BAD_TOPIC PUB topic name "bad!topic" is not valid"#,
    )
    .await;
    let long = "a".repeat(65);
    fatal_case(
        &server,
        format!("PUB {long}\n").as_bytes(),
        &format!(r#"E_BAD_TOPIC PUB topic name "{long}" is not valid"#),
    )
    .await;
    fatal_case(
        &server,
        b"PUB\n",
        "E_INVALID PUB insufficient number of parameters",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn pub_empty_body_error_matches_golden_bytes() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(b"PUB golden_pub_empty\n\x00\x00\x00\x00").await;
    conn.expect_raw(b"\x00\x00\x001\x00\x00\x00\x01E_BAD_MESSAGE PUB invalid message body size 0")
        .await;
    conn.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn mpub_failures_are_fatal() {
    let server = start().await;
    fatal_case(
        &server,
        b"MPUB golden_mpub_count0\n\x00\x00\x00\x04\x00\x00\x00\x00",
        "E_BAD_BODY MPUB invalid message count 0",
    )
    .await;
    fatal_case(
        &server,
        b"MPUB golden_mpub_inner0\n\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00",
        "E_BAD_MESSAGE MPUB invalid message(0) body size 0",
    )
    .await;
    // Message 0 is valid, message 1 is too big: only its size is sent.
    fatal_case(
        &server,
        b"MPUB golden_mpub_innerbig\n\x00\x10\x00\x18\x00\x00\x00\x02\x00\x00\x00\x01x\x00\x10\x00\x01",
        "E_BAD_MESSAGE MPUB message too big 1048577 > 1048576",
    )
    .await;
    // Go's text carries the code twice.
    fatal_case(
        &server,
        b"MPUB bad!topic\n",
        r#"E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "bad!topic" is not valid"#,
    )
    .await;
    fatal_case(
        &server,
        b"MPUB golden_mpub_body0\n\x00\x00\x00\x00",
        "E_BAD_BODY MPUB invalid body size 0",
    )
    .await;
    let topic = server.topic_stats("golden_mpub_innerbig").await;
    assert_eq!(
        (topic["message_count"].as_u64(), topic["depth"].as_u64()),
        (Some(0), Some(0)),
        "all messages are validated before any is queued"
    );
    server.stop().await;
}

#[tokio::test]
async fn dpub_failures_are_fatal() {
    let server = start().await;
    // Only the line is sent: the defer is checked before the body is read.
    fatal_case(
        &server,
        b"DPUB golden 3600001\n",
        "E_INVALID DPUB timeout 3600001 out of range 0-3600000",
    )
    .await;
    fatal_case(
        &server,
        b"DPUB golden -1\n",
        "E_INVALID DPUB could not parse timeout -1",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn sub_failures_are_fatal() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.sub("golden", "ch").await;
    conn.send(b"SUB golden ch\n").await;
    conn.expect_raw(b"\x00\x00\x00)\x00\x00\x00\x01E_INVALID cannot SUB in current state")
        .await;
    conn.expect_closed().await;

    fatal_case(
        &server,
        b"SUB golden bad!ch\n",
        r#"E_BAD_CHANNEL SUB channel name "bad!ch" is not valid"#,
    )
    .await;
    fatal_case(
        &server,
        b"SUB bad!topic ch\n",
        r#"E_BAD_TOPIC SUB topic name "bad!topic" is not valid"#,
    )
    .await;
    fatal_case(
        &server,
        b"SUB golden\n",
        "E_INVALID SUB insufficient number of parameters",
    )
    .await;

    let mut conn = server.conn().await;
    let answer = conn.identify(r#"{"heartbeat_interval":-1}"#).await;
    assert_eq!(&answer.raw[..], OK_FRAME);
    conn.send(b"SUB golden ch\n").await;
    conn.expect_fatal("E_INVALID cannot SUB with heartbeats disabled")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn rdy_failures_are_fatal() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.sub("golden_rdy", "ch").await;
    conn.send(b"RDY -1\n").await;
    conn.expect_raw(b"\x00\x00\x00*\x00\x00\x00\x01E_INVALID RDY could not parse count -1")
        .await;
    conn.expect_closed().await;

    let mut conn = server.conn().await;
    conn.sub("golden_rdy", "ch").await;
    conn.send(b"RDY 2501\n").await;
    conn.expect_fatal("E_INVALID RDY count 2501 out of range 0-2500")
        .await;

    fatal_case(&server, b"RDY 1\n", "E_INVALID cannot RDY in current state").await;
    server.stop().await;
}

#[tokio::test]
async fn rdy_at_max_count_is_accepted() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.sub("golden_rdy", "ch").await;
    conn.send(b"RDY 2500\n").await;
    conn.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn fin_req_touch_cls_before_sub_are_fatal() {
    let server = start().await;
    fatal_case(
        &server,
        b"FIN 0000000000000000\n",
        "E_INVALID cannot FIN in current state",
    )
    .await;
    fatal_case(
        &server,
        b"REQ 0000000000000000 0\n",
        "E_INVALID cannot REQ in current state",
    )
    .await;
    fatal_case(
        &server,
        b"TOUCH 0000000000000000\n",
        "E_INVALID cannot TOUCH in current state",
    )
    .await;
    fatal_case(&server, b"CLS\n", "E_INVALID cannot CLS in current state").await;
    server.stop().await;
}

#[tokio::test]
async fn fin_with_malformed_id_is_fatal() {
    let server = start().await;
    let mut conn = server.subscriber("msgs", "ch", 1).await;
    conn.send(b"FIN abc\n").await;
    conn.expect_raw(b"\x00\x00\x00 \x00\x00\x00\x01E_INVALID invalid message ID")
        .await;
    conn.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn req_with_negative_timeout_is_fatal() {
    let server = start().await;
    let mut conn = server.subscriber("reqneg", "ch", 1).await;
    server.publish("reqneg", &[b"neg"]).await;
    let msg = conn.message().await;
    conn.send(format!("REQ {} -1\n", msg.id_text()).as_bytes())
        .await;
    conn.expect_raw(b"\x00\x00\x00,\x00\x00\x00\x01E_INVALID REQ could not parse timeout -1")
        .await;
    conn.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn req_above_max_timeout_is_clamped_without_error() {
    let server = start().await;
    let mut conn = server.subscriber("reqclamp", "ch", 1).await;
    server.publish("reqclamp", &[b"again"]).await;
    let msg = conn.message().await;
    conn.send(format!("REQ {} 3600001\n", msg.id_text()).as_bytes())
        .await;
    conn.expect_quiet().await;
    let channel = server.channel_stats("reqclamp", "ch").await;
    assert_eq!(channel["deferred_count"], 1, "{channel}");
    assert_eq!(channel["requeue_count"], 1, "{channel}");
    assert_eq!(channel["in_flight_count"], 0, "{channel}");
    conn.expect_usable("probe").await;
    server.stop().await;
}

#[tokio::test]
async fn fin_req_touch_of_unknown_id_are_not_fatal() {
    let server = start().await;
    let mut conn = server.subscriber("msgs", "ch", 1).await;
    conn.send(b"FIN 0000000000000000\n").await;
    let frame = conn
        .expect_error("E_FIN_FAILED FIN 0000000000000000 failed ID not in flight")
        .await;
    assert_eq!(
        &frame.raw[..],
        b"\x00\x00\x00=\x00\x00\x00\x01E_FIN_FAILED FIN 0000000000000000 failed ID not in flight"
    );
    conn.expect_usable("msgs_other").await;

    conn.send(b"REQ 0000000000000000 0\n").await;
    conn.expect_error("E_REQ_FAILED REQ 0000000000000000 failed ID not in flight")
        .await;
    conn.expect_usable("msgs_other").await;

    conn.send(b"TOUCH 0000000000000000\n").await;
    conn.expect_error("E_TOUCH_FAILED TOUCH 0000000000000000 failed ID not in flight")
        .await;
    conn.expect_usable("msgs_other").await;

    // Still subscribed and delivering.
    server.publish("msgs", &[b"after errors"]).await;
    let msg = conn.message().await;
    assert_eq!(&msg.body[..], b"after errors");
    server.stop().await;
}

#[tokio::test]
async fn unknown_lowercase_and_empty_commands_are_fatal() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(b"FOO bar\n").await;
    conn.expect_raw(b"\x00\x00\x00!\x00\x00\x00\x01E_INVALID invalid command FOO")
        .await;
    conn.expect_closed().await;
    fatal_case(&server, b"nop\n", "E_INVALID invalid command nop").await;
    let mut conn = server.conn().await;
    conn.send(b"\n").await;
    conn.expect_raw(b"\x00\x00\x00\x1e\x00\x00\x00\x01E_INVALID invalid command ")
        .await;
    conn.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn bad_magic_is_fatal_bad_protocol() {
    let server = start().await;
    for magic in [&b"  V1"[..], b"NOP\n"] {
        let mut conn = server.raw_conn().await;
        conn.send(magic).await;
        conn.expect_raw(b"\x00\x00\x00\x12\x00\x00\x00\x01E_BAD_PROTOCOL")
            .await;
        conn.expect_closed().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn command_line_longer_than_the_read_buffer_closes_silently() {
    // Go's bufio.Reader (16 KiB) fails with "buffer full" and nsqd closes without a frame.
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send_lossy(&vec![b'A'; 20 * 1024]).await;
    conn.expect_closed().await;
    server.stop().await;
}

/// golden/tcp-v2.txt, last section: MPUB creates its topic before reading its body, so a
/// failing MPUB leaves the topic behind; PUB, DPUB and SUB create nothing when they fail.
#[tokio::test]
async fn only_failing_mpub_still_creates_its_topic() {
    let server = start().await;
    let failing: [(&[u8], &str); 9] = [
        (b"PUB golden_pub_empty\n\x00\x00\x00\x00", "E_BAD_MESSAGE"),
        (b"PUB golden_pub_big\n\x00\x10\x00\x01", "E_BAD_MESSAGE"),
        (b"DPUB golden_dpub_range 3600001\n", "E_INVALID"),
        (b"DPUB golden_dpub_empty 10\n\x00\x00\x00\x00", "E_BAD_MESSAGE"),
        (b"SUB golden_sub_badch bad!ch\n", "E_BAD_CHANNEL"),
        (b"MPUB golden_mpub_count0\n\x00\x00\x00\x04\x00\x00\x00\x00", "E_BAD_BODY"),
        (
            b"MPUB golden_mpub_inner0\n\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00",
            "E_BAD_MESSAGE",
        ),
        (
            b"MPUB golden_mpub_innerbig\n\x00\x10\x00\x18\x00\x00\x00\x02\x00\x00\x00\x01x\x00\x10\x00\x01",
            "E_BAD_MESSAGE",
        ),
        (b"MPUB golden_mpub_body0\n\x00\x00\x00\x00", "E_BAD_BODY"),
    ];
    for (bytes, code) in failing {
        let mut conn = server.conn().await;
        conn.send(bytes).await;
        let frame = conn.frame().await;
        assert!(
            frame.text().starts_with(code),
            "{:?}: {frame:?}",
            String::from_utf8_lossy(bytes)
        );
        conn.expect_closed().await;
    }
    let mut names = server.topic_names().await;
    names.sort();
    assert_eq!(
        names,
        [
            "golden_mpub_body0",
            "golden_mpub_count0",
            "golden_mpub_inner0",
            "golden_mpub_innerbig"
        ]
    );
    server.stop().await;
}
