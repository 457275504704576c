//! Publishing: PUB, MPUB and DPUB, one synchronous round trip each.

use bytes::Bytes;

use super::connection::{Connection, ConnectionOptions};
use super::error::ClientError;
use crate::env::{BoxStream, Net};
use crate::protocol::commands::Command;

/// A publishing connection. Every publish waits for nsqd's `OK`, so when it returns `Ok`
/// the message was accepted; an error frame becomes [`ClientError::Server`].
#[derive(Debug)]
pub struct Producer {
    conn: Connection,
}

impl Producer {
    /// A producer over a connected stream.
    pub fn new(stream: BoxStream) -> Self {
        Self::from_connection(Connection::new(stream))
    }

    /// A producer over a connected stream with the given options.
    pub fn with_options(stream: BoxStream, options: ConnectionOptions) -> Self {
        Self::from_connection(Connection::with_options(stream, options))
    }

    /// Connects to nsqd at `addr` (`"host:port"`) through `net`.
    pub async fn connect(net: &dyn Net, addr: &str) -> Result<Self, ClientError> {
        Ok(Self::from_connection(Connection::connect(net, addr).await?))
    }

    /// A producer over an existing connection (which may already have identified).
    pub fn from_connection(conn: Connection) -> Self {
        Producer { conn }
    }

    /// Sends IDENTIFY; see [`Connection::identify`].
    pub async fn identify(&mut self, json: serde_json::Value) -> Result<Bytes, ClientError> {
        self.conn.identify(json).await
    }

    /// Publishes one message to `topic`.
    pub async fn publish(
        &mut self,
        topic: &str,
        body: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        let command = Command::Pub {
            topic: topic.to_owned(),
            body: body.into(),
        };
        self.conn.request_ok(&command).await
    }

    /// Publishes `bodies` to `topic` in one MPUB; nsqd accepts all or none.
    pub async fn multi_publish(
        &mut self,
        topic: &str,
        bodies: &[Bytes],
    ) -> Result<(), ClientError> {
        let command = Command::Mpub {
            topic: topic.to_owned(),
            bodies: bodies.to_vec(),
        };
        self.conn.request_ok(&command).await
    }

    /// Publishes one message to `topic` that becomes visible after `defer_ms`.
    pub async fn deferred_publish(
        &mut self,
        topic: &str,
        defer_ms: i64,
        body: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        let command = Command::Dpub {
            topic: topic.to_owned(),
            defer_ms,
            body: body.into(),
        };
        self.conn.request_ok(&command).await
    }

    /// The underlying connection, for raw commands.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Gives the connection back.
    pub fn into_connection(self) -> Connection {
        self.conn
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::Producer;
    use crate::client::test_server::{pair, TestServer};
    use crate::client::ClientError;

    fn producer() -> (Producer, TestServer) {
        let (conn, server) = pair();
        (Producer::from_connection(conn), server)
    }

    /// `size` as the 4-byte big-endian prefix the wire uses.
    fn be32(size: usize) -> [u8; 4] {
        u32::try_from(size).unwrap().to_be_bytes()
    }

    #[tokio::test]
    async fn publish_writes_pub_and_waits_for_ok() {
        let (mut producer, mut server) = producer();
        let script = tokio::spawn(async move {
            let mut expected = b"  V2PUB events\n".to_vec();
            expected.extend_from_slice(&be32(5));
            expected.extend_from_slice(b"hello");
            server.expect(&expected).await;
            server.send_response(b"OK").await;
        });
        producer.publish("events", &b"hello"[..]).await.unwrap();
        script.await.unwrap();
    }

    #[tokio::test]
    async fn multi_publish_writes_mpub_with_sizes() {
        let (mut producer, mut server) = producer();
        let script = tokio::spawn(async move {
            let mut expected = b"  V2MPUB events\n".to_vec();
            expected.extend_from_slice(&be32(4 + 4 + 1 + 4 + 2));
            expected.extend_from_slice(&be32(2));
            expected.extend_from_slice(&be32(1));
            expected.extend_from_slice(b"a");
            expected.extend_from_slice(&be32(2));
            expected.extend_from_slice(b"bc");
            server.expect(&expected).await;
            server.send_response(b"OK").await;
        });
        let bodies = [Bytes::from_static(b"a"), Bytes::from_static(b"bc")];
        producer.multi_publish("events", &bodies).await.unwrap();
        script.await.unwrap();
    }

    #[tokio::test]
    async fn deferred_publish_writes_dpub_with_the_delay() {
        let (mut producer, mut server) = producer();
        let script = tokio::spawn(async move {
            let mut expected = b"  V2DPUB events 1500\n".to_vec();
            expected.extend_from_slice(&be32(1));
            expected.extend_from_slice(b"z");
            server.expect(&expected).await;
            server.send_response(b"OK").await;
        });
        producer
            .deferred_publish("events", 1500, &b"z"[..])
            .await
            .unwrap();
        script.await.unwrap();
    }

    #[tokio::test]
    async fn an_error_frame_fails_the_publish() {
        let (mut producer, mut server) = producer();
        server
            .send_error(b"E_BAD_TOPIC PUB topic name \"a!\" is not valid")
            .await;
        let err = producer.publish("a!", &b"x"[..]).await.unwrap_err();
        match err {
            ClientError::Server { code_and_text } => {
                assert_eq!(
                    code_and_text,
                    "E_BAD_TOPIC PUB topic name \"a!\" is not valid"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_heartbeat_before_ok_is_answered_and_skipped() {
        let (mut producer, mut server) = producer();
        let script = tokio::spawn(async move {
            let mut expected = b"  V2PUB t\n".to_vec();
            expected.extend_from_slice(&be32(1));
            expected.extend_from_slice(b"x");
            server.expect(&expected).await;
            server.send_response(b"_heartbeat_").await;
            server.expect(b"NOP\n").await;
            server.send_response(b"OK").await;
        });
        producer.publish("t", &b"x"[..]).await.unwrap();
        script.await.unwrap();
    }
}
