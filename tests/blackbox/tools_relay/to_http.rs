//! nsq_to_http as a process, between an nsqd and the tests' HTTP servers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::http_server::{HttpServer, Seen};
use super::{channel_figure, wait_drained, wait_until, Running};
use crate::support::*;
use crate::tools::{finish, tool};

const NSQ_TO_HTTP: &str = env!("CARGO_BIN_EXE_nsq_to_http");

/// Retry at once and never pause: failures requeue without delay or backoff.
const QUICK_RETRY: [&str; 2] = [
    "--consumer-opt=default_requeue_delay,0",
    "--consumer-opt=max_backoff_duration,0",
];

/// The bodies of the requests answered with a status `ok` accepts.
fn delivered(seen: &[Seen], ok: impl Fn(u16) -> bool) -> BTreeSet<Vec<u8>> {
    seen.iter()
        .filter(|s| ok(s.status))
        .map(|s| s.body.clone())
        .collect()
}

fn bodies(list: &[&str]) -> BTreeSet<Vec<u8>> {
    list.iter().map(|b| b.as_bytes().to_vec()).collect()
}

#[tokio::test]
async fn posts_every_message_with_its_content_type_and_headers() {
    let server = start_with(fast_options()).await;
    let http = HttpServer::answering(200).await;
    server.publish("posts", &[b"one", b"two", b"three"]).await;
    let tcp = server.tcp.to_string();
    let url = http.url("/in?x=1");
    let running = Running::start(
        NSQ_TO_HTTP,
        &[
            "--topic=posts",
            "--nsqd-tcp-address",
            &tcp,
            "--post",
            &url,
            "--content-type=text/plain",
            "--header",
            "X-Test: yes",
            "--header=x-other:  b:c ",
        ],
    );
    wait_until("three POSTs", || async { http.seen().len() >= 3 }).await;
    wait_drained(&server, "posts", "nsq_to_http").await;
    running.terminate().await;
    let seen = http.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        delivered(&seen, |s| s == 200),
        bodies(&["one", "two", "three"])
    );
    for request in &seen {
        assert_eq!(request.method, "POST");
        assert_eq!(request.target, "/in?x=1");
        assert_eq!(request.headers["content-type"], "text/plain");
        assert_eq!(request.headers["x-test"], "yes");
        assert_eq!(request.headers["x-other"], "b:c");
        assert_eq!(request.headers["user-agent"], "nsq_to_http v1.3.0");
    }
    server.stop().await;
}

#[tokio::test]
async fn get_puts_the_escaped_body_in_place_of_percent_s_and_wants_exactly_200() {
    let server = start_with(fast_options()).await;
    // A 204 is a success for POST, not for GET: the first answer makes a retry.
    let http = HttpServer::start(Arc::new(|n| {
        (if n == 0 { 204 } else { 200 }, Duration::ZERO)
    }))
    .await;
    server.publish("gets", &[b"a b&c~*"]).await;
    let tcp = server.tcp.to_string();
    let url = http.url("/get?data=%s&z=1");
    let mut args = vec!["--topic=gets", "--nsqd-tcp-address", &tcp, "--get", &url];
    args.extend(QUICK_RETRY);
    let running = Running::start(NSQ_TO_HTTP, &args);
    wait_until("a GET answered 200", || async {
        http.seen().iter().any(|s| s.status == 200)
    })
    .await;
    wait_drained(&server, "gets", "nsq_to_http").await;
    running.terminate().await;
    let seen = http.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, "/get?data=a+b%26c~%2A&z=1");
        assert!(request.body.is_empty());
        assert!(request.headers.get("content-type").is_none());
    }
    assert_eq!(
        channel_figure(&server, "gets", "nsq_to_http", "requeue_count").await,
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn failed_posts_are_requeued_until_every_message_is_delivered() {
    let server = start_with(fast_options()).await;
    let http = HttpServer::start(Arc::new(|n| {
        (if n < 4 { 500 } else { 200 }, Duration::ZERO)
    }))
    .await;
    let messages = ["m1", "m2", "m3", "m4", "m5"];
    let raw: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
    server.publish("retry", &raw).await;
    let tcp = server.tcp.to_string();
    let url = http.url("/");
    let mut args = vec!["--topic=retry", "--nsqd-tcp-address", &tcp, "--post", &url];
    args.extend(QUICK_RETRY);
    let running = Running::start(NSQ_TO_HTTP, &args);
    wait_until("every message answered 2xx", || async {
        delivered(&http.seen(), |s| s == 200) == bodies(&messages)
    })
    .await;
    wait_drained(&server, "retry", "nsq_to_http").await;
    let stderr = running.terminate().await;
    assert!(
        stderr.contains("Handler returned error (got status code 500)"),
        "{stderr}"
    );
    assert_eq!(
        channel_figure(&server, "retry", "nsq_to_http", "requeue_count").await,
        4
    );
    server.stop().await;
}

#[tokio::test]
async fn failures_back_off_and_then_recover() {
    let server = start_with(fast_options()).await;
    let http = HttpServer::start(Arc::new(|n| {
        (if n < 2 { 503 } else { 200 }, Duration::ZERO)
    }))
    .await;
    server.publish("backoff", &[b"x", b"y", b"z"]).await;
    let tcp = server.tcp.to_string();
    let url = http.url("/");
    let running = Running::start(
        NSQ_TO_HTTP,
        &[
            "--topic=backoff",
            "--nsqd-tcp-address",
            &tcp,
            "--post",
            &url,
            "--consumer-opt=default_requeue_delay,0",
            "--consumer-opt=backoff_multiplier,10ms",
            "-n=1",
        ],
    );
    wait_until("every message answered 200", || async {
        delivered(&http.seen(), |s| s == 200) == bodies(&["x", "y", "z"])
    })
    .await;
    wait_drained(&server, "backoff", "nsq_to_http").await;
    let stderr = running.terminate().await;
    assert!(stderr.contains("backing off"), "{stderr}");
    server.stop().await;
}

#[tokio::test]
async fn round_robin_alternates_between_two_servers() {
    let server = start_with(fast_options()).await;
    let first = HttpServer::answering(200).await;
    let second = HttpServer::answering(201).await;
    server.publish("rr", &[b"1", b"2", b"3", b"4"]).await;
    let tcp = server.tcp.to_string();
    let (a, b) = (first.url("/a"), second.url("/b"));
    let running = Running::start(
        NSQ_TO_HTTP,
        &[
            "--topic=rr",
            "--nsqd-tcp-address",
            &tcp,
            "--mode=round-robin",
            "--post",
            &a,
            "--post",
            &b,
        ],
    );
    wait_until("four POSTs", || async {
        first.seen().len() + second.seen().len() >= 4
    })
    .await;
    wait_drained(&server, "rr", "nsq_to_http").await;
    running.terminate().await;
    assert_eq!((first.seen().len(), second.seen().len()), (2, 2));
    let mut all = delivered(&first.seen(), |_| true);
    all.extend(delivered(&second.seen(), |s| s == 201));
    assert_eq!(all, bodies(&["1", "2", "3", "4"]));
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_mode_sends_every_message_to_every_address() {
    let server = start_with(fast_options()).await;
    let first = HttpServer::answering(200).await;
    let second = HttpServer::answering(200).await;
    server.publish("all", &[b"p", b"q"]).await;
    let tcp = server.tcp.to_string();
    let (a, b) = (first.url("/"), second.url("/"));
    let running = Running::start(
        NSQ_TO_HTTP,
        &[
            "--topic=all",
            "--nsqd-tcp-address",
            &tcp,
            "--mode=everywhere",
            "--post",
            &a,
            "--post",
            &b,
        ],
    );
    wait_drained(&server, "all", "nsq_to_http").await;
    running.terminate().await;
    assert_eq!(delivered(&first.seen(), |_| true), bodies(&["p", "q"]));
    assert_eq!(delivered(&second.seen(), |_| true), bodies(&["p", "q"]));
    server.stop().await;
}

#[tokio::test]
async fn a_sigkill_mid_stream_then_a_restart_delivers_every_message_at_least_once() {
    let server = start_with(fast_options()).await;
    // Slow answers, one request at a time: the kill lands with messages in flight.
    let http = HttpServer::start(Arc::new(|_| (200, Duration::from_millis(20)))).await;
    let messages: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let raw: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
    server.publish("kill", &raw).await;
    let tcp = server.tcp.to_string();
    let url = http.url("/");
    let args = [
        "--topic=kill",
        "--nsqd-tcp-address",
        &tcp,
        "--post",
        &url,
        "-n=1",
        "--max-in-flight=5",
    ];
    let running = Running::start(NSQ_TO_HTTP, &args);
    wait_until("a few deliveries", || async { http.seen().len() >= 5 }).await;
    let (code, _) = running.stop(rustix::process::Signal::KILL).await;
    assert_eq!(code, None, "killed by the signal");
    let before = http.seen().len();
    assert!(
        before < messages.len(),
        "the kill came too late to test anything"
    );
    // What was in flight times out on nsqd (300 ms here) and goes to the restarted tool.
    let running = Running::start(NSQ_TO_HTTP, &args);
    let all: BTreeSet<Vec<u8>> = messages.iter().map(|m| m.as_bytes().to_vec()).collect();
    wait_until("every message delivered", || async {
        delivered(&http.seen(), |s| s == 200) == all
    })
    .await;
    wait_drained(&server, "kill", "nsq_to_http").await;
    running.terminate().await;
    server.stop().await;
}

#[tokio::test]
async fn dash_h_and_version() {
    let help = finish(tool(NSQ_TO_HTTP, &["-h"]).spawn().expect("spawn")).await;
    assert_eq!(help.code, Some(0));
    let (first, rest) = help.stderr.split_once('\n').expect("a header line");
    assert_eq!(first, format!("Usage of {NSQ_TO_HTTP}:"));
    assert_eq!(
        rest,
        "  -channel string\n    \tnsq channel (default \"nsq_to_http\")\n  -consumer-opt value\n    \toption to passthrough to nsq.Consumer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)\n  -content-type string\n    \tthe Content-Type used for POST requests (default \"application/octet-stream\")\n  -get value\n    \tHTTP address to make a GET request to. '%s' will be printf replaced with data (may be given multiple times)\n  -header value\n    \tCustom header for HTTP requests (may be given multiple times)\n  -http-client-connect-timeout duration\n    \ttimeout for HTTP connect (default 2s)\n  -http-client-request-timeout duration\n    \ttimeout for HTTP request (default 20s)\n  -lookupd-http-address value\n    \tlookupd HTTP address (may be given multiple times)\n  -max-in-flight int\n    \tmax number of messages to allow in flight (default 200)\n  -mode string\n    \tthe upstream request mode options: round-robin, hostpool (default), epsilon-greedy (default \"hostpool\")\n  -n int\n    \tnumber of concurrent publishers (default 100)\n  -nsqd-tcp-address value\n    \tnsqd TCP address (may be given multiple times)\n  -post value\n    \tHTTP address to make a POST request to.  data will be in the body (may be given multiple times)\n  -sample float\n    \t% of messages to publish (float b/w 0 -> 1) (default 1)\n  -status-every int\n    \tthe # of requests between logging status (per handler), 0 disables (default 250)\n  -topic string\n    \tnsq topic\n  -version\n    \tprint version string\n"
    );
    let version = finish(tool(NSQ_TO_HTTP, &["--version"]).spawn().expect("spawn")).await;
    assert_eq!(
        (version.code, version.stdout.as_str()),
        (Some(0), "nsq_to_http v1.3.0\n")
    );
}

#[tokio::test]
async fn bad_command_lines_exit_with_gos_codes_and_messages() {
    let nsqd = "--nsqd-tcp-address=127.0.0.1:1";
    let post = "--post=http://127.0.0.1:1/";
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--nope"], 2, "flag provided but not defined: -nope"),
        (
            &["--consumer-opt=max_in_flight,abc"],
            2,
            "invalid value \"max_in_flight,abc\" for flag -consumer-opt: failed to coerce option max_in_flight (abc)",
        ),
        (&["--sample=lots"], 2, "invalid value \"lots\" for flag -sample: parse error"),
        (
            &["--header=novalue", "--topic=t"],
            1,
            "--header value format should be 'key=value'",
        ),
        (&[nsqd, post], 1, "--topic and --channel are required"),
        (&["--topic=t", "--channel="], 1, "--topic and --channel are required"),
        (
            &["--topic=t", "--content-type=text/plain", nsqd],
            1,
            "--content-type only used with --post",
        ),
        (
            &["--topic=t", "--content-type=", post],
            1,
            "--content-type requires a value when used",
        ),
        (
            &["--topic=t", post],
            1,
            "--nsqd-tcp-address or --lookupd-http-address required",
        ),
        (
            &["--topic=t", nsqd, "--lookupd-http-address=127.0.0.1:2"],
            1,
            "use --nsqd-tcp-address or --lookupd-http-address not both",
        ),
        (&["--topic=t", nsqd], 1, "--get or --post required"),
        (
            &["--topic=t", nsqd, post, "--get=http://h/%s"],
            1,
            "use --get or --post not both",
        ),
        (
            &["--topic=t", nsqd, "--get=http://h/%s/%s"],
            1,
            "invalid GET address - must be a printf string",
        ),
        (
            &["--topic=t", nsqd, post, "--sample=1.5"],
            1,
            "ERROR: --sample must be between 0.0 and 1.0",
        ),
        (
            &["--topic=t", nsqd, "--post=ftp://h/"],
            1,
            "ERROR: invalid --post address \"ftp://h/\" - unsupported protocol scheme \"ftp\"",
        ),
        (&["--topic=bad!", nsqd, post], 1, "invalid topic name"),
        (
            &["--topic=t", nsqd, post, "--max-in-flight=-1"],
            1,
            "invalid MaxInFlight ! -1 < 0",
        ),
        (&["--topic=t", nsqd, post, "-n=0"], 1, "no handlers"),
    ];
    for (args, code, want) in cases {
        let failed = finish(tool(NSQ_TO_HTTP, args).spawn().expect("spawn")).await;
        assert_eq!(failed.code, Some(*code), "{args:?}: {}", failed.stderr);
        let line = failed.stderr.lines().next().unwrap_or_default();
        assert!(line.contains(want), "{args:?}: {}", failed.stderr);
        if *code == 1 {
            assert!(line.ends_with(want), "{args:?}: {}", failed.stderr);
        }
    }
}

#[tokio::test]
async fn an_nsqd_that_cannot_be_reached_is_fatal() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let closed = listener.local_addr().expect("address").to_string();
    drop(listener);
    let failed = finish(
        tool(
            NSQ_TO_HTTP,
            &[
                "--topic=t",
                "--nsqd-tcp-address",
                &closed,
                "--post=http://127.0.0.1:1/",
            ],
        )
        .spawn()
        .expect("spawn"),
    )
    .await;
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
}

#[tokio::test]
async fn posts_over_https_trusting_the_system_roots_or_ssl_cert_file() {
    let pki = crate::tls::Pki::new();
    let http = HttpServer::start_with_tls(
        Arc::new(|_| (200, Duration::ZERO)),
        Some(pki.localhost_server_config()),
    )
    .await;
    let ca = tempfile::NamedTempFile::new().expect("temp file");
    #[allow(clippy::disallowed_methods)]
    std::fs::write(ca.path(), pki.ca_pem()).expect("write the CA");
    let server = start_with(fast_options()).await;
    server.publish("secure", &[b"s1", b"s2"]).await;
    let tcp = server.tcp.to_string();
    let url = format!("https://localhost:{}/in", http.addr.port());
    let mut command = tool(
        NSQ_TO_HTTP,
        &["--topic=secure", "--nsqd-tcp-address", &tcp, "--post", &url],
    );
    command.env("SSL_CERT_FILE", ca.path());
    let child = command.spawn().expect("spawn nsq_to_http");
    wait_until("two POSTs over TLS", || async { http.seen().len() >= 2 }).await;
    wait_drained(&server, "secure", "nsq_to_http").await;
    let pid = child.id().expect("running") as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("a pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    let done = finish(child).await;
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(delivered(&http.seen(), |s| s == 200), bodies(&["s1", "s2"]));
    server.stop().await;
}
