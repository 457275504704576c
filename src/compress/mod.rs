//! The stream compressions nsqd negotiates in IDENTIFY: snappy's framing format and raw
//! deflate, each wrapping a [`BoxStream`] in both directions.
//!
//! Both wrappers buffer what is written and compress it on `poll_flush` (or when the
//! plaintext buffer fills), so one flush is one decodable unit on the wire, as Go's
//! `bufio.Writer` over `snappy.Writer` or `flate.Writer` behaves. Reads decode in bounded
//! pieces. Every buffer has a fixed bound, lengths from the wire are checked before
//! anything is allocated for them, and corrupt input is an [`io::Error`] of kind
//! `InvalidData`, never a panic.
//!
//! # Layout
//! - `snappy.rs`: [`snappy`], the framing format (stream identifier, compressed and
//!   uncompressed chunks with masked CRC-32C, skippable chunks).
//! - `deflate.rs`: [`deflate`], raw deflate with a sync flush per flush.
//! - `prefixed.rs`: [`Prefixed`], a stream that first yields bytes already read from it,
//!   for upgrading a connection whose read buffer holds the start of the compressed stream.

mod deflate;
mod prefixed;
mod snappy;

pub use deflate::{deflate, DeflateError};
pub use prefixed::Prefixed;
pub use snappy::{snappy, SnappyError};

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

use crate::env::BoxStream;

/// Writes `buf[*pos..]` to `inner` until all of it is out, advancing `*pos` as bytes
/// leave, so a `Pending` in the middle loses and repeats nothing.
fn poll_write_out(
    inner: &mut BoxStream,
    cx: &mut Context<'_>,
    buf: &[u8],
    pos: &mut usize,
) -> Poll<io::Result<()>> {
    while *pos < buf.len() {
        let written = ready!(Pin::new(&mut *inner).poll_write(cx, &buf[*pos..]))?;
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        *pos += written;
    }
    Poll::Ready(Ok(()))
}

#[cfg(test)]
mod tests;
