//! The admin HTTP API (topic and channel create, delete, empty, pause and unpause),
//! `/config`, the route table (404, 405 with `Allow`, OPTIONS) and the debug endpoints:
//! Go's answers replayed byte for byte from golden/http-nsqd.txt, then what each
//! operation does to topics, channels, messages and clients.

use serde_json::Value;

use crate::support::*;
use nsq::nsqd::Options;

/// Sections "Topic operations" to "Unknown paths and methods" of
/// shared/golden/http-nsqd.txt, verbatim but for the `Date` and `Connection` lines (the
/// date varies; `Connection: close` answers the request's) and blank lines. The
/// exchanges build on each other and run in order against one fresh nsqd.
const GOLDEN: &str = r##"
## Topic operations
# Bodies are empty for every POST below; all parameters are in the query string.
> POST /topic/create?topic=ops HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /topic/create?topic=ops HTTP/1.1    # again (already exists): still 200
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /topic/create HTTP/1.1    # missing topic
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"MISSING_ARG_TOPIC"}'
> POST /topic/create?topic=bad!topic HTTP/1.1    # invalid name
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 27
< body (27 bytes): b'{"message":"INVALID_TOPIC"}'
> POST /topic/pause?topic=ops HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /topic/pause?topic=ops HTTP/1.1    # already paused: still 200
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /topic/pause?topic=nope HTTP/1.1    # unknown topic
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 29
< body (29 bytes): b'{"message":"TOPIC_NOT_FOUND"}'
> POST /topic/pause?topic=bad!topic HTTP/1.1    # invalid name (not validated: looked up)
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 29
< body (29 bytes): b'{"message":"TOPIC_NOT_FOUND"}'
> POST /topic/pause HTTP/1.1    # missing topic
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"MISSING_ARG_TOPIC"}'
> POST /topic/unpause?topic=ops HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /topic/unpause?topic=nope HTTP/1.1    # unknown topic
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 29
< body (29 bytes): b'{"message":"TOPIC_NOT_FOUND"}'
> POST /topic/unpause HTTP/1.1    # missing topic
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"MISSING_ARG_TOPIC"}'
> POST /topic/empty?topic=ops HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /topic/empty?topic=nope HTTP/1.1    # unknown topic
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 29
< body (29 bytes): b'{"message":"TOPIC_NOT_FOUND"}'
> POST /topic/empty?topic=bad!topic HTTP/1.1    # invalid name
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 27
< body (27 bytes): b'{"message":"INVALID_TOPIC"}'
> POST /topic/empty HTTP/1.1    # missing topic
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"MISSING_ARG_TOPIC"}'
## Channel operations
> POST /channel/create?topic=ops&channel=c HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /channel/create?topic=ops&channel=c HTTP/1.1    # again: still 200
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /channel/create?channel=c HTTP/1.1    # missing topic
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"MISSING_ARG_TOPIC"}'
> POST /channel/create?topic=bad!topic&channel=c HTTP/1.1    # invalid topic
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"INVALID_ARG_TOPIC"}'
> POST /channel/create?topic=ops HTTP/1.1    # missing channel
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 33
< body (33 bytes): b'{"message":"MISSING_ARG_CHANNEL"}'
> POST /channel/create?topic=ops&channel=bad!ch HTTP/1.1    # invalid channel
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 33
< body (33 bytes): b'{"message":"INVALID_ARG_CHANNEL"}'
> POST /channel/create?topic=nope&channel=c HTTP/1.1    # topic does not exist
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 29
< body (29 bytes): b'{"message":"TOPIC_NOT_FOUND"}'
> POST /channel/pause?topic=ops&channel=c HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /channel/pause?topic=ops&channel=nope HTTP/1.1    # unknown channel
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"CHANNEL_NOT_FOUND"}'
> POST /channel/pause?topic=nope&channel=c HTTP/1.1    # unknown topic
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 29
< body (29 bytes): b'{"message":"TOPIC_NOT_FOUND"}'
> POST /channel/unpause?topic=ops&channel=c HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /channel/unpause?topic=ops&channel=nope HTTP/1.1    # unknown channel
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"CHANNEL_NOT_FOUND"}'
> POST /channel/empty?topic=ops&channel=c HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /channel/empty?topic=ops&channel=nope HTTP/1.1    # unknown channel
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"CHANNEL_NOT_FOUND"}'
> POST /channel/empty?topic=ops HTTP/1.1    # missing channel
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 33
< body (33 bytes): b'{"message":"MISSING_ARG_CHANNEL"}'
> POST /channel/delete?topic=ops&channel=c HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /channel/delete?topic=ops&channel=c HTTP/1.1    # already deleted
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"CHANNEL_NOT_FOUND"}'
> POST /channel/delete?topic=nope&channel=c HTTP/1.1    # unknown topic
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 29
< body (29 bytes): b'{"message":"TOPIC_NOT_FOUND"}'
> POST /channel/delete?topic=ops HTTP/1.1    # missing channel
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 33
< body (33 bytes): b'{"message":"MISSING_ARG_CHANNEL"}'
## Topic delete
> POST /topic/delete?topic=ops HTTP/1.1    # success
< HTTP/1.1 200 OK
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 0
< body (0 bytes): b''
> POST /topic/delete?topic=ops HTTP/1.1    # already deleted
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 29
< body (29 bytes): b'{"message":"TOPIC_NOT_FOUND"}'
> POST /topic/delete?topic=bad!topic HTTP/1.1    # invalid name (not validated: looked up)
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 29
< body (29 bytes): b'{"message":"TOPIC_NOT_FOUND"}'
> POST /topic/delete HTTP/1.1    # missing topic
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 31
< body (31 bytes): b'{"message":"MISSING_ARG_TOPIC"}'
## GET on the POST-only operations (wrong method)
> GET /topic/create?topic=ops HTTP/1.1
< HTTP/1.1 405 Method Not Allowed
< Allow: OPTIONS, POST
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 32
< body (32 bytes): b'{"message":"METHOD_NOT_ALLOWED"}'
> GET /pub?topic=t HTTP/1.1
< HTTP/1.1 405 Method Not Allowed
< Allow: OPTIONS, POST
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 32
< body (32 bytes): b'{"message":"METHOD_NOT_ALLOWED"}'
## /config
> GET /config/mem_queue_size HTTP/1.1
< HTTP/1.1 200 OK
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 5
< body (5 bytes): b'10000'
> GET /config/nsqlookupd_tcp_addresses HTTP/1.1
< HTTP/1.1 200 OK
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 2
< body (2 bytes): b'[]'
> GET /config/log_level HTTP/1.1
< HTTP/1.1 200 OK
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 1
< body (1 bytes): b'2'
> GET /config/nope HTTP/1.1
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 28
< body (28 bytes): b'{"message":"INVALID_OPTION"}'
> PUT /config/nsqlookupd_tcp_addresses HTTP/1.1   body (8 bytes): b'not json'    # bad body
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 27
< body (27 bytes): b'{"message":"INVALID_VALUE"}'
> PUT /config/nsqlookupd_tcp_addresses HTTP/1.1   body (0 bytes): b''    # empty body
< HTTP/1.1 413 Request Entity Too Large
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 27
< body (27 bytes): b'{"message":"INVALID_VALUE"}'
> PUT /config/nsqlookupd_tcp_addresses HTTP/1.1   body (2 bytes): b'[]'    # valid: empty list
< HTTP/1.1 200 OK
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 2
< body (2 bytes): b'[]'
> PUT /config/log_level HTTP/1.1   body (4 bytes): b'warn'    # log_level is settable
< HTTP/1.1 200 OK
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 1
< body (1 bytes): b'3'
> PUT /config/log_level HTTP/1.1   body (4 bytes): b'loud'    # bad log level
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 27
< body (27 bytes): b'{"message":"INVALID_VALUE"}'
> PUT /config/mem_queue_size HTTP/1.1   body (1 bytes): b'5'    # not settable
< HTTP/1.1 400 Bad Request
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 28
< body (28 bytes): b'{"message":"INVALID_OPTION"}'
> POST /config/mem_queue_size HTTP/1.1   body (1 bytes): b'5'    # POST is not routed
< HTTP/1.1 405 Method Not Allowed
< Allow: GET, OPTIONS, PUT
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 32
< body (32 bytes): b'{"message":"METHOD_NOT_ALLOWED"}'
## Unknown paths and methods
> GET /nope HTTP/1.1    # unknown path
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 23
< body (23 bytes): b'{"message":"NOT_FOUND"}'
> POST /create_topic?topic=x HTTP/1.1    # old unversioned route (removed)
< HTTP/1.1 404 Not Found
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 23
< body (23 bytes): b'{"message":"NOT_FOUND"}'
> POST /ping HTTP/1.1    # wrong method on a GET route
< HTTP/1.1 405 Method Not Allowed
< Allow: GET, OPTIONS
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 32
< body (32 bytes): b'{"message":"METHOD_NOT_ALLOWED"}'
> DELETE /stats HTTP/1.1    # wrong method
< HTTP/1.1 405 Method Not Allowed
< Allow: GET, OPTIONS
< Content-Type: application/json; charset=utf-8
< X-Nsq-Content-Type: nsq; version=1.0
< Content-Length: 32
< body (32 bytes): b'{"message":"METHOD_NOT_ALLOWED"}'
"##;

/// One request and Go's answer, from the transcript.
#[derive(Debug)]
struct Exchange {
    method: String,
    path: String,
    body: Option<Vec<u8>>,
    note: String,
    /// `200 OK`, `405 Method Not Allowed`, ...
    status: String,
    /// `Name: value`, in Go's order, without `Date` and `Connection`.
    headers: Vec<String>,
    response: Vec<u8>,
}

fn parse_transcript(text: &str) -> Vec<Exchange> {
    let mut exchanges: Vec<Exchange> = Vec::new();
    for line in text.lines() {
        if let Some(request) = line.strip_prefix("> ") {
            exchanges.push(parse_request(request));
            continue;
        }
        let Some(answer) = line.strip_prefix("< ") else {
            continue;
        };
        let exchange = exchanges.last_mut().expect("an answer follows a request");
        if let Some(status) = answer.strip_prefix("HTTP/1.1 ") {
            exchange.status = status.to_string();
        } else if let Some(body) = answer.strip_prefix("body (") {
            let literal = body.split_once("): ").expect("body literal").1;
            exchange.response = python_bytes(literal).0;
        } else {
            exchange.headers.push(answer.to_string());
        }
    }
    exchanges
}

/// `METHOD PATH HTTP/1.1[   body (N bytes): b'...'][    # note]`
fn parse_request(line: &str) -> Exchange {
    let (request, rest) = line.split_once(" HTTP/1.1").expect("request line");
    let (method, path) = request.split_once(' ').expect("method and path");
    let mut rest = rest.trim_start();
    let mut body = None;
    if let Some(after) = rest.strip_prefix("body (") {
        let literal = after.split_once("): ").expect("body literal").1;
        let (bytes, used) = python_bytes(literal);
        body = Some(bytes);
        rest = literal[used..].trim_start();
    }
    Exchange {
        method: method.to_string(),
        path: path.to_string(),
        body,
        note: rest.trim_start_matches('#').trim().to_string(),
        status: String::new(),
        headers: Vec::new(),
        response: Vec::new(),
    }
}

/// Decodes the Python bytes literal at the start of `text`; returns it and its length.
fn python_bytes(text: &str) -> (Vec<u8>, usize) {
    let inner = text.strip_prefix("b'").expect("b'...' literal");
    let bytes = inner.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while bytes[i] != b'\'' {
        if bytes[i] == b'\\' {
            i += 1;
            match bytes[i] {
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'x' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("hex byte"));
                    i += 2;
                }
                other => out.push(other),
            }
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    (out, 2 + i + 1)
}

/// Our headers as the transcript shows Go's: `Name: value`, minus `Date`/`Connection`.
fn comparable_headers(response: &HttpResponse) -> Vec<String> {
    response
        .headers
        .iter()
        .filter(|(name, _)| {
            !name.eq_ignore_ascii_case("date") && !name.eq_ignore_ascii_case("connection")
        })
        .map(|(name, value)| format!("{name}: {value}"))
        .collect()
}

#[tokio::test]
async fn admin_config_and_routing_answers_match_golden_byte_for_byte() {
    let exchanges = parse_transcript(GOLDEN);
    assert_eq!(exchanges.len(), 56, "every golden exchange parsed");
    let server = start().await;
    for exchange in &exchanges {
        let what = format!("{} {} ({})", exchange.method, exchange.path, exchange.note);
        let response = server
            .http(&exchange.method, &exchange.path, exchange.body.as_deref())
            .await;
        assert_eq!(
            format!("{} {}", response.status, response.reason),
            exchange.status,
            "{what}"
        );
        assert_eq!(comparable_headers(&response), exchange.headers, "{what}");
        assert_eq!(
            response.text(),
            String::from_utf8_lossy(&exchange.response),
            "{what}"
        );
        assert!(response.header("Date").is_some(), "{what}");
    }
    server.stop().await;
}

/// A V1 `200` with an empty body, as Go's admin endpoints answer success.
fn assert_v1_empty(response: &HttpResponse) {
    assert_eq!(
        (response.status, response.body.len()),
        (200, 0),
        "{response:?}"
    );
    response.assert_header("X-Nsq-Content-Type", "nsq; version=1.0");
    response.assert_header("Content-Length", "0");
    assert_eq!(response.header("Content-Type"), None, "{response:?}");
}

async fn post(server: &Server, path: &str) -> HttpResponse {
    server.http("POST", path, None).await
}

#[tokio::test]
async fn topic_create_makes_a_topic_and_ignores_the_body() {
    let server = start().await;
    let response = server
        .http("POST", "/topic/create?topic=made", Some(b"ignored body"))
        .await;
    assert_v1_empty(&response);
    assert_eq!(server.topic_names().await, ["made"]);
    server.stop().await;
}

#[tokio::test]
async fn topic_delete_closes_subscribers_and_drops_the_topic() {
    let server = start().await;
    let mut first = server.subscriber("gone", "a", 1).await;
    let mut second = server.subscriber("gone", "b", 1).await;
    server.publish("gone", &[b"one", b"two"]).await;
    first.message().await;
    second.message().await;
    assert_v1_empty(&post(&server, "/topic/delete?topic=gone").await);
    first.expect_closed().await;
    second.expect_closed().await;
    assert!(server.topic_names().await.is_empty());
    // Publishing again makes a fresh topic: nothing of the old one survives.
    server.publish("gone", &[b"three"]).await;
    let topic = server.topic_stats("gone").await;
    assert_eq!(
        (topic["message_count"].as_u64(), topic["depth"].as_u64()),
        (Some(1), Some(1)),
        "{topic}"
    );
    assert_eq!(topic["channels"], Value::Array(vec![]), "{topic}");
    server.stop().await;
}

#[tokio::test]
async fn channel_delete_closes_only_that_channels_clients() {
    let server = start().await;
    let mut doomed = server.subscriber("t", "doomed", 1).await;
    let mut kept = server.subscriber("t", "kept", 5).await;
    assert_v1_empty(&post(&server, "/channel/delete?topic=t&channel=doomed").await);
    doomed.expect_closed().await;
    let topic = server.topic_stats("t").await;
    assert_eq!(
        find_named(&topic["channels"], "channel_name", "doomed"),
        Value::Null
    );
    server.publish("t", &[b"after"]).await;
    assert_eq!(&kept.message().await.body[..], b"after");
    server.stop().await;
}

#[tokio::test]
async fn deleting_the_last_channel_of_an_ephemeral_topic_deletes_the_topic() {
    let server = start().await;
    assert_v1_empty(&post(&server, "/topic/create?topic=e%23ephemeral").await);
    assert_v1_empty(&post(&server, "/channel/create?topic=e%23ephemeral&channel=c").await);
    assert_eq!(server.topic_names().await, ["e#ephemeral"]);
    assert_v1_empty(&post(&server, "/channel/delete?topic=e%23ephemeral&channel=c").await);
    assert!(server.topic_names().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn channel_create_needs_the_topic_and_then_receives_messages() {
    let server = start().await;
    post(&server, "/channel/create?topic=later&channel=c")
        .await
        .assert_v1_error(404, "TOPIC_NOT_FOUND");
    assert!(
        server.topic_names().await.is_empty(),
        "no topic was created"
    );
    assert_v1_empty(&post(&server, "/topic/create?topic=later").await);
    assert_v1_empty(&post(&server, "/channel/create?topic=later&channel=c").await);
    server.publish("later", &[b"m"]).await;
    let channel = server.channel_stats("later", "c").await;
    assert_eq!(channel["depth"], 1, "{channel}");
    server.stop().await;
}

#[tokio::test]
async fn channel_empty_drops_queued_in_flight_and_deferred_messages() {
    let server = start().await;
    let mut consumer = server.subscriber("t", "c", 1).await;
    server.publish("t", &[b"one", b"two", b"three"]).await;
    let held = consumer.message().await;
    server
        .http("POST", "/pub?topic=t&defer=60000", Some(b"later"))
        .await
        .assert_v1_ok();
    let before = server.channel_stats("t", "c").await;
    let counts = |c: &Value| {
        (
            c["depth"].as_u64(),
            c["in_flight_count"].as_u64(),
            c["deferred_count"].as_u64(),
        )
    };
    assert_eq!(counts(&before), (Some(2), Some(1), Some(1)), "{before}");
    assert_v1_empty(&post(&server, "/channel/empty?topic=t&channel=c").await);
    let after = server.channel_stats("t", "c").await;
    assert_eq!(counts(&after), (Some(0), Some(0), Some(0)), "{after}");
    assert_eq!(after["clients"][0]["in_flight_count"], 0, "{after}");
    // The emptied message is no longer in flight; the freed RDY slot takes a new one.
    consumer.fin(&held).await;
    let error = consumer.frame().await;
    assert!(error.text().starts_with("E_FIN_FAILED"), "{error:?}");
    server.publish("t", &[b"fresh"]).await;
    assert_eq!(&consumer.message().await.body[..], b"fresh");
    server.stop().await;
}

#[tokio::test]
async fn topic_empty_drops_the_messages_held_in_the_topic() {
    let server = start().await;
    server.publish("held", &[b"one", b"two"]).await;
    assert_eq!(server.topic_stats("held").await["depth"], 2);
    assert_v1_empty(&post(&server, "/topic/empty?topic=held").await);
    let topic = server.topic_stats("held").await;
    assert_eq!(
        (topic["depth"].as_u64(), topic["message_count"].as_u64()),
        (Some(0), Some(2)),
        "{topic}"
    );
    let mut consumer = server.subscriber("held", "c", 10).await;
    consumer.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn topic_pause_holds_messages_until_unpause() {
    let server = start().await;
    let mut consumer = server.subscriber("t", "c", 10).await;
    assert_v1_empty(&post(&server, "/topic/pause?topic=t").await);
    server.publish("t", &[b"held"]).await;
    consumer.expect_quiet().await;
    let topic = server.topic_stats("t").await;
    assert_eq!(
        (topic["paused"].as_bool(), topic["depth"].as_u64()),
        (Some(true), Some(1)),
        "{topic}"
    );
    assert_v1_empty(&post(&server, "/topic/unpause?topic=t").await);
    assert_eq!(&consumer.message().await.body[..], b"held");
    assert_eq!(server.topic_stats("t").await["paused"], false);
    server.stop().await;
}

#[tokio::test]
async fn channel_pause_stops_delivery_until_unpause() {
    let server = start().await;
    let mut paused = server.subscriber("t", "paused", 10).await;
    let mut running = server.subscriber("t", "running", 10).await;
    assert_v1_empty(&post(&server, "/channel/pause?topic=t&channel=paused").await);
    server.publish("t", &[b"m"]).await;
    assert_eq!(&running.message().await.body[..], b"m");
    paused.expect_quiet().await;
    let channel = server.channel_stats("t", "paused").await;
    assert_eq!(
        (channel["paused"].as_bool(), channel["depth"].as_u64()),
        (Some(true), Some(1)),
        "{channel}"
    );
    assert_v1_empty(&post(&server, "/channel/unpause?topic=t&channel=paused").await);
    assert_eq!(&paused.message().await.body[..], b"m");
    server.stop().await;
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    let server = start().await;
    let _consumer = server.subscriber("t", "c", 0).await;
    server.publish("t", &[b"queued"]).await;
    assert_v1_empty(&post(&server, "/channel/pause?topic=t&channel=c").await);
    let stats_before = server.stats("include_mem=false").await;
    let config = |opt: &'static str| {
        let server = &server;
        async move {
            server
                .http("GET", &format!("/config/{opt}"), None)
                .await
                .text()
        }
    };
    let config_before = (
        config("log_level").await,
        config("nsqlookupd_tcp_addresses").await,
    );
    let refused: [(&str, &str, Option<&[u8]>, u16); 22] = [
        ("POST", "/topic/create?topic=bad!", None, 400),
        ("POST", "/topic/create?topic=x;y", None, 400),
        ("POST", "/topic/delete?topic=nope", None, 404),
        ("POST", "/topic/empty?topic=nope", None, 404),
        ("POST", "/topic/empty?topic=t&x=%zz", None, 400),
        ("POST", "/topic/pause?topic=nope", None, 404),
        ("POST", "/topic/unpause", None, 400),
        ("POST", "/channel/create?topic=nope&channel=c", None, 404),
        ("POST", "/channel/create?topic=t&channel=bad!", None, 400),
        ("POST", "/channel/create?topic=bad!&channel=c", None, 400),
        ("POST", "/channel/delete?topic=t&channel=nope", None, 404),
        ("POST", "/channel/delete?topic=t", None, 400),
        ("POST", "/channel/empty?topic=t&channel=nope", None, 404),
        ("POST", "/channel/unpause?topic=t&channel=nope", None, 404),
        ("GET", "/topic/delete?topic=t", None, 405),
        ("DELETE", "/channel/delete?topic=t&channel=c", None, 405),
        ("POST", "/delete_topic?topic=t", None, 404),
        ("PUT", "/config/log_level", Some(b"loud"), 400),
        ("PUT", "/config/log_level", Some(b""), 413),
        ("PUT", "/config/nsqlookupd_tcp_addresses", Some(b"[1]"), 400),
        ("PUT", "/config/mem_queue_size", Some(b"5"), 400),
        ("PUT", "/config/nope", Some(b"5"), 400),
    ];
    for (method, path, body, status) in refused {
        let response = server.http(method, path, body).await;
        assert_eq!(response.status, status, "{method} {path}: {response:?}");
    }
    assert_eq!(server.stats("include_mem=false").await, stats_before);
    let config_after = (
        config("log_level").await,
        config("nsqlookupd_tcp_addresses").await,
    );
    assert_eq!(config_after, config_before);
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_query_is_invalid_request_as_go_parses_it() {
    let server = start().await;
    for path in [
        "/topic/create?topic=t;x",
        "/topic/delete?topic=t&a=%g1",
        "/channel/create?topic=t&channel=c;",
        "/channel/pause?topic=t&channel=c&x=%",
    ] {
        post(&server, path)
            .await
            .assert_v1_error(400, "INVALID_REQUEST");
    }
    assert!(server.topic_names().await.is_empty());
    server.stop().await;
}

/// `GET /config/<cfg name>` for the options Go's flags back, as Go's JSON encoder writes
/// them; the options Go keeps out of flags, and flag spellings, are INVALID_OPTION.
#[tokio::test]
async fn config_get_answers_every_flag_option_in_go_json() {
    let options = Options {
        statsd_prefix: "a<b&c".into(),
        nsqlookupd_tcp_addresses: vec!["127.0.0.1:4160".into()],
        e2e_processing_latency_percentiles: vec![1.0, 0.99],
        ..golden_options()
    };
    let id = options.id;
    let server = start_with(options).await;
    let id = id.to_string();
    let cases: [(&str, &str); 21] = [
        ("id", &id),
        ("mem_queue_size", "10000"),
        ("msg_timeout", "60000000000"),
        ("max_msg_timeout", "900000000000"),
        ("output_buffer_timeout", "250000000"),
        ("sync_timeout", "2000000000"),
        ("log_level", "2"),
        ("log_prefix", r#""[nsqd] ""#),
        ("statsd_prefix", r#""a\u003cb\u0026c""#),
        ("https_address", r#""""#),
        ("nsqlookupd_tcp_addresses", r#"["127.0.0.1:4160"]"#),
        ("auth_http_addresses", "[]"),
        ("e2e_processing_latency_percentiles", "[1,0.99]"),
        ("tls_min_version", "769"),
        ("tls_required", "0"),
        ("deflate", "true"),
        ("statsd_exclude_ephemeral", "false"),
        ("max_deflate_level", "6"),
        ("broadcast_tcp_port", "0"),
        ("statsd_udp_packet_size", "508"),
        ("max_output_buffer_size", "65536"),
    ];
    let data_path = server
        .data_dir
        .as_ref()
        .map(|d| d.path().to_string_lossy().into_owned())
        .unwrap_or_default();
    let response = server.http("GET", "/config/data_path", None).await;
    assert_eq!(
        (response.status, response.text()),
        (200, serde_json::to_string(&data_path).unwrap_or_default()),
        "data_path"
    );
    for (opt, want) in cases {
        let response = server.http("GET", &format!("/config/{opt}"), None).await;
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, want),
            "{opt}"
        );
        response.assert_header("Content-Type", "application/json; charset=utf-8");
        response.assert_header("X-Nsq-Content-Type", "nsq; version=1.0");
    }
    for opt in [
        "queue_scan_interval",
        "queue_scan_refresh_interval",
        "queue_scan_dirty_percent",
        "client_timeout",
        "logger",
        "node_id",
        "mem-queue-size",
        "verbose",
    ] {
        let response = server.http("GET", &format!("/config/{opt}"), None).await;
        response.assert_v1_error(400, "INVALID_OPTION");
    }
    for path in ["/config/", "/config", "/config/log_level/x"] {
        server
            .http("GET", path, None)
            .await
            .assert_v1_error(404, "NOT_FOUND");
    }
    server.stop().await;
}

#[tokio::test]
async fn put_log_level_changes_what_get_answers() {
    let server = start().await;
    let get = || server.http("GET", "/config/log_level", None);
    assert_eq!(get().await.text(), "2");
    for (level, number) in [
        ("warn", "3"),
        ("DEBUG", "1"),
        ("error", "4"),
        ("fatal", "5"),
        ("info", "2"),
        ("debug", "1"),
    ] {
        let response = server
            .http("PUT", "/config/log_level", Some(level.as_bytes()))
            .await;
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, number),
            "{level}"
        );
        assert_eq!(get().await.text(), number, "{level}");
    }
    let refused = server
        .http("PUT", "/config/log_level", Some(b"warning"))
        .await;
    refused.assert_v1_error(400, "INVALID_VALUE");
    assert_eq!(get().await.text(), "1");
    server.stop().await;
}

#[tokio::test]
async fn put_lookupd_addresses_round_trips_and_notifies() {
    let server = start_with(Options {
        max_msg_size: 64,
        ..golden_options()
    })
    .await;
    let mut watcher = server.nsqd.watch_lookupd_addresses();
    let path = "/config/nsqlookupd_tcp_addresses";
    let response = server
        .http(
            "PUT",
            path,
            Some(br#"["127.0.0.1:4160", "lookupd-2:4160"]"#),
        )
        .await;
    let want = r#"["127.0.0.1:4160","lookupd-2:4160"]"#;
    assert_eq!((response.status, response.text().as_str()), (200, want));
    response.assert_header("Content-Type", "application/json; charset=utf-8");
    assert_eq!(server.http("GET", path, None).await.text(), want);
    assert!(watcher.has_changed().unwrap(), "the lookupd loop is woken");
    assert_eq!(
        watcher.borrow_and_update().addresses,
        ["127.0.0.1:4160", "lookupd-2:4160"]
    );
    // Go's nil list: accepted, shown as null.
    let response = server.http("PUT", path, Some(b"null")).await;
    assert_eq!((response.status, response.text().as_str()), (200, "null"));
    assert!(watcher.has_changed().unwrap());
    // More than --max-msg-size (64 here) is 413 and changes nothing.
    let long = format!(r#"["{}"]"#, "x".repeat(64));
    server
        .http("PUT", path, Some(long.as_bytes()))
        .await
        .assert_v1_error(413, "INVALID_VALUE");
    assert_eq!(server.http("GET", path, None).await.text(), "null");
    let fits = format!(r#"["{}"]"#, "x".repeat(60));
    let response = server.http("PUT", path, Some(fits.as_bytes())).await;
    assert_eq!((response.status, response.text()), (200, fits));
    server.stop().await;
}

#[tokio::test]
async fn options_answers_allow_without_a_body() {
    let server = start().await;
    for (path, allow) in [
        ("/ping", "GET, OPTIONS"),
        ("/topic/create", "OPTIONS, POST"),
        ("/channel/empty", "OPTIONS, POST"),
        ("/config/log_level", "GET, OPTIONS, PUT"),
    ] {
        let response = server.http("OPTIONS", path, None).await;
        assert_eq!((response.status, response.body.len()), (200, 0), "{path}");
        response.assert_header("Allow", allow);
        assert_eq!(response.header("Content-Type"), None, "{path}");
        assert_eq!(response.header("X-Nsq-Content-Type"), None, "{path}");
    }
    server
        .http("OPTIONS", "/nope", None)
        .await
        .assert_v1_error(404, "NOT_FOUND");
    server.stop().await;
}

#[tokio::test]
async fn wrong_methods_on_admin_routes_are_405_with_go_allow() {
    let server = start().await;
    for (method, path, allow) in [
        ("GET", "/topic/delete", "OPTIONS, POST"),
        ("PUT", "/channel/pause", "OPTIONS, POST"),
        ("DELETE", "/config/log_level", "GET, OPTIONS, PUT"),
        ("GET", "/debug/freememory", "OPTIONS, POST"),
        ("POST", "/debug/setblockrate", "OPTIONS, PUT"),
    ] {
        let response = server.http(method, path, None).await;
        assert_eq!(response.status, 405, "{method} {path}");
        response.assert_header("Allow", allow);
        response.assert_v1_error(405, "METHOD_NOT_ALLOWED");
    }
    server.stop().await;
}

/// pprof profiles the Go runtime; a Rust nsqd has none of it, so every pprof path is
/// unknown.
#[tokio::test]
async fn debug_pprof_is_not_found() {
    let server = start().await;
    for (method, path) in [
        ("GET", "/debug/pprof/"),
        ("GET", "/debug/pprof"),
        ("GET", "/debug/pprof/heap"),
        ("GET", "/debug/pprof/profile"),
        ("POST", "/debug/pprof/symbol"),
    ] {
        server
            .http(method, path, None)
            .await
            .assert_v1_error(404, "NOT_FOUND");
    }
    server.stop().await;
}

/// Go v1.3.0 answers both with 500 INTERNAL_ERROR after doing their work (its plain-text
/// decorator panics on their empty success); a rate `strconv.Atoi` refuses is 400 with
/// Go's plain-text message.
#[tokio::test]
async fn debug_block_rate_and_free_memory_answer_as_go() {
    let server = start().await;
    server
        .http("POST", "/debug/freememory", None)
        .await
        .assert_v1_error(500, "INTERNAL_ERROR");
    server
        .http("PUT", "/debug/setblockrate?rate=5", None)
        .await
        .assert_v1_error(500, "INTERNAL_ERROR");
    for (rate, why) in [
        ("abc", r#"parsing "abc": invalid syntax"#),
        ("", r#"parsing "": invalid syntax"#),
        (
            "99999999999999999999",
            r#"parsing "99999999999999999999": value out of range"#,
        ),
    ] {
        let response = server
            .http("PUT", &format!("/debug/setblockrate?rate={rate}"), None)
            .await;
        let text = format!("invalid block rate : strconv.Atoi: {why}");
        assert_eq!((response.status, response.text()), (400, text), "{rate}");
        response.assert_header("Content-Type", "text/plain; charset=utf-8");
        assert_eq!(response.header("X-Nsq-Content-Type"), None);
    }
    server.stop().await;
}
