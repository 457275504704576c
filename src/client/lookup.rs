//! Discovery: which nsqds hold a topic, asked of one or more nsqlookupds (`GET
//! /lookup?topic=`), as go-nsq's consumers and Go's tools do.

use serde::Deserialize;

use super::ClientError;
use crate::env::Net;
use crate::http_client::{get_json, HttpGetError, HttpTimeouts};

/// The largest `/lookup` answer read.
const LOOKUP_BODY_MAX: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
struct LookupAnswer {
    #[serde(default)]
    producers: Option<Vec<Producer>>,
}

#[derive(Deserialize)]
struct Producer {
    broadcast_address: String,
    tcp_port: u16,
}

/// The TCP addresses (`broadcast_address:tcp_port`) of every nsqd any of
/// `lookupd_http_addresses` lists for `topic`, deduplicated and sorted. A lookupd that
/// does not know the topic (404) lists none; an error only when every lookupd failed.
pub async fn lookup_nsqds(
    net: &dyn Net,
    lookupd_http_addresses: &[String],
    topic: &str,
    timeouts: HttpTimeouts,
) -> Result<Vec<String>, ClientError> {
    let escaped: String = form_urlencoded::byte_serialize(topic.as_bytes()).collect();
    let path = format!("/lookup?topic={escaped}");
    let mut found = std::collections::BTreeSet::new();
    let mut last_error = None;
    let mut answered = false;
    for addr in lookupd_http_addresses {
        match get_json::<LookupAnswer>(net, addr, &path, timeouts, LOOKUP_BODY_MAX).await {
            Ok(answer) => {
                answered = true;
                for producer in answer.producers.unwrap_or_default() {
                    found.insert(format!(
                        "{}:{}",
                        producer.broadcast_address, producer.tcp_port
                    ));
                }
            }
            Err(HttpGetError::Status(status)) if status == hyper::StatusCode::NOT_FOUND => {
                answered = true;
            }
            Err(error) => last_error = Some(error),
        }
    }
    match (answered, last_error) {
        (false, Some(error)) => Err(ClientError::Lookup(error)),
        _ => Ok(found.into_iter().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::RealNet;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server answering `status` with `body`; returns its address.
    async fn serve_once(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let _ = stream.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        });
        addr
    }

    fn timeouts() -> HttpTimeouts {
        HttpTimeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn producers_of_every_lookupd_are_merged() {
        let a = serve_once(
            "200 OK",
            r#"{"channels":["c"],"producers":[{"remote_address":"127.0.0.1:5","hostname":"h","broadcast_address":"n1","tcp_port":4150,"http_port":4151,"version":"1.3.0"}]}"#,
        )
        .await;
        let b = serve_once(
            "200 OK",
            r#"{"channels":[],"producers":[{"broadcast_address":"n2","tcp_port":4152,"http_port":4153},{"broadcast_address":"n1","tcp_port":4150,"http_port":4151}]}"#,
        )
        .await;
        let found = lookup_nsqds(&RealNet, &[a, b], "t", timeouts())
            .await
            .unwrap();
        assert_eq!(found, vec!["n1:4150", "n2:4152"]);
    }

    #[tokio::test]
    async fn an_unknown_topic_lists_nothing_and_all_failing_is_an_error() {
        let missing = serve_once("404 Not Found", r#"{"message":"TOPIC_NOT_FOUND"}"#).await;
        let found = lookup_nsqds(&RealNet, &[missing], "t", timeouts())
            .await
            .unwrap();
        assert!(found.is_empty());
        let broken = serve_once("500 Internal Server Error", r#"{"message":"X"}"#).await;
        let failed = lookup_nsqds(&RealNet, &[broken], "t", timeouts()).await;
        assert!(matches!(failed, Err(ClientError::Lookup(_))), "{failed:?}");
    }
}
