//! Records gathered in memory (`write_buffer_bytes`): readable at once, written in one
//! go when the buffer fills, a sync is due, a file rolls or the queue closes, and never
//! lost to a failed write while the queue lives.

use super::*;
use crate::env::CrashMode;
use crate::nsqd::diskqueue::DiskQueueError;

fn gathering(write_buffer_bytes: u64, max_bytes_per_file: u64) -> DiskQueueConfig {
    DiskQueueConfig {
        write_buffer_bytes,
        ..config(max_bytes_per_file)
    }
}

/// Bytes of the write file `q.diskqueue.000000.dat`, or none yet.
async fn file_zero(fs: &MemFs) -> Vec<u8> {
    fs.read(&dir().join("q.diskqueue.000000.dat"))
        .await
        .unwrap_or_default()
}

#[tokio::test]
async fn gathered_records_are_readable_before_they_are_written() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", gathering(1000, 1000)).await;
    q.put(b"one").await.unwrap();
    q.put_many(&[&b"two"[..], b"three"]).await.unwrap();
    assert_eq!(file_zero(&fs).await, b"", "nothing written yet");
    assert_eq!(q.depth(), 3);
    assert_eq!(q.read_next().await.unwrap().unwrap(), &b"one"[..]);
    q.sync().await.unwrap();
    assert_eq!(
        file_zero(&fs).await,
        records(&[b"one", b"two", b"three"]),
        "a sync writes them first"
    );
    q.put(b"four").await.unwrap();
    assert_eq!(drain(&mut q).await, vec![&b"two"[..], b"three", b"four"]);
}

#[tokio::test]
async fn a_full_buffer_is_written_in_one_go() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", gathering(20, 1000)).await;
    q.put(b"0123456789").await.unwrap();
    assert_eq!(file_zero(&fs).await, b"");
    q.put(b"abcdef").await.unwrap();
    assert_eq!(
        file_zero(&fs).await,
        records(&[b"0123456789", b"abcdef"]),
        "20 bytes gathered: written"
    );
    q.put(b"x").await.unwrap();
    assert_eq!(file_zero(&fs).await.len(), 24);
    q.close().await.unwrap();
    let mut q = open(&fs, "q", gathering(20, 1000)).await;
    assert_eq!(
        drain(&mut q).await,
        vec![&b"0123456789"[..], b"abcdef", b"x"]
    );
}

#[tokio::test]
async fn a_due_sync_and_a_roll_write_what_was_gathered() {
    let fs = MemFs::new();
    let cfg = DiskQueueConfig {
        sync_every: 2,
        ..gathering(u64::MAX, 1000)
    };
    let mut q = open(&fs, "q", cfg).await;
    q.put(b"a").await.unwrap();
    assert_eq!(file_zero(&fs).await, b"");
    q.put(b"b").await.unwrap();
    assert_eq!(file_zero(&fs).await, records(&[b"a", b"b"]), "sync due");
    fs.crash(CrashMode::DropUnsynced, 0);
    let mut q = open(&fs, "q", gathering(u64::MAX, 12)).await;
    assert_eq!(drain(&mut q).await, vec![&b"a"[..], b"b"], "and synced");

    let fs = MemFs::new();
    let mut q = open(&fs, "q", gathering(u64::MAX, 12)).await;
    q.put(b"12345678").await.unwrap();
    q.put(b"next").await.unwrap();
    assert_eq!(
        file_zero(&fs).await,
        records(&[b"12345678"]),
        "the finished file was written (and synced) as writing rolled"
    );
    fs.crash(CrashMode::DropUnsynced, 0);
    let mut q = open(&fs, "q", gathering(u64::MAX, 12)).await;
    assert_eq!(drain(&mut q).await, vec![&b"12345678"[..]]);
}

/// A failed write fails the put that needed it and takes back only that put's records;
/// what earlier puts gathered stays and is written by the next attempt, from the last
/// good position, whatever the failed attempt left in the file.
#[tokio::test]
async fn a_failed_write_keeps_what_was_acknowledged() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", gathering(12, 1000)).await;
    q.put(b"written").await.unwrap();
    q.put(b"0").await.unwrap();
    assert_eq!(file_zero(&fs).await, records(&[b"written", b"0"]));
    q.put(b"kept").await.unwrap();
    fs.set_fail_writes(true);
    let err = q.put(b"refused!").await.unwrap_err();
    assert!(matches!(err, DiskQueueError::Write { .. }), "{err}");
    assert_eq!(q.depth(), 3);
    assert!(q.sync().await.is_err());
    assert!(q.needs_periodic_sync());
    // The failed attempt tore: part of the buffer reached the file.
    let mut torn = file_zero(&fs).await;
    torn.extend_from_slice(&records(&[b"kept"])[..5]);
    fs.set_fail_writes(false);
    fs.write(&dir().join("q.diskqueue.000000.dat"), &torn)
        .await
        .unwrap();
    q.put(b"after").await.unwrap();
    q.sync().await.unwrap();
    assert_eq!(
        file_zero(&fs).await,
        records(&[b"written", b"0", b"kept", b"after"])
    );
    assert_eq!(
        drain(&mut q).await,
        vec![&b"written"[..], b"0", b"kept", b"after"]
    );
}

/// A disk that stays full bounds the buffer: puts that would take it past
/// `write_buffer_bytes` fail until a write works again.
#[tokio::test]
async fn a_full_disk_stops_the_buffer_from_growing() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", gathering(17, 1000)).await;
    fs.set_capacity_bytes(Some(0));
    q.put(b"twelve bytes").await.unwrap();
    for _ in 0..10 {
        assert!(q.put(b"more bytes").await.is_err());
    }
    assert_eq!(q.depth(), 1);
    assert!(q.unflushed.len() <= 17);
    fs.set_capacity_bytes(None);
    q.put(b"works").await.unwrap();
    q.close().await.unwrap();
    let mut q = open(&fs, "q", gathering(17, 1000)).await;
    assert_eq!(drain(&mut q).await, vec![&b"twelve bytes"[..], b"works"]);
}

/// Go nsqd reads what ours leaves: after close, the files are exactly those of a queue
/// that wrote every put through.
#[tokio::test]
async fn gathering_leaves_the_same_files_as_writing_through() {
    let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 + usize::from(i % 9)]).collect();
    let mut files = Vec::new();
    for write_buffer_bytes in [0, 7, 64, u64::MAX] {
        let fs = MemFs::new();
        let mut q = open(&fs, "q", gathering(write_buffer_bytes, 50)).await;
        for (i, p) in payloads.iter().enumerate() {
            q.put(p).await.unwrap();
            if i % 5 == 0 {
                q.read_next().await.unwrap();
            }
        }
        q.close().await.unwrap();
        let mut contents = Vec::new();
        for name in names(&fs) {
            contents.push((name.clone(), read(&fs, &name).await));
        }
        files.push(contents);
    }
    assert!(files.windows(2).all(|w| w[0] == w[1]));
}

/// The caller that fsyncs outside its lock gets the file to fsync when `sync_every`
/// is reached, with the records already written to it; its fsync makes them durable,
/// and a failed one is retried by the next sync.
#[tokio::test]
async fn a_count_sync_can_be_left_to_the_caller() {
    let fs = MemFs::new();
    let cfg = DiskQueueConfig {
        sync_every: 2,
        ..gathering(1 << 20, 1000)
    };
    let mut q = open(&fs, "q", cfg).await;
    assert_eq!(q.put_many_leaving_sync(&[b"a"]).await.unwrap(), None);
    let path = q
        .put_many_leaving_sync(&[b"b"])
        .await
        .unwrap()
        .expect("due");
    assert_eq!(path, dir().join("q.diskqueue.000000.dat"));
    assert_eq!(file_zero(&fs).await, records(&[b"a", b"b"]), "written");
    fs.sync(&path).await.unwrap();
    q.sync_failed();
    assert!(q.needs_periodic_sync(), "a failed fsync is retried");
    drop(q);
    fs.crash(CrashMode::DropUnsynced, 0);
    let mut q = open(&fs, "q", cfg).await;
    assert_eq!(drain(&mut q).await, vec![&b"a"[..], b"b"]);
}
