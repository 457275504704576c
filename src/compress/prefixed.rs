//! A stream that first yields bytes already read from it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::env::BoxStream;

/// Reads `prefix` first, then the inner stream; writes go straight through.
///
/// Upgrading a buffered connection needs it: the bytes read past the IDENTIFY answer
/// already belong to the compressed stream, so the decompressor must see them first.
pub struct Prefixed {
    prefix: Bytes,
    inner: BoxStream,
}

impl Prefixed {
    /// Wraps `inner` so its reads start with `prefix`.
    pub fn new(prefix: Bytes, inner: BoxStream) -> Self {
        Prefixed { prefix, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::Prefixed;

    #[tokio::test]
    async fn the_prefix_comes_before_the_stream_and_writes_pass_through() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut stream = Prefixed::new(Bytes::from_static(b"abc"), Box::new(ours));
        theirs.write_all(b"def").await.unwrap();
        let mut got = [0u8; 6];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdef");
        stream.write_all(b"xyz").await.unwrap();
        let mut echoed = [0u8; 3];
        theirs.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"xyz");
    }
}
