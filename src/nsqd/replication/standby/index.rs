//! What memory knows of a standby store: per unfinished copy, where its record is and
//! the channels it is still unfinished on; no body. Both the load and the live
//! operations change it only through [`Index::apply`], record by record, so a reopened
//! store rebuilds exactly the state its records made.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;

use super::copies::Copies;
use super::record::{MessageRecord, Record};
use crate::protocol::MessageId;

/// Channel slots whose bits live in [`Copy::low`]; higher slots, rarer, live in
/// [`Index::wide`].
const LOW_SLOTS: u32 = 32;

/// One unfinished copy: 16 bytes, plus its id as the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Copy {
    /// Where its message record starts in the file.
    pub offset: u64,
    /// The record's length.
    pub len: u32,
    /// The unfinished channels among slots `0..32`, one bit each.
    low: u32,
}

/// The in-memory state of one store.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// The highest sequence number of any record.
    pub highest_seq: u64,
    /// Unfinished copies by message id. A copy with no channel bit is a topic-level copy.
    pub copies: Copies<Copy>,
    /// Bits of slots 32 and up, 32 slots a word, for the copies that have any.
    wide: HashMap<MessageId, Vec<u32>>,
    /// Copies waiting for the topic's first channel.
    topic_level: usize,
    /// Due times a REQ changed, for the copies that had one since their record.
    pub requeued: HashMap<MessageId, i64>,
    /// Channel names by slot; a slot is freed when its channel is deleted.
    slots: Vec<Option<String>>,
    /// Slots by channel name.
    slot_of: HashMap<String, u32>,
    /// The slots of the channels the topic has on the owner.
    existing: BTreeSet<u32>,
    /// Bytes of the message records of unfinished copies.
    pub live_bytes: u64,
}

impl Index {
    /// Changes the state as the record at `offset`, `len` bytes long, says.
    pub fn apply(&mut self, offset: u64, len: usize, record: &Record<'_>) {
        match record {
            Record::Message(message) => self.add_copy(offset, len, message),
            Record::ChannelCreated { seq, name } => {
                self.note_seq(*seq);
                self.create_channel(name);
            }
            Record::ChannelDeleted { seq, name } => {
                self.note_seq(*seq);
                self.delete_channel(name);
            }
            Record::Finished { channel, ids } => self.finish(channel, ids),
            Record::Requeued { id, due_ns } => {
                if self.copies.contains_key(id) {
                    self.requeued.insert(*id, *due_ns);
                }
            }
            Record::HighestSeq(seq) => self.note_seq(*seq),
        }
    }

    fn note_seq(&mut self, seq: u64) {
        self.highest_seq = self.highest_seq.max(seq);
    }

    fn add_copy(&mut self, offset: u64, len: usize, message: &MessageRecord<'_>) {
        self.note_seq(message.seq);
        if self.copies.contains_key(&message.id) {
            self.forget(&message.id);
        }
        let mut copy = Copy {
            offset,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            low: 0,
        };
        for name in &message.channels {
            let slot = self.slot_for(name);
            self.set_bit(&message.id, &mut copy, slot);
        }
        if self.is_empty(&message.id, &copy) {
            self.topic_level += 1;
        }
        self.live_bytes += u64::from(copy.len);
        self.copies.insert(message.id, copy);
    }

    fn create_channel(&mut self, name: &str) {
        let slot = self.slot_for(name);
        self.existing.insert(slot);
        if self.topic_level == 0 {
            return;
        }
        let waiting: Vec<MessageId> = self
            .copies
            .iter()
            .filter(|(id, copy)| self.is_empty(id, copy))
            .map(|(id, _)| id)
            .collect();
        let existing: Vec<u32> = self.existing.iter().copied().collect();
        for id in waiting {
            let Some(mut copy) = self.copies.get(&id).copied() else {
                continue;
            };
            for &slot in &existing {
                self.set_bit(&id, &mut copy, slot);
            }
            self.copies.insert(id, copy);
        }
        self.topic_level = 0;
    }

    fn delete_channel(&mut self, name: &str) {
        let Some(slot) = self.slot_of.remove(name) else {
            return;
        };
        self.existing.remove(&slot);
        if let Some(freed) = self.slots.get_mut(slot as usize) {
            *freed = None;
        }
        let ids = self.copies.ids();
        for id in ids {
            self.clear_bit(&id, slot);
        }
    }

    fn finish(&mut self, channel: &str, ids: &[MessageId]) {
        let Some(&slot) = self.slot_of.get(channel) else {
            return;
        };
        for id in ids {
            self.clear_bit(id, slot);
        }
    }

    /// Whether the copy of `id` is still unfinished on `channel`.
    pub fn is_unfinished_on(&self, id: &MessageId, channel: &str) -> bool {
        match (self.copies.get(id), self.slot_of.get(channel)) {
            (Some(copy), Some(&slot)) => self.has_bit(id, copy, slot),
            _ => false,
        }
    }

    /// Drops every copy (they were handed over), keeping the channels and the sequence.
    pub fn forget_copies(&mut self) {
        self.copies.clear();
        self.wide.clear();
        self.requeued.clear();
        self.topic_level = 0;
        self.live_bytes = 0;
    }

    /// The copy of `id` moved: its record is now at `offset`, `len` bytes long, with
    /// its due time in it.
    pub fn moved(&mut self, id: &MessageId, offset: u64, len: usize) {
        if let Some(copy) = self.copies.get_mut(id) {
            let len = u32::try_from(len).unwrap_or(u32::MAX);
            self.live_bytes = self.live_bytes.saturating_sub(u64::from(copy.len)) + u64::from(len);
            copy.offset = offset;
            copy.len = len;
        }
        self.requeued.remove(id);
    }

    /// The names of the channels the copy of `id` is unfinished on (none: a
    /// topic-level copy), in slot order.
    pub fn unfinished_channels(&self, id: &MessageId) -> Vec<&str> {
        let Some(copy) = self.copies.get(id) else {
            return Vec::new();
        };
        let low = (0..LOW_SLOTS).filter(|&slot| copy.low & (1 << slot) != 0);
        let wide = self.wide.get(id).into_iter().flat_map(|words| {
            words.iter().enumerate().flat_map(|(word, bits)| {
                (0..32u32)
                    .filter(move |bit| bits & (1 << bit) != 0)
                    .map(move |bit| LOW_SLOTS * (word as u32 + 1) + bit)
            })
        });
        low.chain(wide)
            .filter_map(|slot| self.slots.get(slot as usize)?.as_deref())
            .collect()
    }

    /// The names of the topic's channels, in slot order.
    pub fn channels(&self) -> Vec<&str> {
        self.existing
            .iter()
            .filter_map(|&slot| self.slots.get(slot as usize)?.as_deref())
            .collect()
    }

    /// The slot of `name`, given the lowest free one if it has none.
    fn slot_for(&mut self, name: &str) -> u32 {
        if let Some(&slot) = self.slot_of.get(name) {
            return slot;
        }
        let free = self.slots.iter().position(Option::is_none);
        let slot = free.unwrap_or(self.slots.len());
        if slot == self.slots.len() {
            self.slots.push(None);
        }
        self.slots[slot] = Some(name.to_string());
        let slot = u32::try_from(slot).unwrap_or(u32::MAX);
        self.slot_of.insert(name.to_string(), slot);
        slot
    }

    /// Drops the copy of `id`, if any, from every count.
    pub fn forget(&mut self, id: &MessageId) {
        let Some(copy) = self.copies.remove(id) else {
            return;
        };
        if copy.low == 0 && !self.wide.contains_key(id) {
            self.topic_level = self.topic_level.saturating_sub(1);
        }
        self.wide.remove(id);
        self.requeued.remove(id);
        self.live_bytes = self.live_bytes.saturating_sub(u64::from(copy.len));
    }

    fn is_empty(&self, id: &MessageId, copy: &Copy) -> bool {
        copy.low == 0 && !self.wide.contains_key(id)
    }

    fn has_bit(&self, id: &MessageId, copy: &Copy, slot: u32) -> bool {
        if slot < LOW_SLOTS {
            return copy.low & (1 << slot) != 0;
        }
        let (word, bit) = wide_position(slot);
        self.wide
            .get(id)
            .and_then(|words| words.get(word))
            .is_some_and(|bits| bits & (1 << bit) != 0)
    }

    fn set_bit(&mut self, id: &MessageId, copy: &mut Copy, slot: u32) {
        if slot < LOW_SLOTS {
            copy.low |= 1 << slot;
            return;
        }
        let (word, bit) = wide_position(slot);
        let words = self.wide.entry(*id).or_default();
        if words.len() <= word {
            words.resize(word + 1, 0);
        }
        words[word] |= 1 << bit;
    }

    /// Clears the channel `slot` of the copy of `id`; a copy left with no channel is
    /// finished and dropped (a topic-level copy, which had none, is left alone).
    fn clear_bit(&mut self, id: &MessageId, slot: u32) {
        let Some(copy) = self.copies.get(id).copied() else {
            return;
        };
        if !self.has_bit(id, &copy, slot) {
            return;
        }
        if slot < LOW_SLOTS {
            let low = copy.low & !(1 << slot);
            if let Some(copy) = self.copies.get_mut(id) {
                copy.low = low;
            }
        } else if let Some(words) = self.wide.get_mut(id) {
            let (word, bit) = wide_position(slot);
            if let Some(bits) = words.get_mut(word) {
                *bits &= !(1 << bit);
            }
            if words.iter().all(|&bits| bits == 0) {
                self.wide.remove(id);
            }
        }
        if let Some(copy) = self.copies.get(id).copied() {
            if self.is_empty(id, &copy) {
                self.copies.remove(id);
                self.requeued.remove(id);
                self.live_bytes = self.live_bytes.saturating_sub(u64::from(copy.len));
            }
        }
    }
}

/// Where a slot of 32 or more is in [`Index::wide`]: the word and the bit.
fn wide_position(slot: u32) -> (usize, u32) {
    let above = slot - LOW_SLOTS;
    ((above / 32) as usize, above % 32)
}
