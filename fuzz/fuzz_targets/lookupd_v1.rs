//! The nsqlookupd TCP protocol V1: a real nsqlookupd on loopback reads the input after
//! the `  V1` magic; every answer is a well-formed frame (`OK`, IDENTIFY's JSON, or a
//! fatal `E_*` error that ends the connection). Each line also goes through the pure
//! parsers directly.
#![no_main]

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nsq::lookupd::{Lookupd, Options};
use nsq::protocol::lookup::{self, TopicChannel, MAGIC_V1};

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        common::runtime().block_on(async {
            let opts = Options {
                tcp_address: "127.0.0.1:0".into(),
                http_address: "127.0.0.1:0".into(),
                ..Options::default()
            };
            let lookupd = Lookupd::new(opts, common::env())
                .await
                .expect("lookupd starts");
            let addr = lookupd.tcp_addr();
            tokio::spawn(async move {
                let _ = lookupd.run().await;
            });
            addr
        })
    })
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n').take(16) {
        if let Ok(lookup::Command::Register(args) | lookup::Command::Unregister(args)) =
            lookup::parse_line(line)
        {
            if let Ok(names) = TopicChannel::parse("REGISTER", &args) {
                assert!(nsq::protocol::is_valid_topic_name(&names.topic));
            }
        }
    }
    let _ = lookup::parse_identify(data);

    let mut request = MAGIC_V1.to_vec();
    request.extend_from_slice(data);
    let answer = common::exchange(server(), &request, true);
    check(&answer, data);
});

/// Splits the answer into `[i32 size][data]` frames and checks each.
fn check(answer: &[u8], sent: &[u8]) {
    let mut rest = answer;
    let mut failed = false;
    while !rest.is_empty() {
        assert!(
            !failed,
            "frames after a fatal error: {answer:?} for {sent:?}"
        );
        let size = rest
            .first_chunk::<4>()
            .map(|s| i32::from_be_bytes(*s))
            .unwrap_or_else(|| panic!("cut frame header: {answer:?}"));
        let size = usize::try_from(size).expect("negative frame size");
        let frame = rest
            .get(4..4 + size)
            .unwrap_or_else(|| panic!("cut frame: {answer:?}"));
        rest = &rest[4 + size..];
        if frame == lookup::OK {
            continue;
        }
        if frame.starts_with(b"E_") {
            failed = true;
            continue;
        }
        serde_json::from_slice::<serde_json::Value>(frame)
            .unwrap_or_else(|e| panic!("frame neither OK, E_ nor JSON ({e}): {frame:?}"));
    }
}
