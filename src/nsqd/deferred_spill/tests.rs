use proptest::prelude::*;

use super::*;
use crate::env::{CrashMode, MemFs};
use crate::protocol::MessageId;

const SEC: i64 = 1_000_000_000;
const MAX: usize = 1024;

fn message(n: u64) -> Message {
    Message::new(MessageId::from_u64(n), 7, Bytes::from(format!("body-{n}")))
}

async fn data_dir() -> MemFs {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("data")).await.unwrap();
    fs.sync(Path::new("data")).await.unwrap();
    fs
}

fn spill(fs: &MemFs) -> DeferredSpill {
    DeferredSpill::new(
        Arc::new(fs.clone()),
        Path::new("data"),
        "t:c",
        SpillKind::Memory,
        MAX,
    )
}

/// The spill of synced segments (deferred messages read early from a disk queue).
fn synced_spill(fs: &MemFs) -> DeferredSpill {
    DeferredSpill::new(
        Arc::new(fs.clone()),
        Path::new("data"),
        "t:c",
        SpillKind::Synced,
        MAX,
    )
}

fn ids(records: &[(Message, i64)]) -> Vec<(u64, i64)> {
    records
        .iter()
        .map(|(m, due)| {
            let text = std::str::from_utf8(&m.body).unwrap();
            (text["body-".len()..].parse().unwrap(), *due)
        })
        .collect()
}

fn segment_of(records: &[(Message, i64)]) -> Vec<u8> {
    let mut bytes = header_of_kind(KIND_SPILL).to_vec();
    for (message, due) in records {
        encode_record(&mut bytes, message, *due, None);
    }
    bytes
}

/// A synced segment of `records` (message, due, source position).
fn synced_segment_of(records: &[SpillRecord]) -> Vec<u8> {
    let mut bytes = header_of_kind(KIND_SYNCED_SPILL).to_vec();
    for r in records {
        encode_record(&mut bytes, &r.message, r.due_ns, r.source);
    }
    bytes
}

fn at(file: u64, pos: u64) -> QueueSource {
    QueueSource {
        at: RecordPos { file, pos },
        seq: file * 1000 + pos,
    }
}

#[test]
fn a_segment_round_trips_and_stops_at_a_bad_record() {
    let records = vec![(message(1), 5), (message(2), -3), (message(3), 9)];
    let bytes = segment_of(&records);
    assert_eq!(&bytes[..12], b"NSQRSDEF\x00\x01\x00\x02");
    let (read, problem) = decode_segment(&bytes, KIND_SPILL, MAX);
    assert_eq!((without_source(read), problem), (records.clone(), None));

    let mut corrupt = bytes.clone();
    let second = HEADER_LEN + records[0].0.encoded_len() + 16;
    corrupt[second + 20] ^= 1;
    let (read, problem) = decode_segment(&corrupt, KIND_SPILL, MAX);
    assert_eq!(without_source(read), records[..1]);
    assert_eq!(
        problem,
        Some(SegmentProblem::BadRecord {
            offset: second as u64,
            bytes: bytes.len() - second
        })
    );

    // A length beyond the limit is refused before anything is allocated for it.
    let mut huge = header_of_kind(KIND_SPILL).to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    huge.extend_from_slice(&[0; 30]);
    let (read, problem) = decode_segment(&huge, KIND_SPILL, MAX);
    assert!(read.is_empty());
    assert!(matches!(
        problem,
        Some(SegmentProblem::BadRecord { offset: 12, .. })
    ));

    let (read, problem) = decode_segment(b"NSQRSDEF\x00\x01\x00\x01", KIND_SPILL, MAX);
    assert!(read.is_empty());
    assert_eq!(
        problem,
        Some(SegmentProblem::Header(HeaderProblem::WrongKind(1)))
    );
}

proptest! {
    /// Any bytes decode without a panic, and a segment cut anywhere gives back the
    /// records whole before the cut.
    #[test]
    fn any_bytes_decode_and_a_cut_keeps_whole_records(
        noise in proptest::collection::vec(any::<u8>(), 0..300),
        count in 0usize..8,
        cut in any::<prop::sample::Index>(),
    ) {
        let _ = decode_segment(&noise, KIND_SPILL, MAX);
        let records: Vec<(Message, i64)> =
            (0..count as u64).map(|n| (message(n), n as i64)).collect();
        let bytes = segment_of(&records);
        let at = cut.index(bytes.len() + 1);
        let (read, _) = decode_segment(&bytes[..at], KIND_SPILL, MAX);
        prop_assert!(records.starts_with(&without_source(read.clone())));
        if at == bytes.len() {
            prop_assert_eq!(read.len(), records.len());
        }
    }

    /// The same for synced segments, whose records carry their source position.
    #[test]
    fn any_bytes_decode_and_a_cut_keeps_whole_synced_records(
        noise in proptest::collection::vec(any::<u8>(), 0..300),
        count in 0usize..8,
        cut in any::<prop::sample::Index>(),
    ) {
        let _ = decode_segment(&noise, KIND_SYNCED_SPILL, MAX);
        let records: Vec<SpillRecord> = (0..count as u64)
            .map(|n| SpillRecord { message: message(n), due_ns: n as i64, source: Some(at(n, n * 100)) })
            .collect();
        let bytes = synced_segment_of(&records);
        let cut = cut.index(bytes.len() + 1);
        let (read, _) = decode_segment(&bytes[..cut], KIND_SYNCED_SPILL, MAX);
        prop_assert!(records.starts_with(&read));
        if cut == bytes.len() {
            prop_assert_eq!(read.len(), records.len());
        }
    }
}

#[tokio::test]
async fn windows_come_back_when_they_start_in_arrival_order() {
    let fs = data_dir().await;
    let s = spill(&fs);
    s.put(&[
        (message(1), 3 * SEC + 5),
        (message(2), SEC + 9),
        (message(3), 3 * SEC + 1),
    ])
    .await;
    s.put(&[(message(4), SEC + 2)]).await;
    assert_eq!(s.count(), 4);
    assert_eq!(s.next_window_start(), SEC);
    assert!(s.take_due(SEC - 1).await.is_empty());
    assert_eq!(ids(&s.take_due(SEC).await), [(2, SEC + 9), (4, SEC + 2)]);
    assert_eq!(s.count(), 2);
    assert!(s.take_due(2 * SEC).await.is_empty());
    assert_eq!(
        ids(&s.take_due(4 * SEC).await),
        [(1, 3 * SEC + 5), (3, 3 * SEC + 1)]
    );
    assert_eq!(s.next_window_start(), i64::MAX);
    assert!(
        fs.file_names().is_empty()
            || !fs
                .file_names()
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".dat"))
    );
}

#[tokio::test]
async fn reading_every_window_then_clear_leave_no_segment() {
    let fs = data_dir().await;
    let s = spill(&fs);
    s.put(&[(message(1), 5 * SEC), (message(2), 2 * SEC)]).await;
    assert!(s.write_out().await.is_empty());
    let mut all = Vec::new();
    for window in s.windows().await {
        all.push(ids(&s.read_window(window).await));
        s.remove_window(window).await;
    }
    assert_eq!(all, [vec![(2, 2 * SEC)], vec![(1, 5 * SEC)]]);
    assert_eq!(s.count(), 0);
    s.put(&[(message(3), 5 * SEC)]).await;
    s.clear().await;
    assert_eq!(s.count(), 0);
    assert!(!fs
        .file_names()
        .iter()
        .any(|p| p.to_string_lossy().contains(".deferred.")));
}

/// What a crash leaves is found again, a torn tail cut, and appends line up after it.
#[tokio::test]
async fn segments_a_crash_left_are_recovered_as_far_as_they_are_whole() {
    let fs = data_dir().await;
    let s = spill(&fs);
    s.put(&[(message(1), 5 * SEC), (message(2), 5 * SEC + 1)])
        .await;
    assert!(s.write_out().await.is_empty());
    s.put(&[(message(3), 9 * SEC)]).await;
    assert!(s.write_out().await.is_empty());
    fs.crash(CrashMode::Keep, 0);
    // Tear the last record of window 5.
    let path = PathBuf::from("data/t:c.deferred.5.dat");
    let bytes = fs.read(&path).await.unwrap();
    fs.write(&path, &bytes[..bytes.len() - 3]).await.unwrap();
    // Files of other queues and names that are not windows are left alone.
    fs.write(Path::new("data/t:c.deferred.journal"), b"x")
        .await
        .unwrap();
    fs.write(Path::new("data/t:other.deferred.5.dat"), b"x")
        .await
        .unwrap();

    let s = spill(&fs);
    s.recover().await;
    assert_eq!(s.count(), 2, "the torn record is dropped");
    s.put(&[(message(4), 5 * SEC + 2)]).await;
    assert!(s.write_out().await.is_empty());
    assert_eq!(
        ids(&s.take_due(5 * SEC).await),
        [(1, 5 * SEC), (4, 5 * SEC + 2)]
    );
    assert_eq!(ids(&s.take_due(9 * SEC).await), [(3, 9 * SEC)]);
    assert!(fs
        .file_names()
        .contains(&PathBuf::from("data/t:other.deferred.5.dat")));
}

/// Records are gathered until a megabyte is, then written; a failed write hands its
/// messages back and they no longer count; what was never written is read back too.
#[tokio::test]
async fn records_are_gathered_and_a_failed_write_hands_them_back() {
    let fs = data_dir().await;
    let s = spill(&fs);
    s.put(&[(message(1), SEC), (message(2), 2 * SEC)]).await;
    assert!(fs
        .file_names()
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".dat")));
    assert_eq!(ids(&s.take_due(SEC).await), [(1, SEC)], "read from memory");
    fs.set_fail_writes(true);
    let failed = s.write_out().await;
    assert_eq!(ids(&failed), [(2, 2 * SEC)]);
    assert_eq!(s.count(), 0);
    assert_eq!(s.next_window_start(), i64::MAX);
    fs.set_fail_writes(false);
    let big: Vec<(Message, i64)> = (0..25_000u64).map(|n| (message(n), 3 * SEC)).collect();
    assert!(s.put(&big).await.is_empty());
    assert!(
        fs.file_names()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".3.dat")),
        "a megabyte is written at once"
    );
    s.put(&[(message(90_000), 3 * SEC)]).await;
    let back = s.take_due(3 * SEC).await;
    assert_eq!(back.len(), 25_001);
    assert_eq!(ids(&back[25_000..]), [(90_000, 3 * SEC)]);
}

/// After a crash, a synced segment keeps the records whose queue copy is gone (before
/// the position the queue opens at) and drops those the queue hands out again; a
/// segment left with nothing is removed.
#[tokio::test]
async fn synced_segments_drop_what_the_queue_hands_out_again() {
    let fs = data_dir().await;
    let s = synced_spill(&fs);
    let entries = [
        (message(1), 5 * SEC),
        (message(2), 5 * SEC + 1),
        (message(3), 7 * SEC),
    ];
    s.put_read_early(&entries, &[at(1, 0), at(2, 40), at(3, 0)])
        .await;
    assert!(s.write_out().await.is_empty());
    let mut synced_ids = s.take_synced().await;
    synced_ids.sort();
    let mut expected: Vec<MessageId> = entries.iter().map(|(m, _)| m.id).collect();
    expected.sort();
    assert_eq!(synced_ids, expected, "every record synced is reported");
    assert!(fs
        .file_names()
        .iter()
        .any(|p| p.to_string_lossy().ends_with("t:c.deferred-synced.5.dat")));
    fs.crash(CrashMode::DropUnsynced, 1);

    let s = synced_spill(&fs);
    s.recover_queue_copies_from(at(2, 40).at).await;
    assert_eq!(s.count(), 1, "only message 1's queue copy is gone");
    assert_eq!(ids(&s.take_due(5 * SEC).await), [(1, 5 * SEC)]);
    assert_eq!(s.count(), 0);
    assert!(!fs
        .file_names()
        .iter()
        .any(|p| p.to_string_lossy().contains("deferred-synced")));
}

/// A crash between a segment's rewrite and its rename leaves `<segment>.tmp`: recovery
/// removes it and keeps the segment, whose records are whole.
#[tokio::test]
async fn a_rewrite_a_crash_left_behind_is_removed_at_recovery() {
    let fs = data_dir().await;
    let s = synced_spill(&fs);
    s.put_read_early(&[(message(1), 5 * SEC)], &[at(1, 0)])
        .await;
    assert!(s.write_out().await.is_empty());
    let segment = fs
        .file_names()
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("t:c.deferred-synced.5.dat"))
        .unwrap();
    let mut tmp = segment.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs.write(&tmp, b"half a rewrite").await.unwrap();
    let other = Path::new("data/t:c.deferred-synced.notes.tmp");
    fs.write(other, b"not ours").await.unwrap();

    let s = synced_spill(&fs);
    // The queue read past message 1's copy: the spill holds the only one.
    s.recover_queue_copies_from(at(2, 0).at).await;
    assert_eq!(s.count(), 1);
    let names = fs.file_names();
    assert!(!names.contains(&tmp), "{names:?}");
    assert!(names.contains(&segment), "{names:?}");
    assert!(
        names.iter().any(|p| p == other),
        "another file is left alone"
    );
}
