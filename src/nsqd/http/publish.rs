//! `/pub` and `/mpub`.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::body::{content_length, read_body};
use super::respond::{error, plain, HttpResponse};
use crate::nsqd::replication::PublishError;
use crate::nsqd::NsqdInner;
use crate::protocol::{names, ClientState, Command, Decoded, ErrorCode, ParseContext};

/// The `topic` parameter, validated: Go's MISSING_ARG_TOPIC / INVALID_TOPIC.
pub(super) fn topic_param(query: &BTreeMap<String, String>) -> Result<&str, &'static str> {
    let topic = query.get("topic").ok_or("MISSING_ARG_TOPIC")?;
    if !names::is_valid_topic_name(topic) {
        return Err("INVALID_TOPIC");
    }
    Ok(topic)
}

pub(super) async fn publish(
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
    let topic = nsqd.topic(topic_name).await;
    let max_defer_ms = crate::nsqd::conn::millis(nsqd.opts.max_req_timeout);
    let defer_ms = match query.get("defer") {
        None => 0,
        Some(raw) => match raw.parse::<i64>() {
            Ok(ms) if (0..=max_defer_ms).contains(&ms) => ms,
            _ => return error(nsqd, StatusCode::BAD_REQUEST, "INVALID_DEFER"),
        },
    };
    let published = nsqd
        .publish(&topic, vec![body], defer_ms.saturating_mul(1_000_000))
        .await;
    answer_publish(nsqd, topic_name, published)
}

/// Go's answer to a publish: `OK`, 503 `EXITING`, or 500 `INTERNAL_ERROR` (logged); a
/// replicated publish too few replicas hold is 500 `PUB_FAILED` (ours: Go has no
/// replication), as the TCP protocol's `E_PUB_FAILED`.
fn answer_publish(
    nsqd: &NsqdInner,
    topic_name: &str,
    published: Result<(), PublishError>,
) -> HttpResponse {
    match published {
        Ok(()) => plain(nsqd, StatusCode::OK, "OK", true),
        Err(PublishError::Topic(crate::nsqd::topic::TopicError::Exiting)) => {
            error(nsqd, StatusCode::SERVICE_UNAVAILABLE, "EXITING")
        }
        Err(e @ PublishError::Replication(_)) => {
            tracing::error!(topic = %topic_name, error = %e, "HTTP publish failed");
            error(nsqd, StatusCode::INTERNAL_SERVER_ERROR, "PUB_FAILED")
        }
        Err(e) => {
            tracing::error!(topic = %topic_name, error = %e, "HTTP publish failed");
            error(nsqd, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
        }
    }
}

pub(super) async fn multi_publish(
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
    let topic = nsqd.topic(&topic_name).await;
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
    let published = nsqd.publish(&topic, bodies, 0).await;
    answer_publish(nsqd, &topic_name, published)
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
