//! `rdy_respected`: nsqd never has more messages in flight to a connection than the
//! largest RDY the consumer sent.
//!
//! Why this is sound although nsqd's own count is hidden: when message `n` arrives at
//! `r_n`, nsqd sent it at some `s_n < r_n` with fewer than RDY messages in flight to this
//! connection, RDY being one it had read, so one sent before `r_n`. We count a lower bound
//! of that in-flight set: the messages `m` that arrived earlier on the same connection (TCP
//! keeps order, so `m` was sent before `n`) and that were surely still in flight at `s_n`:
//! - not answered: a FIN or REQ sent before `r_n` may have been read before `s_n`, so
//!   any such answer counts as done (one sent after `r_n` was read after `s_n`);
//! - not timed out: `m` was sent at `s_m >= r_m - max_latency`, so it cannot time out
//!   before `s_m + msg_timeout >= r_m + msg_timeout - max_latency > r_n > s_n`;
//! - only the last copy of each id: an earlier copy left flight before the next was sent,
//!   and a copy that may have been taken by an earlier, ambiguous FIN or REQ (see
//!   [`View::answered_copy`]) is not counted.
//!
//! Arrivals in an unreliable timing window are neither judged nor counted, since
//! `max_latency` does not bound their transit.

use std::collections::BTreeMap;

use nsq::protocol::message::MessageId;

use super::view::{ms, ms_to_micros, unreliable, Command, Conn, Delivery, View};
use super::{CheckContext, Invariant, Violation};
use crate::history::ConnId;

/// Every arrival that took a connection over its RDY.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (conn_id, conn) in &view.conns {
        let Some(facts) = ctx.nsqds.get(conn.nsqd) else {
            continue;
        };
        let expiry =
            ms_to_micros(facts.msg_timeout_ms).saturating_sub(ms_to_micros(ctx.max_latency_ms));
        violations.extend(check_conn(view, ctx, *conn_id, conn, expiry));
    }
    violations
}

/// A step of one connection's life, in history order.
enum Step<'a, 'h> {
    Rdy(u64),
    Answer(MessageId),
    Arrival(&'a Delivery<'h>),
}

fn check_conn(
    view: &View<'_>,
    ctx: &CheckContext,
    conn_id: ConnId,
    conn: &Conn<'_>,
    expiry: u64,
) -> Vec<Violation> {
    let mut steps: Vec<(usize, Step<'_, '_>)> = Vec::new();
    steps.extend(
        conn.rdy
            .iter()
            .map(|(seq, count)| (*seq, Step::Rdy(*count))),
    );
    steps.extend(
        conn.answers
            .iter()
            .filter(|a| a.command != Command::Touch)
            .map(|a| (a.seq, Step::Answer(a.id))),
    );
    steps.extend(
        conn.deliveries
            .iter()
            .filter_map(|i| view.deliveries.get(*i))
            .map(|d| (d.seq, Step::Arrival(d))),
    );
    steps.sort_by_key(|(seq, _)| *seq);

    let mut rdy_max = 0;
    let mut in_flight: BTreeMap<MessageId, &Delivery<'_>> = BTreeMap::new();
    let mut violations = Vec::new();
    for (_, step) in steps {
        match step {
            Step::Rdy(count) => rdy_max = rdy_max.max(count),
            Step::Answer(id) => {
                in_flight.remove(&id);
            }
            Step::Arrival(n) => {
                in_flight.retain(|_, m| n.at < m.at.saturating_add(expiry));
                in_flight.remove(&n.id);
                if unreliable(ctx, n.at) {
                    continue;
                }
                let held = in_flight.len() as u64 + 1;
                if held > rdy_max {
                    violations.push(over(conn_id, n, held, rdy_max));
                }
                if !maybe_answered(view, ctx, conn, n) {
                    in_flight.insert(n.id, n);
                }
            }
        }
    }
    violations
}

/// Whether a FIN or REQ sent before `copy` arrived may have taken it out of flight.
fn maybe_answered(
    view: &View<'_>,
    ctx: &CheckContext,
    conn: &Conn<'_>,
    copy: &Delivery<'_>,
) -> bool {
    let prev_seq = conn
        .deliveries
        .iter()
        .filter_map(|i| view.deliveries.get(*i))
        .rev()
        .find(|d| d.id == copy.id && d.seq < copy.seq)
        .map(|d| d.seq);
    let Some(prev_seq) = prev_seq else {
        return false;
    };
    conn.answers.iter().any(|a| {
        a.id == copy.id
            && a.command != Command::Touch
            && prev_seq < a.seq
            && a.seq < copy.seq
            && view.answered_copy(conn, a, ctx).is_none()
    })
}

fn over(conn_id: ConnId, n: &Delivery<'_>, held: u64, rdy_max: u64) -> Violation {
    Violation {
        invariant: Invariant::RdyRespected,
        message_id: Some(n.id),
        at: Some(n.at),
        detail: format!(
            "arrived on conn {conn_id} at {} with at least {held} messages in flight there \
             (counting itself), but the largest RDY sent so far was {rdy_max}",
            ms(n.at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, run, Script};
    use super::super::Invariant::RdyRespected;

    #[test]
    fn deliveries_within_rdy_pass() {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 2);
        s.at(10).deliver(1, 1, 1, "a").deliver(1, 2, 1, "b");
        s.at(20).fin(1, 1).at(30).deliver(1, 3, 1, "c");
        s.at(40).req(1, 2, 0).at(50).deliver(1, 2, 2, "b");
        assert_eq!(run(RdyRespected, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_delivery_beyond_rdy_is_reported() {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 2);
        s.at(10)
            .deliver(1, 1, 1, "a")
            .deliver(1, 2, 1, "b")
            .deliver(1, 3, 1, "c");
        let v = run(RdyRespected, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].detail.contains("at least 3") && v[0].detail.contains("RDY sent so far was 2")
        );
    }

    #[test]
    fn a_delivery_before_any_rdy_is_reported() {
        let mut s = Script::new();
        s.at(1)
            .connect(1, "nsqd1")
            .sub(1, "t", "c")
            .deliver(1, 1, 1, "a");
        assert_eq!(run(RdyRespected, &s, &ctx()).len(), 1);
    }

    #[test]
    fn messages_that_may_have_timed_out_do_not_count() {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 1);
        // 5 s timeout, 25 ms latency: the first surely stays in flight until 10 + 5000 - 25 ms.
        s.at(10)
            .deliver(1, 1, 1, "a")
            .at(4_986)
            .deliver(1, 2, 1, "b");
        assert_eq!(run(RdyRespected, &s, &ctx()), vec![]);
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 1);
        s.at(10)
            .deliver(1, 1, 1, "a")
            .at(4_984)
            .deliver(1, 2, 1, "b");
        assert_eq!(run(RdyRespected, &s, &ctx()).len(), 1);
    }

    #[test]
    fn a_redelivered_id_counts_once() {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 1);
        s.at(10)
            .deliver(1, 1, 1, "a")
            .at(5_100)
            .deliver(1, 1, 2, "a");
        assert_eq!(run(RdyRespected, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_late_fin_may_have_taken_the_next_copy() {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 1);
        s.at(10).deliver(1, 1, 1, "a").at(6_000).fin(1, 1);
        s.at(6_010)
            .deliver(1, 1, 2, "a")
            .at(6_020)
            .deliver(1, 2, 1, "b");
        assert_eq!(run(RdyRespected, &s, &ctx()), vec![]);
    }

    #[test]
    fn deliveries_inside_a_timing_window_are_skipped() {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 1);
        s.at(10).deliver(1, 1, 1, "a").at(20).deliver(1, 2, 1, "b");
        let mut ctx = ctx();
        ctx.unreliable_timing = vec![(15_000, 25_000)];
        assert_eq!(run(RdyRespected, &s, &ctx), vec![]);
    }
}
