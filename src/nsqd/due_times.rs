//! A compact map from message id to due time, for the due times of deferred messages
//! whose bodies wait in a disk queue (`due_on_disk` of channels and topics).
//!
//! After a restart such a map may hold tens of millions of entries, so its size per entry
//! is what counts. A `FxHashMap<MessageId, i64>` costs about 40 bytes per entry (24 bytes
//! per bucket, a control byte, and buckets a power of two at most 7/8 full). Here:
//!
//! - Ids nsqd makes (ours and Go's) are 16 lowercase hex digits of a `u64`, and are kept
//!   as that `u64`. Any other id (a client may send any 16 bytes) goes to a small
//!   fallback map keyed by the whole id.
//! - Most entries live in one `Vec<(u64, i64)>`, 16 bytes each, built in bulk when the
//!   journal is loaded. It is sorted by a scrambled id (an invertible mix of its bits, so
//!   the id is not stored twice), which spreads the entries evenly: a directory of where
//!   each run of entries sharing the top bits starts (4 bytes per 16 entries or so)
//!   leads a lookup to a handful of neighbouring entries. With 10 million entries a
//!   lookup that waits on the one before takes as long as in a `FxHashMap` (about
//!   650 ns on the development VM, a cache and TLB miss); a binary search of an array
//!   sorted by id took several times that for ids in random order, missing at every
//!   step.
//! - A removal marks the entry in a bit set (one bit per entry); once half the entries
//!   are marked they are dropped in one pass.
//! - Entries of ids that are not in the sorted part go to a hash map first, and are
//!   merged into the sorted part (in place, one pass) once that map holds more than an
//!   eighth of it. A long run with millions of deferred messages on disk (nsqd with
//!   `--mem-queue-size=0`) thus costs about 20 bytes per entry instead of 40.
//!
//! The number of entries is exact: it feeds `/stats` `deferred_count`.

use std::collections::hash_map;

use rustc_hash::FxHashMap;

use crate::protocol::MessageId;

/// The fewest recent entries merged into the sorted part at once: below this the hash
/// map costs little, and merging into a large sorted part is not worth it.
const MERGE_MIN: usize = 1 << 16;
/// Recent entries are merged once they outnumber the sorted part divided by this.
const MERGE_FRACTION: usize = 8;
/// About this many entries of the sorted part per directory bucket (a power of two).
const ENTRIES_PER_BUCKET: usize = 16;

/// Due times (ns since the Unix epoch) by message id, in about 16 bytes per entry.
///
/// Exists so that the due times of millions of deferred messages waiting in a disk queue
/// fit in memory (see the module documentation for the layout). Behaves like a
/// `HashMap<MessageId, i64>`: iteration order is unspecified.
#[derive(Clone)]
pub struct DueTimes {
    /// Entries of hex ids, by [`scramble`]d id, sorted, each id once.
    sorted: Vec<(u64, i64)>,
    /// Where the entries of `sorted` whose scrambled id has `b` as its top
    /// `directory_bits` bits start: at `directory[b]`, up to `directory[b + 1]`. Empty
    /// when `sorted` is too long for `u32` positions (searched whole then).
    directory: Vec<u32>,
    /// How many top bits of a scrambled id pick its directory bucket.
    directory_bits: u32,
    /// One bit per entry of `sorted`: set when it was removed.
    removed: Vec<u64>,
    /// How many bits of `removed` are set.
    removed_count: usize,
    /// Entries of hex ids that are not in `sorted`, by scrambled id.
    recent: FxHashMap<u64, i64>,
    /// Entries of ids that are not 16 lowercase hex digits.
    other: FxHashMap<MessageId, i64>,
    /// The fewest recent entries merged at once (a field so tests can make it small).
    merge_min: usize,
}

impl Default for DueTimes {
    fn default() -> Self {
        DueTimes {
            sorted: Vec::new(),
            directory: Vec::new(),
            directory_bits: 0,
            removed: Vec::new(),
            removed_count: 0,
            recent: FxHashMap::default(),
            other: FxHashMap::default(),
            merge_min: MERGE_MIN,
        }
    }
}

/// The `u64` whose [`MessageId::from_u64`] is `id`, if any: `id` is 16 lowercase hex
/// digits.
fn key_of(id: &MessageId) -> Option<u64> {
    let mut key = 0u64;
    for &byte in &id.0 {
        let nibble = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        key = key << 4 | u64::from(nibble);
    }
    Some(key)
}

/// The scrambled id of `id` (see [`scramble`]), if it is 16 lowercase hex digits.
fn hashed(id: &MessageId) -> Option<u64> {
    key_of(id).map(scramble)
}

const MIX_1: u64 = 0xff51_afd7_ed55_8ccd;
const MIX_2: u64 = 0xc4ce_b9fe_1a85_ec53;
const UNMIX_1: u64 = inverse(MIX_1);
const UNMIX_2: u64 = inverse(MIX_2);

/// The inverse of an odd number modulo 2^64 (Newton's iteration: each step doubles the
/// correct low bits, and `odd` is its own inverse modulo 8).
const fn inverse(odd: u64) -> u64 {
    let mut inverse = odd;
    let mut step = 0;
    while step < 5 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        step += 1;
    }
    inverse
}

/// Mixes the bits of an id (murmur3's finalizer) so that ids made one after another,
/// which differ in their low bits, spread evenly over the whole range. Invertible
/// ([`unscramble`]), so the sorted part stores it instead of the id.
fn scramble(key: u64) -> u64 {
    let mut h = key;
    h ^= h >> 33;
    h = h.wrapping_mul(MIX_1);
    h ^= h >> 33;
    h = h.wrapping_mul(MIX_2);
    h ^ (h >> 33)
}

/// The id [`scramble`] made `h` from. (A shift right by 33 or more, xored in, undoes
/// itself.)
fn unscramble(h: u64) -> u64 {
    let mut key = h ^ (h >> 33);
    key = key.wrapping_mul(UNMIX_2);
    key ^= key >> 33;
    key = key.wrapping_mul(UNMIX_1);
    key ^ (key >> 33)
}

/// The directory bucket of scrambled id `h`: its top `bits` bits.
fn bucket_of(h: u64, bits: u32) -> usize {
    h.checked_shr(64 - bits).unwrap_or(0) as usize
}

fn is_marked(bits: &[u64], index: usize) -> bool {
    bits.get(index / 64)
        .is_some_and(|word| word & (1 << (index % 64)) != 0)
}

fn bit_words(len: usize) -> usize {
    len.div_ceil(64)
}

impl DueTimes {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A bulk builder for `capacity` entries (an estimate), for loading a journal.
    pub fn builder(capacity: usize) -> Builder {
        Builder {
            keyed: Vec::with_capacity(capacity),
            other: FxHashMap::default(),
        }
    }

    /// How many entries the map holds, exactly.
    pub fn len(&self) -> usize {
        self.sorted.len() - self.removed_count + self.recent.len() + self.other.len()
    }

    /// Whether the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The due time of `id`.
    pub fn get(&self, id: &MessageId) -> Option<&i64> {
        let Some(key) = hashed(id) else {
            return self.other.get(id);
        };
        if let Some(due) = self.recent.get(&key) {
            return Some(due);
        }
        let index = self.live_slot(key)?;
        self.sorted.get(index).map(|(_, due)| due)
    }

    /// Sets the due time of `id`, returning the one it replaced.
    pub fn insert(&mut self, id: MessageId, due_ns: i64) -> Option<i64> {
        let Some(key) = hashed(&id) else {
            return self.other.insert(id, due_ns);
        };
        if let Some(index) = self.slot(key) {
            let was_removed = is_marked(&self.removed, index);
            let entry = &mut self.sorted[index];
            let old = std::mem::replace(&mut entry.1, due_ns);
            if !was_removed {
                return Some(old);
            }
            self.removed[index / 64] &= !(1 << (index % 64));
            self.removed_count -= 1;
            return None;
        }
        let old = self.recent.insert(key, due_ns);
        if old.is_none()
            && self.recent.len() > self.merge_min.max(self.sorted.len() / MERGE_FRACTION)
        {
            self.merge_recent();
        }
        old
    }

    /// Removes `id`, returning its due time.
    pub fn remove(&mut self, id: &MessageId) -> Option<i64> {
        let Some(key) = hashed(id) else {
            return self.other.remove(id);
        };
        if !self.recent.is_empty() {
            if let Some(due) = self.recent.remove(&key) {
                return Some(due);
            }
        }
        let index = self.live_slot(key)?;
        let due = self.sorted[index].1;
        self.removed[index / 64] |= 1 << (index % 64);
        self.removed_count += 1;
        if self.removed_count * 2 > self.sorted.len() {
            self.drop_removed();
        }
        Some(due)
    }

    /// Keeps only the entries for which `keep` returns true; `keep` may change the due
    /// time of those it keeps.
    pub fn retain(&mut self, mut keep: impl FnMut(&MessageId, &mut i64) -> bool) {
        let mut kept = 0;
        for read in 0..self.sorted.len() {
            if is_marked(&self.removed, read) {
                continue;
            }
            let (key, mut due) = self.sorted[read];
            if keep(&MessageId::from_u64(unscramble(key)), &mut due) {
                self.sorted[kept] = (key, due);
                kept += 1;
            }
        }
        self.sorted.truncate(kept);
        self.rearranged();
        self.recent
            .retain(|key, due| keep(&MessageId::from_u64(unscramble(*key)), due));
        self.other.retain(|id, due| keep(id, due));
    }

    /// Removes every entry and frees the memory.
    pub fn clear(&mut self) {
        *self = DueTimes {
            merge_min: self.merge_min,
            ..DueTimes::default()
        };
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (MessageId, i64)> + '_ {
        self.sorted
            .iter()
            .enumerate()
            .filter(|(index, _)| !is_marked(&self.removed, *index))
            .map(|(_, (key, due))| (MessageId::from_u64(unscramble(*key)), *due))
            .chain(
                self.recent
                    .iter()
                    .map(|(key, due)| (MessageId::from_u64(unscramble(*key)), *due)),
            )
            .chain(self.other.iter().map(|(id, due)| (*id, *due)))
    }

    /// The earliest due time (a pass over every entry).
    pub fn min_due(&self) -> Option<i64> {
        self.iter().map(|(_, due)| due).min()
    }

    /// Heap bytes held (capacities, not lengths), for tests and benchmarks that weigh
    /// the layout. Hash maps count a bucket and a control byte per slot.
    pub fn allocated_bytes(&self) -> usize {
        fn map_bytes<K, V>(capacity: usize) -> usize {
            if capacity == 0 {
                return 0;
            }
            // hashbrown: buckets are a power of two, at most 7/8 full.
            let buckets = (capacity * 8 / 7).next_power_of_two();
            buckets * (std::mem::size_of::<(K, V)>() + 1)
        }
        self.sorted.capacity() * std::mem::size_of::<(u64, i64)>()
            + self.directory.capacity() * 4
            + self.removed.capacity() * 8
            + map_bytes::<u64, i64>(self.recent.capacity())
            + map_bytes::<MessageId, i64>(self.other.capacity())
    }

    /// Where scrambled id `key` is in `sorted`, removed or not.
    fn slot(&self, key: u64) -> Option<usize> {
        let (start, end) = if self.directory.is_empty() {
            (0, self.sorted.len())
        } else {
            let bucket = bucket_of(key, self.directory_bits);
            let start = *self.directory.get(bucket)? as usize;
            (start, *self.directory.get(bucket + 1)? as usize)
        };
        let found = self
            .sorted
            .get(start..end)?
            .binary_search_by_key(&key, |(k, _)| *k);
        found.ok().map(|offset| start + offset)
    }

    /// Where `key` is in `sorted`, if not removed.
    fn live_slot(&self, key: u64) -> Option<usize> {
        self.slot(key)
            .filter(|index| !is_marked(&self.removed, *index))
    }

    /// Drops the removed entries of `sorted`, in one pass.
    fn drop_removed(&mut self) {
        if self.removed_count == 0 {
            return;
        }
        let mut kept = 0;
        for read in 0..self.sorted.len() {
            if !is_marked(&self.removed, read) {
                self.sorted[kept] = self.sorted[read];
                kept += 1;
            }
        }
        self.sorted.truncate(kept);
        self.rearranged();
    }

    /// After `sorted` was built or its entries moved: gives back memory it no longer
    /// needs, clears the bit set (sized to it) and builds the directory again.
    fn rearranged(&mut self) {
        if self.sorted.len() < self.sorted.capacity() / 2 {
            self.sorted.shrink_to_fit();
        }
        self.removed = vec![0; bit_words(self.sorted.len())];
        self.removed_count = 0;
        self.directory = Vec::new();
        let Ok(len) = u32::try_from(self.sorted.len()) else {
            return;
        };
        let buckets = (self.sorted.len() / ENTRIES_PER_BUCKET)
            .max(1)
            .next_power_of_two();
        self.directory_bits = buckets.trailing_zeros();
        self.directory.reserve_exact(buckets + 1);
        let mut position = 0u32;
        for bucket in 0..buckets {
            while (position < len)
                && bucket_of(self.sorted[position as usize].0, self.directory_bits) < bucket
            {
                position += 1;
            }
            self.directory.push(position);
        }
        self.directory.push(len);
    }

    /// Moves the recent entries into `sorted`: sorted on their own, then merged from the
    /// back so nothing but the grown `sorted` is allocated.
    fn merge_recent(&mut self) {
        self.drop_removed();
        let mut recent: Vec<(u64, i64)> = std::mem::take(&mut self.recent).into_iter().collect();
        recent.sort_unstable_by_key(|(key, _)| *key);
        let old_len = self.sorted.len();
        self.sorted.reserve_exact(recent.len());
        self.sorted.resize(old_len + recent.len(), (0, 0));
        let (mut from_old, mut write) = (old_len, self.sorted.len());
        while let Some(&newest) = recent.last() {
            write -= 1;
            match from_old.checked_sub(1) {
                Some(last_old) if self.sorted[last_old].0 > newest.0 => {
                    self.sorted[write] = self.sorted[last_old];
                    from_old = last_old;
                }
                _ => {
                    self.sorted[write] = newest;
                    recent.pop();
                }
            }
        }
        self.rearranged();
    }

    #[cfg(test)]
    fn with_merge_min(merge_min: usize) -> Self {
        DueTimes {
            merge_min,
            ..DueTimes::default()
        }
    }
}

impl std::fmt::Debug for DueTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Equal when they hold the same entries, however laid out.
impl PartialEq for DueTimes {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(id, due)| other.get(&id) == Some(&due))
    }
}

impl Eq for DueTimes {}

/// Inserts each entry in turn (a later one replaces an earlier one of the same id).
impl Extend<(MessageId, i64)> for DueTimes {
    fn extend<I: IntoIterator<Item = (MessageId, i64)>>(&mut self, entries: I) {
        for (id, due) in entries {
            self.insert(id, due);
        }
    }
}

impl FromIterator<(MessageId, i64)> for DueTimes {
    fn from_iter<I: IntoIterator<Item = (MessageId, i64)>>(entries: I) -> Self {
        let mut map = DueTimes::default();
        map.extend(entries);
        map
    }
}

/// The entries of a [`DueTimes`], taken out of it, in no particular order.
pub struct IntoIter {
    sorted: std::iter::Enumerate<std::vec::IntoIter<(u64, i64)>>,
    removed: Vec<u64>,
    recent: hash_map::IntoIter<u64, i64>,
    other: hash_map::IntoIter<MessageId, i64>,
}

impl Iterator for IntoIter {
    type Item = (MessageId, i64);

    fn next(&mut self) -> Option<Self::Item> {
        for (index, (key, due)) in self.sorted.by_ref() {
            if !is_marked(&self.removed, index) {
                return Some((MessageId::from_u64(unscramble(key)), due));
            }
        }
        if let Some((key, due)) = self.recent.next() {
            return Some((MessageId::from_u64(unscramble(key)), due));
        }
        self.other.next()
    }
}

impl IntoIterator for DueTimes {
    type Item = (MessageId, i64);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter {
            sorted: self.sorted.into_iter().enumerate(),
            removed: self.removed,
            recent: self.recent.into_iter(),
            other: self.other.into_iter(),
        }
    }
}

/// Builds a [`DueTimes`] from journal records in one sort, without a hash map.
///
/// Exists so that loading millions of due times costs 16 bytes per record while it runs,
/// and the result is the compact sorted layout directly. Of several records of one id
/// the latest due time wins: the journal appends an id's due times in non-decreasing
/// order (a REQ comes after the delivery, which comes after the earlier due time), so
/// that is its last record, and should a wall clock that went back break the order, the
/// message is delivered late, never early.
#[derive(Debug)]
pub struct Builder {
    keyed: Vec<(u64, i64)>,
    other: FxHashMap<MessageId, i64>,
}

impl Builder {
    /// Adds a record: `id` is due at `due_ns`, unless it has a later due time already.
    pub fn push(&mut self, id: MessageId, due_ns: i64) {
        match hashed(&id) {
            Some(key) => self.keyed.push((key, due_ns)),
            None => {
                let due = self.other.entry(id).or_insert(due_ns);
                *due = (*due).max(due_ns);
            }
        }
    }

    /// The map: sorted in place, each id once with its latest due time.
    pub fn finish(self) -> DueTimes {
        let Builder { mut keyed, other } = self;
        // By scrambled id, then due time: the last of each id's run is its latest.
        keyed.sort_unstable();
        keyed.dedup_by(|later, kept| {
            if later.0 != kept.0 {
                return false;
            }
            kept.1 = later.1;
            true
        });
        if keyed.len() < keyed.capacity() / 4 * 3 {
            keyed.shrink_to_fit();
        }
        let mut map = DueTimes {
            sorted: keyed,
            other,
            ..DueTimes::default()
        };
        map.rearranged();
        map
    }
}

#[cfg(test)]
mod tests;
