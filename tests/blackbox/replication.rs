//! Replication's peer connections as a stranger sees them (issue 16): the `"  R1"`
//! magic, bad peers (garbage, lying lengths, a node id clash, silence) cut off without
//! harm to client traffic, and publishes that fail when replicas do not answer.

use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use nsq::nsqd::replication::frame::{Frame, Hello, Replicated, MAGIC, VERSION};
use nsq::nsqd::replication::link::{write_frame, FrameReader, LinkError};
use nsq::nsqd::Options;
use nsq::protocol::{Message, MessageId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::{golden_options, start, start_with, Server};

/// The largest frame these tests read back.
const MAX_FRAME: usize = 1 << 20;

/// Options of a replicated nsqd (factor 2) whose one peer is `peer`.
fn replicated(peer: &str) -> Options {
    Options {
        id: 7,
        replication_factor: 2,
        replica_peers: vec![peer.to_string()],
        replica_timeout: Duration::from_millis(500),
        replica_failover_timeout: Duration::from_secs(1),
        ..golden_options()
    }
}

/// A port nothing listens on (bound, then released).
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

fn hello(node_id: u16) -> Hello {
    Hello {
        version: VERSION,
        node_id,
        data_id: 42,
        address: "127.0.0.1:1".into(),
        replication_factor: 2,
        tls: false,
    }
}

/// A connection that sent `"  R1"`, read as replication frames.
async fn peer_conn(
    server: &Server,
) -> (
    FrameReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let stream = TcpStream::connect(server.tcp).await.expect("connect");
    let (read, mut write) = stream.into_split();
    write.write_all(MAGIC).await.expect("magic");
    (FrameReader::new(read, MAX_FRAME), write)
}

/// A peer connection on which owner `node_id` said HELLO and got `HELLO_OK` from this
/// nsqd (node 7).
async fn connected_owner(
    server: &Server,
    node_id: u16,
) -> (
    FrameReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let (mut reader, mut write) = peer_conn(server).await;
    write_frame(&mut write, &Frame::Hello(hello(node_id)))
        .await
        .expect("hello");
    match reader.next_within(Duration::from_secs(5)).await {
        Ok(Frame::HelloOk(theirs)) => assert_eq!(theirs.node_id, 7),
        other => panic!("expected HELLO_OK, got {other:?}"),
    }
    (reader, write)
}

/// The connection is closed by nsqd (after whatever frames it sent) within 5 s.
async fn expect_closed<R: tokio::io::AsyncRead + Unpin>(reader: &mut FrameReader<R>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match reader.next_within(left).await {
            Err(LinkError::Closed) | Err(LinkError::Io(_)) => return,
            Err(LinkError::Silent(_)) => panic!("nsqd did not close the connection"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => continue,
        }
    }
}

/// Client traffic still works: an ephemeral topic is never replicated, so its PUB is
/// answered at once whatever the replicas do.
async fn expect_clients_served(server: &Server) {
    let mut conn = server.conn().await;
    conn.send(b"PUB fine#ephemeral\n\x00\x00\x00\x02hi").await;
    conn.expect_ok().await;
}

#[tokio::test]
async fn the_replication_magic_is_a_bad_protocol_when_replication_is_off() {
    let server = start().await;
    let mut conn = server.raw_conn().await;
    conn.send(MAGIC).await;
    conn.expect_raw(b"\x00\x00\x00\x12\x00\x00\x00\x01E_BAD_PROTOCOL")
        .await;
    conn.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn garbage_and_lying_lengths_close_the_peer_connection_only() {
    let server = start_with(replicated(&dead_address())).await;
    let (mut reader, mut write) = peer_conn(&server).await;
    write
        .write_all(b"\x00\x00\x00\x10garbage-garbage!")
        .await
        .expect("write");
    expect_closed(&mut reader).await;
    let (mut reader, mut write) = peer_conn(&server).await;
    // A frame of 4 GiB: refused before anything is allocated.
    write
        .write_all(&[0xff, 0xff, 0xff, 0xff, 1])
        .await
        .expect("write");
    expect_closed(&mut reader).await;
    expect_clients_served(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_peer_with_this_nodes_id_is_refused() {
    let server = start_with(replicated(&dead_address())).await;
    let (mut reader, mut write) = peer_conn(&server).await;
    write_frame(&mut write, &Frame::Hello(hello(7)))
        .await
        .expect("hello");
    match reader.next_within(Duration::from_secs(5)).await {
        Ok(Frame::Error(reason)) => assert!(reason.contains("node id 7"), "{reason}"),
        other => panic!("expected ERROR, got {other:?}"),
    }
    expect_closed(&mut reader).await;
    server.stop().await;
}

/// A MESSAGES frame of topic `orders`: messages 1 to 3 (sequence numbers too) with
/// `body`, for channel `ch`.
fn three_messages(body: Bytes) -> Frame {
    let records = (1..=3)
        .map(|seq| Replicated {
            seq,
            message: Message::new(MessageId::from_u64(seq), 1, body.clone()),
            due_ns: 0,
            channels: vec!["ch".into()],
        })
        .collect();
    Frame::Messages {
        topic: "orders".into(),
        records,
    }
}

/// Copies acknowledged while still gathered in memory are written when nsqd exits
/// gracefully (here long before any sync tick).
#[tokio::test]
async fn gathered_copies_are_written_at_exit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_with(Options {
        data_path: dir.path().display().to_string(),
        sync_timeout: Duration::from_secs(3600),
        ..replicated(&dead_address())
    })
    .await;
    let (mut reader, mut write) = connected_owner(&server, 3).await;
    let frame = three_messages(Bytes::from(vec![b'x'; 1000]));
    write_frame(&mut write, &frame).await.expect("messages");
    assert!(matches!(
        reader.next_within(Duration::from_secs(5)).await,
        Ok(Frame::Ack { seq: 3, .. })
    ));
    let path = dir.path().join("orders.standby.3.dat");
    #[allow(clippy::disallowed_methods)]
    let before = tokio::fs::metadata(&path).await;
    assert!(before.is_err(), "gathered, not written yet: {before:?}");
    server.stop().await;
    #[allow(clippy::disallowed_methods)]
    let after = tokio::fs::metadata(&path).await.expect("written at exit");
    assert!(after.len() > 3000, "{} bytes", after.len());
}

#[tokio::test]
async fn an_owners_messages_are_acknowledged_and_kept_on_disk() {
    let server = start_with(replicated(&dead_address())).await;
    let (mut reader, mut write) = connected_owner(&server, 3).await;
    let frame = three_messages(Bytes::from("body"));
    write_frame(&mut write, &frame).await.expect("messages");
    match reader.next_within(Duration::from_secs(5)).await {
        Ok(Frame::Ack { topic, seq }) => assert_eq!((topic.as_str(), seq), ("orders", 3)),
        other => panic!("expected ACK, got {other:?}"),
    }
    let last_frame = Instant::now();
    // With memory queues on, copies gather in memory as publishes do, and reach the
    // file at the --sync-timeout tick (2 s) at the latest.
    let data = server.data_dir.as_ref().expect("temp dir").path();
    wait_for_file(&data.join("orders.standby.3.dat")).await;
    // A silent owner is cut off once it has said nothing for the failover timeout
    // (at least three PING intervals).
    expect_closed(&mut reader).await;
    assert!(last_frame.elapsed() >= Duration::from_secs(2));
    server.stop().await;
}

#[tokio::test]
async fn nsqd_exits_while_an_owner_is_connected() {
    // An owner that keeps its connection open (it PINGs) must not hold the exit up.
    let server = start_with(replicated(&dead_address())).await;
    let (mut reader, mut write) = connected_owner(&server, 3).await;
    let pinging = tokio::spawn(async move {
        loop {
            let ping = Frame::Ping { data_id: 42 };
            if write_frame(&mut write, &ping).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    server.stop().await;
    expect_closed(&mut reader).await;
    pinging.abort();
}

#[tokio::test]
async fn a_publish_fails_when_its_replica_never_acknowledges() {
    // A peer that answers HELLO and then reads everything without a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let peer = listener.local_addr().expect("addr").to_string();
    let mute_peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut magic = [0u8; 4];
        stream.read_exact(&mut magic).await.expect("magic");
        assert_eq!(&magic, MAGIC);
        let (read, mut write) = stream.into_split();
        let mut reader = FrameReader::new(read, MAX_FRAME);
        while let Ok(frame) = reader.next().await {
            if let Frame::Hello(_) = frame {
                let ok = Frame::HelloOk(hello(9));
                write_frame(&mut write, &ok).await.expect("hello ok");
            }
        }
    });
    let server = start_with(replicated(&peer)).await;
    let mut conn = server.conn().await;
    let started = Instant::now();
    conn.send(b"PUB orders\n\x00\x00\x00\x02hi").await;
    let frame = conn.frame_within(Duration::from_secs(5)).await;
    assert!(
        frame
            .text()
            .starts_with("E_PUB_FAILED PUB failed only 0 of 1 replicas"),
        "{frame:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    // Over HTTP the same failure is a 500 PUB_FAILED, for /pub and /mpub alike.
    for path in ["/pub?topic=orders", "/mpub?topic=orders"] {
        let response = server.http("POST", path, Some(b"hi")).await;
        assert_eq!(response.status, 500, "{path}");
        assert_eq!(response.body, br#"{"message":"PUB_FAILED"}"#, "{path}");
    }
    expect_clients_served(&server).await;
    server.stop().await;
    mute_peer.abort();
}

/// A replica that answers HELLO and acknowledges everything; it hands every MESSAGES
/// record it gets to `records`.
async fn acking_replica(
    listener: TcpListener,
    records: tokio::sync::mpsc::UnboundedSender<Replicated>,
) {
    let Ok((mut stream, _)) = listener.accept().await else {
        return;
    };
    let mut magic = [0u8; 4];
    if stream.read_exact(&mut magic).await.is_err() {
        return;
    }
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, MAX_FRAME);
    while let Ok(frame) = reader.next().await {
        let answer = match frame {
            Frame::Hello(_) => Frame::HelloOk(hello(9)),
            Frame::Messages {
                topic,
                records: got,
            } => {
                let seq = got.last().map_or(0, |r| r.seq);
                for record in got {
                    let _ = records.send(record);
                }
                Frame::Ack { topic, seq }
            }
            Frame::Channel { topic, seq, .. } => Frame::Ack { topic, seq },
            Frame::Ping { .. } => Frame::Pong { data_id: 1 },
            _ => continue,
        };
        if write_frame(&mut write, &answer).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_message_a_peer_finished_after_a_failover_is_not_delivered_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let replica = listener.local_addr().expect("addr").to_string();
    let (records_tx, mut records) = tokio::sync::mpsc::unbounded_channel();
    let replica_task = tokio::spawn(acking_replica(listener, records_tx));
    let server = start_with(replicated(&replica)).await;
    let mut publisher = server.conn().await;
    let mut consumer_setup = server.conn().await;
    consumer_setup.sub("orders", "work").await;
    drop(consumer_setup);
    for body in [&b"first"[..], b"second"] {
        let mut command = b"PUB orders\n".to_vec();
        command.extend_from_slice(&(body.len() as u32).to_be_bytes());
        command.extend_from_slice(body);
        publisher.send(&command).await;
        publisher.expect_ok().await;
    }
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let record = tokio::time::timeout(Duration::from_secs(5), records.recv())
            .await
            .expect("the replica got the messages")
            .expect("replica running");
        ids.push((record.message.id, record.message.body));
    }
    // Another node of the set took "first" over and finished it on "work": its FIN
    // reaches this nsqd, which minted the message, on that node's own connection.
    let (mut reader, mut write) = connected_owner(&server, 4).await;
    let first = ids
        .iter()
        .find(|(_, body)| body.as_ref() == b"first")
        .expect("first");
    let fins = Frame::Fins {
        topic: "orders".into(),
        channel: "work".into(),
        finished: vec![first.0],
        deferred: Vec::new(),
    };
    write_frame(&mut write, &fins).await.expect("fins");
    write_frame(&mut write, &Frame::Ping { data_id: 42 })
        .await
        .expect("ping");
    assert!(matches!(
        reader.next_within(Duration::from_secs(5)).await,
        Ok(Frame::Pong { .. })
    ));
    let mut consumer = server.subscriber("orders", "work", 10).await;
    let message = consumer.message().await;
    assert_eq!(message.body.as_ref(), b"second");
    consumer.expect_quiet_for(Duration::from_millis(300)).await;
    server.stop().await;
    replica_task.abort();
}

/// A replica (node 7) that requires TLS on TCP, with `policy` for client certificates.
async fn tls_replica(pki: &super::tls::Pki, policy: &str) -> Server {
    start_with(Options {
        tls_required: 1,
        tls_client_auth_policy: policy.into(),
        tls_root_ca_file: pki.path("ca.pem"),
        ..Options {
            id: 7,
            replication_factor: 2,
            replica_peers: vec![dead_address()],
            replica_timeout: Duration::from_millis(500),
            ..pki.options()
        }
    })
    .await
}

/// An owner (node 3) whose one replica is `replica`, named `localhost` as its
/// certificate says, with the TLS files `tls` sets.
async fn owner_of(replica: &Server, tls: impl FnOnce(&mut Options)) -> Server {
    let mut opts = Options {
        id: 3,
        replica_peers: vec![format!("localhost:{}", replica.tcp.port())],
        ..replicated("")
    };
    tls(&mut opts);
    start_with(opts).await
}

async fn publish_answer(server: &Server) -> String {
    let mut conn = server.conn().await;
    conn.send(b"PUB orders\n\x00\x00\x00\x02hi").await;
    conn.frame_within(Duration::from_secs(5)).await.text()
}

#[tokio::test]
async fn a_replica_that_requires_tls_is_reached_over_tls_and_only_so() {
    let pki = super::tls::Pki::new();
    let replica = tls_replica(&pki, "").await;
    let without_ca = owner_of(&replica, |_| {}).await;
    let answer = publish_answer(&without_ca).await;
    assert!(answer.starts_with("E_PUB_FAILED"), "{answer}");
    without_ca.stop().await;
    let owner = owner_of(&replica, |o| o.tls_root_ca_file = pki.path("ca.pem")).await;
    assert_eq!(publish_answer(&owner).await, "OK");
    let data = replica.data_dir.as_ref().expect("temp dir").path();
    wait_for_file(&data.join("orders.standby.3.dat")).await;
    owner.stop().await;
    replica.stop().await;
}

#[tokio::test]
async fn a_replica_that_verifies_client_certificates_needs_one_from_the_owner() {
    let pki = super::tls::Pki::new();
    let replica = tls_replica(&pki, "require-verify").await;
    let no_cert = owner_of(&replica, |o| o.tls_root_ca_file = pki.path("ca.pem")).await;
    let answer = publish_answer(&no_cert).await;
    assert!(answer.starts_with("E_PUB_FAILED"), "{answer}");
    no_cert.stop().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("client.pem");
    let key = dir.path().join("client.key");
    #[allow(clippy::disallowed_methods)]
    {
        std::fs::write(&cert, &pki.client_pem).expect("write cert");
        std::fs::write(&key, &pki.client_key_pem).expect("write key");
    }
    let owner = owner_of(&replica, |o| {
        o.tls_root_ca_file = pki.path("ca.pem");
        o.tls_cert = cert.to_string_lossy().into_owned();
        o.tls_key = key.to_string_lossy().into_owned();
    })
    .await;
    assert_eq!(publish_answer(&owner).await, "OK");
    owner.stop().await;
    replica.stop().await;
}

#[tokio::test]
async fn a_replica_with_an_auth_server_takes_only_what_the_owners_secret_may_publish() {
    // The fake grants publish on topics starting with "pub" (identity alice).
    let fake = super::auth::FakeAuth::start(super::auth::alice(3600)).await;
    let replica = start_with(Options {
        id: 7,
        replication_factor: 2,
        replica_peers: vec![dead_address()],
        replica_timeout: Duration::from_millis(500),
        ..super::auth::auth_options(vec![fake.address()])
    })
    .await;
    let peer = replica.tcp.to_string();
    let no_secret = start_with(Options {
        id: 3,
        ..replicated(&peer)
    })
    .await;
    let answer = publish_to(&no_secret, "pubs").await;
    assert!(answer.starts_with("E_PUB_FAILED"), "{answer}");
    no_secret.stop().await;
    let owner = start_with(Options {
        id: 3,
        replica_auth_secret: "alice-secret".into(),
        ..replicated(&peer)
    })
    .await;
    assert_eq!(publish_to(&owner, "pubs").await, "OK");
    let answer = publish_to(&owner, "orders").await;
    assert!(answer.starts_with("E_PUB_FAILED"), "not granted: {answer}");
    // The refused message is not written again to hold up what comes after it.
    let mut answer = String::new();
    for _ in 0..20 {
        answer = publish_to(&owner, "pubs").await;
        if answer == "OK" {
            break;
        }
    }
    assert_eq!(answer, "OK");
    owner.stop().await;
    replica.stop().await;
}

async fn publish_to(server: &Server, topic: &str) -> String {
    let mut conn = server.conn().await;
    let mut command = format!("PUB {topic}\n").into_bytes();
    command.extend_from_slice(b"\x00\x00\x00\x02hi");
    conn.send(&command).await;
    conn.frame_within(Duration::from_secs(5)).await.text()
}

/// Waits until `path` exists (a standby store written at the sync tick), for at most
/// ten seconds.
async fn wait_for_file(path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        #[allow(clippy::disallowed_methods)]
        let found = tokio::fs::metadata(path).await;
        if found.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
