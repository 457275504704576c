//! Go's V1 HTTP response conventions: JSON with `X-Nsq-Content-Type`, plain `OK`s,
//! `{"message":...}` errors, and a `Date` header from the env clock.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, DATE};
use hyper::{Response, StatusCode};

use crate::nsqd::NsqdInner;

/// Every handler's answer.
pub(super) type HttpResponse = Response<Full<Bytes>>;

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

pub(super) fn method_not_allowed(nsqd: &NsqdInner, allow: &'static str) -> HttpResponse {
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
pub(super) fn error(nsqd: &NsqdInner, status: StatusCode, text: &str) -> HttpResponse {
    json(nsqd, status, &serde_json::json!({ "message": text }))
}

pub(super) fn json<T: serde::Serialize>(
    nsqd: &NsqdInner,
    status: StatusCode,
    body: &T,
) -> HttpResponse {
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

pub(super) fn plain(nsqd: &NsqdInner, status: StatusCode, text: &str, v1: bool) -> HttpResponse {
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
