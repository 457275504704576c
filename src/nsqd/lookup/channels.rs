//! Channel pre-creation (nsq-reference §4.1): when a topic is new, every lookupd is asked
//! over HTTP for the channels it knows of that topic (`GET /channels?topic=`), so that
//! messages published here also reach channels whose consumers live on other nodes.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::time::timeout;

use crate::env::Net;

/// The largest `/channels` answer read.
const CHANNELS_BODY_MAX: usize = 4 * 1024 * 1024;

/// Why one lookupd could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ChannelsError {
    /// Connecting took longer than `--http-client-connect-timeout`.
    #[error("connect timeout")]
    ConnectTimeout,
    /// The request took longer than `--http-client-request-timeout`.
    #[error("request timeout")]
    RequestTimeout,
    /// The TCP connect failed.
    #[error("connect failed - {0}")]
    Connect(std::io::Error),
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(String),
    /// An answer other than 200.
    #[error("got response {0}")]
    Status(StatusCode),
    /// The body was not `{"channels":[...]}`.
    #[error("bad body - {0}")]
    Body(String),
}

/// The timeouts Go's `http_api.Client` uses.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// `--http-client-connect-timeout`.
    pub connect: Duration,
    /// `--http-client-request-timeout`.
    pub request: Duration,
}

#[derive(Deserialize)]
struct ChannelsAnswer {
    #[serde(default)]
    channels: Option<Vec<String>>,
}

/// Go's `GetLookupdTopicChannels`: the sorted union of every lookupd's channels of
/// `topic`. Lookupds that fail are logged and skipped; an error only when all failed.
pub async fn lookupd_topic_channels(
    net: &dyn Net,
    http_addresses: &[String],
    topic: &str,
    timeouts: HttpTimeouts,
) -> Result<Vec<String>, ChannelsError> {
    let queries = http_addresses
        .iter()
        .map(|addr| query(net, addr, topic, timeouts));
    let answers = futures_util::future::join_all(queries).await;
    let mut all = std::collections::BTreeSet::new();
    let mut last_error = None;
    let mut any_ok = false;
    for (addr, answer) in http_addresses.iter().zip(answers) {
        match answer {
            Ok(channels) => {
                any_ok = true;
                all.extend(channels);
            }
            Err(error) => {
                tracing::warn!(lookupd = %addr, topic = %topic, %error, "lookupd /channels failed");
                last_error = Some(error);
            }
        }
    }
    match (any_ok, last_error) {
        (false, Some(error)) => Err(error),
        _ => Ok(all.into_iter().collect()),
    }
}

/// One `GET /channels?topic=` to the lookupd at `addr`.
async fn query(
    net: &dyn Net,
    addr: &str,
    topic: &str,
    timeouts: HttpTimeouts,
) -> Result<Vec<String>, ChannelsError> {
    let stream = timeout(timeouts.connect, net.connect_tcp(addr))
        .await
        .map_err(|_| ChannelsError::ConnectTimeout)?
        .map_err(ChannelsError::Connect)?;
    let escaped: String = form_urlencoded::byte_serialize(topic.as_bytes()).collect();
    let request = Request::get(format!("/channels?topic={escaped}"))
        .header(HOST, addr)
        .header(ACCEPT, "application/vnd.nsq; version=1.0")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ChannelsError::Http(e.to_string()))?;
    let exchange = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ChannelsError::Http(e.to_string()))?;
        // The connection drives the IO; it must never win the race below.
        let drive = async {
            let _ = connection.await;
            std::future::pending::<()>().await
        };
        let ask = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| ChannelsError::Http(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), CHANNELS_BODY_MAX)
                .collect()
                .await
                .map_err(|e| ChannelsError::Http(e.to_string()))?
                .to_bytes();
            if status != StatusCode::OK {
                return Err(ChannelsError::Status(status));
            }
            let answer: ChannelsAnswer =
                serde_json::from_slice(&body).map_err(|e| ChannelsError::Body(e.to_string()))?;
            Ok(answer.channels.unwrap_or_default())
        };
        tokio::select! {
            biased;
            answer = ask => answer,
            _ = drive => Err(ChannelsError::Http("connection ended".into())),
        }
    };
    timeout(timeouts.request, exchange)
        .await
        .map_err(|_| ChannelsError::RequestTimeout)?
}
