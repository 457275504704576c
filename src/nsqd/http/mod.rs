//! The HTTP API, with Go's statuses, bodies and headers (nsq-reference §2).
//!
//! # Layout
//! - this file: the listener, one hyper connection per client, and the route table.
//! - `respond`: Go's V1 response conventions (JSON, plain text, errors, headers).
//! - `body`: bounded request-body reading.
//! - `status`: `/info` and `/stats`.
//! - `publish`: `/pub` and `/mpub`.
//! - `metrics`: `/metrics` in the Prometheus text format (beyond Go).

mod body;
mod metrics;
mod publish;
mod respond;
mod status;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::NsqdInner;
use crate::env::Listener;
use respond::{error, method_not_allowed, plain, HttpResponse};

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
        "/info" if get_only(&method) => status::info(nsqd),
        "/stats" if get_only(&method) => status::stats(nsqd, &query),
        "/pub" if post_only(&method) => publish::publish(nsqd, &query, request).await,
        "/mpub" if post_only(&method) => publish::multi_publish(nsqd, &query, request).await,
        "/metrics" if get_only(&method) => metrics::metrics(nsqd),
        "/ping" | "/info" | "/stats" | "/metrics" => method_not_allowed(nsqd, "GET, OPTIONS"),
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
