//! A map from message id to unfinished copy, built for the order ids come in.
//!
//! An owner mints a topic's ids in increasing order and sends them in that order, and
//! its consumers finish them roughly in that order too. So the copies sit in a deque
//! sorted by id: a new copy is a push at the back, a lookup is a binary search, and a
//! finished copy leaves a hole that is dropped once it reaches the front (or by a sweep
//! when holes outnumber copies). An id below the last one, which only an owner whose
//! clock went back sends, goes to a hash map beside the deque. At millions of copies a
//! hash map's inserts are cache misses and rehashes; this is an append.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::protocol::MessageId;

/// Holes tolerated anywhere in the deque before a sweep, whatever its length.
const MIN_HOLES_TO_SWEEP: usize = 1024;

/// A message id as two numbers that order the same way its bytes do.
type Key = (u64, u64);

fn key_of(id: &MessageId) -> Key {
    let mut high = [0; 8];
    let mut low = [0; 8];
    high.copy_from_slice(&id.0[..8]);
    low.copy_from_slice(&id.0[8..]);
    (u64::from_be_bytes(high), u64::from_be_bytes(low))
}

fn id_of(key: Key) -> MessageId {
    let mut id = [0; 16];
    id[..8].copy_from_slice(&key.0.to_be_bytes());
    id[8..].copy_from_slice(&key.1.to_be_bytes());
    MessageId(id)
}

/// One place in the deque: a copy, or the hole a removed one left.
#[derive(Debug, Clone)]
struct Slot<V> {
    key: Key,
    value: Option<V>,
}

/// Values by message id; see the module's doc for the layout.
#[derive(Debug, Clone)]
pub(super) struct Copies<V> {
    /// Sorted by key, strictly increasing; holes included.
    ordered: VecDeque<Slot<V>>,
    /// Holes in `ordered`.
    holes: usize,
    /// Ids that came below the deque's last key when no slot had them.
    stray: FxHashMap<MessageId, V>,
}

impl<V> Default for Copies<V> {
    fn default() -> Self {
        Copies {
            ordered: VecDeque::new(),
            holes: 0,
            stray: FxHashMap::default(),
        }
    }
}

impl<V> Copies<V> {
    /// How many ids have a value.
    pub fn len(&self) -> usize {
        self.ordered.len() - self.holes + self.stray.len()
    }

    /// The value of `id`.
    pub fn get(&self, id: &MessageId) -> Option<&V> {
        if let Some(value) = self.stray.get(id) {
            return Some(value);
        }
        let at = self.position(key_of(id)).ok()?;
        self.ordered[at].value.as_ref()
    }

    /// The value of `id`, to change.
    pub fn get_mut(&mut self, id: &MessageId) -> Option<&mut V> {
        if self.stray.contains_key(id) {
            return self.stray.get_mut(id);
        }
        let at = self.position(key_of(id)).ok()?;
        self.ordered[at].value.as_mut()
    }

    /// Whether `id` has a value.
    pub fn contains_key(&self, id: &MessageId) -> bool {
        self.get(id).is_some()
    }

    /// Sets the value of `id`; returns the one it replaced.
    pub fn insert(&mut self, id: MessageId, value: V) -> Option<V> {
        if let Some(old) = self.stray.get_mut(&id) {
            return Some(std::mem::replace(old, value));
        }
        let key = key_of(&id);
        if self.ordered.back().is_none_or(|last| last.key < key) {
            self.ordered.push_back(Slot {
                key,
                value: Some(value),
            });
            return None;
        }
        match self.position(key) {
            Ok(at) => {
                let old = self.ordered[at].value.replace(value);
                if old.is_none() {
                    self.holes -= 1;
                }
                old
            }
            Err(_) => self.stray.insert(id, value),
        }
    }

    /// Removes the value of `id` and returns it.
    pub fn remove(&mut self, id: &MessageId) -> Option<V> {
        if let Some(value) = self.stray.remove(id) {
            return Some(value);
        }
        let at = self.position(key_of(id)).ok()?;
        let value = self.ordered[at].value.take()?;
        self.holes += 1;
        self.drop_holes();
        Some(value)
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.ordered.clear();
        self.holes = 0;
        self.stray.clear();
    }

    /// Every id with its value, the deque's in id order, then the strays in no order.
    pub fn iter(&self) -> impl Iterator<Item = (MessageId, &V)> {
        let ordered = self
            .ordered
            .iter()
            .filter_map(|slot| Some((id_of(slot.key), slot.value.as_ref()?)));
        ordered.chain(self.stray.iter().map(|(id, value)| (*id, value)))
    }

    /// Every id that has a value.
    pub fn ids(&self) -> Vec<MessageId> {
        self.iter().map(|(id, _)| id).collect()
    }

    /// Where `key` is in the deque, or would go. An id past either end (a new one, or
    /// one long finished) is answered without a search.
    fn position(&self, key: Key) -> Result<usize, usize> {
        match (self.ordered.front(), self.ordered.back()) {
            (Some(first), _) if key < first.key => Err(0),
            (_, Some(last)) if key > last.key => Err(self.ordered.len()),
            _ => self.ordered.binary_search_by_key(&key, |slot| slot.key),
        }
    }

    /// Drops holes from the front, and sweeps them all out when they are most of the
    /// deque (each sweep follows at least as many removals as it moves copies).
    fn drop_holes(&mut self) {
        while self
            .ordered
            .front()
            .is_some_and(|slot| slot.value.is_none())
        {
            self.ordered.pop_front();
            self.holes -= 1;
        }
        if self.holes >= MIN_HOLES_TO_SWEEP && self.holes * 2 > self.ordered.len() {
            self.ordered.retain(|slot| slot.value.is_some());
            self.holes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn id(n: u64) -> MessageId {
        MessageId::from_u64(n)
    }

    #[test]
    fn ids_in_order_append_and_holes_leave_from_the_front() {
        let mut copies = Copies::default();
        for n in 0..10u64 {
            assert_eq!(copies.insert(id(n), n), None);
        }
        assert_eq!(copies.stray.len(), 0);
        assert_eq!(copies.remove(&id(0)), Some(0));
        assert_eq!(copies.remove(&id(5)), Some(5));
        assert_eq!(copies.ordered.len(), 9);
        assert_eq!(copies.holes, 1);
        assert_eq!(copies.len(), 8);
        assert_eq!(copies.get(&id(5)), None);
        assert_eq!(copies.get(&id(6)), Some(&6));
        // A hole refilled is a copy again; an id below the last with no slot is a stray.
        assert_eq!(copies.insert(id(5), 50), None);
        assert_eq!(copies.holes, 0);
        assert_eq!(copies.insert(id(0), 100), None);
        assert_eq!(copies.stray.len(), 1);
        assert_eq!(copies.get(&id(0)), Some(&100));
        assert_eq!(copies.insert(id(0), 101), Some(100));
        assert_eq!(copies.len(), 10);
    }

    #[test]
    fn holes_are_swept_when_they_are_most_of_the_deque() {
        let mut copies = Copies::default();
        let count = 4 * MIN_HOLES_TO_SWEEP as u64;
        for n in 0..count {
            copies.insert(id(n), n);
        }
        // Two of every three finished, the first kept: no hole reaches the front.
        for n in (0..count).filter(|n| n % 3 != 0) {
            copies.remove(&id(n));
        }
        assert!(copies.ordered.len() < count as usize);
        assert!(copies.holes * 2 <= copies.ordered.len());
        assert_eq!(copies.len(), count.div_ceil(3) as usize);
        assert!((0..count).all(|n| copies.contains_key(&id(n)) == (n % 3 == 0)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Change(u16, u32),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<u16>(), any::<u32>()).prop_map(|(n, v)| Op::Insert(n, v)),
            4 => any::<u16>().prop_map(Op::Remove),
            1 => (any::<u16>(), any::<u32>()).prop_map(|(n, v)| Op::Change(n, v)),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Whatever the order of ids, it answers as a map does.
        #[test]
        fn behaves_as_a_map(
            ops in proptest::collection::vec(op(), 0..3000),
            mostly_increasing in any::<bool>(),
        ) {
            let mut copies = Copies::default();
            let mut model = BTreeMap::new();
            let mut next = 0u64;
            for op in ops {
                let pick = |n: u16, next: &mut u64| {
                    if mostly_increasing && !n.is_multiple_of(8) {
                        *next += 1 + u64::from(n % 3);
                        id(*next)
                    } else {
                        id(u64::from(n % 512))
                    }
                };
                match op {
                    Op::Insert(n, v) => {
                        let key = pick(n, &mut next);
                        prop_assert_eq!(copies.insert(key, v), model.insert(key, v));
                    }
                    Op::Remove(n) => {
                        let key = id(u64::from(n % 512).max(next.saturating_sub(u64::from(n % 64))));
                        prop_assert_eq!(copies.remove(&key), model.remove(&key));
                    }
                    Op::Change(n, v) => {
                        let key = id(u64::from(n % 512));
                        if let Some(value) = copies.get_mut(&key) {
                            *value = v;
                        }
                        if let Some(value) = model.get_mut(&key) {
                            *value = v;
                        }
                    }
                    Op::Clear => {
                        copies.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(copies.len(), model.len());
            }
            let mut all: Vec<(MessageId, u32)> =
                copies.iter().map(|(id, v)| (id, *v)).collect();
            all.sort();
            let expected: Vec<(MessageId, u32)> = model.into_iter().collect();
            prop_assert_eq!(all, expected);
        }
    }
}
