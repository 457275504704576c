//! Swarm testing: per seed, switch whole fault classes off at random and draw the rest's
//! rates from the scenario's `[swarm]` ranges, then draw a concrete fault schedule
//! (Groce et al., "Swarm Testing"; TigerBeetle's VOPR). Faults never flap faster than
//! `min_fault_stability_ms`, never overlap on one host, and all end before the heal, except
//! the loss of a host for good (`lose_forever_share`), which never ends.

use nsq::env::{Rng, SeededRng};

use crate::scenario::{
    DiskFault, Fault, GracefulRestartFault, HostKind, HostsFault, LatencyFault, LinkFault,
    LoseFault, Scenario, Swarm,
};
use crate::workload::draw;

/// Mixed into the seed so the swarm's draws differ from the daemons'.
const SWARM_SALT: u64 = 0x5157_4152_4d00_0001;

/// A fault class and the rate drawn for it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Class {
    kind: ClassKind,
    per_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClassKind {
    Partition,
    Hold,
    Crash,
    GracefulRestart,
    Disk,
    Latency,
    Lose,
}

/// The faults a swarm run of `scenario` adds for `seed`, plus a one-line summary of the
/// classes drawn (for reports).
pub fn draw_faults(scenario: &Scenario, swarm: &Swarm, seed: u64) -> (Vec<Fault>, String) {
    let rng = SeededRng::new(seed ^ SWARM_SALT);
    let classes = draw_classes(swarm, &rng);
    let summary = classes
        .iter()
        .map(|c| format!("{:?}={:.3}/s", c.kind, c.per_s).to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    let hosts: Vec<String> = if swarm.hosts.is_empty() {
        scenario.hosts.iter().map(|h| h.name.clone()).collect()
    } else {
        swarm.hosts.clone()
    };
    let everyone: Vec<String> = scenario
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .chain(scenario.workloads.iter().map(|w| w.name().to_string()))
        .collect();
    let mut faults = Vec::new();
    let mut busy_until = vec![0u64; hosts.len()];
    let mut lost_forever = 0;
    let mut losses = 0;
    let step = swarm.min_fault_stability_ms;
    let last_start = scenario.heal_at_ms.saturating_sub(step);
    let mut t = step;
    while t < last_start && !hosts.is_empty() {
        for class in &classes {
            let p = (class.per_s * step as f64 / 1000.0).min(1.0);
            if (rng.below(1_000_000) as f64) >= p * 1_000_000.0 {
                continue;
            }
            let index = rng.below(hosts.len() as u64) as usize;
            if busy_until[index] > t {
                continue;
            }
            let host = &hosts[index];
            let is_nsqd = scenario.host(host).map(|h| h.kind) == Some(HostKind::Nsqd);
            // Only nsqds have disks to fault or lose (a lookupd's loss is a crash).
            if matches!(class.kind, ClassKind::Disk | ClassKind::Lose) && !is_nsqd {
                continue;
            }
            let counts_as_loss = class.kind == ClassKind::Lose
                || (class.kind == ClassKind::Crash && swarm.crash_counts_as_loss && is_nsqd);
            if counts_as_loss {
                if swarm.lose_max.is_some_and(|max| losses >= max) {
                    continue;
                }
                losses += 1;
            }
            let end = (t + draw(&rng, swarm.down_ms)).min(scenario.heal_at_ms - 1);
            busy_until[index] = end + step;
            let others: Vec<String> = everyone.iter().filter(|h| *h != host).cloned().collect();
            let link = |at_ms| LinkFault {
                at_ms,
                a: vec![host.clone()],
                b: others.clone(),
                oneway: false,
            };
            let hosts_fault = |at_ms| HostsFault {
                at_ms,
                hosts: vec![host.clone()],
            };
            match class.kind {
                ClassKind::Partition => {
                    faults.push(Fault::Partition(link(t)));
                    faults.push(Fault::Repair(link(end)));
                }
                ClassKind::Hold => {
                    faults.push(Fault::Hold(link(t)));
                    faults.push(Fault::Release(link(end)));
                }
                ClassKind::Crash => {
                    faults.push(Fault::Crash(hosts_fault(t)));
                    faults.push(Fault::Restart(hosts_fault(end)));
                }
                ClassKind::GracefulRestart => {
                    faults.push(Fault::GracefulRestart(GracefulRestartFault {
                        at_ms: t,
                        hosts: vec![host.clone()],
                        down_ms: end - t,
                    }));
                }
                ClassKind::Disk => {
                    let which = rng.below(3);
                    let disk = |at_ms, on: bool| DiskFault {
                        at_ms,
                        host: host.clone(),
                        write_errors: (which == 0).then_some(on),
                        fsync_errors: (which == 1).then_some(on),
                        full: (which == 2).then_some(on),
                    };
                    faults.push(Fault::Disk(disk(t, true)));
                    faults.push(Fault::Disk(disk(end, false)));
                }
                ClassKind::Lose => {
                    let forever = lost_forever < swarm.lose_forever_max_hosts
                        && (rng.below(1_000_000) as f64) < swarm.lose_forever_share * 1_000_000.0;
                    if forever {
                        lost_forever += 1;
                        busy_until[index] = u64::MAX;
                    }
                    faults.push(Fault::Lose(LoseFault {
                        at_ms: t,
                        hosts: vec![host.clone()],
                        down_ms: (!forever).then_some(end - t),
                    }));
                }
                ClassKind::Latency => {
                    let ms = draw(&rng, swarm.latency_ms);
                    let latency = |at_ms, ms| LatencyFault {
                        at_ms,
                        a: vec![host.clone()],
                        b: others.clone(),
                        ms,
                    };
                    faults.push(Fault::Latency(latency(t, ms)));
                    faults.push(Fault::Latency(latency(end, 0)));
                }
            }
        }
        t += step;
    }
    (faults, summary)
}

/// Each class is on for about half the seeds; an enabled class's rate is drawn from its
/// range. Classes whose range is `[0, 0]` never appear.
fn draw_classes(swarm: &Swarm, rng: &dyn Rng) -> Vec<Class> {
    let ranges = [
        (ClassKind::Partition, swarm.partition_probability_per_s),
        (ClassKind::Hold, swarm.hold_probability_per_s),
        (ClassKind::Crash, swarm.crash_probability_per_s),
        (
            ClassKind::GracefulRestart,
            swarm.graceful_restart_probability_per_s,
        ),
        (ClassKind::Disk, swarm.disk_fault_probability_per_s),
        (ClassKind::Latency, swarm.latency_probability_per_s),
    ];
    let mut classes = Vec::new();
    // Classes added later draw only when their range is not `[0, 0]`, so the schedules
    // of scenarios written before them stay what they were.
    let later = [(ClassKind::Lose, swarm.lose_probability_per_s)]
        .into_iter()
        .filter(|(_, [_, hi])| *hi > 0.0);
    for (kind, [lo, hi]) in ranges.into_iter().chain(later) {
        let on = rng.below(2) == 1;
        let unit = rng.below(1_000_001) as f64 / 1_000_000.0;
        if on && hi > 0.0 {
            classes.push(Class {
                kind,
                per_s: lo + (hi - lo) * unit,
            });
        }
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(swarm: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\ndescription = \"d\"\nheal_at_ms = 60_000\nsettle_ms = 1_000\n\
             [[host]]\nname = \"lookupd1\"\nkind = \"nsqlookupd\"\n\
             [[host]]\nname = \"nsqd1\"\nkind = \"nsqd\"\n\
             [[host]]\nname = \"nsqd2\"\nkind = \"nsqd\"\n\
             [[host]]\nname = \"nsqd3\"\nkind = \"nsqd\"\n[swarm]\n{swarm}\n"
        );
        Scenario::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn draw(scenario: &Scenario, seed: u64) -> Vec<Fault> {
        let swarm = scenario.swarm.as_ref().expect("a swarm section");
        draw_faults(scenario, swarm, seed).0
    }

    fn losses(faults: &[Fault]) -> Vec<&LoseFault> {
        faults
            .iter()
            .filter_map(|f| match f {
                Fault::Lose(l) => Some(l),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn losses_are_drawn_blank_or_for_good_within_the_cap() {
        let s = scenario(
            "lose_probability_per_s = [0.2, 0.5]\nlose_forever_share = 0.5\n\
             crash_probability_per_s = [0.1, 0.2]\nmin_fault_stability_ms = 1_000",
        );
        let (mut blank, mut forever) = (0, 0);
        for seed in 1..=40 {
            let faults = draw(&s, seed);
            let lost = losses(&faults);
            let for_good: Vec<_> = lost.iter().filter(|l| l.down_ms.is_none()).collect();
            assert!(for_good.len() <= 1, "seed {seed}: {for_good:?}");
            if let Some(gone) = for_good.first() {
                // Nothing else happens to a host lost for good.
                let later = faults.iter().any(|f| {
                    f.at_ms() > gone.at_ms
                        && match f {
                            Fault::Crash(h) | Fault::Restart(h) => h.hosts == gone.hosts,
                            Fault::Lose(l) => l.hosts == gone.hosts,
                            _ => false,
                        }
                });
                assert!(!later, "seed {seed}: a fault after {gone:?}");
            }
            for l in &lost {
                assert_ne!(l.hosts, ["lookupd1"], "seed {seed}: only nsqds lose disks");
                let down = l.down_ms.unwrap_or(0);
                assert!(l.at_ms + down < s.heal_at_ms, "seed {seed}: {l:?}");
            }
            forever += for_good.len();
            blank += lost.len() - for_good.len();
        }
        assert!(blank > 5 && forever > 5, "blank {blank}, forever {forever}");
    }

    #[test]
    fn a_swarm_without_losses_draws_as_before() {
        // The lose class draws nothing when its range is [0, 0], so the schedules of
        // scenarios written before it are unchanged: the same draws with or without the
        // (zero) lose keys.
        let before = scenario("crash_probability_per_s = [0.1, 0.5]");
        let after = scenario(
            "crash_probability_per_s = [0.1, 0.5]\nlose_probability_per_s = [0.0, 0.0]\n\
             lose_forever_share = 0.5",
        );
        for seed in 1..=20 {
            let faults = draw(&before, seed);
            assert!(losses(&faults).is_empty());
            assert_eq!(faults, draw(&after, seed), "seed {seed}");
        }
    }
}
