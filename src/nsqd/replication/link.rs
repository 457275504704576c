//! Frames over a byte stream: what both ends of a peer connection read and write.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{Frame, FrameError};
use crate::protocol::ProtocolError;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Why a peer connection ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a frame.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer closed the connection.
    #[error("closed by the peer")]
    Closed,
    /// Nothing arrived for too long.
    #[error("no frame for {0:?}")]
    Silent(Duration),
    /// The peer answered with a frame that makes no sense here.
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
    /// The standby store could not keep what the owner sent.
    #[error("standby store: {0}")]
    Store(#[from] super::standby::StandbyError),
    /// The peer refused the connection.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// The owner's AUTH secret was refused, or does not allow publishing to a topic.
    #[error("not authorized: {0}")]
    NotAuthorized(#[source] ProtocolError),
}

impl LinkError {
    /// What to tell the other side in an `ERROR` frame before closing, when this end
    /// refuses it (None: a broken connection, which is just closed).
    pub fn refusal(&self) -> Option<String> {
        match self {
            LinkError::Refused(reason) => Some(reason.clone()),
            LinkError::NotAuthorized(error) => Some(error.to_string()),
            _ => None,
        }
    }
}

/// Reads frames from one half of a peer connection, never trusting a size beyond
/// `max_frame`.
pub struct FrameReader<R> {
    read: R,
    buf: BytesMut,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of at most `max_frame` bytes from `read`.
    pub fn new(read: R, max_frame: usize) -> Self {
        FrameReader {
            read,
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// The next frame. Safe to cancel: a frame half read stays in the buffer.
    pub async fn next(&mut self) -> Result<Frame, LinkError> {
        loop {
            if let Some(frame) = Frame::decode(&mut self.buf, self.max_frame)? {
                return Ok(frame);
            }
            self.buf.reserve(READ_CHUNK);
            if self.read.read_buf(&mut self.buf).await? == 0 {
                return Err(LinkError::Closed);
            }
        }
    }

    /// Gives the read half back for a TLS upgrade, or `None` if bytes past the last
    /// frame arrived already (the other side spoke out of turn).
    pub fn into_inner(self) -> Option<R> {
        self.buf.is_empty().then_some(self.read)
    }

    /// The next frame, or [`LinkError::Silent`] after `within`.
    pub async fn next_within(&mut self, within: Duration) -> Result<Frame, LinkError> {
        tokio::time::timeout(within, self.next())
            .await
            .unwrap_or(Err(LinkError::Silent(within)))
    }
}

/// Writes one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    write: &mut W,
    frame: &Frame,
) -> Result<(), LinkError> {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    write.write_all(&out).await?;
    write.flush().await?;
    Ok(())
}
