//! Round trips, interop with the canonical sync encoders, and garbage, for both codecs.

use std::io::{Read, Write};
use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{deflate, snappy};
use crate::env::BoxStream;

type Wrap = fn(BoxStream) -> BoxStream;

fn wrap_snappy(stream: BoxStream) -> BoxStream {
    snappy(stream)
}

fn wrap_deflate(stream: BoxStream) -> BoxStream {
    deflate(stream, 6)
}

const CODECS: [(&str, Wrap); 2] = [("snappy", wrap_snappy), ("deflate", wrap_deflate)];

/// Bytes that compress: runs and a small alphabet.
fn compressible(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"nsq-message-"[(i / 7) % 12]).collect()
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// Writes `data` in the pieces of `plan` (size, flush after it), cycling the plan, then
/// flushes.
async fn send<W: AsyncWrite + Unpin>(mut writer: W, data: &[u8], plan: &[(usize, bool)]) -> W {
    let mut at = 0;
    for (size, flush) in plan.iter().cycle() {
        if at == data.len() {
            break;
        }
        let end = at + (*size).clamp(1, data.len() - at);
        writer.write_all(&data[at..end]).await.unwrap();
        if *flush {
            writer.flush().await.unwrap();
        }
        at = end;
    }
    writer.flush().await.unwrap();
    writer
}

/// Reads exactly `len` bytes with reads of the sizes in `sizes`, cycled.
async fn recv<R: AsyncRead + Unpin>(mut reader: R, len: usize, sizes: &[usize]) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    let mut piece = vec![
        0u8;
        sizes
            .iter()
            .copied()
            .max()
            .unwrap_or(1)
            .clamp(1, len.max(1))
    ];
    for size in sizes.iter().cycle() {
        if got.len() == len {
            break;
        }
        let want = (*size).clamp(1, len - got.len());
        let n = reader.read(&mut piece[..want]).await.unwrap();
        assert!(
            n > 0,
            "early end of stream after {} of {len} bytes",
            got.len()
        );
        got.extend_from_slice(&piece[..n]);
    }
    got
}

/// Both ends wrapped; `a_to_b` goes one way and `b_to_a` the other, at the same time.
async fn round_trip(
    wrap: Wrap,
    a_to_b: &[u8],
    b_to_a: &[u8],
    plan: &[(usize, bool)],
    reads: &[usize],
    pipe_bytes: usize,
) {
    let (a, b) = tokio::io::duplex(pipe_bytes);
    let (read_a, write_a) = tokio::io::split(wrap(Box::new(a)));
    let (read_b, write_b) = tokio::io::split(wrap(Box::new(b)));
    let (_, got_b, _, got_a) = tokio::join!(
        send(write_a, a_to_b, plan),
        recv(read_b, a_to_b.len(), reads),
        send(write_b, b_to_a, plan),
        recv(read_a, b_to_a.len(), reads),
    );
    assert!(got_b == a_to_b, "a to b differs");
    assert!(got_a == b_to_a, "b to a differs");
}

#[tokio::test]
async fn many_sizes_round_trip_both_ways() {
    for (name, wrap) in CODECS {
        for len in [0, 1, 7, 1000, 65535, 65536, 65537, 200_000, 1_000_000] {
            let there = compressible(len);
            let back = random_bytes(len, len as u64);
            for (plan, reads, pipe) in [
                (vec![(usize::MAX, false)], vec![usize::MAX], 1 << 20),
                (
                    vec![(3, true), (70_000, false), (100, true)],
                    vec![1, 5000, 100_000],
                    17,
                ),
            ] {
                let case = round_trip(wrap, &there, &back, &plan, &reads, pipe);
                tokio::time::timeout(Duration::from_secs(20), case)
                    .await
                    .unwrap_or_else(|_| panic!("{name} len {len} hung"));
            }
        }
    }
}

#[tokio::test]
async fn each_flush_is_readable_without_closing() {
    for (name, wrap) in CODECS {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut a, mut b) = (wrap(Box::new(a)), wrap(Box::new(b)));
        for word in [&b"hello"[..], b"", b"world, again"] {
            a.write_all(word).await.unwrap();
            a.flush().await.unwrap();
            let mut got = vec![0; word.len()];
            tokio::time::timeout(Duration::from_secs(5), b.read_exact(&mut got))
                .await
                .unwrap_or_else(|_| panic!("{name}: flushed bytes not readable"))
                .unwrap();
            assert_eq!(got, word, "{name}");
        }
    }
}

/// Writes through `wrap`, shuts down, and returns the bytes on the wire.
async fn encode(wrap: Wrap, data: &[u8], plan: &[(usize, bool)]) -> Vec<u8> {
    let (ours, mut raw) = tokio::io::duplex(1 << 16);
    let writer = async {
        let mut writer = send(wrap(Box::new(ours)), data, plan).await;
        writer.shutdown().await.unwrap();
    };
    let mut wire = Vec::new();
    let (_, read) = tokio::join!(writer, raw.read_to_end(&mut wire));
    read.unwrap();
    wire
}

/// Feeds `wire` to `wrap`'s reader and reads to the end.
async fn decode(wrap: Wrap, wire: &[u8]) -> std::io::Result<Vec<u8>> {
    let (ours, mut raw) = tokio::io::duplex(1 << 16);
    let feeder = async {
        raw.write_all(wire).await.unwrap();
        drop(raw);
    };
    let mut reader = wrap(Box::new(ours));
    let mut got = Vec::new();
    let (_, result) = tokio::join!(feeder, reader.read_to_end(&mut got));
    result.map(|_| got)
}

#[tokio::test]
async fn snappy_reads_what_snaps_frame_encoder_writes() {
    for len in [0, 10, 65536, 300_000] {
        for data in [compressible(len), random_bytes(len, 9)] {
            let mut encoder = snap::write::FrameEncoder::new(Vec::new());
            encoder.write_all(&data).unwrap();
            let wire = encoder.into_inner().unwrap();
            assert_eq!(decode(wrap_snappy, &wire).await.unwrap(), data);
        }
    }
}

#[tokio::test]
async fn snaps_frame_decoder_reads_what_snappy_writes() {
    for len in [1, 10, 65536, 300_000] {
        for data in [compressible(len), random_bytes(len, 3)] {
            let wire = encode(wrap_snappy, &data, &[(40_000, true), (100_000, false)]).await;
            let mut got = Vec::new();
            snap::read::FrameDecoder::new(&wire[..])
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(got, data, "len {len}");
            assert_chunks_at_most_one_block(&wire);
        }
    }
}

/// Walks the chunks: the stream identifier first, no data chunk above 65536 bytes.
fn assert_chunks_at_most_one_block(wire: &[u8]) {
    assert_eq!(&wire[..10], b"\xff\x06\x00\x00sNaPpY");
    let mut at = 10;
    while at < wire.len() {
        let len = u32::from_le_bytes([wire[at + 1], wire[at + 2], wire[at + 3], 0]) as usize;
        if wire[at] == 0x01 {
            assert!(len - 4 <= 65536);
        }
        at += 4 + len;
    }
    assert_eq!(at, wire.len());
}

/// nsqd's `OK` after the snappy upgrade, as Go sends it: the stream identifier, then the
/// frame in an uncompressed chunk (too short to shrink).
#[tokio::test]
async fn snappy_sends_a_short_frame_uncompressed_like_go() {
    let ok_frame = b"\x00\x00\x00\x06\x00\x00\x00\x00OK";
    let wire = encode(wrap_snappy, ok_frame, &[(usize::MAX, true)]).await;
    assert_eq!(&wire[..14], b"\xff\x06\x00\x00sNaPpY\x01\x0e\x00\x00");
    assert_eq!(&wire[18..], ok_frame);
    assert_eq!(decode(wrap_snappy, &wire).await.unwrap(), ok_frame);
}

#[tokio::test]
async fn snappy_skips_padding_and_skippable_chunks() {
    let mut wire = b"\xff\x06\x00\x00sNaPpY\xfe\x03\x00\x00abc\x80\x00\x00\x00".to_vec();
    let mut encoder = snap::write::FrameEncoder::new(Vec::new());
    encoder.write_all(b"payload").unwrap();
    wire.extend_from_slice(&encoder.into_inner().unwrap());
    assert_eq!(decode(wrap_snappy, &wire).await.unwrap(), b"payload");
}

fn invalid_data(result: std::io::Result<Vec<u8>>) -> String {
    let err = result.expect_err("garbage was accepted");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    err.to_string()
}

#[tokio::test]
async fn snappy_garbage_is_invalid_data() {
    let good = {
        let mut encoder = snap::write::FrameEncoder::new(Vec::new());
        encoder.write_all(&compressible(5000)).unwrap();
        encoder.into_inner().unwrap()
    };
    let mut bad_crc = good.clone();
    bad_crc[14] ^= 1;
    let mut bad_block = good.clone();
    bad_block[20] = 0xff;
    bad_block[21] = 0xff;
    let id = b"\xff\x06\x00\x00sNaPpY".to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad crc", bad_crc, "checksum"),
        ("corrupt block", bad_block, "snappy"),
        (
            "no stream identifier",
            good[10..].to_vec(),
            "stream identifier",
        ),
        (
            "bad identifier",
            b"\xff\x06\x00\x00sNaPpX".to_vec(),
            "identifier",
        ),
        (
            "unskippable type",
            [&id[..], b"\x02\x01\x00\x00x"].concat(),
            "unsupported",
        ),
        (
            "short data chunk",
            [&id[..], b"\x01\x02\x00\x00xx"].concat(),
            "length",
        ),
        (
            "truncated",
            good[..good.len() - 3].to_vec(),
            "inside a chunk",
        ),
        (
            "block claims too much",
            [&id[..], b"\x00\x08\x00\x00\0\0\0\0\x80\x80\x08\x00"].concat(),
            "decodes to",
        ),
    ];
    for (name, wire, expect) in cases {
        let text = invalid_data(decode(wrap_snappy, &wire).await);
        assert!(text.contains(expect), "{name}: {text}");
    }
}

/// A length no chunk may have fails at the header, without waiting for the body.
#[tokio::test]
async fn snappy_rejects_an_oversized_chunk_before_its_body() {
    for header in [
        &b"\x00\xff\xff\xff"[..],
        b"\x01\x05\x00\x01",
        b"\xfe\xff\xff\x01",
    ] {
        let (ours, mut raw) = tokio::io::duplex(1024);
        raw.write_all(b"\xff\x06\x00\x00sNaPpY").await.unwrap();
        raw.write_all(header).await.unwrap();
        let mut reader = wrap_snappy(Box::new(ours));
        let mut buf = [0u8; 16];
        let result = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf))
            .await
            .expect("waited for a body it should refuse");
        assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        // The failure sticks.
        assert!(reader.read(&mut buf).await.is_err());
    }
}

#[tokio::test]
async fn deflate_reads_what_flate2_writes_with_flushes() {
    let data = [compressible(100_000), random_bytes(70_000, 5)].concat();
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    for piece in data.chunks(30_000) {
        encoder.write_all(piece).unwrap();
        encoder.flush().unwrap();
    }
    // Not finished: the stream just stops after a sync flush, as a Go peer's does.
    let wire = encoder.get_ref().clone();
    assert_eq!(decode(wrap_deflate, &wire).await.unwrap(), data);
    assert_eq!(
        decode(wrap_deflate, &encoder.finish().unwrap())
            .await
            .unwrap(),
        data
    );
}

#[tokio::test]
async fn flate2_reads_what_deflate_writes() {
    for len in [0, 1, 100_000, 300_000] {
        let data = [compressible(len), random_bytes(len / 3, 1)].concat();
        let wire = encode(wrap_deflate, &data, &[(10_000, true), (90_000, false)]).await;
        let mut got = Vec::new();
        flate2::read::DeflateDecoder::new(&wire[..])
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, data, "len {len}");
    }
}

/// nsqd's `OK` after the deflate upgrade, captured from Go nsqd v1.3.0.
#[tokio::test]
async fn deflate_reads_gos_ok_frame() {
    let wire =
        b"\x62\x60\x60\x60\x63\x60\x60\x60\xf0\xf7\x06\x00\x00\x00\xff\xff\x00\x00\x00\xff\xff";
    assert_eq!(
        decode(wrap_deflate, wire).await.unwrap(),
        b"\x00\x00\x00\x06\x00\x00\x00\x00OK"
    );
}

/// Go's `flate.Writer.Flush` always writes a sync marker, even with nothing new.
#[tokio::test]
async fn deflate_flush_ends_with_a_sync_marker_even_when_empty() {
    let (ours, mut raw) = tokio::io::duplex(1024);
    let mut writer = wrap_deflate(Box::new(ours));
    writer.write_all(b"OK").await.unwrap();
    writer.flush().await.unwrap();
    writer.flush().await.unwrap();
    drop(writer);
    let mut wire = Vec::new();
    raw.read_to_end(&mut wire).await.unwrap();
    assert!(
        wire.ends_with(b"\x00\x00\xff\xff\x00\x00\x00\xff\xff"),
        "{wire:x?}"
    );
}

#[tokio::test]
async fn deflate_garbage_is_invalid_data() {
    for wire in [
        &b"\xff\xff\xff\xff\xff\xff"[..],
        b"\x07\x00\x00\x00\x00",
        b"\x00\x05\x00\x00\x00",
    ] {
        invalid_data(decode(wrap_deflate, wire).await);
    }
    let (ours, _raw) = tokio::io::duplex(64);
    let mut writer = wrap_deflate(Box::new(ours));
    writer.shutdown().await.unwrap();
    assert!(writer.write_all(b"late").await.is_err());
}

#[test]
fn snappy_bounds_match_the_snap_crate() {
    assert_eq!(
        super::snappy::encoded_block_bytes_max(),
        snap::raw::max_compress_len(65536)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_data_writes_flushes_and_reads_round_trip(
        len in 0usize..150_000,
        seed in any::<u64>(),
        squash in any::<bool>(),
        plan in prop::collection::vec((1usize..70_000, any::<bool>()), 1..12),
        reads in prop::collection::vec(1usize..100_000, 1..8),
        pipe_bytes in 16usize..100_000,
    ) {
        let mut data = random_bytes(len, seed);
        if squash {
            data.iter_mut().for_each(|b| *b %= 4);
        }
        let back: Vec<u8> = data.iter().rev().copied().collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        for (_, wrap) in CODECS {
            runtime.block_on(round_trip(wrap, &data, &back, &plan, &reads, pipe_bytes));
        }
    }
}

/// Rough one-way throughput of each codec over an in-memory pipe; run by hand with
/// `cargo test --release -p nsq --lib compress::tests::throughput -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn throughput() {
    let total_bytes = 256 << 20;
    // What nsq-bench sends (an MPUB of 200 zeroed 200-byte bodies per flush), and the
    // same with random bodies.
    let zeros: Vec<u8> = (0..200)
        .flat_map(|_| [&200u32.to_be_bytes()[..], &[0u8; 200]].concat())
        .collect();
    let random = random_bytes(zeros.len(), 7);
    for ((name, wrap), (payload, batch)) in CODECS
        .into_iter()
        .flat_map(|codec| [(codec, ("zeros", &zeros)), (codec, ("random", &random))])
    {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (mut writer, mut reader) = (wrap(Box::new(a)), wrap(Box::new(b)));
        let start = tokio::time::Instant::now();
        let send = async {
            let mut sent = 0;
            while sent < total_bytes {
                writer.write_all(batch).await.unwrap();
                writer.flush().await.unwrap();
                sent += batch.len();
            }
            sent
        };
        let receive = async {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < total_bytes {
                got += reader.read(&mut buf).await.unwrap();
            }
            got
        };
        let (sent, _) = tokio::join!(send, receive);
        let secs = start.elapsed().as_secs_f64();
        let mib_per_s = sent as f64 / secs / (1 << 20) as f64;
        println!("{name} {payload}: {mib_per_s:.0} MiB/s plaintext, one way");
    }
}
