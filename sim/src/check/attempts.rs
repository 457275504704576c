//! `attempts_monotonic`: within one incarnation of an nsqd (a crash, or a loss with the
//! disk, starts a new one; a graceful restart keeps attempts), every send of a message on
//! a channel carries a larger `attempts` than every earlier send of it there, and attempts
//! is at least 1.
//!
//! The checker sees arrivals, not sends. Arrivals on one connection are in send order (TCP
//! keeps order), and every send has its own attempts value, so equal values are always
//! wrong. Across connections an arrival `d1` was certainly sent before `d2` only when `d1`
//! arrived more than the largest latency before `d2` and `d2` was not delayed by a fault:
//! only then is a smaller value a violation. A delivery belongs to the incarnation its
//! connection was opened to: a restarted nsqd never writes to an old connection.
//!
//! Exempt: a message a replicated nsqd took over from a peer (another node minted it).
//! A failover that failed halfway (a disk error) is tried again, and the copies it had
//! queued already come a second time with their attempts started over: a duplicate,
//! which at-least-once allows.

use super::view::{ms, ms_to_micros, unreliable, ChannelKey, Delivery, View};
use super::{CheckContext, Invariant, Violation};

/// Every delivery whose attempts contradicts an earlier one.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let groups = view.copies_by_message();
    let mut violations = Vec::new();
    for ((key, _, id), deliveries) in &groups {
        let (nsqd, _, _) = key;
        if ctx.nsqds.get(*nsqd).is_some_and(|facts| facts.adopted(id)) {
            continue;
        }
        for (i, later) in deliveries.iter().enumerate() {
            if later.attempts == 0 {
                violations.push(violation(key, later, "carries attempts 0".into()));
                continue;
            }
            let earlier = deliveries[..i].iter().find(|e| contradicts(ctx, e, later));
            if let Some(earlier) = earlier {
                let why = format!(
                    "carries attempts {} after attempts {} arrived on conn {} at {}",
                    later.attempts,
                    earlier.attempts,
                    earlier.conn,
                    ms(earlier.at)
                );
                violations.push(violation(key, later, why));
            }
        }
    }
    violations
}

/// Whether `later` (arrived after `earlier`) cannot have been sent after it with the
/// attempts it carries.
fn contradicts(ctx: &CheckContext, earlier: &Delivery<'_>, later: &Delivery<'_>) -> bool {
    if later.attempts == earlier.attempts {
        return true;
    }
    if later.attempts > earlier.attempts {
        return false;
    }
    let sent_in_order = later.at > earlier.at.saturating_add(ms_to_micros(ctx.max_latency_ms))
        && !unreliable(ctx, later.at);
    later.conn == earlier.conn || sent_in_order
}

fn violation(key: &ChannelKey<'_>, delivery: &Delivery<'_>, why: String) -> Violation {
    let (nsqd, topic, channel) = key;
    Violation {
        invariant: Invariant::AttemptsMonotonic,
        message_id: Some(delivery.id),
        at: Some(delivery.at),
        detail: format!(
            "delivery on conn {} at {} ({nsqd} {topic:?}/{channel:?}) {why}",
            delivery.conn,
            ms(delivery.at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, replicated_ctx, run, Script};
    use super::super::Invariant::AttemptsMonotonic;

    fn setup() -> Script {
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd1", "c", 10);
        s
    }

    #[test]
    fn growing_attempts_pass_and_channels_count_separately() {
        let mut s = setup();
        s.consumer(3, "nsqd1", "d", 10);
        s.at(10).deliver(1, 1, 1, "a").deliver(3, 1, 1, "a");
        s.at(6000)
            .deliver(2, 1, 2, "a")
            .at(12000)
            .deliver(1, 1, 4, "a");
        assert_eq!(run(AttemptsMonotonic, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_message_adopted_from_a_peer_may_start_over_but_an_own_one_may_not() {
        // Ids of the testkit are minted by node 0: on nsqd1 (node 1) they were adopted.
        let mut s = setup();
        s.at(10).deliver(1, 1, 1, "a").at(11).deliver(1, 1, 1, "a");
        assert_eq!(run(AttemptsMonotonic, &s, &replicated_ctx(2)), vec![]);
        assert_eq!(run(AttemptsMonotonic, &s, &ctx()).len(), 1, "unreplicated");
        let mut own = replicated_ctx(2);
        if let Some(facts) = own.nsqds.get_mut("nsqd1") {
            facts.node_id = 0;
        }
        assert_eq!(run(AttemptsMonotonic, &s, &own).len(), 1, "minted by nsqd1");
    }

    #[test]
    fn attempts_zero_is_reported() {
        let mut s = setup();
        s.at(10).deliver(1, 1, 0, "a");
        assert_eq!(run(AttemptsMonotonic, &s, &ctx()).len(), 1);
    }

    #[test]
    fn a_repeat_or_decrease_on_one_connection_is_reported() {
        let mut s = setup();
        s.at(10).deliver(1, 1, 2, "a").at(11).deliver(1, 1, 2, "a");
        s.at(12).deliver(1, 2, 3, "b").at(13).deliver(1, 2, 1, "b");
        let v = run(AttemptsMonotonic, &s, &ctx());
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[1].detail.contains("attempts 1 after attempts 3"),
            "{}",
            v[1]
        );
    }

    #[test]
    fn across_connections_a_decrease_counts_only_beyond_the_latency() {
        let mut s = setup();
        s.at(10).deliver(1, 1, 3, "a").at(20).deliver(2, 1, 2, "a");
        assert_eq!(run(AttemptsMonotonic, &s, &ctx()), vec![]);
        s.at(100)
            .deliver(2, 2, 3, "b")
            .at(200)
            .deliver(1, 2, 2, "b");
        assert_eq!(run(AttemptsMonotonic, &s, &ctx()).len(), 1);
    }

    #[test]
    fn a_decrease_inside_a_timing_window_is_skipped() {
        let mut s = setup();
        s.at(100)
            .deliver(2, 2, 3, "b")
            .at(200)
            .deliver(1, 2, 2, "b");
        let mut ctx = ctx();
        ctx.unreliable_timing = vec![(150_000, 250_000)];
        assert_eq!(run(AttemptsMonotonic, &s, &ctx), vec![]);
    }

    #[test]
    fn a_loss_starts_over() {
        let mut s = setup();
        s.at(10).deliver(1, 1, 3, "a");
        s.at(20).lose("nsqd1").at(30).restart("nsqd1");
        s.at(40).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 1, "a");
        assert_eq!(run(AttemptsMonotonic, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_crash_starts_over_but_a_graceful_restart_does_not() {
        let mut s = setup();
        s.at(10).deliver(1, 1, 3, "a");
        s.at(20).crash("nsqd1").at(30).restart("nsqd1");
        s.at(40).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 1, "a");
        assert_eq!(run(AttemptsMonotonic, &s, &ctx()), vec![]);
        s.at(50).stop("nsqd1").at(60).restart("nsqd1");
        s.at(70).consumer(4, "nsqd1", "c", 10).deliver(4, 1, 1, "a");
        assert_eq!(run(AttemptsMonotonic, &s, &ctx()).len(), 1);
    }
}
