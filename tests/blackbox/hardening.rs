//! What a hostile or unlucky client may do to nsqd, answered as Go answers it: a burst of
//! connections, URLs as long as Go takes, and a client speaking TCP to the HTTP port.

use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::support::*;

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
