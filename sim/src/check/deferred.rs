//! `deferred_not_early`: a DPUB'd message arrives no earlier than its delay after the
//! DPUB was written, and a message REQ'd with a delay comes back no earlier than that
//! delay after the REQ was written.
//!
//! Both are lower bounds that hold whatever the latency, so timing faults are not skipped.
//! A crash, stop or restart of the nsqd in between is exempt: nsqd does not keep the
//! remaining delay across it.

use std::collections::BTreeSet;

use super::view::{ms, ms_to_micros, show, Command, Conn, Delivery, MessageKey, View};
use super::{CheckContext, Invariant, Violation};

/// Every early arrival.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let mut violations = early_dpubs(view);
    let copies = view.copies_by_message();
    for conn in view.conns.values() {
        violations.extend(early_requeues(view, ctx, conn, &copies));
    }
    violations
}

/// The first early arrival of each DPUB body on each channel.
fn early_dpubs(view: &View<'_>) -> Vec<Violation> {
    let mut reported = BTreeSet::new();
    let mut violations = Vec::new();
    for delivery in &view.deliveries {
        let Some(channel @ (nsqd, topic, _)) = view.channel_of(delivery.conn) else {
            continue;
        };
        let Some(publish) = view.sole_publish(delivery.body, nsqd, topic) else {
            continue;
        };
        let Some(defer_ms) = publish.defer_ms else {
            continue;
        };
        let due = publish.at.saturating_add(ms_to_micros(defer_ms));
        let restarted = view.life_between(nsqd, publish.seq, delivery.seq).is_some();
        if delivery.at < due && !restarted && reported.insert((channel, delivery.body)) {
            let why = format!(
                "DPUB of body {} with defer {defer_ms}ms sent at {} (due {})",
                show(delivery.body),
                ms(publish.at),
                ms(due)
            );
            violations.push(early(delivery, why));
        }
    }
    violations
}

/// Arrivals of a message sooner than the delay of an accepted REQ of it on `conn`.
fn early_requeues(
    view: &View<'_>,
    ctx: &CheckContext,
    conn: &Conn<'_>,
    copies: &std::collections::BTreeMap<MessageKey<'_>, Vec<&Delivery<'_>>>,
) -> Vec<Violation> {
    let Some(channel) = conn.sub.map(|(topic, channel)| (conn.nsqd, topic, channel)) else {
        return Vec::new();
    };
    let mut violations = Vec::new();
    let requeues = conn
        .answers
        .iter()
        .filter(|a| a.command == Command::Req && a.delay_ms > 0 && view.confirmed(conn, a));
    for req in requeues {
        let Some(requeued) = view.answered_attempts(conn, req, ctx) else {
            continue;
        };
        let due = req.at.saturating_add(ms_to_micros(req.delay_ms));
        let key = (channel, conn.incarnation, req.id);
        let next = copies.get(&key).into_iter().flatten().filter(|d| {
            d.attempts > requeued
                && d.at < due
                && view.life_between(conn.nsqd, req.seq, d.seq).is_none()
        });
        if let Some(first) = next.min_by_key(|d| d.seq) {
            let why = format!(
                "REQ with delay {}ms sent at {} (due {}) of the copy with attempts at most {requeued}",
                req.delay_ms,
                ms(req.at),
                ms(due)
            );
            violations.push(early(first, why));
        }
    }
    violations
}

fn early(delivery: &Delivery<'_>, why: String) -> Violation {
    Violation {
        invariant: Invariant::DeferredNotEarly,
        message_id: Some(delivery.id),
        at: Some(delivery.at),
        detail: format!(
            "arrived on conn {} at {} (attempts {}), too early after the {why}",
            delivery.conn,
            ms(delivery.at),
            delivery.attempts
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, run, Script};
    use super::super::Invariant::DeferredNotEarly;

    fn dpub(deliver_at_ms: u64) -> Script {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 10);
        s.at(10).publish_sent(1, "nsqd1", "t", &["d"], Some(1_000));
        s.at(20).answer(1, true);
        s.at(deliver_at_ms).deliver(1, 1, 1, "d");
        s
    }

    #[test]
    fn a_dpub_delivered_after_its_delay_passes() {
        assert_eq!(run(DeferredNotEarly, &dpub(1_010), &ctx()), vec![]);
    }

    #[test]
    fn an_early_dpub_is_reported_even_in_a_timing_window() {
        let mut ctx = ctx();
        ctx.unreliable_timing = vec![(0, 2_000_000)];
        let v = run(DeferredNotEarly, &dpub(1_009), &ctx);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("DPUB") && v[0].detail.contains("due 1010.000ms"));
    }

    #[test]
    fn a_restart_between_dpub_and_delivery_forgets_the_delay() {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 10);
        s.at(10).publish_sent(1, "nsqd1", "t", &["d"], Some(1_000));
        s.at(20)
            .answer(1, true)
            .at(30)
            .stop("nsqd1")
            .at(40)
            .restart("nsqd1");
        s.at(50).consumer(2, "nsqd1", "c", 10).deliver(2, 1, 1, "d");
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
    }

    /// conn 1 gets id 1 at 10 ms and REQs it with 500 ms delay at 20 ms.
    fn requeued() -> Script {
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd1", "c", 10);
        s.at(5).publish(1, "nsqd1", &["a"], true);
        s.at(10).deliver(1, 1, 1, "a").at(20).req(1, 1, 500);
        s
    }

    #[test]
    fn a_requeue_respected_passes() {
        let mut s = requeued();
        s.at(520).deliver(2, 1, 2, "a").at(600).close(1, true);
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
    }

    #[test]
    fn an_early_requeue_is_reported() {
        let mut s = requeued();
        s.at(519).deliver(2, 1, 2, "a").at(600).close(1, true);
        let v = run(DeferredNotEarly, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("REQ with delay 500ms"));
    }

    #[test]
    fn an_unconfirmed_or_failed_requeue_proves_nothing() {
        let mut s = requeued();
        s.at(100).deliver(2, 1, 2, "a").at(600).close(1, false);
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);

        let mut s = requeued();
        s.error(
            1,
            "E_REQ_FAILED REQ 0000000000000001 failed ID not in flight",
        );
        s.at(100).deliver(2, 1, 2, "a").at(600).close(1, true);
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_restart_after_the_requeue_forgets_the_delay() {
        let mut s = requeued();
        s.at(30)
            .close(1, true)
            .at(40)
            .stop("nsqd1")
            .at(50)
            .restart("nsqd1");
        s.at(60).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 2, "a");
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
    }
}
