//! `fin_final`: once nsqd accepted a FIN, the message never comes back on that channel
//! in the same incarnation of the nsqd (a crash, or a loss with the disk, may resurrect
//! it; a graceful restart may not).
//!
//! A FIN is known to be accepted when its connection later closed with `CLOSE_WAIT` (or
//! answered a marker TOUCHed after it) and no `E_FIN_FAILED` named the id there. It removed the copy with attempts `a` from flight
//! ([`View::answered_attempts`] bounds `a` from above); attempts grow with every send, so
//! any arrival of the message with attempts above `a` was sent after the FIN.
//!
//! Exempt, as in `attempts_monotonic`: a message a replicated nsqd took over from a peer
//! (another node minted it). A failover that failed halfway (a disk error) is tried
//! again and queues what it had queued already a second time, FIN'd or not: a
//! duplicate, which at-least-once allows, and a REQ of it raises its attempts.

use std::collections::BTreeSet;

use super::view::{ms, Answer, Command, Delivery, Seq, View};
use super::{CheckContext, Invariant, Violation};

/// Every arrival of a message after an accepted FIN of it.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let by_key = view.copies_by_message();
    let mut reported: BTreeSet<Seq> = BTreeSet::new();
    let mut violations = Vec::new();
    for (conn_id, conn) in &view.conns {
        let Some(channel) = view.channel_of(*conn_id) else {
            continue;
        };
        let (nsqd, _, _) = channel;
        let facts = ctx.nsqds.get(nsqd);
        let fins = conn
            .answers
            .iter()
            .filter(|a| a.command == Command::Fin && view.confirmed(conn, a));
        for fin in fins {
            if facts.is_some_and(|facts| facts.adopted(&fin.id)) {
                continue;
            }
            let Some(finished) = view.answered_attempts(conn, fin, ctx) else {
                continue;
            };
            let key = (channel, conn.incarnation, fin.id);
            let returned = by_key.get(&key).into_iter().flatten();
            for delivery in returned.filter(|d| d.attempts > finished) {
                if reported.insert(delivery.seq) {
                    violations.push(violation(*conn_id, fin, finished, delivery));
                }
            }
        }
    }
    violations
}

fn violation(fin_conn: u64, fin: &Answer, finished: u16, delivery: &Delivery<'_>) -> Violation {
    Violation {
        invariant: Invariant::FinFinal,
        message_id: Some(delivery.id),
        at: Some(delivery.at),
        detail: format!(
            "arrived on conn {} at {} with attempts {} after conn {fin_conn} FINished it \
             (attempts at most {finished}) at {}",
            delivery.conn,
            ms(delivery.at),
            delivery.attempts,
            ms(fin.at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, replicated_ctx, run, Script};
    use super::super::Invariant::FinFinal;

    /// conn 1 receives id 1 at 10 ms and FINs it at 20 ms; conn 2 waits on the channel.
    fn finned() -> Script {
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd1", "c", 10);
        s.at(10).deliver(1, 1, 1, "a").at(20).fin(1, 1);
        s
    }

    #[test]
    fn a_finished_message_that_stays_away_passes() {
        let mut s = finned();
        s.at(30).close(1, true).close(2, true);
        assert_eq!(run(FinFinal, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_finished_message_that_returns_is_reported() {
        let mut s = finned();
        s.at(30).close(1, true).at(6000).deliver(2, 1, 2, "a");
        let v = run(FinFinal, &s, &ctx());
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, Some(6_000_000));
        assert!(v[0].detail.contains("conn 2") && v[0].detail.contains("conn 1 FINished"));
    }

    #[test]
    fn a_message_adopted_from_a_peer_may_return_but_an_own_one_may_not() {
        // Ids of the testkit are minted by node 0: on nsqd1 (node 1) they were adopted.
        let mut s = finned();
        s.at(30).close(1, true).at(6000).deliver(2, 1, 2, "a");
        assert_eq!(run(FinFinal, &s, &replicated_ctx(2)), vec![]);
        let mut own = replicated_ctx(2);
        if let Some(facts) = own.nsqds.get_mut("nsqd1") {
            facts.node_id = 0;
        }
        assert_eq!(run(FinFinal, &s, &own).len(), 1, "minted by nsqd1");
    }

    #[test]
    fn an_unconfirmed_or_failed_fin_proves_nothing() {
        let mut s = finned();
        s.at(30).close(1, false).at(6000).deliver(2, 1, 2, "a");
        assert_eq!(run(FinFinal, &s, &ctx()), vec![]);

        let mut s = finned();
        s.error(
            1,
            "E_FIN_FAILED FIN 0000000000000001 failed ID not in flight",
        );
        s.at(30).close(1, true).at(6000).deliver(2, 1, 2, "a");
        assert_eq!(run(FinFinal, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_fin_sent_after_close_wait_proves_nothing() {
        // The consumer FINs what it still holds after CLOSE_WAIT: nothing answers those.
        let mut s = Script::new();
        s.at(1)
            .consumer(1, "nsqd1", "c", 10)
            .consumer(2, "nsqd1", "c", 10);
        s.at(10)
            .deliver(1, 1, 1, "a")
            .at(20)
            .close(1, true)
            .fin(1, 1);
        s.at(6000).deliver(2, 1, 2, "a").close(2, true);
        assert_eq!(run(FinFinal, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_crash_may_resurrect_but_a_graceful_restart_may_not() {
        let mut s = finned();
        s.at(30)
            .close(1, true)
            .at(40)
            .crash("nsqd1")
            .restart("nsqd1");
        s.at(50).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 2, "a");
        assert_eq!(run(FinFinal, &s, &ctx()), vec![]);

        let mut s = finned();
        s.at(30)
            .close(1, true)
            .at(40)
            .stop("nsqd1")
            .restart("nsqd1");
        s.at(50).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 2, "a");
        assert_eq!(run(FinFinal, &s, &ctx()).len(), 1);
    }

    #[test]
    fn after_a_loss_a_finished_message_may_come_again() {
        // The blank nsqd may take it back from a replica whose FIN batch was not sent.
        let mut s = finned();
        s.at(30)
            .close(1, true)
            .at(40)
            .lose("nsqd1")
            .at(50)
            .restart("nsqd1");
        s.at(60).consumer(3, "nsqd1", "c", 10).deliver(3, 1, 2, "a");
        assert_eq!(run(FinFinal, &s, &ctx()), vec![]);
    }

    #[test]
    fn a_late_fin_may_have_finished_the_next_copy_on_its_connection() {
        // The copy timed out (FIN came 6 s later), was resent to conn 1 and the FIN
        // finished that one: its arrival after the FIN is no violation.
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 10);
        s.at(10).deliver(1, 1, 1, "a").at(6010).fin(1, 1);
        s.at(6020).deliver(1, 1, 2, "a").at(6030).close(1, true);
        assert_eq!(run(FinFinal, &s, &ctx()), vec![]);

        // A prompt FIN finished the first copy: the second one is a violation.
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 10);
        s.at(10).deliver(1, 1, 1, "a").at(20).fin(1, 1);
        s.at(6020).deliver(1, 1, 2, "a").at(6030).close(1, true);
        assert_eq!(run(FinFinal, &s, &ctx()).len(), 1);
    }

    #[test]
    fn a_timing_fault_makes_the_answered_copy_uncertain() {
        let mut s = Script::new();
        s.at(1).consumer(1, "nsqd1", "c", 10);
        s.at(10).deliver(1, 1, 1, "a").at(20).fin(1, 1);
        s.at(6020).deliver(1, 1, 2, "a").at(6030).close(1, true);
        let mut ctx = ctx();
        ctx.unreliable_timing = vec![(15_000, 16_000)];
        assert_eq!(run(FinFinal, &s, &ctx), vec![]);
    }
}
