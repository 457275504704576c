//! `single_takeover`: the copies of a lost owner's messages are taken over by one peer,
//! not by every peer that holds them. The lowest-ranked live peer takes over after
//! `--replica-failover-timeout`, says so with `ADOPTED`, and the others keep their
//! copies standby for it (docs/replication.md, "Failover").
//!
//! Judged only where that is promised: a run whose only faults are crashes and losses of
//! nsqds (a partition or a slow link may make two peers each believe they rank first,
//! and at-least-once allows the duplicates). A delivery by an nsqd that went down after it
//! is not counted: a peer lost after a takeover hands it on. An owner that came back blank
//! (or crashed with memory queues on) is no exception: the peer ranked first takes its
//! earlier run's copies over at once, the others a timeout later, only what it did not
//! name.
//!
//! A message counts as taken over by an nsqd when that nsqd delivered it and another
//! replicated nsqd minted it (the node id in its message id).

use std::collections::{BTreeMap, BTreeSet};

use nsq::protocol::MessageId;

use super::view::{show, View};
use super::{CheckContext, Invariant, Violation};

/// Every message of a lost owner delivered by two or more peers that never went down.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    if view
        .faults
        .iter()
        .any(|fault| !fault.starts_with("graceful stop"))
    {
        return Vec::new();
    }
    let minters: BTreeMap<u16, &str> = ctx
        .nsqds
        .iter()
        .filter(|(_, facts)| facts.replicated())
        .map(|(name, facts)| (facts.node_id, name.as_str()))
        .collect();
    let mut takers: BTreeMap<MessageId, (BTreeSet<&str>, u64, &[u8])> = BTreeMap::new();
    for delivery in &view.deliveries {
        let Some((nsqd, _, _)) = view.channel_of(delivery.conn) else {
            continue;
        };
        let Some(facts) = ctx.nsqds.get(nsqd) else {
            continue;
        };
        // A taker that went down after this delivery may have handed it on.
        let down_after = view.life_between(nsqd, delivery.seq, usize::MAX).is_some();
        if !facts.adopted(&delivery.id) || down_after {
            continue;
        }
        let minted_by_a_peer = nsq::protocol::guid::node_id_of(&delivery.id)
            .is_some_and(|node| minters.contains_key(&node));
        if !minted_by_a_peer {
            continue;
        }
        let entry = takers
            .entry(delivery.id)
            .or_insert_with(|| (BTreeSet::new(), delivery.at, delivery.body.as_ref()));
        entry.0.insert(nsqd);
        entry.1 = entry.1.max(delivery.at);
    }
    takers
        .into_iter()
        .filter(|(_, (nsqds, _, _))| nsqds.len() > 1)
        .map(|(id, (nsqds, at, body))| Violation {
            invariant: Invariant::SingleTakeover,
            message_id: Some(id),
            at: Some(at),
            detail: format!(
                "message {} (body {}) of a lost owner was taken over by {}",
                String::from_utf8_lossy(&id.0),
                show(body),
                nsqds.into_iter().collect::<Vec<_>>().join(" and ")
            ),
        })
        .collect()
}
