//! Every V1 session of `golden/lookupd.txt` PART 2, byte for byte. The IDENTIFY body is
//! the one the real Go nsqd sent (`<HOST>` = "vm"); the lookupd's answer carries its own
//! ports and this host's name.

use crate::support::{identify, identify_raw, start, Conn, Server, MAGIC};

/// The lookupd's IDENTIFY answer, as a raw frame.
fn identify_answer(server: &Server) -> Vec<u8> {
    let host = nsq::env::os_hostname();
    let json = format!(
        r#"{{"broadcast_address":"{host}","hostname":"{host}","http_port":{},"tcp_port":{},"version":"1.3.0"}}"#,
        server.http.port(),
        server.tcp.port()
    );
    let mut raw = (json.len() as u32).to_be_bytes().to_vec();
    raw.extend_from_slice(json.as_bytes());
    raw
}

async fn identified(server: &Server) -> Conn {
    let mut conn = server.conn().await;
    conn.send(&identify("vm", 4150, 4151)).await;
    conn.expect_raw(&identify_answer(server)).await;
    conn
}

#[tokio::test]
async fn identify_then_register_unregister_and_ping_answer_ok() {
    let server = start().await;
    let mut conn = identified(&server).await;
    for command in [
        "REGISTER t1\n",
        "REGISTER t1 c1\n",
        "PING\n",
        "UNREGISTER t1 c1\n",
        "UNREGISTER t1\n",
        "UNREGISTER t1\n",
        "UNREGISTER never_registered c9\n",
    ] {
        conn.ok(command).await;
    }
    conn.expect_open().await;
    // IDENTIFY again on the same connection.
    conn.send(&identify("vm", 4150, 4151)).await;
    conn.expect_fatal("E_INVALID cannot IDENTIFY again").await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_command_after_identify_is_fatal() {
    let server = start().await;
    let mut conn = identified(&server).await;
    conn.send(b"FOO\n").await;
    conn.expect_fatal("E_INVALID invalid command FOO").await;
    server.stop().await;
}

#[tokio::test]
async fn register_before_identify_is_fatal() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(b"REGISTER t1\n").await;
    conn.expect_fatal("E_INVALID client must IDENTIFY").await;
    server.stop().await;
}

#[tokio::test]
async fn ping_before_identify_answers_ok_and_stays_open() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.ok("PING\n").await;
    conn.expect_open().await;
    server.stop().await;
}

#[tokio::test]
async fn register_with_bad_names_or_no_topic_is_fatal() {
    let server = start().await;
    for (command, error) in [
        (
            "REGISTER bad!topic\n",
            "E_BAD_TOPIC REGISTER topic name 'bad!topic' is not valid",
        ),
        (
            "REGISTER t1 bad!ch\n",
            "E_BAD_CHANNEL REGISTER channel name 'bad!ch' is not valid",
        ),
        (
            "REGISTER\n",
            "E_INVALID REGISTER insufficient number of params",
        ),
    ] {
        let mut conn = identified(&server).await;
        conn.send(command.as_bytes()).await;
        conn.expect_fatal(error).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn identify_with_missing_fields_or_bad_json_is_fatal() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(&identify_raw(br#"{"hostname":"h"}"#)).await;
    conn.expect_fatal("E_BAD_BODY IDENTIFY missing fields")
        .await;
    let mut conn = server.conn().await;
    conn.send(&identify_raw(b"{bad")).await;
    conn.expect_fatal("E_BAD_BODY IDENTIFY failed to decode JSON body")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn command_lines_are_trimmed() {
    let server = start().await;
    let mut conn = identified(&server).await;
    conn.ok("  PING \r\n").await;
    conn.expect_open().await;
    server.stop().await;
}

#[tokio::test]
async fn bad_magic_gets_e_bad_protocol_and_a_close() {
    let server = start().await;
    let mut conn = server.raw_conn().await;
    conn.send(b"  V2").await;
    conn.expect_raw(b"\x00\x00\x00\x0eE_BAD_PROTOCOL").await;
    conn.expect_closed().await;
    assert_eq!(MAGIC, b"  V1");
    server.stop().await;
}
