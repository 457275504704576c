//! TLS: the in-protocol upgrade after IDENTIFY `tls_v1` (a real handshake, then `OK` over
//! TLS), `--tls-required` on TCP and HTTP, the HTTPS listener, client certificates under
//! `--tls-client-auth-policy`, a handshake that never finishes, and TLS in `/stats`.
//! Certificates are made in the test with rcgen.

// The certificates are real files for nsqd to read; only the daemons go through Env.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use nsq::env::BoxStream;
use nsq::nsqd::Options;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{golden_options, start_with, Conn, Server, OK_FRAME, WAIT};

/// A test CA, a server certificate for `localhost`, and client certificates, as PEM files
/// in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    /// Signed by the CA, CN `trusted-client`.
    pub client_pem: String,
    pub client_key_pem: String,
    /// Self-signed, CN `stranger`.
    stranger_pem: String,
    stranger_key_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "nsq-rs test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "trusted-client");
        let client = client_params.signed_by(&client_key, &ca).unwrap();
        let stranger_key = KeyPair::generate().unwrap();
        let mut stranger_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        stranger_params
            .distinguished_name
            .push(DnType::CommonName, "stranger");
        let stranger = stranger_params.self_signed(&stranger_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca_pem: ca.pem(),
            client_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
            stranger_pem: stranger.pem(),
            stranger_key_pem: stranger_key.serialize_pem(),
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A server configuration presenting the `localhost` certificate (for fake servers
    /// nsqd connects to).
    pub fn localhost_server_config(&self) -> Arc<rustls::ServerConfig> {
        let read = |name: &str| std::fs::read(self.dir.path().join(name)).unwrap();
        let certs = CertificateDer::pem_slice_iter(&read("server.pem"))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&read("server.key")).unwrap();
        let provider = Arc::new(rustls_graviola::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// nsqd options with this PKI's server certificate.
    pub fn options(&self) -> Options {
        Options {
            tls_cert: self.path("server.pem"),
            tls_key: self.path("server.key"),
            https_address: "127.0.0.1:0".into(),
            ..golden_options()
        }
    }

    /// A client configuration trusting the CA, optionally presenting a certificate.
    pub fn client(&self, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls_graviola::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => {
                let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

async fn tls_connect(
    config: Arc<rustls::ClientConfig>,
    stream: BoxStream,
) -> std::io::Result<BoxStream> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(WAIT, connector.connect(name, stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(Box::new(tls))
}

/// Sends IDENTIFY asking for TLS and checks the JSON answer says yes.
async fn identify_tls(server: &Server) -> Conn {
    let mut conn = server.conn().await;
    conn.send(&identify(r#"{"feature_negotiation":true,"tls_v1":true}"#))
        .await;
    let answer: Value = serde_json::from_slice(&conn.frame().await.data).unwrap();
    assert_eq!(answer["tls_v1"], true, "{answer}");
    conn
}

fn identify(json: &str) -> Vec<u8> {
    let mut out = b"IDENTIFY\n".to_vec();
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

/// IDENTIFY with TLS, the handshake, and the `OK` that comes over TLS.
pub async fn tls_conn(server: &Server, config: Arc<rustls::ClientConfig>) -> Conn {
    let conn = identify_tls(server).await;
    let mut conn = conn
        .upgrade(|stream| async move { tls_connect(config, stream).await.expect("handshake") })
        .await;
    conn.expect_raw(OK_FRAME).await;
    conn
}

#[tokio::test]
async fn identify_upgrades_to_tls_and_the_connection_works_over_it() {
    let pki = Pki::new();
    let server = start_with(pki.options()).await;
    let mut conn = tls_conn(&server, pki.client(None)).await;
    conn.send(b"PUB secure\n\x00\x00\x00\x05hello").await;
    conn.expect_ok().await;
    conn.send(b"SUB secure ch\n").await;
    conn.expect_ok().await;
    conn.send(b"RDY 1\n").await;
    let stats = server
        .wait_for_stats("a TLS client", |s| {
            s["topics"][0]["channels"][0]["clients"][0]["tls"] == true
        })
        .await;
    let client = &stats["topics"][0]["channels"][0]["clients"][0];
    let version = client["tls_version"].as_str().unwrap();
    assert!(version == "TLS1.3" || version == "TLS1.2", "{client}");
    assert!(client["tls_cipher_suite"]
        .as_str()
        .unwrap()
        .starts_with("TLS_"));
    assert_eq!(client["tls_negotiated_protocol_is_mutual"], true);
    // The message published before SUB is delivered over TLS.
    let message = conn.message().await;
    assert_eq!(&message.body[..], b"hello");
    server.stop().await;
}

#[tokio::test]
async fn without_a_certificate_tls_is_not_offered() {
    let server = start_with(golden_options()).await;
    let mut conn = server.conn().await;
    conn.send(&identify(r#"{"feature_negotiation":true,"tls_v1":true}"#))
        .await;
    let answer: Value = serde_json::from_slice(&conn.frame().await.data).unwrap();
    assert_eq!(answer["tls_v1"], false);
    // No upgrade: the connection goes on in the clear.
    conn.expect_usable("plain").await;
    server.stop().await;
}

#[tokio::test]
async fn tls_required_refuses_commands_before_the_upgrade() {
    let pki = Pki::new();
    let server = start_with(Options {
        tls_required: 2,
        ..pki.options()
    })
    .await;
    let mut plain = server.conn().await;
    plain.send(b"PUB t\n\x00\x00\x00\x01x").await;
    plain
        .expect_fatal("E_INVALID cannot PUB in current state (TLS required)")
        .await;
    let mut nop = server.conn().await;
    nop.send(b"NOP\n").await;
    nop.expect_fatal("E_INVALID cannot NOP in current state (TLS required)")
        .await;
    // After the upgrade everything works.
    let mut conn = tls_conn(&server, pki.client(None)).await;
    conn.send(b"PUB t\n\x00\x00\x00\x01x").await;
    conn.expect_ok().await;
    // Plain HTTP answers 403 naming the HTTPS port; HTTPS serves.
    let https = server.nsqd.https_addr().expect("HTTPS listens");
    let answer = server.http("GET", "/ping", None).await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.body,
        format!(
            r#"{{"message": "TLS_REQUIRED", "https_port": {}}}"#,
            https.port()
        )
        .into_bytes()
    );
    let (status, body) = https_get(&pki, https, "/ping").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, "OK");
    server.stop().await;
}

#[tokio::test]
async fn tcp_https_requires_tls_on_tcp_only() {
    let pki = Pki::new();
    let server = start_with(Options {
        tls_required: 1,
        ..pki.options()
    })
    .await;
    let mut plain = server.conn().await;
    plain.send(b"PUB t\n\x00\x00\x00\x01x").await;
    plain
        .expect_fatal("E_INVALID cannot PUB in current state (TLS required)")
        .await;
    let answer = server.http("GET", "/ping", None).await;
    assert_eq!(answer.status, 200);
    server.stop().await;
}

/// `GET path` over HTTPS; the status line and the body.
async fn https_get(pki: &Pki, addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tls_connect(pki.client(None), Box::new(tcp)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[tokio::test]
async fn require_asks_for_any_client_certificate() {
    let pki = Pki::new();
    let server = start_with(Options {
        tls_client_auth_policy: "require".into(),
        ..pki.options()
    })
    .await;
    // A self-signed certificate is enough.
    let stranger = pki.client(Some((&pki.stranger_pem, &pki.stranger_key_pem)));
    let mut conn = tls_conn(&server, stranger).await;
    conn.send(b"PUB t\n\x00\x00\x00\x01x").await;
    conn.expect_ok().await;
    // No certificate: the handshake (or the first read after it) fails.
    let refused = identify_tls(&server).await;
    assert!(handshake_refused(refused, pki.client(None)).await);
    server.stop().await;
}

#[tokio::test]
async fn require_verify_checks_the_client_certificate_against_the_root_ca() {
    let pki = Pki::new();
    let server = start_with(Options {
        tls_client_auth_policy: "require-verify".into(),
        tls_root_ca_file: pki.path("ca.pem"),
        ..pki.options()
    })
    .await;
    let trusted = pki.client(Some((&pki.client_pem, &pki.client_key_pem)));
    let mut conn = tls_conn(&server, trusted).await;
    conn.send(b"PUB t\n\x00\x00\x00\x01x").await;
    conn.expect_ok().await;
    let stranger = pki.client(Some((&pki.stranger_pem, &pki.stranger_key_pem)));
    let refused = identify_tls(&server).await;
    assert!(handshake_refused(refused, stranger).await);
    server.stop().await;
}

/// True when the server refuses the handshake: it fails, or the connection yields no `OK`.
async fn handshake_refused(conn: Conn, config: Arc<rustls::ClientConfig>) -> bool {
    let mut upgraded: Option<BoxStream> = None;
    let _ = conn
        .upgrade(|stream| async {
            match tls_connect(config, stream).await {
                Ok(tls) => {
                    upgraded = Some(tls);
                    Box::new(tokio::io::empty()) as BoxStream
                }
                Err(_) => Box::new(tokio::io::empty()) as BoxStream,
            }
        })
        .await;
    let Some(mut tls) = upgraded else {
        return true;
    };
    // TLS 1.3 reports a refused client certificate on the first read.
    let mut first = [0u8; 10];
    !matches!(
        tokio::time::timeout(WAIT, tls.read_exact(&mut first)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn a_handshake_that_never_finishes_is_dropped_after_five_seconds() {
    let pki = Pki::new();
    let server = start_with(pki.options()).await;
    let mut stalled = identify_tls(&server).await;
    // Others are served meanwhile.
    let mut other = server.conn().await;
    other.expect_usable("meanwhile").await;
    let started = tokio::time::Instant::now();
    stalled.expect_closed_within(Duration::from_secs(8)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "closed after {waited:?}, before the 5 s deadline"
    );
    other.expect_usable("after").await;
    server.stop().await;
}

#[tokio::test]
async fn a_bad_certificate_file_stops_startup_with_go_s_message() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("bad.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let options = Options {
        tls_cert: cert.to_string_lossy().into_owned(),
        tls_key: cert.to_string_lossy().into_owned(),
        data_path: dir.path().to_string_lossy().into_owned(),
        ..golden_options()
    };
    let Err(error) = nsq::nsqd::Nsqd::new(options, nsq::env::Env::real()).await else {
        panic!("nsqd started with a certificate that is not one");
    };
    assert!(
        error
            .to_string()
            .starts_with("failed to build TLS config - "),
        "{error}"
    );
}
