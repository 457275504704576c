//! HTTP query and body parsing for `/pub`, `/mpub` (text and binary) and `/config`,
//! through a real nsqd (loopback sockets, `MemFs`) with small configured limits.
//!
//! Input: byte 0 picks the request, then the query (or `/config` option) up to the first
//! NUL, then the body. Every request must be answered in time with one of Go's statuses,
//! never a 500, and errors are Go's `{"message":...}` JSON.
#![no_main]

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nsq::nsqd::{Nsqd, Options};

/// The configured limits, small so the fuzzer reaches them.
const MAX_MSG_SIZE: i64 = 1024;
const MAX_BODY_SIZE: i64 = 4096;

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        common::runtime().block_on(async {
            let opts = Options {
                tcp_address: "127.0.0.1:0".into(),
                http_address: "127.0.0.1:0".into(),
                data_path: "/fuzz-data".into(),
                max_msg_size: MAX_MSG_SIZE,
                max_body_size: MAX_BODY_SIZE,
                mem_queue_size: 100,
                ..Options::default()
            };
            let env = common::env();
            env.fs
                .create_dir_all(std::path::Path::new("/fuzz-data"))
                .await
                .expect("data path");
            let nsqd = Nsqd::new(opts, env).await.expect("nsqd starts");
            let addr = nsqd.http_addr().expect("HTTP enabled");
            let runner = nsqd.clone();
            tokio::spawn(async move {
                let _ = runner.run().await;
                // Keep the handle alive for the process.
                drop(nsqd);
            });
            addr
        })
    })
}

/// Percent-encodes what a request line cannot carry; `%`, `&`, `=` and `+` stay raw so
/// the fuzzer also writes its own (bad) escapes.
fn url_text(raw: &[u8]) -> String {
    let mut out = String::new();
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"%&=+-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (query, body) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let query = url_text(query);
    let (method, target) = match selector % 6 {
        0 => ("POST", format!("/pub?{query}")),
        1 => ("POST", format!("/mpub?{query}")),
        2 => ("POST", format!("/mpub?binary=true&{query}")),
        3 => ("PUT", format!("/config/{query}")),
        4 => ("GET", format!("/config/{query}")),
        _ => ("PUT", "/config/nsqlookupd_tcp_addresses".to_string()),
    };
    // Never point nsqd's lookupd loop at a real host: keep PUT nsqlookupd_tcp_addresses
    // to loopback addresses that refuse (port 1) when the body parses.
    let body = if target == "/config/nsqlookupd_tcp_addresses" && method == "PUT" {
        match serde_json::from_slice::<Vec<String>>(body) {
            Ok(list) if !list.iter().all(|a| a.starts_with("127.0.0.1:1")) => {
                return;
            }
            _ => body,
        }
    } else {
        body
    };
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: fuzz\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let answer = common::exchange(server(), &request, false);
    check(&answer, &target, body.len());
});

fn check(answer: &[u8], target: &str, body_len: usize) {
    let text = String::from_utf8_lossy(answer);
    let status: u16 = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {target}: {text:?}"));
    assert!(
        matches!(status, 200 | 400 | 404 | 405 | 413),
        "status {status} for {target} ({body_len} body bytes): {text:?}"
    );
    if status != 200 {
        let json = text.split("\r\n\r\n").nth(1).unwrap_or("");
        let value: serde_json::Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text:?}"));
        assert!(value.get("message").is_some(), "{text:?}");
    }
    if target.starts_with("/pub") && body_len as i64 > MAX_MSG_SIZE {
        assert_eq!(status, 413, "{target} took {body_len} bytes: {text:?}");
    }
    if target.starts_with("/mpub") && body_len as i64 > MAX_BODY_SIZE {
        assert_eq!(status, 413, "{target} took {body_len} bytes: {text:?}");
    }
}
