//! snappy and deflate on real connections: IDENTIFY negotiates, the `OK` arrives
//! compressed, commands and messages flow through the compressed stream both ways,
//! both at once is refused, the flags turn them off, and garbage inside a compressed
//! stream closes only that connection.

use nsq::nsqd::Options;
use serde_json::Value;

use crate::support::{golden_options, start, start_with, Conn, Server, OK_FRAME};

fn identify(json: &str) -> Vec<u8> {
    let mut out = b"IDENTIFY\n".to_vec();
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

/// Sends IDENTIFY with `json` and returns the connection and the JSON answer.
async fn negotiate(server: &Server, json: &str) -> (Conn, Value) {
    let mut conn = server.conn().await;
    conn.send(&identify(json)).await;
    let answer = serde_json::from_slice(&conn.frame().await.data).unwrap();
    (conn, answer)
}

async fn snappy_conn(server: &Server) -> Conn {
    let (conn, answer) = negotiate(server, r#"{"feature_negotiation":true,"snappy":true}"#).await;
    assert_eq!(answer["snappy"], true, "{answer}");
    let mut conn = conn
        .upgrade(|stream| async move { nsq::compress::snappy(stream) })
        .await;
    conn.expect_raw(OK_FRAME).await;
    conn
}

async fn deflate_conn(server: &Server, level: u32) -> (Conn, Value) {
    let json = format!(r#"{{"feature_negotiation":true,"deflate":true,"deflate_level":{level}}}"#);
    let (conn, answer) = negotiate(server, &json).await;
    assert_eq!(answer["deflate"], true, "{answer}");
    let negotiated = answer["deflate_level"].as_u64().unwrap() as u32;
    let mut conn = conn
        .upgrade(|stream| async move { nsq::compress::deflate(stream, negotiated) })
        .await;
    conn.expect_raw(OK_FRAME).await;
    (conn, answer)
}

/// Publishes, subscribes and receives over `conn`.
async fn round_trip(conn: &mut Conn, topic: &str) {
    let body = "compressed ".repeat(100);
    let mut pub_cmd = format!("PUB {topic}\n").into_bytes();
    pub_cmd.extend_from_slice(&(body.len() as u32).to_be_bytes());
    pub_cmd.extend_from_slice(body.as_bytes());
    conn.send(&pub_cmd).await;
    conn.expect_ok().await;
    conn.send(format!("SUB {topic} ch\n").as_bytes()).await;
    conn.expect_ok().await;
    conn.send(b"RDY 1\n").await;
    let message = conn.message().await;
    assert_eq!(message.body, body.as_bytes());
    conn.send(format!("FIN {}\n", message.id_text()).as_bytes())
        .await;
}

#[tokio::test]
async fn snappy_round_trips_on_a_real_connection() {
    let server = start().await;
    let mut conn = snappy_conn(&server).await;
    round_trip(&mut conn, "snappy_topic").await;
    let stats = server
        .wait_for_stats("a snappy client", |s| {
            s["topics"][0]["channels"][0]["clients"][0]["snappy"] == true
        })
        .await;
    assert_eq!(
        stats["topics"][0]["channels"][0]["clients"][0]["deflate"],
        false
    );
    server.stop().await;
}

#[tokio::test]
async fn deflate_round_trips_at_the_negotiated_level() {
    let server = start().await;
    let (mut conn, answer) = deflate_conn(&server, 3).await;
    assert_eq!(answer["deflate_level"], 3);
    round_trip(&mut conn, "deflate_topic").await;
    server
        .wait_for_stats("a deflate client", |s| {
            s["topics"][0]["channels"][0]["clients"][0]["deflate"] == true
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn deflate_level_is_clamped_to_the_maximum() {
    let server = start_with(Options {
        max_deflate_level: 2,
        ..golden_options()
    })
    .await;
    let (mut conn, answer) = deflate_conn(&server, 9).await;
    assert_eq!(answer["deflate_level"], 2);
    assert_eq!(answer["max_deflate_level"], 2);
    round_trip(&mut conn, "clamped").await;
    server.stop().await;
}

#[tokio::test]
async fn asking_for_both_is_identify_failed() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(&identify(
        r#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#,
    ))
    .await;
    conn.expect_fatal("E_IDENTIFY_FAILED cannot enable both deflate and snappy compression")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn turned_off_by_flags_they_are_not_negotiated() {
    let server = start_with(Options {
        snappy: false,
        deflate: false,
        ..golden_options()
    })
    .await;
    let (mut conn, answer) =
        negotiate(&server, r#"{"feature_negotiation":true,"snappy":true}"#).await;
    assert_eq!(answer["snappy"], false);
    conn.expect_usable("plain").await;
    let (mut conn, answer) =
        negotiate(&server, r#"{"feature_negotiation":true,"deflate":true}"#).await;
    assert_eq!(answer["deflate"], false);
    conn.expect_usable("plain").await;
    server.stop().await;
}

#[tokio::test]
async fn garbage_inside_a_compressed_stream_closes_only_that_connection() {
    let server = start().await;
    let mut other = snappy_conn(&server).await;
    // A snappy connection that sends bytes that are not snappy frames.
    let (mut bad, answer) =
        negotiate(&server, r#"{"feature_negotiation":true,"snappy":true}"#).await;
    assert_eq!(answer["snappy"], true);
    bad.drain().await;
    bad.send_lossy(b"\x00\xff\xff\xffthis is not a snappy frame at all")
        .await;
    bad.expect_eof().await;
    // A deflate connection with a corrupt deflate stream.
    let (mut bad, answer) =
        negotiate(&server, r#"{"feature_negotiation":true,"deflate":true}"#).await;
    assert_eq!(answer["deflate"], true);
    bad.drain().await;
    bad.send_lossy(&[0xff; 64]).await;
    bad.expect_eof().await;
    // The daemon and the other client carry on.
    round_trip(&mut other, "after_garbage").await;
    server.stop().await;
}
