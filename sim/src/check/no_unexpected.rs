//! `no_unexpected`: every delivered body was published to that nsqd's topic; an id always
//! carries the same body; a body keeps one id on a channel.
//!
//! A body published to a replicated topic (its nsqd has `replication_factor >= 2`) may
//! come from the topic of that name on any nsqd: a peer adopts the copies of an owner it
//! lost and delivers them as its own.
//!
//! Ids are unique per topic, not per nsqd (each topic has its own id generator), so ids are
//! keyed by `(nsqd, topic)`, and per disk: an nsqd lost with its disk starts blank, and
//! may mint again an id it minted before. A message keeps its id across restarts and crashes (the id is
//! stored with it on disk), so a body under a second id on one channel means it was copied
//! or re-published inside nsqd. A body a workload published more than once is exempt from
//! that last rule.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use nsq::protocol::message::MessageId;

use super::view::{ms, show, Delivery, View};
use super::{replicated, CheckContext, Invariant, Violation};

/// Every delivery that breaks one of the three rules.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let mut bodies_by_id: BTreeMap<(&str, usize, &str, MessageId), &[u8]> = BTreeMap::new();
    let mut ids_by_body: BTreeMap<(&str, &str, &str, &[u8]), MessageId> = BTreeMap::new();
    let mut violations = Vec::new();
    for delivery in &view.deliveries {
        let Some((nsqd, topic, channel)) = view.channel_of(delivery.conn) else {
            if view.publishes_of(delivery.body).is_empty() {
                violations.push(unexpected(delivery, "was never published".into()));
            }
            continue;
        };
        if let Some(why) = unpublished(view, ctx, delivery.body, nsqd, topic) {
            violations.push(unexpected(delivery, why));
        }
        let disk = view.conns.get(&delivery.conn).map_or(0, |c| c.disk);
        match bodies_by_id.entry((nsqd, disk, topic, delivery.id)) {
            Entry::Vacant(slot) => {
                slot.insert(delivery.body);
            }
            Entry::Occupied(first) if *first.get() != delivery.body.as_ref() => {
                let why = format!(
                    "reuses the id of body {} on {nsqd} topic {topic:?}",
                    show(first.get())
                );
                violations.push(unexpected(delivery, why));
            }
            Entry::Occupied(_) => {}
        }
        if view.sole_publish(delivery.body, nsqd, topic).is_none() {
            continue;
        }
        let first_id = *ids_by_body
            .entry((nsqd, topic, channel, delivery.body))
            .or_insert(delivery.id);
        if first_id != delivery.id {
            let why = format!(
                "arrived under a second id on {nsqd} channel {topic:?}/{channel:?}: first under {first_id}"
            );
            violations.push(unexpected(delivery, why));
        }
    }
    violations
}

/// Why `body` could not have come from `nsqd`'s `topic`, if it could not.
fn unpublished(
    view: &View<'_>,
    ctx: &CheckContext,
    body: &[u8],
    nsqd: &str,
    topic: &str,
) -> Option<String> {
    let publishes: Vec<_> = view
        .publishes_of(body)
        .iter()
        .filter_map(|p| view.publishes.get(p))
        .collect();
    if publishes.is_empty() {
        return Some("was never published".into());
    }
    let adoptable = |p: &&super::view::Publish<'_>| p.nsqd == nsqd || replicated(ctx, p.nsqd);
    if publishes.iter().any(|p| p.topic == topic && adoptable(p)) {
        return None;
    }
    let p = publishes[0];
    Some(format!(
        "came from {nsqd} topic {topic:?} but was published to {} topic {:?}",
        p.nsqd, p.topic
    ))
}

fn unexpected(delivery: &Delivery<'_>, why: String) -> Violation {
    Violation {
        invariant: Invariant::NoUnexpected,
        message_id: Some(delivery.id),
        at: Some(delivery.at),
        detail: format!(
            "body {} delivered on conn {} at {} {why}",
            show(delivery.body),
            delivery.conn,
            ms(delivery.at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, replicated_ctx, run, Script};
    use super::super::Invariant::NoUnexpected;

    fn setup() -> Script {
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd1", "d", 10);
        s.at(2).publish(1, "nsqd1", &["a", "b"], true);
        s
    }

    #[test]
    fn published_bodies_with_stable_ids_pass() {
        let mut s = setup();
        s.publish_sent(2, "nsqd1", "t", &["unanswered"], None);
        s.at(3)
            .deliver(1, 1, 1, "a")
            .deliver(2, 1, 1, "a")
            .deliver(1, 2, 1, "b");
        s.deliver(1, 3, 1, "unanswered");
        s.at(4).crash("nsqd1").restart("nsqd1");
        s.at(5).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 1, "a");
        assert_eq!(run(NoUnexpected, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_body_never_published_is_reported() {
        let mut s = setup();
        s.at(3).deliver(1, 1, 1, "ghost");
        let v = run(NoUnexpected, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("never published"));
        assert_eq!(v[0].message_id, Some(super::super::testkit::id(1)));
    }

    #[test]
    fn a_body_from_the_wrong_nsqd_is_reported() {
        let mut s = setup();
        s.at(3).consumer(3, "nsqd2", "c", 10).deliver(3, 1, 1, "a");
        let v = run(NoUnexpected, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("published to nsqd1"));
    }

    #[test]
    fn a_replicated_body_may_come_from_another_nsqd_but_not_another_topic() {
        let mut s = setup();
        s.at(3).consumer(3, "nsqd2", "c", 10).deliver(3, 1, 1, "a");
        assert_eq!(run(NoUnexpected, &s, &replicated_ctx(2)), vec![]);
        s.connect(4, "nsqd2").sub(4, "u", "c").deliver(4, 2, 1, "b");
        let v = run(NoUnexpected, &s, &replicated_ctx(2));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("topic \"u\""), "{}", v[0]);
    }

    #[test]
    fn a_blank_nsqd_may_mint_an_id_again_but_a_crashed_one_may_not() {
        let mut s = setup();
        s.at(3).deliver(1, 1, 1, "a");
        s.at(4).lose("nsqd1").restart("nsqd1");
        s.at(5).consumer(3, "nsqd1", "c", 10);
        s.publish(2, "nsqd1", &["new"], true);
        s.at(6).deliver(3, 1, 1, "new");
        assert_eq!(run(NoUnexpected, &s, &ctx()), vec![]);

        let mut s = setup();
        s.at(3).deliver(1, 1, 1, "a");
        s.at(4).crash("nsqd1").restart("nsqd1");
        s.at(5).consumer(3, "nsqd1", "c", 10);
        s.publish(2, "nsqd1", &["new"], true);
        s.at(6).deliver(3, 1, 1, "new");
        assert_eq!(run(NoUnexpected, &s, &ctx()).len(), 1);
    }

    #[test]
    fn one_id_with_two_bodies_is_reported() {
        let mut s = setup();
        s.at(3).deliver(1, 1, 1, "a").deliver(2, 1, 1, "b");
        let v = run(NoUnexpected, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("reuses the id"));
    }

    #[test]
    fn the_same_id_on_two_topics_is_fine() {
        let mut s = setup();
        s.at(2).publish_sent(2, "nsqd1", "u", &["u1"], None);
        s.connect(4, "nsqd1").sub(4, "u", "c");
        s.at(3).deliver(1, 1, 1, "a").deliver(4, 1, 1, "u1");
        assert_eq!(run(NoUnexpected, &s, &ctx()), vec![]);
    }

    #[test]
    fn one_body_with_two_ids_on_a_channel_is_reported_even_across_a_crash() {
        let mut s = setup();
        s.at(3).deliver(1, 1, 1, "a");
        s.at(4).crash("nsqd1").restart("nsqd1");
        s.at(5).consumer(3, "nsqd1", "c", 10).deliver(3, 7, 1, "a");
        let v = run(NoUnexpected, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("second id"));
    }

    #[test]
    fn a_body_published_twice_may_carry_two_ids() {
        let mut s = setup();
        s.at(3).publish(2, "nsqd1", &["a"], true);
        s.at(4).deliver(1, 1, 1, "a").deliver(1, 5, 1, "a");
        assert_eq!(run(NoUnexpected, &s, &ctx()), vec![]);
    }
}
