//! Crashes (`MemFs::crash`) at random points of random runs: after reopening, every
//! record synced before the crash and not yet read is there, in order, nothing is
//! invented (a torn record is never handed out), and the depth is exact.

use proptest::prelude::*;

use super::model::{apply, op, run_config, Model, Op};
use super::*;
use crate::env::CrashMode;

/// A step of a crash run: an ordinary operation, or a crash.
#[derive(Debug, Clone)]
enum Step {
    Op(Op),
    Crash(CrashMode, u64),
}

fn step() -> impl Strategy<Value = Step> {
    let mode = prop_oneof![
        Just(CrashMode::DropUnsynced),
        Just(CrashMode::TornTail),
        Just(CrashMode::Keep)
    ];
    prop_oneof![
        12 => op().prop_map(Step::Op),
        1 => (mode, any::<u64>()).prop_map(|(m, r)| Step::Crash(m, r)),
    ]
}

/// How many puts had certainly reached the file system (`written`) and the disk
/// (`durable`) when a crash struck.
#[derive(Debug, Clone, Copy, Default)]
struct Reached {
    written: u64,
    durable: u64,
}

/// Checks what a reopened queue holds after a crash against the history before it.
async fn check_after_crash(q: &mut DiskQueue, model: &Model, reached: Reached, mode: CrashMode) {
    let Reached { written, durable } = reached;
    let depth = q.depth();
    let mut got = Vec::new();
    while let Some(payload) = q.read_next().await.unwrap() {
        let Some(index) = index_of(&payload) else {
            panic!("invented record {payload:?} after {mode:?}");
        };
        got.push(index);
    }
    let context = format!(
        "{mode:?}: got {got:?}, model {:?}, durable {durable}, written {written}",
        model.queue
    );
    assert_eq!(depth, got.len() as i64, "depth {context}");
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "order {context}");
    assert!(
        got.iter().all(|i| *i < model.next_index),
        "invented {context}"
    );
    // Every unread record that was synced is there (reads since the last sync may come
    // back too: the reader's position is as durable as the last sync).
    for index in model.queue.iter().filter(|i| **i < durable) {
        assert!(got.contains(index), "lost {index}: {context}");
    }
    if mode == CrashMode::Keep {
        // Nothing written is lost without a power cut: whatever was unread and had left
        // the queue's write buffer is all there.
        for index in model.queue.iter().filter(|i| **i < written) {
            assert!(got.contains(index), "lost {index}: {context}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn synced_records_survive_any_crash(config in run_config(), steps in prop::collection::vec(step(), 1..120)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let fs = MemFs::new();
            let mut q = open(&fs, "t", config).await;
            let mut model = Model::default();
            let mut reached = Reached::default();
            let everything = |model: &Model| Reached { written: model.next_index, durable: model.next_index };
            for step in &steps {
                match step {
                    Step::Op(Op::Reopen) => {
                        q.close().await.unwrap();
                        reached = everything(&model);
                        q = open(&fs, "t", config).await;
                        assert_eq!(q.depth(), model.queue.len() as i64);
                    }
                    Step::Op(op) => {
                        apply(&mut q, &mut model, op).await;
                        if q.unflushed.is_empty() {
                            reached.written = model.next_index;
                            if !q.write_unsynced {
                                reached.durable = model.next_index;
                            }
                        }
                    }
                    Step::Crash(mode, rng) => {
                        drop(q);
                        fs.crash(*mode, *rng);
                        q = open(&fs, "t", config).await;
                        check_after_crash(&mut q, &model, reached, *mode).await;
                        // Make the drain durable, so a later crash starts from here.
                        q.sync().await.unwrap();
                        model.queue.clear();
                        reached = everything(&model);
                    }
                }
            }
        });
    }
}

/// The crash-safe setting: with `sync_every = 1` every put that returned survives a
/// power cut, whichever way the last write tears.
#[tokio::test]
async fn with_sync_every_one_every_acknowledged_put_survives() {
    for mode in [CrashMode::DropUnsynced, CrashMode::TornTail] {
        for rng in 0..20 {
            let fs = MemFs::new();
            let cfg = DiskQueueConfig {
                sync_every: 1,
                ..config(100)
            };
            let mut q = open(&fs, "t", cfg).await;
            for i in 0..25 {
                q.put(&indexed(i, (i % 9) as usize)).await.unwrap();
            }
            drop(q);
            fs.crash(mode, rng);
            let mut q = open(&fs, "t", cfg).await;
            assert_eq!(q.depth(), 25);
            let got: Vec<u64> = drain(&mut q)
                .await
                .iter()
                .map(|p| index_of(p).unwrap())
                .collect();
            assert_eq!(got, (0..25).collect::<Vec<_>>());
        }
    }
}

/// A torn last write in the write file: the whole records before it come back, the
/// torn one never does, the depth says so, and writing goes on in a new file.
#[tokio::test]
async fn a_torn_write_is_skipped_not_returned() {
    let mut torn_seen = false;
    for rng in 0..40 {
        let fs = MemFs::new();
        let mut q = open(&fs, "t", config(1000)).await;
        q.put(&indexed(0, 3)).await.unwrap();
        q.sync().await.unwrap();
        q.put_many(&[indexed(1, 20), indexed(2, 20)]).await.unwrap();
        drop(q);
        fs.crash(CrashMode::TornTail, rng);
        let mut q = open(&fs, "t", config(1000)).await;
        let depth = q.depth();
        q.put(&indexed(3, 0)).await.unwrap();
        let got: Vec<u64> = drain(&mut q)
            .await
            .iter()
            .map(|p| index_of(p).unwrap())
            .collect();
        assert_eq!(depth + 1, got.len() as i64);
        assert_eq!(got[0], 0);
        assert_eq!(*got.last().unwrap(), 3);
        assert!(
            got.len() < 4,
            "the batch was torn, so not all of it is back: {got:?}"
        );
        torn_seen |= names(&fs).iter().any(|n| n.ends_with(".bad"));
    }
    assert!(torn_seen, "some tear points cut a record in half");
}
