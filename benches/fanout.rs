//! Topic-to-channel fan-out: publishing a batch to a topic with 1 and 4 channels, and a
//! consumer taking the messages back out under RDY.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nsq::nsqd::client::{ClientSettings, ClientShared};
use nsq::nsqd::topic::Topic;
use nsq::protocol::MessageId;

const BATCH: usize = 200;

fn settings() -> ClientSettings {
    ClientSettings {
        client_id: "bench".into(),
        hostname: "bench".into(),
        user_agent: String::new(),
        heartbeat_interval_ms: 30_000,
        output_buffer_size: 16_384,
        output_buffer_timeout_ms: 250,
        sample_rate: 0,
        msg_timeout_ms: 60_000,
    }
}

/// The ids of the message frames in `out`, as a client reads them.
fn frame_ids(out: &[u8]) -> impl Iterator<Item = MessageId> + '_ {
    let mut rest = out;
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let id = MessageId::from_slice(rest.get(18..34)?)?;
        rest = rest.get(4 + size..)?;
        Some(id)
    })
}

fn fan_out(c: &mut Criterion) {
    let bodies: Vec<Bytes> = (0..BATCH).map(|_| Bytes::from(vec![b'x'; 200])).collect();
    let mut group = c.benchmark_group("topic_fan_out");
    group.throughput(Throughput::Elements(BATCH as u64));
    for channels in [1usize, 4] {
        group.bench_with_input(BenchmarkId::from_parameter(channels), &channels, |b, &n| {
            let topic = Topic::new("bench", 1, 1_000_000_000, 0, None, None);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
            let client = Arc::new(ClientShared::new(1, addr, 0, settings()));
            client.set_ready_count(i64::MAX / 2);
            let chans: Vec<_> = (0..n)
                .map(|i| {
                    let channel = topic
                        .get_or_create_channel(&format!("c{i}"), 0)
                        .expect("channel");
                    channel.add_client(client.clone()).expect("add client");
                    channel
                })
                .collect();
            let mut now = 0i64;
            let mut out = BytesMut::with_capacity(BATCH * 256);
            b.iter(|| {
                now += 1;
                runtime
                    .block_on(topic.publish(bodies.clone(), now, 0))
                    .expect("publish");
                for channel in &chans {
                    out.clear();
                    channel.take_for_client(&client, BATCH, now, 60_000_000_000, || true, &mut out);
                    for id in frame_ids(&out) {
                        let _ = channel.finish(client.id, &id, || now);
                    }
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
