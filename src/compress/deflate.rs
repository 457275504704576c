//! Raw deflate (RFC 1951, no zlib header) over a stream, as nsqd's and go-nsq's deflate
//! upgrade speak it with Go's `compress/flate`.
//!
//! Every flush ends with a sync flush (an empty stored block, `00 00 ff ff`), so the peer
//! can decode everything written before it without waiting for more, exactly as Go's
//! `flate.Writer.Flush` does, empty flushes included. Shutdown finishes the stream with a
//! final block.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::poll_write_out;
use crate::env::BoxStream;

/// Compressed bytes read from the stream at a time.
const READ_BUF_BYTES: usize = 32 * 1024;
/// Decompressed bytes produced by one read at most (the caller's buffer permitting).
const READ_PIECE_BYTES_MAX: usize = 64 * 1024;
/// Plaintext buffered before it is compressed.
const PLAIN_BYTES_MAX: usize = 64 * 1024;
/// Compressed bytes produced per compression step.
const WRITE_BUF_BYTES: usize = 64 * 1024;
/// The highest deflate level.
const LEVEL_MAX: u32 = 9;

/// Why a deflate stream failed. Carried inside an [`io::Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeflateError {
    /// The compressed input is not valid deflate.
    #[error("deflate: corrupt input: {0}")]
    Corrupt(String),
    /// The decompressor neither consumed input nor produced output from a full buffer.
    #[error("deflate: decompressor made no progress")]
    Stalled,
    /// The compressor failed (it has no failure on valid use; kept to avoid a panic).
    #[error("deflate: compressor failed: {0}")]
    Compress(String),
    /// A write after shutdown finished the stream.
    #[error("deflate: write after the stream was finished")]
    Finished,
}

impl From<DeflateError> for io::Error {
    fn from(err: DeflateError) -> Self {
        let kind = match err {
            DeflateError::Corrupt(_) | DeflateError::Stalled => io::ErrorKind::InvalidData,
            DeflateError::Compress(_) => io::ErrorKind::Other,
            DeflateError::Finished => io::ErrorKind::BrokenPipe,
        };
        io::Error::new(kind, err)
    }
}

/// Wraps `stream` in raw deflate in both directions; writes compress at `level` (0..=9,
/// higher is clamped to 9). Each flush is a sync flush.
pub fn deflate(stream: BoxStream, level: u32) -> BoxStream {
    Box::new(DeflateStream {
        inner: stream,
        reader: Inflater::new(),
        writer: Deflater::new(level.min(LEVEL_MAX)),
    })
}

struct DeflateStream {
    inner: BoxStream,
    reader: Inflater,
    writer: Deflater,
}

/// The read side.
struct Inflater {
    /// Compressed bytes read from the stream; `start..end` is not yet decompressed.
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    decompress: Decompress,
    eof: bool,
    /// The final block has been decoded: reads return end of stream.
    finished: bool,
    /// Once set, every read fails with it.
    failed: Option<DeflateError>,
}

impl Inflater {
    fn new() -> Self {
        Inflater {
            raw: vec![0; READ_BUF_BYTES],
            raw_start: 0,
            raw_end: 0,
            decompress: Decompress::new(false),
            eof: false,
            finished: false,
            failed: None,
        }
    }

    fn poll_read(
        &mut self,
        inner: &mut BoxStream,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if let Some(err) = &self.failed {
                return Poll::Ready(Err(err.clone().into()));
            }
            if self.finished {
                return Poll::Ready(Ok(()));
            }
            // Even with no input left, the decompressor may hold output that did not
            // fit the last caller's buffer.
            match self.inflate(buf) {
                Ok((_, produced)) if produced > 0 => return Poll::Ready(Ok(())),
                Ok((consumed, _)) if consumed > 0 || self.finished => continue,
                Ok(_) => {}
                Err(err) => {
                    self.failed = Some(err.clone());
                    return Poll::Ready(Err(err.into()));
                }
            }
            // The stream closing without a final block is how nsqd and go-nsq end a
            // connection, so it is an ordinary end of stream; a frame cut short is the
            // next layer's to notice.
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            if let Err(err) = self.make_room() {
                self.failed = Some(err);
                continue;
            }
            let mut read_buf = ReadBuf::new(&mut self.raw[self.raw_end..]);
            ready!(Pin::new(&mut *inner).poll_read(cx, &mut read_buf))?;
            let n = read_buf.filled().len();
            self.eof = n == 0;
            self.raw_end += n;
        }
    }

    /// Decompresses buffered input into `buf`; returns (consumed, produced).
    fn inflate(&mut self, buf: &mut ReadBuf<'_>) -> Result<(usize, usize), DeflateError> {
        let want = buf.remaining().min(READ_PIECE_BYTES_MAX);
        let out = buf.initialize_unfilled_to(want);
        let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
        let status = self
            .decompress
            .decompress(
                &self.raw[self.raw_start..self.raw_end],
                out,
                FlushDecompress::None,
            )
            .map_err(|err| DeflateError::Corrupt(err.to_string()))?;
        let consumed = (self.decompress.total_in() - in_before) as usize;
        let produced = (self.decompress.total_out() - out_before) as usize;
        self.raw_start += consumed;
        buf.advance(produced);
        if status == Status::StreamEnd {
            self.finished = true;
        }
        Ok((consumed, produced))
    }

    /// Makes space at the end of the raw buffer for the next read.
    fn make_room(&mut self) -> Result<(), DeflateError> {
        if self.raw_start == self.raw_end {
            self.raw_start = 0;
            self.raw_end = 0;
        } else if self.raw_start > 0 {
            self.raw.copy_within(self.raw_start..self.raw_end, 0);
            self.raw_end -= self.raw_start;
            self.raw_start = 0;
        }
        if self.raw_end == self.raw.len() {
            return Err(DeflateError::Stalled);
        }
        Ok(())
    }
}

/// The write side.
struct Deflater {
    /// Plaintext not yet handed to the compressor.
    plain: BytesMut,
    /// Compressed bytes; `out_pos..` is not yet written to the stream. Its capacity is
    /// fixed: each compression step fills at most the spare room.
    out: Vec<u8>,
    out_pos: usize,
    compress: Compress,
    /// The current flush's sync marker is fully in `out`; cleared by new writes and by
    /// the end of the flush, so the next flush emits a fresh one.
    synced: bool,
    /// Shutdown wrote the final block.
    finished: bool,
}

impl Deflater {
    fn new(level: u32) -> Self {
        Deflater {
            plain: BytesMut::with_capacity(PLAIN_BYTES_MAX),
            out: Vec::with_capacity(WRITE_BUF_BYTES),
            out_pos: 0,
            compress: Compress::new(Compression::new(level), false),
            synced: false,
            finished: false,
        }
    }

    fn poll_write(
        &mut self,
        inner: &mut BoxStream,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.finished {
            return Poll::Ready(Err(DeflateError::Finished.into()));
        }
        while self.plain.len() >= PLAIN_BYTES_MAX {
            ready!(self.poll_drain(inner, cx))?;
            self.compress_step(FlushCompress::None)?;
        }
        let n = buf.len().min(PLAIN_BYTES_MAX - self.plain.len());
        self.plain.extend_from_slice(&buf[..n]);
        self.synced = false;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(&mut self, inner: &mut BoxStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_drain(inner, cx))?;
            if self.finished || (self.synced && self.plain.is_empty()) {
                break;
            }
            self.synced = self.compress_step(FlushCompress::Sync)?;
        }
        ready!(Pin::new(inner).poll_flush(cx))?;
        self.synced = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        &mut self,
        inner: &mut BoxStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_drain(inner, cx))?;
            if self.finished {
                break;
            }
            self.finished = self.compress_step(FlushCompress::Finish)?;
        }
        ready!(Pin::new(&mut *inner).poll_flush(cx))?;
        Pin::new(inner).poll_shutdown(cx)
    }

    fn poll_drain(&mut self, inner: &mut BoxStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(poll_write_out(inner, cx, &self.out, &mut self.out_pos))?;
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Compresses buffered plaintext into the (drained) output buffer under `flush`.
    /// True when all plaintext was taken and the flush's output is complete: the step
    /// left output room unused, or it ended the stream.
    fn compress_step(&mut self, flush: FlushCompress) -> Result<bool, DeflateError> {
        debug_assert!(self.out.is_empty());
        let room = self.out.capacity();
        let in_before = self.compress.total_in();
        let status = self
            .compress
            .compress_vec(&self.plain, &mut self.out, flush)
            .map_err(|err| DeflateError::Compress(err.to_string()))?;
        let consumed = (self.compress.total_in() - in_before) as usize;
        self.plain.advance(consumed);
        if status == Status::StreamEnd {
            return Ok(true);
        }
        Ok(self.plain.is_empty() && self.out.len() < room)
    }
}

impl AsyncRead for DeflateStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.reader.poll_read(&mut this.inner, cx, buf)
    }
}

impl AsyncWrite for DeflateStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writer.poll_write(&mut this.inner, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.writer.poll_flush(&mut this.inner, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.writer.poll_shutdown(&mut this.inner, cx)
    }
}
