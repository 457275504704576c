//! One nsqlookupd as nsqd sees it (Go's `lookupPeer`): connected lazily by the first
//! command, identified and fully re-synced on every (re)connect, and dropped after any
//! failed command so the next one reconnects.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::wire::{self, IdentifyInfo, LookupCommand, PeerInfo};
use crate::env::{BoxStream, Net};

/// Go's dial timeout and per-read/per-write deadline for a lookupd connection.
const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a command to a lookupd failed; the connection is closed after each.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The TCP connect failed.
    #[error("connect failed - {0}")]
    Connect(std::io::Error),
    /// A read or write failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A connect, read or write took longer than its deadline.
    #[error("i/o timeout")]
    Timeout,
    /// The lookupd closed the connection.
    #[error("EOF")]
    Closed,
    /// The response was larger than `--max-body-size`.
    #[error("{0}")]
    Response(#[from] wire::ResponseError),
    /// The IDENTIFY answer was not the JSON nsqd expects.
    #[error("parsing IDENTIFY response - {0}")]
    Identify(String),
}

/// What a peer needs from nsqd to (re)connect.
pub(crate) struct ConnectContext<'a> {
    /// How to reach the network.
    pub net: &'a dyn Net,
    /// The IDENTIFY body.
    pub identify: &'a IdentifyInfo,
    /// `--max-body-size`: the largest response read.
    pub max_body_size: i64,
    /// Every REGISTER of the full re-sync, computed when needed.
    pub resync: &'a (dyn Fn() -> Vec<LookupCommand> + Sync),
}

struct Connection {
    stream: BoxStream,
    read_buf: BytesMut,
}

/// One lookupd address and its connection, if any.
pub(crate) struct Peer {
    /// `host:port` as configured.
    pub addr: String,
    conn: Option<Connection>,
    /// The lookupd's answer to the last IDENTIFY.
    pub info: Option<PeerInfo>,
}

impl Peer {
    /// A peer not yet connected.
    pub fn new(addr: String) -> Self {
        Peer {
            addr,
            conn: None,
            info: None,
        }
    }

    /// Closes the connection; the next command reconnects.
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// Go's `lookupPeer.Command`: connects (with IDENTIFY and re-sync) when not connected,
    /// then sends `command` and returns the response. `None` only connects.
    pub async fn command(
        &mut self,
        ctx: &ConnectContext<'_>,
        command: Option<&LookupCommand>,
    ) -> Result<Option<Vec<u8>>, PeerError> {
        if self.conn.is_none() {
            self.connect(ctx).await?;
        }
        let Some(command) = command else {
            return Ok(None);
        };
        if self.conn.is_none() {
            // The connect callback failed and closed the connection.
            return Err(PeerError::Closed);
        }
        let result = self.round_trip(command, ctx.max_body_size).await;
        if result.is_err() {
            self.close();
        }
        result.map(Some)
    }

    async fn connect(&mut self, ctx: &ConnectContext<'_>) -> Result<(), PeerError> {
        tracing::info!(lookupd = %self.addr, "LOOKUP connecting");
        let mut stream = match timeout(IO_TIMEOUT, ctx.net.connect_tcp(&self.addr)).await {
            Err(_) => return Err(PeerError::Timeout),
            Ok(Err(error)) => return Err(PeerError::Connect(error)),
            Ok(Ok(stream)) => stream,
        };
        // Go ignores a failed magic write: the IDENTIFY that follows fails the same way.
        let _ = timeout(IO_TIMEOUT, stream.write_all(wire::MAGIC_V1)).await;
        self.conn = Some(Connection {
            stream,
            read_buf: BytesMut::with_capacity(1024),
        });
        self.on_connect(ctx).await;
        Ok(())
    }

    /// Go's `connectCallback`: IDENTIFY, keep the answer, then REGISTER everything.
    /// Failures are logged; they leave the peer closed for the next command to retry.
    async fn on_connect(&mut self, ctx: &ConnectContext<'_>) {
        let identify = LookupCommand::Identify(ctx.identify.clone());
        let answer = match self.round_trip(&identify, ctx.max_body_size).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::error!(lookupd = %self.addr, %error, "LOOKUPD IDENTIFY failed");
                self.close();
                return;
            }
        };
        match serde_json::from_slice::<PeerInfo>(&answer) {
            Ok(info) => {
                tracing::info!(
                    lookupd = %self.addr,
                    version = %info.version,
                    broadcast_address = %info.broadcast_address,
                    tcp_port = info.tcp_port,
                    http_port = info.http_port,
                    "LOOKUPD peer info"
                );
                if info.broadcast_address.is_empty() {
                    tracing::error!(lookupd = %self.addr, "LOOKUPD no broadcast address");
                }
                self.info = Some(info);
            }
            Err(error) => {
                let error =
                    PeerError::Identify(format!("{} ({error})", String::from_utf8_lossy(&answer)));
                tracing::error!(lookupd = %self.addr, %error, "LOOKUPD bad IDENTIFY answer");
                self.close();
                return;
            }
        }
        for command in (ctx.resync)() {
            tracing::info!(lookupd = %self.addr, command = %command.describe(), "LOOKUPD re-sync");
            if let Err(error) = self.round_trip(&command, ctx.max_body_size).await {
                tracing::error!(lookupd = %self.addr, command = %command.describe(), %error, "LOOKUPD command failed");
                self.close();
                return;
            }
        }
    }

    /// Writes `command` and reads one response, each within [`IO_TIMEOUT`].
    async fn round_trip(
        &mut self,
        command: &LookupCommand,
        max_body_size: i64,
    ) -> Result<Vec<u8>, PeerError> {
        let conn = self.conn.as_mut().ok_or(PeerError::Closed)?;
        let mut out = BytesMut::new();
        command.encode(&mut out);
        timeout(IO_TIMEOUT, conn.stream.write_all(&out))
            .await
            .map_err(|_| PeerError::Timeout)??;
        loop {
            if let Some(response) = wire::decode_response(&mut conn.read_buf, max_body_size)? {
                if response != b"OK" && !matches!(command, LookupCommand::Identify(_)) {
                    tracing::warn!(lookupd = %self.addr, command = %command.describe(),
                        response = %String::from_utf8_lossy(&response), "LOOKUPD answered");
                }
                return Ok(response);
            }
            let read = timeout(IO_TIMEOUT, conn.stream.read_buf(&mut conn.read_buf))
                .await
                .map_err(|_| PeerError::Timeout)??;
            if read == 0 {
                return Err(PeerError::Closed);
            }
        }
    }
}
