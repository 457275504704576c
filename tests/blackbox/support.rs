//! What every black-box test needs: a real nsqd on 127.0.0.1 port 0, a raw V2 connection
//! that sends bytes and reads frames with a timeout, a tiny HTTP/1.1 client, and asserts
//! that print the bytes they expected.
//!
//! Every wait here is bounded: a test that waits for something that never comes fails
//! after [`WAIT`] instead of hanging the binary.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nsq::env::{BoxStream, Env};
use nsq::nsqd::{Nsqd, Options};
use nsq::protocol::frame::decode_frame;
use nsq::protocol::{Command, FrameType, MessageId, MESSAGE_HEADER_LENGTH};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// The longest a test waits for something it expects to happen.
pub const WAIT: Duration = Duration::from_secs(3);
/// How long "nothing arrives" is watched before it counts as nothing.
pub const QUIET: Duration = Duration::from_millis(200);
/// Server frames larger than this are a bug in the test or the server.
const FRAME_SIZE_MAX: usize = 8 * 1024 * 1024;

/// The V2 magic.
pub const MAGIC: &[u8] = b"  V2";
/// The raw `OK` response frame.
pub const OK_FRAME: &[u8] = b"\x00\x00\x00\x06\x00\x00\x00\x00OK";

/// Default options on loopback port 0, nothing else changed (for byte-exact answers that
/// echo the defaults, such as IDENTIFY's).
pub fn golden_options() -> Options {
    Options {
        tcp_address: "127.0.0.1:0".into(),
        http_address: "127.0.0.1:0".into(),
        https_address: String::new(),
        ..Options::default()
    }
}

/// Loopback options with short timeouts so timing tests finish fast: a 300 ms message
/// timeout and a 10 ms queue scan whose channel list refreshes every 50 ms.
pub fn fast_options() -> Options {
    Options {
        msg_timeout: Duration::from_millis(300),
        queue_scan_interval: Duration::from_millis(10),
        queue_scan_refresh_interval: Duration::from_millis(50),
        ..golden_options()
    }
}

/// A running nsqd; [`Server::stop`] shuts it down (dropping the runtime also does).
pub struct Server {
    /// The daemon handle.
    pub nsqd: Nsqd,
    /// Its V2 TCP address.
    pub tcp: SocketAddr,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// The temporary `--data-path` made for it, removed when the server is dropped
    /// (None when the test chose its own).
    pub data_dir: Option<tempfile::TempDir>,
}

/// Starts an nsqd with `opts` and serves it from a task.
pub async fn start_with(opts: Options) -> Server {
    start_with_env(opts, Env::real()).await
}

/// Starts an nsqd with `opts` on `env` (e.g. real sockets with a `MemFs`).
pub async fn start_with_env(mut opts: Options, env: Env) -> Server {
    let data_dir = if opts.data_path.is_empty() {
        let dir = tempfile::tempdir().expect("temporary data path");
        opts.data_path = dir.path().to_string_lossy().into_owned();
        Some(dir)
    } else {
        None
    };
    let nsqd = Nsqd::new(opts, env).await.expect("nsqd starts");
    let tcp = nsqd.tcp_addr();
    let http = nsqd.http_addr().expect("HTTP enabled");
    let runner = nsqd.clone();
    tokio::spawn(async move {
        let _ = runner.run().await;
    });
    Server {
        nsqd,
        tcp,
        http,
        data_dir,
    }
}

/// Starts an nsqd with [`golden_options`].
pub async fn start() -> Server {
    start_with(golden_options()).await
}

impl Server {
    /// Shuts the daemon down, bounded by [`WAIT`].
    pub async fn stop(self) {
        timeout(WAIT, self.nsqd.shutdown())
            .await
            .expect("nsqd shuts down in time");
    }

    /// A new connection that has sent the V2 magic.
    pub async fn conn(&self) -> Conn {
        let mut conn = self.raw_conn().await;
        conn.send(MAGIC).await;
        conn
    }

    /// A new connection that has sent nothing yet.
    pub async fn raw_conn(&self) -> Conn {
        let stream = timeout(WAIT, TcpStream::connect(self.tcp))
            .await
            .expect("connect in time")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream: Box::new(stream),
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// A subscribed connection: magic, `SUB topic channel` answered OK, then `RDY rdy`.
    pub async fn subscriber(&self, topic: &str, channel: &str, rdy: i64) -> Conn {
        let mut conn = self.conn().await;
        conn.sub(topic, channel).await;
        conn.rdy(rdy).await;
        conn
    }

    /// Publishes `bodies` to `topic` over a fresh connection (MPUB), answered OK.
    pub async fn publish(&self, topic: &str, bodies: &[&[u8]]) {
        let mut conn = self.conn().await;
        let bodies = bodies.iter().map(|b| Bytes::copy_from_slice(b)).collect();
        conn.command(Command::Mpub {
            topic: topic.into(),
            bodies,
        })
        .await;
        conn.expect_ok().await;
    }

    /// One HTTP request with an optional body; see [`http_request`].
    pub async fn http(&self, method: &str, path: &str, body: Option<&[u8]>) -> HttpResponse {
        http_request(self.http, method, path, body).await
    }

    /// `GET /stats?format=json&<query>` parsed.
    pub async fn stats(&self, query: &str) -> Value {
        let path = if query.is_empty() {
            "/stats?format=json".to_string()
        } else {
            format!("/stats?format=json&{query}")
        };
        let response = self.http("GET", &path, None).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        serde_json::from_slice(&response.body).expect("stats JSON")
    }

    /// The names of every topic in `/stats`.
    pub async fn topic_names(&self) -> Vec<String> {
        let stats = self.stats("include_clients=false&include_mem=false").await;
        stats["topics"]
            .as_array()
            .map(|topics| {
                topics
                    .iter()
                    .map(|t| t["topic_name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `/stats` for one topic (Null when it does not exist).
    pub async fn topic_stats(&self, topic: &str) -> Value {
        let stats = self.stats("include_mem=false").await;
        find_named(&stats["topics"], "topic_name", topic)
    }

    /// `/stats` for one channel (Null when it or its topic does not exist).
    pub async fn channel_stats(&self, topic: &str, channel: &str) -> Value {
        let topic = self.topic_stats(topic).await;
        find_named(&topic["channels"], "channel_name", channel)
    }

    /// Polls `/stats` until `check` holds, failing after [`WAIT`].
    pub async fn wait_for_stats(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats("include_mem=false").await;
            if check(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The element of a JSON array whose `key` is `name`, or Null.
pub fn find_named(list: &Value, key: &str, name: &str) -> Value {
    list.as_array()
        .and_then(|items| items.iter().find(|item| item[key] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// One server frame as read off the wire.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame type.
    pub kind: FrameType,
    /// The data after the type.
    pub data: Bytes,
    /// The exact bytes, size and type included.
    pub raw: Bytes,
}

impl Frame {
    /// The data as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// What one bounded read gave.
#[derive(Debug)]
pub enum Read {
    /// A whole frame.
    Frame(Frame),
    /// The server closed the connection (FIN or RST).
    Closed,
    /// Nothing arrived in time; the connection is still open.
    Timeout,
}

/// A decoded message frame.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Nanoseconds since the epoch, from the header.
    pub timestamp_ns: i64,
    /// Delivery attempts, from the header.
    pub attempts: u16,
    /// The 16-byte id.
    pub id: MessageId,
    /// The body.
    pub body: Bytes,
    /// The whole frame.
    pub frame: Frame,
}

impl Msg {
    /// The id as text, for error strings.
    pub fn id_text(&self) -> String {
        String::from_utf8_lossy(&self.id.0).into_owned()
    }
}

/// A raw V2 connection.
pub struct Conn {
    stream: BoxStream,
    buf: BytesMut,
}

impl Conn {
    /// Replaces the stream with `upgrade(stream)` (TLS, snappy, deflate). Bytes already
    /// read past the last frame belong to the new layer and are fed to it first.
    pub async fn upgrade<F, Fut>(mut self, upgrade: F) -> Conn
    where
        F: FnOnce(BoxStream) -> Fut,
        Fut: std::future::Future<Output = BoxStream>,
    {
        let stream = if self.buf.is_empty() {
            self.stream
        } else {
            let unread = self.buf.split().freeze();
            Box::new(nsq::compress::Prefixed::new(unread, self.stream)) as BoxStream
        };
        Conn {
            stream: upgrade(stream).await,
            buf: self.buf,
        }
    }

    /// Writes `bytes` as one write.
    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(WAIT, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .expect("write in time")
        .expect("write");
    }

    /// Like [`Conn::send`], but a failed write (the server already closed) is fine.
    pub async fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = timeout(WAIT, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await;
    }

    /// Writes one encoded command.
    pub async fn command(&mut self, command: Command) {
        let mut out = BytesMut::new();
        command.encode(&mut out);
        self.send(&out).await;
    }

    /// Reads one frame within `within`.
    pub async fn read(&mut self, within: Duration) -> Read {
        let deadline = Instant::now() + within;
        loop {
            let before = self.buf.clone();
            match decode_frame(&mut self.buf, FRAME_SIZE_MAX).expect("well-formed frame") {
                Some((kind, data)) => {
                    let used = before.len() - self.buf.len();
                    let raw = before.freeze().slice(..used);
                    return Read::Frame(Frame { kind, data, raw });
                }
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match timeout(left, self.stream.read_buf(&mut self.buf)).await {
                        Err(_) => return Read::Timeout,
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            assert!(
                                self.buf.is_empty(),
                                "connection closed inside a frame: {:?}",
                                self.buf
                            );
                            return Read::Closed;
                        }
                        Ok(Ok(_)) => {}
                    }
                }
            }
        }
    }

    /// The next frame; fails if none arrives within [`WAIT`].
    pub async fn frame(&mut self) -> Frame {
        self.frame_within(WAIT).await
    }

    /// The next frame; fails if none arrives within `within`.
    pub async fn frame_within(&mut self, within: Duration) -> Frame {
        match self.read(within).await {
            Read::Frame(frame) => frame,
            other => panic!("expected a frame within {within:?}, got {other:?}"),
        }
    }

    /// The next frame must be exactly `raw`.
    pub async fn expect_raw(&mut self, raw: &[u8]) {
        let frame = self.frame().await;
        assert_eq!(
            Bytes::copy_from_slice(raw),
            frame.raw,
            "frame bytes differ (left: expected)"
        );
    }

    /// The next frame must be the response `OK`.
    pub async fn expect_ok(&mut self) {
        self.expect_raw(OK_FRAME).await;
    }

    /// The next frame must be a response (type 0) carrying `data`.
    pub async fn expect_response(&mut self, data: &[u8]) {
        let frame = self.frame().await;
        assert_eq!(frame.kind, FrameType::Response, "{frame:?}");
        assert_eq!(Bytes::copy_from_slice(data), frame.data);
    }

    /// The next frame must be an error frame (type 1) with exactly `text`; returns it.
    pub async fn expect_error(&mut self, text: &str) -> Frame {
        let frame = self.frame().await;
        assert_eq!(frame.kind, FrameType::Error, "{frame:?}");
        assert_eq!(frame.text(), text);
        assert_eq!(frame.raw.len(), 8 + text.len(), "size header");
        assert_eq!(
            &frame.raw[..4],
            &((text.len() + 4) as u32).to_be_bytes()[..]
        );
        frame
    }

    /// A fatal error: the error frame `text`, then the server closes the connection.
    pub async fn expect_fatal(&mut self, text: &str) {
        self.expect_error(text).await;
        self.expect_closed().await;
    }

    /// The server closes the connection (no further frame) within [`WAIT`].
    pub async fn expect_closed(&mut self) {
        self.expect_closed_within(WAIT).await;
    }

    /// Reads and throws away whatever arrives until the connection is quiet for
    /// [`QUIET`] (e.g. a compressed answer the test does not decode).
    pub async fn drain(&mut self) {
        loop {
            self.buf.clear();
            match timeout(QUIET, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => continue,
                _ => break,
            }
        }
        self.buf.clear();
    }

    /// Expects the server to close the connection within [`WAIT`], whatever bytes come
    /// first (e.g. the end of a compressed stream the test does not decode).
    pub async fn expect_eof(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.buf.clear();
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the server did not close the connection"),
            }
        }
    }

    /// Like [`Conn::expect_closed`], waiting up to `within`.
    pub async fn expect_closed_within(&mut self, within: Duration) {
        match self.read(within).await {
            Read::Closed => {}
            other => panic!("expected the server to close the connection, got {other:?}"),
        }
    }

    /// Nothing arrives for `quiet` and the connection stays open.
    pub async fn expect_quiet_for(&mut self, quiet: Duration) {
        match self.read(quiet).await {
            Read::Timeout => {}
            other => panic!("expected nothing for {quiet:?}, got {other:?}"),
        }
    }

    /// Nothing arrives for [`QUIET`] and the connection stays open.
    pub async fn expect_quiet(&mut self) {
        self.expect_quiet_for(QUIET).await;
    }

    /// The connection is still usable: a NOP draws no answer and no close, then a PUB on
    /// `probe_topic` is answered OK.
    pub async fn expect_usable(&mut self, probe_topic: &str) {
        self.send(b"NOP\n").await;
        self.expect_quiet().await;
        self.command(Command::Pub {
            topic: probe_topic.into(),
            body: Bytes::from_static(b"probe"),
        })
        .await;
        self.expect_ok().await;
    }

    /// The next frame must be a message; returns it decoded.
    pub async fn message(&mut self) -> Msg {
        self.message_within(WAIT).await
    }

    /// The next frame must be a message arriving within `within`.
    pub async fn message_within(&mut self, within: Duration) -> Msg {
        let frame = self.frame_within(within).await;
        decode_message(frame)
    }

    /// Every message until nothing arrives for `quiet`, FINishing each when `fin`.
    pub async fn drain_messages(&mut self, quiet: Duration, fin: bool) -> Vec<Msg> {
        let mut got = Vec::new();
        loop {
            match self.read(quiet).await {
                Read::Timeout => return got,
                Read::Closed => panic!("connection closed while draining"),
                Read::Frame(frame) => {
                    let msg = decode_message(frame);
                    if fin {
                        self.fin(&msg).await;
                    }
                    got.push(msg);
                }
            }
        }
    }

    /// `SUB topic channel`, answered OK.
    pub async fn sub(&mut self, topic: &str, channel: &str) {
        self.send(format!("SUB {topic} {channel}\n").as_bytes())
            .await;
        self.expect_ok().await;
    }

    /// `RDY n` (no answer).
    pub async fn rdy(&mut self, n: i64) {
        self.send(format!("RDY {n}\n").as_bytes()).await;
    }

    /// `FIN id` (no answer).
    pub async fn fin(&mut self, msg: &Msg) {
        self.command(Command::Fin { id: msg.id }).await;
    }

    /// `PUB topic body`, answered OK.
    pub async fn publish(&mut self, topic: &str, body: &[u8]) {
        self.command(Command::Pub {
            topic: topic.into(),
            body: Bytes::copy_from_slice(body),
        })
        .await;
        self.expect_ok().await;
    }

    /// `IDENTIFY` with `json`; returns the answer frame.
    pub async fn identify(&mut self, json: &str) -> Frame {
        self.send(&identify_bytes(json)).await;
        self.frame().await
    }
}

/// The wire bytes of `IDENTIFY` with `json` as its body.
pub fn identify_bytes(json: &str) -> Vec<u8> {
    let mut out = b"IDENTIFY\n".to_vec();
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

/// Decodes a message frame, checking the 26-byte header layout.
pub fn decode_message(frame: Frame) -> Msg {
    assert_eq!(
        frame.kind,
        FrameType::Message,
        "expected a message: {frame:?}"
    );
    let data = &frame.data;
    assert!(data.len() > MESSAGE_HEADER_LENGTH, "short message {data:?}");
    let timestamp_ns = i64::from_be_bytes(data[0..8].try_into().expect("8 bytes"));
    let attempts = u16::from_be_bytes([data[8], data[9]]);
    let id = MessageId::from_slice(&data[10..26]).expect("16-byte id");
    let body = frame.data.slice(MESSAGE_HEADER_LENGTH..);
    Msg {
        timestamp_ns,
        attempts,
        id,
        body,
        frame,
    }
}

/// Wall-clock nanoseconds since the epoch, to bound message timestamps. Black-box tests
/// run against the real clock on purpose.
#[allow(clippy::disallowed_methods)]
pub fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// One parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers in the order received.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts status, body and the V1 headers of a JSON error `{"message":"<text>"}`.
    pub fn assert_v1_error(&self, status: u16, text: &str) {
        let body = format!(r#"{{"message":"{text}"}}"#);
        assert_eq!((self.status, self.text()), (status, body), "{self:?}");
        self.assert_header("Content-Type", "application/json; charset=utf-8");
        self.assert_header("X-Nsq-Content-Type", "nsq; version=1.0");
        self.assert_header("Content-Length", &self.body.len().to_string());
    }

    /// Asserts a V1 `200 OK` with the text body `OK`.
    pub fn assert_v1_ok(&self) {
        assert_eq!((self.status, self.text().as_str()), (200, "OK"), "{self:?}");
        self.assert_header("Content-Type", "text/plain; charset=utf-8");
        self.assert_header("X-Nsq-Content-Type", "nsq; version=1.0");
        self.assert_header("Content-Length", "2");
    }

    /// Asserts a header's exact value.
    pub fn assert_header(&self, name: &str, value: &str) {
        assert_eq!(self.header(name), Some(value), "header {name}: {self:?}");
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` (and `Content-Length` when a body
/// is given) as Go's golden capture did, and reads the whole response.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    http_exchange(addr, &request).await
}

/// Sends only the head of a request announcing `content_length` body bytes that never
/// come: the server must answer from the headers alone.
pub async fn http_head_only(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_length: usize,
) -> HttpResponse {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {content_length}\r\nConnection: close\r\n\r\n"
    );
    http_exchange(addr, head.as_bytes()).await
}

/// Sends `request` as it is (any bytes, HTTP or not) and reads one HTTP response.
pub async fn http_exchange(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    // The server may answer and close before reading a big body; the answer still counts.
    let _ = timeout(WAIT, stream.write_all(request)).await;
    let mut raw = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(response) = parse_http(&raw, false) {
            return response;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut chunk = [0u8; 16 * 1024];
        match timeout(left, stream.read(&mut chunk)).await {
            Err(_) => panic!("HTTP response incomplete after {WAIT:?}: {:?}", lossy(&raw)),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return parse_http(&raw, true)
                    .unwrap_or_else(|| panic!("connection closed mid-response: {:?}", lossy(&raw)))
            }
            Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
        }
    }
}

fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// A whole response in `raw`, or None while more is needed; at `eof` a body without a
/// length is whatever came before the close (Go's own error answers have none).
fn parse_http(raw: &[u8], eof: bool) -> Option<HttpResponse> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).expect("ASCII head");
    let rest = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts
        .next()
        .expect("status")
        .parse()
        .expect("numeric status");
    let reason = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.to_string(), value.trim().to_string())
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(length) = find("Content-Length") {
        let length: usize = length.parse().expect("numeric Content-Length");
        if rest.len() < length {
            return None;
        }
        rest[..length].to_vec()
    } else if find("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if eof {
        rest.to_vec()
    } else {
        // No length: the body runs to the close.
        return None;
    };
    Some(HttpResponse {
        status,
        reason,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).expect("chunk size");
        let size = usize::from_str_radix(size_text.trim(), 16).expect("hex chunk size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if rest.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Replaces the digits after every `"key":` in `json` with `placeholder`.
pub fn mask_number(json: &str, key: &str, placeholder: &str) -> String {
    let needle = format!("\"{key}\":");
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(at) = rest.find(&needle) {
        let value_start = at + needle.len();
        out.push_str(&rest[..value_start]);
        let digits = rest[value_start..]
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'-')
            .count();
        assert!(digits > 0, "no number after {needle}");
        out.push_str(placeholder);
        rest = &rest[value_start + digits..];
    }
    out.push_str(rest);
    out
}

/// Replaces the port digits after every `prefix` in `text` with `placeholder`.
pub fn mask_port_after(text: &str, prefix: &str, placeholder: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let port_start = at + prefix.len();
        out.push_str(&rest[..port_start]);
        let digits = rest[port_start..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        out.push_str(placeholder);
        rest = &rest[port_start + digits..];
    }
    out.push_str(rest);
    out
}
