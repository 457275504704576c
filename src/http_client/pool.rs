//! Any HTTP/1.1 request over the `Env`'s network, with Go's `http.Client` bounds (a
//! connect timeout, a timeout over the whole exchange) and its keep-alive: a connection
//! whose answer was read to the end goes back to an idle pool for the next request to
//! the same address, as Go's `Transport` does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::time::{timeout, Instant};

use super::{HttpGetError, HttpTarget, HttpTimeouts};
use crate::env::Net;

/// How long an idle connection is kept (Go's `IdleConnTimeout` in NSQ's transport).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most idle connections kept per address (Go's `MaxIdleConns` in NSQ's transport).
const MAX_IDLE_PER_ADDRESS: usize = 100;

type Sender = SendRequest<Full<Bytes>>;

/// An HTTP client with a keep-alive pool, over any [`Net`].
pub struct HttpClient {
    net: Arc<dyn Net>,
    timeouts: HttpTimeouts,
    /// What `https://` requests trust (None: they fail with [`HttpGetError::Tls`]).
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: std::sync::Mutex<HashMap<String, Vec<(Sender, Instant)>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client dialling through `net`: each connect within `timeouts.connect`, each
    /// request (connect, send, the whole answer) within `timeouts.request`.
    pub fn new(net: Arc<dyn Net>, timeouts: HttpTimeouts) -> Self {
        HttpClient {
            net,
            timeouts,
            tls: None,
            idle: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The same client, speaking TLS with `config` to `https://` targets.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Sends `method` with `headers` and `body` to `target` and reads the answer to its
    /// end (discarding it, a frame at a time); returns its status. Header names go out
    /// in Go's canonical case (`Content-Type`).
    pub async fn send(
        &self,
        method: Method,
        target: &HttpTarget,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<StatusCode, HttpGetError> {
        let exchange = async {
            let (mut sender, reused) = self.sender(target).await?;
            let request = build(&method, target, headers, body.clone())?;
            let response = match sender.send_request(request).await {
                Ok(response) => response,
                // A kept-alive connection the server closed meanwhile: once more, afresh
                // (Go retries such requests too).
                Err(_) if reused => {
                    sender = self.connect(target).await?;
                    let request = build(&method, target, headers, body)?;
                    sender.send_request(request).await?
                }
                Err(error) => return Err(HttpGetError::Http(error)),
            };
            let status = response.status();
            let mut answer = response.into_body();
            while let Some(frame) = answer.frame().await {
                frame?;
            }
            self.put_back(&pool_key(target), sender);
            Ok(status)
        };
        timeout(self.timeouts.request, exchange)
            .await
            .map_err(|_| HttpGetError::RequestTimeout)?
    }

    /// An idle connection to `target`'s server that is still open, else a new one; and
    /// whether it was reused.
    async fn sender(&self, target: &HttpTarget) -> Result<(Sender, bool), HttpGetError> {
        while let Some(mut sender) = self.take_idle(&pool_key(target)) {
            if sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
        Ok((self.connect(target).await?, false))
    }

    fn take_idle(&self, address: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(address)?;
        while let Some((sender, since)) = list.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    fn put_back(&self, address: &str, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(address.to_string()).or_default();
            list.retain(|(sender, since)| !sender.is_closed() && since.elapsed() < IDLE_TIMEOUT);
            if list.len() < MAX_IDLE_PER_ADDRESS {
                list.push((sender, Instant::now()));
            }
        }
    }

    /// Dials within the connect timeout (the TLS handshake included, for `https`) and
    /// starts HTTP/1.1 on the stream; the connection is driven by a task of its own
    /// until both sides let go of it.
    async fn connect(&self, target: &HttpTarget) -> Result<Sender, HttpGetError> {
        let dial = async {
            let stream = self
                .net
                .connect_tcp(&target.address)
                .await
                .map_err(HttpGetError::Connect)?;
            let Some(name) = &target.tls_server_name else {
                return Ok::<_, HttpGetError>(stream);
            };
            let config = self.tls.clone().ok_or_else(|| {
                HttpGetError::Tls(std::io::Error::other("no TLS configuration for https"))
            })?;
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| HttpGetError::Tls(std::io::Error::other(e.to_string())))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(HttpGetError::Tls)?;
            Ok(Box::new(tls) as crate::env::BoxStream)
        };
        let stream = timeout(self.timeouts.connect, dial)
            .await
            .map_err(|_| HttpGetError::ConnectTimeout)??;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// Where kept connections are filed: plain and TLS connections to one address differ.
fn pool_key(target: &HttpTarget) -> String {
    match &target.tls_server_name {
        Some(name) => format!("https://{name}@{}", target.address),
        None => format!("http://{}", target.address),
    }
}

fn build(
    method: &Method,
    target: &HttpTarget,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, HttpGetError> {
    let mut request = Request::builder()
        .method(method.clone())
        .uri(target.path_and_query.as_str())
        .header(HOST, target.host.as_str())
        .body(Full::new(body))?;
    for (name, value) in headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::RealNet;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every request on a connection with 204, keeping it open,
    /// and counts the connections it accepted.
    async fn keep_alive_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        // Bodies here are empty: one request per blank line.
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 204 No Content\r\n\r\n";
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    fn timeouts() -> HttpTimeouts {
        HttpTimeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn a_connection_is_kept_for_the_next_request() {
        let (address, accepted) = keep_alive_server().await;
        let client = HttpClient::new(Arc::new(RealNet), timeouts());
        let target = HttpTarget::parse(&format!("http://{address}/x")).unwrap();
        for _ in 0..3 {
            let status = client
                .send(Method::GET, &target, &HeaderMap::new(), Bytes::new())
                .await
                .unwrap();
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_connect_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let client = HttpClient::new(Arc::new(RealNet), timeouts());
        let target = HttpTarget::parse(&format!("http://{address}/")).unwrap();
        let sent = client
            .send(Method::POST, &target, &HeaderMap::new(), Bytes::from("x"))
            .await;
        assert!(matches!(sent, Err(HttpGetError::Connect(_))), "{sent:?}");
    }
}
