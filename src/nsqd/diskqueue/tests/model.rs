//! Random operation sequences against a `VecDeque` model: nothing put is lost, nothing
//! is invented, order is kept and the depth is exact, across graceful close and reopen.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

/// One step of a run.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Put a record with this many bytes after its 8-byte index.
    Put(usize),
    /// Put several records in one call.
    PutMany(Vec<usize>),
    /// Read one record (or none when empty).
    Read,
    /// Sync explicitly.
    Sync,
    /// The caller's sync-timeout tick.
    Tick,
    /// Close gracefully and open again.
    Reopen,
    /// Throw everything away.
    Empty,
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..40).prop_map(Op::Put),
        2 => prop::collection::vec(0usize..40, 0..6).prop_map(Op::PutMany),
        6 => Just(Op::Read),
        1 => Just(Op::Sync),
        1 => Just(Op::Tick),
        1 => Just(Op::Reopen),
        1 => Just(Op::Empty),
    ]
}

/// Small files (a few records each) so runs roll often; every sync rule in play; puts
/// written through, gathered up to a few records, or gathered until a sync or roll.
pub(super) fn run_config() -> impl Strategy<Value = DiskQueueConfig> {
    let write_buffer_bytes = prop_oneof![Just(0u64), 1u64..150, Just(u64::MAX)];
    (20u64..200, 1u64..6, write_buffer_bytes).prop_map(
        |(max_bytes_per_file, sync_every, write_buffer_bytes)| DiskQueueConfig {
            max_bytes_per_file,
            min_msg_size: 8,
            max_msg_size: 48,
            sync_every,
            write_buffer_bytes,
        },
    )
}

/// The model and the history of indexes handed out.
#[derive(Debug, Default)]
pub(super) struct Model {
    /// Records put and not yet read, by index.
    pub(super) queue: VecDeque<u64>,
    /// The index the next put gets.
    pub(super) next_index: u64,
}

/// Applies `op` to the queue and the model and checks they agree. `Reopen` is the
/// caller's business (it owns the file system).
pub(super) async fn apply(q: &mut DiskQueue, model: &mut Model, op: &Op) {
    match op {
        Op::Put(extra) => {
            q.put(&indexed(model.next_index, *extra)).await.unwrap();
            model.queue.push_back(model.next_index);
            model.next_index += 1;
        }
        Op::PutMany(extras) => {
            let payloads: Vec<Vec<u8>> = extras
                .iter()
                .enumerate()
                .map(|(k, extra)| indexed(model.next_index + k as u64, *extra))
                .collect();
            q.put_many(&payloads).await.unwrap();
            for _ in extras {
                model.queue.push_back(model.next_index);
                model.next_index += 1;
            }
        }
        Op::Read => {
            let got = q.read_next().await.unwrap();
            let got = got.map(|p| index_of(&p).expect("a payload we wrote"));
            assert_eq!(got, model.queue.pop_front());
        }
        Op::Sync => q.sync().await.unwrap(),
        Op::Tick => {
            if q.needs_periodic_sync() {
                q.sync().await.unwrap();
            }
        }
        Op::Empty => {
            q.empty().await.unwrap();
            model.queue.clear();
        }
        Op::Reopen => {}
    }
    assert_eq!(q.depth(), model.queue.len() as i64, "after {op:?}");
}

/// No `.bad` files, and after a sync no data file outside the reader's to the writer's.
async fn check_files(fs: &MemFs, q: &DiskQueue) {
    for path in fs.file_names() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".bad"), "{name}");
        if let Some(num) = q.files.data_file_num(&path) {
            assert!(
                (q.read_file..=q.write_file).contains(&num),
                "{name} outside {}..={}",
                q.read_file,
                q.write_file
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_queue_behaves_like_a_fifo(config in run_config(), ops in prop::collection::vec(op(), 1..120)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let fs = MemFs::new();
            let mut q = open(&fs, "t:c", config).await;
            let mut model = Model::default();
            for op in &ops {
                if let Op::Reopen = op {
                    q.close().await.unwrap();
                    check_files(&fs, &q).await;
                    q = open(&fs, "t:c", config).await;
                }
                apply(&mut q, &mut model, op).await;
                if let Op::Sync = op {
                    check_files(&fs, &q).await;
                }
            }
            while !model.queue.is_empty() {
                apply(&mut q, &mut model, &Op::Read).await;
            }
            assert_eq!(q.read_next().await.unwrap(), None);
            q.close().await.unwrap();
            check_files(&fs, &q).await;
        });
    }
}
