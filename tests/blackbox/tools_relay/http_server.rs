//! A loopback HTTP/1.1 server for nsq_to_http to talk to: it records every request
//! (method, target, headers, body, the status it answered) and answers with the status
//! (and after the delay) the test's function picks for the n-th request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
    /// The status answered.
    pub status: u16,
}

/// Picks the status and the delay of the answer to the n-th request (from 0).
pub type Answer = Arc<dyn Fn(usize) -> (u16, Duration) + Send + Sync>;

/// A running test server; it stops with the test's runtime.
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpServer {
    /// Starts a server answering `answer(n)` to the n-th request.
    pub async fn start(answer: Answer) -> HttpServer {
        HttpServer::start_with_tls(answer, None).await
    }

    /// [`start`](Self::start), speaking TLS with `tls` when given (HTTPS).
    pub async fn start_with_tls(
        answer: Answer,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> HttpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Mutex::new(0usize));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, arrived, answer) = (log.clone(), arrived.clone(), answer.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (log, arrived, answer) = (log.clone(), arrived.clone(), answer.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes().to_vec();
                        let n = {
                            let mut arrived = arrived.lock().expect("lock");
                            *arrived += 1;
                            *arrived - 1
                        };
                        let (status, delay) = answer(n);
                        tokio::time::sleep(delay).await;
                        log.lock().expect("lock").push(Seen {
                            method: parts.method.to_string(),
                            target: parts.uri.to_string(),
                            headers: parts.headers,
                            body,
                            status,
                        });
                        let response = Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from_static(b"answer")))
                            .expect("a response");
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let tls = tls.clone();
                tokio::spawn(async move {
                    let stream: nsq::env::BoxStream = match tls {
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            match acceptor.accept(stream).await {
                                Ok(stream) => Box::new(stream),
                                Err(_) => return,
                            }
                        }
                        None => Box::new(stream),
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpServer { addr, seen }
    }

    /// A server that answers every request with `status` at once.
    pub async fn answering(status: u16) -> HttpServer {
        HttpServer::start(Arc::new(move |_| (status, Duration::ZERO))).await
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}
