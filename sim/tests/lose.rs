//! The `lose` fault end to end, on unreplicated nsqds: a crash-safe nsqd
//! (`--mem-queue-size=0 --sync-every=1`) is lost with its disk while it holds acknowledged
//! messages nobody has received yet, and comes back blank (or never). Every checker must
//! pass: `no_loss` excuses exactly what only the lost disk held (a plain crash of this nsqd
//! would excuse nothing), the blank nsqd drains and registers again, an nsqd lost for good
//! is neither judged for draining nor listed by lookupd, and `replicated_no_loss` has
//! nothing to judge on unreplicated nsqds.

use std::collections::BTreeSet;

use nsq_sim::check::Invariant;
use nsq_sim::history::Event;
use nsq_sim::runner::{self, Report, RunOptions};
use nsq_sim::scenario::Scenario;

/// Two nsqds and a lookupd; `nsqd1` is crash-safe. The consumer holds one message at a
/// time and lets it time out before the heal, so `nsqd1` has a backlog of acknowledged,
/// undelivered messages when `fault` hits it.
fn scenario(fault: &str) -> Scenario {
    let text = format!(
        r#"
name = "lose-test"
description = "nsqd1 lost with its disk while holding a backlog"
heal_at_ms = 8_000
settle_ms = 40_000

[[host]]
name = "lookupd1"
kind = "nsqlookupd"

[[host]]
name = "nsqd1"
kind = "nsqd"
lookupd = ["lookupd1"]
opts = {{ mem_queue_size = 0, sync_every = 1, msg_timeout = "2s" }}

[[host]]
name = "nsqd2"
kind = "nsqd"
lookupd = ["lookupd1"]
opts = {{ msg_timeout = "2s" }}

[[workload]]
kind = "consumer"
name = "consumer1"
discover = "lookupd"
topic = "orders"
channel = "archive"
max_in_flight = 1
poll_ms = 500
actions = {{ fin = 0.2, timeout = 0.8 }}

[[workload]]
kind = "producer"
name = "producer1"
target = "nsqd1"
topic = "orders"
count = 200
rate_per_s = 40
start_ms = 1_000

[[workload]]
kind = "producer"
name = "producer2"
target = "nsqd2"
topic = "orders"
count = 100
rate_per_s = 20
start_ms = 1_000

[[fault]]
{fault}
"#
    );
    Scenario::parse(&text, "lose-test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn run(scenario: &Scenario) -> Report {
    let options = RunOptions {
        seed: 7,
        ..RunOptions::default()
    };
    runner::run(scenario, &options).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_passed(report: &Report) {
    let failures: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    assert!(
        report.passed(),
        "seed {}: failure: {:?}\n{}",
        report.seed,
        report.failure,
        failures.join("\n")
    );
}

/// The bodies `host` answered OK to before the first loss of `host`, that no consumer
/// ever received: what only the lost disk held.
fn lost_bodies(report: &Report, host: &str) -> usize {
    let entries = report.history.entries();
    let lost_at = entries
        .iter()
        .position(|e| matches!(&e.event, Event::HostLost { host: h } if h == host))
        .unwrap_or_else(|| panic!("no HostLost of {host} in the history"));
    assert!(
        matches!(&entries[lost_at - 1].event, Event::HostCrashed { host: h } if h == host),
        "the loss is recorded right after the crash"
    );
    let delivered: BTreeSet<&[u8]> = entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Delivered { body, .. } => Some(body.as_ref()),
            _ => None,
        })
        .collect();
    let mut sent = std::collections::BTreeMap::new();
    let mut acked = 0;
    for entry in &entries[..lost_at] {
        match &entry.event {
            Event::PublishSent {
                publish,
                nsqd,
                bodies,
                ..
            } if nsqd == host => {
                sent.insert(*publish, bodies);
            }
            Event::PublishAnswered {
                publish, ok: true, ..
            } => {
                if let Some(bodies) = sent.get(publish) {
                    acked += bodies
                        .iter()
                        .filter(|b| !delivered.contains(b.as_ref()))
                        .count();
                }
            }
            _ => {}
        }
    }
    acked
}

#[test]
fn a_node_lost_and_restarted_blank_passes_every_checker() {
    let scenario =
        scenario("at_ms = 3_000\naction = \"lose\"\nhosts = [\"nsqd1\"]\ndown_ms = 500\n");
    assert!(scenario.enabled_invariants().contains(&Invariant::NoLoss));
    assert!(scenario
        .enabled_invariants()
        .contains(&Invariant::ReplicatedNoLoss));
    let report = run(&scenario);
    assert_passed(&report);
    assert!(
        lost_bodies(&report, "nsqd1") > 0,
        "the loss should have taken acknowledged messages with it"
    );
    let restarted = report.history.entries().iter().any(|e| {
        e.at > 3_000_000
            && e.at < 8_000_000
            && matches!(&e.event, Event::HostRestarted { host } if host == "nsqd1")
    });
    assert!(restarted, "nsqd1 should start again blank before the heal");
    let observed_blank = report.history.entries().iter().any(|e| {
        matches!(&e.event, Event::NsqdObserved { nsqd, channels } if nsqd == "nsqd1" && !channels.is_empty())
    });
    assert!(
        observed_blank,
        "the blank nsqd1 should serve the topic again"
    );
}

#[test]
fn a_node_lost_for_good_stays_down_and_passes_every_checker() {
    let scenario = scenario("at_ms = 3_000\naction = \"lose\"\nhosts = [\"nsqd1\"]\n");
    let report = run(&scenario);
    assert_passed(&report);
    assert!(lost_bodies(&report, "nsqd1") > 0);
    let entries = report.history.entries();
    let restarted = entries
        .iter()
        .any(|e| matches!(&e.event, Event::HostRestarted { host } if host == "nsqd1"));
    assert!(
        !restarted,
        "a host lost for good is not started, not even by the heal"
    );
    assert!(entries.iter().any(|e| matches!(e.event, Event::Healed)));
}

#[test]
fn a_plain_crash_of_the_crash_safe_node_excuses_nothing() {
    // The control experiment: the same crash without the loss of the disk keeps every
    // acknowledged message, and the checkers pass without any exemption.
    let scenario = scenario(
        "at_ms = 3_000\naction = \"crash\"\nhosts = [\"nsqd1\"]\n\n[[fault]]\nat_ms = 3_500\naction = \"restart\"\nhosts = [\"nsqd1\"]\n",
    );
    assert_passed(&run(&scenario));
}

#[test]
fn a_swarm_drawing_losses_passes_every_checker() {
    let fault = "at_ms = 7_000\naction = \"latency\"\na = [\"nsqd1\"]\nb = [\"nsqd2\"]\nms = 0\n\n\
                 [swarm]\nlose_probability_per_s = [0.2, 0.6]\nlose_forever_share = 0.3\n\
                 crash_probability_per_s = [0.0, 0.2]\ndown_ms = [300, 2_000]\n\
                 min_fault_stability_ms = 1_000\n";
    let scenario = scenario(fault);
    let mut seeds_with_losses = 0;
    for seed in 1..=8 {
        let options = RunOptions {
            seed,
            swarm: true,
            ..RunOptions::default()
        };
        let report = runner::run(&scenario, &options).unwrap_or_else(|e| panic!("{e}"));
        assert_passed(&report);
        let lost = report
            .history
            .entries()
            .iter()
            .any(|e| matches!(e.event, Event::HostLost { .. }));
        seeds_with_losses += usize::from(lost);
    }
    assert!(
        seeds_with_losses >= 2,
        "only {seeds_with_losses} seeds lost a host"
    );
}

#[test]
fn lose_faults_are_validated() {
    let refused = |fault: &str| {
        let text = format!(
            "name = \"t\"\ndescription = \"d\"\nheal_at_ms = 1000\nsettle_ms = 1000\n\
             [[host]]\nname = \"nsqd1\"\nkind = \"nsqd\"\n[[fault]]\n{fault}\n"
        );
        Scenario::parse(&text, "bad.toml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let unknown_host = refused("at_ms = 5\naction = \"lose\"\nhosts = [\"nsqd9\"]");
    assert!(unknown_host.contains("fault[0].hosts"), "{unknown_host}");
    let empty = refused("at_ms = 5\naction = \"lose\"\nhosts = []");
    assert!(empty.contains("names no host"), "{empty}");
    let typo = refused("at_ms = 5\naction = \"lose\"\nhosts = [\"nsqd1\"]\ndown = 5");
    assert!(typo.contains("down"), "{typo}");
    assert_eq!(
        refused("at_ms = 5\naction = \"lose\"\nhosts = [\"nsqd1\"]\ndown_ms = 5"),
        ""
    );
}
