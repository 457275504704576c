//! Putting, reading, rolling, syncing, emptying and closing, with no damage anywhere.

use super::*;
use crate::nsqd::diskqueue::DiskQueueError;

#[tokio::test]
async fn records_come_back_in_order_with_exact_depth() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(q.depth(), 0);
    assert_eq!(q.read_next().await.unwrap(), None);
    for p in [&b"one"[..], b"two", b"three"] {
        q.put(p).await.unwrap();
    }
    assert_eq!(q.depth(), 3);
    assert_eq!(q.read_next().await.unwrap().unwrap(), &b"one"[..]);
    assert_eq!(q.depth(), 2);
    q.put(b"four").await.unwrap();
    assert_eq!(drain(&mut q).await, vec![&b"two"[..], b"three", b"four"]);
    assert_eq!(q.depth(), 0);
    assert_eq!(q.read_next().await.unwrap(), None);
}

#[tokio::test]
async fn payload_sizes_outside_the_limits_write_nothing() {
    let fs = MemFs::new();
    let mut q = open(
        &fs,
        "q",
        DiskQueueConfig {
            min_msg_size: 2,
            max_msg_size: 4,
            ..config(100)
        },
    )
    .await;
    for bad in [&b"x"[..], b"12345"] {
        let err = q.put(bad).await.unwrap_err();
        assert!(matches!(err, DiskQueueError::InvalidSize { .. }), "{err}");
    }
    let err = q.put_many(&[&b"ok"[..], b"too long"]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid message write size (8) minMsgSize=2 maxMsgSize=4"
    );
    assert_eq!(q.depth(), 0);
    assert!(
        names(&fs).iter().all(|n| !n.ends_with("000000.dat")),
        "{:?}",
        names(&fs)
    );
}

#[tokio::test]
async fn put_many_writes_the_same_bytes_as_single_puts() {
    let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 1 + usize::from(i % 7)]).collect();
    let one = MemFs::new();
    let mut q = open(&one, "q", config(40)).await;
    for p in &payloads {
        q.put(p).await.unwrap();
    }
    q.close().await.unwrap();
    let many = MemFs::new();
    let mut q = open(&many, "q", config(40)).await;
    q.put_many(&payloads).await.unwrap();
    q.close().await.unwrap();
    assert_eq!(names(&one), names(&many));
    for name in names(&one) {
        assert_eq!(read(&one, &name).await, read(&many, &name).await, "{name}");
    }
    let mut q = open(&many, "q", config(40)).await;
    assert_eq!(drain(&mut q).await, payloads);
}

#[tokio::test]
async fn writing_rolls_before_a_record_that_would_pass_max_bytes_per_file() {
    let fs = MemFs::new();
    // Records of 4 + 6 = 10 bytes; 25 bytes per file fit two of them.
    let mut q = open(&fs, "q", config(25)).await;
    for i in 0..5u8 {
        q.put(&[i; 6]).await.unwrap();
    }
    assert_eq!((q.write_file, q.write_pos), (2, 10));
    assert_eq!(
        read(&fs, "q.diskqueue.000000.dat").await,
        records(&[&[0; 6], &[1; 6]])
    );
    assert_eq!(
        read(&fs, "q.diskqueue.000001.dat").await,
        records(&[&[2; 6], &[3; 6]])
    );
    assert_eq!(
        read(&fs, "q.diskqueue.000002.dat").await,
        records(&[&[4; 6]])
    );
    // The roll synced: the metadata already names the new file.
    assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"4\n0,0\n2,0\n");
}

#[tokio::test]
async fn a_record_exactly_filling_the_file_stays_and_an_oversize_one_gets_an_empty_file() {
    let fs = MemFs::new();
    let mut q = open(
        &fs,
        "q",
        DiskQueueConfig {
            max_msg_size: 64,
            ..config(20)
        },
    )
    .await;
    q.put(&[1; 16]).await.unwrap(); // 20 bytes: exactly full
    assert_eq!((q.write_file, q.write_pos), (0, 20));
    q.put(&[2; 40]).await.unwrap(); // 44 bytes: alone in file 1, past the limit
    assert_eq!((q.write_file, q.write_pos), (1, 44));
    q.put(&[3; 1]).await.unwrap();
    assert_eq!((q.write_file, q.write_pos), (2, 5));
    assert_eq!(
        drain(&mut q).await,
        vec![vec![1; 16], vec![2; 40], vec![3; 1]]
    );
}

#[tokio::test]
async fn a_file_is_removed_when_the_reader_leaves_it_and_not_before() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", config(25)).await;
    for i in 0..5u8 {
        q.put(&[i; 6]).await.unwrap();
    }
    assert_eq!(q.read_next().await.unwrap().unwrap(), vec![0; 6]);
    assert!(names(&fs).contains(&"q.diskqueue.000000.dat".to_string()));
    assert_eq!(q.read_next().await.unwrap().unwrap(), vec![1; 6]);
    // Left file 0: the metadata is persisted first, then the file goes.
    assert!(!names(&fs).contains(&"q.diskqueue.000000.dat".to_string()));
    assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"3\n1,0\n2,10\n");
    assert_eq!(drain(&mut q).await.len(), 3);
    // The write file stays even when read to its end, as in Go.
    assert_eq!(
        names(&fs),
        vec!["q.diskqueue.000002.dat", "q.diskqueue.meta.dat"]
    );
    assert!(names(&fs).iter().all(|n| !n.ends_with(".bad")));
}

/// go-diskqueue #42: a reader that has consumed the write file when the writer rolls
/// meets EOF, and Go renames the finished file `.bad`. Here it is simply finished.
#[tokio::test]
async fn a_reader_caught_up_when_the_writer_rolls_leaves_no_bad_file() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", config(25)).await;
    for round in 0..6u8 {
        q.put(&[round; 6]).await.unwrap();
        assert_eq!(q.read_next().await.unwrap().unwrap(), vec![round; 6]);
        assert_eq!(q.depth(), 0);
    }
    assert!(
        names(&fs).iter().all(|n| !n.ends_with(".bad")),
        "{:?}",
        names(&fs)
    );
    q.sync().await.unwrap();
    assert_eq!(
        names(&fs),
        vec!["q.diskqueue.000002.dat", "q.diskqueue.meta.dat"]
    );
    // Also when the reader had caught up in a file opened before the restart.
    q.close().await.unwrap();
    let mut q = open(&fs, "q", config(25)).await;
    q.put(&[9; 6]).await.unwrap();
    q.put(&[10; 6]).await.unwrap();
    assert_eq!(drain(&mut q).await, vec![vec![9; 6], vec![10; 6]]);
    assert!(
        names(&fs).iter().all(|n| !n.ends_with(".bad")),
        "{:?}",
        names(&fs)
    );
}

#[tokio::test]
async fn sync_every_counts_reads_and_writes_and_syncs_before_put_returns() {
    let fs = MemFs::new();
    let mut q = open(
        &fs,
        "q",
        DiskQueueConfig {
            sync_every: 3,
            ..config(1000)
        },
    )
    .await;
    q.put(b"a").await.unwrap();
    q.put(b"b").await.unwrap();
    assert!(!names(&fs).contains(&"q.diskqueue.meta.dat".to_string()));
    assert!(q.needs_periodic_sync());
    q.put(b"c").await.unwrap();
    assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"3\n0,0\n0,15\n");
    assert!(!q.needs_periodic_sync());
    // What a sync made durable survives a power cut.
    fs.crash(crate::env::CrashMode::DropUnsynced, 0);
    assert_eq!(read(&fs, "q.diskqueue.000000.dat").await.len(), 15);
    let mut q = open(
        &fs,
        "q",
        DiskQueueConfig {
            sync_every: 3,
            ..config(1000)
        },
    )
    .await;
    q.read_next().await.unwrap();
    q.read_next().await.unwrap();
    q.put(b"d").await.unwrap(); // the third operation
    assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"2\n0,10\n0,20\n");
}

/// With `sync_every = 1` every put is fsynced before it returns. The metadata follows
/// at the next explicit sync, tick or close (opening recounts records past it), so a
/// crash right after any put keeps every record and the exact depth.
#[tokio::test]
async fn sync_every_one_syncs_each_put() {
    let cfg = DiskQueueConfig {
        sync_every: 1,
        ..config(1000)
    };
    let payloads = [&b"a"[..], b"bb", b"ccc"];
    for n in 1..=payloads.len() {
        let fs = MemFs::new();
        let mut q = open(&fs, "q", cfg).await;
        for p in &payloads[..n] {
            q.put(p).await.unwrap();
        }
        drop(q);
        fs.crash(crate::env::CrashMode::DropUnsynced, 0);
        let mut q = open(&fs, "q", cfg).await;
        assert_eq!(q.depth(), n as i64);
        assert_eq!(drain(&mut q).await, payloads[..n].to_vec());
    }
    let fs = MemFs::new();
    let mut q = open(&fs, "q", cfg).await;
    for p in payloads {
        q.put(p).await.unwrap();
    }
    q.sync().await.unwrap();
    assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"3\n0,0\n0,18\n");
}

#[tokio::test]
async fn the_periodic_tick_syncs_only_after_activity() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", config(1000)).await;
    assert!(!q.needs_periodic_sync());
    q.put(b"x").await.unwrap();
    assert!(q.needs_periodic_sync());
    q.sync().await.unwrap();
    assert!(!q.needs_periodic_sync());
    q.read_next().await.unwrap();
    assert!(q.needs_periodic_sync());
    q.sync().await.unwrap();
    assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"0\n0,5\n0,5\n");
}

#[tokio::test]
async fn empty_removes_data_and_meta_and_moves_to_a_new_file() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", config(25)).await;
    for i in 0..5u8 {
        q.put(&[i; 6]).await.unwrap();
    }
    q.read_next().await.unwrap();
    q.empty().await.unwrap();
    assert_eq!(q.depth(), 0);
    assert_eq!(
        (q.read_file, q.read_pos, q.write_file, q.write_pos),
        (3, 0, 3, 0)
    );
    assert!(names(&fs).is_empty(), "{:?}", names(&fs));
    assert_eq!(q.read_next().await.unwrap(), None);
    q.put(b"after").await.unwrap();
    q.close().await.unwrap();
    assert_eq!(
        names(&fs),
        vec!["q.diskqueue.000003.dat", "q.diskqueue.meta.dat"]
    );
    assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"1\n3,0\n3,9\n");
    let mut q = open(&fs, "q", config(25)).await;
    assert_eq!(drain(&mut q).await, vec![&b"after"[..]]);
}

#[tokio::test]
async fn delete_removes_every_file_of_the_queue_and_only_its_own() {
    let fs = MemFs::new();
    let mut other = open(&fs, "q:c", config(25)).await;
    other.put(b"keep me").await.unwrap();
    other.close().await.unwrap();
    let mut q = open(&fs, "q", config(25)).await;
    for i in 0..5u8 {
        q.put(&[i; 6]).await.unwrap();
    }
    q.sync().await.unwrap();
    q.delete().await.unwrap();
    assert_eq!(
        names(&fs),
        vec!["q:c.diskqueue.000000.dat", "q:c.diskqueue.meta.dat"]
    );
    assert!(matches!(q.put(b"x").await, Err(DiskQueueError::Closed)));
    assert!(matches!(q.read_next().await, Err(DiskQueueError::Closed)));
}

#[tokio::test]
async fn a_closed_queue_refuses_everything() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", config(25)).await;
    q.close().await.unwrap();
    assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"0\n0,0\n0,0\n");
    assert_eq!(q.put(b"x").await.unwrap_err().to_string(), "exiting");
    assert!(matches!(
        q.put_many(&[b"x"]).await,
        Err(DiskQueueError::Closed)
    ));
    assert!(matches!(q.read_next().await, Err(DiskQueueError::Closed)));
    assert!(matches!(q.sync().await, Err(DiskQueueError::Closed)));
    assert!(matches!(q.empty().await, Err(DiskQueueError::Closed)));
    assert!(matches!(q.close().await, Err(DiskQueueError::Closed)));
    assert!(matches!(q.delete().await, Err(DiskQueueError::Closed)));
    assert!(!q.needs_periodic_sync());
}

#[tokio::test]
async fn a_failed_write_loses_nothing_acknowledged_and_writing_resumes() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", config(1000)).await;
    q.put(b"before").await.unwrap();
    fs.set_fail_writes(true);
    assert!(matches!(
        q.put(b"lost").await,
        Err(DiskQueueError::Write { .. })
    ));
    assert!(q.put_many(&[b"lost too"]).await.is_err());
    assert_eq!(q.depth(), 1);
    fs.set_fail_writes(false);
    q.put(b"after").await.unwrap();
    assert_eq!(q.depth(), 2);
    assert_eq!(drain(&mut q).await, vec![&b"before"[..], b"after"]);
}

#[tokio::test]
async fn a_full_disk_fails_the_put_and_later_puts_work_again() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", config(1000)).await;
    q.put(b"first").await.unwrap();
    fs.set_capacity_bytes(Some(12));
    assert!(q.put(b"second").await.is_err());
    fs.set_capacity_bytes(None);
    q.put(b"third").await.unwrap();
    q.close().await.unwrap();
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(drain(&mut q).await, vec![&b"first"[..], b"third"]);
}

#[tokio::test]
async fn a_failed_fsync_is_reported_by_the_put_that_needed_it() {
    let fs = MemFs::new();
    let mut q = open(
        &fs,
        "q",
        DiskQueueConfig {
            sync_every: 1,
            ..config(1000)
        },
    )
    .await;
    fs.set_fail_syncs(true);
    let err = q.put(b"not durable").await.unwrap_err();
    assert!(matches!(err, DiskQueueError::Sync { .. }), "{err}");
    // Written and counted, just not known durable; the next sync retries.
    assert_eq!(q.depth(), 1);
    assert!(q.needs_periodic_sync());
    fs.set_fail_syncs(false);
    q.sync().await.unwrap();
    fs.crash(crate::env::CrashMode::DropUnsynced, 0);
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(drain(&mut q).await, vec![&b"not durable"[..]]);
}
