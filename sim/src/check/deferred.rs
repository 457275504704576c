//! `deferred_not_early`: a DPUB'd message arrives no earlier than its delay after the
//! DPUB was written, and a message REQ'd with a delay comes back no earlier than that
//! delay after the REQ was written.
//!
//! Both are lower bounds that hold whatever the latency, so timing faults are not skipped.
//! Graceful restarts, crashes and stops of the nsqd in between excuse nothing: nsqd keeps
//! every due time on disk with the message (a crash may lose a deferred message that only
//! memory held, which `no_loss` judges, but never deliver it early). One exception: on an
//! nsqd that is not crash-safe, a crash may undo a REQ as it undoes a FIN (the requeued
//! copy lived in memory; an older copy, still held by the topic's disk queue whose
//! hand-over was not synced, comes back). The loss of the nsqd with its disk (the `lose`
//! fault) undoes a REQ on any nsqd: the message can only come back from a peer's replica,
//! which learns REQ delays with the next FIN batch only (not promised across a failover;
//! see docs/replication.md). DPUB due times are promised across failovers: a DPUB to a
//! replicated topic delivered by another nsqd (a peer that adopted it) is judged too.
//!
//! A REQ proves something only once it is confirmed (a later `CLOSE_WAIT` or answered
//! marker on its connection, and no `E_REQ_FAILED` of the id). A message keeps its id
//! across restarts and crashes, so every later arrival of the REQ'd body under that id on
//! the channel counts, in any later incarnation of the nsqd: on a connection opened after
//! the nsqd stopped or crashed, any copy was sent after the REQ took effect; on one the
//! same process served, only copies with more attempts than the REQ'd one were.

use std::collections::{BTreeMap, BTreeSet};

use super::view::{
    ms, ms_to_micros, show, Answer, Command, Conn, Delivery, Life, MessageKey, Publish, Seq, View,
};
use super::{replicated, CheckContext, Invariant, Violation};

/// Every early arrival.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let mut violations = early_dpubs(view, ctx);
    let copies = view.copies_by_message();
    for conn in view.conns.values() {
        violations.extend(early_requeues(view, ctx, conn, &copies));
    }
    violations
}

/// The first early arrival of each DPUB body on each channel.
fn early_dpubs(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let mut reported = BTreeSet::new();
    let mut violations = Vec::new();
    for delivery in &view.deliveries {
        let Some(channel @ (nsqd, topic, _)) = view.channel_of(delivery.conn) else {
            continue;
        };
        let publish = view
            .sole_publish(delivery.body, nsqd, topic)
            .or_else(|| adopted_publish(view, ctx, delivery.body, topic));
        let Some(publish) = publish else {
            continue;
        };
        let Some(defer_ms) = publish.defer_ms else {
            continue;
        };
        let due = publish.at.saturating_add(ms_to_micros(defer_ms));
        if delivery.at < due && reported.insert((channel, delivery.body)) {
            let mut why = format!(
                "DPUB of body {} with defer {defer_ms}ms sent at {} (due {})",
                show(delivery.body),
                ms(publish.at),
                ms(due)
            );
            if publish.nsqd != nsqd {
                why.push_str(&format!(" to {}", publish.nsqd));
            }
            why.push_str(&across(view, publish.nsqd, publish.seq, delivery.seq));
            violations.push(early(delivery, why));
        }
    }
    violations
}

/// The one publish of `body` to a replicated `topic` of any nsqd, unless there are none or
/// several: the publish a peer that adopted the message delivers.
fn adopted_publish<'v, 'h>(
    view: &'v View<'h>,
    ctx: &CheckContext,
    body: &[u8],
    topic: &str,
) -> Option<&'v Publish<'h>> {
    let mut matching = view
        .publishes_of(body)
        .iter()
        .filter_map(|p| view.publishes.get(p))
        .filter(|p| p.topic == topic && replicated(ctx, p.nsqd));
    let first = matching.next()?;
    matching.next().is_none().then_some(first)
}

/// Arrivals of a message sooner than the delay of an accepted REQ of it on `conn`.
fn early_requeues(
    view: &View<'_>,
    ctx: &CheckContext,
    conn: &Conn<'_>,
    copies: &BTreeMap<MessageKey<'_>, Vec<&Delivery<'_>>>,
) -> Vec<Violation> {
    let Some(channel) = conn.sub.map(|(topic, channel)| (conn.nsqd, topic, channel)) else {
        return Vec::new();
    };
    let last_incarnation = view.incarnation(conn.nsqd, usize::MAX);
    let durable = ctx
        .nsqds
        .get(conn.nsqd)
        .is_some_and(|facts| facts.crash_durable);
    let mut violations = Vec::new();
    let requeues = conn
        .answers
        .iter()
        .filter(|a| a.command == Command::Req && a.delay_ms > 0 && view.confirmed(conn, a));
    for req in requeues {
        let Some(requeued) = view.answered_attempts(conn, req, ctx) else {
            continue;
        };
        let Some(body) = requeued_body(view, conn, req) else {
            continue;
        };
        let due = req.at.saturating_add(ms_to_micros(req.delay_ms));
        // On an nsqd that is not crash-durable a crash may undo a REQ as it undoes a
        // FIN: the requeued copy lived in memory, and an older copy (one the topic's
        // disk queue still held, its hand-over not yet synced) may come back early.
        let undone_by_crash = (!durable)
            .then(|| view.crash_after(conn.nsqd, req.seq))
            .flatten();
        // A loss of the disk undoes it whatever the durability.
        let undone = [undone_by_crash, view.lost_after(conn.nsqd, req.seq)]
            .into_iter()
            .flatten()
            .min();
        let next = (conn.incarnation..=last_incarnation)
            .filter_map(|incarnation| copies.get(&(channel, incarnation, req.id)))
            .flatten()
            .filter(|d| {
                d.seq > req.seq
                    && d.at < due
                    && undone.is_none_or(|undone| d.at < undone)
                    && d.body.as_ref() == body
                    && (d.attempts > requeued || sent_by_a_later_process(view, conn, req, d))
            });
        if let Some(first) = next.min_by_key(|d| d.seq) {
            let mut why = format!(
                "REQ with delay {}ms sent at {} (due {}) of the copy with attempts at most {requeued}",
                req.delay_ms,
                ms(req.at),
                ms(due)
            );
            why.push_str(&across(view, conn.nsqd, req.seq, first.seq));
            violations.push(early(first, why));
        }
    }
    violations
}

/// The body of the copy of `req`'s id that arrived on `conn` before the REQ.
fn requeued_body<'h>(view: &View<'h>, conn: &Conn<'_>, req: &Answer) -> Option<&'h [u8]> {
    conn.deliveries
        .iter()
        .filter_map(|i| view.deliveries.get(*i))
        .rfind(|d| d.id == req.id && d.seq < req.seq)
        .map(|d| d.body.as_ref())
}

/// Whether `delivery` arrived on a connection opened after the nsqd process that served
/// the REQ's connection stopped or crashed: then whatever copy it carries was sent after
/// the (confirmed) REQ took effect, whatever its attempts.
fn sent_by_a_later_process(
    view: &View<'_>,
    conn: &Conn<'_>,
    req: &Answer,
    delivery: &Delivery<'_>,
) -> bool {
    view.conns.get(&delivery.conn).is_some_and(|later| {
        later.opened > req.seq
            && view
                .life_between(conn.nsqd, req.seq, later.opened)
                .is_some()
    })
}

/// `, across a crash of nsqd1 at 12.000ms` when `nsqd` stopped, crashed or restarted
/// between `after` and `before`; empty otherwise.
fn across(view: &View<'_>, nsqd: &str, after: Seq, before: Seq) -> String {
    let Some((at, life)) = view.life_between(nsqd, after, before) else {
        return String::new();
    };
    let what = match life {
        Life::Crashed => "a crash",
        Life::Lost => "a loss",
        Life::Stopped => "a graceful stop",
        Life::Restarted => "a restart",
    };
    format!(", across {what} of {nsqd} at {}", ms(at))
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
    use super::super::testkit::{ctx, replicated_ctx, run, Script};
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

    /// A DPUB of 1 s at 10 ms, then `life` of nsqd1 at 30 ms and a restart at 40 ms; a new
    /// connection gets it at `deliver_at_ms`.
    fn dpub_across(life: fn(&mut Script) -> &mut Script, deliver_at_ms: u64) -> Script {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 10);
        s.at(10).publish_sent(1, "nsqd1", "t", &["d"], Some(1_000));
        s.at(20).answer(1, true).at(30);
        life(&mut s).at(40).restart("nsqd1");
        s.at(deliver_at_ms)
            .consumer(2, "nsqd1", "c", 10)
            .deliver(2, 1, 1, "d");
        s
    }

    fn stop(s: &mut Script) -> &mut Script {
        s.stop("nsqd1")
    }

    fn crash(s: &mut Script) -> &mut Script {
        s.crash("nsqd1")
    }

    #[test]
    fn a_dpub_delivered_early_across_a_graceful_restart_is_reported() {
        let v = run(DeferredNotEarly, &dpub_across(stop, 50), &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("DPUB") && v[0].detail.contains("a graceful stop of nsqd1"),
            "{v:?}"
        );
        assert_eq!(
            run(DeferredNotEarly, &dpub_across(stop, 1_010), &ctx()),
            vec![]
        );
    }

    #[test]
    fn a_dpub_delivered_early_across_a_crash_is_reported() {
        let v = run(DeferredNotEarly, &dpub_across(crash, 50), &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("a crash of nsqd1"), "{v:?}");
        assert_eq!(
            run(DeferredNotEarly, &dpub_across(crash, 1_010), &ctx()),
            vec![]
        );
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
    fn a_marker_answered_after_the_requeue_confirms_it() {
        let mut s = requeued();
        s.at(30).marked(1, 9, true);
        s.at(100).deliver(2, 1, 2, "a");
        let v = run(DeferredNotEarly, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");

        let mut s = requeued();
        s.at(30).marked(1, 9, false);
        s.at(100).deliver(2, 1, 2, "a");
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);

        // A marker sent before the REQ proves nothing about it.
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd1", "c", 10);
        s.at(5).publish(1, "nsqd1", &["a"], true);
        s.at(10).deliver(1, 1, 1, "a").marked(1, 9, true);
        s.at(20).req(1, 1, 500).at(100).deliver(2, 1, 2, "a");
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
    }

    #[test]
    fn an_early_requeue_across_a_graceful_restart_is_reported() {
        let mut s = requeued();
        s.at(30)
            .close(1, true)
            .at(40)
            .stop("nsqd1")
            .at(50)
            .restart("nsqd1");
        s.at(60).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 2, "a");
        let v = run(DeferredNotEarly, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("REQ with delay 500ms")
                && v[0].detail.contains("a graceful stop of nsqd1"),
            "{v:?}"
        );
    }

    /// The REQ at 20 ms is confirmed by a marker, nsqd1 crashes at 40 ms and restarts at
    /// 50 ms: the message comes back from disk with the attempts stored there.
    fn requeued_then_crashed() -> Script {
        let mut s = requeued();
        s.at(30).marked(1, 9, true).close(1, false).close(2, false);
        s.at(40).crash("nsqd1").at(50).restart("nsqd1");
        s.at(60).consumer(3, "nsqd1", "c", 10);
        s
    }

    /// `nsqd1` in crash-safe mode: a REQ of a message (always held on disk there) has its
    /// due time journaled before the next command.
    fn durable_ctx() -> crate::check::CheckContext {
        let mut ctx = ctx();
        if let Some(facts) = ctx.nsqds.get_mut("nsqd1") {
            facts.crash_durable = true;
        }
        ctx
    }

    #[test]
    fn an_early_requeue_in_a_later_incarnation_is_reported_whatever_its_attempts() {
        let mut s = requeued_then_crashed();
        s.at(100).deliver(3, 1, 1, "a");
        let v = run(DeferredNotEarly, &s, &durable_ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("a crash of nsqd1"), "{v:?}");

        let mut s = requeued_then_crashed();
        s.at(520).deliver(3, 1, 1, "a");
        assert_eq!(run(DeferredNotEarly, &s, &durable_ctx()), vec![]);
    }

    #[test]
    fn a_crash_of_an_nsqd_that_is_not_crash_safe_may_undo_a_requeue() {
        // As it may undo a FIN: the requeued copy was in memory, an older one comes back.
        let mut s = requeued_then_crashed();
        s.at(100).deliver(3, 1, 1, "a");
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
        // A graceful stop undoes nothing.
        let mut s = requeued();
        s.at(30).marked(1, 9, true).close(1, false).close(2, false);
        s.at(40).stop("nsqd1").at(50).restart("nsqd1");
        s.at(60).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 1, "a");
        assert_eq!(run(DeferredNotEarly, &s, &ctx()).len(), 1);
    }

    #[test]
    fn a_loss_undoes_a_requeue_even_on_a_durable_nsqd() {
        // The message can only come back from a replica, which may not know the delay.
        let mut s = requeued();
        s.at(30).marked(1, 9, true).close(1, false).close(2, false);
        s.at(40).lose("nsqd1").at(50).restart("nsqd1");
        s.at(60).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 1, "a");
        assert_eq!(run(DeferredNotEarly, &s, &durable_ctx()), vec![]);
        // An early arrival before the loss is still reported.
        let mut s = requeued();
        s.at(30).marked(1, 9, true).deliver(2, 1, 2, "a");
        s.at(40).lose("nsqd1").at(50).restart("nsqd1");
        assert_eq!(run(DeferredNotEarly, &s, &durable_ctx()).len(), 1);
    }

    #[test]
    fn a_dpub_adopted_by_another_nsqd_keeps_its_due_time() {
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd2", "c", 10);
        s.at(10).publish_sent(1, "nsqd1", "t", &["d"], Some(1_000));
        s.at(20).answer(1, true).at(30).lose("nsqd1");
        s.at(500).deliver(2, 1, 1, "d");
        let v = run(DeferredNotEarly, &s, &replicated_ctx(2));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("to nsqd1, across a crash of nsqd1"),
            "{v:?}"
        );
        // Unreplicated, nsqd2 could not have it: that is `no_unexpected`'s to report.
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
        let mut s = Script::new();
        s.at(1).consumer(2, "nsqd2", "c", 10);
        s.at(10).publish_sent(1, "nsqd1", "t", &["d"], Some(1_000));
        s.at(20).answer(1, true).at(30).lose("nsqd1");
        s.at(1_010).deliver(2, 1, 1, "d");
        assert_eq!(run(DeferredNotEarly, &s, &replicated_ctx(2)), vec![]);
    }

    #[test]
    fn an_unconfirmed_requeue_before_a_crash_proves_nothing() {
        let mut s = requeued();
        s.at(30).marked(1, 9, false).close(1, false);
        s.at(40).crash("nsqd1").at(50).restart("nsqd1");
        s.at(60).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 1, "a");
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_redelivery_after_the_due_time_and_a_restart_passes() {
        // Delivered once it was due, never FINished, redelivered after a graceful restart
        // and again after a crash: at least once, and never early.
        let mut s = requeued();
        s.at(30).marked(1, 9, true);
        s.at(520).deliver(2, 1, 2, "a");
        s.at(600).stop("nsqd1").at(650).restart("nsqd1");
        s.at(700)
            .consumer(3, "nsqd1", "c", 10)
            .deliver(3, 1, 3, "a");
        s.at(800).crash("nsqd1").at(850).restart("nsqd1");
        s.at(900)
            .consumer(4, "nsqd1", "c", 10)
            .deliver(4, 1, 1, "a");
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
    }

    #[test]
    fn an_old_copy_still_arriving_from_the_stopped_process_is_not_counted() {
        // Conn 2 had an older copy (attempts 1, timed out) on its way; it arrives after
        // the stop. Only the REQ'd copy's successors must wait.
        let mut s = requeued();
        s.at(30).marked(1, 9, true);
        s.at(40).stop("nsqd1").at(45).deliver(2, 1, 1, "a");
        s.at(50).restart("nsqd1");
        assert_eq!(run(DeferredNotEarly, &s, &ctx()), vec![]);
    }
}
