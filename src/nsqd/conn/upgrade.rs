//! The stream upgrades IDENTIFY negotiates, in Go's order (nsq-reference §1.5): TLS, then
//! snappy, then deflate, each followed by an `OK` frame sent through the new layer.
//!
//! The reader asks the pump for the write half (after the IDENTIFY answer went out in the
//! clear), joins it with its read half, upgrades the whole stream here, and splits it
//! again.

use std::io;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::env::BoxStream;
use crate::nsqd::client::ClientShared;
use crate::nsqd::NsqdInner;
use crate::protocol::frame;

/// The upgrades one IDENTIFY turned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Upgrades {
    /// `tls_v1`.
    pub tls: bool,
    /// `snappy`.
    pub snappy: bool,
    /// `deflate`, at this level.
    pub deflate: Option<u32>,
}

impl Upgrades {
    /// Whether there is anything to do.
    pub fn any(&self) -> bool {
        self.tls || self.snappy || self.deflate.is_some()
    }
}

/// Upgrades `stream` (with `unread`, bytes the reader had already buffered, in front) and
/// records the result on the client. An error means the connection is unusable.
pub(super) async fn apply(
    nsqd: &NsqdInner,
    client: &ClientShared,
    stream: BoxStream,
    unread: BytesMut,
    upgrades: Upgrades,
) -> io::Result<BoxStream> {
    let mut stream: BoxStream = if unread.is_empty() {
        stream
    } else {
        Box::new(crate::compress::Prefixed::new(unread.freeze(), stream))
    };
    if upgrades.tls {
        let config = nsqd
            .tls
            .clone()
            .ok_or_else(|| io::Error::other("TLS negotiated without a TLS configuration"))?;
        tracing::info!(client = client.id, "upgrading connection to TLS");
        let (upgraded, info) = crate::nsqd::tls::accept(config, stream).await?;
        stream = upgraded;
        client.transport.lock().tls = Some(info);
        send_ok(&mut stream).await?;
    }
    if upgrades.snappy {
        tracing::info!(client = client.id, "upgrading connection to snappy");
        stream = crate::compress::snappy(stream);
        client.transport.lock().snappy = true;
        send_ok(&mut stream).await?;
    }
    if let Some(level) = upgrades.deflate {
        tracing::info!(client = client.id, level, "upgrading connection to deflate");
        stream = crate::compress::deflate(stream, level);
        client.transport.lock().deflate = true;
        send_ok(&mut stream).await?;
    }
    Ok(stream)
}

/// Writes and flushes an `OK` response frame through the (new) top layer.
async fn send_ok(stream: &mut BoxStream) -> io::Result<()> {
    let mut out = BytesMut::new();
    frame::write_frame(&mut out, frame::FrameType::Response, frame::OK);
    stream.write_all(&out).await?;
    stream.flush().await
}
