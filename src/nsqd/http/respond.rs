//! Go's V1 HTTP response conventions for nsqd's handlers: the shared ones in
//! [`crate::http_common`], stamped with nsqd's env clock.

use hyper::StatusCode;

use crate::http_common;
use crate::nsqd::NsqdInner;

/// Every handler's answer.
pub(super) type HttpResponse = http_common::HttpResponse;

/// Go's 405: `Allow` first, then the V1 error.
pub(super) fn method_not_allowed(nsqd: &NsqdInner, allow: &str) -> HttpResponse {
    http_common::method_not_allowed(nsqd.now_ns(), allow)
}

/// httprouter's automatic answer to `OPTIONS` on a known path.
pub(super) fn options(nsqd: &NsqdInner, allow: &str) -> HttpResponse {
    http_common::options(nsqd.now_ns(), allow)
}

/// Go's V1 answer to a handler that returns nothing: 200, an empty body, no Content-Type.
pub(super) fn empty(nsqd: &NsqdInner) -> HttpResponse {
    http_common::empty(nsqd.now_ns())
}

/// `{"message":"<TEXT>"}` with `status`, as Go's V1 API errors.
pub(super) fn error(nsqd: &NsqdInner, status: StatusCode, text: &str) -> HttpResponse {
    http_common::error(nsqd.now_ns(), status, text)
}

pub(super) fn json<T: serde::Serialize>(
    nsqd: &NsqdInner,
    status: StatusCode,
    body: &T,
) -> HttpResponse {
    http_common::json(nsqd.now_ns(), status, body)
}

/// A V1 JSON answer whose body is already encoded (values Go's encoder writes in ways
/// serde's does not, such as `/config`'s).
pub(super) fn json_bytes(nsqd: &NsqdInner, status: StatusCode, bytes: Vec<u8>) -> HttpResponse {
    http_common::json_bytes(nsqd.now_ns(), status, bytes)
}

pub(super) fn plain(nsqd: &NsqdInner, status: StatusCode, text: &str, v1: bool) -> HttpResponse {
    http_common::plain(nsqd.now_ns(), status, text, v1)
}

/// Go's answer on plain HTTP under `--tls-required=true`: 403 with the HTTPS port, the
/// body written by hand (spaces and all) as Go's `ServeHTTP` writes it.
pub(super) fn tls_required(nsqd: &NsqdInner) -> HttpResponse {
    let port = nsqd.https_addr.map_or(0, |a| a.port());
    let body = format!(r#"{{"message": "TLS_REQUIRED", "https_port": {port}}}"#);
    http_common::json_bytes(nsqd.now_ns(), StatusCode::FORBIDDEN, body.into_bytes())
}
