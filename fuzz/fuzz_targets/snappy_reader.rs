//! The snappy framing-format stream reader (and writer, by round trip): see
//! `compress_common.rs`.
#![no_main]

#[path = "compress_common.rs"]
mod compress_common;

use libfuzzer_sys::fuzz_target;
use nsq::compress::snappy;
use nsq::env::BoxStream;

fn wrap(stream: BoxStream, _level: u8) -> BoxStream {
    snappy(stream)
}

fuzz_target!(|data: &[u8]| compress_common::run(data, wrap));
