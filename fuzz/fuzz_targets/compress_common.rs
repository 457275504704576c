//! The shared body of the snappy and deflate reader targets.
//!
//! Input: byte 0 picks the mode and the read size. Mode "garbage" reads the rest as a
//! compressed stream: it must decode or fail with `InvalidData`/`UnexpectedEof`, never
//! panic or hang, and never yield more than the bounded reads asked for. Mode "round
//! trip" writes the rest through the compressor, flushing at the fuzzer's chosen
//! points, and reads it back: the bytes must match.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use nsq::env::BoxStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The most plaintext read back per input.
const PLAINTEXT_BYTES_MAX: usize = 4 << 20;

/// A stream that reads from fixed bytes and writes into a shared buffer.
struct Wire {
    input: Vec<u8>,
    at: usize,
    output: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.input.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.output.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn wire(input: Vec<u8>) -> (BoxStream, Arc<Mutex<Vec<u8>>>) {
    let output = Arc::new(Mutex::new(Vec::new()));
    let stream = Wire {
        input,
        at: 0,
        output: output.clone(),
    };
    (Box::new(stream), output)
}

pub fn run(data: &[u8], wrap: fn(BoxStream, u8) -> BoxStream) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let read_size = 1 + usize::from(selector >> 1) * 61;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    if selector & 1 == 0 {
        runtime.block_on(garbage(rest, read_size, wrap, selector));
    } else {
        runtime.block_on(round_trip(rest, read_size, wrap, selector));
    }
}

async fn read_all(stream: &mut BoxStream, read_size: usize) -> io::Result<Vec<u8>> {
    let mut plain = Vec::new();
    let mut piece = vec![0u8; read_size];
    loop {
        let n = stream.read(&mut piece).await?;
        assert!(n <= read_size);
        if n == 0 {
            return Ok(plain);
        }
        plain.extend_from_slice(&piece[..n]);
        if plain.len() > PLAINTEXT_BYTES_MAX {
            return Ok(plain);
        }
    }
}

async fn garbage(input: &[u8], read_size: usize, wrap: fn(BoxStream, u8) -> BoxStream, level: u8) {
    let (inner, _) = wire(input.to_vec());
    let mut stream = wrap(inner, level);
    if let Err(e) = read_all(&mut stream, read_size).await {
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ),
            "unexpected error kind {:?}: {e}",
            e.kind()
        );
    }
}

async fn round_trip(
    data: &[u8],
    read_size: usize,
    wrap: fn(BoxStream, u8) -> BoxStream,
    level: u8,
) {
    let (inner, output) = wire(Vec::new());
    let mut writer = wrap(inner, level);
    // Flush after each piece the fuzzer delimits with 0xff.
    for piece in data.split(|&b| b == 0xff) {
        writer.write_all(piece).await.expect("write");
        writer.flush().await.expect("flush");
    }
    let plaintext: Vec<u8> = data.iter().copied().filter(|&b| b != 0xff).collect();
    let compressed = std::mem::take(&mut *output.lock().unwrap());
    let (inner, _) = wire(compressed);
    let mut reader = wrap(inner, level);
    let mut got = Vec::new();
    let mut piece = vec![0u8; read_size];
    while got.len() < plaintext.len() {
        let n = reader.read(&mut piece).await.expect("read back");
        assert!(
            n > 0,
            "early end after {} of {} bytes",
            got.len(),
            plaintext.len()
        );
        got.extend_from_slice(&piece[..n]);
    }
    assert_eq!(got, plaintext, "round trip");
}
