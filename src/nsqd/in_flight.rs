//! The in-flight queue of a channel: messages sent to a client and not yet finished,
//! ordered by the deadline at which they time out.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

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
    /// Whether it was read from the channel's disk queue and is still held there (the
    /// queue's read position stays before it until it is released).
    pub held: bool,
    /// When it times out (ns).
    deadline_ns: i64,
    /// Push (or reschedule) order: breaks deadline ties and tells a live heap key from a
    /// stale one.
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

/// A deadline-order key: the entry in `slot` times out at `deadline_ns`, unless the
/// entry there no longer has sequence number `seq` (finished, requeued or touched since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    deadline_ns: i64,
    seq: u64,
    /// A full word (not `u32`): a key is written and read back at once by the heap's
    /// sift, and a partly written word would stall that read.
    slot: u64,
}

/// Messages in flight, by id and by deadline.
///
/// Go keeps an indexed binary heap of the messages. Here the entries live in a slab
/// (slots reused through a free list), an id map points to their slots, and a binary
/// heap of small `(deadline, seq, slot)` keys orders them. FIN and REQ only free the
/// slot and forget the id (O(1)); a heap key whose slot no longer holds the same `seq`
/// is stale and skipped when popped. Deliveries come with ever later deadlines, so a
/// push usually stops at the heap's bottom level (O(1) in practice). The heap is
/// rebuilt from the live keys once stale keys outnumber them, so memory stays
/// proportional to what is really in flight.
#[derive(Debug, Default)]
pub struct InFlightQueue {
    slots: Vec<Option<InFlight>>,
    /// Free slots, reused first freed first: FINs come roughly in delivery order, so
    /// deliveries and FINs both walk the slab sequentially (cache-friendly), instead of
    /// each delivery reusing the slot another core's FIN just touched.
    free: VecDeque<u32>,
    by_id: FxHashMap<MessageId, u32>,
    by_deadline: BinaryHeap<Reverse<Key>>,
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

    /// Records `message` as in flight to `client_id` until `deadline_ns`; `held` says
    /// whether it is held on disk (see [`InFlight::held`]).
    pub fn push(
        &mut self,
        message: Message,
        client_id: u64,
        now_ns: i64,
        deadline_ns: i64,
        held: bool,
    ) -> Result<(), InFlightError> {
        let std::collections::hash_map::Entry::Vacant(vacant) = self.by_id.entry(message.id) else {
            return Err(InFlightError::AlreadyInFlight);
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = InFlight {
            message,
            client_id,
            delivered_ns: now_ns,
            held,
            deadline_ns,
            seq,
        };
        let reusable = self.free.pop_front();
        let slot = match reusable.and_then(|slot| Some((slot, self.slots.get_mut(slot as usize)?)))
        {
            Some((slot, free)) => {
                *free = Some(entry);
                slot
            }
            None => {
                // More than u32::MAX messages in flight in one channel cannot happen
                // (RDY is capped per client and clients per channel are finite).
                let slot = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Some(entry));
                slot
            }
        };
        vacant.insert(slot);
        self.by_deadline.push(Reverse(Key {
            deadline_ns,
            seq,
            slot: u64::from(slot),
        }));
        self.compact_if_stale();
        Ok(())
    }

    /// Takes the message `id` out of flight if `client_id` owns it.
    pub fn remove(&mut self, id: &MessageId, client_id: u64) -> Result<InFlight, InFlightError> {
        let std::collections::hash_map::Entry::Occupied(occupied) = self.by_id.entry(*id) else {
            return Err(InFlightError::NotInFlight);
        };
        let slot = *occupied.get() as usize;
        let owned = self
            .slots
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|entry| entry.client_id == client_id);
        if !owned {
            return Err(InFlightError::NotOwner);
        }
        occupied.remove();
        self.free_slot(slot).ok_or(InFlightError::NotInFlight)
    }

    /// Moves the deadline of `id` (owned by `client_id`) to `deadline_fn(entry)`.
    pub fn reschedule(
        &mut self,
        id: &MessageId,
        client_id: u64,
        deadline_fn: impl FnOnce(&InFlight) -> i64,
    ) -> Result<(), InFlightError> {
        let slot = *self.by_id.get(id).ok_or(InFlightError::NotInFlight)?;
        let entry = self
            .slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .ok_or(InFlightError::NotInFlight)?;
        if entry.client_id != client_id {
            return Err(InFlightError::NotOwner);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        entry.deadline_ns = deadline_fn(entry);
        entry.seq = seq;
        self.by_deadline.push(Reverse(Key {
            deadline_ns: entry.deadline_ns,
            seq,
            slot: u64::from(slot),
        }));
        self.compact_if_stale();
        Ok(())
    }

    /// Removes and returns the earliest message whose deadline is `<= now_ns`.
    pub fn pop_expired(&mut self, now_ns: i64) -> Option<InFlight> {
        while let Some(&Reverse(key)) = self.by_deadline.peek() {
            if key.deadline_ns > now_ns {
                return None;
            }
            self.by_deadline.pop();
            if self.is_live(&key) {
                let entry = self.free_slot(key.slot as usize)?;
                self.by_id.remove(&entry.message.id);
                return Some(entry);
            }
        }
        None
    }

    /// Removes everything, in deadline order (used when a channel is emptied or closed).
    pub fn drain(&mut self) -> Vec<InFlight> {
        self.by_deadline.clear();
        self.by_id.clear();
        self.free.clear();
        let mut out: Vec<InFlight> = self.slots.drain(..).flatten().collect();
        out.sort_by_key(|entry| (entry.deadline_ns, entry.seq));
        out
    }

    fn is_live(&self, key: &Key) -> bool {
        self.slots
            .get(key.slot as usize)
            .and_then(Option::as_ref)
            .is_some_and(|entry| entry.seq == key.seq)
    }

    /// Empties `slot` for reuse, returning what it held.
    fn free_slot(&mut self, slot: usize) -> Option<InFlight> {
        let entry = self.slots.get_mut(slot)?.take()?;
        self.free.push_back(slot as u32);
        Some(entry)
    }

    fn compact_if_stale(&mut self) {
        if self.by_deadline.len() <= 2 * self.by_id.len() + STALE_SLACK {
            return;
        }
        let slots = &self.slots;
        self.by_deadline.retain(|Reverse(key)| {
            slots
                .get(key.slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|entry| entry.seq == key.seq)
        });
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
        q.push(msg(1), 7, 0, 300, false).unwrap();
        q.push(msg(2), 7, 0, 100, false).unwrap();
        q.push(msg(3), 7, 0, 200, false).unwrap();
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
        q.push(msg(1), 7, 0, 100, false).unwrap();
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
        q.push(msg(1), 7, 0, 100, false).unwrap();
        assert_eq!(
            q.push(msg(1), 7, 0, 100, false).unwrap_err(),
            InFlightError::AlreadyInFlight
        );
    }

    #[test]
    fn finished_messages_never_pop_and_stale_entries_are_compacted() {
        let mut q = InFlightQueue::default();
        for n in 0..10_000u64 {
            q.push(msg(n), 7, 0, 100 + n as i64, false).unwrap();
            q.remove(&MessageId::from_u64(n), 7).unwrap();
        }
        assert!(q.by_deadline.len() <= STALE_SLACK + 1);
        assert_eq!(q.slots.len(), 1, "the one slot is reused");
        q.push(msg(99_999), 7, 0, 5, false).unwrap();
        assert_eq!(
            q.pop_expired(i64::MAX).unwrap().message.id,
            MessageId::from_u64(99_999)
        );
        assert!(q.pop_expired(i64::MAX).is_none());
    }

    #[test]
    fn reschedule_moves_the_deadline() {
        let mut q = InFlightQueue::default();
        q.push(msg(1), 7, 0, 100, false).unwrap();
        q.reschedule(&MessageId::from_u64(1), 7, |e| e.delivered_ns + 500)
            .unwrap();
        assert!(q.pop_expired(400).is_none());
        assert!(q.pop_expired(500).is_some());
    }

    #[test]
    fn drain_returns_everything_in_deadline_order_and_empties() {
        let mut q = InFlightQueue::default();
        q.push(msg(1), 7, 0, 300, false).unwrap();
        q.push(msg(2), 8, 0, 100, false).unwrap();
        q.push(msg(3), 7, 0, 100, false).unwrap();
        q.remove(&MessageId::from_u64(1), 7).unwrap();
        q.push(msg(4), 7, 0, 50, false).unwrap();
        let ids: Vec<_> = q.drain().into_iter().map(|e| e.message.id).collect();
        assert_eq!(
            ids,
            [4, 2, 3].map(MessageId::from_u64),
            "by deadline, ties in push order"
        );
        assert!(q.is_empty());
        assert!(q.pop_expired(i64::MAX).is_none());
        q.push(msg(1), 7, 0, 10, false).unwrap();
        assert_eq!(q.len(), 1);
    }

    mod model {
        //! The queue against a plain list of entries, under random operations.
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Push { id: u64, client: u64, deadline: i64 },
            Remove { id: u64, client: u64 },
            Touch { id: u64, client: u64, deadline: i64 },
            PopExpired { now: i64 },
            Drain,
        }

        fn op() -> impl Strategy<Value = Op> {
            let id = 0..24u64;
            let client = 0..3u64;
            let time = 0..200i64;
            prop_oneof![
                4 => (id.clone(), client.clone(), time.clone())
                    .prop_map(|(id, client, deadline)| Op::Push { id, client, deadline }),
                3 => (id.clone(), client.clone()).prop_map(|(id, client)| Op::Remove { id, client }),
                2 => (id, client, time.clone())
                    .prop_map(|(id, client, deadline)| Op::Touch { id, client, deadline }),
                2 => time.prop_map(|now| Op::PopExpired { now }),
                1 => Just(Op::Drain),
            ]
        }

        /// (id, client, delivered, deadline, order) per entry.
        type Entry = (u64, u64, i64, i64, u64);

        fn earliest(model: &[Entry]) -> Option<usize> {
            (0..model.len()).min_by_key(|&i| (model[i].3, model[i].4))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            #[test]
            fn behaves_like_a_sorted_list(ops in proptest::collection::vec(op(), 1..400)) {
                let mut q = InFlightQueue::default();
                let mut model: Vec<Entry> = Vec::new();
                let mut order = 0u64;
                for (step, op) in ops.into_iter().enumerate() {
                    let now = step as i64;
                    match op {
                        Op::Push { id, client, deadline } => {
                            let got = q.push(msg(id), client, now, deadline, false);
                            if model.iter().any(|e| e.0 == id) {
                                prop_assert_eq!(got, Err(InFlightError::AlreadyInFlight));
                            } else {
                                prop_assert_eq!(got, Ok(()));
                                order += 1;
                                model.push((id, client, now, deadline, order));
                            }
                        }
                        Op::Remove { id, client } => {
                            let got = q.remove(&MessageId::from_u64(id), client);
                            match model.iter().position(|e| e.0 == id) {
                                None => prop_assert_eq!(got.unwrap_err(), InFlightError::NotInFlight),
                                Some(i) if model[i].1 != client => {
                                    prop_assert_eq!(got.unwrap_err(), InFlightError::NotOwner)
                                }
                                Some(i) => {
                                    let entry = got.unwrap();
                                    let want = model.remove(i);
                                    prop_assert_eq!(entry.message.id, MessageId::from_u64(want.0));
                                    prop_assert_eq!(entry.client_id, want.1);
                                    prop_assert_eq!(entry.delivered_ns, want.2);
                                }
                            }
                        }
                        Op::Touch { id, client, deadline } => {
                            let got = q.reschedule(&MessageId::from_u64(id), client, |e| {
                                assert_eq!(e.message.id, MessageId::from_u64(id));
                                deadline
                            });
                            match model.iter().position(|e| e.0 == id) {
                                None => prop_assert_eq!(got, Err(InFlightError::NotInFlight)),
                                Some(i) if model[i].1 != client => {
                                    prop_assert_eq!(got, Err(InFlightError::NotOwner))
                                }
                                Some(i) => {
                                    prop_assert_eq!(got, Ok(()));
                                    order += 1;
                                    model[i].3 = deadline;
                                    model[i].4 = order;
                                }
                            }
                        }
                        Op::PopExpired { now } => loop {
                            let want = earliest(&model).filter(|&i| model[i].3 <= now);
                            let got = q.pop_expired(now);
                            match want {
                                None => {
                                    prop_assert!(got.is_none());
                                    break;
                                }
                                Some(i) => {
                                    let want = model.remove(i);
                                    let got = got.expect("an expired entry");
                                    prop_assert_eq!(got.message.id, MessageId::from_u64(want.0));
                                    prop_assert_eq!(got.client_id, want.1);
                                }
                            }
                        },
                        Op::Drain => {
                            let got: Vec<MessageId> =
                                q.drain().into_iter().map(|e| e.message.id).collect();
                            model.sort_by_key(|e| (e.3, e.4));
                            let want: Vec<MessageId> =
                                model.drain(..).map(|e| MessageId::from_u64(e.0)).collect();
                            prop_assert_eq!(got, want);
                        }
                    }
                    prop_assert_eq!(q.len(), model.len());
                    prop_assert!(q.by_deadline.len() <= 2 * q.len() + STALE_SLACK + 1);
                }
            }
        }
    }
}
