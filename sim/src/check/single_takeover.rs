//! `single_takeover`: the copies of a lost owner's messages are taken over by one peer,
//! not by every peer that holds them. The lowest-ranked live peer takes over after
//! `--replica-failover-timeout`, says so with `ADOPTED`, and the others keep their
//! copies standby for it (docs/replication.md, "Failover").
//!
//! Judged only where that is promised: a run whose only faults are crashes and losses of
//! nsqds (a partition or a slow link may make two peers each believe they rank first,
//! and at-least-once allows the duplicates). A delivery by an nsqd that went down (crash,
//! loss or graceful stop) since the owner went down is not counted: its silence may have
//! handed what it took over on to another peer. An owner that came back blank
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

/// Every message of a lost owner delivered by two or more peers that stayed up since.
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
        if !facts.adopted(&delivery.id) {
            continue;
        }
        let minter = nsq::protocol::guid::node_id_of(&delivery.id)
            .and_then(|node| minters.get(&node).copied());
        let Some(minter_down) = minter.and_then(|minter| view.first_down(minter)) else {
            continue;
        };
        // A taker down since the owner went down may have been taken over in turn (its
        // silence looks like a loss to the others).
        if view.life_between(nsqd, minter_down, usize::MAX).is_some() {
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

#[cfg(test)]
mod tests {
    use super::super::testkit::{replicated_ctx, run, Script};
    use super::super::{CheckContext, Invariant::SingleTakeover};

    /// nsqd1 and nsqd2 replicating, and nsqd0 (node 0, which mints the testkit's ids).
    fn three() -> CheckContext {
        let mut ctx = replicated_ctx(2);
        let mut minter = ctx.nsqds["nsqd1"].clone();
        minter.node_id = 0;
        ctx.nsqds.insert("nsqd0".to_string(), minter);
        ctx
    }

    /// Consumers on nsqd1 (conn 1) and nsqd2 (conn 2); nsqd0 lost at 10 ms.
    fn owner_lost() -> Script {
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd2", "c", 10);
        s.at(10).lose("nsqd0");
        s
    }

    #[test]
    fn one_taker_passes() {
        let mut s = owner_lost();
        s.at(20).deliver(1, 1, 1, "a").fin(1, 1);
        assert_eq!(run(SingleTakeover, &s, &three()), vec![]);
    }

    #[test]
    fn two_takers_are_a_violation() {
        let mut s = owner_lost();
        s.at(20).deliver(1, 1, 1, "a").fin(1, 1);
        s.at(30).deliver(2, 1, 1, "a").fin(2, 1);
        let v = run(SingleTakeover, &s, &three());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("taken over by nsqd1 and nsqd2"),
            "{}",
            v[0].detail
        );
        assert_eq!(v[0].at, Some(30_000));
    }

    #[test]
    fn a_taker_down_since_the_owner_went_down_may_hand_on() {
        let mut s = owner_lost();
        s.at(20).deliver(1, 1, 1, "a");
        s.at(25).stop("nsqd1");
        s.at(30).deliver(2, 1, 1, "a").fin(2, 1);
        assert_eq!(run(SingleTakeover, &s, &three()), vec![]);
    }

    #[test]
    fn a_network_fault_excuses_the_run() {
        let mut s = owner_lost();
        s.at(15).fault("partition [\"nsqd1\"] <-> [\"nsqd2\"]");
        s.at(20).deliver(1, 1, 1, "a").fin(1, 1);
        s.at(30).deliver(2, 1, 1, "a").fin(2, 1);
        assert_eq!(run(SingleTakeover, &s, &three()), vec![]);
    }
}
