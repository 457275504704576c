use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use proptest::prelude::*;

use super::index::Copy;
use super::*;
use crate::env::{BoxFuture, CrashMode, DirLock, MemFs};

const MAX_MSG: usize = 4096;
const OWNER: u16 = 7;
const TOPIC: &str = "orders.v1";

fn id(n: u64) -> MessageId {
    MessageId::from_u64(n)
}

/// The message of sequence number `seq`: always the same one for the same number.
fn message(seq: u64, channels: &[&str]) -> Replicated {
    message_with_body(seq, channels, format!("body {seq}").into_bytes())
}

fn message_with_body(seq: u64, channels: &[&str], body: Vec<u8>) -> Replicated {
    let mut message = Message::new(id(seq), 1_700_000_000 + seq as i64, Bytes::from(body));
    message.attempts = (seq % 5) as u16;
    Replicated {
        seq,
        message,
        due_ns: (seq % 3) as i64 * 1_000,
        channels: channels.iter().map(|c| c.to_string()).collect(),
    }
}

/// A file system with the data directory nsqd creates at startup.
async fn data_dir() -> MemFs {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("data")).await.unwrap();
    fs.sync(Path::new("data")).await.unwrap();
    fs
}

async fn open(fs: &MemFs) -> StandbyStore {
    open_on(Arc::new(fs.clone())).await
}

async fn open_on(fs: Arc<dyn Fs>) -> StandbyStore {
    StandbyStore::open(fs, Path::new("data"), TOPIC, OWNER, MAX_MSG)
        .await
        .unwrap()
}

fn path() -> PathBuf {
    PathBuf::from("data/orders.v1.standby.7.dat")
}

/// What an adoption would hand over: id, due time, channels (sorted), body.
type View = Vec<(MessageId, i64, Vec<String>, Vec<u8>)>;

async fn view(store: &mut StandbyStore) -> View {
    let adopted = store.adopt().await.unwrap();
    assert_eq!(adopted.len(), store.unfinished());
    adopted
        .into_iter()
        .map(|a| {
            let mut channels = a.channels;
            channels.sort();
            (a.message.id, a.due_ns, channels, a.message.body.to_vec())
        })
        .collect()
}

fn entry(seq: u64, due: i64, channels: &[&str]) -> (MessageId, i64, Vec<String>, Vec<u8>) {
    let channels = channels.iter().map(|c| c.to_string()).collect();
    (id(seq), due, channels, format!("body {seq}").into_bytes())
}

#[test]
fn the_layout_is_the_documented_one() {
    assert_eq!(&header_of_kind(KIND_STANDBY), b"NSQRSDEF\x00\x01\x00\x04");
    let mut out = Vec::new();
    let len = Record::Finished {
        channel: "ch",
        ids: vec![MessageId(*b"0123456789abcdef")],
    }
    .encode(&mut out);
    assert_eq!(len, out.len());
    assert_eq!(&out[..4], &(1 + 1 + 2 + 4 + 16u32).to_be_bytes(), "length");
    assert_eq!(out[4], 4, "kind: finished");
    assert_eq!(&out[5..8], b"\x02ch", "channel name with its length byte");
    assert_eq!(&out[8..12], &1u32.to_be_bytes(), "id count");
    assert_eq!(&out[12..28], b"0123456789abcdef");
    assert_eq!(&out[28..], &crc32c::crc32c(&out[4..28]).to_be_bytes());

    let replicated = message(5, &["a", "bb"]);
    let mut out = Vec::new();
    let record = Record::Message(MessageRecord {
        seq: 5,
        id: replicated.message.id,
        timestamp_ns: replicated.message.timestamp_ns,
        attempts: replicated.message.attempts,
        due_ns: replicated.due_ns,
        channels: vec!["a", "bb"],
        body: &replicated.message.body,
    });
    let len = record.encode(&mut out);
    assert_eq!(
        len,
        record::message_record_len(replicated.message.body.len(), &replicated.channels)
    );
    assert_eq!(out[4], 1, "kind: message");
    assert_eq!(&out[5..13], &5u64.to_be_bytes(), "seq");
    assert_eq!(&out[13..29], &replicated.message.id.0);
    assert_eq!(&out[47..49], &2u16.to_be_bytes(), "channel count");
    assert_eq!(&out[49..54], b"\x01a\x02bb");
    assert_eq!(&out[54..len - 4], b"body 5");
    assert_eq!(record::decode(&out[4..len - 4]), Some(record));
}

#[test]
fn memory_per_copy_is_32_bytes() {
    assert_eq!(std::mem::size_of::<(MessageId, Copy)>(), 32);
}

#[tokio::test]
async fn copies_round_trip_across_a_reopen() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    assert_eq!((store.highest_seq(), store.unfinished()), (0, 0));
    store.channel_created("a", 1).await.unwrap();
    store.channel_created("b", 2).await.unwrap();
    store
        .append(&[message(3, &["a", "b"]), message(4, &["b"])])
        .await
        .unwrap();
    store.append(&[message(5, &["a"])]).await.unwrap();
    store.sync().await.unwrap();
    let expected = vec![
        entry(3, 0, &["a", "b"]),
        entry(4, 1_000, &["b"]),
        entry(5, 2_000, &["a"]),
    ];
    assert_eq!(view(&mut store).await, expected);
    let adopted = store.adopt().await.unwrap();
    assert_eq!(
        adopted[0].message,
        message(3, &[]).message,
        "id, timestamp, attempts, body"
    );

    let mut reopened = open(&fs).await;
    assert_eq!(reopened.highest_seq(), 5);
    assert_eq!(reopened.unfinished(), 3);
    assert_eq!(reopened.channels(), ["a", "b"]);
    assert_eq!(view(&mut reopened).await, expected);
    assert!(reopened.read_problem().is_none());
}

#[tokio::test]
async fn a_resent_sequence_number_is_ignored() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store
        .append(&[message(1, &["a"]), message(2, &["a"])])
        .await
        .unwrap();
    let len = store.file_len();
    let resent = message_with_body(2, &["a"], b"other".to_vec());
    store.append(&[message(1, &["a"]), resent]).await.unwrap();
    assert_eq!(store.file_len(), len, "nothing written for a resend");
    store
        .append(&[message(2, &["z"]), message(3, &["a"])])
        .await
        .unwrap();
    store.channel_created("late", 3).await.unwrap();
    assert_eq!(
        store.channels(),
        Vec::<&str>::new(),
        "a channel change resent"
    );
    assert_eq!(store.highest_seq(), 3);
    let expected = vec![
        entry(1, 1_000, &["a"]),
        entry(2, 2_000, &["a"]),
        entry(3, 0, &["a"]),
    ];
    assert_eq!(view(&mut store).await, expected);
    store.sync().await.unwrap();
    assert_eq!(view(&mut open(&fs).await).await, expected);
}

#[tokio::test]
async fn a_copy_is_finished_by_a_fin_on_every_channel() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store
        .append(&[message(1, &["a", "b"]), message(2, &["a", "b"])])
        .await
        .unwrap();
    store.finish("a", &[id(1)]).await.unwrap();
    assert_eq!(store.unfinished(), 2, "a FIN on one of two channels");
    let len = store.file_len();
    store.finish("a", &[id(1), id(99)]).await.unwrap();
    store.finish("nope", &[id(2)]).await.unwrap();
    assert_eq!(store.file_len(), len, "nothing to finish: nothing written");
    store.finish("b", &[id(1)]).await.unwrap();
    assert_eq!(store.unfinished(), 1);
    let expected = vec![entry(2, 2_000, &["a", "b"])];
    assert_eq!(view(&mut store).await, expected);
    store.sync().await.unwrap();
    assert_eq!(view(&mut open(&fs).await).await, expected);
}

#[tokio::test]
async fn deleting_a_channel_drops_it_from_every_copy() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store.channel_created("a", 1).await.unwrap();
    store.channel_created("b", 2).await.unwrap();
    store
        .append(&[message(3, &["a", "b"]), message(4, &["a"])])
        .await
        .unwrap();
    store.channel_deleted("a", 5).await.unwrap();
    assert_eq!(store.channels(), ["b"]);
    let expected = vec![entry(3, 0, &["b"])];
    assert_eq!(view(&mut store).await, expected);
    // The freed slot goes to the next new name, and old copies do not get it.
    store.channel_created("c", 6).await.unwrap();
    assert_eq!(view(&mut store).await, expected);
    store.sync().await.unwrap();
    let mut reopened = open(&fs).await;
    assert_eq!(reopened.channels(), ["c", "b"], "in slot order");
    assert_eq!(view(&mut reopened).await, expected);
}

#[tokio::test]
async fn a_topic_level_copy_gets_the_channels_at_the_first_creation() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store.append(&[message(1, &[])]).await.unwrap();
    store.channel_deleted("gone", 2).await.unwrap();
    assert_eq!(
        view(&mut store).await,
        vec![entry(1, 1_000, &[])],
        "for the topic"
    );
    store.channel_created("a", 3).await.unwrap();
    store.channel_created("b", 4).await.unwrap();
    store.append(&[message(5, &[])]).await.unwrap();
    let expected = vec![entry(1, 1_000, &["a"]), entry(5, 2_000, &[])];
    assert_eq!(view(&mut store).await, expected);
    store.sync().await.unwrap();
    let mut reopened = open(&fs).await;
    assert_eq!(view(&mut reopened).await, expected);
    reopened.finish("a", &[id(1), id(5)]).await.unwrap();
    assert_eq!(view(&mut reopened).await, vec![entry(5, 2_000, &[])]);
}

#[tokio::test]
async fn a_requeued_due_time_survives_a_reopen_and_a_compaction() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store
        .append(&[message(1, &["a"]), message(2, &["a"])])
        .await
        .unwrap();
    store.requeued(id(2), 77_000).await.unwrap();
    store.requeued(id(9), 1).await.unwrap();
    let expected = vec![entry(1, 1_000, &["a"]), entry(2, 77_000, &["a"])];
    assert_eq!(view(&mut store).await, expected);
    store.sync().await.unwrap();
    let mut reopened = open(&fs).await;
    assert_eq!(view(&mut reopened).await, expected);
    reopened.compact().await.unwrap();
    assert_eq!(view(&mut reopened).await, expected);
    assert_eq!(view(&mut open(&fs).await).await, expected);
}

#[tokio::test]
async fn more_than_32_channels_use_the_wide_words() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    let names: Vec<String> = (0..70).map(|n| format!("c{n}")).collect();
    for (seq, name) in (1..).zip(&names) {
        store.channel_created(name, seq).await.unwrap();
    }
    store.append(&[message(100, &[])]).await.unwrap();
    store.channel_created("c69", 101).await.unwrap();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    store.append(&[message(102, &all[30..40])]).await.unwrap();
    for name in &names[..69] {
        store.finish(name, &[id(100), id(102)]).await.unwrap();
    }
    assert_eq!(view(&mut store).await, vec![entry(100, 1_000, &["c69"])]);
    store.sync().await.unwrap();
    let mut reopened = open(&fs).await;
    assert_eq!(view(&mut reopened).await, vec![entry(100, 1_000, &["c69"])]);
    reopened.channel_deleted("c69", 103).await.unwrap();
    assert_eq!(reopened.unfinished(), 0);
}

#[tokio::test]
async fn bad_names_and_oversized_messages_are_refused_whole() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    let bad = store
        .append(&[message(1, &["a"]), message(2, &["no spaces"])])
        .await;
    assert!(matches!(bad, Err(StandbyError::BadName(_))), "{bad:?}");
    let huge = message_with_body(3, &["a"], vec![0; MAX_MSG + RECORD_SLACK]);
    let refused = store.append(&[huge]).await;
    assert!(
        matches!(refused, Err(StandbyError::TooLarge { .. })),
        "{refused:?}"
    );
    assert!(store.channel_created("", 4).await.is_err());
    assert_eq!((store.highest_seq(), store.file_len()), (0, 0));
    let at_limit = message_with_body(3, &["a"], vec![7; MAX_MSG]);
    store.append(std::slice::from_ref(&at_limit)).await.unwrap();
    store.sync().await.unwrap();
    let adopted = open(&fs).await.adopt().await.unwrap();
    assert_eq!(adopted[0].message, at_limit.message);
}

#[tokio::test]
async fn compaction_keeps_exactly_the_live_copies() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store.channel_created("a", 1).await.unwrap();
    let body = vec![b'x'; 2_000];
    let batch: Vec<Replicated> = (2..700)
        .map(|seq| message_with_body(seq, &["a"], body.clone()))
        .collect();
    store.append(&batch).await.unwrap();
    assert!(!store.compact_if_mostly_dead().await.unwrap(), "all live");
    let finished: Vec<MessageId> = (2..600).map(id).collect();
    store.finish("a", &finished).await.unwrap();
    store.requeued(id(650), 5).await.unwrap();
    let before = view(&mut store).await;
    let len = store.file_len();
    assert!(len > COMPACT_MIN_BYTES);
    assert!(store.compact_if_mostly_dead().await.unwrap());
    assert!(store.file_len() < len / 5, "{} of {len}", store.file_len());
    assert_eq!(fs.file_names(), [path()], "no tmp left");
    assert_eq!(view(&mut store).await, before);
    assert_eq!(before.len(), 100);
    assert_eq!(before[50].1, 5, "the REQ's due time is in the record now");
    // Writes after a compaction land after its last record.
    store.append(&[message(700, &["a"])]).await.unwrap();
    store.finish("a", &[id(600)]).await.unwrap();
    fs.crash(CrashMode::Keep, 0);
    let mut reopened = open(&fs).await;
    let after = view(&mut reopened).await;
    assert_eq!(after.len(), 100);
    assert_eq!(after[..99], before[1..]);
    assert_eq!(reopened.highest_seq(), 700);
    assert_eq!(reopened.channels(), ["a"]);
}

#[tokio::test]
async fn the_highest_sequence_survives_a_compaction_that_keeps_no_copy() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store.channel_created("a", 1).await.unwrap();
    store.append(&[message(2, &["a"])]).await.unwrap();
    store.forget_all().await.unwrap();
    assert_eq!(store.unfinished(), 0);
    fs.crash(CrashMode::DropUnsynced, 0);
    let mut reopened = open(&fs).await;
    assert_eq!((reopened.highest_seq(), reopened.unfinished()), (2, 0));
    assert_eq!(reopened.channels(), ["a"]);
    reopened.append(&[message(2, &["a"])]).await.unwrap();
    assert_eq!(reopened.unfinished(), 0, "still a resend");
}

/// A file system whose process dies after `ops_left` more writes, syncs, renames or
/// removes: each later one fails and changes nothing, until the test crashes the disk.
struct DiesAfter {
    inner: MemFs,
    ops_left: AtomicUsize,
}

impl DiesAfter {
    fn step(&self) -> io::Result<()> {
        let left = self.ops_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(io::Error::other("the process died"));
        }
        self.ops_left.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

impl Fs for DiesAfter {
    fn create_dir_all<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        self.inner.create_dir_all(dir)
    }
    fn read<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<Vec<u8>>> {
        self.inner.read(path)
    }
    fn read_at<'a>(
        &'a self,
        path: &'a Path,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, io::Result<Vec<u8>>> {
        self.inner.read_at(path, offset, len)
    }
    fn write<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            self.step()?;
            self.inner.write(path, data).await
        })
    }
    fn append<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            self.step()?;
            self.inner.append(path, data).await
        })
    }
    fn write_at<'a>(
        &'a self,
        path: &'a Path,
        offset: u64,
        data: Vec<u8>,
    ) -> BoxFuture<'a, (Vec<u8>, io::Result<()>)> {
        Box::pin(async move {
            match self.step() {
                Ok(()) => self.inner.write_at(path, offset, data).await,
                Err(error) => (data, Err(error)),
            }
        })
    }
    fn sync<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            self.step()?;
            self.inner.sync(path).await
        })
    }
    fn rename<'a>(&'a self, from: &'a Path, to: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            self.step()?;
            self.inner.rename(from, to).await
        })
    }
    fn remove<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            self.step()?;
            self.inner.remove(path).await
        })
    }
    fn list<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<Vec<PathBuf>>> {
        self.inner.list(dir)
    }
    fn len<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<u64>> {
        self.inner.len(path)
    }
    fn lock_dir<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<DirLock>> {
        self.inner.lock_dir(dir)
    }
}

/// A failover reads the copies back a batch at a time, in sequence order, each batch
/// about the size asked (one copy at least), and every copy in the end.
#[tokio::test]
async fn copies_are_handed_over_in_batches_of_bounded_size() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    let records: Vec<Replicated> = (1..=50)
        .map(|seq| message_with_body(seq, &["a"], vec![1; 100]))
        .collect();
    store.append(&records).await.unwrap();
    store.finish("a", &[id(10), id(20)]).await.unwrap();
    let expected: Vec<MessageId> = (1..=50)
        .filter(|n| n % 10 != 0 || *n > 20)
        .map(id)
        .collect();
    let live = BTreeSet::new();
    for (max_bytes, most) in [(1000, 10), (0, 1), (usize::MAX, 48)] {
        let mut adoption = store.adoption(&live, Scope::Silent).await.unwrap();
        let mut ids = Vec::new();
        while let Some(batch) = adoption.next_batch(max_bytes).await.unwrap() {
            assert!(!batch.is_empty() && batch.len() <= most, "{}", batch.len());
            ids.extend(batch.iter().map(|a| a.message.id));
        }
        adoption.check_all_found().unwrap();
        assert_eq!(ids, expected, "batches of {max_bytes} bytes");
    }
}

/// Reads every copy of `scope` back, as a failover does, checking all were found: the
/// ids handed over, and what to forget.
async fn take_over(
    store: &mut StandbyStore,
    live: &BTreeSet<u16>,
    scope: Scope,
) -> (Vec<MessageId>, Taken) {
    let mut adoption = store.adoption(live, scope).await.unwrap();
    let mut ids = Vec::new();
    while let Some(batch) = adoption.next_batch(usize::MAX).await.unwrap() {
        ids.extend(batch.iter().map(|a| a.message.id));
    }
    adoption.check_all_found().unwrap();
    (ids, adoption.into_taken())
}

/// Copies another node said it took over (`ADOPTED`) are left to it while it is alive:
/// a failover here hands over the rest and keeps those, on disk too; once that node is
/// lost as well, they are handed over.
#[tokio::test]
async fn copies_taken_over_by_a_live_node_are_left_to_it() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    let records: Vec<Replicated> = (1..=6).map(|seq| message(seq, &["a"])).collect();
    store.append(&records).await.unwrap();
    // Node 7 took over 1, 2 and 9 (9 is not held here: ignored).
    store.delegate(&[id(1), id(2), id(9)], 7);
    let seven_alive = BTreeSet::from([7]);
    assert_eq!(store.adoptable(&seven_alive), 4);
    assert_eq!(store.adoptable(&BTreeSet::new()), 6);

    assert_eq!(store.orphaned(&seven_alive), 0);
    assert_eq!(store.orphaned(&BTreeSet::new()), 2);
    let (ids, taken) = take_over(&mut store, &seven_alive, Scope::Silent).await;
    assert_eq!(ids, vec![id(3), id(4), id(5), id(6)]);
    store.forget_adopted(taken).await.unwrap();
    assert_eq!(store.unfinished(), 2);
    assert_eq!(store.adoptable(&seven_alive), 0);

    // The owner is alive again (it came back blank) and node 7 was lost too: only the
    // copies node 7 had taken over are handed over.
    store.append(&[message(7, &["a"])]).await.unwrap();
    let nobody = BTreeSet::new();
    let (ids, _) = take_over(&mut store, &nobody, Scope::Orphans).await;
    assert_eq!(ids, vec![id(1), id(2)]);

    // Node 7 finishes 1 (its FIN reaches this store); then node 7 is lost too.
    store.finish("a", &[id(1)]).await.unwrap();
    let mut reopened = open(&fs).await;
    assert_eq!(
        reopened.unfinished(),
        2,
        "the handed-over copies are gone from the file"
    );
    let adopted = reopened.adopt().await.unwrap();
    let ids: Vec<MessageId> = adopted.iter().map(|a| a.message.id).collect();
    assert_eq!(ids, vec![id(2), id(7)]);
}

/// An owner back blank numbers its new run above its earlier one: a takeover of the
/// earlier run leaves the new run's copies standby.
#[tokio::test]
async fn a_takeover_of_an_earlier_run_leaves_the_new_runs_copies() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    let records: Vec<Replicated> = (1..=5).map(|seq| message(seq, &["a"])).collect();
    store.append(&records).await.unwrap();
    let nobody = BTreeSet::new();
    let earlier = Scope::EarlierRun { up_to_seq: 3 };
    let (ids, taken) = take_over(&mut store, &nobody, earlier).await;
    assert_eq!(ids, vec![id(1), id(2), id(3)]);
    store.forget_adopted(taken).await.unwrap();
    assert_eq!(store.unfinished(), 2);
    assert_eq!(open(&fs).await.unfinished(), 2);
}

/// Gathered records reach the file at the threshold, at a sync, and before an adoption
/// reads the file; until then a crash loses them, as it loses a memory queue.
#[tokio::test]
async fn gathered_records_are_written_at_the_threshold_a_sync_or_an_adoption() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store.gather_up_to(4096);
    store
        .append(&[message(1, &["a"]), message(2, &["a"])])
        .await
        .unwrap();
    assert_eq!(store.unfinished(), 2);
    assert!(fs.len(&path()).await.is_err(), "gathered, not written");
    assert_eq!(open(&fs).await.unfinished(), 0, "a crash loses them");

    store.sync().await.unwrap();
    assert_eq!(fs.len(&path()).await.unwrap(), store.file_len());
    let expected = view(&mut store).await;
    assert_eq!(view(&mut open(&fs).await).await, expected);

    // A batch that brings the gathered bytes to the threshold is written at once.
    let before = store.file_len();
    store
        .append(&[message_with_body(3, &["a"], vec![7; 3000])])
        .await
        .unwrap();
    assert_eq!(
        fs.len(&path()).await.unwrap(),
        before,
        "below the threshold"
    );
    store
        .append(&[message_with_body(4, &["a"], vec![8; 3000])])
        .await
        .unwrap();
    assert_eq!(fs.len(&path()).await.unwrap(), store.file_len());

    // An adoption writes what is gathered before reading the file.
    store.append(&[message(5, &["b"])]).await.unwrap();
    let adopted = store.adopt().await.unwrap();
    let ids: Vec<MessageId> = adopted.iter().map(|a| a.message.id).collect();
    assert_eq!(ids, [id(1), id(2), id(3), id(4), id(5)]);
    assert_eq!(fs.len(&path()).await.unwrap(), store.file_len());
}

/// A failed write drops the batch that failed and only it: what was gathered before
/// (and acknowledged) stays gathered and is written by the next sync.
#[tokio::test]
async fn a_failed_gathered_write_keeps_what_was_gathered_before() {
    let inner = data_dir().await;
    let fs = Arc::new(DiesAfter {
        inner: inner.clone(),
        ops_left: AtomicUsize::new(usize::MAX),
    });
    let mut store = open_on(fs.clone()).await;
    fs.ops_left.store(0, Ordering::SeqCst);
    store.gather_up_to(100_000);
    store.append(&[message(1, &["a"])]).await.unwrap();
    store.gather_up_to(0);
    assert!(store.append(&[message(2, &["a"])]).await.is_err());
    assert_eq!((store.highest_seq(), store.unfinished()), (1, 1));

    fs.ops_left.store(usize::MAX, Ordering::SeqCst);
    store.sync().await.unwrap();
    let mut reopened = open(&inner).await;
    assert_eq!((reopened.highest_seq(), reopened.unfinished()), (1, 1));
    assert_eq!(view(&mut reopened).await, view(&mut store).await);
    store.append(&[message(2, &["a"])]).await.unwrap();
    assert_eq!(
        store.unfinished(),
        2,
        "the failed batch is taken when sent again"
    );
}

/// A crash at every step of a compaction (tmp written, tmp synced, renamed, and the
/// failure's cleanup) leaves a store that reopens with exactly the live copies.
#[tokio::test]
async fn a_crash_at_any_step_of_a_compaction_loses_nothing() {
    for mode in [
        CrashMode::DropUnsynced,
        CrashMode::TornTail,
        CrashMode::Keep,
    ] {
        for ops in 0.. {
            let fs = data_dir().await;
            let dies = Arc::new(DiesAfter {
                inner: fs.clone(),
                ops_left: AtomicUsize::new(usize::MAX),
            });
            let mut store = open_on(dies.clone()).await;
            store.channel_created("a", 1).await.unwrap();
            store.channel_created("b", 2).await.unwrap();
            let batch: Vec<Replicated> = (3..40).map(|seq| message(seq, &["a", "b"])).collect();
            store.append(&batch).await.unwrap();
            store
                .finish("a", &(3..30).map(id).collect::<Vec<_>>())
                .await
                .unwrap();
            store
                .finish("b", &(3..20).map(id).collect::<Vec<_>>())
                .await
                .unwrap();
            store.requeued(id(35), 9).await.unwrap();
            store.sync().await.unwrap();
            let expected = view(&mut store).await;
            dies.ops_left.store(ops, Ordering::SeqCst);
            let compacted = store.compact().await;
            fs.crash(mode, ops as u64);
            let mut reopened = open(&fs).await;
            assert_eq!(
                view(&mut reopened).await,
                expected,
                "{mode:?} after {ops} steps"
            );
            assert_eq!(reopened.highest_seq(), 39);
            assert_eq!(fs.file_names(), [path()], "{mode:?} after {ops} steps");
            if compacted.is_ok() {
                assert_eq!(reopened.file_len(), store.file_len());
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_crash_loses_nothing_synced() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store
        .append(&[message(1, &["a"]), message(2, &["a"])])
        .await
        .unwrap();
    store.finish("a", &[id(1)]).await.unwrap();
    store.sync().await.unwrap();
    store.append(&[message(3, &["a"])]).await.unwrap();
    store.finish("a", &[id(2)]).await.unwrap();
    fs.crash(CrashMode::DropUnsynced, 0);
    let mut reopened = open(&fs).await;
    assert_eq!(view(&mut reopened).await, vec![entry(2, 2_000, &["a"])]);
    assert_eq!(reopened.highest_seq(), 2);
}

#[tokio::test]
async fn a_never_synced_store_vanishes_in_a_crash() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store.append(&[message(1, &["a"])]).await.unwrap();
    fs.crash(CrashMode::DropUnsynced, 0);
    let reopened = open(&fs).await;
    assert_eq!((reopened.highest_seq(), reopened.unfinished()), (0, 0));
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_a_later_append_reads_back() {
    for rng_value in 0..40u64 {
        let fs = data_dir().await;
        let mut store = open(&fs).await;
        store.append(&[message(1, &["a"])]).await.unwrap();
        store.sync().await.unwrap();
        let batch: Vec<Replicated> = (2..5).map(|seq| message(seq, &["a"])).collect();
        store.append(&batch).await.unwrap();
        fs.crash(CrashMode::TornTail, rng_value);
        let mut reopened = open(&fs).await;
        let held = reopened.highest_seq();
        assert!(
            (1..4).contains(&held),
            "a proper prefix of the batch survives"
        );
        let expected: View = (1..=held)
            .map(|seq| entry(seq, seq as i64 % 3 * 1_000, &["a"]))
            .collect();
        assert_eq!(view(&mut reopened).await, expected);
        let fs_len = fs.read(&path()).await.unwrap().len() as u64;
        assert_eq!(
            reopened.read_problem().is_some(),
            fs_len > reopened.file_len(),
            "a problem exactly when a partial record is left"
        );
        reopened.append(&[message(10, &["a"])]).await.unwrap();
        reopened.sync().await.unwrap();
        let again = open(&fs).await;
        assert!(again.read_problem().is_none(), "the torn bytes were cut");
        assert_eq!(again.highest_seq(), 10);
        assert_eq!(again.unfinished() as u64, held + 1);
    }
}

#[tokio::test]
async fn a_torn_creation_reads_as_empty() {
    let fs = data_dir().await;
    fs.write(&path(), b"NSQRS").await.unwrap();
    let mut store = open(&fs).await;
    assert_eq!(store.read_problem(), Some(&ReadProblem::TornHeader(5)));
    store.append(&[message(1, &["a"])]).await.unwrap();
    assert_eq!(open(&fs).await.unfinished(), 1);
}

#[tokio::test]
async fn a_foreign_file_is_refused_and_left_alone() {
    let fs = data_dir().await;
    let foreign = header_of_kind(1).to_vec();
    fs.write(&path(), &foreign).await.unwrap();
    let opened = StandbyStore::open(
        Arc::new(fs.clone()),
        Path::new("data"),
        TOPIC,
        OWNER,
        MAX_MSG,
    )
    .await;
    assert!(
        matches!(opened, Err(StandbyError::Foreign { .. })),
        "{opened:?}"
    );
    assert_eq!(fs.read(&path()).await.unwrap(), foreign);
    let escaping = StandbyStore::open(Arc::new(fs), Path::new("data"), "../x", OWNER, MAX_MSG);
    assert!(matches!(escaping.await, Err(StandbyError::BadName(_))));
}

#[tokio::test]
async fn a_deleted_store_leaves_no_file() {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    store.append(&[message(1, &["a"])]).await.unwrap();
    fs.write(Path::new("data/orders.v1.standby.7.dat.tmp"), b"x")
        .await
        .unwrap();
    store.delete().await.unwrap();
    assert!(fs.file_names().is_empty());
}

#[tokio::test]
async fn find_all_parses_store_names_from_the_right() {
    let fs = data_dir().await;
    for name in [
        "a.standby.3.dat",
        "a.b.standby.12.dat",
        "x.standby.standby.0.dat",
        "x.standby.3.dat.tmp",
        "a.diskqueue.000000.dat",
        "a:c.deferred.12.dat",
        "bad name.standby.1.dat",
        "a.standby.01.dat",
        "a.standby.+1.dat",
        "a.standby.70000.dat",
        ".standby.1.dat",
        "nsqd.dat",
    ] {
        fs.write(&Path::new("data").join(name), b"").await.unwrap();
    }
    let found = StandbyStore::find_all(&fs, Path::new("data"))
        .await
        .unwrap();
    let found: Vec<(&str, u16)> = found.iter().map(|(t, o)| (t.as_str(), *o)).collect();
    assert_eq!(found, [("a", 3), ("a.b", 12), ("x.standby", 0)]);
    assert_eq!(
        parse_file_name("orders.v1.standby.7.dat"),
        Some(("orders.v1".to_string(), 7))
    );
    assert_eq!(file_path(Path::new("data"), TOPIC, OWNER), path());
}

/// A store's state as a model holds it: highest sequence number, channels, and per
/// unfinished copy (by id, which sorts as the sequence number does) its due time and
/// unfinished channels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    highest: u64,
    existing: BTreeSet<String>,
    copies: BTreeMap<MessageId, (u64, i64, BTreeSet<String>)>,
}

impl Model {
    fn finish_on(&mut self, channel: &str, ids: &[MessageId]) -> bool {
        let mut changed = false;
        for id in ids {
            if let Some((_, _, channels)) = self.copies.get_mut(id) {
                if channels.remove(channel) {
                    changed = true;
                    if channels.is_empty() {
                        self.copies.remove(id);
                    }
                }
            }
        }
        changed
    }

    fn delete_channel(&mut self, name: &str) {
        self.existing.remove(name);
        let ids: Vec<MessageId> = self.copies.keys().copied().collect();
        self.finish_on(name, &ids);
    }

    fn create_channel(&mut self, name: &str) {
        self.existing.insert(name.to_string());
        for (_, _, channels) in self.copies.values_mut() {
            if channels.is_empty() {
                channels.clone_from(&self.existing);
            }
        }
    }

    async fn of(store: &mut StandbyStore) -> Model {
        let adopted = store.adopt().await.unwrap();
        let ids: Vec<MessageId> = adopted.iter().map(|a| a.message.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "adopted in sequence order");
        let mut copies = BTreeMap::new();
        for a in adopted {
            let seq = u64::from_str_radix(&a.message.id.to_string(), 16).unwrap();
            let expected = message(seq, &[]).message;
            assert_eq!(a.message, expected, "body, timestamp, attempts of {seq}");
            let channels = a.channels.into_iter().collect();
            copies.insert(a.message.id, (seq, a.due_ns, channels));
        }
        Model {
            highest: store.highest_seq(),
            existing: store.channels().into_iter().map(str::to_string).collect(),
            copies,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Messages: for each, a step from the highest sequence number (0: a resend) and
    /// channel names from a pool of 40.
    Append(Vec<(u8, Vec<u8>)>),
    Create(u8, bool),
    Delete(u8, bool),
    /// A FIN of a chosen copy on one of its channels, with other copies' ids.
    Finish(
        prop::sample::Index,
        prop::sample::Index,
        Vec<prop::sample::Index>,
    ),
    Requeue(prop::sample::Index, i64),
    Sync,
    Compact,
    Crash(u8, u64),
}

fn channel_name(n: u8) -> String {
    format!("ch{}", n % 40)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0u8..3, prop::collection::vec(0u8..40, 0..4)), 1..5)
            .prop_map(Op::Append),
        2 => (0u8..6, any::<bool>()).prop_map(|(n, resend)| Op::Create(n, resend)),
        1 => (0u8..40, any::<bool>()).prop_map(|(n, resend)| Op::Delete(n, resend)),
        4 => (any::<prop::sample::Index>(), any::<prop::sample::Index>(),
              prop::collection::vec(any::<prop::sample::Index>(), 0..3))
            .prop_map(|(copy, channel, others)| Op::Finish(copy, channel, others)),
        1 => (any::<prop::sample::Index>(), -5i64..1_000_000).prop_map(|(c, due)| Op::Requeue(c, due)),
        2 => Just(Op::Sync),
        1 => Just(Op::Compact),
        1 => (0u8..3, any::<u64>()).prop_map(|(mode, rng)| Op::Crash(mode, rng)),
    ]
}

/// The model's states after each record of the last unsynced write, starting with the
/// state before it: what a torn last write may leave.
struct Tracker {
    current: Model,
    synced: Model,
    torn_candidates: Vec<Model>,
}

impl Tracker {
    /// Records a write whose records took the model through `states`.
    fn wrote(&mut self, before: Model, states: Vec<Model>) {
        if states.is_empty() {
            return;
        }
        let mut candidates = vec![before];
        candidates.extend(states[..states.len() - 1].iter().cloned());
        self.torn_candidates = candidates;
        if let Some(last) = states.last() {
            self.current = last.clone();
        }
    }

    fn synced(&mut self) {
        self.synced = self.current.clone();
        self.torn_candidates.clear();
    }
}

async fn run(ops: Vec<Op>) {
    let fs = data_dir().await;
    let mut store = open(&fs).await;
    let mut t = Tracker {
        current: Model::default(),
        synced: Model::default(),
        torn_candidates: Vec::new(),
    };
    for op in ops {
        let before = t.current.clone();
        match op {
            Op::Append(messages) => {
                let mut batch = Vec::new();
                let mut model = before.clone();
                let mut states = Vec::new();
                let mut highest = model.highest;
                for (step, names) in messages {
                    let seq = (highest + u64::from(step)).max(1);
                    let names: Vec<String> = names.into_iter().map(channel_name).collect();
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    let replicated = message(seq, &refs);
                    if seq > highest {
                        highest = seq;
                        model.highest = seq;
                        let channels = names.into_iter().collect();
                        model
                            .copies
                            .insert(id(seq), (seq, replicated.due_ns, channels));
                        states.push(model.clone());
                    }
                    batch.push(replicated);
                }
                store.append(&batch).await.unwrap();
                t.wrote(before, states);
            }
            Op::Create(n, resend) | Op::Delete(n, resend) => {
                let created = matches!(op, Op::Create(..));
                let name = channel_name(n);
                let seq = before.highest + u64::from(!resend);
                let mut model = before.clone();
                if created {
                    store.channel_created(&name, seq).await.unwrap();
                } else {
                    store.channel_deleted(&name, seq).await.unwrap();
                }
                if seq > before.highest {
                    model.highest = seq;
                    if created {
                        model.create_channel(&name);
                    } else {
                        model.delete_channel(&name);
                    }
                    t.wrote(before, vec![model]);
                }
            }
            Op::Finish(copy, channel, others) => {
                let ids: Vec<MessageId> = before.copies.keys().copied().collect();
                if ids.is_empty() {
                    continue;
                }
                let target = *copy.get(&ids);
                let channels: Vec<String> = before.copies[&target].2.iter().cloned().collect();
                let name = if channels.is_empty() {
                    channel_name(0)
                } else {
                    channel.get(&channels).clone()
                };
                let mut fin = vec![target];
                fin.extend(others.iter().map(|i| *i.get(&ids)));
                fin.push(id(1 << 40));
                store.finish(&name, &fin).await.unwrap();
                let mut model = before.clone();
                if model.finish_on(&name, &fin) {
                    t.wrote(before, vec![model]);
                }
            }
            Op::Requeue(copy, due) => {
                let ids: Vec<MessageId> = before.copies.keys().copied().collect();
                let target = if ids.is_empty() {
                    id(1 << 40)
                } else {
                    *copy.get(&ids)
                };
                store.requeued(target, due).await.unwrap();
                let mut model = before.clone();
                if let Some(entry) = model.copies.get_mut(&target) {
                    entry.1 = due;
                    t.wrote(before, vec![model]);
                }
            }
            Op::Sync => {
                store.sync().await.unwrap();
                t.synced();
            }
            Op::Compact => {
                store.compact().await.unwrap();
                t.synced();
            }
            Op::Crash(mode, rng) => {
                let mode = [
                    CrashMode::DropUnsynced,
                    CrashMode::TornTail,
                    CrashMode::Keep,
                ][usize::from(mode)];
                fs.crash(mode, rng);
                store = open(&fs).await;
                let found = Model::of(&mut store).await;
                let allowed = match mode {
                    CrashMode::DropUnsynced => vec![t.synced.clone()],
                    CrashMode::Keep => vec![t.current.clone()],
                    CrashMode::TornTail if t.torn_candidates.is_empty() => vec![t.current.clone()],
                    CrashMode::TornTail => t.torn_candidates.clone(),
                };
                assert!(
                    allowed.contains(&found),
                    "{mode:?}: {found:?} not in {allowed:?}"
                );
                t.current = found;
                t.synced();
            }
        }
        assert_eq!(Model::of(&mut store).await, t.current, "after {:?}", store);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the operations and wherever crashes fall, the store holds what a simple
    /// model says: after a crash, exactly what was synced (or, for a torn last write, a
    /// prefix of its records); otherwise, everything.
    #[test]
    fn a_store_matches_a_model_across_crashes(ops in prop::collection::vec(op(), 1..40)) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(ops));
    }

    /// Whatever the file holds, opening it returns (an error for a foreign header), and
    /// an append after it reads back.
    #[test]
    fn garbage_never_panics(
        noise in prop::collection::vec(any::<u8>(), 0..300),
        with_header in any::<bool>(),
        records in prop::collection::vec(0u64..5, 0..4),
        flip in any::<prop::sample::Index>(),
    ) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let mut bytes = Vec::new();
                if with_header {
                    bytes.extend_from_slice(&header_of_kind(KIND_STANDBY));
                    for (i, kind) in records.iter().enumerate() {
                        let record = match kind {
                            0 => Record::HighestSeq(i as u64),
                            1 => Record::ChannelCreated { seq: i as u64, name: "a" },
                            2 => Record::Finished { channel: "a", ids: vec![id(1)] },
                            3 => Record::Requeued { id: id(1), due_ns: 5 },
                            _ => Record::Message(MessageRecord {
                                seq: 100 + i as u64, id: id(1), timestamp_ns: 0, attempts: 0,
                                due_ns: 0, channels: vec!["a"], body: b"b",
                            }),
                        };
                        record.encode(&mut bytes);
                    }
                    if !noise.is_empty() {
                        let at = flip.index(bytes.len());
                        bytes[at] ^= noise[0] | 1;
                    }
                }
                bytes.extend_from_slice(&noise);
                fs_with(&bytes).await
            });
    }
}

async fn fs_with(bytes: &[u8]) {
    let fs = data_dir().await;
    fs.write(&path(), bytes).await.unwrap();
    let Ok(mut store) =
        StandbyStore::open(Arc::new(fs.clone()), Path::new("data"), TOPIC, OWNER, 64).await
    else {
        return;
    };
    let _ = store.adopt().await.unwrap();
    let seq = store.highest_seq() + 1;
    store.append(&[message(seq, &["z"])]).await.unwrap();
    let mut reopened = open(&fs).await;
    assert!(reopened.read_problem().is_none());
    assert_eq!(reopened.highest_seq(), seq);
    let adopted = reopened.adopt().await.unwrap();
    assert_eq!(adopted.last().map(|a| a.message.id), Some(id(seq)));
}
