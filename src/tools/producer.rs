//! go-nsq's `Producer` as the tools use it: one nsqd, connected on the first publish and
//! again on the first publish after a loss, with PUBs pipelined on the connection and
//! nsqd's answers matched to them in order (go-nsq's `PublishAsync`), so a relay keeps
//! many messages in flight to one nsqd while a plain [`Producer::publish`] still reads as
//! one round trip.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

use super::handshake::{self, HandshakeError};
use super::nsq_config::NsqConfig;
use crate::client::{ClientError, Connection, Frame};
use crate::env::{Env, Net};
use crate::protocol::commands::Command;
use crate::protocol::frame::OK;

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Dialling, IDENTIFY, an upgrade or AUTH failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The connection failed under this publish.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// nsqd answered with an error frame; its text, as go-nsq reports it
    /// (`E_BAD_TOPIC PUB topic name "a!" is not valid`).
    #[error("{0}")]
    Refused(String),
    /// The connection was lost before nsqd answered (go-nsq's `not connected`).
    #[error("not connected")]
    NotConnected,
    /// The producer stopped before nsqd answered (go-nsq's `stopped`).
    #[error("stopped")]
    Stopped,
}

/// nsqd's answer to one publish, on its way back to the publisher.
type Answer = oneshot::Sender<Result<(), PublishError>>;

/// One PUB for the connection task.
struct Request {
    topic: String,
    body: Bytes,
    answer: Answer,
}

/// A publisher to one nsqd. Publishes queue in order on one connection, made on the
/// first publish (and after a loss, on the next one), as go-nsq's producer does.
#[derive(Debug)]
pub struct Producer {
    address: String,
    requests: mpsc::UnboundedSender<Request>,
    task: JoinHandle<()>,
}

/// nsqd's answer to a queued publish ([`Producer::publish_async`]).
#[derive(Debug)]
pub struct PendingPublish(oneshot::Receiver<Result<(), PublishError>>);

impl Future for PendingPublish {
    type Output = Result<(), PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(PublishError::Stopped)))
    }
}

impl Producer {
    /// A producer for the nsqd at `address` (`host:port`) with go-nsq's `config`
    /// (already validated). Nothing is dialled until the first publish.
    pub fn new(env: &Env, address: &str, config: NsqConfig) -> Producer {
        let (requests, queue) = mpsc::unbounded_channel();
        let link = Link {
            net: env.net.clone(),
            address: address.to_string(),
            config,
            conn: None,
            waiting: VecDeque::new(),
            read_deadline: Instant::now(),
        };
        Producer {
            address: address.to_string(),
            requests,
            task: tokio::spawn(link.run(queue)),
        }
    }

    /// The nsqd's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Queues a PUB of `body` to `topic` at once (in call order); the returned future
    /// resolves with nsqd's answer.
    pub fn publish_async(&self, topic: &str, body: Bytes) -> PendingPublish {
        let (answer, answered) = oneshot::channel();
        let request = Request {
            topic: topic.to_string(),
            body,
            answer,
        };
        if let Err(mpsc::error::SendError(request)) = self.requests.send(request) {
            let _ = request.answer.send(Err(PublishError::Stopped));
        }
        PendingPublish(answered)
    }

    /// Publishes `body` to `topic` and waits for nsqd's `OK`.
    pub async fn publish(&self, topic: &str, body: Bytes) -> Result<(), PublishError> {
        self.publish_async(topic, body).await
    }

    /// Stops taking publishes, waits for the answers still due (each bounded by
    /// `read_timeout`), then closes the connection.
    pub async fn stop(self) {
        drop(self.requests);
        let _ = self.task.await;
    }
}

/// The connection task's state.
struct Link {
    net: Arc<dyn Net>,
    address: String,
    config: NsqConfig,
    conn: Option<Connection>,
    /// Who waits for each PUB sent and not yet answered, oldest first.
    waiting: VecDeque<Answer>,
    /// When the connection counts as dead if nothing more was read.
    read_deadline: Instant,
}

impl Link {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Request>) {
        let mut open = true;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                // Not connected: the next publish dials.
                match queue.recv().await {
                    Some(request) => self.connect_and_send(request).await,
                    None => return,
                }
                continue;
            };
            if !open && self.waiting.is_empty() {
                tracing::info!(nsqd = %self.address, "stopping");
                let _ = conn.shutdown().await;
                return;
            }
            tokio::select! {
                request = queue.recv(), if open => match request {
                    Some(request) => self.send(request).await,
                    None => open = false,
                },
                frame = conn.read_frame() => {
                    self.read_deadline = Instant::now() + self.config.read_timeout;
                    self.answer(frame);
                }
                () = tokio::time::sleep_until(self.read_deadline) => {
                    // go-nsq's read deadline: nothing from nsqd (not even a heartbeat)
                    // for `read_timeout`.
                    self.answer(Err(ClientError::Io(std::io::ErrorKind::TimedOut.into())));
                }
            }
        }
    }

    /// Dials, identifies and sends the PUB; a failure is this publish's answer.
    async fn connect_and_send(&mut self, request: Request) {
        tracing::info!(nsqd = %self.address, "connecting to nsqd");
        match connect(&*self.net, &self.address, &self.config).await {
            Ok(conn) => {
                self.conn = Some(conn);
                self.read_deadline = Instant::now() + self.config.read_timeout;
                self.send(request).await;
            }
            Err(error) => {
                tracing::error!(nsqd = %self.address, %error, "error connecting to nsqd");
                let _ = request.answer.send(Err(error));
            }
        }
    }

    /// Writes one PUB on the connection.
    async fn send(&mut self, request: Request) {
        let Some(conn) = self.conn.as_mut() else {
            let _ = request.answer.send(Err(PublishError::NotConnected));
            return;
        };
        conn.send(&Command::Pub {
            topic: request.topic,
            body: request.body,
        });
        let written = match timeout(self.config.write_timeout, conn.flush()).await {
            Ok(written) => written,
            Err(_) => Err(ClientError::Io(std::io::ErrorKind::TimedOut.into())),
        };
        match written {
            Ok(()) => self.waiting.push_back(request.answer),
            Err(error) => {
                let _ = request.answer.send(Err(error.into()));
                self.lost();
            }
        }
    }

    /// Matches a frame to the oldest PUB waiting; a read error loses the connection.
    fn answer(&mut self, frame: Result<Frame, ClientError>) {
        let outcome = match frame {
            Ok(frame) if frame.is_heartbeat() => return,
            Ok(Frame::Response(data)) if data.as_ref() == OK => Ok(()),
            Ok(Frame::Error(data)) => Err(PublishError::Refused(
                String::from_utf8_lossy(&data).into_owned(),
            )),
            Ok(other) => Err(PublishError::Client(ClientError::UnexpectedFrame {
                expected: "OK",
                got: other.describe(),
            })),
            Err(error) => {
                tracing::warn!(nsqd = %self.address, %error, "connection lost");
                self.lost();
                return;
            }
        };
        match self.waiting.pop_front() {
            Some(waiting) => {
                let _ = waiting.send(outcome);
            }
            None => tracing::warn!(nsqd = %self.address, "an answer nobody waited for"),
        }
    }

    /// The connection is gone: every publish still waiting fails with `not connected`;
    /// the next publish dials again.
    fn lost(&mut self) {
        self.conn = None;
        for waiting in self.waiting.drain(..) {
            let _ = waiting.send(Err(PublishError::NotConnected));
        }
    }
}

/// Opens the connection as go-nsq does ([`handshake::open`]: dial, IDENTIFY, upgrades,
/// AUTH when nsqd requires it).
async fn connect(
    net: &dyn Net,
    address: &str,
    config: &NsqConfig,
) -> Result<Connection, PublishError> {
    Ok(handshake::open(net, address, config).await?.conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the fake nsqd does with a PUB.
    enum Reply {
        /// Writes these bytes.
        Frames(Vec<u8>),
        /// Closes the connection.
        Close,
        /// Says nothing.
        Silent,
    }

    /// A fake nsqd on loopback that reads `  V2`, answers IDENTIFY with `OK`, then
    /// answers each PUB as `answers` says for its body.
    async fn fake_nsqd(answers: fn(&[u8]) -> Reply) -> String {
        let listener = crate::env::RealNet.bind_tcp("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, answers));
            }
        });
        address
    }

    fn frame(kind: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(u32::try_from(data.len()).unwrap() + 4).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    async fn serve(mut stream: crate::env::BoxStream, answers: fn(&[u8]) -> Reply) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let mut magic = [0u8; 4];
        if stream.read_exact(&mut magic).await.is_err() {
            return;
        }
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let mut size = [0u8; 4];
            reader.read_exact(&mut size).await.unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
            reader.read_exact(&mut body).await.unwrap();
            let reply = if line.starts_with("IDENTIFY") {
                Reply::Frames(frame(0, b"OK"))
            } else {
                answers(&body)
            };
            match reply {
                Reply::Frames(bytes) => reader.get_mut().write_all(&bytes).await.unwrap(),
                Reply::Close => return,
                Reply::Silent => {}
            }
        }
    }

    #[tokio::test]
    async fn pipelined_publishes_get_their_own_answers_in_order() {
        let address = fake_nsqd(|body| {
            if body == b"bad" {
                Reply::Frames(frame(1, b"E_BAD_BODY nope"))
            } else {
                Reply::Frames(frame(0, b"OK"))
            }
        })
        .await;
        let producer = Producer::new(&Env::real(), &address, NsqConfig::new());
        let first = producer.publish_async("t", Bytes::from_static(b"a"));
        let second = producer.publish_async("t", Bytes::from_static(b"bad"));
        let third = producer.publish_async("t", Bytes::from_static(b"c"));
        assert!(first.await.is_ok());
        match second.await {
            Err(PublishError::Refused(text)) => assert_eq!(text, "E_BAD_BODY nope"),
            other => panic!("{other:?}"),
        }
        assert!(third.await.is_ok());
        producer.stop().await;
    }

    #[tokio::test]
    async fn a_lost_connection_fails_what_waits_and_the_next_publish_reconnects() {
        // The fake closes the connection instead of answering "drop".
        let address = fake_nsqd(|body| {
            if body == b"drop" {
                Reply::Close
            } else {
                Reply::Frames(frame(0, b"OK"))
            }
        })
        .await;
        let producer = Producer::new(&Env::real(), &address, NsqConfig::new());
        assert!(matches!(
            producer.publish("t", Bytes::from_static(b"drop")).await,
            Err(PublishError::NotConnected)
        ));
        assert!(producer
            .publish("t", Bytes::from_static(b"x"))
            .await
            .is_ok());
        producer.stop().await;
    }

    #[tokio::test]
    async fn an_nsqd_silent_for_read_timeout_is_a_lost_connection() {
        let address = fake_nsqd(|_| Reply::Silent).await;
        let mut config = NsqConfig::new();
        config.read_timeout = std::time::Duration::from_millis(100);
        let producer = Producer::new(&Env::real(), &address, config);
        let started = tokio::time::Instant::now();
        assert!(matches!(
            producer.publish("t", Bytes::from_static(b"x")).await,
            Err(PublishError::NotConnected)
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        producer.stop().await;
    }

    #[tokio::test]
    async fn a_refused_dial_is_the_publishs_error() {
        let listener = crate::env::RealNet.bind_tcp("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let producer = Producer::new(&Env::real(), &address, NsqConfig::new());
        assert!(matches!(
            producer.publish("t", Bytes::from_static(b"x")).await,
            Err(PublishError::Handshake(HandshakeError::Client(_)))
        ));
        producer.stop().await;
    }
}
