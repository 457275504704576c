//! What nsqd's and nsqlookupd's HTTP APIs share: the accept loop (one hyper connection per
//! client behind [`crate::http_front`], Go's header spelling), Go's V1 response conventions (nsq-reference §2.1) and
//! query strings as Go's `url.ParseQuery` reads them.
//!
//! Every response carries a `Date` header computed from the caller's clock (`now_ns`), so
//! simulated runs stay deterministic.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::ext::ReasonPhrase;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, DATE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;

use crate::env::Listener;
use crate::http_front::{HttpFront, LongTargets, MAX_HEAD_BYTES};

/// Every handler's answer.
pub type HttpResponse = Response<Full<Bytes>>;

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const V1_HEADER: &str = "X-Nsq-Content-Type";
const V1_VALUE: &str = "nsq; version=1.0";

/// How long an open HTTP exchange may take to finish once the daemon is exiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves HTTP on `listener` until `shutdown`, each connection a task on `tasks`, each
/// request answered by `handler`. With `tls`, each connection first completes a TLS
/// handshake (HTTPS); one that fails or stalls is dropped.
pub async fn serve<H, F>(
    listener: Box<dyn Listener>,
    shutdown: CancellationToken,
    tasks: crate::env::Tasks,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
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
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            let stream = match tls {
                Some(config) => match crate::nsqd::tls::accept(config, stream).await {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::debug!(%error, "HTTPS handshake failed");
                        return;
                    }
                },
                None => stream,
            };
            let long_targets = Arc::new(LongTargets::default());
            let stream = HttpFront::new(stream, long_targets.clone());
            let service = hyper::service::service_fn(move |mut request| {
                long_targets.restore(&mut request);
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                // Go takes heads up to this size; the front refuses bigger ones first.
                .max_buf_size(MAX_HEAD_BYTES + 64 * 1024)
                // Go writes header names in canonical form (`X-Nsq-Content-Type`).
                .title_case_headers(true)
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

/// Go's 405: `Allow` first, then the V1 error.
pub fn method_not_allowed(now_ns: i64, allow: &str) -> HttpResponse {
    let mut response = error(now_ns, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
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
pub fn options(now_ns: i64, allow: &str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(ALLOW, allow_value(allow));
    headers.insert(DATE, date_header(now_ns));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    response
}

fn allow_value(allow: &str) -> HeaderValue {
    HeaderValue::from_str(allow).unwrap_or(HeaderValue::from_static("OPTIONS"))
}

/// Go's V1 answer to a handler that returns nothing: 200, an empty body, no Content-Type.
pub fn empty(now_ns: i64) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(V1_HEADER, HeaderValue::from_static(V1_VALUE));
    headers.insert(DATE, date_header(now_ns));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// `{"message":"<TEXT>"}` with `status`, as Go's V1 API errors.
pub fn error(now_ns: i64, status: StatusCode, text: &str) -> HttpResponse {
    json(now_ns, status, &serde_json::json!({ "message": text }))
}

/// A V1 JSON answer.
pub fn json<T: serde::Serialize>(now_ns: i64, status: StatusCode, body: &T) -> HttpResponse {
    json_bytes(now_ns, status, serde_json::to_vec(body).unwrap_or_default())
}

/// A V1 JSON answer whose body is already encoded (values Go's encoder writes in ways
/// serde's does not, such as `/config`'s).
pub fn json_bytes(now_ns: i64, status: StatusCode, bytes: Vec<u8>) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    set_status(&mut response, status);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    headers.insert(V1_HEADER, HeaderValue::from_static(V1_VALUE));
    headers.insert(DATE, date_header(now_ns));
    response
}

/// A plain-text answer; `v1` adds the V1 header (`/ping` has none).
pub fn plain(now_ns: i64, status: StatusCode, text: &str, v1: bool) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    set_status(&mut response, status);
    let headers = response.headers_mut();
    if v1 {
        headers.insert(V1_HEADER, HeaderValue::from_static(V1_VALUE));
    }
    headers.insert(DATE, date_header(now_ns));
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

/// The `Date` header for the wall time `now_ns`.
fn date_header(now_ns: i64) -> HeaderValue {
    let ns = now_ns.max(0) as u64;
    let time = std::time::UNIX_EPOCH + Duration::from_nanos(ns);
    HeaderValue::from_str(&httpdate::fmt_http_date(time)).unwrap_or(HeaderValue::from_static(""))
}

/// httprouter's `Allow` for a route answering `methods`: them and OPTIONS, sorted.
pub fn allow_header(methods: &[&str]) -> String {
    let mut all: Vec<&str> = methods.to_vec();
    all.push("OPTIONS");
    all.sort_unstable();
    all.dedup();
    all.join(", ")
}

/// Query parameters as Go's `url.ParseQuery` reads them.
#[derive(Debug, Default)]
pub struct Query {
    /// Each key's first value (Go's `Get`).
    pub params: BTreeMap<String, String>,
    /// Go's parse would fail (a `;` in a pair or a bad `%` escape); the V1 endpoints
    /// then answer INVALID_REQUEST.
    pub malformed: bool,
}

impl Query {
    /// The first value of `key`, if present (an empty value counts as present, as Go's
    /// `ReqParams.Get`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

/// Parses a query string; the first value of a repeated key wins, as Go's `Get` does.
pub fn parse_query(query: &str) -> Query {
    let mut params = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        params
            .entry(key.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    Query {
        params,
        malformed: !go_parses_query(query),
    }
}

/// Whether Go's `url.ParseQuery` accepts `query`: no `;` inside a pair and every `%`
/// followed by two hex digits.
fn go_parses_query(query: &str) -> bool {
    query.split('&').all(|pair| {
        if pair.contains(';') {
            return false;
        }
        let bytes = pair.as_bytes();
        bytes.iter().enumerate().all(|(i, b)| {
            *b != b'%'
                || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_queries_are_those_go_refuses() {
        for good in ["", "topic=t", "a=%41&b=+", "&&x", "k"] {
            assert!(!parse_query(good).malformed, "{good}");
        }
        for bad in ["topic=t;x", "a=%4", "a=%zz", "%=1"] {
            assert!(parse_query(bad).malformed, "{bad}");
        }
        assert_eq!(parse_query("topic=a&topic=b").params["topic"], "a");
        assert_eq!(parse_query("topic=").get("topic"), Some(""));
    }

    #[test]
    fn allow_lists_the_methods_and_options_sorted() {
        assert_eq!(allow_header(&["GET"]), "GET, OPTIONS");
        assert_eq!(allow_header(&["POST"]), "OPTIONS, POST");
        assert_eq!(allow_header(&["PUT", "GET"]), "GET, OPTIONS, PUT");
    }
}
