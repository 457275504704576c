//! The raw deflate stream reader (and writer, by round trip, at every level 1-9): see
//! `compress_common.rs`.
#![no_main]

#[path = "compress_common.rs"]
mod compress_common;

use libfuzzer_sys::fuzz_target;
use nsq::compress::deflate;
use nsq::env::BoxStream;

fn wrap(stream: BoxStream, level: u8) -> BoxStream {
    deflate(stream, 1 + u32::from(level % 9))
}

fuzz_target!(|data: &[u8]| compress_common::run(data, wrap));
