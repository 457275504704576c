//! The V1 TCP server: accepts connections and runs each one's command loop (Go's
//! `LookupProtocolV1.IOLoop`). Every error is fatal: its frame is sent, then the
//! connection closes. When a connection ends, its peer leaves every registration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::registry::{PeerInfo, Registration};
use super::LookupdInner;
use crate::env::{BoxStream, Listener};
use crate::protocol::lookup::{self, Command, LookupError, TopicChannel};
use crate::protocol::names::is_ephemeral;

/// Accepts connections and hands each to its own task.
pub(crate) async fn accept_loop(lookupd: Arc<LookupdInner>, listener: Box<dyn Listener>) {
    loop {
        tokio::select! {
            biased;
            _ = lookupd.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    lookupd.tasks.spawn(serve(lookupd.clone(), stream, peer));
                }
                Err(error) => {
                    tracing::warn!(%error, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    tracing::info!("TCP: closing listener");
}

/// One connection: the command loop until EOF, a fatal error or shutdown, then the
/// removal of the peer's registrations.
async fn serve(lookupd: Arc<LookupdInner>, stream: BoxStream, remote: SocketAddr) {
    let mut conn = Conn {
        stream: BufReader::new(stream),
        remote: remote.to_string(),
        peer: None,
    };
    tracing::info!(client = %conn.remote, "TCP: new client");
    let shutdown = lookupd.shutdown.clone();
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => {}
        _ = conn.run(&lookupd) => {}
    }
    tracing::info!(client = %conn.remote, "CLIENT: closing");
    if let Some(peer) = conn.peer.take() {
        for registration in lookupd.db.lookup_registrations(&peer.id) {
            if lookupd.db.remove_producer(&registration, &peer.id).0 {
                tracing::info!(client = %conn.remote, key = %registration.debug_key(), "DB: UNREGISTER");
            }
        }
    }
}

/// What one connection knows.
struct Conn {
    /// The socket, read through a buffer (lines, then IDENTIFY bodies).
    stream: BufReader<BoxStream>,
    /// The peer's address: its id in the registration DB.
    remote: String,
    /// Set by IDENTIFY.
    peer: Option<Arc<PeerInfo>>,
}

/// The command loop must end: the peer is gone, or a fatal error was answered.
struct Closed;

impl Conn {
    async fn run(&mut self, lookupd: &LookupdInner) {
        let mut magic = [0u8; 4];
        if self.stream.read_exact(&mut magic).await.is_err() {
            return;
        }
        if &magic != lookup::MAGIC_V1 {
            tracing::error!(client = %self.remote, "bad protocol magic");
            let _ = self.send(lookup::BAD_PROTOCOL.as_bytes()).await;
            return;
        }
        let mut line = Vec::with_capacity(64);
        loop {
            line.clear();
            let limit = lookup::LINE_LENGTH_MAX as u64;
            match (&mut self.stream)
                .take(limit)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(_) if line.last() == Some(&b'\n') => {}
                Ok(n) if n as u64 == limit => {
                    let error = LookupError::invalid("command line too long");
                    let _ = self.fail(error).await;
                    return;
                }
                // EOF (possibly inside a line, as Go's ReadString) or an IO error.
                _ => return,
            }
            let answer = match lookup::parse_line(&line) {
                Ok(command) => self.exec(lookupd, command).await,
                Err(error) => Err(error),
            };
            let sent = match answer {
                Ok(response) => self.send(&response).await,
                Err(error) => self.fail(error).await,
            };
            if sent.is_err() {
                return;
            }
        }
    }

    /// Sends a fatal error's frame; the loop ends after it.
    async fn fail(&mut self, error: LookupError) -> Result<(), Closed> {
        tracing::error!(client = %self.remote, %error, "client error");
        let _ = self.stream.get_mut().write_all(&error.to_frame()).await;
        Err(Closed)
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), Closed> {
        let stream = self.stream.get_mut();
        stream
            .write_all(&lookup::frame(data))
            .await
            .map_err(|_| Closed)?;
        stream.flush().await.map_err(|_| Closed)
    }

    async fn exec(
        &mut self,
        lookupd: &LookupdInner,
        command: Command,
    ) -> Result<Vec<u8>, LookupError> {
        match command {
            Command::Ping => {
                if let Some(peer) = &self.peer {
                    peer.touch(lookupd.now_ns());
                    tracing::debug!(client = %self.remote, "pinged");
                }
                Ok(lookup::OK.to_vec())
            }
            Command::Identify => self.identify(lookupd).await,
            Command::Register(args) => {
                let peer = self.identified()?;
                let names = TopicChannel::parse("REGISTER", &args)?;
                register(lookupd, &peer, &names);
                Ok(lookup::OK.to_vec())
            }
            Command::Unregister(args) => {
                let peer = self.identified()?;
                let names = TopicChannel::parse("UNREGISTER", &args)?;
                unregister(lookupd, &peer, &names);
                Ok(lookup::OK.to_vec())
            }
        }
    }

    fn identified(&self) -> Result<Arc<PeerInfo>, LookupError> {
        self.peer
            .clone()
            .ok_or_else(|| LookupError::invalid("client must IDENTIFY"))
    }

    async fn identify(&mut self, lookupd: &LookupdInner) -> Result<Vec<u8>, LookupError> {
        if self.peer.is_some() {
            return Err(LookupError::invalid("cannot IDENTIFY again"));
        }
        let size = self
            .stream
            .read_i32()
            .await
            .map_err(|_| LookupError::bad_body("IDENTIFY failed to read body size"))?;
        let size = lookup::check_identify_size(size)?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|_| LookupError::bad_body("IDENTIFY failed to read body"))?;
        let info = lookup::parse_identify(&body)?;
        tracing::info!(
            client = %self.remote,
            address = %info.broadcast_address,
            tcp = info.tcp_port,
            http = info.http_port,
            version = %info.version,
            "IDENTIFY"
        );
        let peer = PeerInfo::new(self.remote.clone(), info, lookupd.now_ns());
        if lookupd.db.add_producer(Registration::client(), &peer) {
            tracing::info!(client = %self.remote, "DB: REGISTER category:client");
        }
        self.peer = Some(peer);
        Ok(lookup::identify_response(
            &lookupd.opts.broadcast_address,
            &crate::env::os_hostname(),
            lookupd.http_addr.port(),
            lookupd.tcp_addr.port(),
            super::options::VERSION,
        ))
    }
}

/// REGISTER: the channel (if any), then the topic.
fn register(lookupd: &LookupdInner, peer: &Arc<PeerInfo>, names: &TopicChannel) {
    if let Some(channel) = &names.channel {
        if lookupd
            .db
            .add_producer(Registration::channel(&names.topic, channel), peer)
        {
            tracing::info!(client = %peer.id, topic = %names.topic, %channel, "DB: REGISTER channel");
        }
    }
    if lookupd
        .db
        .add_producer(Registration::topic(&names.topic), peer)
    {
        tracing::info!(client = %peer.id, topic = %names.topic, "DB: REGISTER topic");
    }
}

/// UNREGISTER: with a channel, only that channel (gone when ephemeral and empty);
/// without, every channel of the topic and the topic (gone when ephemeral and empty).
fn unregister(lookupd: &LookupdInner, peer: &PeerInfo, names: &TopicChannel) {
    let db = &lookupd.db;
    let topic = &names.topic;
    if let Some(channel) = &names.channel {
        let key = Registration::channel(topic, channel);
        let (removed, left) = db.remove_producer(&key, &peer.id);
        if removed {
            tracing::info!(client = %peer.id, %topic, %channel, "DB: UNREGISTER channel");
        }
        if left == 0 && is_ephemeral(channel) {
            db.remove_registration(&key);
        }
        return;
    }
    for key in db.find_registrations(super::registry::Category::Channel, topic, "*") {
        if db.remove_producer(&key, &peer.id).0 {
            tracing::warn!(client = %peer.id, %topic, channel = %key.sub_key, "unexpected UNREGISTER of a channel");
        }
    }
    let key = Registration::topic(topic);
    let (removed, left) = db.remove_producer(&key, &peer.id);
    if removed {
        tracing::info!(client = %peer.id, %topic, "DB: UNREGISTER topic");
    }
    if left == 0 && is_ephemeral(topic) {
        db.remove_registration(&key);
    }
}
