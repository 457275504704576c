//! A lookupd on 127.0.0.1 port 0 whose wall clock the test moves by hand (so tombstone
//! lifetimes and inactivity timeouts pass instantly and deterministically), a raw V1
//! connection that reads `[size][data]` frames with a timeout, and HTTP helpers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nsq::env::{Clock, Env};
use nsq::lookupd::Lookupd;
pub use nsq::lookupd::Options;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

#[allow(dead_code)]
#[path = "../blackbox/support.rs"]
mod nsqd_support;

pub use nsqd_support::{http_request, HttpResponse};

/// The longest a test waits for something it expects to happen.
pub const WAIT: Duration = Duration::from_secs(3);
/// How long "nothing arrives" is watched before it counts as nothing.
pub const QUIET: Duration = Duration::from_millis(200);

/// The V1 magic.
pub const MAGIC: &[u8] = b"  V1";
/// The raw `OK` response.
pub const OK: &[u8] = b"\x00\x00\x00\x02OK";

/// A wall clock that moves only when the test says so.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A lookupd under test.
pub struct Server {
    /// The daemon handle.
    pub lookupd: Lookupd,
    /// Its V1 TCP address.
    pub tcp: SocketAddr,
    /// Its HTTP address.
    pub http: SocketAddr,
    clock: Arc<ManualClock>,
}

/// Default options on loopback port 0.
pub fn options() -> Options {
    Options {
        tcp_address: "127.0.0.1:0".into(),
        http_address: "127.0.0.1:0".into(),
        ..Options::default()
    }
}

/// Starts a lookupd with default options.
pub async fn start() -> Server {
    start_with(options()).await
}

/// Starts a lookupd with `opts`, its clock at 2026-01-01.
pub async fn start_with(opts: Options) -> Server {
    let clock = Arc::new(ManualClock(AtomicI64::new(1_767_225_600_000_000_000)));
    let env = Env {
        clock: clock.clone(),
        ..Env::real()
    };
    let lookupd = Lookupd::new(opts, env).await.expect("lookupd starts");
    let tcp = lookupd.tcp_addr();
    let http = lookupd.http_addr().expect("HTTP address");
    let runner = lookupd.clone();
    tokio::spawn(async move {
        let _ = runner.run().await;
    });
    Server {
        lookupd,
        tcp,
        http,
        clock,
    }
}

impl Server {
    /// Moves the lookupd's wall clock forward.
    pub fn advance(&self, by: Duration) {
        let ns = i64::try_from(by.as_nanos()).expect("small step");
        self.clock.0.fetch_add(ns, Ordering::SeqCst);
    }

    /// Shuts the daemon down, bounded by [`WAIT`].
    pub async fn stop(self) {
        timeout(WAIT, self.lookupd.shutdown())
            .await
            .expect("lookupd shuts down in time");
    }

    /// A connection that has sent the magic.
    pub async fn conn(&self) -> Conn {
        let mut conn = self.raw_conn().await;
        conn.send(MAGIC).await;
        conn
    }

    /// A connection that has sent nothing.
    pub async fn raw_conn(&self) -> Conn {
        let stream = timeout(WAIT, TcpStream::connect(self.tcp))
            .await
            .expect("connect in time")
            .expect("connect");
        Conn { stream }
    }

    /// A connection that has identified as an nsqd at `broadcast:http_port`.
    pub async fn producer(&self, broadcast: &str, tcp_port: u16, http_port: u16) -> Conn {
        let mut conn = self.conn().await;
        conn.send(&identify(broadcast, tcp_port, http_port)).await;
        let answer = conn.response().await;
        assert!(answer.starts_with(b"{\"broadcast_address\""), "{answer:?}");
        conn
    }

    /// One HTTP exchange.
    pub async fn http(&self, method: &str, path: &str) -> HttpResponse {
        http_request(self.http, method, path, None).await
    }

    /// A `GET` whose 200 JSON body is returned parsed.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.http("GET", path).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        serde_json::from_slice(&response.body).expect("JSON body")
    }

    /// A `POST` that must answer 200.
    pub async fn post_ok(&self, path: &str) {
        let response = self.http("POST", path).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
    }

    /// The `broadcast_address:http_port` of every producer of `topic` in `/lookup`.
    pub async fn lookup_nodes(&self, topic: &str) -> Vec<String> {
        let body = self.get_json(&format!("/lookup?topic={topic}")).await;
        nodes_of(&body["producers"])
    }

    /// The `broadcast_address:http_port` of every producer in `/nodes`.
    pub async fn nodes(&self) -> Vec<String> {
        nodes_of(&self.get_json("/nodes").await["producers"])
    }

    /// `/channels?topic=`.
    pub async fn channels(&self, topic: &str) -> Vec<String> {
        strings(&self.get_json(&format!("/channels?topic={topic}")).await["channels"])
    }

    /// `/topics`.
    pub async fn topics(&self) -> Vec<String> {
        strings(&self.get_json("/topics").await["topics"])
    }
}

fn nodes_of(producers: &Value) -> Vec<String> {
    producers
        .as_array()
        .expect("producers array")
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p["broadcast_address"].as_str().unwrap(),
                p["http_port"]
            )
        })
        .collect()
}

/// A JSON array of strings.
pub fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

/// The IDENTIFY command with the body a Go nsqd sends (keys sorted).
pub fn identify(broadcast: &str, tcp_port: u16, http_port: u16) -> Vec<u8> {
    let body = format!(
        r#"{{"broadcast_address":"{broadcast}","hostname":"{broadcast}","http_port":{http_port},"tcp_port":{tcp_port},"version":"1.3.0"}}"#
    );
    identify_raw(body.as_bytes())
}

/// `IDENTIFY\n` + size + `body`.
pub fn identify_raw(body: &[u8]) -> Vec<u8> {
    let mut out = b"IDENTIFY\n".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A raw V1 connection.
pub struct Conn {
    stream: TcpStream,
}

impl Conn {
    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("write in time")
            .expect("write");
    }

    /// Reads one `[size][data]` response and returns its data.
    pub async fn response(&mut self) -> Vec<u8> {
        let mut size = [0u8; 4];
        timeout(WAIT, self.stream.read_exact(&mut size))
            .await
            .expect("a response in time")
            .expect("a response");
        let mut data = vec![0u8; u32::from_be_bytes(size) as usize];
        timeout(WAIT, self.stream.read_exact(&mut data))
            .await
            .expect("a response body in time")
            .expect("a response body");
        data
    }

    /// Reads exactly `raw.len()` bytes and compares them with `raw`.
    pub async fn expect_raw(&mut self, raw: &[u8]) {
        let mut got = vec![0u8; raw.len()];
        timeout(WAIT, self.stream.read_exact(&mut got))
            .await
            .expect("bytes in time")
            .expect("bytes");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(raw),
            "raw bytes"
        );
    }

    /// Sends `command` and expects the raw `OK`.
    pub async fn ok(&mut self, command: &str) {
        self.send(command.as_bytes()).await;
        self.expect_raw(OK).await;
    }

    /// Expects the error frame holding `text`, then the close.
    pub async fn expect_fatal(&mut self, text: &str) {
        let mut raw = (text.len() as u32).to_be_bytes().to_vec();
        raw.extend_from_slice(text.as_bytes());
        self.expect_raw(&raw).await;
        self.expect_closed().await;
    }

    /// Expects EOF (the server closed the connection).
    pub async fn expect_closed(&mut self) {
        let mut byte = [0u8; 1];
        let read = timeout(WAIT, self.stream.read(&mut byte))
            .await
            .expect("the close in time");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "expected a close, got {read:?}"
        );
    }

    /// Expects nothing to arrive for [`QUIET`], the connection still open.
    pub async fn expect_open(&mut self) {
        let mut byte = [0u8; 1];
        let read = timeout(QUIET, self.stream.read(&mut byte)).await;
        assert!(read.is_err(), "expected silence, got {read:?}");
    }
}
