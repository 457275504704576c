//! What a hostile or unlucky client may do to nsqd, answered as Go answers it: a burst of
//! connections, URLs as long as Go takes, and a client speaking TCP to the HTTP port.

use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::support::*;
use nsq::nsqd::Options;

/// Connections opened at once by the burst tests.
const BURST: usize = 2_000;
/// A connect the listen queue dropped is retried by the client's kernel after a second,
/// so any connect that takes this long was dropped once.
const SYN_RETRY: Duration = Duration::from_secs(1);

/// Opens [`BURST`] connections to `addr` at once; returns them with the slowest connect.
async fn burst(addr: std::net::SocketAddr) -> (Vec<TcpStream>, Duration) {
    nsq::daemon::raise_open_file_limit();
    let connects = (0..BURST).map(|_| async move {
        let started = Instant::now();
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        (stream, started.elapsed())
    });
    let results = join_all(connects).await;
    let slowest = results
        .iter()
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default();
    (
        results.into_iter().map(|(stream, _)| stream).collect(),
        slowest,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_tcp_connections_is_accepted_at_once_and_served() {
    let server = start().await;
    let (streams, slowest) = burst(server.tcp).await;
    assert!(
        slowest < SYN_RETRY,
        "a connect waited {slowest:?}: the listen queue overflowed"
    );
    let publishes = streams.into_iter().map(|mut stream| async move {
        stream
            .write_all(b"  V2PUB burst\n\x00\x00\x00\x01x")
            .await
            .expect("send");
        let mut answer = [0u8; OK_FRAME.len()];
        timeout(WAIT, stream.read_exact(&mut answer))
            .await
            .expect("answer in time")
            .expect("read");
        assert_eq!(answer, OK_FRAME);
    });
    join_all(publishes).await;
    let topic = server.topic_stats("burst").await;
    assert_eq!(topic["message_count"], BURST);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_http_connections_is_accepted_at_once_and_served() {
    let server = start().await;
    let (streams, slowest) = burst(server.http).await;
    assert!(
        slowest < SYN_RETRY,
        "a connect waited {slowest:?}: the listen queue overflowed"
    );
    let pings = streams.into_iter().map(|mut stream| async move {
        stream
            .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut answer = Vec::new();
        timeout(WAIT, stream.read_to_end(&mut answer))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
        assert!(answer.ends_with(b"\r\n\r\nOK"), "{answer:?}");
    });
    join_all(pings).await;
    server.stop().await;
}

#[tokio::test]
async fn urls_as_long_as_go_takes_are_answered() {
    let server = start().await;
    let pad = "x".repeat(100_000);
    let published = server
        .http(
            "POST",
            &format!("/pub?topic=long&pad={pad}"),
            Some(b"hello"),
        )
        .await;
    assert_eq!(published.status, 200, "{published:?}");
    assert_eq!(published.text(), "OK");
    assert_eq!(server.topic_stats("long").await["message_count"], 1);

    let stats = server
        .http("GET", &format!("/stats?format=json&topic={pad}"), None)
        .await;
    assert_eq!(stats.status, 200, "{stats:?}");
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).expect("JSON");
    // Go answers a filter that matches nothing with `"topics":null`.
    assert_eq!(stats["topics"], serde_json::Value::Null);

    let many: String = (0..20_000).map(|i| format!("&p{i}=v")).collect();
    let published = server
        .http("POST", &format!("/pub?topic=long{many}"), Some(b"again"))
        .await;
    assert_eq!(published.status, 200, "{published:?}");
    assert_eq!(server.topic_stats("long").await["message_count"], 2);
    server.stop().await;
}

#[tokio::test]
async fn a_url_over_gos_header_limit_gets_gos_431() {
    let server = start().await;
    let pad = "x".repeat(2 << 20);
    let refused = server
        .http(
            "POST",
            &format!("/pub?topic=huge&pad={pad}"),
            Some(b"hello"),
        )
        .await;
    assert_eq!(refused.status, 431, "{refused:?}");
    assert_eq!(refused.reason, "Request Header Fields Too Large");
    refused.assert_header("Content-Type", "text/plain; charset=utf-8");
    refused.assert_header("Connection", "close");
    assert_eq!(refused.text(), "431 Request Header Fields Too Large");
    assert!(server.http("GET", "/ping", None).await.status == 200);
    server.stop().await;
}

#[tokio::test]
async fn a_v2_client_on_the_http_port_reads_gos_400() {
    let server = start().await;
    // What go-nsq's producer sends when pointed at the HTTP port.
    let mut request = b"  V2IDENTIFY\n".to_vec();
    request.extend_from_slice(&identify_bytes(r#"{"client_id":"x"}"#)[b"IDENTIFY\n".len()..]);
    let refused = http_exchange(server.http, &request).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.reason, "Bad Request");
    assert_eq!(
        refused.headers,
        [
            (
                "Content-Type".to_string(),
                "text/plain; charset=utf-8".to_string()
            ),
            ("Connection".to_string(), "close".to_string()),
        ]
    );
    assert_eq!(refused.text(), "400 Bad Request");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_that_never_read_hold_up_nobody_and_lose_nothing() {
    // Long enough that a loaded machine's FINs arrive in time; short enough that what
    // the hogs hold comes back quickly.
    let server = start_with(Options {
        msg_timeout: Duration::from_secs(2),
        ..fast_options()
    })
    .await;
    nsq::daemon::raise_open_file_limit();
    let mut hogs = Vec::new();
    for _ in 0..1_000 {
        let mut stream = TcpStream::connect(server.tcp).await.expect("connect");
        stream
            .write_all(b"  V2SUB hogged ch\nRDY 2500\n")
            .await
            .expect("send");
        hogs.push(stream);
    }
    let body = vec![b'x'; 1024];
    let batch: Vec<&[u8]> = (0..100).map(|_| body.as_slice()).collect();
    for _ in 0..200 {
        server.publish("hogged", &batch).await;
    }

    // A good client publishes and consumes on another topic meanwhile.
    let mut good = server.subscriber("fine", "ch", 100).await;
    let started = Instant::now();
    server.publish("fine", &[&b"a"[..]; 100]).await;
    let got = good.drain_messages(Duration::from_millis(300), true).await;
    assert_eq!(got.len(), 100);
    assert!(
        started.elapsed() < WAIT,
        "the good client waited {:?}",
        started.elapsed()
    );

    // Once the hogs are gone, what they held times out and reaches a reader.
    drop(hogs);
    let mut reader = server.subscriber("hogged", "ch", 2_500).await;
    let mut ids = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ids.len() < 20_000 && Instant::now() < deadline {
        for msg in reader
            .drain_messages(Duration::from_millis(500), true)
            .await
        {
            ids.insert(msg.id_text());
        }
    }
    assert_eq!(ids.len(), 20_000, "every message reaches the reader");
    server.stop().await;
}
