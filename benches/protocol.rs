//! Hot paths of the wire code: decoding PUB, MPUB and FIN as they arrive in a read buffer,
//! and writing message frames into a write buffer.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nsq::protocol::{
    decode, write_message_frame, ClientState, Command, Decoded, Limits, Message, MessageId,
    ParseContext,
};

/// Commands per read buffer: a busy connection's buffer holds many.
const BATCH: usize = 1000;

const LIMITS: Limits = Limits {
    max_body_size: 5 * 1024 * 1024,
    max_msg_size: 1024 * 1024,
    max_rdy_count: 2500,
    max_req_timeout_ms: 3_600_000,
};

fn wire_of(cmd: &Command, copies: usize) -> BytesMut {
    let mut one = BytesMut::new();
    cmd.encode(&mut one);
    let mut wire = BytesMut::with_capacity(one.len() * copies);
    for _ in 0..copies {
        wire.extend_from_slice(&one);
    }
    wire
}

/// Decodes every command in `wire`; returns how many there were.
fn decode_all(mut wire: BytesMut, ctx: &ParseContext<'_>) -> usize {
    let mut n = 0;
    while let Ok(Decoded::Complete(cmd)) = decode(&mut wire, ctx) {
        black_box(cmd);
        n += 1;
    }
    n
}

fn bench_decode(c: &mut Criterion, label: &str, cmd: &Command, state: ClientState, per_cmd: u64) {
    let ctx = ParseContext {
        state,
        limits: &LIMITS,
        heartbeats_enabled: true,
        tls_pending: false,
    };
    let copies = if per_cmd > 1 { BATCH / 20 } else { BATCH };
    let wire = wire_of(cmd, copies);
    assert_eq!(decode_all(wire.clone(), &ctx), copies);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(copies as u64 * per_cmd));
    group.bench_function(label, |b| {
        b.iter_batched(
            || wire.clone(),
            |w| decode_all(w, &ctx),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn decoding(c: &mut Criterion) {
    let body = Bytes::from(vec![b'x'; 200]);
    let publish = Command::Pub {
        topic: "bench_topic".into(),
        body: body.clone(),
    };
    bench_decode(c, "pub_200b", &publish, ClientState::Init, 1);

    let mpub = Command::Mpub {
        topic: "bench_topic".into(),
        bodies: vec![body; 200],
    };
    bench_decode(c, "mpub_200x200b", &mpub, ClientState::Init, 200);

    let fin = Command::Fin {
        id: MessageId::from_u64(0x18a8c28d96e69000),
    };
    bench_decode(c, "fin", &fin, ClientState::Subscribed, 1);
}

fn writing(c: &mut Criterion) {
    let mut msg = Message::new(
        MessageId::from_u64(0x18a8c28d96e69000),
        1_795_662_413_592_662_806,
        Bytes::from(vec![b'x'; 200]),
    );
    msg.attempts = 1;
    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut out = BytesMut::with_capacity(BATCH * (8 + msg.encoded_len()));
    group.bench_function("message_frame_200b", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..BATCH {
                write_message_frame(&mut out, black_box(&msg));
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, decoding, writing);
criterion_main!(benches);
