use std::collections::VecDeque;

use proptest::prelude::*;
use tokio::io::AsyncReadExt;

use super::*;

/// A client that sends `chunks`, one per read, then closes; records what is written back.
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
        self.get_mut().written.extend_from_slice(data);
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

/// What hyper would read through the front when the client sends `chunks`, and the
/// front itself (for what it wrote and kept).
async fn through_front(chunks: Vec<Vec<u8>>) -> (Vec<u8>, HttpFront<Client>) {
    let client = Client {
        chunks: chunks.into(),
        ..Client::default()
    };
    let mut front = HttpFront::new(client, Arc::new(LongTargets::default()));
    let mut seen = Vec::new();
    front.read_to_end(&mut seen).await.unwrap();
    (seen, front)
}

fn split_at(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        if cut > from {
            chunks.push(bytes[from..cut].to_vec());
        }
        from = cut;
    }
    chunks
}

/// One valid request: a body by length or in chunks (with extensions and trailers).
fn request() -> impl Strategy<Value = Vec<u8>> {
    let body = proptest::collection::vec(any::<u8>(), 0..300);
    let sizes = proptest::collection::vec(1usize..50, 0..4);
    (body, sizes, any::<bool>(), any::<bool>()).prop_map(|(body, sizes, chunked, bare_lf)| {
        let eol: &[u8] = if bare_lf { b"\n" } else { b"\r\n" };
        let mut out = b"POST /pub?topic=t HTTP/1.1".to_vec();
        out.extend_from_slice(eol);
        out.extend_from_slice(b"Host: x");
        out.extend_from_slice(eol);
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            let mut rest = &body[..];
            for size in sizes {
                let n = size.min(rest.len());
                if n == 0 {
                    break;
                }
                out.extend_from_slice(format!("{n:x};ext=1\r\n").as_bytes());
                out.extend_from_slice(&rest[..n]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            out.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
        } else {
            out.extend_from_slice(format!("content-length: {}", body.len()).as_bytes());
            out.extend_from_slice(eol);
            out.extend_from_slice(eol);
            out.extend_from_slice(&body);
        }
        out
    })
}

proptest! {
    #[test]
    fn valid_requests_pass_through_unchanged_however_they_are_split(
        requests in proptest::collection::vec(request(), 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let sent: Vec<u8> = requests.concat();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (seen, front) = runtime.block_on(through_front(split_at(&sent, &cuts)));
        prop_assert_eq!(seen, sent);
        prop_assert!(front.inner.written.is_empty());
        prop_assert!(matches!(front.phase, Phase::Head));
    }
}

#[tokio::test]
async fn a_long_target_reaches_the_service_whole_and_hyper_sees_a_placeholder() {
    let target = format!("/pub?topic=t&pad={}", "x".repeat(100_000));
    let sent =
        format!("POST {target} HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /ping HTTP/1.1\r\n\r\n");
    let (seen, front) = through_front(split_at(sent.as_bytes(), &[7, 50_000])).await;
    let expected = format!(
        "POST {PLACEHOLDER}0 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /ping HTTP/1.1\r\n\r\n"
    );
    assert_eq!(String::from_utf8(seen).unwrap(), expected);
    let mut request = hyper::Request::builder()
        .uri(format!("{PLACEHOLDER}0"))
        .body(())
        .unwrap();
    front.long_targets.restore(&mut request);
    let (path, query) = path_and_query(&request);
    assert_eq!(path, "/pub");
    assert_eq!(query.len(), "topic=t&pad=".len() + 100_000);
    // A placeholder sent by a client is nobody's long target.
    let mut forged = hyper::Request::builder()
        .uri(format!("{PLACEHOLDER}0"))
        .body(())
        .unwrap();
    front.long_targets.restore(&mut forged);
    assert_eq!(path_and_query(&forged).0, format!("{PLACEHOLDER}0"));
}

#[tokio::test]
async fn a_v2_client_on_the_http_port_gets_gos_400_once_its_line_ends() {
    let (seen, front) = through_front(vec![
        b"  V2".to_vec(),
        b"IDENTIFY\n\x00\x00\x00\x02{}".to_vec(),
    ])
    .await;
    assert!(seen.is_empty(), "hyper sees no request: {seen:?}");
    assert_eq!(front.inner.written, BAD_REQUEST);
    assert!(front.inner.shut_down);
}

#[tokio::test]
async fn nothing_is_answered_before_the_request_line_ends() {
    let (seen, front) = through_front(vec![b"  V2".to_vec()]).await;
    // The client closed before a line end: hyper gets the fragment and gives up.
    assert_eq!(seen, b"  V2");
    assert!(front.inner.written.is_empty());
}

#[tokio::test]
async fn a_head_over_gos_limit_gets_gos_431() {
    let sent = format!(
        "GET /ping HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "y".repeat(MAX_HEAD_BYTES)
    );
    let (seen, front) = through_front(split_at(sent.as_bytes(), &[100, 600_000])).await;
    assert!(seen.is_empty());
    assert_eq!(front.inner.written, HEAD_TOO_LARGE);
}

#[tokio::test]
async fn after_a_served_request_hyper_answers_a_bad_one_itself() {
    let sent = b"GET /ping HTTP/1.1\r\n\r\nnot http at all\n".to_vec();
    let (seen, front) = through_front(vec![sent.clone()]).await;
    assert_eq!(seen, sent);
    assert!(front.inner.written.is_empty());
}

#[test]
fn request_lines_go_refuses() {
    for bad in [
        &b"  V2IDENTIFY"[..],
        b"GET /",
        b"GET / HTTP/1.1 extra",
        b"GET / HTTP/11",
        b"G(T / HTTP/1.1",
        b"GET /\x01 HTTP/1.1",
        b" / HTTP/1.1",
    ] {
        assert!(
            request_line(bad).is_none(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    for good in [
        &b"GET / HTTP/1.1"[..],
        b"POST /pub?topic=t HTTP/1.0\r",
        b"OPTIONS * HTTP/1.1",
    ] {
        assert!(
            request_line(good).is_some(),
            "{:?}",
            String::from_utf8_lossy(good)
        );
    }
}

/// Found by the `http_front` fuzz target: a whole bad head after a served request (the
/// line end and the blank line in one read) went to neither hyper nor the client.
#[tokio::test]
async fn a_whole_bad_head_after_a_served_request_reaches_hyper() {
    let sent = b"GET /ping HTTP/1.1\r\n\r\nGE\x1b\0 /1.0\r\n\r\n".to_vec();
    let (seen, front) = through_front(vec![sent.clone()]).await;
    assert_eq!(seen, sent);
    assert!(front.inner.written.is_empty());
}
