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

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::NsqdInner;
use crate::env::Listener;
use admin::{ChannelOp, TopicOp};
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
        let mut methods: Vec<&str> = self.methods.iter().map(|(m, _)| *m).collect();
        methods.push("OPTIONS");
        methods.sort_unstable();
        methods.join(", ")
    }
}

/// Query parameters as Go's `url.ParseQuery` reads them.
#[derive(Debug, Default)]
pub(super) struct Query {
    /// Each key's first value (Go's `Get`).
    pub(super) params: BTreeMap<String, String>,
    /// Go's parse would fail (a `;` in a pair or a bad `%` escape); the admin endpoints
    /// then answer INVALID_REQUEST.
    pub(super) malformed: bool,
}

async fn route(nsqd: &NsqdInner, request: Request<Incoming>) -> HttpResponse {
    let path = request.uri().path().to_string();
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
    let query = parse_query(request.uri().query().unwrap_or(""));
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

/// Parses a query string; the first value of a repeated key wins, as Go's `Get` does.
fn parse_query(query: &str) -> Query {
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

    #[test]
    fn malformed_queries_are_those_go_refuses() {
        for good in ["", "topic=t", "a=%41&b=+", "&&x", "k"] {
            assert!(!parse_query(good).malformed, "{good}");
        }
        for bad in ["topic=t;x", "a=%4", "a=%zz", "%=1"] {
            assert!(parse_query(bad).malformed, "{bad}");
        }
        assert_eq!(parse_query("topic=a&topic=b").params["topic"], "a");
    }
}
