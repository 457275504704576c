//! The HTTP API: `/ping`, `/info`, `/pub`, `/mpub` and `/stats`, with Go's statuses,
//! bodies and headers (nsq-reference §2).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, DATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::stats::StatsFilter;
use super::NsqdInner;
use crate::env::Listener;
use crate::protocol::{names, ClientState, Command, Decoded, ErrorCode, ParseContext};

type HttpResponse = Response<Full<Bytes>>;

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
/// How long an open HTTP exchange may take to finish once nsqd is exiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves HTTP until shutdown.
pub(crate) async fn serve(nsqd: Arc<NsqdInner>, listener: Box<dyn Listener>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = nsqd.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let nsqd_for_conn = nsqd.clone();
        let shutdown = nsqd.shutdown.clone();
        nsqd.tasks.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let nsqd = nsqd_for_conn.clone();
                async move { Ok::<_, Infallible>(route(&nsqd, request).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .auto_date_header(false);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
                _ = connection.as_mut() => return,
            }
            // A request still being read or answered gets a moment to finish; a peer
            // that trickles its body must not hold up the exit.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        });
    }
    tracing::info!("HTTP: closing listener");
}

async fn route(nsqd: &NsqdInner, request: Request<Incoming>) -> HttpResponse {
    let path = request.uri().path().to_string();
    let query = parse_query(request.uri().query().unwrap_or(""));
    let method = request.method().clone();
    let get_only = |m: &Method| m == Method::GET;
    let post_only = |m: &Method| m == Method::POST;
    let response = match path.as_str() {
        "/ping" if get_only(&method) => plain(nsqd, StatusCode::OK, "OK", false),
        "/info" if get_only(&method) => info(nsqd),
        "/stats" if get_only(&method) => stats(nsqd, &query),
        "/pub" if post_only(&method) => publish(nsqd, &query, request).await,
        "/mpub" if post_only(&method) => multi_publish(nsqd, &query, request).await,
        "/ping" | "/info" | "/stats" => method_not_allowed(nsqd, "GET, OPTIONS"),
        "/pub" | "/mpub" => method_not_allowed(nsqd, "OPTIONS, POST"),
        _ => error(nsqd, StatusCode::NOT_FOUND, "NOT_FOUND"),
    };
    response
}

/// Query parameters; the first value of a repeated key wins, as Go's `Get` does.
fn parse_query(query: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        params
            .entry(key.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    params
}

fn info(nsqd: &NsqdInner) -> HttpResponse {
    #[derive(serde::Serialize)]
    struct Info<'a> {
        version: &'a str,
        broadcast_address: &'a str,
        hostname: String,
        http_port: u16,
        tcp_port: u16,
        start_time: i64,
        max_heartbeat_interval: i64,
        max_output_buffer_size: i64,
        max_output_buffer_timeout: i64,
        max_deflate_level: i64,
    }
    let opts = &nsqd.opts;
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let tcp_port = match opts.broadcast_tcp_port {
        0 => nsqd.tcp_addr.port(),
        p => p,
    };
    let http_port = match opts.broadcast_http_port {
        0 => nsqd.http_addr.map(|a| a.port()).unwrap_or(0),
        p => p,
    };
    let body = Info {
        version: super::options::VERSION,
        broadcast_address: &opts.broadcast_address,
        hostname: crate::env::os_hostname(),
        http_port,
        tcp_port,
        start_time: nsqd.start_time,
        max_heartbeat_interval: nanos(opts.max_heartbeat_interval),
        max_output_buffer_size: opts.max_output_buffer_size,
        max_output_buffer_timeout: nanos(opts.max_output_buffer_timeout),
        max_deflate_level: opts.max_deflate_level,
    };
    json(nsqd, StatusCode::OK, &body)
}

fn stats(nsqd: &NsqdInner, query: &BTreeMap<String, String>) -> HttpResponse {
    let flag = |name: &str| match query.get(name).map(String::as_str) {
        None => Ok(true),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(_) => Err(()),
    };
    let (Ok(include_clients), Ok(include_mem)) = (flag("include_clients"), flag("include_mem"))
    else {
        return error(nsqd, StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    };
    let filter = StatsFilter {
        // An empty value filters nothing, as Go's `topic == ""` check.
        topic: query.get("topic").filter(|t| !t.is_empty()).cloned(),
        channel: query.get("channel").filter(|c| !c.is_empty()).cloned(),
        include_clients,
        include_mem,
    };
    let stats = nsqd.stats(&filter);
    if query.get("format").map(String::as_str) == Some("json") {
        json(nsqd, StatusCode::OK, &stats)
    } else {
        let text = super::stats_text::render(&stats, nsqd.now_ns());
        plain(nsqd, StatusCode::OK, &text, true)
    }
}

/// Reads a request body of at most `limit` bytes; `None` when it is longer.
async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Option<Bytes>, ()> {
    let mut body = request.into_body();
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(mut data) = frame.into_data() {
            if collected.len() + data.remaining() > limit {
                return Ok(None);
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                collected.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok(Some(collected.freeze()))
}

fn content_length(request: &Request<Incoming>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The `topic` parameter, validated: Go's MISSING_ARG_TOPIC / INVALID_TOPIC.
fn topic_param(query: &BTreeMap<String, String>) -> Result<&str, &'static str> {
    let topic = query.get("topic").ok_or("MISSING_ARG_TOPIC")?;
    if !names::is_valid_topic_name(topic) {
        return Err("INVALID_TOPIC");
    }
    Ok(topic)
}

async fn publish(
    nsqd: &NsqdInner,
    query: &BTreeMap<String, String>,
    request: Request<Incoming>,
) -> HttpResponse {
    let max = usize::try_from(nsqd.opts.max_msg_size).unwrap_or(usize::MAX);
    if content_length(&request).is_some_and(|n| n > max as u64) {
        return error(nsqd, StatusCode::PAYLOAD_TOO_LARGE, "MSG_TOO_BIG");
    }
    let body = match read_body(request, max).await {
        Ok(Some(body)) => body,
        Ok(None) => return error(nsqd, StatusCode::PAYLOAD_TOO_LARGE, "MSG_TOO_BIG"),
        Err(()) => return error(nsqd, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
    };
    if body.is_empty() {
        return error(nsqd, StatusCode::BAD_REQUEST, "MSG_EMPTY");
    }
    let topic_name = match topic_param(query) {
        Ok(topic) => topic,
        Err(text) => return error(nsqd, StatusCode::BAD_REQUEST, text),
    };
    // Go looks the topic up (creating it) before it parses `defer`.
    let topic = nsqd.get_or_create_topic(topic_name);
    let max_defer_ms = super::conn::millis(nsqd.opts.max_req_timeout);
    let defer_ms = match query.get("defer") {
        None => 0,
        Some(raw) => match raw.parse::<i64>() {
            Ok(ms) if (0..=max_defer_ms).contains(&ms) => ms,
            _ => return error(nsqd, StatusCode::BAD_REQUEST, "INVALID_DEFER"),
        },
    };
    match topic.publish(&[body], nsqd.now_ns(), defer_ms.saturating_mul(1_000_000)) {
        Ok(()) => plain(nsqd, StatusCode::OK, "OK", true),
        Err(super::topic::TopicError::Exiting) => {
            error(nsqd, StatusCode::SERVICE_UNAVAILABLE, "EXITING")
        }
        Err(e) => {
            tracing::error!(topic = %topic_name, error = %e, "HTTP publish failed");
            error(nsqd, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
        }
    }
}

async fn multi_publish(
    nsqd: &NsqdInner,
    query: &BTreeMap<String, String>,
    request: Request<Incoming>,
) -> HttpResponse {
    let max_body = usize::try_from(nsqd.opts.max_body_size).unwrap_or(usize::MAX);
    let max_msg = usize::try_from(nsqd.opts.max_msg_size).unwrap_or(usize::MAX);
    if content_length(&request).is_some_and(|n| n > max_body as u64) {
        return error(nsqd, StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_BIG");
    }
    let topic_name = match topic_param(query) {
        Ok(topic) => topic.to_string(),
        Err(text) => return error(nsqd, StatusCode::BAD_REQUEST, text),
    };
    // Go looks the topic up (creating it) before it reads the body, so a malformed
    // body still leaves the topic behind.
    let topic = nsqd.get_or_create_topic(&topic_name);
    let binary = match query.get("binary").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            tracing::warn!(value = %other, "HTTP /mpub: unrecognised binary param; taking it as binary");
            true
        }
    };
    let body = match read_body(request, max_body).await {
        Ok(Some(body)) => body,
        Ok(None) => return error(nsqd, StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_BIG"),
        Err(()) => return error(nsqd, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
    };
    let bodies = if binary {
        match binary_mpub_bodies(nsqd, &body) {
            Ok(bodies) => bodies,
            Err(code) => {
                let code = code.as_str().trim_start_matches("E_");
                return error(nsqd, StatusCode::PAYLOAD_TOO_LARGE, code);
            }
        }
    } else {
        let mut bodies = Vec::new();
        for line in body.split(|b| *b == b'\n') {
            if line.len() > max_msg {
                return error(nsqd, StatusCode::PAYLOAD_TOO_LARGE, "MSG_TOO_BIG");
            }
            if !line.is_empty() {
                bodies.push(body.slice_ref(line));
            }
        }
        bodies
    };
    if bodies.is_empty() {
        return plain(nsqd, StatusCode::OK, "OK", true);
    }
    match topic.publish(&bodies, nsqd.now_ns(), 0) {
        Ok(()) => plain(nsqd, StatusCode::OK, "OK", true),
        Err(super::topic::TopicError::Exiting) => {
            error(nsqd, StatusCode::SERVICE_UNAVAILABLE, "EXITING")
        }
        Err(e) => {
            tracing::error!(topic = %topic_name, error = %e, "HTTP multi-publish failed");
            error(nsqd, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
        }
    }
}

/// Splits a binary `/mpub` body (`[i32 count]` then count x `[i32 size][bytes]`) with
/// the very parser TCP's MPUB uses, so both give the same verdicts. A body that ends
/// early is Go's "failed to read": BAD_BODY before the count, BAD_MESSAGE after it.
fn binary_mpub_bodies(nsqd: &NsqdInner, body: &Bytes) -> Result<Vec<Bytes>, ErrorCode> {
    const LINE: &[u8] = b"MPUB t\n";
    let size = i32::try_from(body.len()).map_err(|_| ErrorCode::BadBody)?;
    let mut frame = BytesMut::with_capacity(LINE.len() + 4 + body.len());
    frame.extend_from_slice(LINE);
    frame.put_i32(size);
    frame.extend_from_slice(body);
    let limits = nsqd.limits();
    let ctx = ParseContext {
        state: ClientState::Init,
        limits: &limits,
        heartbeats_enabled: true,
        tls_pending: false,
    };
    match crate::protocol::decode(&mut frame, &ctx) {
        Ok(Decoded::Complete(Command::Mpub { bodies, .. })) => Ok(bodies),
        Ok(Decoded::Incomplete { needed }) if needed <= LINE.len() + 8 => Err(ErrorCode::BadBody),
        Ok(_) => Err(ErrorCode::BadMessage),
        Err(failure) => Err(failure.error.code),
    }
}

fn method_not_allowed(nsqd: &NsqdInner, allow: &'static str) -> HttpResponse {
    let mut response = error(nsqd, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    let headers = response.headers_mut();
    let rest: Vec<_> = headers.drain().collect();
    headers.insert(ALLOW, HeaderValue::from_static(allow));
    for (name, value) in rest {
        if let Some(name) = name {
            headers.insert(name, value);
        }
    }
    response
}

/// `{"message":"<TEXT>"}` with `status`, as Go's V1 API errors.
fn error(nsqd: &NsqdInner, status: StatusCode, text: &str) -> HttpResponse {
    json(nsqd, status, &serde_json::json!({ "message": text }))
}

fn json<T: serde::Serialize>(nsqd: &NsqdInner, status: StatusCode, body: &T) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    headers.insert(
        "X-Nsq-Content-Type",
        HeaderValue::from_static("nsq; version=1.0"),
    );
    headers.insert(DATE, date_header(nsqd));
    response
}

fn plain(nsqd: &NsqdInner, status: StatusCode, text: &str, v1: bool) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if v1 {
        headers.insert(
            "X-Nsq-Content-Type",
            HeaderValue::from_static("nsq; version=1.0"),
        );
    }
    headers.insert(DATE, date_header(nsqd));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    response
}

/// The `Date` header from the env clock, so simulated runs stay deterministic.
fn date_header(nsqd: &NsqdInner) -> HeaderValue {
    let ns = nsqd.now_ns().max(0) as u64;
    let time = std::time::UNIX_EPOCH + Duration::from_nanos(ns);
    HeaderValue::from_str(&httpdate::fmt_http_date(time)).unwrap_or(HeaderValue::from_static(""))
}
