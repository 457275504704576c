//! nsqlookupd's HTTP API (nsq-reference §5.3) with Go's shapes, statuses and messages.
//! Routing, 404 and 405 work as in nsqd; `/debug/pprof/*` is unknown here (404), as in
//! nsqd, because pprof describes the Go runtime.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;

use super::registry::{filter_active, Category, PeerInfo, Registration};
use super::LookupdInner;
use crate::env::Listener;
use crate::http_common::{self, parse_query, HttpResponse, Query};
use crate::protocol::names::{is_valid_channel_name, is_valid_topic_name};

/// Serves HTTP until shutdown.
pub(crate) async fn serve(lookupd: Arc<LookupdInner>, listener: Box<dyn Listener>) {
    let shutdown = lookupd.shutdown.clone();
    let tasks = lookupd.tasks.clone();
    http_common::serve(listener, shutdown, tasks, None, move |request| {
        let lookupd = lookupd.clone();
        async move { route(&lookupd, request) }
    })
    .await
}

/// What a route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Ping,
    Info,
    Debug,
    Lookup,
    Topics,
    Channels,
    Nodes,
    TopicCreate,
    TopicDelete,
    ChannelCreate,
    ChannelDelete,
    TopicTombstone,
}

/// Go nsqlookupd v1.3.0's routes (but for pprof): path, method, endpoint.
const ROUTES: &[(&str, &str, Endpoint)] = &[
    ("/ping", "GET", Endpoint::Ping),
    ("/info", "GET", Endpoint::Info),
    ("/debug", "GET", Endpoint::Debug),
    ("/lookup", "GET", Endpoint::Lookup),
    ("/topics", "GET", Endpoint::Topics),
    ("/channels", "GET", Endpoint::Channels),
    ("/nodes", "GET", Endpoint::Nodes),
    ("/topic/create", "POST", Endpoint::TopicCreate),
    ("/topic/delete", "POST", Endpoint::TopicDelete),
    ("/channel/create", "POST", Endpoint::ChannelCreate),
    ("/channel/delete", "POST", Endpoint::ChannelDelete),
    ("/topic/tombstone", "POST", Endpoint::TopicTombstone),
];

/// A V1 error answer: status and message.
type Refusal = (StatusCode, &'static str);

fn route(lookupd: &LookupdInner, request: Request<Incoming>) -> HttpResponse {
    let now_ns = lookupd.now_ns();
    let (path, query) = crate::http_front::path_and_query(&request);
    let query = parse_query(query);
    let Some(&(_, method, endpoint)) = ROUTES.iter().find(|(p, _, _)| *p == path) else {
        return http_common::error(now_ns, StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    if request.method().as_str() != method {
        let allow = http_common::allow_header(&[method]);
        if request.method() == Method::OPTIONS {
            return http_common::options(now_ns, &allow);
        }
        return http_common::method_not_allowed(now_ns, &allow);
    }
    let answer = match endpoint {
        Endpoint::Ping => return http_common::plain(now_ns, StatusCode::OK, "OK", false),
        Endpoint::Info => Ok(Answer::json(&serde_json::json!({
            "version": super::options::VERSION
        }))),
        Endpoint::Debug => Ok(debug(lookupd)),
        Endpoint::Topics => Ok(topics(lookupd)),
        Endpoint::Nodes => Ok(nodes(lookupd, now_ns)),
        Endpoint::Lookup => checked(&query).and_then(|q| lookup(lookupd, q, now_ns)),
        Endpoint::Channels => checked(&query).and_then(|q| channels(lookupd, q)),
        Endpoint::TopicCreate => checked(&query).and_then(|q| topic_create(lookupd, q)),
        Endpoint::TopicDelete => checked(&query).and_then(|q| topic_delete(lookupd, q)),
        Endpoint::ChannelCreate => checked(&query).and_then(|q| channel_create(lookupd, q)),
        Endpoint::ChannelDelete => checked(&query).and_then(|q| channel_delete(lookupd, q)),
        Endpoint::TopicTombstone => checked(&query).and_then(|q| tombstone(lookupd, q, now_ns)),
    };
    match answer {
        Ok(Answer::Empty) => http_common::empty(now_ns),
        Ok(Answer::Json(bytes)) => http_common::json_bytes(now_ns, StatusCode::OK, bytes),
        Err((status, message)) => http_common::error(now_ns, status, message),
    }
}

/// A successful answer.
enum Answer {
    /// 200 with no body.
    Empty,
    /// 200 with this JSON.
    Json(Vec<u8>),
}

impl Answer {
    fn json<T: Serialize>(body: &T) -> Answer {
        Answer::Json(serde_json::to_vec(body).unwrap_or_default())
    }
}

/// Go's `NewReqParams`: a query Go cannot parse is 400 INVALID_REQUEST.
fn checked(query: &Query) -> Result<&Query, Refusal> {
    if query.malformed {
        return Err((StatusCode::BAD_REQUEST, "INVALID_REQUEST"));
    }
    Ok(query)
}

fn required_topic(query: &Query) -> Result<&str, Refusal> {
    query
        .get("topic")
        .ok_or((StatusCode::BAD_REQUEST, "MISSING_ARG_TOPIC"))
}

/// Go's `GetTopicChannelArgs`: both present and valid.
fn topic_channel_args(query: &Query) -> Result<(&str, &str), Refusal> {
    let topic = required_topic(query)?;
    if !is_valid_topic_name(topic) {
        return Err((StatusCode::BAD_REQUEST, "INVALID_ARG_TOPIC"));
    }
    let channel = query
        .get("channel")
        .ok_or((StatusCode::BAD_REQUEST, "MISSING_ARG_CHANNEL"))?;
    if !is_valid_channel_name(channel) {
        return Err((StatusCode::BAD_REQUEST, "INVALID_ARG_CHANNEL"));
    }
    Ok((topic, channel))
}

fn channel_names(lookupd: &LookupdInner, topic: &str) -> Vec<String> {
    lookupd
        .db
        .find_registrations(Category::Channel, topic, "*")
        .into_iter()
        .map(|r| r.sub_key)
        .collect()
}

fn lookup(lookupd: &LookupdInner, query: &Query, now_ns: i64) -> Result<Answer, Refusal> {
    let topic = required_topic(query)?;
    if lookupd
        .db
        .find_registrations(Category::Topic, topic, "")
        .is_empty()
    {
        return Err((StatusCode::NOT_FOUND, "TOPIC_NOT_FOUND"));
    }
    let producers = filter_active(
        lookupd.db.find_producers(Category::Topic, topic, ""),
        now_ns,
        lookupd.opts.inactive_producer_timeout,
        lookupd.opts.tombstone_lifetime,
    );
    #[derive(Serialize)]
    struct Lookup<'a> {
        channels: Vec<String>,
        producers: Vec<&'a PeerInfo>,
    }
    Ok(Answer::json(&Lookup {
        channels: channel_names(lookupd, topic),
        producers: producers.iter().map(|p| &*p.peer).collect(),
    }))
}

fn topics(lookupd: &LookupdInner) -> Answer {
    let topics: Vec<String> = lookupd
        .db
        .find_registrations(Category::Topic, "*", "")
        .into_iter()
        .map(|r| r.key)
        .collect();
    Answer::json(&serde_json::json!({ "topics": topics }))
}

fn channels(lookupd: &LookupdInner, query: &Query) -> Result<Answer, Refusal> {
    let topic = required_topic(query)?;
    Ok(Answer::json(
        &serde_json::json!({ "channels": channel_names(lookupd, topic) }),
    ))
}

/// One `/nodes` entry.
#[derive(Serialize)]
struct Node<'a> {
    #[serde(flatten)]
    peer: &'a PeerInfo,
    tombstones: Vec<bool>,
    topics: Vec<String>,
}

fn nodes(lookupd: &LookupdInner, now_ns: i64) -> Answer {
    let opts = &lookupd.opts;
    let clients = filter_active(
        lookupd.db.find_producers(Category::Client, "", ""),
        now_ns,
        opts.inactive_producer_timeout,
        std::time::Duration::ZERO,
    );
    let nodes: Vec<Node<'_>> = clients
        .iter()
        .map(|client| {
            let topics: Vec<String> = lookupd
                .db
                .lookup_registrations(&client.peer.id)
                .into_iter()
                .filter(|r| r.category == Category::Topic)
                .map(|r| r.key)
                .collect();
            let tombstones = topics
                .iter()
                .map(|topic| {
                    lookupd
                        .db
                        .find_producers(Category::Topic, topic, "")
                        .iter()
                        .any(|p| {
                            Arc::ptr_eq(&p.peer, &client.peer)
                                && p.is_tombstoned(now_ns, opts.tombstone_lifetime)
                        })
                })
                .collect();
            Node {
                peer: &client.peer,
                tombstones,
                topics,
            }
        })
        .collect();
    #[derive(Serialize)]
    struct Nodes<'a> {
        producers: Vec<Node<'a>>,
    }
    Answer::json(&Nodes { producers: nodes })
}

fn topic_create(lookupd: &LookupdInner, query: &Query) -> Result<Answer, Refusal> {
    let topic = required_topic(query)?;
    if !is_valid_topic_name(topic) {
        return Err((StatusCode::BAD_REQUEST, "INVALID_ARG_TOPIC"));
    }
    tracing::info!(%topic, "DB: adding topic");
    lookupd.db.add_registration(Registration::topic(topic));
    Ok(Answer::Empty)
}

fn topic_delete(lookupd: &LookupdInner, query: &Query) -> Result<Answer, Refusal> {
    let topic = required_topic(query)?;
    let db = &lookupd.db;
    for key in db.find_registrations(Category::Channel, topic, "*") {
        tracing::info!(%topic, channel = %key.sub_key, "DB: removing channel");
        db.remove_registration(&key);
    }
    for key in db.find_registrations(Category::Topic, topic, "") {
        tracing::info!(%topic, "DB: removing topic");
        db.remove_registration(&key);
    }
    Ok(Answer::Empty)
}

fn channel_create(lookupd: &LookupdInner, query: &Query) -> Result<Answer, Refusal> {
    let (topic, channel) = topic_channel_args(query)?;
    tracing::info!(%topic, %channel, "DB: adding channel");
    lookupd
        .db
        .add_registration(Registration::channel(topic, channel));
    lookupd.db.add_registration(Registration::topic(topic));
    Ok(Answer::Empty)
}

fn channel_delete(lookupd: &LookupdInner, query: &Query) -> Result<Answer, Refusal> {
    let (topic, channel) = topic_channel_args(query)?;
    let found = lookupd
        .db
        .find_registrations(Category::Channel, topic, channel);
    if found.is_empty() {
        return Err((StatusCode::NOT_FOUND, "CHANNEL_NOT_FOUND"));
    }
    tracing::info!(%topic, %channel, "DB: removing channel");
    for key in found {
        lookupd.db.remove_registration(&key);
    }
    Ok(Answer::Empty)
}

fn tombstone(lookupd: &LookupdInner, query: &Query, now_ns: i64) -> Result<Answer, Refusal> {
    let topic = required_topic(query)?;
    let node = query
        .get("node")
        .ok_or((StatusCode::BAD_REQUEST, "MISSING_ARG_NODE"))?;
    tracing::info!(%topic, %node, "DB: setting tombstone");
    lookupd.db.tombstone(topic, node, now_ns);
    Ok(Answer::Empty)
}

/// Go's zero `time.Time` as Unix nanoseconds: a never-tombstoned producer's
/// `tombstoned_at` in `/debug`.
const GO_ZERO_TIME_UNIX_NS: i64 = -6_795_364_578_871_345_152;

/// One `/debug` entry; fields in Go's map order (sorted).
#[derive(Serialize)]
struct DebugProducer<'a> {
    broadcast_address: &'a str,
    hostname: &'a str,
    http_port: i64,
    id: &'a str,
    last_update: i64,
    tcp_port: i64,
    tombstoned: bool,
    tombstoned_at: i64,
    version: &'a str,
}

fn debug(lookupd: &LookupdInner) -> Answer {
    let snapshot = lookupd.db.snapshot();
    let mut out = std::collections::BTreeMap::new();
    for (registration, producers) in &snapshot {
        let entries: Vec<DebugProducer<'_>> = producers
            .iter()
            .map(|p| DebugProducer {
                broadcast_address: &p.peer.broadcast_address,
                hostname: &p.peer.hostname,
                http_port: p.peer.http_port,
                id: &p.peer.id,
                last_update: p.peer.last_update_ns(),
                tcp_port: p.peer.tcp_port,
                tombstoned: p.tombstoned_at_ns.is_some(),
                tombstoned_at: p.tombstoned_at_ns.unwrap_or(GO_ZERO_TIME_UNIX_NS),
                version: &p.peer.version,
            })
            .collect();
        out.insert(registration.debug_key(), entries);
    }
    Answer::json(&out)
}
