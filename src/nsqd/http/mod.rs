//! The HTTP API, with Go's statuses, bodies and headers (nsq-reference §2).
//!
//! # Layout
//! - this file: the listener, one hyper connection per client, and the route table.
//! - `respond`: Go's V1 response conventions (JSON, plain text, errors, headers).
//! - `body`: bounded request-body reading.
//! - `status`: `/info` and `/stats`.
//! - `publish`: `/pub` and `/mpub`.
//! - `metrics`: `/metrics` in the Prometheus text format (beyond Go).
//! - `admin`: topic and channel create, delete, empty, pause and unpause.
//! - `config`: `GET`/`PUT /config/:opt`.
//! - `debug`: `/debug/setblockrate` and `/debug/freememory`.

mod admin;
mod body;
mod config;
mod debug;
mod metrics;
mod publish;
mod respond;
mod status;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::NsqdInner;
use crate::env::Listener;
use admin::{ChannelOp, TopicOp};
use respond::{error, method_not_allowed, plain, HttpResponse};

/// Serves HTTP until shutdown.
pub(crate) async fn serve(nsqd: Arc<NsqdInner>, listener: Box<dyn Listener>) {
    let shutdown = nsqd.shutdown.clone();
    let tasks = nsqd.tasks.clone();
    // `--tls-required=true` (not `tcp-https`) closes plain HTTP: every request gets 403.
    let refuse_plain = nsqd.opts.tls_required == TLS_REQUIRED_EVERYWHERE;
    crate::http_common::serve(listener, shutdown, tasks, None, move |request| {
        let nsqd = nsqd.clone();
        async move {
            if refuse_plain {
                return respond::tls_required(&nsqd);
            }
            route(&nsqd, request).await
        }
    })
    .await
}

/// `--tls-required=true`: Go's `TLSRequired` (2); `tcp-https` is 1.
const TLS_REQUIRED_EVERYWHERE: i64 = 2;

/// Serves the same API over TLS on `--https-address`.
pub(crate) async fn serve_https(
    nsqd: Arc<NsqdInner>,
    listener: Box<dyn Listener>,
    tls: Arc<rustls::ServerConfig>,
) {
    let shutdown = nsqd.shutdown.clone();
    let tasks = nsqd.tasks.clone();
    crate::http_common::serve(listener, shutdown, tasks, Some(tls), move |request| {
        let nsqd = nsqd.clone();
        async move { route(&nsqd, request).await }
    })
    .await
}

/// What a route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Ping,
    Info,
    Stats,
    Pub,
    Mpub,
    Topic(TopicOp),
    Channel(ChannelOp),
    Config,
    SetBlockRate,
    FreeMemory,
    Metrics,
}

/// One path of Go's route table and the methods it answers.
struct Route {
    /// The path; `/config/:opt` ends in a parameter that is one non-empty segment.
    path: &'static str,
    methods: &'static [(&'static str, Endpoint)],
}

/// Go nsqd v1.3.0's routes (its httprouter table), but for `/debug/pprof/*`: pprof
/// profiles the Go runtime and nothing in a Rust process answers it, so those paths
/// are unknown here (404 NOT_FOUND), as is every path not listed.
const ROUTES: &[Route] = &[
    path("/ping", &[("GET", Endpoint::Ping)]),
    path("/info", &[("GET", Endpoint::Info)]),
    path("/pub", &[("POST", Endpoint::Pub)]),
    path("/mpub", &[("POST", Endpoint::Mpub)]),
    path("/stats", &[("GET", Endpoint::Stats)]),
    path("/metrics", &[("GET", Endpoint::Metrics)]),
    path(
        "/topic/create",
        &[("POST", Endpoint::Topic(TopicOp::Create))],
    ),
    path(
        "/topic/delete",
        &[("POST", Endpoint::Topic(TopicOp::Delete))],
    ),
    path("/topic/empty", &[("POST", Endpoint::Topic(TopicOp::Empty))]),
    path("/topic/pause", &[("POST", Endpoint::Topic(TopicOp::Pause))]),
    path(
        "/topic/unpause",
        &[("POST", Endpoint::Topic(TopicOp::Unpause))],
    ),
    path(
        "/channel/create",
        &[("POST", Endpoint::Channel(ChannelOp::Create))],
    ),
    path(
        "/channel/delete",
        &[("POST", Endpoint::Channel(ChannelOp::Delete))],
    ),
    path(
        "/channel/empty",
        &[("POST", Endpoint::Channel(ChannelOp::Empty))],
    ),
    path(
        "/channel/pause",
        &[("POST", Endpoint::Channel(ChannelOp::Pause))],
    ),
    path(
        "/channel/unpause",
        &[("POST", Endpoint::Channel(ChannelOp::Unpause))],
    ),
    path(
        "/config/:opt",
        &[("GET", Endpoint::Config), ("PUT", Endpoint::Config)],
    ),
    path("/debug/setblockrate", &[("PUT", Endpoint::SetBlockRate)]),
    path("/debug/freememory", &[("POST", Endpoint::FreeMemory)]),
];

const fn path(path: &'static str, methods: &'static [(&'static str, Endpoint)]) -> Route {
    Route { path, methods }
}

impl Route {
    /// Whether `path` is this route; for `/config/:opt`, also the parameter.
    fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self.path.strip_suffix(":opt") {
            Some(prefix) => path
                .strip_prefix(prefix)
                .filter(|opt| !opt.is_empty() && !opt.contains('/')),
            None => (self.path == path).then_some(""),
        }
    }

    /// httprouter's `Allow`: the route's methods and OPTIONS, sorted.
    fn allow(&self) -> String {
        let methods: Vec<&str> = self.methods.iter().map(|(m, _)| *m).collect();
        crate::http_common::allow_header(&methods)
    }
}

pub(super) use crate::http_common::{parse_query, Query};

async fn route(nsqd: &NsqdInner, request: Request<Incoming>) -> HttpResponse {
    let (path, query) = crate::http_front::path_and_query(&request);
    let (path, query) = (path.to_string(), parse_query(query));
    let Some((route, param)) = ROUTES
        .iter()
        .find_map(|route| route.matches(&path).map(|param| (route, param)))
    else {
        return error(nsqd, StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    let method = request.method().clone();
    let Some((_, endpoint)) = route.methods.iter().find(|(m, _)| *m == method.as_str()) else {
        if method == Method::OPTIONS {
            return respond::options(nsqd, &route.allow());
        }
        return method_not_allowed(nsqd, &route.allow());
    };
    match *endpoint {
        Endpoint::Ping => match nsqd.health() {
            None => plain(nsqd, StatusCode::OK, "OK", false),
            Some(problem) => plain(nsqd, StatusCode::INTERNAL_SERVER_ERROR, &problem, false),
        },
        Endpoint::Info => status::info(nsqd),
        Endpoint::Stats => status::stats(nsqd, &query.params),
        Endpoint::Metrics => metrics::metrics(nsqd),
        Endpoint::Pub => publish::publish(nsqd, &query.params, request).await,
        Endpoint::Mpub => publish::multi_publish(nsqd, &query.params, request).await,
        Endpoint::Topic(op) => admin::topic(nsqd, op, &query, request).await,
        Endpoint::Channel(op) => admin::channel(nsqd, op, &query, request).await,
        Endpoint::Config => config::config(nsqd, param, request).await,
        Endpoint::SetBlockRate => debug::set_block_rate(nsqd, &query),
        Endpoint::FreeMemory => debug::free_memory(nsqd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(path: &str) -> Option<(&'static Route, &str)> {
        ROUTES
            .iter()
            .find_map(|route| route.matches(path).map(|param| (route, param)))
    }

    #[test]
    fn allow_lists_the_methods_and_options_sorted() {
        assert_eq!(find("/ping").unwrap().0.allow(), "GET, OPTIONS");
        assert_eq!(find("/topic/pause").unwrap().0.allow(), "OPTIONS, POST");
        assert_eq!(find("/config/x").unwrap().0.allow(), "GET, OPTIONS, PUT");
        assert_eq!(
            find("/debug/setblockrate").unwrap().0.allow(),
            "OPTIONS, PUT"
        );
    }

    #[test]
    fn config_takes_one_non_empty_segment() {
        assert_eq!(find("/config/log_level").unwrap().1, "log_level");
        for path in [
            "/config/",
            "/config",
            "/config/a/b",
            "/debug/pprof/",
            "/ping/",
        ] {
            assert!(find(path).is_none(), "{path}");
        }
    }
}
