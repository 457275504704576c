//! What Go's HTTP server does with a request head before any handler runs, where hyper
//! would answer differently: a stream wrapper that sits between the socket and hyper.
//!
//! - Go reads a request line and headers of up to 1 MiB + 4 KiB (`http.DefaultMaxHeaderBytes`
//!   plus its read slack); hyper refuses any request target over 64 KiB with 414. Targets
//!   hyper cannot take are swapped for a short placeholder and handed to the service
//!   through [`LongTargets`]; a head over Go's limit gets Go's 431.
//! - Go answers a request line it cannot parse (a V2 client on the HTTP port sends
//!   `  V2IDENTIFY\n`) with its plain `400 Bad Request` once the line has ended; hyper
//!   answers at the first bad byte with an empty body. The wrapper answers as Go does and
//!   closes gracefully: the write side first, then what the client still sends is read
//!   and dropped for a moment, so the answer is not lost to a reset.
//!
//! To find where each request head starts, the wrapper follows the framing of every
//! request body (`Content-Length` or chunked). Anything it does not understand (an
//! upgrade, an unknown transfer coding, a malformed length) is passed through untouched
//! from then on, for hyper to answer.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most Go reads of a request head: `http.DefaultMaxHeaderBytes` (1 MiB) and the 4 KiB
/// it allows on top.
pub const MAX_HEAD_BYTES: usize = (1 << 20) + 4096;

/// Request targets longer than this go to the service through [`LongTargets`]; hyper
/// never parses more than this of a target.
const LONG_TARGET: usize = 8 * 1024;

/// The path a long target is replaced with, followed by its sequence number.
const PLACEHOLDER: &str = "/.nsq-rs-long-target/";

/// How long a refused client's further bytes are read and dropped before the close.
const REFUSAL_DRAIN: Duration = Duration::from_millis(500);

/// At most this much of a refused client's further bytes is read.
const REFUSAL_DRAIN_BYTES: usize = 1 << 20;

/// A chunk-size line or trailer line longer than this is left for hyper to refuse.
const LINE_MAX: usize = 64 * 1024;

/// Go's answer to a request line it cannot parse.
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";

/// Go's answer to a request head over [`MAX_HEAD_BYTES`].
const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large";

/// The request targets of one connection that were too long for hyper, in request order.
#[derive(Debug, Default)]
pub struct LongTargets {
    queue: Mutex<VecDeque<(u64, String)>>,
}

/// A request's target as the client sent it, when it did not fit hyper's `Uri`.
#[derive(Debug, Clone)]
pub struct FullTarget(pub String);

impl LongTargets {
    /// Puts the original target back on a request that carries a placeholder: as a
    /// [`FullTarget`] extension, read through [`path_and_query`].
    pub fn restore<B>(&self, request: &mut hyper::Request<B>) {
        let Some(seq) = request.uri().path().strip_prefix(PLACEHOLDER) else {
            return;
        };
        let Ok(seq) = seq.parse::<u64>() else {
            return;
        };
        let mut queue = self.queue.lock();
        if queue.front().is_some_and(|(first, _)| *first == seq) {
            if let Some((_, target)) = queue.pop_front() {
                request.extensions_mut().insert(FullTarget(target));
            }
        }
    }

    fn push(&self, seq: u64, target: String) {
        self.queue.lock().push_back((seq, target));
    }
}

/// A request's path and query string (without the `?`) as the client sent them, also
/// when the target was too long for hyper.
pub fn path_and_query<B>(request: &hyper::Request<B>) -> (&str, &str) {
    match request.extensions().get::<FullTarget>() {
        Some(FullTarget(target)) => {
            // An absolute-form target (`http://host/path?query`) routes by its path.
            let target = match target.split_once("://") {
                Some((_, rest)) if !target.starts_with('/') => {
                    rest.find('/').map_or("/", |at| &rest[at..])
                }
                _ => target.as_str(),
            };
            match target.split_once('?') {
                Some((path, query)) => (path, query),
                None => (target, ""),
            }
        }
        None => (request.uri().path(), request.uri().query().unwrap_or("")),
    }
}

/// Where the wrapper is in the client's byte stream.
#[derive(Debug)]
enum Phase {
    /// Gathering a request head.
    Head,
    /// Passing this many more bytes of a `Content-Length` body.
    Body(u64),
    /// Following a chunked body.
    Chunked(Chunked),
    /// Passing everything through: hyper decides.
    Raw,
}

/// Where a chunked body is.
#[derive(Debug)]
enum Chunked {
    /// Reading a chunk-size line: its length so far and the size read.
    Size {
        line: usize,
        size: u64,
        digits: bool,
        done: bool,
    },
    /// Passing this many more bytes of chunk data.
    Data(u64),
    /// Waiting for the line end after chunk data (bytes seen).
    DataEnd(usize),
    /// Reading trailer lines until an empty one (length of the current line).
    Trailer(usize),
}

/// Go's own answer being written, then the graceful close.
#[derive(Debug)]
enum Refusal {
    Writing {
        reply: &'static [u8],
        written: usize,
    },
    ShuttingDown,
    Draining {
        until: Pin<Box<tokio::time::Sleep>>,
        read: usize,
    },
    Done,
}

/// The stream hyper reads requests from and writes responses to. See the module docs.
#[derive(Debug)]
pub struct HttpFront<S> {
    inner: S,
    phase: Phase,
    /// The head being gathered (empty between requests).
    head: Vec<u8>,
    /// Bytes ready for hyper, from `out_at` on.
    out: Vec<u8>,
    out_at: usize,
    /// Whether a whole request head has gone to hyper on this connection: a refusal is
    /// then left to hyper, which may still be answering it.
    served_one: bool,
    refusal: Option<Refusal>,
    /// The inner stream returned end of file.
    eof: bool,
    long_targets: Arc<LongTargets>,
    next_seq: u64,
}

impl<S> HttpFront<S> {
    /// Wraps `inner`; targets too long for hyper are handed over through `long_targets`.
    pub fn new(inner: S, long_targets: Arc<LongTargets>) -> Self {
        HttpFront {
            inner,
            phase: Phase::Head,
            head: Vec::new(),
            out: Vec::new(),
            out_at: 0,
            served_one: false,
            refusal: None,
            eof: false,
            long_targets,
            next_seq: 0,
        }
    }

    /// The wrapped stream back, e.g. for a fuzz target to see what the front wrote to it.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Runs every byte the client sent through the framing, filling `out`.
    fn process(&mut self, data: &[u8]) {
        let mut input: Vec<u8>;
        let mut data = data;
        while !data.is_empty() && self.refusal.is_none() {
            match &mut self.phase {
                Phase::Raw => {
                    self.out.extend_from_slice(data);
                    return;
                }
                Phase::Body(left) => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                    self.out.extend_from_slice(&data[..n]);
                    *left -= n as u64;
                    if *left == 0 {
                        self.phase = Phase::Head;
                    }
                    data = &data[n..];
                }
                Phase::Chunked(chunked) => {
                    let (used, next) = chunked.advance(data);
                    self.out.extend_from_slice(&data[..used]);
                    data = &data[used..];
                    if let Some(next) = next {
                        self.phase = next;
                    }
                }
                Phase::Head => {
                    if self.head.is_empty() {
                        // Blank lines between requests are passed on; hyper skips them.
                        let blank = data.iter().take_while(|b| matches!(b, b'\r' | b'\n'));
                        let blank = blank.count();
                        self.out.extend_from_slice(&data[..blank]);
                        data = &data[blank..];
                        if data.is_empty() {
                            return;
                        }
                    }
                    let searched = self.head.len();
                    self.head.extend_from_slice(data);
                    let Some(end) = head_end(&self.head, searched) else {
                        self.check_partial_head();
                        return;
                    };
                    input = self.head.split_off(end);
                    self.finish_head();
                    data = &input;
                }
            }
        }
    }

    /// A head still incomplete: Go refuses a bad request line as soon as it has ended,
    /// and a head that outgrows its limit.
    fn check_partial_head(&mut self) {
        if self.head.len() > MAX_HEAD_BYTES {
            self.refuse(HEAD_TOO_LARGE);
            return;
        }
        if let Some(line_end) = self.head.iter().position(|b| *b == b'\n') {
            if request_line(&self.head[..line_end]).is_none() {
                self.refuse(BAD_REQUEST);
            }
        }
    }

    /// A whole head is in `self.head`: checked, its target swapped if too long for hyper,
    /// its body framing noted, and passed on.
    fn finish_head(&mut self) {
        if self.head.len() > MAX_HEAD_BYTES {
            self.refuse(HEAD_TOO_LARGE);
            return;
        }
        let line_end = self.head.iter().position(|b| *b == b'\n');
        let line_end = line_end.unwrap_or(self.head.len());
        if request_line(&self.head[..line_end]).is_none() {
            // `refuse` passes the head on to hyper after a served request.
            self.refuse(BAD_REQUEST);
            return;
        }
        let head = std::mem::take(&mut self.head);
        let Some(line) = request_line(&head[..line_end]) else {
            return;
        };
        self.served_one = true;
        self.phase = body_framing(line.method, &head[line_end..]);
        if needs_placeholder(line.target) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let target = String::from_utf8_lossy(line.target).into_owned();
            self.long_targets.push(seq, target);
            // The version and everything after it stay byte for byte.
            let version_at = line.method.len() + line.target.len() + 2;
            self.out.extend_from_slice(line.method);
            self.out
                .extend_from_slice(format!(" {PLACEHOLDER}{seq} ").as_bytes());
            self.out.extend_from_slice(&head[version_at..]);
        } else {
            self.out.extend_from_slice(&head);
        }
    }

    /// Answers as Go does and closes, unless an earlier request may still be answered,
    /// in which case hyper sees the bytes and answers itself.
    fn refuse(&mut self, reply: &'static [u8]) {
        if self.served_one {
            let head = std::mem::take(&mut self.head);
            self.out.extend_from_slice(&head);
            self.phase = Phase::Raw;
            return;
        }
        self.head = Vec::new();
        self.refusal = Some(Refusal::Writing { reply, written: 0 });
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> HttpFront<S> {
    /// Drives a refusal; ready (with nothing read: end of file for hyper) when done.
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some(refusal) = self.refusal.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match refusal {
                Refusal::Writing { reply, written } => {
                    match ready!(Pin::new(&mut self.inner).poll_write(cx, &reply[*written..])) {
                        Ok(n) if n > 0 => {
                            *written += n;
                            if *written == reply.len() {
                                *refusal = Refusal::ShuttingDown;
                            }
                        }
                        _ => *refusal = Refusal::Done,
                    }
                }
                Refusal::ShuttingDown => {
                    let _ = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
                    *refusal = Refusal::Draining {
                        until: Box::pin(tokio::time::sleep(REFUSAL_DRAIN)),
                        read: 0,
                    };
                }
                Refusal::Draining { until, read } => {
                    if until.as_mut().poll(cx).is_ready() || *read >= REFUSAL_DRAIN_BYTES {
                        *refusal = Refusal::Done;
                        continue;
                    }
                    let mut scratch = [0u8; 4096];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf)) {
                        Ok(()) if !buf.filled().is_empty() => *read += buf.filled().len(),
                        _ => *refusal = Refusal::Done,
                    }
                }
                Refusal::Done => return Poll::Ready(Ok(())),
            }
        }
    }

    /// Hands hyper what is ready in `out`.
    fn take_out(&mut self, buf: &mut ReadBuf<'_>) {
        let n = (self.out.len() - self.out_at).min(buf.remaining());
        buf.put_slice(&self.out[self.out_at..self.out_at + n]);
        self.out_at += n;
        if self.out_at == self.out.len() {
            self.out_at = 0;
            self.out.clear();
            if self.out.capacity() > 64 * 1024 {
                self.out = Vec::new();
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HttpFront<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_at < this.out.len() {
                this.take_out(buf);
                return Poll::Ready(Ok(()));
            }
            if this.refusal.is_some() {
                return this.poll_refusal(cx);
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // A body goes straight into hyper's buffer, no further than the body's end.
            if let (Phase::Body(left), true) = (&this.phase, buf.remaining() > 0) {
                let left = *left;
                let limit = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(buf.remaining());
                let mut part = ReadBuf::new(buf.initialize_unfilled_to(limit));
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
                let n = part.filled().len();
                buf.advance(n);
                if n == 0 {
                    this.eof = true;
                } else if left == n as u64 {
                    this.phase = Phase::Head;
                } else {
                    this.phase = Phase::Body(left - n as u64);
                }
                return Poll::Ready(Ok(()));
            }
            let mut scratch = [0u8; 8192];
            let mut read = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of file: a partial head still goes to hyper, which sees it cut short.
                this.eof = true;
                let head = std::mem::take(&mut this.head);
                this.out.extend_from_slice(&head);
                continue;
            }
            this.process(read.filled());
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HttpFront<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusal.is_some() {
            // Already shut down by the refusal.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The parts of a request line Go accepts: `METHOD SP TARGET SP HTTP/x.y`.
struct RequestLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
}

/// Go's `parseRequestLine`, `validMethod` and `ParseHTTPVersion` on one line (its line
/// end excluded); None where Go answers 400.
fn request_line(line: &[u8]) -> Option<RequestLine<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let space = line.iter().position(|b| *b == b' ')?;
    let (method, rest) = (&line[..space], &line[space + 1..]);
    let space = rest.iter().position(|b| *b == b' ')?;
    let (target, version) = (&rest[..space], &rest[space + 1..]);
    if method.is_empty() || !method.iter().all(|b| is_token(*b)) || !is_http_version(version) {
        return None;
    }
    if target.is_empty() || target.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return None;
    }
    Some(RequestLine { method, target })
}

/// RFC 7230 token characters, as Go's `isTokenTable`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Go's `ParseHTTPVersion`: `HTTP/` then one digit, a dot and one digit.
fn is_http_version(version: &[u8]) -> bool {
    match version.strip_prefix(b"HTTP/") {
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

/// Whether hyper cannot take `target` as it is: too long, or refused by its `Uri`.
fn needs_placeholder(target: &[u8]) -> bool {
    target.len() > LONG_TARGET || hyper::Uri::try_from(target).is_err()
}

/// Where the head in `buf` ends (just past its empty line), searching from about
/// `searched` on (bytes before it were searched already).
fn head_end(buf: &[u8], searched: usize) -> Option<usize> {
    let from = searched.saturating_sub(3);
    let mut at = from;
    while let Some(offset) = buf[at..].iter().position(|b| *b == b'\n') {
        let newline = at + offset;
        let after = newline + 1;
        match buf.get(after) {
            Some(b'\n') => return Some(after + 1),
            Some(b'\r') if buf.get(after + 1) == Some(&b'\n') => return Some(after + 2),
            _ => {}
        }
        at = after;
    }
    None
}

/// How the body after a head with these header lines is framed (RFC 7230 3.3.3).
fn body_framing(method: &[u8], headers: &[u8]) -> Phase {
    if method == b"CONNECT" {
        return Phase::Raw;
    }
    let mut length: Option<u64> = None;
    for line in headers.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
            return if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Phase::Chunked(Chunked::Size {
                    line: 0,
                    size: 0,
                    digits: false,
                    done: false,
                })
            } else {
                Phase::Raw
            };
        }
        if name.eq_ignore_ascii_case(b"upgrade") {
            return Phase::Raw;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            match (parsed, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Phase::Raw,
            }
        }
    }
    match length {
        Some(n) if n > 0 => Phase::Body(n),
        _ => Phase::Head,
    }
}

impl Chunked {
    /// Follows `data`: returns how many bytes belong to the body from here and, when the
    /// body ends or turns out malformed, the phase that follows.
    fn advance(&mut self, data: &[u8]) -> (usize, Option<Phase>) {
        let mut used = 0;
        while used < data.len() {
            match self {
                Chunked::Data(left) => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(data.len() - used);
                    used += n;
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Chunked::DataEnd(0);
                    }
                }
                Chunked::Size {
                    line,
                    size,
                    digits,
                    done,
                } => {
                    let b = data[used];
                    used += 1;
                    *line += 1;
                    if *line > LINE_MAX {
                        return (used, Some(Phase::Raw));
                    }
                    match b {
                        b'\n' if !*digits => return (used, Some(Phase::Raw)),
                        b'\n' if *size == 0 => *self = Chunked::Trailer(0),
                        b'\n' => *self = Chunked::Data(*size),
                        _ if *done => {}
                        _ if b.is_ascii_hexdigit() => {
                            let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                            match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                                Some(next) => {
                                    *size = next;
                                    *digits = true;
                                }
                                None => return (used, Some(Phase::Raw)),
                            }
                        }
                        // A chunk extension, or the line's CR: nothing more of the size.
                        _ => *done = true,
                    }
                }
                Chunked::DataEnd(seen) => {
                    let b = data[used];
                    used += 1;
                    *seen += 1;
                    if b == b'\n' {
                        *self = Chunked::Size {
                            line: 0,
                            size: 0,
                            digits: false,
                            done: false,
                        };
                    } else if *seen >= 2 {
                        return (used, Some(Phase::Raw));
                    }
                }
                Chunked::Trailer(line) => {
                    let b = data[used];
                    used += 1;
                    match b {
                        b'\n' if *line == 0 => return (used, Some(Phase::Head)),
                        b'\n' => *line = 0,
                        b'\r' if *line == 0 => {}
                        _ => {
                            *line += 1;
                            if *line > LINE_MAX {
                                return (used, Some(Phase::Raw));
                            }
                        }
                    }
                }
            }
        }
        (used, None)
    }
}

#[cfg(test)]
mod tests;
