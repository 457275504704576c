//! The HTTP front (`nsq::http_front::HttpFront`): the stream wrapper that follows request
//! framing in front of hyper, swaps long targets for placeholders and answers what Go
//! refuses before hyper sees it.
//!
//! Input: bytes 0-7 choose where the client's bytes are cut into reads; the rest is what
//! the client sends before it closes. The same bytes are fed whole and cut; checks:
//! - the front never panics and always finishes (the client's end of file ends it);
//! - what hyper reads and what the front writes back do not depend on how the bytes
//!   were cut into reads;
//! - the front writes nothing, or exactly one of Go's refusals (400, 431) followed by a
//!   shutdown of the write side;
//! - hyper reads the client's bytes unchanged (a prefix of them after a refusal), except
//!   where a target was swapped for a placeholder.
#![no_main]

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use nsq::http_front::{HttpFront, LongTargets};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// A client that sends its chunks, one per read, then closes; keeps what it is sent.
#[derive(Default)]
struct Client {
    chunks: VecDeque<Vec<u8>>,
    written: Vec<u8>,
    shut_down: bool,
}

impl AsyncRead for Client {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(mut chunk) = this.chunks.pop_front() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                this.chunks.push_front(chunk.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Client {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        assert!(!this.shut_down, "written after the shutdown");
        this.written.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().shut_down = true;
        Poll::Ready(Ok(()))
    }
}

/// What hyper reads through the front, what the front wrote back, and whether it shut
/// the write side.
fn through_front(chunks: Vec<Vec<u8>>) -> (Vec<u8>, Vec<u8>, bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = Client {
            chunks: chunks.into(),
            ..Client::default()
        };
        let mut front = HttpFront::new(client, Arc::new(LongTargets::default()));
        let mut seen = Vec::new();
        front
            .read_to_end(&mut seen)
            .await
            .expect("the mock client never fails");
        let client = front.into_inner();
        (seen, client.written, client.shut_down)
    })
}

/// `bytes` cut where the 8 bytes of `cuts` say (each byte a gap of 0-255 bytes).
fn cut(bytes: &[u8], cuts: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut from = 0;
    for gap in cuts.iter().cycle() {
        if from >= bytes.len() {
            break;
        }
        let to = (from + usize::from(*gap).max(1)).min(bytes.len());
        chunks.push(bytes[from..to].to_vec());
        from = to;
    }
    chunks
}

const REFUSALS: [&[u8]; 2] = [
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request",
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (cuts, sent) = data.split_at(8);
    let whole = through_front(vec![sent.to_vec()]);
    let pieces = through_front(cut(sent, cuts));
    assert_eq!(
        whole, pieces,
        "the answer depends on how the reads were cut"
    );

    let (seen, written, shut_down) = whole;
    let placeholder = b"/.nsq-rs-long-target/";
    let swapped = seen.windows(placeholder.len()).any(|w| w == placeholder);
    if written.is_empty() {
        assert!(!shut_down);
        if !swapped {
            assert_eq!(seen, sent, "hyper must read the client's bytes unchanged");
        }
    } else {
        assert!(
            REFUSALS.contains(&written.as_slice()),
            "not Go's refusal: {written:?}"
        );
        assert!(shut_down, "a refusal shuts the write side");
        if !swapped {
            assert!(
                sent.starts_with(&seen),
                "after a refusal hyper reads a prefix"
            );
        }
    }
});
