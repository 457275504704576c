//! Bad input beyond the golden sessions: each gets Go's error and a close, and leaves
//! every other producer's registrations as they were.

use crate::support::{identify_raw, start, Conn, Server};

/// A producer `a` holding `t`/`c`, the one bad input must not touch.
async fn bystander(server: &Server) -> Conn {
    let mut a = server.producer("a", 4150, 4151).await;
    a.ok("REGISTER t c\n").await;
    a
}

/// After `bad` runs on a fresh connection, the bystander `a` is untouched.
async fn others_untouched(server: &Server, a: &mut Conn, bad: &[u8], error: &str) {
    let mut conn = server.conn().await;
    conn.send(bad).await;
    conn.expect_fatal(error).await;
    assert_eq!(server.lookup_nodes("t").await, ["a:4151"], "{error}");
    assert_eq!(server.channels("t").await, ["c"]);
    a.ok("PING\n").await;
}

#[tokio::test]
async fn bad_identify_bodies_are_fatal_and_harm_no_one() {
    let server = start().await;
    let mut a = bystander(&server).await;
    let mut too_big = b"IDENTIFY\n".to_vec();
    too_big.extend_from_slice(&(6u32 * 1024 * 1024).to_be_bytes());
    others_untouched(
        &server,
        &mut a,
        &too_big,
        "E_BAD_BODY IDENTIFY body too big 6291456 > 5242880",
    )
    .await;
    let mut negative = b"IDENTIFY\n".to_vec();
    negative.extend_from_slice(&(-1i32).to_be_bytes());
    others_untouched(
        &server,
        &mut a,
        &negative,
        "E_BAD_BODY IDENTIFY invalid body size -1",
    )
    .await;
    others_untouched(
        &server,
        &mut a,
        &identify_raw(b"[1,2]"),
        "E_BAD_BODY IDENTIFY failed to decode JSON body",
    )
    .await;
    others_untouched(
        &server,
        &mut a,
        &identify_raw(br#"{"broadcast_address":"x","tcp_port":1,"http_port":2}"#),
        "E_BAD_BODY IDENTIFY missing fields",
    )
    .await;
    others_untouched(
        &server,
        &mut a,
        &identify_raw(br#"{"broadcast_address":"x","tcp_port":"1","http_port":2,"version":"v"}"#),
        "E_BAD_BODY IDENTIFY failed to decode JSON body",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_body_cut_short_closes_quietly() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(b"IDENTIFY\n\x00\x00").await;
    drop(conn);
    let mut conn = server.conn().await;
    let mut partial = b"IDENTIFY\n".to_vec();
    partial.extend_from_slice(&100u32.to_be_bytes());
    partial.extend_from_slice(b"{\"broad");
    conn.send(&partial).await;
    drop(conn);
    assert!(server.nodes().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn unknown_commands_and_bad_names_are_fatal_and_harm_no_one() {
    let server = start().await;
    let mut a = bystander(&server).await;
    others_untouched(&server, &mut a, b"NOP\n", "E_INVALID invalid command NOP").await;
    others_untouched(&server, &mut a, b"\n", "E_INVALID invalid command ").await;
    others_untouched(
        &server,
        &mut a,
        b"UNREGISTER t\n",
        "E_INVALID client must IDENTIFY",
    )
    .await;
    for (command, error) in [
        (
            "UNREGISTER bad!topic\n",
            "E_BAD_TOPIC UNREGISTER topic name 'bad!topic' is not valid",
        ),
        (
            "UNREGISTER t bad!ch\n",
            "E_BAD_CHANNEL UNREGISTER channel name 'bad!ch' is not valid",
        ),
        (
            "UNREGISTER\n",
            "E_INVALID UNREGISTER insufficient number of params",
        ),
        (
            &format!("REGISTER {}\n", "x".repeat(65)),
            &format!(
                "E_BAD_TOPIC REGISTER topic name '{}' is not valid",
                "x".repeat(65)
            ),
        ),
    ] {
        let mut bad = server.producer("bad", 4150, 4159).await;
        bad.ok("REGISTER t c\n").await;
        bad.send(command.as_bytes()).await;
        bad.expect_fatal(error).await;
        // The failing producer's own registrations go with its connection; a's stay.
        let mut nodes = Vec::new();
        for _ in 0..100 {
            nodes = server.lookup_nodes("t").await;
            if nodes.len() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(nodes, ["a:4151"], "{command}");
        a.ok("PING\n").await;
    }
    server.stop().await;
}

#[tokio::test]
async fn an_overlong_line_is_refused() {
    let server = start().await;
    let mut conn = server.conn().await;
    conn.send(&vec![b'A'; 5000]).await;
    conn.expect_fatal("E_INVALID command line too long").await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_http_queries_are_invalid_requests() {
    let server = start().await;
    for (method, path) in [
        ("GET", "/lookup?topic=t;x"),
        ("GET", "/channels?topic=%zz"),
        ("POST", "/topic/create?topic=t;x"),
        ("POST", "/topic/tombstone?topic=t&node=%4"),
    ] {
        let response = server.http(method, path).await;
        response.assert_v1_error(400, "INVALID_REQUEST");
    }
    server.stop().await;
}
