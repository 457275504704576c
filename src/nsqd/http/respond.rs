//! Go's V1 HTTP response conventions: JSON with `X-Nsq-Content-Type`, plain `OK`s,
//! `{"message":...}` errors, and a `Date` header from the env clock.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::ext::ReasonPhrase;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, DATE};
use hyper::{Response, StatusCode};

use crate::nsqd::NsqdInner;

/// Every handler's answer.
pub(super) type HttpResponse = Response<Full<Bytes>>;

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Go's 405: `Allow` first, then the V1 error.
pub(super) fn method_not_allowed(nsqd: &NsqdInner, allow: &str) -> HttpResponse {
    let mut response = error(nsqd, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    let headers = response.headers_mut();
    let rest: Vec<_> = headers.drain().collect();
    headers.insert(ALLOW, allow_value(allow));
    for (name, value) in rest {
        if let Some(name) = name {
            headers.insert(name, value);
        }
    }
    response
}

/// httprouter's automatic answer to `OPTIONS` on a known path: 200, `Allow`, no body
/// and none of the V1 headers (no nsq handler runs).
pub(super) fn options(nsqd: &NsqdInner, allow: &str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(ALLOW, allow_value(allow));
    headers.insert(DATE, date_header(nsqd));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    response
}

fn allow_value(allow: &str) -> HeaderValue {
    HeaderValue::from_str(allow).unwrap_or(HeaderValue::from_static("OPTIONS"))
}

/// Go's V1 answer to a handler that returns nothing: 200, an empty body, no Content-Type.
pub(super) fn empty(nsqd: &NsqdInner) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(
        "X-Nsq-Content-Type",
        HeaderValue::from_static("nsq; version=1.0"),
    );
    headers.insert(DATE, date_header(nsqd));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// `{"message":"<TEXT>"}` with `status`, as Go's V1 API errors.
pub(super) fn error(nsqd: &NsqdInner, status: StatusCode, text: &str) -> HttpResponse {
    json(nsqd, status, &serde_json::json!({ "message": text }))
}

pub(super) fn json<T: serde::Serialize>(
    nsqd: &NsqdInner,
    status: StatusCode,
    body: &T,
) -> HttpResponse {
    json_bytes(nsqd, status, serde_json::to_vec(body).unwrap_or_default())
}

/// A V1 JSON answer whose body is already encoded (values Go's encoder writes in ways
/// serde's does not, such as `/config`'s).
pub(super) fn json_bytes(nsqd: &NsqdInner, status: StatusCode, bytes: Vec<u8>) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    set_status(&mut response, status);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    headers.insert(
        "X-Nsq-Content-Type",
        HeaderValue::from_static("nsq; version=1.0"),
    );
    headers.insert(DATE, date_header(nsqd));
    response
}

pub(super) fn plain(nsqd: &NsqdInner, status: StatusCode, text: &str, v1: bool) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    set_status(&mut response, status);
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

/// Sets the status, with Go's reason phrase where it differs from hyper's (413 is
/// `Request Entity Too Large` in Go, `Payload Too Large` in hyper).
fn set_status(response: &mut HttpResponse, status: StatusCode) {
    *response.status_mut() = status;
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .extensions_mut()
            .insert(ReasonPhrase::from_static(b"Request Entity Too Large"));
    }
}

/// The `Date` header from the env clock, so simulated runs stay deterministic.
fn date_header(nsqd: &NsqdInner) -> HeaderValue {
    let ns = nsqd.now_ns().max(0) as u64;
    let time = std::time::UNIX_EPOCH + Duration::from_nanos(ns);
    HeaderValue::from_str(&httpdate::fmt_http_date(time)).unwrap_or(HeaderValue::from_static(""))
}
