//! Damaged data files: a length out of range, a cut-off record, a missing file. The file
//! is renamed `.bad`, reading goes on with the next file, and nothing panics.

use super::*;

/// Files 0 (complete, `file0`), 1 (complete: `a1`, `b1`) and 2 (the write file: `a2`),
/// with metadata naming the reader at the start of file 0.
async fn three_files(fs: &MemFs, file0: &[u8], depth: i64) {
    write(fs, "q.diskqueue.000000.dat", file0).await;
    write(fs, "q.diskqueue.000001.dat", &records(&[b"a1", b"b1"])).await;
    write(fs, "q.diskqueue.000002.dat", &records(&[b"a2"])).await;
    write(
        fs,
        "q.diskqueue.meta.dat",
        format!("{depth}\n0,0\n2,6\n").as_bytes(),
    )
    .await;
}

#[tokio::test]
async fn a_length_out_of_range_renames_the_file_bad_and_reading_goes_on() {
    for bad_len in [0i32, -1, 65, i32::MAX, i32::MIN] {
        let fs = MemFs::new();
        let mut file0 = records(&[b"ok0"]);
        file0.extend_from_slice(&bad_len.to_be_bytes());
        file0.extend_from_slice(b"garbage that is never read");
        three_files(&fs, &file0, 4).await;
        let mut q = open(&fs, "q", config(1000)).await;
        assert_eq!(
            drain(&mut q).await,
            vec![&b"ok0"[..], b"a1", b"b1", b"a2"],
            "{bad_len}"
        );
        assert_eq!(q.depth(), 0);
        assert!(names(&fs).contains(&"q.diskqueue.000000.dat.bad".to_string()));
        assert!(!names(&fs).contains(&"q.diskqueue.000000.dat".to_string()));
        // Writing carries on in the write file, which was not damaged.
        q.put(b"new").await.unwrap();
        assert_eq!((q.write_file, q.write_pos), (2, 13));
        assert_eq!(drain(&mut q).await, vec![&b"new"[..]]);
    }
}

#[tokio::test]
async fn a_truncated_record_renames_the_file_bad_and_reading_goes_on() {
    let whole = records(&[b"ok0", b"cut off"]);
    for cut in [whole.len() - 1, 7 + 4, 7 + 2, 7 + 1] {
        let fs = MemFs::new();
        three_files(&fs, &whole[..cut], 5).await;
        let mut q = open(&fs, "q", config(1000)).await;
        assert_eq!(
            drain(&mut q).await,
            vec![&b"ok0"[..], b"a1", b"b1", b"a2"],
            "cut at {cut}"
        );
        assert!(names(&fs).contains(&"q.diskqueue.000000.dat.bad".to_string()));
        // The depth was one too high (the cut record); the tail check set it right.
        assert_eq!(q.depth(), 0);
    }
}

#[tokio::test]
async fn damage_in_the_write_file_moves_writing_to_a_new_file() {
    let fs = MemFs::new();
    let mut q = open(&fs, "q", config(1000)).await;
    q.put(b"one").await.unwrap();
    q.put(b"two").await.unwrap();
    q.close().await.unwrap();
    // Flip the second record's length to nonsense.
    let mut data = read(&fs, "q.diskqueue.000000.dat").await;
    data[7..11].copy_from_slice(&1000i32.to_be_bytes());
    write(&fs, "q.diskqueue.000000.dat", &data).await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(q.read_next().await.unwrap().unwrap(), &b"one"[..]);
    assert_eq!(q.read_next().await.unwrap(), None);
    assert_eq!(q.depth(), 0);
    assert_eq!((q.read_file, q.write_file, q.write_pos), (1, 1, 0));
    assert!(names(&fs).contains(&"q.diskqueue.000000.dat.bad".to_string()));
    q.put(b"three").await.unwrap();
    assert_eq!(drain(&mut q).await, vec![&b"three"[..]]);
}

#[tokio::test]
async fn a_missing_data_file_is_skipped_and_the_depth_corrected_at_the_tail() {
    let fs = MemFs::new();
    write(&fs, "q.diskqueue.000000.dat", &records(&[b"a0"])).await;
    // Files 1..4 are gone; 5 is the write file.
    write(&fs, "q.diskqueue.000005.dat", &records(&[b"a5"])).await;
    write(&fs, "q.diskqueue.meta.dat", b"6\n0,0\n5,6\n").await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(drain(&mut q).await, vec![&b"a0"[..], b"a5"]);
    assert_eq!(q.depth(), 0);
    assert!(
        names(&fs).iter().all(|n| !n.ends_with(".bad")),
        "{:?}",
        names(&fs)
    );
}

#[tokio::test]
async fn a_reader_past_the_end_of_a_file_skips_it() {
    let fs = MemFs::new();
    write(&fs, "q.diskqueue.000000.dat", &records(&[b"a0"])).await;
    write(&fs, "q.diskqueue.000001.dat", &records(&[b"a1"])).await;
    write(&fs, "q.diskqueue.meta.dat", b"1\n0,500\n1,6\n").await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(drain(&mut q).await, vec![&b"a1"[..]]);
    assert_eq!(q.depth(), 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

    #[test]
    fn random_garbage_never_panics_and_whole_records_before_it_come_back(
        good in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..10), 0..5),
        garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        depth in proptest::prelude::any::<i64>(),
        write_file in 0i64..3,
        write_pos in 0i64..40,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let fs = MemFs::new();
            let good: Vec<&[u8]> = good.iter().map(Vec::as_slice).collect();
            let mut file0 = records(&good);
            file0.extend_from_slice(&garbage);
            write(&fs, "q.diskqueue.000000.dat", &file0).await;
            write(&fs, "q.diskqueue.000001.dat", &garbage).await;
            let meta = format!("{depth}\n0,0\n{write_file},{write_pos}\n");
            write(&fs, "q.diskqueue.meta.dat", meta.as_bytes()).await;
            let mut q = open(&fs, "q", config(1000)).await;
            let got = drain(&mut q).await;
            // Whatever the metadata claims, the whole records at the front of file 0
            // come back first (garbage may happen to look like more records).
            assert!(got.len() >= good.len(), "{got:?}");
            for (got, want) in got.iter().zip(&good) {
                assert_eq!(got, want);
            }
            assert_eq!(q.depth(), 0);
            q.put(b"after").await.unwrap();
            assert_eq!(drain(&mut q).await, vec![&b"after"[..]]);
        });
    }
}

/// Found by the garbage proptest: when the reader runs out of finished (here empty)
/// files without reading a record, the depth the metadata claimed must still be reset
/// at the tail, not left standing.
#[tokio::test]
async fn a_depth_left_over_after_empty_finished_files_is_reset() {
    let fs = MemFs::new();
    write(&fs, "q.diskqueue.000000.dat", b"").await;
    write(&fs, "q.diskqueue.000001.dat", b"").await;
    write(&fs, "q.diskqueue.meta.dat", b"1\n0,0\n0,1\n").await;
    let mut q = open(&fs, "q", config(1000)).await;
    assert_eq!(q.read_next().await.unwrap(), None);
    assert_eq!(q.depth(), 0);
}
