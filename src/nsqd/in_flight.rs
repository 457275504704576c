//! The in-flight queue of a channel: messages sent to a client and not yet finished,
//! ordered by the deadline at which they time out.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::protocol::{Message, MessageId};

/// One message out with a client.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// The message as it was delivered (attempts already counted).
    pub message: Message,
    /// The client that owns it: only that client may FIN, REQ or TOUCH it.
    pub client_id: u64,
    /// When it was delivered (ns), which caps how far TOUCH may push the deadline.
    pub delivered_ns: i64,
    /// When it times out (ns).
    deadline_ns: i64,
    /// Tie-breaker so two messages with one deadline both fit in the ordered index.
    seq: u64,
}

/// Why an in-flight operation failed; the texts are Go's, sent after `FIN <id> failed `.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InFlightError {
    /// No message with this id is in flight.
    #[error("ID not in flight")]
    NotInFlight,
    /// The message is in flight to another client.
    #[error("client does not own message")]
    NotOwner,
    /// A message with this id is already in flight.
    #[error("ID already in flight")]
    AlreadyInFlight,
}

/// Messages in flight, by id and by deadline.
///
/// Go keeps an indexed binary heap. Here a plain binary heap of `(deadline, seq)` keys
/// is paired with the map: FIN and REQ only remove from the map (O(1)), and a heap
/// entry whose `seq` no longer matches its map entry is stale and skipped when popped.
/// The heap is rebuilt from the map once stale entries outnumber live ones, so memory
/// stays proportional to what is really in flight.
#[derive(Debug, Default)]
pub struct InFlightQueue {
    by_id: FxHashMap<MessageId, InFlight>,
    by_deadline: BinaryHeap<Reverse<(i64, u64, MessageId)>>,
    next_seq: u64,
}

/// Stale heap entries tolerated beyond the live ones before a rebuild.
const STALE_SLACK: usize = 1024;

impl InFlightQueue {
    /// Number of messages in flight.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Records `message` as in flight to `client_id` until `deadline_ns`.
    pub fn push(
        &mut self,
        message: Message,
        client_id: u64,
        now_ns: i64,
        deadline_ns: i64,
    ) -> Result<(), InFlightError> {
        if self.by_id.contains_key(&message.id) {
            return Err(InFlightError::AlreadyInFlight);
        }
        let seq = self.take_seq();
        self.by_deadline
            .push(Reverse((deadline_ns, seq, message.id)));
        self.by_id.insert(
            message.id,
            InFlight {
                message,
                client_id,
                delivered_ns: now_ns,
                deadline_ns,
                seq,
            },
        );
        self.compact_if_stale();
        Ok(())
    }

    /// Takes the message `id` out of flight if `client_id` owns it.
    pub fn remove(&mut self, id: &MessageId, client_id: u64) -> Result<InFlight, InFlightError> {
        let entry = self.by_id.get(id).ok_or(InFlightError::NotInFlight)?;
        if entry.client_id != client_id {
            return Err(InFlightError::NotOwner);
        }
        self.by_id.remove(id).ok_or(InFlightError::NotInFlight)
    }

    /// Moves the deadline of `id` (owned by `client_id`) to `deadline_fn(entry)`.
    pub fn reschedule(
        &mut self,
        id: &MessageId,
        client_id: u64,
        deadline_fn: impl FnOnce(&InFlight) -> i64,
    ) -> Result<(), InFlightError> {
        let seq = self.take_seq();
        let entry = self.by_id.get_mut(id).ok_or(InFlightError::NotInFlight)?;
        if entry.client_id != client_id {
            return Err(InFlightError::NotOwner);
        }
        entry.deadline_ns = deadline_fn(entry);
        entry.seq = seq;
        self.by_deadline
            .push(Reverse((entry.deadline_ns, seq, *id)));
        self.compact_if_stale();
        Ok(())
    }

    /// Removes and returns the earliest message whose deadline is `<= now_ns`.
    pub fn pop_expired(&mut self, now_ns: i64) -> Option<InFlight> {
        while let Some(Reverse((deadline, seq, id))) = self.by_deadline.peek().copied() {
            if deadline > now_ns {
                return None;
            }
            self.by_deadline.pop();
            if self.by_id.get(&id).is_some_and(|entry| entry.seq == seq) {
                return self.by_id.remove(&id);
            }
        }
        None
    }

    /// Removes everything, in deadline order (used when a channel is emptied or closed).
    pub fn drain(&mut self) -> Vec<InFlight> {
        self.by_deadline.clear();
        let mut out: Vec<InFlight> = self.by_id.drain().map(|(_, entry)| entry).collect();
        out.sort_by_key(|entry| (entry.deadline_ns, entry.seq));
        out
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn compact_if_stale(&mut self) {
        if self.by_deadline.len() <= 2 * self.by_id.len() + STALE_SLACK {
            return;
        }
        self.by_deadline = self
            .by_id
            .iter()
            .map(|(id, entry)| Reverse((entry.deadline_ns, entry.seq, *id)))
            .collect();
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
    fn pops_in_deadline_order_only_when_due() {
        let mut q = InFlightQueue::default();
        q.push(msg(1), 7, 0, 300).unwrap();
        q.push(msg(2), 7, 0, 100).unwrap();
        q.push(msg(3), 7, 0, 200).unwrap();
        assert!(q.pop_expired(50).is_none());
        assert_eq!(
            q.pop_expired(250).unwrap().message.id,
            MessageId::from_u64(2)
        );
        assert_eq!(
            q.pop_expired(250).unwrap().message.id,
            MessageId::from_u64(3)
        );
        assert!(q.pop_expired(250).is_none());
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn only_the_owner_may_remove() {
        let mut q = InFlightQueue::default();
        q.push(msg(1), 7, 0, 100).unwrap();
        assert_eq!(
            q.remove(&MessageId::from_u64(1), 8).unwrap_err(),
            InFlightError::NotOwner
        );
        assert_eq!(
            q.remove(&MessageId::from_u64(9), 7).unwrap_err(),
            InFlightError::NotInFlight
        );
        assert!(q.remove(&MessageId::from_u64(1), 7).is_ok());
        assert!(q.is_empty());
        assert!(q.pop_expired(i64::MAX).is_none());
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let mut q = InFlightQueue::default();
        q.push(msg(1), 7, 0, 100).unwrap();
        assert_eq!(
            q.push(msg(1), 7, 0, 100).unwrap_err(),
            InFlightError::AlreadyInFlight
        );
    }

    #[test]
    fn finished_messages_never_pop_and_stale_entries_are_compacted() {
        let mut q = InFlightQueue::default();
        for n in 0..10_000u64 {
            q.push(msg(n), 7, 0, 100 + n as i64).unwrap();
            q.remove(&MessageId::from_u64(n), 7).unwrap();
        }
        assert!(q.by_deadline.len() <= STALE_SLACK + 1);
        q.push(msg(99_999), 7, 0, 5).unwrap();
        assert_eq!(
            q.pop_expired(i64::MAX).unwrap().message.id,
            MessageId::from_u64(99_999)
        );
        assert!(q.pop_expired(i64::MAX).is_none());
    }

    #[test]
    fn reschedule_moves_the_deadline() {
        let mut q = InFlightQueue::default();
        q.push(msg(1), 7, 0, 100).unwrap();
        q.reschedule(&MessageId::from_u64(1), 7, |e| e.delivered_ns + 500)
            .unwrap();
        assert!(q.pop_expired(400).is_none());
        assert!(q.pop_expired(500).is_some());
    }
}
