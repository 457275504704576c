//! The disk side of publishing and consuming: batches of 200 messages of 200 bytes
//! appended to a disk queue (`Backend::put`), as a topic with no room in memory does for
//! every MPUB, and read back (so the files stay small), in a real temporary directory:
//! our work (encoding, gathering, decoding, bookkeeping) plus the kernel's (page cache
//! copies, an fsync every 2500 operations), with the write buffer on (as nsqd with
//! memory queues) and off (`--mem-queue-size=0`). `MemFs` is no yardstick here: it
//! copies whole files at every fsync.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nsq::env::{Fs, RealFs};
use nsq::nsqd::backend::Backend;
use nsq::nsqd::diskqueue::DiskQueueConfig;
use nsq::protocol::{Message, MessageId};

const BATCH: usize = 200;
const BODY_BYTES: usize = 200;

fn config(write_buffer_bytes: u64) -> DiskQueueConfig {
    DiskQueueConfig {
        write_buffer_bytes,
        ..DiskQueueConfig::default()
    }
}

fn batch() -> Vec<Message> {
    let body = Bytes::from(vec![b'x'; BODY_BYTES]);
    (0..BATCH as u64)
        .map(|n| Message::new(MessageId::from_u64(n), 1, body.clone()))
        .collect()
}

fn bench_put(c: &mut Criterion, label: &str, fs: Arc<dyn Fs>, dir: PathBuf, cfg: DiskQueueConfig) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let backend = Backend::new(fs, dir, "bench".into(), cfg);
    let messages = batch();
    let mut group = c.benchmark_group("disk_append");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(label, |b| {
        b.iter(|| {
            runtime.block_on(async {
                backend.put(&messages).await.expect("put");
                let read = backend.read(BATCH).await.expect("read");
                assert_eq!(read.len(), BATCH);
            })
        });
    });
    group.finish();
    runtime.block_on(backend.delete()).expect("delete");
}

fn appending(c: &mut Criterion) {
    for (label, write_buffer_bytes) in [
        ("put_read_gathered", 1 << 20),
        ("put_read_write_through", 0),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        bench_put(c, label, Arc::new(RealFs), path, config(write_buffer_bytes));
    }
}

criterion_group!(benches, appending);
criterion_main!(benches);
