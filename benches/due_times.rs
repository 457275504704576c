//! The due-time map of deferred messages on disk (`DueTimes`) against the `FxHashMap` it
//! replaced: lookups in random order (what reading a disk queue does), and inserts.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nsq::nsqd::due_times::DueTimes;
use nsq::protocol::MessageId;
use rustc_hash::FxHashMap;

/// Entries in the maps.
const COUNT: u64 = 1_000_000;
/// Lookups per iteration.
const PROBES: usize = 10_000;

/// GUID-like ids: a millisecond clock in the high bits, a sequence below.
fn ids() -> impl Iterator<Item = MessageId> {
    (0..COUNT).map(|n| MessageId::from_u64((1 << 40) + ((n / 1000) << 22) + n % 1000))
}

fn probes() -> Vec<MessageId> {
    let mut probe: Vec<MessageId> = ids().step_by(7).take(PROBES).collect();
    fastrand::Rng::with_seed(7).shuffle(&mut probe);
    probe
}

fn lookups(c: &mut Criterion) {
    let mut builder = DueTimes::builder(COUNT as usize);
    for (n, id) in ids().enumerate() {
        builder.push(id, n as i64);
    }
    let built = builder.finish();
    let map: FxHashMap<MessageId, i64> = ids().map(|id| (id, 0)).collect();
    let probe = probes();
    let mut group = c.benchmark_group("due_times_lookup_random");
    group.throughput(Throughput::Elements(PROBES as u64));
    group.bench_function("due_times", |b| {
        b.iter(|| probe.iter().filter(|id| built.get(id).is_some()).count())
    });
    group.bench_function("fxhashmap", |b| {
        b.iter(|| probe.iter().filter(|id| map.contains_key(id)).count())
    });
    group.finish();
}

fn inserts(c: &mut Criterion) {
    let fresh: Vec<MessageId> = ids().take(PROBES).collect();
    let mut group = c.benchmark_group("due_times_insert");
    group.throughput(Throughput::Elements(PROBES as u64));
    group.bench_function("due_times", |b| {
        b.iter(|| {
            let mut map = DueTimes::new();
            for (n, id) in fresh.iter().enumerate() {
                map.insert(*id, n as i64);
            }
            black_box(map.len())
        })
    });
    group.finish();
}

criterion_group!(benches, lookups, inserts);
criterion_main!(benches);
