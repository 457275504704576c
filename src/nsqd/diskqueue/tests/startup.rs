//! Opening: the unsynced tail, files the metadata does not know, and metadata that is
//! missing, malformed or nonsense.

use super::*;

#[tokio::test]
async fn an_unsynced_tail_moves_writing_to_a_new_file_and_is_read_and_counted() {
    let fs = MemFs::new();
    // The metadata was synced after one record; two more reached the file.
    write(
        &fs,
        "q.diskqueue.000000.dat",
        &records(&[b"one", b"two", b"three"]),
    )
    .await;
    write(&fs, "q.diskqueue.meta.dat", b"1\n0,0\n0,7\n").await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!((q.write_file, q.write_pos), (1, 0));
    assert_eq!(q.depth(), 3);
    // The repaired position is persisted at once.
    assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"3\n0,0\n1,0\n");
    q.put(b"four").await.unwrap();
    assert_eq!(
        drain(&mut q).await,
        vec![&b"one"[..], b"two", b"three", b"four"]
    );
    assert!(!names(&fs).contains(&"q.diskqueue.000000.dat".to_string()));
}

#[tokio::test]
async fn a_torn_tail_is_counted_up_to_the_last_whole_record() {
    let fs = MemFs::new();
    let whole = records(&[b"one", b"two", b"three"]);
    write(&fs, "q.diskqueue.000000.dat", &whole[..whole.len() - 2]).await;
    write(&fs, "q.diskqueue.meta.dat", b"1\n0,0\n0,7\n").await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(q.depth(), 2);
    assert_eq!(drain(&mut q).await, vec![&b"one"[..], b"two"]);
    assert_eq!(q.depth(), 0);
    assert!(names(&fs).contains(&"q.diskqueue.000000.dat.bad".to_string()));
}

#[tokio::test]
async fn a_write_file_shorter_than_the_metadata_moves_writing_on() {
    let fs = MemFs::new();
    write(&fs, "q.diskqueue.000000.dat", &records(&[b"one"])).await;
    write(&fs, "q.diskqueue.meta.dat", b"2\n0,0\n0,14\n").await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!((q.write_file, q.write_pos), (1, 0));
    q.put(b"new").await.unwrap();
    assert_eq!(drain(&mut q).await, vec![&b"one"[..], b"new"]);
    assert_eq!(q.depth(), 0);
}

#[tokio::test]
async fn data_files_past_the_metadatas_write_file_are_read_not_overwritten() {
    let fs = MemFs::new();
    write(&fs, "q.diskqueue.000000.dat", &records(&[b"one"])).await;
    write(&fs, "q.diskqueue.000001.dat", &records(&[b"two"])).await;
    write(&fs, "q.diskqueue.000002.dat", &records(&[b"three"])).await;
    write(&fs, "q.diskqueue.meta.dat", b"1\n0,0\n0,7\n").await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!((q.write_file, q.depth()), (3, 3));
    q.put(b"four").await.unwrap();
    assert_eq!(
        drain(&mut q).await,
        vec![&b"one"[..], b"two", b"three", b"four"]
    );
}

#[tokio::test]
async fn finished_files_left_by_a_crash_are_removed_at_open() {
    let fs = MemFs::new();
    write(&fs, "q.diskqueue.000003.dat", &records(&[b"old"])).await;
    write(&fs, "q.diskqueue.000004.dat", &records(&[b"live"])).await;
    write(&fs, "q.diskqueue.000004.dat.bad", b"evidence").await;
    write(&fs, "q.diskqueue.meta.dat", b"1\n4,0\n4,8\n").await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(
        names(&fs),
        vec![
            "q.diskqueue.000004.dat",
            "q.diskqueue.000004.dat.bad",
            "q.diskqueue.meta.dat"
        ]
    );
    assert_eq!(drain(&mut q).await, vec![&b"live"[..]]);
}

#[tokio::test]
async fn no_metadata_and_no_files_is_a_new_queue() {
    let fs = MemFs::new();
    let q = open(&fs, "q", config(1000)).await;
    assert_eq!(
        (
            q.read_file,
            q.read_pos,
            q.write_file,
            q.write_pos,
            q.depth()
        ),
        (0, 0, 0, 0, 0)
    );
    assert!(names(&fs).is_empty());
}

/// Metadata that cannot be trusted: every message still in the data files comes back,
/// a clear error is logged, nothing panics.
#[tokio::test]
async fn bad_metadata_rebuilds_the_position_from_the_data_files() {
    let cases: [&[u8]; 12] = [
        b"",
        b"garbage",
        b"3\n0,0\n",
        b"3\n-1,0\n2,6\n",
        b"3\n0,-7\n2,6\n",
        b"3\n5,0\n2,6\n",
        b"3\n2,9\n2,6\n",
        b"3\n0,0\n9223372036854775807,6\n",
        b"99999999999999999999\n0,0\n2,6\n",
        b"3\r\n0,0\r\n2,6\r\n",
        b"\xff\xfe\x00",
        b"3 0,0 2,6",
    ];
    for meta in cases {
        let fs = MemFs::new();
        write(&fs, "q.diskqueue.000001.dat", &records(&[b"a1", b"b1"])).await;
        write(&fs, "q.diskqueue.000002.dat", &records(&[b"a2"])).await;
        write(&fs, "q.diskqueue.meta.dat", meta).await;
        let mut q = open(&fs, "q", config(1000)).await;
        let label = String::from_utf8_lossy(meta);
        assert_eq!(q.depth(), 3, "{label:?}");
        assert_eq!((q.read_file, q.write_file), (1, 3), "{label:?}");
        q.put(b"new").await.unwrap();
        assert_eq!(
            drain(&mut q).await,
            vec![&b"a1"[..], b"b1", b"a2", b"new"],
            "{label:?}"
        );
        q.close().await.unwrap();
        assert_eq!(
            read(&fs, "q.diskqueue.meta.dat").await,
            b"0\n3,7\n3,7\n",
            "{label:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_metadata_file_with_data_files_rebuilds_too() {
    let fs = MemFs::new();
    write(&fs, "q.diskqueue.000000.dat", &records(&[b"a0"])).await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(q.depth(), 1);
    assert_eq!(drain(&mut q).await, vec![&b"a0"[..]]);
}

#[tokio::test]
async fn a_depth_that_does_not_fit_the_positions_is_fixed() {
    // Records left but depth 0 or negative: counted.
    for depth in [0, -5] {
        let fs = MemFs::new();
        write(&fs, "q.diskqueue.000000.dat", &records(&[b"a0", b"b0"])).await;
        write(&fs, "q.diskqueue.000001.dat", &records(&[b"a1"])).await;
        write(
            &fs,
            "q.diskqueue.meta.dat",
            format!("{depth}\n0,6\n1,6\n").as_bytes(),
        )
        .await;
        let q = open(&fs, "q", config(1000)).await;
        assert_eq!(q.depth(), 2, "{depth}");
        assert_eq!(read(&fs, "q.diskqueue.meta.dat").await, b"2\n0,6\n1,6\n");
    }
    // Nothing left but a depth: Go's tail check, done at open.
    for depth in [7, -7] {
        let fs = MemFs::new();
        write(&fs, "q.diskqueue.000000.dat", &records(&[b"a0"])).await;
        write(
            &fs,
            "q.diskqueue.meta.dat",
            format!("{depth}\n0,6\n0,6\n").as_bytes(),
        )
        .await;
        let mut q = open(&fs, "q", config(1000)).await;
        assert_eq!(q.depth(), 0, "{depth}");
        assert_eq!(q.read_next().await.unwrap(), None);
    }
}

#[tokio::test]
async fn open_fails_only_when_the_directory_is_unusable() {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/")).await.unwrap();
    fs.write(Path::new("/file"), b"x").await.unwrap();
    let shared: Arc<dyn Fs> = Arc::new(fs.clone());
    let err = DiskQueue::open(shared.clone(), PathBuf::from("/file"), "q", config(100)).await;
    assert!(err.is_err());
    let err = DiskQueue::open(shared.clone(), dir(), "a/b", config(100))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid disk queue name \"a/b\"");
    let bad = DiskQueueConfig {
        max_bytes_per_file: 0,
        ..config(100)
    };
    assert!(DiskQueue::open(shared, dir(), "q", bad).await.is_err());
}
