//! nsqd's lookupd loop against a fake nsqlookupd written here: a TCP listener that
//! records every V1 command line and answers as Go's lookupd does in
//! `golden/lookupd.txt` (IDENTIFY gets its JSON, everything else `OK`), and a tiny HTTP
//! responder for `GET /channels?topic=`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nsq::nsqd::Options;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};

use crate::support::{fast_options, golden_options, start_with, WAIT};

/// What the fake saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Connection `n` opened and sent the magic (checked).
    Connected(usize),
    /// A command line without its newline; IDENTIFY is followed by its body.
    Line(usize, String),
    /// Connection `n` was closed by nsqd.
    Closed(usize),
}

/// A fake nsqlookupd on loopback.
struct FakeLookupd {
    tcp: SocketAddr,
    http: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Bumped to make the fake close every open connection.
    kill: watch::Sender<u64>,
    /// What `/channels` answers, per topic.
    channels: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    /// Every `/channels` request target.
    http_queries: Arc<Mutex<Vec<String>>>,
    /// How long `/channels` takes to answer.
    http_delay: Arc<Mutex<Duration>>,
    /// Raw bytes the next connection answers its IDENTIFY with, instead of the JSON.
    next_identify_raw: Arc<Mutex<Option<Vec<u8>>>>,
}

impl FakeLookupd {
    async fn start() -> FakeLookupd {
        let tcp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = tcp_listener.local_addr().unwrap();
        let http = http_listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let (kill, kill_rx) = watch::channel(0u64);
        let channels = Arc::new(Mutex::new(BTreeMap::new()));
        let http_queries = Arc::new(Mutex::new(Vec::new()));
        let http_delay = Arc::new(Mutex::new(Duration::ZERO));
        let next_identify_raw = Arc::new(Mutex::new(None));
        tokio::spawn(accept_v1(
            tcp_listener,
            tx,
            kill_rx,
            (tcp, http),
            next_identify_raw.clone(),
        ));
        tokio::spawn(serve_http(
            http_listener,
            channels.clone(),
            http_queries.clone(),
            http_delay.clone(),
        ));
        FakeLookupd {
            tcp,
            http,
            seen,
            kill,
            channels,
            http_queries,
            http_delay,
            next_identify_raw,
        }
    }

    fn addr(&self) -> String {
        self.tcp.to_string()
    }

    /// The next thing seen, within [`WAIT`].
    async fn next(&mut self) -> Seen {
        timeout(WAIT, self.seen.recv())
            .await
            .expect("the fake lookupd saw something in time")
            .expect("fake running")
    }

    /// The next line, skipping PINGs; fails on anything else.
    async fn next_line_no_ping(&mut self) -> String {
        loop {
            match self.next().await {
                Seen::Line(_, line) if line == "PING" => continue,
                Seen::Line(_, line) => return line,
                other => panic!("expected a command line, got {other:?}"),
            }
        }
    }

    /// A new connection, then its IDENTIFY; returns the connection number and the body.
    async fn expect_connect_and_identify(&mut self) -> (usize, String) {
        let conn = match self.next().await {
            Seen::Connected(n) => n,
            other => panic!("expected a connection, got {other:?}"),
        };
        match self.next().await {
            Seen::Line(n, line) if n == conn => {
                let body = line
                    .strip_prefix("IDENTIFY ")
                    .unwrap_or_else(|| panic!("expected IDENTIFY, got {line:?}"));
                (conn, body.to_string())
            }
            other => panic!("expected IDENTIFY, got {other:?}"),
        }
    }

    /// Nothing at all is seen for `quiet`.
    async fn expect_nothing_for(&mut self, quiet: Duration) {
        if let Ok(Some(seen)) = timeout(quiet, self.seen.recv()).await {
            panic!("expected nothing, got {seen:?}");
        }
    }

    /// Closes every open connection from the lookupd side.
    fn drop_connections(&self) {
        self.kill.send_modify(|n| *n += 1);
    }
}

async fn accept_v1(
    listener: TcpListener,
    seen: mpsc::UnboundedSender<Seen>,
    kill: watch::Receiver<u64>,
    (tcp, http): (SocketAddr, SocketAddr),
    next_identify_raw: Arc<Mutex<Option<Vec<u8>>>>,
) {
    let mut next_id = 0;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        next_id += 1;
        let identify_answer = next_identify_raw.lock().unwrap().take().unwrap_or_else(|| {
            let json = format!(
                r#"{{"broadcast_address":"127.0.0.1","hostname":"fake","http_port":{},"tcp_port":{},"version":"1.3.0"}}"#,
                http.port(),
                tcp.port()
            );
            let mut frame = (json.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(json.as_bytes());
            frame
        });
        tokio::spawn(serve_v1(
            next_id,
            stream,
            seen.clone(),
            kill.clone(),
            identify_answer,
        ));
    }
}

async fn serve_v1(
    id: usize,
    stream: TcpStream,
    seen: mpsc::UnboundedSender<Seen>,
    mut kill: watch::Receiver<u64>,
    identify_answer: Vec<u8>,
) {
    kill.borrow_and_update();
    let mut reader = BufReader::new(stream);
    let mut magic = [0u8; 4];
    if reader.read_exact(&mut magic).await.is_err() {
        return;
    }
    assert_eq!(&magic, b"  V1", "magic");
    let _ = seen.send(Seen::Connected(id));
    loop {
        let mut line = Vec::new();
        let read = tokio::select! {
            biased;
            _ = kill.changed() => return,
            read = reader.read_until(b'\n', &mut line) => read,
        };
        if !matches!(read, Ok(n) if n > 0) {
            let _ = seen.send(Seen::Closed(id));
            return;
        }
        let line = String::from_utf8(line).unwrap().trim_end().to_string();
        let frame = if line == "IDENTIFY" {
            let size = reader.read_u32().await.unwrap() as usize;
            let mut body = vec![0u8; size];
            reader.read_exact(&mut body).await.unwrap();
            let _ = seen.send(Seen::Line(
                id,
                format!("IDENTIFY {}", String::from_utf8(body).unwrap()),
            ));
            identify_answer.clone()
        } else {
            let _ = seen.send(Seen::Line(id, line));
            b"\x00\x00\x00\x02OK".to_vec()
        };
        if reader.get_mut().write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Answers `GET /channels?topic=T` with the channels set for T, as nsqlookupd does.
async fn serve_http(
    listener: TcpListener,
    channels: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    queries: Arc<Mutex<Vec<String>>>,
    delay: Arc<Mutex<Duration>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let channels = channels.clone();
        let queries = queries.clone();
        let delay = *delay.lock().unwrap();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).await.unwrap();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).await.unwrap();
                if header.trim().is_empty() {
                    break;
                }
            }
            let target = request_line
                .split(' ')
                .nth(1)
                .unwrap_or_default()
                .to_string();
            queries.lock().unwrap().push(target.clone());
            let topic = target
                .strip_prefix("/channels?topic=")
                .unwrap_or_default()
                .replace("%23", "#");
            let list = channels
                .lock()
                .unwrap()
                .get(&topic)
                .cloned()
                .unwrap_or_default();
            tokio::time::sleep(delay).await;
            let body = serde_json::json!({ "channels": list }).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = reader.get_mut().write_all(response.as_bytes()).await;
        });
    }
}

fn options_for(lookupds: &[&FakeLookupd], ping: Duration) -> Options {
    Options {
        nsqlookupd_tcp_addresses: lookupds.iter().map(|l| l.addr()).collect(),
        lookup_ping_interval: ping,
        ..golden_options()
    }
}

async fn post(server: &crate::support::Server, path: &str) {
    let response = server.http("POST", path, None).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text());
}

/// PART 1 of the golden: IDENTIFY with Go's body, then one line per create and delete in
/// the order they happened, and no UNREGISTER at exit.
#[tokio::test]
async fn identify_then_register_and_unregister_in_order_and_nothing_at_exit() {
    let mut lookupd = FakeLookupd::start().await;
    let server = start_with(options_for(&[&lookupd], Duration::from_secs(60))).await;
    let (conn, body) = lookupd.expect_connect_and_identify().await;
    let host = nsq::env::os_hostname();
    assert_eq!(
        body,
        format!(
            r#"{{"broadcast_address":"{host}","hostname":"{host}","http_port":{},"tcp_port":{},"version":"1.3.0"}}"#,
            server.http.port(),
            server.tcp.port()
        )
    );
    post(&server, "/topic/create?topic=golden").await;
    post(&server, "/channel/create?topic=golden&channel=ch").await;
    post(&server, "/channel/delete?topic=golden&channel=ch").await;
    post(&server, "/topic/create?topic=second").await;
    post(&server, "/topic/delete?topic=golden").await;
    let mut lines = Vec::new();
    for _ in 0..5 {
        lines.push(lookupd.next_line_no_ping().await);
    }
    assert_eq!(
        lines,
        [
            "REGISTER golden",
            "REGISTER golden ch",
            "UNREGISTER golden ch",
            "REGISTER second",
            "UNREGISTER golden"
        ]
    );
    server.stop().await;
    assert_eq!(lookupd.next().await, Seen::Closed(conn));
    lookupd.expect_nothing_for(Duration::from_millis(100)).await;
}

/// Deleting a topic unregisters it, then each of its channels (Go's order); an
/// ephemeral channel's last client leaving unregisters the channel, then its ephemeral
/// topic.
#[tokio::test]
async fn deletes_unregister_topics_and_their_channels() {
    let mut lookupd = FakeLookupd::start().await;
    let server = start_with(options_for(&[&lookupd], Duration::from_secs(60))).await;
    lookupd.expect_connect_and_identify().await;
    post(&server, "/topic/create?topic=t").await;
    post(&server, "/channel/create?topic=t&channel=a").await;
    post(&server, "/channel/create?topic=t&channel=b").await;
    post(&server, "/topic/delete?topic=t").await;
    let subscriber = server.subscriber("e#ephemeral", "c#ephemeral", 1).await;
    drop(subscriber);
    let mut lines = Vec::new();
    for _ in 0..9 {
        lines.push(lookupd.next_line_no_ping().await);
    }
    assert_eq!(
        lines,
        [
            "REGISTER t",
            "REGISTER t a",
            "REGISTER t b",
            "UNREGISTER t",
            "UNREGISTER t a",
            "UNREGISTER t b",
            "REGISTER e#ephemeral",
            "REGISTER e#ephemeral c#ephemeral",
            "UNREGISTER e#ephemeral c#ephemeral",
        ]
    );
    assert_eq!(lookupd.next_line_no_ping().await, "UNREGISTER e#ephemeral");
    server.stop().await;
}

/// After lookupd closes the connection, the next command fails, and the one after it
/// reconnects: IDENTIFY, then every topic without channels and every channel, ephemeral
/// ones too, then the command itself.
#[tokio::test]
async fn a_reconnect_re_syncs_every_topic_and_channel() {
    let mut lookupd = FakeLookupd::start().await;
    let server = start_with(options_for(&[&lookupd], Duration::from_millis(100))).await;
    lookupd.expect_connect_and_identify().await;
    post(&server, "/topic/create?topic=lonely").await;
    post(&server, "/topic/create?topic=busy").await;
    post(&server, "/channel/create?topic=busy&channel=b").await;
    post(&server, "/channel/create?topic=busy&channel=a").await;
    let _subscriber = server.subscriber("busy", "z#ephemeral", 1).await;
    for _ in 0..5 {
        lookupd.next_line_no_ping().await;
    }
    lookupd.drop_connections();
    let conn = loop {
        match lookupd.next().await {
            Seen::Connected(n) => break n,
            Seen::Line(_, line) if line == "PING" => {}
            other => panic!("expected PINGs, then a new connection; got {other:?}"),
        }
    };
    match lookupd.next().await {
        Seen::Line(n, line) if n == conn && line.starts_with("IDENTIFY ") => {}
        other => panic!("expected IDENTIFY on connection {conn}, got {other:?}"),
    }
    let mut lines = Vec::new();
    for _ in 0..5 {
        match lookupd.next().await {
            Seen::Line(n, line) if n == conn => lines.push(line),
            other => panic!("expected a line on connection {conn}, got {other:?}"),
        }
    }
    assert_eq!(
        lines,
        [
            "REGISTER busy a",
            "REGISTER busy b",
            "REGISTER busy z#ephemeral",
            "REGISTER lonely",
            "PING"
        ]
    );
    server.stop().await;
}

/// PING goes out every `lookup_ping_interval` (15 s in Go; short here).
#[tokio::test]
async fn pings_follow_the_interval() {
    let mut lookupd = FakeLookupd::start().await;
    let interval = Duration::from_millis(100);
    let server = start_with(options_for(&[&lookupd], interval)).await;
    lookupd.expect_connect_and_identify().await;
    let start = Instant::now();
    let mut times = Vec::new();
    for _ in 0..4 {
        assert_eq!(lookupd.next_line_no_ping_or_ping().await, "PING");
        times.push(start.elapsed());
    }
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            // Loose above: a loaded machine may be late, never early.
            gap >= Duration::from_millis(60) && gap <= Duration::from_secs(1),
            "PING gaps {times:?}"
        );
    }
    assert!(
        times[0] <= Duration::from_millis(400),
        "first PING {times:?}"
    );
    server.stop().await;
}

impl FakeLookupd {
    /// The next command line, PING included.
    async fn next_line_no_ping_or_ping(&mut self) -> String {
        match self.next().await {
            Seen::Line(_, line) => line,
            other => panic!("expected a command line, got {other:?}"),
        }
    }
}

/// `PUT /config/nsqlookupd_tcp_addresses` adds peers (connected and synced at once),
/// keeps the ones still listed on their connection, and closes the ones dropped.
#[tokio::test]
async fn peers_are_added_and_removed_live() {
    let mut first = FakeLookupd::start().await;
    let mut second = FakeLookupd::start().await;
    let server = start_with(fast_options()).await;
    post(&server, "/topic/create?topic=t").await;
    let put = |addresses: Vec<String>| {
        let body = serde_json::to_string(&addresses).unwrap();
        let server = &server;
        async move {
            let response = server
                .http(
                    "PUT",
                    "/config/nsqlookupd_tcp_addresses",
                    Some(body.as_bytes()),
                )
                .await;
            assert_eq!(response.status, 200, "{}", response.text());
        }
    };
    put(vec![first.addr()]).await;
    let (first_conn, _) = first.expect_connect_and_identify().await;
    assert_eq!(first.next_line_no_ping().await, "REGISTER t");
    put(vec![first.addr(), second.addr()]).await;
    second.expect_connect_and_identify().await;
    assert_eq!(second.next_line_no_ping().await, "REGISTER t");
    first.expect_nothing_for(Duration::from_millis(100)).await;
    put(vec![second.addr()]).await;
    assert_eq!(first.next().await, Seen::Closed(first_conn));
    post(&server, "/topic/create?topic=u").await;
    assert_eq!(second.next_line_no_ping().await, "REGISTER u");
    first.expect_nothing_for(Duration::from_millis(100)).await;
    server.stop().await;
}

/// A new topic first gets the non-ephemeral channels lookupd knows of it, so the first
/// message published reaches them (nsq-reference §4.1).
#[tokio::test]
async fn a_new_topic_pre_creates_the_channels_lookupd_knows() {
    let mut lookupd = FakeLookupd::start().await;
    lookupd.channels.lock().unwrap().insert(
        "pre".into(),
        vec!["b".into(), "a".into(), "gone#ephemeral".into()],
    );
    let server = start_with(options_for(&[&lookupd], Duration::from_millis(50))).await;
    lookupd.expect_connect_and_identify().await;
    // Once a PING went out, the IDENTIFY answer (with the HTTP port) is known.
    assert_eq!(lookupd.next_line_no_ping_or_ping().await, "PING");
    server.publish("pre", &[b"first"]).await;
    assert_eq!(
        *lookupd.http_queries.lock().unwrap(),
        ["/channels?topic=pre"]
    );
    for channel in ["a", "b"] {
        let stats = server.channel_stats("pre", channel).await;
        assert_eq!(stats["depth"], 1, "{channel}: {stats}");
    }
    assert!(server
        .channel_stats("pre", "gone#ephemeral")
        .await
        .is_null());
    let mut lines = Vec::new();
    for _ in 0..3 {
        lines.push(lookupd.next_line_no_ping().await);
    }
    assert_eq!(lines, ["REGISTER pre", "REGISTER pre a", "REGISTER pre b"]);
    // An existing topic is not asked about again.
    server.publish("pre", &[b"second"]).await;
    assert_eq!(lookupd.http_queries.lock().unwrap().len(), 1);
    let _ = lookupd.http;
    server.stop().await;
}

/// While a new topic waits for lookupd's answer, what others publish to it is held in
/// the topic, so it reaches the pre-created channels as well as any made meanwhile.
#[tokio::test]
async fn messages_published_during_pre_creation_reach_the_pre_created_channels() {
    let mut lookupd = FakeLookupd::start().await;
    lookupd
        .channels
        .lock()
        .unwrap()
        .insert("slow".into(), vec!["a".into()]);
    *lookupd.http_delay.lock().unwrap() = Duration::from_millis(300);
    let server = start_with(options_for(&[&lookupd], Duration::from_millis(50))).await;
    lookupd.expect_connect_and_identify().await;
    assert_eq!(lookupd.next_line_no_ping_or_ping().await, "PING");
    let mut creator = server.conn().await;
    let first = tokio::spawn(async move {
        creator.publish("slow", b"first").await;
        creator
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut subscriber = server.conn().await;
    subscriber.sub("slow", "x").await;
    server.publish("slow", &[b"second"]).await;
    let _creator = first.await.unwrap();
    for channel in ["a", "x"] {
        server
            .wait_for_stats(&format!("both messages in {channel}"), |stats| {
                let topic = crate::support::find_named(&stats["topics"], "topic_name", "slow");
                crate::support::find_named(&topic["channels"], "channel_name", channel)["depth"]
                    == 2
            })
            .await;
    }
    server.stop().await;
}

/// An IDENTIFY answer that is not JSON, or larger than `--max-body-size`, makes nsqd close
/// the connection; the next PING reconnects, identifies again and re-syncs.
#[tokio::test]
async fn a_bad_identify_answer_closes_and_the_next_command_reconnects() {
    let cases: [&[u8]; 2] = [
        b"\x00\x00\x00\x1fE_INVALID cannot IDENTIFY again",
        b"\x7f\x00\x00\x00",
    ];
    for raw in cases {
        let mut lookupd = FakeLookupd::start().await;
        *lookupd.next_identify_raw.lock().unwrap() = Some(raw.to_vec());
        let server = start_with(options_for(&[&lookupd], Duration::from_millis(100))).await;
        let (first, _) = lookupd.expect_connect_and_identify().await;
        assert_eq!(lookupd.next().await, Seen::Closed(first), "{raw:?}");
        let (second, _) = lookupd.expect_connect_and_identify().await;
        assert_eq!(
            lookupd.next().await,
            Seen::Line(second, "PING".into()),
            "{raw:?}"
        );
        server.stop().await;
    }
}

/// `--broadcast-address` and the broadcast ports replace the defaults in IDENTIFY; the
/// hostname stays the OS's.
#[tokio::test]
async fn identify_uses_the_broadcast_options() {
    let mut lookupd = FakeLookupd::start().await;
    let server = start_with(Options {
        broadcast_address: "bcast.example".into(),
        broadcast_tcp_port: 1234,
        broadcast_http_port: 5678,
        ..options_for(&[&lookupd], Duration::from_secs(60))
    })
    .await;
    let (_, body) = lookupd.expect_connect_and_identify().await;
    let host = nsq::env::os_hostname();
    assert_eq!(
        body,
        format!(
            r#"{{"broadcast_address":"bcast.example","hostname":"{host}","http_port":5678,"tcp_port":1234,"version":"1.3.0"}}"#
        )
    );
    server.stop().await;
}
