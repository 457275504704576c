//! `drains`: at the end, every durable channel of every running nsqd is empty: nothing
//! waiting, in flight or deferred. Judged on each nsqd's last observation; an nsqd that is
//! running but was never observed is a violation too. Ephemeral channels are skipped. An
//! nsqd lost with its disk and never started again is not judged; one started again blank
//! is, like any other.

use super::view::{is_ephemeral, ms, View};
use super::{CheckContext, Invariant, Violation};

/// Every running nsqd not observed, and every channel observed not drained.
pub(crate) fn check(view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    let mut violations = Vec::new();
    for nsqd in ctx.nsqds.keys().filter(|n| view.running_at_end(n)) {
        let Some((at, channels)) = view.nsqd_seen.get(nsqd.as_str()) else {
            violations.push(Violation {
                invariant: Invariant::Drains,
                message_id: None,
                at: None,
                detail: format!("{nsqd} is running at the end but was not observed"),
            });
            continue;
        };
        for ((topic, channel), depths) in *channels {
            if is_ephemeral(channel)
                || (depths.depth, depths.in_flight, depths.deferred) == (0, 0, 0)
            {
                continue;
            }
            violations.push(Violation {
                invariant: Invariant::Drains,
                message_id: None,
                at: Some(*at),
                detail: format!(
                    "{nsqd} channel {topic:?}/{channel:?} observed at {} with depth {}, \
                     in flight {}, deferred {}",
                    ms(*at),
                    depths.depth,
                    depths.in_flight,
                    depths.deferred
                ),
            });
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, run, Script};
    use super::super::Invariant::Drains;

    #[test]
    fn empty_channels_pass_and_ephemeral_ones_are_skipped() {
        let mut s = Script::new();
        s.at(100).nsqd_seen(
            "nsqd1",
            &[("t", "c", 0, 0, 0), ("t", "e#ephemeral", 5, 1, 0)],
        );
        s.nsqd_seen("nsqd2", &[]);
        assert_eq!(run(Drains, &s, &ctx()), vec![]);
    }

    #[test]
    fn leftovers_and_missing_observations_are_reported() {
        let mut s = Script::new();
        s.at(100)
            .nsqd_seen("nsqd1", &[("t", "c", 0, 0, 2), ("t", "d", 1, 0, 0)]);
        let v = run(Drains, &s, &ctx());
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].detail.contains("deferred 2"));
        assert!(v[2]
            .detail
            .contains("nsqd2 is running at the end but was not observed"));
    }

    #[test]
    fn only_the_last_observation_counts() {
        let mut s = Script::new();
        s.at(100)
            .nsqd_seen("nsqd1", &[("t", "c", 4, 0, 0)])
            .nsqd_seen("nsqd2", &[]);
        s.at(200).nsqd_seen("nsqd1", &[("t", "c", 0, 0, 0)]);
        assert_eq!(run(Drains, &s, &ctx()), vec![]);
    }

    #[test]
    fn an_nsqd_down_at_the_end_is_not_judged() {
        let mut s = Script::new();
        s.at(50).crash("nsqd2");
        s.at(100).nsqd_seen("nsqd1", &[]);
        assert_eq!(run(Drains, &s, &ctx()), vec![]);
        s.at(150).restart("nsqd2");
        assert_eq!(run(Drains, &s, &ctx()).len(), 1);
    }

    #[test]
    fn an_nsqd_lost_for_good_is_not_judged_but_a_blank_one_is() {
        let mut s = Script::new();
        s.at(50).lose("nsqd2");
        s.at(100).nsqd_seen("nsqd1", &[]);
        assert_eq!(run(Drains, &s, &ctx()), vec![]);
        s.at(150)
            .restart("nsqd2")
            .at(200)
            .nsqd_seen("nsqd2", &[("t", "c", 1, 0, 0)]);
        assert_eq!(run(Drains, &s, &ctx()).len(), 1);
    }
}
