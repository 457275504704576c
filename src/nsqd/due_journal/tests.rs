use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::env::{CrashMode, MemFs};

const SEC: i64 = 1_000_000_000;

fn id(n: u64) -> MessageId {
    MessageId::from_u64(n)
}

fn journal(fs: &MemFs) -> DueJournal {
    DueJournal::new(Arc::new(fs.clone()), Path::new("data"), "t:c", false)
}

/// A file system with the data directory nsqd creates at startup.
async fn data_dir() -> MemFs {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("data")).await.unwrap();
    fs.sync(Path::new("data")).await.unwrap();
    fs
}

fn path() -> PathBuf {
    PathBuf::from("data/t:c.deferred.journal")
}

fn file_of(entries: &[(MessageId, i64)]) -> Vec<u8> {
    let mut bytes = encode_header().to_vec();
    for (id, due) in entries {
        bytes.extend_from_slice(&encode_record(id, *due));
    }
    bytes
}

fn sorted(map: DueTimes) -> Vec<(MessageId, i64)> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort();
    entries
}

#[test]
fn the_layout_is_the_documented_one() {
    assert_eq!(&encode_header(), b"NSQRSDEF\x00\x01\x00\x01");
    let record = encode_record(&MessageId(*b"0123456789abcdef"), 0x0102_0304_0506_0708);
    assert_eq!(record.len(), 29);
    assert_eq!(record[0], 1, "kind: deferred until");
    assert_eq!(&record[1..17], b"0123456789abcdef");
    assert_eq!(
        &record[17..25],
        &[1, 2, 3, 4, 5, 6, 7, 8],
        "due, big-endian"
    );
    let crc = crc32c::crc32c(&record[..25]);
    assert_eq!(&record[25..], &crc.to_be_bytes());
}

#[test]
fn records_round_trip_in_order() {
    let entries = [(id(1), 5 * SEC), (id(2), -1), (id(1), 7 * SEC)];
    let decoded = decode(&file_of(&entries));
    assert_eq!(decoded.records, entries);
    assert!(decoded.problems.is_empty());
    assert_eq!(
        decode(b""),
        Decoded::default(),
        "an empty file holds nothing"
    );
}

#[test]
fn a_torn_tail_is_cut_and_a_corrupt_record_skipped() {
    let entries = [(id(1), SEC), (id(2), 2 * SEC), (id(3), 3 * SEC)];
    let mut bytes = file_of(&entries);
    bytes[HEADER_LEN + RECORD_LEN + 20] ^= 0x40;
    bytes.extend_from_slice(&encode_record(&id(4), 4 * SEC)[..10]);
    let decoded = decode(&bytes);
    assert_eq!(decoded.records, [entries[0], entries[2]]);
    assert_eq!(
        decoded.problems,
        [
            Problem::CorruptRecord {
                offset: (HEADER_LEN + RECORD_LEN) as u64
            },
            Problem::TornTail {
                offset: (HEADER_LEN + 3 * RECORD_LEN) as u64,
                bytes: 10
            }
        ]
    );
    // A record with a good checksum but an unknown kind is corrupt too.
    let mut record = encode_record(&id(5), SEC);
    record[0] = 2;
    let crc = crc32c::crc32c(&record[..25]);
    record[25..].copy_from_slice(&crc.to_be_bytes());
    let mut bytes = encode_header().to_vec();
    bytes.extend_from_slice(&record);
    assert_eq!(decode(&bytes).records, []);
}

#[test]
fn a_foreign_header_makes_the_whole_file_ignored() {
    let entries = [(id(1), SEC)];
    let cases: [(Vec<u8>, HeaderProblem); 4] = [
        (b"NSQRS".to_vec(), HeaderProblem::Short(5)),
        (
            [b"NOTOURS!".as_slice(), &file_of(&entries)[8..]].concat(),
            HeaderProblem::BadMagic,
        ),
        (
            [
                b"NSQRSDEF\x00\x02\x00\x01".as_slice(),
                &file_of(&entries)[12..],
            ]
            .concat(),
            HeaderProblem::UnknownVersion(2),
        ),
        (
            [
                b"NSQRSDEF\x00\x01\x00\x07".as_slice(),
                &file_of(&entries)[12..],
            ]
            .concat(),
            HeaderProblem::WrongKind(7),
        ),
    ];
    for (bytes, problem) in cases {
        let decoded = decode(&bytes);
        assert_eq!(decoded.records, []);
        assert_eq!(decoded.problems, [Problem::Header(problem)]);
    }
}

proptest! {
    /// Whatever the bytes, decoding returns (never panics), and a journal cut anywhere
    /// gives back exactly the records that were whole before the cut.
    #[test]
    fn any_bytes_decode_and_a_cut_keeps_every_whole_record(
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        dues in proptest::collection::vec(any::<i64>(), 0..20),
        cut in any::<prop::sample::Index>(),
    ) {
        let _ = decode(&noise);
        let entries: Vec<(MessageId, i64)> =
            dues.iter().enumerate().map(|(n, due)| (id(n as u64), *due)).collect();
        let bytes = file_of(&entries);
        let at = cut.index(bytes.len() + 1);
        let decoded = decode(&bytes[..at]);
        let whole = at.saturating_sub(HEADER_LEN) / RECORD_LEN;
        if at >= HEADER_LEN {
            prop_assert_eq!(&decoded.records[..], &entries[..whole]);
        } else {
            prop_assert!(decoded.records.is_empty());
        }
    }
}

#[tokio::test]
async fn an_append_survives_a_crash_that_drops_unsynced_writes() {
    let fs = data_dir().await;
    let written = journal(&fs);
    written.append(&[(id(1), 10 * SEC)]).await.unwrap();
    written
        .append(&[(id(2), 20 * SEC), (id(1), 15 * SEC)])
        .await
        .unwrap();
    fs.crash(CrashMode::DropUnsynced, 1);
    let reopened = journal(&fs);
    let due = reopened.load_once(SEC).await.unwrap();
    assert_eq!(sorted(due), [(id(1), 15 * SEC), (id(2), 20 * SEC)]);
    assert_eq!(reopened.load_once(SEC).await, None, "only the first call");
}

#[tokio::test]
async fn loading_drops_what_is_due_and_the_planted_bug_drops_everything() {
    let fs = data_dir().await;
    fs.write(&path(), &file_of(&[(id(1), SEC), (id(2), 3 * SEC)]))
        .await
        .unwrap();
    let due = journal(&fs).load_once(2 * SEC).await.unwrap();
    assert_eq!(sorted(due), [(id(2), 3 * SEC)]);
    let buggy = DueJournal::new(Arc::new(fs.clone()), Path::new("data"), "t:c", true);
    assert!(buggy.load_once(2 * SEC).await.unwrap().is_empty());
}

/// A file torn by a crash is rewritten when read, so the next append lines up, and an
/// append before the owner asked keeps what the earlier run left for it.
#[tokio::test]
async fn an_append_after_a_torn_tail_lines_up() {
    let fs = data_dir().await;
    let mut bytes = file_of(&[(id(1), 5 * SEC)]);
    bytes.extend_from_slice(&[1, 2, 3]);
    fs.write(&path(), &bytes).await.unwrap();
    let j = journal(&fs);
    j.append(&[(id(2), 6 * SEC)]).await.unwrap();
    let due = j.load_once(0).await.unwrap();
    assert_eq!(
        sorted(due),
        [(id(1), 5 * SEC)],
        "the owner knows its own appends"
    );
    let decoded = decode(&fs.read(&path()).await.unwrap());
    assert!(decoded.problems.is_empty(), "{:?}", decoded.problems);
    assert_eq!(decoded.records, [(id(1), 5 * SEC), (id(2), 6 * SEC)]);
}

#[tokio::test]
async fn a_rewrite_keeps_the_snapshot_and_what_is_unclaimed() {
    let fs = data_dir().await;
    fs.write(&path(), &file_of(&[(id(1), 5 * SEC)]))
        .await
        .unwrap();
    let j = journal(&fs);
    j.rewrite(|| vec![(id(2), 6 * SEC)]).await.unwrap();
    assert_eq!(j.records().await, 2);
    fs.crash(CrashMode::DropUnsynced, 2);
    let due = journal(&fs).load_once(0).await.unwrap();
    assert_eq!(sorted(due), [(id(1), 5 * SEC), (id(2), 6 * SEC)]);

    // Claimed, the old entries are the owner's to keep or drop.
    let j = journal(&fs);
    assert_eq!(j.load_once(0).await.unwrap().len(), 2);
    j.rewrite(Vec::new).await.unwrap();
    assert!(!fs.file_names().contains(&path()), "empty: no file");
    j.append(&[(id(3), SEC)]).await.unwrap();
    assert_eq!(
        decode(&fs.read(&path()).await.unwrap()).records,
        [(id(3), SEC)]
    );
}

/// A rewrite larger than one chunk is written chunk by chunk and reads back whole, in
/// order, after a crash.
#[tokio::test]
async fn a_rewrite_of_many_chunks_reads_back_whole() {
    let fs = data_dir().await;
    let j = journal(&fs);
    let count = 3 * REWRITE_CHUNK_BYTES as u64 / RECORD_LEN as u64 + 7;
    j.rewrite(|| (0..count).map(|n| (id(n), SEC + n as i64)))
        .await
        .unwrap();
    assert_eq!(j.records().await, count);
    fs.crash(CrashMode::DropUnsynced, 3);
    let decoded = decode(&fs.read(&path()).await.unwrap());
    assert!(decoded.problems.is_empty(), "{:?}", decoded.problems);
    assert_eq!(decoded.records.len() as u64, count);
    assert!(decoded
        .records
        .iter()
        .enumerate()
        .all(|(n, (i, due))| *i == id(n as u64) && *due == SEC + n as i64));
    assert!(
        !fs.file_names()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".tmp")),
        "no tmp file left"
    );
}

#[tokio::test]
async fn remove_forgets_everything() {
    let fs = data_dir().await;
    fs.write(&path(), &file_of(&[(id(1), 5 * SEC)]))
        .await
        .unwrap();
    let j = journal(&fs);
    j.remove().await.unwrap();
    assert!(j.load_once(0).await.unwrap().is_empty());
    assert!(!fs.file_names().contains(&path()));
    j.remove().await.unwrap();
}

/// Writers racing each other all get their records synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_all_durable() {
    let fs = data_dir().await;
    let j = Arc::new(journal(&fs));
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let j = j.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..25u64 {
                j.append(&[(id(w * 100 + i), SEC)]).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    fs.crash(CrashMode::DropUnsynced, 3);
    assert_eq!(journal(&fs).load_once(0).await.unwrap().len(), 200);
}

/// Reads `bytes` as nsqd reads a journal file, `chunk_records` records at a time.
async fn read_in_chunks(bytes: &[u8], chunk_records: usize) -> Decoded {
    let fs = data_dir().await;
    fs.write(&path(), bytes).await.unwrap();
    let path = path();
    let mut reader = Reader::open(&fs, &path).await.unwrap();
    reader.chunk_bytes = chunk_records * RECORD_LEN;
    let mut records = Vec::new();
    while reader
        .next_chunk(|record, id, due| {
            assert_eq!(record, encode_record(&id, due));
            records.push((id, due));
        })
        .await
        .unwrap()
    {}
    Decoded {
        records,
        problems: reader.problems,
    }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

proptest! {
    /// Read in chunks of any size, a journal (damaged or not, cut anywhere) gives the
    /// same records and the same problems, at the same offsets, as decoded whole.
    #[test]
    fn reading_in_chunks_decodes_like_reading_whole(
        noise in proptest::collection::vec(any::<u8>(), 0..100),
        dues in proptest::collection::vec(any::<i64>(), 0..12),
        flips in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        cut in any::<prop::sample::Index>(),
        chunk_records in 1usize..4,
    ) {
        prop_assert_eq!(block_on(read_in_chunks(&noise, chunk_records)), decode(&noise));
        let entries: Vec<(MessageId, i64)> =
            dues.iter().enumerate().map(|(n, due)| (id(n as u64), *due)).collect();
        let mut bytes = file_of(&entries);
        for flip in flips {
            let at = HEADER_LEN + flip.index(bytes.len() - HEADER_LEN + 1);
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= 0x10;
            }
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        prop_assert_eq!(block_on(read_in_chunks(&bytes, chunk_records)), decode(&bytes));
    }
}

/// A journal of several megabytes is read in chunks: a corrupt record in a later chunk
/// and a torn tail are found where they are, and the file is rewritten clean.
#[tokio::test]
async fn a_journal_larger_than_a_chunk_loads_and_is_repaired() {
    let count = 2 * CHUNK_RECORDS + 10;
    let entries: Vec<(MessageId, i64)> =
        (0..count as u64).map(|n| (id(n), SEC + n as i64)).collect();
    let mut bytes = file_of(&entries);
    let corrupt = CHUNK_RECORDS + 3;
    bytes[HEADER_LEN + corrupt * RECORD_LEN + 5] ^= 1;
    bytes.extend_from_slice(&[1; 7]);
    let decoded = read_in_chunks(&bytes, CHUNK_RECORDS).await;
    assert_eq!(decoded, decode(&bytes));
    assert_eq!(decoded.problems.len(), 2);

    let fs = data_dir().await;
    fs.write(&path(), &bytes).await.unwrap();
    let due = journal(&fs).load_once(SEC).await.unwrap();
    assert_eq!(
        due.len(),
        count - 2,
        "the corrupt record and the one due at 1 s"
    );
    assert_eq!(due.get(&id(corrupt as u64)), None);
    assert_eq!(
        due.get(&id(count as u64 - 1)),
        Some(&(SEC + count as i64 - 1))
    );
    let rewritten = decode(&fs.read(&path()).await.unwrap());
    assert!(rewritten.problems.is_empty());
    assert_eq!(rewritten.records.len(), count - 2);
}

/// Of several records of one id the latest due time counts, also when a wall clock that
/// went back appended an earlier one last: late, never early.
#[tokio::test]
async fn an_ids_latest_due_time_wins() {
    let fs = data_dir().await;
    fs.write(
        &path(),
        &file_of(&[
            (id(1), 20 * SEC),
            (id(2), 5 * SEC),
            (id(1), 10 * SEC),
            (id(2), 6 * SEC),
        ]),
    )
    .await
    .unwrap();
    let due = journal(&fs).load_once(0).await.unwrap();
    assert_eq!(sorted(due), [(id(1), 20 * SEC), (id(2), 6 * SEC)]);
}

/// Compaction works from the file alone: it keeps, in file order, every record still in
/// the future (whether or not anyone still remembers its id) and drops those that passed,
/// and what it wrote survives a crash.
#[tokio::test]
async fn compaction_keeps_every_future_record_and_survives_a_crash() {
    let fs = data_dir().await;
    let j = journal(&fs);
    assert!(j.load_once(0).await.unwrap().is_empty());
    let passed: Vec<(MessageId, i64)> = (0..1100).map(|n| (id(n), SEC + n as i64)).collect();
    j.append(&[(id(5000), 100 * SEC)]).await.unwrap();
    j.append(&passed[..1000]).await.unwrap();
    j.append(&[(id(7), 50 * SEC), (id(6000), 60 * SEC)])
        .await
        .unwrap();
    assert!(
        !j.rewrite_if_stale(2 * SEC).await.unwrap(),
        "not grown enough, not everything passed"
    );
    j.append(&passed[1000..]).await.unwrap();
    j.append(&[(id(8000), 70 * SEC)]).await.unwrap();
    assert!(j.rewrite_if_stale(2 * SEC).await.unwrap(), "grown");
    let want = [
        (id(5000), 100 * SEC),
        (id(7), 50 * SEC),
        (id(6000), 60 * SEC),
        (id(8000), 70 * SEC),
    ];
    assert_eq!(decode(&fs.read(&path()).await.unwrap()).records, want);
    assert_eq!(j.records().await, 4);
    assert!(
        !j.rewrite_if_stale(2 * SEC).await.unwrap(),
        "just compacted"
    );
    assert!(!fs
        .file_names()
        .iter()
        .any(|p| p.ends_with("t:c.deferred.journal.tmp")));

    fs.crash(CrashMode::DropUnsynced, 6);
    let due = journal(&fs).load_once(2 * SEC).await.unwrap();
    assert_eq!(sorted(due), {
        let mut want = want.to_vec();
        want.sort();
        want
    });
}

/// Once every record's due time has passed, compaction removes the file; appends then
/// start a new one.
#[tokio::test]
async fn compaction_removes_the_file_once_everything_passed() {
    let fs = data_dir().await;
    let j = journal(&fs);
    j.append(&[(id(1), 5 * SEC), (id(2), 7 * SEC)])
        .await
        .unwrap();
    assert!(!j.rewrite_if_stale(7 * SEC - 1).await.unwrap());
    assert_eq!(j.records().await, 2);
    assert!(j.rewrite_if_stale(7 * SEC).await.unwrap());
    assert!(!fs.file_names().contains(&path()));
    assert_eq!(j.records().await, 0);
    assert!(!j.rewrite_if_stale(8 * SEC).await.unwrap(), "nothing left");
    j.append(&[(id(3), 9 * SEC)]).await.unwrap();
    assert_eq!(
        decode(&fs.read(&path()).await.unwrap()).records,
        [(id(3), 9 * SEC)]
    );
}

/// A file an earlier run left with mostly passed records is compacted at the next look:
/// the load counts only the records still in the future as live.
#[tokio::test]
async fn a_loaded_file_of_mostly_passed_records_is_compacted_next() {
    let fs = data_dir().await;
    let mut entries: Vec<(MessageId, i64)> = (0..2000).map(|n| (id(n), SEC)).collect();
    entries.push((id(9999), 10 * SEC));
    fs.write(&path(), &file_of(&entries)).await.unwrap();
    let j = journal(&fs);
    assert_eq!(j.load_once(2 * SEC).await.unwrap().len(), 1);
    assert_eq!(j.records().await, 2001, "no problem: not rewritten at load");
    assert!(j.rewrite_if_stale(2 * SEC).await.unwrap());
    assert_eq!(
        decode(&fs.read(&path()).await.unwrap()).records,
        [(id(9999), 10 * SEC)]
    );
}

/// Appends racing a compaction wait for it (it holds the file lock): none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_during_a_compaction_are_kept() {
    let fs = data_dir().await;
    let j = Arc::new(journal(&fs));
    let passed: Vec<(MessageId, i64)> = (0..5000).map(|n| (id(n), SEC)).collect();
    j.append(&passed).await.unwrap();
    let writer = {
        let j = j.clone();
        tokio::spawn(async move {
            for n in 0..100u64 {
                j.append(&[(id(10_000 + n), 10 * SEC)]).await.unwrap();
            }
        })
    };
    for _ in 0..20 {
        j.rewrite_if_stale(2 * SEC).await.unwrap();
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    j.rewrite_if_stale(2 * SEC).await.unwrap();
    fs.crash(CrashMode::DropUnsynced, 7);
    let due = journal(&fs).load_once(2 * SEC).await.unwrap();
    assert_eq!(due.len(), 100);
}

/// A failed append may leave part of its bytes behind; the next append goes where the
/// last whole record ends, so the file reads back clean.
#[tokio::test]
async fn an_append_after_a_partial_one_overwrites_it() {
    let fs = data_dir().await;
    let j = journal(&fs);
    j.append(&[(id(1), 5 * SEC)]).await.unwrap();
    // What a write cut short by a full disk would leave: part of a record.
    fs.append(&path(), &encode_record(&id(9), 9 * SEC)[..11])
        .await
        .unwrap();
    j.append(&[(id(2), 6 * SEC)]).await.unwrap();
    let decoded = decode(&fs.read(&path()).await.unwrap());
    assert!(decoded.problems.is_empty(), "{:?}", decoded.problems);
    assert_eq!(decoded.records, [(id(1), 5 * SEC), (id(2), 6 * SEC)]);
}
