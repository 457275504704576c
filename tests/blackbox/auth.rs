//! AUTH against a fake auth server written here: a loopback HTTP responder that records
//! every request target and answers what the test set (grants, no grants, garbage, an
//! error status, or nothing at all). Timeouts are short so the failure cases stay quick.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use nsq::env::{BoxStream, Env, MemFs, SeededRng};
use nsq::nsqd::Options;
use nsq::protocol::Command;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{golden_options, start_with, start_with_env, Conn, Server, WAIT};

/// What the fake answers.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// `200 OK` with this JSON body.
    Json(String),
    /// `200 OK` with a body that is not JSON.
    Garbage,
    /// This status with a small body.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

/// A fake auth server on loopback.
pub(crate) struct FakeAuth {
    addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    targets: Arc<Mutex<Vec<String>>>,
}

impl FakeAuth {
    pub(crate) async fn start(answer: Answer) -> FakeAuth {
        FakeAuth::start_with_tls(answer, None).await
    }

    /// With `tls`, the fake serves HTTPS.
    async fn start_with_tls(answer: Answer, tls: Option<Arc<rustls::ServerConfig>>) -> FakeAuth {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let targets = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(serve(listener, tls, answer.clone(), targets.clone()));
        FakeAuth {
            addr,
            answer,
            targets,
        }
    }

    /// `host:port`, as `--auth-http-address` takes it.
    pub(crate) fn address(&self) -> String {
        self.addr.to_string()
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    answer: Arc<Mutex<Answer>>,
    targets: Arc<Mutex<Vec<String>>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let answer = answer.lock().unwrap().clone();
        let targets = targets.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream: BoxStream = match tls {
                Some(config) => {
                    match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
                        Ok(tls) => Box::new(tls),
                        Err(_) => return,
                    }
                }
                None => Box::new(stream),
            };
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).await.is_err() {
                return;
            }
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header).await {
                    Ok(n) if n > 0 && !header.trim().is_empty() => {}
                    _ => break,
                }
            }
            let target = request_line.split(' ').nth(1).unwrap_or_default();
            targets.lock().unwrap().push(target.to_string());
            let (status, body) = match answer {
                Answer::Json(body) => (200, body),
                Answer::Garbage => (200, "<html>not json</html>".to_string()),
                Answer::Status(status) => (status, "nope".to_string()),
                Answer::Hang => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = reader.get_mut().write_all(response.as_bytes()).await;
            let _ = reader.get_mut().flush().await;
        });
    }
}

/// Grants for identity `alice`: publish to topics starting `pub`, subscribe to topic
/// `orders` on channels matching `^bill`.
pub(crate) fn alice(ttl: i64) -> Answer {
    Answer::Json(format!(
        r#"{{"ttl":{ttl},"identity":"alice","identity_url":"http://auth.example/alice",
            "authorizations":[
              {{"topic":"^pub","channels":[".*"],"permissions":["publish"]}},
              {{"topic":"^orders$","channels":["^bill"],"permissions":["subscribe"]}}]}}"#
    ))
}

const ALICE_ANSWER: &[u8] =
    br#"{"identity":"alice","identity_url":"http://auth.example/alice","permission_count":2}"#;

/// Loopback options asking `servers`, with timeouts short enough for failure tests.
pub(crate) fn auth_options(servers: Vec<String>) -> Options {
    Options {
        auth_http_addresses: servers,
        http_client_connect_timeout: Duration::from_millis(300),
        http_client_request_timeout: Duration::from_millis(400),
        ..golden_options()
    }
}

async fn auth(conn: &mut Conn, secret: &str) {
    conn.command(Command::Auth {
        secret: Bytes::copy_from_slice(secret.as_bytes()),
    })
    .await;
}

/// A connection that sent AUTH and got alice's answer.
async fn alice_conn(server: &Server) -> Conn {
    let mut conn = server.conn().await;
    auth(&mut conn, "alice-secret").await;
    conn.expect_response(ALICE_ANSWER).await;
    conn
}

fn pub_cmd(topic: &str) -> Command {
    Command::Pub {
        topic: topic.into(),
        body: Bytes::from_static(b"m"),
    }
}

#[tokio::test]
async fn without_auth_servers_auth_is_disabled_and_fatal() {
    let server = start_with(golden_options()).await;
    let mut conn = server.conn().await;
    auth(&mut conn, "secret").await;
    conn.expect_fatal("E_AUTH_DISABLED AUTH disabled").await;
    server.stop().await;
}

#[tokio::test]
async fn identify_says_auth_is_required() {
    let fake = FakeAuth::start(alice(60)).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut conn = server.conn().await;
    let answer = conn.identify(r#"{"feature_negotiation":true}"#).await;
    let json: serde_json::Value = serde_json::from_slice(&answer.data).unwrap();
    assert_eq!(json["auth_required"], true, "{json}");
    server.stop().await;
}

#[tokio::test]
async fn every_guarded_command_before_auth_is_auth_first() {
    let fake = FakeAuth::start(alice(60)).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let cases: [(&[u8], &str); 4] = [
        (b"SUB orders billing\n", "SUB"),
        (b"PUB pubs\n\x00\x00\x00\x01m", "PUB"),
        (b"DPUB pubs 10\n\x00\x00\x00\x01m", "DPUB"),
        (
            b"MPUB pubs\n\x00\x00\x00\x09\x00\x00\x00\x01\x00\x00\x00\x01m",
            "MPUB",
        ),
    ];
    for (bytes, name) in cases {
        let mut conn = server.conn().await;
        conn.send(bytes).await;
        conn.expect_fatal(&format!("E_AUTH_FIRST AUTH required before {name}"))
            .await;
    }
    assert!(fake.targets().is_empty(), "no AUTH, no query");
    assert!(server.topic_names().await.is_empty(), "nothing created");
    server.stop().await;
}

/// Go checks an MPUB's auth before reading its body (and a PUB's after), so an MPUB line
/// alone is refused at once, and a bad MPUB body is never looked at.
#[tokio::test]
async fn mpub_is_checked_before_its_body_and_pub_after() {
    let fake = FakeAuth::start(alice(60)).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut mpub = server.conn().await;
    mpub.send(b"MPUB pubs\n").await;
    mpub.expect_fatal("E_AUTH_FIRST AUTH required before MPUB")
        .await;
    let mut bad_body = server.conn().await;
    bad_body.send(b"MPUB pubs\n\x00\x00\x00\x00").await;
    bad_body
        .expect_fatal("E_AUTH_FIRST AUTH required before MPUB")
        .await;
    let mut publish = server.conn().await;
    publish.send(b"PUB pubs\n").await;
    publish.expect_quiet().await;
    publish.send(b"\x00\x00\x00\x01m").await;
    publish
        .expect_fatal("E_AUTH_FIRST AUTH required before PUB")
        .await;
    assert!(server.topic_names().await.is_empty());

    // Once allowed, an MPUB whose body arrives in pieces is checked once and goes through.
    let mut conn = alice_conn(&server).await;
    conn.send(b"MPUB pubs\n\x00\x00\x00\x09").await;
    conn.expect_quiet().await;
    conn.send(b"\x00\x00\x00\x01\x00\x00\x00\x01m").await;
    conn.expect_ok().await;
    assert_eq!(fake.targets().len(), 1, "{:?}", fake.targets());
    server.stop().await;
}

#[tokio::test]
async fn allowed_operations_succeed_and_the_query_carries_go_parameters() {
    let fake = FakeAuth::start(alice(60)).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut producer = alice_conn(&server).await;
    producer.publish("pubs", b"one").await;
    producer
        .command(Command::Dpub {
            topic: "pubs.later".into(),
            defer_ms: 10,
            body: Bytes::from_static(b"two"),
        })
        .await;
    producer.expect_ok().await;
    producer
        .command(Command::Mpub {
            topic: "pubs".into(),
            bodies: vec![Bytes::from_static(b"3"), Bytes::from_static(b"4")],
        })
        .await;
    producer.expect_ok().await;
    let mut consumer = alice_conn(&server).await;
    consumer.sub("orders", "billing-eu").await;

    let targets = fake.targets();
    assert_eq!(
        targets.len(),
        2,
        "one query per AUTH, cached after: {targets:?}"
    );
    assert_eq!(
        targets[0],
        "/auth?common_name=&remote_ip=127.0.0.1&secret=alice-secret&tls=false"
    );
    let channel = server.channel_stats("orders", "billing-eu").await;
    let client = &channel["clients"][0];
    assert_eq!(client["authed"], true, "{channel}");
    assert_eq!(client["auth_identity"], "alice");
    assert_eq!(client["auth_identity_url"], "http://auth.example/alice");
    server.stop().await;
}

#[tokio::test]
async fn operations_outside_the_grants_are_unauthorized() {
    let fake = FakeAuth::start(alice(60)).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut conn = alice_conn(&server).await;
    conn.command(pub_cmd("orders")).await;
    conn.expect_fatal(r#"E_UNAUTHORIZED AUTH failed for PUB on "orders" """#)
        .await;
    let mut conn = alice_conn(&server).await;
    conn.send(b"SUB orders shipping\n").await;
    conn.expect_fatal(r#"E_UNAUTHORIZED AUTH failed for SUB on "orders" "shipping""#)
        .await;
    let mut conn = alice_conn(&server).await;
    conn.send(b"SUB pubs billing\n").await;
    conn.expect_fatal(r#"E_UNAUTHORIZED AUTH failed for SUB on "pubs" "billing""#)
        .await;
    let mut conn = alice_conn(&server).await;
    conn.send(b"MPUB orders\n").await;
    conn.expect_fatal(r#"E_UNAUTHORIZED AUTH failed for MPUB on "orders" """#)
        .await;
    assert!(server.topic_names().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn an_answer_without_grants_is_unauthorized() {
    let fake = FakeAuth::start(Answer::Json(
        r#"{"ttl":60,"identity":"mallory","authorizations":[]}"#.into(),
    ))
    .await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut conn = server.conn().await;
    auth(&mut conn, "guess").await;
    conn.expect_fatal("E_UNAUTHORIZED AUTH no authorizations found")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn a_second_auth_is_invalid() {
    let fake = FakeAuth::start(alice(60)).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut conn = alice_conn(&server).await;
    auth(&mut conn, "again").await;
    conn.expect_fatal("E_INVALID AUTH already set").await;
    assert_eq!(fake.targets().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_expired_answer_is_asked_for_again_at_the_next_check() {
    let fake = FakeAuth::start(alice(1)).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut conn = alice_conn(&server).await;
    conn.publish("pubs", b"fresh").await;
    assert_eq!(fake.targets().len(), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    conn.publish("pubs", b"renewed").await;
    assert_eq!(fake.targets().len(), 2, "re-queried after the ttl");
    conn.publish("pubs", b"cached").await;
    assert_eq!(fake.targets().len(), 2);

    // The renewed answer takes publishing away.
    fake.set(Answer::Json(
        r#"{"ttl":1,"authorizations":[{"topic":"^orders$","channels":["^bill"],"permissions":["subscribe"]}]}"#
            .into(),
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    conn.command(pub_cmd("pubs")).await;
    conn.expect_fatal(r#"E_UNAUTHORIZED AUTH failed for PUB on "pubs" """#)
        .await;
    assert_eq!(fake.targets().len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn a_failed_renewal_is_auth_failed() {
    let fake = FakeAuth::start(alice(1)).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut conn = alice_conn(&server).await;
    fake.set(Answer::Garbage);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    conn.command(pub_cmd("pubs")).await;
    conn.expect_fatal("E_AUTH_FAILED AUTH failed").await;
    server.stop().await;
}

#[tokio::test]
async fn garbage_bad_status_and_bad_answers_are_auth_failed() {
    let fake = FakeAuth::start(Answer::Garbage).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let answers = [
        Answer::Garbage,
        Answer::Status(500),
        Answer::Json(r#"{"ttl":0,"authorizations":[]}"#.into()),
        Answer::Json(
            r#"{"ttl":5,"authorizations":[{"topic":"(","permissions":["publish"]}]}"#.into(),
        ),
        Answer::Json(
            r#"{"ttl":5,"authorizations":[{"topic":"a","permissions":["admin"]}]}"#.into(),
        ),
        Answer::Json(r#"{"ttl":"5"}"#.into()),
    ];
    for answer in answers {
        fake.set(answer.clone());
        let mut conn = server.conn().await;
        auth(&mut conn, "s").await;
        conn.expect_fatal("E_AUTH_FAILED AUTH failed").await;
    }
    // The daemon carries on.
    fake.set(alice(60));
    let mut conn = alice_conn(&server).await;
    conn.publish("pubs", b"still here").await;
    server.stop().await;
}

#[tokio::test]
async fn a_hung_auth_server_fails_one_client_after_the_request_timeout() {
    let fake = FakeAuth::start(Answer::Hang).await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut stuck = server.conn().await;
    let started = Instant::now();
    auth(&mut stuck, "s").await;

    // Meanwhile other clients are served.
    let mut other = server.conn().await;
    let answer = other.identify(r#"{"feature_negotiation":true}"#).await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "not held up"
    );
    assert!(answer.text().contains("\"auth_required\":true"));

    stuck.expect_fatal("E_AUTH_FAILED AUTH failed").await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < WAIT,
        "failed after the 400 ms request timeout, not {waited:?}"
    );
    fake.set(alice(60));
    alice_conn(&server).await.publish("pubs", b"ok").await;
    server.stop().await;
}

#[tokio::test]
async fn a_dead_server_is_skipped_for_a_live_one() {
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let live = FakeAuth::start(alice(60)).await;
    let server = start_with(auth_options(vec![dead, live.address()])).await;
    for _ in 0..4 {
        alice_conn(&server).await.publish("pubs", b"m").await;
    }
    assert_eq!(live.targets().len(), 4);
    server.stop().await;
}

#[tokio::test]
async fn when_every_server_fails_auth_fails() {
    let a = FakeAuth::start(Answer::Status(403)).await;
    let b = FakeAuth::start(Answer::Garbage).await;
    let server = start_with(auth_options(vec![a.address(), b.address()])).await;
    let mut conn = server.conn().await;
    auth(&mut conn, "s").await;
    conn.expect_fatal("E_AUTH_FAILED AUTH failed").await;
    assert_eq!(
        (a.targets().len(), b.targets().len()),
        (1, 1),
        "each asked once"
    );
    server.stop().await;
}

/// The first server asked is drawn from the daemon's seeded RNG, so with a fixed seed
/// the spread over two live servers is fixed too.
#[tokio::test]
async fn servers_are_tried_from_a_random_start() {
    let a = FakeAuth::start(alice(60)).await;
    let b = FakeAuth::start(alice(60)).await;
    let env = Env {
        rng: Arc::new(SeededRng::new(8)),
        ..Env::real()
    };
    let server = start_with_env(auth_options(vec![a.address(), b.address()]), env).await;
    for _ in 0..8 {
        alice_conn(&server).await;
    }
    let (from_a, from_b) = (a.targets().len(), b.targets().len());
    assert_eq!(from_a + from_b, 8);
    assert!(from_a > 0 && from_b > 0, "a {from_a}, b {from_b}");
    server.stop().await;
}

#[tokio::test]
async fn a_url_address_keeps_its_path() {
    let fake = FakeAuth::start(alice(60)).await;
    let url = format!("http://{}/v1/check", fake.address());
    let server = start_with(auth_options(vec![url])).await;
    alice_conn(&server).await;
    let targets = fake.targets();
    assert!(
        targets[0].starts_with("/v1/check?common_name=&remote_ip=127.0.0.1&"),
        "{targets:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn over_tls_the_query_carries_tls_and_the_client_certificate_s_common_name() {
    let pki = crate::tls::Pki::new();
    let fake = FakeAuth::start(alice(60)).await;
    let tls = pki.options();
    let server = start_with(Options {
        tls_cert: tls.tls_cert,
        tls_key: tls.tls_key,
        tls_client_auth_policy: "require".into(),
        ..auth_options(vec![fake.address()])
    })
    .await;
    let identity = Some((pki.client_pem.as_str(), pki.client_key_pem.as_str()));
    let mut conn = crate::tls::tls_conn(&server, pki.client(identity)).await;
    auth(&mut conn, "s").await;
    conn.expect_response(ALICE_ANSWER).await;
    assert_eq!(
        fake.targets(),
        vec!["/auth?common_name=trusted-client&remote_ip=127.0.0.1&secret=s&tls=true"]
    );
    server.stop().await;
}

/// An `https://` auth server is asked over TLS, trusting the system's roots, which nsqd
/// reads where Go does (`/etc/ssl/certs/ca-certificates.crt`); here that file, on an
/// in-memory disk, holds the test CA.
#[tokio::test]
async fn an_https_auth_server_is_asked_over_tls_trusting_the_system_roots() {
    let pki = crate::tls::Pki::new();
    let fake = FakeAuth::start_with_tls(alice(60), Some(pki.localhost_server_config())).await;
    let fs = MemFs::new();
    for dir in ["/etc/ssl/certs", "/data"] {
        nsq::env::Fs::create_dir_all(&fs, std::path::Path::new(dir))
            .await
            .unwrap();
    }
    nsq::env::Fs::write(
        &fs,
        std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"),
        pki.ca_pem().as_bytes(),
    )
    .await
    .unwrap();
    let env = Env {
        fs: Arc::new(fs),
        ..Env::real()
    };
    let url = format!("https://localhost:{}/auth", fake.addr.port());
    let server = start_with_env(
        Options {
            data_path: "/data".into(),
            ..auth_options(vec![url])
        },
        env,
    )
    .await;
    let mut conn = alice_conn(&server).await;
    conn.publish("pubs", b"over https").await;
    assert_eq!(fake.targets().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn nsq_tail_authenticates_with_its_auth_secret_and_says_when_it_has_none() {
    let fake = FakeAuth::start(Answer::Json(
        r#"{"ttl":60,"identity":"tail","authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe","publish"]}]}"#.to_string(),
    ))
    .await;
    let server = start_with(auth_options(vec![fake.address()])).await;
    let mut publisher = server.conn().await;
    auth(&mut publisher, "s3cret").await;
    publisher.frame().await;
    publisher.command(pub_cmd("guarded")).await;
    publisher.expect_ok().await;
    let tcp = server.tcp.to_string();
    let tail = |opts: &'static [&'static str]| {
        let mut args = vec![
            "--topic=guarded".to_string(),
            format!("--nsqd-tcp-address={tcp}"),
            "-n=1".to_string(),
        ];
        args.extend(opts.iter().map(|s| s.to_string()));
        tokio::process::Command::new(env!("CARGO_BIN_EXE_nsq_tail"))
            .args(args)
            .kill_on_drop(true)
            .output()
    };
    let without = tokio::time::timeout(WAIT, tail(&[]))
        .await
        .expect("in time")
        .expect("ran");
    assert_eq!(without.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("Auth Required"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
    let with = tokio::time::timeout(WAIT, tail(&["--consumer-opt=auth_secret,s3cret"]))
        .await
        .expect("in time")
        .expect("ran");
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&with.stdout), "m\n");
    server.stop().await;
}
