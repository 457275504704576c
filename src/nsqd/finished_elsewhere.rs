//! Messages another nsqd of the replica set finished on a channel: after a failover both
//! the owner and the peer that took its messages over may hold a copy, and each drops
//! the ones the other finished instead of delivering them again (`docs/replication.md`,
//! "Reconciliation").

use std::collections::VecDeque;

use rustc_hash::FxHashSet;

use crate::protocol::MessageId;

/// Ids remembered per channel; past this the oldest are forgotten (their copy, if it
/// ever comes up, is delivered: a duplicate, never a loss).
pub const REMEMBERED_MAX: usize = 1 << 20;

/// The ids finished elsewhere that have not come up here yet.
#[derive(Debug, Default)]
pub struct FinishedElsewhere {
    ids: FxHashSet<MessageId>,
    /// Every id added, oldest first, including some already taken (they are skipped
    /// when their turn to be forgotten comes): bounds `ids`.
    order: VecDeque<MessageId>,
}

impl FinishedElsewhere {
    /// Remembers `ids`, forgetting the oldest beyond [`REMEMBERED_MAX`].
    pub fn add(&mut self, ids: impl IntoIterator<Item = MessageId>) {
        for id in ids {
            if self.ids.insert(id) {
                self.order.push_back(id);
            }
        }
        while self.order.len() > REMEMBERED_MAX {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    /// Whether `id`, coming up for delivery, was finished elsewhere (and forgets it).
    /// One emptiness check when nothing was.
    pub fn take(&mut self, id: &MessageId) -> bool {
        !self.ids.is_empty() && self.ids.remove(id)
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_taken_once_and_the_oldest_are_forgotten_past_the_bound() {
        let mut finished = FinishedElsewhere::default();
        assert!(!finished.take(&MessageId::from_u64(1)));
        finished.add([MessageId::from_u64(1), MessageId::from_u64(2)]);
        assert!(finished.take(&MessageId::from_u64(1)));
        assert!(!finished.take(&MessageId::from_u64(1)));
        assert_eq!(finished.len(), 1);
        finished.add((10..10 + REMEMBERED_MAX as u64).map(MessageId::from_u64));
        assert_eq!(finished.len(), REMEMBERED_MAX);
        assert!(
            !finished.take(&MessageId::from_u64(2)),
            "the oldest went first"
        );
        assert!(finished.take(&MessageId::from_u64(10 + REMEMBERED_MAX as u64 - 1)));
    }
}
