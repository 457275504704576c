//! Request bodies, read within a limit so a large or endless body costs nothing.

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::Request;

/// Reads a request body of at most `limit` bytes; `None` when it is longer.
pub(super) async fn read_body(
    request: Request<Incoming>,
    limit: usize,
) -> Result<Option<Bytes>, ()> {
    let mut body = request.into_body();
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(mut data) = frame.into_data() {
            if collected.len() + data.remaining() > limit {
                return Ok(None);
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                collected.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok(Some(collected.freeze()))
}

/// Reads and drops a request body Go reads but ignores (the admin endpoints), at most
/// `limit` bytes of it: past that nsqd answers without reading on, and hyper closes the
/// connection instead of draining the rest. `Err` when the body could not be read.
pub(super) async fn discard_body(request: Request<Incoming>, limit: usize) -> Result<(), ()> {
    let mut body = request.into_body();
    let mut read = 0usize;
    while read <= limit {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|_| ())?;
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.remaining());
        }
    }
    Ok(())
}

pub(super) fn content_length(request: &Request<Incoming>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
