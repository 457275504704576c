//! `replicated_no_loss`: every body of a publish answered `OK` by an nsqd that replicates
//! (`replication_factor >= 2`) is delivered and FINished at least once by the end, on
//! every durable channel that existed on that nsqd when the publish was sent, by any nsqd
//! of the cluster: after a failover a peer delivers the copies of the owner it lost, so
//! deliveries are matched on topic name, channel name and body, not on the nsqd.
//!
//! A channel counts by `no_loss`'s rule ([`View::channel_existed`]). Unlike `no_loss`,
//! nothing that happened to the publishing nsqd excuses a publish: not a crash, not the
//! loss of its disk, not being down at the end; that is what replication promises
//! (docs/replication.md). Scenarios must therefore keep within what the replica set
//! survives (at most `N - 1` nsqds lost or crashed at once). Exempt: ephemeral topics and
//! channels (never replicated), a DPUB not due before the history ends, and publishes to
//! an nsqd that does not replicate (`no_loss` judges those).
//!
//! A delivery counts as FINished when its connection sent more FINs of its id than
//! `E_FIN_FAILED` errors named the id there: at least one FIN then met a copy in flight
//! (a late FIN may finish a later copy sent meanwhile, and that copy's own FIN then
//! fails, so FINs and errors are counted over the whole connection). A FIN lost with a
//! broken connection counts too: the checker cannot tell it from a FIN whose answer was
//! lost, and it is leniency, never a false alarm.

use std::collections::BTreeMap;

use super::view::{is_ephemeral, ms, ms_to_micros, show, Command, Delivery, Publish, View};
use super::{replicated, CheckContext, Invariant, Violation};

/// What became of one body on one channel name: `(topic, channel, body)`.
type Fate<'h> = BTreeMap<(&'h str, &'h str, &'h [u8]), Outcome>;

/// How far a body got on a channel, on any nsqd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Delivered at least once, never FINished.
    Delivered,
    /// Delivered and FINished at least once.
    Finished,
}

/// Every body of a replicated publish not delivered, or delivered and never FINished, on
/// a channel it was owed to.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let fate = fates(view);
    let mut violations = Vec::new();
    for publish in view.publishes.values() {
        if publish.ok != Some(true) || exempt(view, ctx, publish) {
            continue;
        }
        for channel in view.channels_of(publish.nsqd, publish.topic) {
            let key = (publish.nsqd, publish.topic, channel);
            if is_ephemeral(channel) || !view.channel_existed(key, publish.seq) {
                continue;
            }
            for body in publish.bodies {
                let outcome = fate.get(&(publish.topic, channel, body.as_ref())).copied();
                if outcome != Some(Outcome::Finished) {
                    violations.push(lost(view, publish, channel, body, outcome));
                }
            }
        }
    }
    violations
}

/// The furthest outcome of every body on every `(topic, channel)` name, over all nsqds.
fn fates<'h>(view: &View<'h>) -> Fate<'h> {
    let mut fate = Fate::new();
    for delivery in &view.deliveries {
        let Some((_, topic, channel)) = view.channel_of(delivery.conn) else {
            continue;
        };
        let outcome = if finished(view, delivery) {
            Outcome::Finished
        } else {
            Outcome::Delivered
        };
        let slot = fate
            .entry((topic, channel, delivery.body.as_ref()))
            .or_insert(outcome);
        *slot = (*slot).max(outcome);
    }
    fate
}

/// Whether `delivery`'s connection sent more FINs of its id than errors refused.
fn finished(view: &View<'_>, delivery: &Delivery<'_>) -> bool {
    let Some(conn) = view.conns.get(&delivery.conn) else {
        return false;
    };
    let fins = conn
        .answers
        .iter()
        .filter(|a| a.command == Command::Fin && a.id == delivery.id)
        .count();
    let refused = conn
        .failures
        .get(&(Command::Fin, delivery.id))
        .copied()
        .unwrap_or(0);
    fins > refused
}

fn exempt(view: &View<'_>, ctx: &CheckContext, publish: &Publish<'_>) -> bool {
    let due_at = publish
        .at
        .saturating_add(ms_to_micros(publish.defer_ms.unwrap_or(0)));
    !replicated(ctx, publish.nsqd) || is_ephemeral(publish.topic) || due_at > view.end
}

fn lost(
    view: &View<'_>,
    publish: &Publish<'_>,
    channel: &str,
    body: &[u8],
    outcome: Option<Outcome>,
) -> Violation {
    let what = match outcome {
        Some(_) => "was delivered but never FINished",
        None => "was never delivered",
    };
    let fate = match view.lost_after(publish.nsqd, publish.seq) {
        Some(at) => format!(" ({} was lost with its disk at {})", publish.nsqd, ms(at)),
        None if !view.running_at_end(publish.nsqd) => {
            format!(" ({} is down at the end)", publish.nsqd)
        }
        None => String::new(),
    };
    Violation {
        invariant: Invariant::ReplicatedNoLoss,
        message_id: None,
        at: Some(publish.at),
        detail: format!(
            "body {} of publish {:?} sent at {} to {} topic {:?} and answered OK {what} on \
             channel {:?} by any nsqd{fate}",
            show(body),
            publish.id,
            ms(publish.at),
            publish.nsqd,
            publish.topic,
            channel
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, replicated_ctx, run, Script};
    use super::super::Invariant::ReplicatedNoLoss;

    /// Consumers of `t`/`c` on nsqd1 (conn 1) and nsqd2 (conn 2), then a publish of "a"
    /// to nsqd1 at 5 ms.
    fn published() -> Script {
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd2", "c", 10);
        s.at(5).publish(1, "nsqd1", &["a"], true);
        s
    }

    #[test]
    fn delivered_and_finished_by_the_publishing_nsqd_passes() {
        let mut s = published();
        s.at(8).deliver(1, 1, 1, "a").fin(1, 1);
        assert_eq!(run(ReplicatedNoLoss, &s, &replicated_ctx(2)), vec![]);
    }

    #[test]
    fn delivered_and_finished_by_another_nsqd_after_a_loss_counts() {
        let mut s = published();
        s.at(6).lose("nsqd1");
        s.at(30_000).deliver(2, 7, 1, "a").fin(2, 7);
        assert_eq!(run(ReplicatedNoLoss, &s, &replicated_ctx(2)), vec![]);
    }

    #[test]
    fn a_loss_excuses_nothing() {
        let mut s = published();
        s.at(6).lose("nsqd1");
        let v = run(ReplicatedNoLoss, &s, &replicated_ctx(2));
        assert_eq!(v.len(), 1, "{v:?}");
        let detail = &v[0].detail;
        assert!(
            detail.contains("\"a\"")
                && detail.contains("publish 1")
                && detail.contains("5.000ms")
                && detail.contains("nsqd1 topic \"t\"")
                && detail.contains("never delivered on channel \"c\"")
                && detail.contains("lost with its disk at 6.000ms"),
            "{detail}"
        );
        assert_eq!(v[0].at, Some(5_000));
    }

    #[test]
    fn delivered_but_never_finished_is_a_violation() {
        let mut s = published();
        s.at(8).deliver(1, 1, 1, "a").req(1, 1, 0);
        let v = run(ReplicatedNoLoss, &s, &replicated_ctx(2));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("delivered but never FINished"),
            "{v:?}"
        );
        // A FIN refused (the copy had timed out) finished nothing.
        s.fin(1, 1).error(
            1,
            "E_FIN_FAILED FIN 0000000000000001 failed ID not in flight",
        );
        assert_eq!(run(ReplicatedNoLoss, &s, &replicated_ctx(2)).len(), 1);
        // The next copy, FINished, does.
        s.at(6_000).deliver(1, 1, 2, "a").fin(1, 1);
        assert_eq!(run(ReplicatedNoLoss, &s, &replicated_ctx(2)), vec![]);
    }

    #[test]
    fn a_late_fin_that_finished_the_next_copy_counts() {
        // The first copy timed out; its late FIN finished the second copy, sent
        // meanwhile, whose own FIN then failed.
        let mut s = published();
        s.at(8).deliver(1, 1, 1, "a").at(5_100).fin(1, 1);
        s.at(5_110).deliver(1, 1, 2, "a").fin(1, 1);
        s.error(
            1,
            "E_FIN_FAILED FIN 0000000000000001 failed ID not in flight",
        );
        assert_eq!(run(ReplicatedNoLoss, &s, &replicated_ctx(2)), vec![]);
    }

    #[test]
    fn a_channel_created_after_the_publish_is_not_owed() {
        let mut s = published();
        s.at(6).connect(3, "nsqd1").sub(3, "t", "late");
        s.at(8).deliver(1, 1, 1, "a").fin(1, 1);
        assert_eq!(run(ReplicatedNoLoss, &s, &replicated_ctx(2)), vec![]);
    }

    #[test]
    fn a_channel_of_another_name_or_topic_does_not_count() {
        let mut s = published();
        s.connect(3, "nsqd2").sub(3, "t", "other");
        s.connect(4, "nsqd2").sub(4, "u", "c");
        s.at(8).deliver(3, 1, 1, "a").fin(3, 1);
        s.deliver(4, 1, 1, "a").fin(4, 1);
        assert_eq!(run(ReplicatedNoLoss, &s, &replicated_ctx(2)).len(), 1);
    }

    #[test]
    fn unreplicated_ephemeral_refused_and_not_yet_due_publishes_are_not_judged() {
        let mut s = published();
        s.at(6).lose("nsqd1");
        assert_eq!(run(ReplicatedNoLoss, &s, &ctx()), vec![]);

        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd1", "x#ephemeral", 10);
        s.connect(3, "nsqd1").sub(3, "t#ephemeral", "c");
        s.at(5).publish(1, "nsqd1", &["refused"], false);
        s.publish_sent(2, "nsqd1", "t#ephemeral", &["eph"], None)
            .answer(2, true);
        s.publish_sent(3, "nsqd1", "t", &["late"], Some(60_000))
            .answer(3, true);
        s.publish(4, "nsqd1", &["owed"], true);
        s.at(8).deliver(1, 1, 1, "owed").fin(1, 1);
        assert_eq!(run(ReplicatedNoLoss, &s, &replicated_ctx(2)), vec![]);
    }

    #[test]
    fn an_nsqd_down_at_the_end_is_not_excused() {
        let mut s = published();
        s.at(6).crash("nsqd1");
        let v = run(ReplicatedNoLoss, &s, &replicated_ctx(2));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("nsqd1 is down at the end"), "{v:?}");
    }
}
