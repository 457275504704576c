//! Disk queue recovery: `.meta.dat` parsing and record reading, through the real
//! `DiskQueue` on a `MemFs` holding the fuzzer's metadata and data files.
//!
//! Input: byte 0 sets the file size limit, then the metadata text, data file 0 and data
//! file 1, separated by NUL bytes. Opening never fails on bad files, every record read is
//! within the configured sizes, the queue drains in bounded reads, and afterwards it
//! still stores and returns a record.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use nsq::env::{Fs, MemFs};
use nsq::nsqd::diskqueue::{DiskQueue, DiskQueueConfig};

const NAME: &str = "q";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let meta = parts.next().unwrap_or_default();
    let file0 = parts.next().unwrap_or_default();
    let file1 = parts.next().unwrap_or_default();
    let config = DiskQueueConfig {
        max_bytes_per_file: 16 + u64::from(selector) * 4,
        min_msg_size: 1,
        max_msg_size: 64,
        sync_every: 1 + u64::from(selector & 3),
        write_buffer_bytes: u64::from(selector & 4) * 16,
    };
    runtime().block_on(run(config, meta, file0, file1));
});

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn run(config: DiskQueueConfig, meta: &[u8], file0: &[u8], file1: &[u8]) {
    let fs = Arc::new(MemFs::new());
    let dir = PathBuf::from("/dq");
    fs.create_dir_all(&dir).await.unwrap();
    write(&*fs, &dir.join(format!("{NAME}.diskqueue.meta.dat")), meta).await;
    write(
        &*fs,
        &dir.join(format!("{NAME}.diskqueue.000000.dat")),
        file0,
    )
    .await;
    write(
        &*fs,
        &dir.join(format!("{NAME}.diskqueue.000001.dat")),
        file1,
    )
    .await;

    let mut queue = DiskQueue::open(fs.clone(), dir, NAME, config)
        .await
        .expect("a damaged queue still opens");
    // Every record holds at least min_msg_size bytes plus its 4-byte header.
    let records_max = (file0.len() + file1.len()) / 5 + 1;
    let mut records = 0;
    while let Some(record) = queue.read_next().await.expect("read") {
        let len = record.len() as u64;
        assert!(
            (u64::from(config.min_msg_size)..=u64::from(config.max_msg_size)).contains(&len),
            "record of {len} bytes outside the configured sizes"
        );
        records += 1;
        assert!(records <= records_max, "more records than the files hold");
    }
    assert_eq!(queue.depth(), 0, "depth of a drained queue");
    queue
        .put(b"after recovery")
        .await
        .expect("put after recovery");
    let again = queue
        .read_next()
        .await
        .expect("read")
        .expect("the record just put");
    assert_eq!(&again[..], b"after recovery");
    queue.close().await.expect("close");
}

async fn write(fs: &dyn Fs, path: &Path, bytes: &[u8]) {
    if !bytes.is_empty() {
        fs.write(path, bytes).await.unwrap();
    }
}
