//! Consuming: SUB, RDY, the message stream, FIN/REQ/TOUCH and CLS.

use bytes::Bytes;

use super::connection::{expect_response, server_error, Connection, ConnectionOptions, Frame};
use super::error::ClientError;
use crate::env::{BoxStream, Net};
use crate::protocol::commands::Command;
use crate::protocol::frame::CLOSE_WAIT;
use crate::protocol::message::{Message, MessageId};

/// A subscribing connection.
///
/// RDY, FIN, REQ and TOUCH are written at once (each flushes); for batched acks, queue
/// commands on [`connection_mut`](Self::connection_mut) and flush when it suits.
#[derive(Debug)]
pub struct Consumer {
    conn: Connection,
}

impl Consumer {
    /// A consumer over a connected stream.
    pub fn new(stream: BoxStream) -> Self {
        Self::from_connection(Connection::new(stream))
    }

    /// A consumer over a connected stream with the given options.
    pub fn with_options(stream: BoxStream, options: ConnectionOptions) -> Self {
        Self::from_connection(Connection::with_options(stream, options))
    }

    /// Connects to nsqd at `addr` (`"host:port"`) through `net`.
    pub async fn connect(net: &dyn Net, addr: &str) -> Result<Self, ClientError> {
        Ok(Self::from_connection(Connection::connect(net, addr).await?))
    }

    /// A consumer over an existing connection (which may already have identified).
    pub fn from_connection(conn: Connection) -> Self {
        Consumer { conn }
    }

    /// Sends IDENTIFY; see [`Connection::identify`].
    pub async fn identify(&mut self, json: serde_json::Value) -> Result<Bytes, ClientError> {
        self.conn.identify(json).await
    }

    /// Subscribes to `topic`/`channel` and waits for `OK`.
    pub async fn subscribe(&mut self, topic: &str, channel: &str) -> Result<(), ClientError> {
        let command = Command::Sub {
            topic: topic.to_owned(),
            channel: channel.to_owned(),
        };
        self.conn.request_ok(&command).await
    }

    /// Tells nsqd how many messages may be in flight to this connection. nsqd answers
    /// nothing on success; an out-of-range count closes the connection with an error frame.
    pub async fn ready(&mut self, count: i64) -> Result<(), ClientError> {
        self.send_now(&Command::Rdy { count }).await
    }

    /// The next delivered message. Heartbeats are answered and skipped; an error frame
    /// (e.g. a non-fatal `E_FIN_FAILED` for an earlier FIN) is returned as
    /// [`ClientError::Server`], after which reading may continue if the code is non-fatal.
    pub async fn next_message(&mut self) -> Result<Message, ClientError> {
        loop {
            match self.conn.read_frame().await? {
                Frame::Message(msg) => return Ok(msg),
                frame if frame.is_heartbeat() => continue,
                Frame::Error(data) => return Err(server_error(&data)),
                frame @ Frame::Response(_) => {
                    return Err(ClientError::UnexpectedFrame {
                        expected: "a message",
                        got: frame.describe(),
                    })
                }
            }
        }
    }

    /// Acknowledges a message: it will not be delivered again.
    pub async fn finish(&mut self, id: &MessageId) -> Result<(), ClientError> {
        self.send_now(&Command::Fin { id: *id }).await
    }

    /// Gives a message back, to be redelivered after `timeout_ms` (0: at once).
    pub async fn requeue(&mut self, id: &MessageId, timeout_ms: i64) -> Result<(), ClientError> {
        let command = Command::Req {
            id: *id,
            timeout_ms,
        };
        self.send_now(&command).await
    }

    /// Resets a message's timeout, asking for more time to process it.
    pub async fn touch(&mut self, id: &MessageId) -> Result<(), ClientError> {
        self.send_now(&Command::Touch { id: *id }).await
    }

    /// Sends CLS and waits for `CLOSE_WAIT`. Messages that were already on their way are
    /// returned: they are in flight to this connection until FINished, requeued or timed
    /// out. The connection stays open (nsqd leaves closing it to the client).
    pub async fn close(&mut self) -> Result<Vec<Message>, ClientError> {
        self.send_now(&Command::Cls).await?;
        let mut in_transit = Vec::new();
        loop {
            match self.conn.read_frame().await? {
                Frame::Message(msg) => in_transit.push(msg),
                frame if frame.is_heartbeat() => continue,
                Frame::Response(data) => {
                    expect_response(data, CLOSE_WAIT, "CLOSE_WAIT")?;
                    return Ok(in_transit);
                }
                Frame::Error(data) => return Err(server_error(&data)),
            }
        }
    }

    /// The underlying connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The underlying connection, for raw or batched commands.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Gives the connection back.
    pub fn into_connection(self) -> Connection {
        self.conn
    }

    async fn send_now(&mut self, command: &Command) -> Result<(), ClientError> {
        self.conn.send(command);
        self.conn.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::Consumer;
    use crate::client::test_server::{pair, test_message, TestServer};
    use crate::client::ClientError;

    fn consumer() -> (Consumer, TestServer) {
        let (conn, server) = pair();
        (Consumer::from_connection(conn), server)
    }

    #[tokio::test]
    async fn subscribe_ready_receive_and_finish() {
        let (mut consumer, mut server) = consumer();
        let msg = test_message(42, b"payload");
        let sent = msg.clone();
        let script = tokio::spawn(async move {
            server.expect(b"  V2SUB orders archive\n").await;
            server.send_response(b"OK").await;
            server.expect(b"RDY 5\n").await;
            server.send_message(&sent).await;
            server.expect(b"FIN 000000000000002a\n").await;
        });
        consumer.subscribe("orders", "archive").await.unwrap();
        consumer.ready(5).await.unwrap();
        let got = consumer.next_message().await.unwrap();
        assert_eq!(got, msg);
        assert_eq!(got.attempts, 1);
        consumer.finish(&got.id).await.unwrap();
        script.await.unwrap();
    }

    #[tokio::test]
    async fn requeue_and_touch_name_the_message() {
        let (mut consumer, mut server) = consumer();
        let msg = test_message(0xabc, b"x");
        consumer.requeue(&msg.id, 100).await.unwrap();
        consumer.touch(&msg.id).await.unwrap();
        server
            .expect(b"  V2REQ 0000000000000abc 100\nTOUCH 0000000000000abc\n")
            .await;
    }

    #[tokio::test]
    async fn next_message_skips_heartbeats_and_answers_them() {
        let (mut consumer, mut server) = consumer();
        let msg = test_message(1, b"x");
        consumer.connection_mut().flush().await.unwrap();
        server.expect(b"  V2").await;
        server.send_response(b"_heartbeat_").await;
        server.send_message(&msg).await;
        assert_eq!(consumer.next_message().await.unwrap(), msg);
        server.expect(b"NOP\n").await;
    }

    #[tokio::test]
    async fn a_non_fatal_error_is_reported_and_reading_goes_on() {
        let (mut consumer, mut server) = consumer();
        let msg = test_message(2, b"y");
        server
            .send_error(b"E_FIN_FAILED FIN 0000000000000009 failed ID not in flight")
            .await;
        server.send_message(&msg).await;
        let err = consumer.next_message().await.unwrap_err();
        assert_eq!(err.server_code(), Some("E_FIN_FAILED"));
        assert_eq!(consumer.next_message().await.unwrap(), msg);
    }

    #[tokio::test]
    async fn an_unexpected_response_is_reported() {
        let (mut consumer, mut server) = consumer();
        server.send_response(b"OK").await;
        let err = consumer.next_message().await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::UnexpectedFrame {
                    expected: "a message",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn close_returns_messages_still_in_transit() {
        let (mut consumer, mut server) = consumer();
        let first = test_message(3, b"a");
        let second = test_message(4, b"b");
        let sent = (first.clone(), second.clone());
        let script = tokio::spawn(async move {
            server.expect(b"  V2CLS\n").await;
            server.send_message(&sent.0).await;
            server.send_response(b"_heartbeat_").await;
            server.send_message(&sent.1).await;
            server.send_response(b"CLOSE_WAIT").await;
            server.expect(b"NOP\n").await;
        });
        let in_transit = consumer.close().await.unwrap();
        assert_eq!(in_transit, vec![first, second]);
        script.await.unwrap();
    }

    #[tokio::test]
    async fn close_fails_on_an_error_frame() {
        let (mut consumer, mut server) = consumer();
        server
            .send_error(b"E_INVALID cannot CLS in current state")
            .await;
        let err = consumer.close().await.unwrap_err();
        assert_eq!(err.server_code(), Some("E_INVALID"));
    }
}
