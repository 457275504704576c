//! Topic-to-channel fan-out: publishing a batch to a topic with 1 and 4 channels, and a
//! consumer taking the messages back out under RDY.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nsq::nsqd::client::{ClientSettings, ClientShared};
use nsq::nsqd::topic::Topic;

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
            let mut out = Vec::with_capacity(BATCH);
            b.iter(|| {
                now += 1;
                runtime
                    .block_on(topic.publish(bodies.clone(), now, 0))
                    .expect("publish");
                for channel in &chans {
                    channel.take_for_client(&client, BATCH, now, 60_000_000_000, || true, &mut out);
                    for message in out.drain(..) {
                        let _ = channel.finish(client.id, &message.id, || now);
                    }
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
