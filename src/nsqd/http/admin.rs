//! `/topic/{create,delete,empty,pause,unpause}` and `/channel/{create,delete,empty,pause,
//! unpause}`, with Go's order of checks and Go's error names per endpoint.
//!
//! Go's quirks kept on purpose: `/topic/delete`, `/topic/pause` and `/topic/unpause` look
//! the name up without validating it (a bad name is 404 TOPIC_NOT_FOUND), while
//! `/topic/create` and `/topic/empty` validate it (400 INVALID_TOPIC); the channel
//! endpoints name their errors INVALID_ARG_TOPIC / INVALID_ARG_CHANNEL and need an
//! existing topic, even `/channel/create`. The request body is read and ignored.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::body::discard_body;
use super::publish::topic_param;
use super::respond::{empty, error, HttpResponse};
use super::Query;
use crate::nsqd::topic::TopicRef;
use crate::nsqd::NsqdInner;
use crate::protocol::names;

/// What a `/topic/...` call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TopicOp {
    Create,
    Delete,
    Empty,
    Pause,
    Unpause,
}

/// What a `/channel/...` call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChannelOp {
    Create,
    Delete,
    Empty,
    Pause,
    Unpause,
}

/// A refusal: status and Go's text.
type Refusal = (StatusCode, &'static str);

const INVALID_REQUEST: Refusal = (StatusCode::BAD_REQUEST, "INVALID_REQUEST");
const TOPIC_NOT_FOUND: Refusal = (StatusCode::NOT_FOUND, "TOPIC_NOT_FOUND");
const CHANNEL_NOT_FOUND: Refusal = (StatusCode::NOT_FOUND, "CHANNEL_NOT_FOUND");
const INTERNAL_ERROR: Refusal = (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR");

pub(super) async fn topic(
    nsqd: &NsqdInner,
    op: TopicOp,
    query: &Query,
    request: Request<Incoming>,
) -> HttpResponse {
    match topic_op(nsqd, op, query, request).await {
        Ok(()) => empty(nsqd),
        Err((status, text)) => error(nsqd, status, text),
    }
}

async fn topic_op(
    nsqd: &NsqdInner,
    op: TopicOp,
    query: &Query,
    request: Request<Incoming>,
) -> Result<(), Refusal> {
    if query.malformed {
        return Err(INVALID_REQUEST);
    }
    // Go's /topic/create parses only the query; the others read the body too.
    if op != TopicOp::Create {
        read_and_ignore_body(nsqd, request).await?;
    }
    match op {
        TopicOp::Create => {
            let name = topic_param(&query.params).map_err(bad_request)?;
            nsqd.topic(name).await;
        }
        TopicOp::Delete => {
            let name = raw_topic_param(query)?;
            if !nsqd.delete_topic(name) {
                return Err(TOPIC_NOT_FOUND);
            }
            nsqd.persist_metadata().await;
        }
        TopicOp::Empty => {
            let name = topic_param(&query.params).map_err(bad_request)?;
            let topic = nsqd.existing_topic(name).ok_or(TOPIC_NOT_FOUND)?;
            topic.empty();
            if let Some(backend) = topic.backend() {
                let emptied = backend.empty().await;
                nsqd.note_disk_write(&emptied);
                emptied.map_err(|_| INTERNAL_ERROR)?;
            }
        }
        TopicOp::Pause | TopicOp::Unpause => {
            let name = raw_topic_param(query)?;
            let topic = nsqd.existing_topic(name).ok_or(TOPIC_NOT_FOUND)?;
            topic.set_paused(op == TopicOp::Pause, nsqd.now_ns());
            tracing::info!(topic = %name, paused = op == TopicOp::Pause, "topic pause changed");
            nsqd.persist_metadata().await;
        }
    }
    Ok(())
}

pub(super) async fn channel(
    nsqd: &NsqdInner,
    op: ChannelOp,
    query: &Query,
    request: Request<Incoming>,
) -> HttpResponse {
    match channel_op(nsqd, op, query, request).await {
        Ok(()) => empty(nsqd),
        Err((status, text)) => error(nsqd, status, text),
    }
}

async fn channel_op(
    nsqd: &NsqdInner,
    op: ChannelOp,
    query: &Query,
    request: Request<Incoming>,
) -> Result<(), Refusal> {
    if query.malformed {
        return Err(INVALID_REQUEST);
    }
    read_and_ignore_body(nsqd, request).await?;
    let (topic, channel_name) = existing_topic_and_channel_name(nsqd, query)?;
    match op {
        ChannelOp::Create => {
            topic
                .get_or_create_channel(channel_name, nsqd.now_ns())
                .map_err(|_| TOPIC_NOT_FOUND)?;
        }
        ChannelOp::Delete => {
            if !nsqd.delete_channel(&topic, channel_name) {
                return Err(CHANNEL_NOT_FOUND);
            }
        }
        ChannelOp::Empty => {
            let channel = topic.channel(channel_name).ok_or(CHANNEL_NOT_FOUND)?;
            channel.empty();
            if let Some(backend) = channel.backend() {
                let emptied = backend.empty().await;
                nsqd.note_disk_write(&emptied);
                emptied.map_err(|_| INTERNAL_ERROR)?;
            }
        }
        ChannelOp::Pause | ChannelOp::Unpause => {
            let channel = topic.channel(channel_name).ok_or(CHANNEL_NOT_FOUND)?;
            channel.set_paused(op == ChannelOp::Pause);
            tracing::info!(topic = %topic.name, channel = %channel_name, paused = op == ChannelOp::Pause, "channel pause changed");
            nsqd.persist_metadata().await;
        }
    }
    Ok(())
}

/// Go's `getExistingTopicFromQuery`: both names present and valid, then the topic must
/// exist.
fn existing_topic_and_channel_name<'q>(
    nsqd: &NsqdInner,
    query: &'q Query,
) -> Result<(TopicRef, &'q str), Refusal> {
    let params = &query.params;
    let topic_name = params
        .get("topic")
        .ok_or((StatusCode::BAD_REQUEST, "MISSING_ARG_TOPIC"))?;
    if !names::is_valid_topic_name(topic_name) {
        return Err((StatusCode::BAD_REQUEST, "INVALID_ARG_TOPIC"));
    }
    let channel_name = params
        .get("channel")
        .ok_or((StatusCode::BAD_REQUEST, "MISSING_ARG_CHANNEL"))?;
    if !names::is_valid_channel_name(channel_name) {
        return Err((StatusCode::BAD_REQUEST, "INVALID_ARG_CHANNEL"));
    }
    let topic = nsqd.existing_topic(topic_name).ok_or(TOPIC_NOT_FOUND)?;
    Ok((topic, channel_name))
}

/// The `topic` parameter as given, not validated (the endpoints that only look it up).
fn raw_topic_param(query: &Query) -> Result<&str, Refusal> {
    query
        .params
        .get("topic")
        .map(String::as_str)
        .ok_or((StatusCode::BAD_REQUEST, "MISSING_ARG_TOPIC"))
}

fn bad_request(text: &'static str) -> Refusal {
    (StatusCode::BAD_REQUEST, text)
}

/// Go reads the whole body with the query (`NewReqParams`) and fails the request with
/// INVALID_REQUEST when that read fails; we read at most `--max-body-size` of it.
async fn read_and_ignore_body(nsqd: &NsqdInner, request: Request<Incoming>) -> Result<(), Refusal> {
    let limit = usize::try_from(nsqd.opts.max_body_size).unwrap_or(usize::MAX);
    discard_body(request, limit)
        .await
        .map_err(|()| INVALID_REQUEST)
}
