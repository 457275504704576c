//! Snappy's framing format over a stream, as github.com/golang/snappy's `Reader` and
//! `Writer` speak it (nsqd's and go-nsq's snappy upgrade).
//!
//! A stream is a sequence of chunks: one type byte, a 24-bit little-endian length, then
//! the body. The stream identifier chunk comes first; a data chunk carries the masked
//! CRC-32C of its uncompressed bytes and at most 65536 of them, compressed (type 0x00) or
//! not (0x01); types 0x80..=0xfe are skipped; 0x02..=0x7f are unsupported.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::poll_write_out;
use crate::env::BoxStream;

/// Uncompressed bytes in one data chunk at most.
const BLOCK_BYTES_MAX: usize = 65536;
/// snappy's worst-case encoded size of a full block (`snap::raw::max_compress_len`).
const ENCODED_BLOCK_BYTES_MAX: usize = 32 + BLOCK_BYTES_MAX + BLOCK_BYTES_MAX / 6;
const HEADER_BYTES: usize = 4;
const CHECKSUM_BYTES: usize = 4;
/// The longest chunk body accepted, of any type (Go's reader buffer).
const CHUNK_BODY_BYTES_MAX: usize = CHECKSUM_BYTES + ENCODED_BLOCK_BYTES_MAX;

const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_STREAM_IDENTIFIER: u8 = 0xff;
const STREAM_IDENTIFIER_BODY: &[u8; 6] = b"sNaPpY";
const STREAM_IDENTIFIER_CHUNK: [u8; 10] = [0xff, 6, 0, 0, b's', b'N', b'a', b'P', b'p', b'Y'];

/// Room for one whole chunk, plus slack so a read can bring the next one's start.
const READ_BUF_BYTES: usize = 2 * (HEADER_BYTES + CHUNK_BODY_BYTES_MAX);
/// Room for the stream identifier and one chunk of the largest size.
const WRITE_BUF_BYTES: usize = STREAM_IDENTIFIER_CHUNK.len() + HEADER_BYTES + CHUNK_BODY_BYTES_MAX;

/// Why a snappy stream could not be read. Carried inside an `InvalidData` [`io::Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnappyError {
    /// The first chunk was not the stream identifier.
    #[error("snappy: stream does not start with the stream identifier")]
    MissingStreamIdentifier,
    /// A stream identifier chunk with the wrong length or body.
    #[error("snappy: bad stream identifier")]
    BadStreamIdentifier,
    /// A chunk length outside what its type allows.
    #[error("snappy: chunk type {kind:#04x} with bad length {len}")]
    BadChunkLength {
        /// The chunk type byte.
        kind: u8,
        /// The length field.
        len: usize,
    },
    /// A reserved unskippable chunk type (0x02..=0x7f).
    #[error("snappy: unsupported chunk type {0:#04x}")]
    UnsupportedChunk(u8),
    /// A compressed block that snappy cannot decode, or that decodes to more than 65536
    /// bytes.
    #[error("snappy: corrupt compressed block: {0}")]
    CorruptBlock(String),
    /// The CRC-32C of a chunk's data does not match its checksum.
    #[error("snappy: checksum mismatch")]
    BadChecksum,
    /// The stream ended in the middle of a chunk.
    #[error("snappy: stream ends inside a chunk")]
    Truncated,
}

impl From<SnappyError> for io::Error {
    fn from(err: SnappyError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }
}

#[cfg(test)]
pub(super) fn encoded_block_bytes_max() -> usize {
    ENCODED_BLOCK_BYTES_MAX
}

/// Wraps `stream` in snappy's framing format in both directions. Writes are buffered
/// and leave as chunks of at most 65536 bytes on flush (or when a block fills).
pub fn snappy(stream: BoxStream) -> BoxStream {
    Box::new(SnappyStream {
        inner: stream,
        reader: ChunkReader::new(),
        writer: ChunkWriter::new(),
    })
}

struct SnappyStream {
    inner: BoxStream,
    reader: ChunkReader,
    writer: ChunkWriter,
}

/// The read side: raw chunks in, decoded bytes out.
struct ChunkReader {
    /// Bytes read from the stream; `start..end` is not yet decoded.
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    /// The current chunk's data; `start..end` is not yet returned.
    decoded: Vec<u8>,
    decoded_start: usize,
    decoded_end: usize,
    decoder: snap::raw::Decoder,
    seen_stream_identifier: bool,
    eof: bool,
    /// Once set, every read fails with it.
    failed: Option<SnappyError>,
}

/// Masked CRC-32C, as the framing format stores it.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

impl ChunkReader {
    fn new() -> Self {
        ChunkReader {
            raw: vec![0; READ_BUF_BYTES],
            raw_start: 0,
            raw_end: 0,
            decoded: vec![0; BLOCK_BYTES_MAX],
            decoded_start: 0,
            decoded_end: 0,
            decoder: snap::raw::Decoder::new(),
            seen_stream_identifier: false,
            eof: false,
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
            if self.decoded_start < self.decoded_end {
                let n = buf.remaining().min(self.decoded_end - self.decoded_start);
                buf.put_slice(&self.decoded[self.decoded_start..self.decoded_start + n]);
                self.decoded_start += n;
                return Poll::Ready(Ok(()));
            }
            if let Some(err) = &self.failed {
                return Poll::Ready(Err(err.clone().into()));
            }
            match self.decode_chunk() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => {
                    self.failed = Some(err.clone());
                    return Poll::Ready(Err(err.into()));
                }
            }
            if self.eof {
                if self.raw_start == self.raw_end {
                    return Poll::Ready(Ok(()));
                }
                self.failed = Some(SnappyError::Truncated);
                continue;
            }
            ready!(self.poll_fill(inner, cx))?;
        }
    }

    /// Reads more raw bytes, first moving a partial chunk to the front if the buffer's
    /// end is reached (a whole chunk always fits).
    fn poll_fill(&mut self, inner: &mut BoxStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.raw_start == self.raw_end {
            self.raw_start = 0;
            self.raw_end = 0;
        } else if self.raw_end == self.raw.len() {
            self.raw.copy_within(self.raw_start..self.raw_end, 0);
            self.raw_end -= self.raw_start;
            self.raw_start = 0;
        }
        let mut read_buf = ReadBuf::new(&mut self.raw[self.raw_end..]);
        ready!(Pin::new(inner).poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        if n == 0 {
            self.eof = true;
        }
        self.raw_end += n;
        Poll::Ready(Ok(()))
    }

    /// Decodes the next chunk if all of it is buffered: Ok(false) when more bytes are
    /// needed. The header is checked as soon as it is complete, before waiting for a body
    /// that could never fit.
    fn decode_chunk(&mut self) -> Result<bool, SnappyError> {
        let pending = &self.raw[self.raw_start..self.raw_end];
        let Some(header) = pending.get(..HEADER_BYTES) else {
            return Ok(false);
        };
        let kind = header[0];
        let len =
            usize::from(header[1]) | usize::from(header[2]) << 8 | usize::from(header[3]) << 16;
        check_header(kind, len, self.seen_stream_identifier)?;
        let Some(body) = pending.get(HEADER_BYTES..HEADER_BYTES + len) else {
            return Ok(false);
        };
        match kind {
            CHUNK_STREAM_IDENTIFIER => {
                if body != STREAM_IDENTIFIER_BODY {
                    return Err(SnappyError::BadStreamIdentifier);
                }
                self.seen_stream_identifier = true;
            }
            CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED => {
                let (checksum, data) = body.split_at(CHECKSUM_BYTES);
                let checksum =
                    u32::from_le_bytes([checksum[0], checksum[1], checksum[2], checksum[3]]);
                let n = if kind == CHUNK_COMPRESSED {
                    decompress_block(&mut self.decoder, data, &mut self.decoded)?
                } else {
                    self.decoded[..data.len()].copy_from_slice(data);
                    data.len()
                };
                if masked_crc(&self.decoded[..n]) != checksum {
                    return Err(SnappyError::BadChecksum);
                }
                self.decoded_start = 0;
                self.decoded_end = n;
            }
            _ => {} // padding and reserved skippable chunks
        }
        self.raw_start += HEADER_BYTES + len;
        Ok(true)
    }
}

/// Rejects a chunk header whose type or length is impossible, as Go's reader does.
fn check_header(kind: u8, len: usize, seen_stream_identifier: bool) -> Result<(), SnappyError> {
    if !seen_stream_identifier && kind != CHUNK_STREAM_IDENTIFIER {
        return Err(SnappyError::MissingStreamIdentifier);
    }
    let allowed = match kind {
        CHUNK_STREAM_IDENTIFIER => {
            if len != STREAM_IDENTIFIER_BODY.len() {
                return Err(SnappyError::BadStreamIdentifier);
            }
            true
        }
        CHUNK_COMPRESSED => (CHECKSUM_BYTES..=CHUNK_BODY_BYTES_MAX).contains(&len),
        CHUNK_UNCOMPRESSED => (CHECKSUM_BYTES..=CHECKSUM_BYTES + BLOCK_BYTES_MAX).contains(&len),
        0x02..=0x7f => return Err(SnappyError::UnsupportedChunk(kind)),
        _ => len <= CHUNK_BODY_BYTES_MAX,
    };
    if allowed {
        Ok(())
    } else {
        Err(SnappyError::BadChunkLength { kind, len })
    }
}

/// Decodes one compressed block into `out` (65536 bytes), refusing one that claims more.
fn decompress_block(
    decoder: &mut snap::raw::Decoder,
    data: &[u8],
    out: &mut [u8],
) -> Result<usize, SnappyError> {
    let corrupt = |err: snap::Error| SnappyError::CorruptBlock(err.to_string());
    let len = snap::raw::decompress_len(data).map_err(corrupt)?;
    let Some(out) = out.get_mut(..len) else {
        return Err(SnappyError::CorruptBlock(format!(
            "block decodes to {len} bytes, more than {BLOCK_BYTES_MAX}"
        )));
    };
    decoder.decompress(data, out).map_err(corrupt)
}

/// The write side: plaintext in, chunks out.
struct ChunkWriter {
    /// Plaintext not yet encoded: at most one block.
    plain: Vec<u8>,
    /// Encoded bytes; `pos..len` is not yet written to the stream.
    out: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    encoder: snap::raw::Encoder,
    wrote_stream_identifier: bool,
}

impl ChunkWriter {
    fn new() -> Self {
        ChunkWriter {
            plain: Vec::with_capacity(BLOCK_BYTES_MAX),
            out: vec![0; WRITE_BUF_BYTES],
            out_pos: 0,
            out_len: 0,
            encoder: snap::raw::Encoder::new(),
            wrote_stream_identifier: false,
        }
    }

    fn poll_write(
        &mut self,
        inner: &mut BoxStream,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.plain.len() == BLOCK_BYTES_MAX {
            ready!(self.poll_drain(inner, cx))?;
            self.encode_block()?;
        }
        let n = buf.len().min(BLOCK_BYTES_MAX - self.plain.len());
        self.plain.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(&mut self, inner: &mut BoxStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_drain(inner, cx))?;
            if self.plain.is_empty() {
                break;
            }
            self.encode_block()?;
        }
        Pin::new(inner).poll_flush(cx)
    }

    fn poll_drain(&mut self, inner: &mut BoxStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(poll_write_out(
            inner,
            cx,
            &self.out[..self.out_len],
            &mut self.out_pos
        ))?;
        self.out_pos = 0;
        self.out_len = 0;
        Poll::Ready(Ok(()))
    }

    /// Turns the buffered plaintext into one chunk (after the stream identifier, the
    /// first time). The output buffer must be drained. Like Go's writer, a block that
    /// compression does not shrink by at least an eighth is sent uncompressed.
    fn encode_block(&mut self) -> io::Result<()> {
        debug_assert_eq!(self.out_len, 0);
        debug_assert!(!self.plain.is_empty() && self.plain.len() <= BLOCK_BYTES_MAX);
        let mut at = 0;
        if !self.wrote_stream_identifier {
            self.out[..STREAM_IDENTIFIER_CHUNK.len()].copy_from_slice(&STREAM_IDENTIFIER_CHUNK);
            at = STREAM_IDENTIFIER_CHUNK.len();
            self.wrote_stream_identifier = true;
        }
        let data_at = at + HEADER_BYTES + CHECKSUM_BYTES;
        let compressed = self
            .encoder
            .compress(&self.plain, &mut self.out[data_at..])
            .map_err(|err| io::Error::other(format!("snappy encode: {err}")))?;
        let plain_len = self.plain.len();
        let (kind, data_len) = if compressed >= plain_len - plain_len / 8 {
            self.out[data_at..data_at + plain_len].copy_from_slice(&self.plain);
            (CHUNK_UNCOMPRESSED, plain_len)
        } else {
            (CHUNK_COMPRESSED, compressed)
        };
        let chunk_len = CHECKSUM_BYTES + data_len;
        let [l0, l1, l2, _] = (chunk_len as u32).to_le_bytes();
        self.out[at..at + HEADER_BYTES].copy_from_slice(&[kind, l0, l1, l2]);
        self.out[at + HEADER_BYTES..data_at]
            .copy_from_slice(&masked_crc(&self.plain).to_le_bytes());
        self.out_len = data_at + data_len;
        self.plain.clear();
        Ok(())
    }
}

impl AsyncRead for SnappyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.reader.poll_read(&mut this.inner, cx, buf)
    }
}

impl AsyncWrite for SnappyStream {
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
        ready!(this.writer.poll_flush(&mut this.inner, cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
