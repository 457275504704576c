//! A small HTTP/1.1 `GET` of a JSON answer over the `Env`'s network, with Go's
//! `http_api.Client` timeouts and a bounded body: how nsqd asks lookupds for channels and
//! how our clients ask them for producers, on real sockets and inside simulations alike.
//!
//! Also any request to a full `http://` URL ([`HttpTarget`]) with a keep-alive pool
//! ([`HttpClient`]), as nsq_to_http sends them.

mod pool;
mod target;

pub use pool::HttpClient;
pub use target::{HttpTarget, TargetError};

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::time::timeout;

use crate::env::Net;

/// Why an HTTP request failed (a [`get_json`], or an [`HttpClient`] request).
#[derive(Debug, thiserror::Error)]
pub enum HttpGetError {
    /// Connecting took longer than the connect timeout.
    #[error("connect timeout")]
    ConnectTimeout,
    /// The request took longer than the request timeout.
    #[error("request timeout")]
    RequestTimeout,
    /// The TCP connect failed.
    #[error("connect failed - {0}")]
    Connect(std::io::Error),
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// The request could not be made (a bad header or path).
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
    /// The answer's body could not be read, or was longer than allowed.
    #[error("{0}")]
    ReadBody(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server closed the connection before it answered.
    #[error("connection ended")]
    ConnectionEnded,
    /// An answer other than 200.
    #[error("got response {0}")]
    Status(StatusCode),
    /// The body was not the JSON expected.
    #[error("bad body - {0}")]
    Body(String),
    /// The TLS handshake with an `https://` server failed.
    #[error("TLS handshake failed - {0}")]
    Tls(std::io::Error),
}

/// What an `https://` request needs: the client configuration (its trusted roots) and the
/// name the server's certificate must carry.
#[derive(Clone)]
pub struct TlsTarget {
    /// The rustls client configuration.
    pub config: std::sync::Arc<rustls::ClientConfig>,
    /// The host part of the URL.
    pub server_name: String,
}

/// The timeouts Go's `http_api.Client` uses.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// `--http-client-connect-timeout`.
    pub connect: Duration,
    /// `--http-client-request-timeout`.
    pub request: Duration,
}

/// `GET http://<addr><path_and_query>` and decodes a 200 answer of at most `body_max`
/// bytes as `T`. Sends Go's `Accept: application/vnd.nsq; version=1.0`.
pub async fn get_json<T: DeserializeOwned>(
    net: &dyn Net,
    addr: &str,
    path_and_query: &str,
    timeouts: HttpTimeouts,
    body_max: usize,
) -> Result<T, HttpGetError> {
    get_json_via(net, addr, None, path_and_query, timeouts, body_max).await
}

/// [`get_json`] over TLS when `tls` is given (`https://`); the handshake counts against
/// the connect timeout.
pub async fn get_json_via<T: DeserializeOwned>(
    net: &dyn Net,
    addr: &str,
    tls: Option<&TlsTarget>,
    path_and_query: &str,
    timeouts: HttpTimeouts,
    body_max: usize,
) -> Result<T, HttpGetError> {
    let connect = async {
        let stream = net.connect_tcp(addr).await.map_err(HttpGetError::Connect)?;
        match tls {
            None => Ok::<_, HttpGetError>(stream),
            Some(target) => {
                let name = rustls::pki_types::ServerName::try_from(target.server_name.clone())
                    .map_err(|e| HttpGetError::Tls(std::io::Error::other(e.to_string())))?;
                let connector = tokio_rustls::TlsConnector::from(target.config.clone());
                let tls_stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(HttpGetError::Tls)?;
                Ok(Box::new(tls_stream) as crate::env::BoxStream)
            }
        }
    };
    let stream = timeout(timeouts.connect, connect)
        .await
        .map_err(|_| HttpGetError::ConnectTimeout)??;
    let request = Request::get(path_and_query)
        .header(HOST, addr)
        .header(ACCEPT, "application/vnd.nsq; version=1.0")
        .body(Empty::<Bytes>::new())?;
    let exchange = async {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection drives the IO; it must never win the race below.
        let drive = async {
            let _ = connection.await;
            std::future::pending::<()>().await
        };
        let ask = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), body_max)
                .collect()
                .await
                .map_err(HttpGetError::ReadBody)?
                .to_bytes();
            if status != StatusCode::OK {
                return Err(HttpGetError::Status(status));
            }
            serde_json::from_slice(&body).map_err(|e| HttpGetError::Body(e.to_string()))
        };
        tokio::select! {
            biased;
            answer = ask => answer,
            _ = drive => Err(HttpGetError::ConnectionEnded),
        }
    };
    timeout(timeouts.request, exchange)
        .await
        .map_err(|_| HttpGetError::RequestTimeout)?
}
