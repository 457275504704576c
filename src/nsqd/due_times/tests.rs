use proptest::prelude::*;

use super::*;

fn id(n: u64) -> MessageId {
    MessageId::from_u64(n)
}

/// An id nsqd never makes (upper-case hex), so it goes to the fallback map.
fn odd_id(n: u8) -> MessageId {
    let mut bytes = *b"ABCDEF0123456789";
    bytes[15] = n;
    MessageId(bytes)
}

fn sorted_entries(map: &DueTimes) -> Vec<(MessageId, i64)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort();
    entries
}

#[test]
fn hex_ids_round_trip_through_u64_and_others_do_not() {
    for n in [0, 1, 0x18a8_c28d_96e6_9000, u64::MAX] {
        assert_eq!(key_of(&id(n)), Some(n));
    }
    assert_eq!(key_of(&MessageId(*b"0123456789ABCDEF")), None, "upper case");
    assert_eq!(key_of(&MessageId(*b"0123456789abcdeg")), None);
    assert_eq!(key_of(&MessageId([0; 16])), None);
}

#[test]
fn scrambling_is_undone_and_spreads_consecutive_ids() {
    for key in [0, 1, 2, 0x18a8_c28d_96e6_9000, u64::MAX - 1, u64::MAX] {
        assert_eq!(unscramble(scramble(key)), key);
    }
    for odd in [MIX_1, MIX_2, 1, 3, u64::MAX] {
        assert_eq!(odd.wrapping_mul(inverse(odd)), 1);
    }
    // Consecutive ids land in different buckets of a 256-bucket directory.
    let buckets: std::collections::BTreeSet<usize> = (0..64u64)
        .map(|n| bucket_of(scramble(1 << 40 | n), 8))
        .collect();
    assert!(buckets.len() > 48, "{} buckets", buckets.len());
}

proptest! {
    #[test]
    fn any_key_unscrambles(key in any::<u64>()) {
        prop_assert_eq!(unscramble(scramble(key)), key);
    }
}

#[test]
fn a_map_behaves_like_a_hash_map() {
    let mut map = DueTimes::new();
    assert!(map.is_empty());
    assert_eq!(map.insert(id(1), 10), None);
    assert_eq!(map.insert(odd_id(b'x'), 20), None);
    assert_eq!(map.insert(id(1), 11), Some(10));
    assert_eq!(map.len(), 2);
    assert_eq!(map.get(&id(1)), Some(&11));
    assert_eq!(map.get(&odd_id(b'x')), Some(&20));
    assert_eq!(map.get(&id(2)), None);
    assert_eq!(map.min_due(), Some(11));
    assert_eq!(map.remove(&id(1)), Some(11));
    assert_eq!(map.remove(&id(1)), None);
    assert_eq!(map.len(), 1);
    map.clear();
    assert!(map.is_empty());
    assert_eq!(map.min_due(), None);
}

/// Built from records, each id keeps its latest due time; removals, re-insertions and
/// retain work on the sorted part, and the count stays exact.
#[test]
fn a_built_map_keeps_the_latest_due_time_of_each_id() {
    let mut builder = DueTimes::builder(8);
    for (n, due) in [(5, 50), (1, 10), (5, 40), (3, 30), (5, 55), (1, 5)] {
        builder.push(id(n), due);
    }
    builder.push(odd_id(b'a'), 7);
    builder.push(odd_id(b'a'), 6);
    let mut map = builder.finish();
    assert_eq!(
        sorted_entries(&map),
        [(id(1), 10), (id(3), 30), (id(5), 55), (odd_id(b'a'), 7)]
    );
    assert_eq!(map.remove(&id(3)), Some(30));
    assert_eq!(map.len(), 3);
    assert_eq!(map.get(&id(3)), None);
    assert_eq!(map.insert(id(3), 33), None, "a removed entry comes back");
    assert_eq!(map.get(&id(3)), Some(&33));
    assert_eq!(map.insert(id(4), 44), None, "between sorted ids: recent");
    assert_eq!(map.len(), 5);
    map.retain(|_, due| *due > 30);
    assert_eq!(
        sorted_entries(&map),
        [(id(3), 33), (id(4), 44), (id(5), 55)]
    );
}

#[test]
fn recent_entries_merge_into_the_sorted_part() {
    let mut map = DueTimes::with_merge_min(4);
    for n in (0..100u64).rev() {
        map.insert(id(n * 2), n as i64);
    }
    assert!(map.recent.len() <= 12, "{} recent", map.recent.len());
    assert!(map.sorted.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(map.len(), 100);
    for n in 0..100u64 {
        assert_eq!(map.get(&id(n * 2)), Some(&(n as i64)));
        assert_eq!(map.get(&id(n * 2 + 1)), None);
    }
    for n in 0..90u64 {
        assert_eq!(map.remove(&id(n * 2)), Some(n as i64));
    }
    assert_eq!(map.len(), 10);
    assert!(map.sorted.len() < 30, "removed entries are dropped");
    let mut values: Vec<i64> = map.into_iter().map(|(_, due)| due).collect();
    values.sort();
    assert_eq!(values, (90..100).collect::<Vec<_>>());
}

/// One operation of the model test.
#[derive(Debug, Clone)]
enum Op {
    Insert(MessageId, i64),
    Remove(MessageId),
    Retain(i64),
    Extend(Vec<(MessageId, i64)>),
    Clear,
}

fn any_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        4 => (0u64..64).prop_map(id),
        1 => (0u8..4).prop_map(|n| odd_id(b'0' + n)),
        1 => any::<[u8; 16]>().prop_map(MessageId),
    ]
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any_id(), -100i64..100).prop_map(|(id, due)| Op::Insert(id, due)),
        5 => any_id().prop_map(Op::Remove),
        1 => (-100i64..100).prop_map(Op::Retain),
        1 => proptest::collection::vec((any_id(), -100i64..100), 0..8).prop_map(Op::Extend),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    /// Any sequence of operations, from any bulk-built start, leaves the map holding what
    /// a hash map would hold, with the same answers on the way.
    #[test]
    fn it_answers_like_a_hash_map(
        records in proptest::collection::vec((any_id(), -100i64..100), 0..64),
        ops in proptest::collection::vec(any_op(), 0..200),
        merge_min in 0usize..16,
    ) {
        let mut builder = DueTimes::builder(records.len());
        let mut model: FxHashMap<MessageId, i64> = FxHashMap::default();
        for (id, due) in &records {
            builder.push(*id, *due);
            let latest = model.entry(*id).or_insert(*due);
            *latest = (*latest).max(*due);
        }
        let mut map = builder.finish();
        map.merge_min = merge_min;
        for op in ops {
            match op {
                Op::Insert(id, due) => prop_assert_eq!(map.insert(id, due), model.insert(id, due)),
                Op::Remove(id) => prop_assert_eq!(map.remove(&id), model.remove(&id)),
                Op::Retain(after) => {
                    map.retain(|_, due| *due > after);
                    model.retain(|_, due| *due > after);
                }
                Op::Extend(entries) => {
                    map.extend(entries.clone());
                    model.extend(entries);
                }
                Op::Clear => {
                    map.clear();
                    model.clear();
                }
            }
            prop_assert_eq!(map.len(), model.len());
            prop_assert_eq!(map.is_empty(), model.is_empty());
            prop_assert_eq!(map.min_due(), model.values().copied().min());
        }
        for probe in (0u64..64).map(id).chain((0u8..4).map(|n| odd_id(b'0' + n))) {
            prop_assert_eq!(map.get(&probe), model.get(&probe));
        }
        let mut want: Vec<_> = model.into_iter().collect();
        want.sort();
        prop_assert_eq!(sorted_entries(&map), want.clone());
        let mut taken: Vec<_> = map.into_iter().collect();
        taken.sort();
        prop_assert_eq!(taken, want);
    }
}

/// The layout's memory for 10 million due times: built from a journal, and inserted one
/// by one during a run. Run with `--ignored --nocapture` to see the figures; lookup and
/// insert times are in `benches/due_times.rs`.
#[test]
#[ignore = "allocates about 300 MB; a measurement, not a check"]
fn bytes_for_ten_million() {
    const COUNT: u64 = 10_000_000;
    // GUID-like ids: a millisecond clock in the high bits, a sequence below.
    let ids = || (0..COUNT).map(|n| id((1 << 40) + ((n / 1000) << 22) + n % 1000));
    let mut builder = DueTimes::builder(COUNT as usize);
    for (n, id) in ids().enumerate() {
        builder.push(id, n as i64);
    }
    let built = builder.finish();
    let bytes = built.allocated_bytes();
    println!(
        "built: {bytes} bytes, {:.1} per entry",
        bytes as f64 / COUNT as f64
    );
    let probe: Vec<MessageId> = ids().step_by(7).collect();
    assert!(probe.iter().all(|id| built.get(id).is_some()));
    drop(built);

    let mut inserted = DueTimes::new();
    let mut peak = 0f64;
    for (n, id) in ids().enumerate() {
        inserted.insert(id, n as i64);
        if n % 10_000 == 0 && n >= 1_000_000 {
            peak = peak.max(inserted.allocated_bytes() as f64 / (n + 1) as f64);
        }
    }
    let bytes = inserted.allocated_bytes();
    println!(
        "inserted: {bytes} bytes, {:.1} per entry (at most {peak:.1} on the way past a million)",
        bytes as f64 / COUNT as f64,
    );
    let map: FxHashMap<MessageId, i64> = ids().map(|id| (id, 0)).collect();
    println!(
        "FxHashMap<MessageId, i64>: about {} bytes",
        (map.capacity() * 8 / 7).next_power_of_two() * 25,
    );
}
