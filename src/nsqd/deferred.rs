//! The deferred queue of a channel: messages waiting for their time (DPUB, REQ with a
//! delay), ordered by when they become due.

use std::collections::BTreeMap;

use rustc_hash::FxHashSet;

use crate::protocol::{Message, MessageId};

/// A push of an id that is already waiting; Go's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ID already deferred")]
pub struct AlreadyDeferred;

/// What a waiting message costs in memory besides its body: the message, its tree and
/// set entries (measured roughly; it only has to keep the budget honest).
pub const ENTRY_OVERHEAD_BYTES: usize = 160;

/// Deferred messages by due time.
#[derive(Debug, Default)]
pub struct DeferredQueue {
    by_due: BTreeMap<(i64, u64), Message>,
    ids: FxHashSet<MessageId>,
    next_seq: u64,
    /// Bodies plus [`ENTRY_OVERHEAD_BYTES`] per message.
    bytes: usize,
}

/// What `message` counts against a deferred memory budget.
pub fn memory_cost(message: &Message) -> usize {
    message.body.len() + ENTRY_OVERHEAD_BYTES
}

impl DeferredQueue {
    /// Number of waiting messages.
    pub fn len(&self) -> usize {
        self.by_due.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.by_due.is_empty()
    }

    /// The memory the waiting messages cost (see [`memory_cost`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `message` until `due_ns`.
    pub fn push(&mut self, message: Message, due_ns: i64) -> Result<(), AlreadyDeferred> {
        if !self.ids.insert(message.id) {
            return Err(AlreadyDeferred);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += memory_cost(&message);
        self.by_due.insert((due_ns, seq), message);
        Ok(())
    }

    /// Removes and returns the earliest message due at or before `now_ns`.
    pub fn pop_due(&mut self, now_ns: i64) -> Option<Message> {
        let (&(due, _), _) = self.by_due.first_key_value()?;
        if due > now_ns {
            return None;
        }
        let (_, message) = self.by_due.pop_first()?;
        self.ids.remove(&message.id);
        self.bytes = self.bytes.saturating_sub(memory_cost(&message));
        Some(message)
    }

    /// Whether message `id` waits here.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.ids.contains(id)
    }

    /// Removes everything, earliest first.
    pub fn drain(&mut self) -> Vec<Message> {
        self.ids.clear();
        self.bytes = 0;
        std::mem::take(&mut self.by_due).into_values().collect()
    }

    /// Removes everything, earliest first, each with its due time.
    pub fn drain_with_due(&mut self) -> Vec<(Message, i64)> {
        self.ids.clear();
        self.bytes = 0;
        std::mem::take(&mut self.by_due)
            .into_iter()
            .map(|((due, _), message)| (message, due))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(n: u64) -> Message {
        Message::new(MessageId::from_u64(n), 0, Bytes::from_static(b"x"))
    }

    #[test]
    fn releases_only_when_due_and_in_order() {
        let mut q = DeferredQueue::default();
        q.push(msg(1), 200).unwrap();
        q.push(msg(2), 100).unwrap();
        assert!(q.pop_due(99).is_none());
        assert_eq!(q.pop_due(150).unwrap().id, MessageId::from_u64(2));
        assert!(q.pop_due(150).is_none());
        assert_eq!(q.pop_due(200).unwrap().id, MessageId::from_u64(1));
        assert!(q.is_empty());
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let mut q = DeferredQueue::default();
        q.push(msg(1), 200).unwrap();
        assert_eq!(q.push(msg(1), 300), Err(AlreadyDeferred));
        assert_eq!(q.len(), 1);
    }
}
