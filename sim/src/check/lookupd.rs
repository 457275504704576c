//! `lookupd_converges`: at the end every running lookupd lists exactly the running nsqds
//! that register with it, each under every durable topic it reported, and lists no nsqd
//! that is down (an nsqd lost with its disk for good included). Judged on each host's last
//! observation.
//!
//! Nodes are compared as sets: after a restart lookupd may hold the old registration of
//! the same address beside the new one until it goes inactive, and that is no harm.

use std::collections::BTreeSet;

use super::view::{is_ephemeral, ms, View};
use super::{CheckContext, Invariant, Violation};
use crate::history::Micros;

/// Every lookupd not observed or not converged.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let mut violations = Vec::new();
    for lookupd in ctx.lookupds.iter().filter(|l| view.running_at_end(l)) {
        let Some((at, nodes, topics)) = view.lookupd_seen.get(lookupd.as_str()) else {
            violations.push(violation(
                lookupd,
                None,
                "is running at the end but was not observed".into(),
            ));
            continue;
        };
        let live = registered(view, ctx, lookupd);
        let expected: BTreeSet<&str> = live.iter().map(|(_, addr)| *addr).collect();
        let listed: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
        if listed != expected {
            let missing: Vec<_> = expected.difference(&listed).collect();
            let extra: Vec<_> = listed.difference(&expected).collect();
            let why = format!("lists nodes {listed:?} instead of {expected:?} (missing {missing:?}, extra {extra:?})");
            violations.push(violation(lookupd, Some(*at), why));
        }
        for (nsqd, addr) in &live {
            for topic in reported_topics(view, nsqd) {
                let producers = topics.get(topic).map(Vec::as_slice).unwrap_or_default();
                if !producers.iter().any(|p| p == addr) {
                    let why = format!(
                        "does not list {nsqd} ({addr}) under topic {topic:?}, which it has"
                    );
                    violations.push(violation(lookupd, Some(*at), why));
                }
            }
        }
        for (topic, producers) in *topics {
            let stale: Vec<_> = producers
                .iter()
                .filter(|p| !expected.contains(p.as_str()))
                .collect();
            if !stale.is_empty() {
                let why = format!("lists {stale:?} under topic {topic:?}, which are not running nsqds registered with it");
                violations.push(violation(lookupd, Some(*at), why));
            }
        }
    }
    violations
}

/// `(nsqd, broadcast address)` of every running nsqd that registers with `lookupd`.
fn registered<'c>(
    view: &View<'_>,
    ctx: &'c CheckContext,
    lookupd: &str,
) -> Vec<(&'c str, &'c str)> {
    ctx.nsqds
        .iter()
        .filter(|(name, facts)| {
            view.running_at_end(name)
                && facts
                    .lookupds
                    .as_ref()
                    .is_none_or(|ls| ls.iter().any(|l| l == lookupd))
        })
        .map(|(name, facts)| (name.as_str(), facts.broadcast_address.as_str()))
        .collect()
}

/// The durable topics in `nsqd`'s last observation.
fn reported_topics<'v>(view: &View<'v>, nsqd: &str) -> BTreeSet<&'v str> {
    view.nsqd_seen
        .get(nsqd)
        .into_iter()
        .flat_map(|(_, channels)| channels.keys())
        .map(|(topic, _)| topic.as_str())
        .filter(|topic| !is_ephemeral(topic))
        .collect()
}

fn violation(lookupd: &str, at: Option<Micros>, why: String) -> Violation {
    let when = at
        .map(|at| format!(" (observed at {})", ms(at)))
        .unwrap_or_default();
    Violation {
        invariant: Invariant::LookupdConverges,
        message_id: None,
        at,
        detail: format!("{lookupd}{when} {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, run, Script};
    use super::super::Invariant::LookupdConverges;

    fn nsqds_seen() -> Script {
        let mut s = Script::new();
        s.at(100).nsqd_seen(
            "nsqd1",
            &[("t", "c", 0, 0, 0), ("e#ephemeral", "c", 0, 0, 0)],
        );
        s.nsqd_seen("nsqd2", &[("u", "c", 0, 0, 0)]);
        s
    }

    #[test]
    fn a_converged_lookupd_passes() {
        let mut s = nsqds_seen();
        let both: &[&str] = &["nsqd1.addr", "nsqd2.addr"];
        s.lookupd_seen(
            "lookupd1",
            both,
            &[("t", &["nsqd1.addr"]), ("u", &["nsqd2.addr"])],
        );
        assert_eq!(run(LookupdConverges, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_missing_node_and_a_missing_topic_are_reported() {
        let mut s = nsqds_seen();
        s.lookupd_seen("lookupd1", &["nsqd1.addr"], &[("t", &["nsqd1.addr"])]);
        let v = run(LookupdConverges, &s, &ctx());
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].detail.contains("missing [\"nsqd2.addr\"]"), "{}", v[0]);
        assert!(v[1].detail.contains("under topic \"u\""), "{}", v[1]);
    }

    #[test]
    fn a_down_nsqd_must_not_be_listed() {
        let mut s = nsqds_seen();
        s.at(150).stop("nsqd2");
        s.lookupd_seen("lookupd1", &["nsqd1.addr"], &[("t", &["nsqd1.addr"])]);
        assert_eq!(run(LookupdConverges, &s, &ctx()), vec![]);
        s.lookupd_seen(
            "lookupd1",
            &["nsqd1.addr"],
            &[("t", &["nsqd1.addr"]), ("u", &["nsqd2.addr"])],
        );
        let v = run(LookupdConverges, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("not running"));
    }

    #[test]
    fn an_nsqd_lost_for_good_must_not_be_listed() {
        let mut s = nsqds_seen();
        s.at(150).lose("nsqd2");
        s.lookupd_seen("lookupd1", &["nsqd1.addr"], &[("t", &["nsqd1.addr"])]);
        assert_eq!(run(LookupdConverges, &s, &ctx()), vec![]);
        let both: &[&str] = &["nsqd1.addr", "nsqd2.addr"];
        s.lookupd_seen("lookupd1", both, &[("t", &["nsqd1.addr"])]);
        assert_eq!(run(LookupdConverges, &s, &ctx()).len(), 1);
    }

    #[test]
    fn an_unobserved_lookupd_is_reported_unless_down() {
        let s = nsqds_seen();
        assert_eq!(run(LookupdConverges, &s, &ctx()).len(), 1);
        let mut s = nsqds_seen();
        s.crash("lookupd1");
        assert_eq!(run(LookupdConverges, &s, &ctx()), vec![]);
    }

    #[test]
    fn an_nsqd_is_expected_only_at_its_own_lookupds() {
        let mut ctx = ctx();
        ctx.lookupds.push("lookupd2".into());
        if let Some(facts) = ctx.nsqds.get_mut("nsqd2") {
            facts.lookupds = Some(vec!["lookupd2".into()]);
        }
        let mut s = nsqds_seen();
        s.lookupd_seen("lookupd1", &["nsqd1.addr"], &[("t", &["nsqd1.addr"])]);
        s.lookupd_seen(
            "lookupd2",
            &["nsqd1.addr", "nsqd2.addr"],
            &[("t", &["nsqd1.addr"]), ("u", &["nsqd2.addr"])],
        );
        assert_eq!(run(LookupdConverges, &s, &ctx), vec![]);
    }
}
