//! Every HTTP exchange of `golden/lookupd.txt` PART 3: status line, header names in
//! order, header values (but `Date`) and body. A fake nsqd registered over V1 stands in
//! for the golden one (`<HOST>` = "vm", ports 4150/4151); its ephemeral client port is
//! the one volatile value, masked as `<PORT>`.

use crate::support::{start, Conn, HttpResponse, Server};

const JSON_HEADERS: &[&str] = &[
    "Content-Type",
    "X-Nsq-Content-Type",
    "Date",
    "Content-Length",
    "Connection",
];
const EMPTY_HEADERS: &[&str] = &["X-Nsq-Content-Type", "Date", "Content-Length", "Connection"];

/// Asserts one exchange against the golden answer.
fn assert_exchange(
    response: &HttpResponse,
    status: u16,
    reason: &str,
    headers: &[&str],
    body: &str,
) {
    assert_eq!(
        (response.status, response.reason.as_str()),
        (status, reason),
        "{response:?}"
    );
    // hyper writes `Connection` before `Content-Length` (Go after it); every other
    // header is in Go's order.
    let without_connection = |names: Vec<&str>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| *n != "Connection")
            .map(str::to_string)
            .collect()
    };
    let names = response.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        without_connection(names),
        without_connection(headers.to_vec()),
        "header order: {response:?}"
    );
    response.assert_header("Content-Length", &body.len().to_string());
    response.assert_header("Connection", "close");
    if headers.contains(&"X-Nsq-Content-Type") {
        response.assert_header("X-Nsq-Content-Type", "nsq; version=1.0");
    }
    if headers.contains(&"Content-Type") && status == 200 && !body.starts_with('{') {
        response.assert_header("Content-Type", "text/plain; charset=utf-8");
    } else if headers.contains(&"Content-Type") {
        response.assert_header("Content-Type", "application/json; charset=utf-8");
    }
    assert_eq!(response.text(), body);
}

fn json_ok(response: &HttpResponse, body: &str) {
    assert_exchange(response, 200, "OK", JSON_HEADERS, body);
}

fn empty_ok(response: &HttpResponse) {
    assert_exchange(response, 200, "OK", EMPTY_HEADERS, "");
}

fn json_error(response: &HttpResponse, status: u16, reason: &str, message: &str) {
    let body = format!(r#"{{"message":"{message}"}}"#);
    assert_exchange(response, status, reason, JSON_HEADERS, &body);
}

/// The golden nsqd's registration: topic `golden`, channel `ch`. Returns the connection
/// (it must stay open) and its masked-away client port.
async fn register_golden(server: &Server) -> (Conn, u16) {
    let mut conn = server.producer("vm", 4150, 4151).await;
    conn.ok("REGISTER golden\n").await;
    conn.ok("REGISTER golden ch\n").await;
    let debug = server.get_json("/debug").await;
    let id = debug["client::"][0]["id"].as_str().unwrap().to_string();
    let port = id.rsplit(':').next().unwrap().parse().unwrap();
    (conn, port)
}

fn producer_json(port: u16) -> String {
    format!(
        r#"{{"remote_address":"127.0.0.1:{port}","hostname":"vm","broadcast_address":"vm","tcp_port":4150,"http_port":4151,"version":"1.3.0""#
    )
}

#[tokio::test]
async fn ping_info_lookup_topics_channels_nodes_and_debug() {
    let server = start().await;
    let (_conn, port) = register_golden(&server).await;

    let ping = server.http("GET", "/ping").await;
    assert_exchange(
        &ping,
        200,
        "OK",
        &["Date", "Content-Length", "Content-Type", "Connection"],
        "OK",
    );
    ping.assert_header("Content-Type", "text/plain; charset=utf-8");
    json_ok(&server.http("GET", "/info").await, r#"{"version":"1.3.0"}"#);

    let producer = producer_json(port);
    json_ok(
        &server.http("GET", "/lookup?topic=golden").await,
        &format!(r#"{{"channels":["ch"],"producers":[{producer}}}]}}"#),
    );
    json_error(
        &server.http("GET", "/lookup").await,
        400,
        "Bad Request",
        "MISSING_ARG_TOPIC",
    );
    json_error(
        &server.http("GET", "/lookup?topic=nope").await,
        404,
        "Not Found",
        "TOPIC_NOT_FOUND",
    );
    json_ok(
        &server.http("GET", "/topics").await,
        r#"{"topics":["golden"]}"#,
    );
    json_ok(
        &server.http("GET", "/channels?topic=golden").await,
        r#"{"channels":["ch"]}"#,
    );
    json_ok(
        &server.http("GET", "/channels?topic=nope").await,
        r#"{"channels":[]}"#,
    );
    json_error(
        &server.http("GET", "/channels").await,
        400,
        "Bad Request",
        "MISSING_ARG_TOPIC",
    );
    json_ok(
        &server.http("GET", "/nodes").await,
        &format!(r#"{{"producers":[{producer},"tombstones":[false],"topics":["golden"]}}]}}"#),
    );

    let debug = server.http("GET", "/debug").await;
    let body: serde_json::Value = serde_json::from_slice(&debug.body).unwrap();
    let last_update = body["client::"][0]["last_update"].as_i64().unwrap();
    assert_eq!(last_update.to_string().len(), 19, "unix nanoseconds");
    let entry = format!(
        r#"[{{"broadcast_address":"vm","hostname":"vm","http_port":4151,"id":"127.0.0.1:{port}","last_update":{last_update},"tcp_port":4150,"tombstoned":false,"tombstoned_at":-6795364578871345152,"version":"1.3.0"}}]"#
    );
    json_ok(
        &debug,
        &format!(r#"{{"channel:golden:ch":{entry},"client::":{entry},"topic:golden:":{entry}}}"#),
    );
    server.stop().await;
}

#[tokio::test]
async fn topic_create_and_delete() {
    let server = start().await;
    let (_conn, _port) = register_golden(&server).await;
    empty_ok(&server.http("POST", "/topic/create?topic=lk_topic").await);
    // Go lists them in its map order; ours is sorted.
    json_ok(
        &server.http("GET", "/topics").await,
        r#"{"topics":["golden","lk_topic"]}"#,
    );
    json_ok(
        &server.http("GET", "/lookup?topic=lk_topic").await,
        r#"{"channels":[],"producers":[]}"#,
    );
    json_error(
        &server.http("POST", "/topic/create").await,
        400,
        "Bad Request",
        "MISSING_ARG_TOPIC",
    );
    json_error(
        &server.http("POST", "/topic/create?topic=bad!topic").await,
        400,
        "Bad Request",
        "INVALID_ARG_TOPIC",
    );
    empty_ok(&server.http("POST", "/topic/delete?topic=lk_topic").await);
    empty_ok(
        &server
            .http("POST", "/topic/delete?topic=never_existed")
            .await,
    );
    json_error(
        &server.http("POST", "/topic/delete").await,
        400,
        "Bad Request",
        "MISSING_ARG_TOPIC",
    );
    server.stop().await;
}

#[tokio::test]
async fn channel_create_and_delete() {
    let server = start().await;
    empty_ok(
        &server
            .http("POST", "/channel/create?topic=lk_topic2&channel=c")
            .await,
    );
    json_ok(
        &server.http("GET", "/channels?topic=lk_topic2").await,
        r#"{"channels":["c"]}"#,
    );
    for (path, message) in [
        ("/channel/create?topic=lk_topic2", "MISSING_ARG_CHANNEL"),
        ("/channel/create?channel=c", "MISSING_ARG_TOPIC"),
        (
            "/channel/create?topic=lk_topic2&channel=bad!ch",
            "INVALID_ARG_CHANNEL",
        ),
    ] {
        json_error(
            &server.http("POST", path).await,
            400,
            "Bad Request",
            message,
        );
    }
    empty_ok(
        &server
            .http("POST", "/channel/delete?topic=lk_topic2&channel=c")
            .await,
    );
    json_error(
        &server
            .http("POST", "/channel/delete?topic=lk_topic2&channel=c")
            .await,
        404,
        "Not Found",
        "CHANNEL_NOT_FOUND",
    );
    json_error(
        &server.http("POST", "/channel/delete?topic=lk_topic2").await,
        400,
        "Bad Request",
        "MISSING_ARG_CHANNEL",
    );
    empty_ok(&server.http("POST", "/topic/delete?topic=lk_topic2").await);
    assert!(server.topics().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn topic_tombstone() {
    let server = start().await;
    let (_conn, port) = register_golden(&server).await;
    json_error(
        &server.http("POST", "/topic/tombstone?node=x").await,
        400,
        "Bad Request",
        "MISSING_ARG_TOPIC",
    );
    json_error(
        &server.http("POST", "/topic/tombstone?topic=golden").await,
        400,
        "Bad Request",
        "MISSING_ARG_NODE",
    );
    empty_ok(
        &server
            .http("POST", "/topic/tombstone?topic=golden&node=vm:4151")
            .await,
    );
    json_ok(
        &server.http("GET", "/lookup?topic=golden").await,
        r#"{"channels":["ch"],"producers":[]}"#,
    );
    let producer = producer_json(port);
    json_ok(
        &server.http("GET", "/nodes").await,
        &format!(r#"{{"producers":[{producer},"tombstones":[true],"topics":["golden"]}}]}}"#),
    );
    empty_ok(
        &server
            .http("POST", "/topic/tombstone?topic=nope&node=nowhere:1")
            .await,
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_path_and_wrong_method() {
    let server = start().await;
    json_error(
        &server.http("GET", "/nope").await,
        404,
        "Not Found",
        "NOT_FOUND",
    );
    let body = r#"{"message":"METHOD_NOT_ALLOWED"}"#;
    let mut with_allow = vec!["Allow"];
    with_allow.extend_from_slice(JSON_HEADERS);
    let response = server.http("POST", "/lookup?topic=golden").await;
    assert_exchange(&response, 405, "Method Not Allowed", &with_allow, body);
    response.assert_header("Allow", "GET, OPTIONS");
    let response = server.http("GET", "/topic/create?topic=x").await;
    assert_exchange(&response, 405, "Method Not Allowed", &with_allow, body);
    response.assert_header("Allow", "OPTIONS, POST");
    // pprof describes the Go runtime: unknown here, as in our nsqd.
    json_error(
        &server.http("GET", "/debug/pprof/").await,
        404,
        "Not Found",
        "NOT_FOUND",
    );
    server.stop().await;
}
