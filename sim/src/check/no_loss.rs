//! `no_loss`: every body of a publish nsqd answered `OK` is delivered at least once on
//! every durable channel that existed on that nsqd when the publish was sent.
//!
//! A channel counts when a SUB on it was answered `OK` before the publish was written
//! (nsqd created it before answering, and the publish arrives after it is written) and the
//! nsqd did not crash in between (a crash may lose `nsqd.dat`). Exempt: a publish to an
//! nsqd that is not crash durable and crashed after it; a publish to an nsqd lost with its
//! disk after it (the `lose` fault: nothing a single nsqd does can keep it; whether a
//! replicated topic kept it is `replicated_no_loss`'s business); a publish to an nsqd that
//! is down at the end (kept, but nobody can read it); a DPUB not due before the history
//! ends.
//!
//! A publish to a replicated topic (its nsqd has `replication_factor >= 2`) may be
//! delivered by another nsqd, a peer that adopted it in a failover: a delivery on a
//! channel of the same topic and channel names on any nsqd counts for it.

use std::collections::BTreeSet;

use super::view::{is_ephemeral, ms, ms_to_micros, show, ChannelKey, Publish, View};
use super::{replicated, CheckContext, Invariant, Violation};

/// Every missing delivery, one violation per body and channel.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let delivered: BTreeSet<(ChannelKey<'_>, &[u8])> = view
        .deliveries
        .iter()
        .filter_map(|d| Some((view.channel_of(d.conn)?, d.body.as_ref())))
        .collect();
    let by_name: BTreeSet<(&str, &str, &[u8])> = delivered
        .iter()
        .map(|((_, topic, channel), body)| (*topic, *channel, *body))
        .collect();
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
            let anywhere = replicated(ctx, publish.nsqd);
            for body in publish.bodies {
                let body = body.as_ref();
                let got = delivered.contains(&(key, body))
                    || (anywhere && by_name.contains(&(publish.topic, channel, body)));
                if !got {
                    violations.push(lost(publish, channel, body));
                }
            }
        }
    }
    violations
}

fn exempt(view: &View<'_>, ctx: &CheckContext, publish: &Publish<'_>) -> bool {
    let durable = ctx
        .nsqds
        .get(publish.nsqd)
        .is_some_and(|facts| facts.crash_durable);
    let crashed = view.crash_after(publish.nsqd, publish.seq).is_some();
    let lost = view.lost_after(publish.nsqd, publish.seq).is_some();
    let due_at = publish
        .at
        .saturating_add(ms_to_micros(publish.defer_ms.unwrap_or(0)));
    is_ephemeral(publish.topic)
        || (crashed && !durable)
        || lost
        || !view.running_at_end(publish.nsqd)
        || due_at > view.end
}

fn lost(publish: &Publish<'_>, channel: &str, body: &[u8]) -> Violation {
    Violation {
        invariant: Invariant::NoLoss,
        message_id: None,
        at: Some(publish.at),
        detail: format!(
            "body {} of publish {:?} sent at {} to {} topic {:?} and answered OK was never \
             delivered on channel {:?}",
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
    use super::super::Invariant::NoLoss;

    fn subscribed() -> Script {
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd1", "d", 10);
        s
    }

    #[test]
    fn every_channel_got_every_acknowledged_body() {
        let mut s = subscribed();
        s.at(5).publish(1, "nsqd1", &["a", "b"], true);
        s.at(8).deliver(1, 1, 1, "a").deliver(1, 2, 1, "b");
        s.deliver(2, 1, 1, "a").deliver(2, 2, 1, "b");
        assert_eq!(run(NoLoss, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_body_missing_on_one_channel_is_reported() {
        let mut s = subscribed();
        s.at(5).publish(1, "nsqd1", &["a", "b"], true);
        s.at(8)
            .deliver(1, 1, 1, "a")
            .deliver(1, 2, 1, "b")
            .deliver(2, 1, 1, "a");
        let v = run(NoLoss, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("\"b\"") && v[0].detail.contains("\"d\""),
            "{}",
            v[0]
        );
        assert_eq!(v[0].at, Some(5_000));
    }

    #[test]
    fn refused_unanswered_and_earlier_than_the_channel_are_not_owed() {
        let mut s = Script::new();
        s.at(1).publish(1, "nsqd1", &["before"], true);
        s.publish(2, "nsqd1", &["refused"], false);
        s.publish_sent(3, "nsqd1", "t", &["unanswered"], None);
        s.at(2).consumer(1, "nsqd1", "c", 10);
        s.at(3).consumer(2, "nsqd1", "x#ephemeral", 10);
        s.at(4).publish(4, "nsqd1", &["owed"], true);
        let v = run(NoLoss, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("\"owed\"") && v[0].detail.contains("\"c\""));
    }

    #[test]
    fn a_crash_excuses_only_what_durability_allows() {
        let mut s = subscribed();
        s.at(5).publish(1, "nsqd1", &["a"], true);
        s.at(6).crash("nsqd1").at(7).restart("nsqd1");
        assert_eq!(run(NoLoss, &s, &ctx()), vec![]);

        let mut durable = ctx();
        if let Some(facts) = durable.nsqds.get_mut("nsqd1") {
            facts.crash_durable = true;
        }
        assert_eq!(run(NoLoss, &s, &durable).len(), 2);
    }

    #[test]
    fn a_loss_after_the_publish_excuses_it_even_on_a_durable_nsqd() {
        let mut durable = ctx();
        if let Some(facts) = durable.nsqds.get_mut("nsqd1") {
            facts.crash_durable = true;
        }
        let mut s = subscribed();
        s.at(5).publish(1, "nsqd1", &["a"], true);
        s.at(6).lose("nsqd1").at(7).restart("nsqd1");
        assert_eq!(run(NoLoss, &s, &durable), vec![]);
        // A loss before the publish excuses nothing: the blank nsqd took it and owes it to
        // the channels subscribed since.
        s.at(8).consumer(3, "nsqd1", "c", 10);
        s.at(9).publish(2, "nsqd1", &["b"], true);
        let v = run(NoLoss, &s, &durable);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("\"b\"") && v[0].detail.contains("\"c\""));
    }

    #[test]
    fn a_replicated_publish_may_be_delivered_by_another_nsqd() {
        let mut s = subscribed();
        s.at(2)
            .consumer(3, "nsqd2", "c", 10)
            .consumer(4, "nsqd2", "d", 10);
        s.at(5).publish(1, "nsqd1", &["a"], true);
        s.at(8).deliver(3, 1, 1, "a").deliver(4, 1, 1, "a");
        assert_eq!(run(NoLoss, &s, &replicated_ctx(2)), vec![]);
        assert_eq!(run(NoLoss, &s, &ctx()).len(), 2);
    }

    #[test]
    fn a_loss_of_another_nsqd_excuses_nothing() {
        let mut s = subscribed();
        s.at(5).publish(1, "nsqd1", &["a"], true);
        s.at(6).lose("nsqd2").at(7).restart("nsqd2");
        assert_eq!(run(NoLoss, &s, &ctx()).len(), 2);
    }

    #[test]
    fn a_graceful_restart_excuses_nothing() {
        let mut s = subscribed();
        s.at(5).publish(1, "nsqd1", &["a"], true);
        s.at(6).stop("nsqd1").at(7).restart("nsqd1");
        assert_eq!(run(NoLoss, &s, &ctx()).len(), 2);
    }

    #[test]
    fn a_crash_before_the_publish_forgets_the_channel_until_subscribed_again() {
        let mut s = subscribed();
        s.at(5).crash("nsqd1").at(6).restart("nsqd1");
        s.at(7).publish(1, "nsqd1", &["a"], true);
        s.at(8).consumer(3, "nsqd1", "c", 10);
        s.at(9).publish(2, "nsqd1", &["b"], true);
        let v = run(NoLoss, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("\"b\"") && v[0].detail.contains("\"c\""));
    }

    #[test]
    fn an_nsqd_down_at_the_end_and_a_dpub_not_yet_due_are_excused() {
        let mut s = subscribed();
        s.at(5)
            .publish_sent(1, "nsqd1", "t", &["late"], Some(60_000));
        s.answer(1, true);
        assert_eq!(run(NoLoss, &s, &ctx()), vec![]);
        s.at(6)
            .publish(2, "nsqd1", &["a"], true)
            .at(7)
            .stop("nsqd1");
        assert_eq!(run(NoLoss, &s, &ctx()), vec![]);
    }
}
