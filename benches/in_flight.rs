//! The in-flight queue on the consume path: a channel with a steady window of messages
//! out with a client, each FIN taking one out while a new delivery pushes one in; and the
//! queue scan popping expired messages.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nsq::nsqd::in_flight::InFlightQueue;
use nsq::protocol::{Message, MessageId};

/// Deliveries (and FINs) per iteration.
const BATCH: u64 = 1000;
const TIMEOUT_NS: i64 = 60_000_000_000;

/// Distinct ids cycled through (computing one costs more than a push).
const IDS: usize = 1 << 16;

fn ids() -> Vec<MessageId> {
    (0..IDS as u64).map(MessageId::from_u64).collect()
}

fn message(ids: &[MessageId], n: u64, body: &Bytes) -> Message {
    Message::new(ids[n as usize % IDS], 0, body.clone())
}

/// A window of `window` messages in flight; each iteration delivers `BATCH` more and
/// finishes the `BATCH` oldest (in delivery order, or scattered within the window).
fn push_and_finish(c: &mut Criterion) {
    let body = Bytes::from(vec![b'x'; 200]);
    let ids = ids();
    let mut group = c.benchmark_group("in_flight_push_fin");
    group.throughput(Throughput::Elements(BATCH));
    // Scattered FINs need a window of at least `BATCH`.
    for (window, scattered) in [(100u64, false), (5000, false), (5000, true)] {
        {
            let label = format!("{window}{}", if scattered { "_scattered" } else { "" });
            group.bench_with_input(BenchmarkId::from_parameter(label), &window, |b, &w| {
                let mut q = InFlightQueue::default();
                let mut next = 0u64;
                let mut oldest = 0u64;
                let mut now = 0i64;
                for _ in 0..w {
                    q.push(message(&ids, next, &body), 1, now, now + TIMEOUT_NS, false)
                        .expect("push");
                    next += 1;
                }
                b.iter(|| {
                    for i in 0..BATCH {
                        now += 1;
                        q.push(message(&ids, next, &body), 1, now, now + TIMEOUT_NS, false)
                            .expect("push");
                        next += 1;
                        // Scattered: FINs of a window arrive out of order (a stride
                        // that visits each id in the window once).
                        let id = if scattered {
                            oldest + (i * 7919) % BATCH
                        } else {
                            oldest + i
                        };
                        black_box(q.remove(&ids[id as usize % IDS], 1).expect("fin"));
                    }
                    oldest += BATCH;
                });
            });
        }
    }
    group.finish();
}

/// The queue scan timing out a window of messages, then the client taking as many again.
fn time_out(c: &mut Criterion) {
    let body = Bytes::from(vec![b'x'; 200]);
    let ids = ids();
    let mut group = c.benchmark_group("in_flight_timeout");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("pop_expired_1000_of_5000", |b| {
        let mut q = InFlightQueue::default();
        let mut next = 0u64;
        let mut now = 0i64;
        for _ in 0..5000 {
            now += 1;
            q.push(message(&ids, next, &body), 1, now, now + TIMEOUT_NS, false)
                .expect("push");
            next += 1;
        }
        b.iter(|| {
            let mut popped = 0;
            while let Some(entry) = q.pop_expired(now - 4000 + TIMEOUT_NS) {
                black_box(entry);
                popped += 1;
            }
            for _ in 0..popped {
                now += 1;
                q.push(message(&ids, next, &body), 1, now, now + TIMEOUT_NS, false)
                    .expect("push");
                next += 1;
            }
        });
    });
    group.finish();
}

criterion_group!(benches, push_and_finish, time_out);
criterion_main!(benches);
