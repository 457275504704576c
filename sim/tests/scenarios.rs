//! Every scenario file under `scenarios/` (and `scenarios/regressions/`) runs at its fixed
//! seed and must pass every checker it enables; one runs twice to prove the same seed gives
//! the same history; the swarm file runs 50 seeds; deliberately broken nsqds (a FIN that
//! loses a message, due times forgotten at restart) must be caught; and bad scenario files
//! are refused naming the key.

use std::path::{Path, PathBuf};

use nsq_sim::check::Invariant;
use nsq_sim::runner::{self, Report, RunOptions};
use nsq_sim::scenario::{Scenario, ScenarioError};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Every scenario file, sorted, regressions included. (The test reads the real
/// repository; only simulated daemons must go through `Env`.)
#[allow(clippy::disallowed_methods)]
fn scenario_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [scenarios_dir(), scenarios_dir().join("regressions")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn run(file: &Path, options: &RunOptions) -> Report {
    let scenario = Scenario::load(file).unwrap_or_else(|e| panic!("{e}"));
    runner::run(&scenario, options).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn describe_failure(file: &Path, report: &Report, swarm: bool) -> String {
    let mut text = format!("{} seed {} failed", report.scenario, report.seed);
    if let Some(failure) = &report.failure {
        text.push_str(&format!("\n  simulation failed: {failure}"));
    }
    for violation in report.violations.iter().take(5) {
        text.push_str(&format!("\n  {violation}"));
    }
    if report.violations.len() > 5 {
        text.push_str(&format!(
            "\n  ... {} violations in all",
            report.violations.len()
        ));
    }
    text.push_str(&format!(
        "\n  replay: {}",
        runner::replay_command(file, report.seed, swarm)
    ));
    text
}

#[test]
fn there_are_at_least_twelve_scenarios_each_with_a_description() {
    let files = scenario_files();
    assert!(files.len() >= 12, "only {} scenario files", files.len());
    for file in files {
        let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            scenario.description.trim().len() >= 40,
            "{}: the description should say what the scenario exercises",
            file.display()
        );
    }
}

#[test]
fn every_scenario_passes_at_its_seed() {
    let mut failures = Vec::new();
    for file in scenario_files() {
        let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let report = run(
            &file,
            &RunOptions {
                seed: scenario.seed,
                ..RunOptions::default()
            },
        );
        assert!(
            report.history.entries().len() > 100,
            "{}: the run did almost nothing",
            file.display()
        );
        if !report.passed() {
            failures.push(describe_failure(&file, &report, false));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_seed_gives_the_same_history() {
    let file = scenarios_dir().join("nsqd-crash-each-sync-setting.toml");
    let options = RunOptions {
        seed: 42,
        ..RunOptions::default()
    };
    let first = run(&file, &options);
    let second = run(&file, &options);
    assert_eq!(first.hash, second.hash);
    assert_eq!(first.history, second.history);
    let other = run(
        &file,
        &RunOptions {
            seed: 43,
            ..RunOptions::default()
        },
    );
    assert_ne!(
        first.hash, other.hash,
        "a different seed changes the history"
    );
}

/// Runs swarm seeds `seeds` of the swarm file; returns the failures and the distinct
/// fault-class draws seen.
fn swarm(seeds: std::ops::RangeInclusive<u64>) -> (Vec<String>, usize) {
    let file = scenarios_dir().join("swarm-mix.toml");
    let mut failures = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for seed in seeds {
        let report = run(
            &file,
            &RunOptions {
                seed,
                swarm: true,
                ..RunOptions::default()
            },
        );
        classes.insert(report.swarm_classes.clone().unwrap_or_default());
        if !report.passed() {
            failures.push(describe_failure(&file, &report, true));
        }
    }
    (failures, classes.len())
}

// The 50-seed swarm is split in two so the halves run on two cores.
#[test]
fn a_swarm_of_fifty_seeds_passes_first_half() {
    let (failures, classes) = swarm(1..=25);
    assert!(classes > 10, "seeds should draw different fault classes");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_swarm_of_fifty_seeds_passes_second_half() {
    let (failures, classes) = swarm(26..=50);
    assert!(classes > 10, "seeds should draw different fault classes");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `scenario` at seed 1 with the planted bugs of `buggify`, and checks that the
/// first violation is `invariant` (its detail containing `detail`) and that the failure
/// text gives the replay command.
fn caught_with_a_replay_command(
    scenario: &str,
    buggify: nsq::nsqd::Buggify,
    invariant: Invariant,
    detail: &str,
) {
    let file = scenarios_dir().join(scenario);
    let options = RunOptions {
        seed: 1,
        buggify,
        ..RunOptions::default()
    };
    let report = run(&file, &options);
    assert!(!report.passed(), "the broken build was not caught");
    let first = &report.violations[0];
    assert_eq!(first.invariant, invariant, "{first}");
    assert!(first.detail.contains(detail), "{first}");
    let text = describe_failure(&file, &report, false);
    assert!(
        text.contains("replay: cargo run -p nsq-sim --bin nsq-sim -- run")
            && text.contains(&format!("{scenario} --seed 1")),
        "{text}"
    );
}

#[test]
fn a_fin_that_loses_a_message_is_caught_with_a_replay_command() {
    let buggify = nsq::nsqd::Buggify {
        fin_loses_next_message: true,
        ..nsq::nsqd::Buggify::default()
    };
    caught_with_a_replay_command("smoke.toml", buggify, Invariant::NoLoss, "");
}

#[test]
fn a_due_time_forgotten_at_restart_is_caught_with_a_replay_command() {
    // The planted bug: at startup every loaded due time becomes the restart time, so the
    // deferred messages waiting across the graceful restart arrive at once.
    let buggify = nsq::nsqd::Buggify {
        deferred_due_at_restart: true,
        ..nsq::nsqd::Buggify::default()
    };
    caught_with_a_replay_command(
        "dpub-across-restart.toml",
        buggify,
        Invariant::DeferredNotEarly,
        "across a graceful stop of nsqd1",
    );
}

#[test]
fn an_unsynced_spill_of_read_early_messages_is_caught_with_a_replay_command() {
    // The planted bug: deferred messages read early from a disk queue leave it once
    // their spill segment is written, without the fsync, so the power cuts of the
    // scenario lose acknowledged DPUBs on the crash-safe nsqd.
    let buggify = nsq::nsqd::Buggify {
        read_early_spill_unsynced: true,
        ..nsq::nsqd::Buggify::default()
    };
    caught_with_a_replay_command(
        "deferred-across-crashes.toml",
        buggify,
        Invariant::NoLoss,
        "nsqd-durable",
    );
}

#[test]
fn an_ok_before_the_replicas_hold_the_message_is_caught_with_a_replay_command() {
    // The planted bug: a replicated publish is answered OK without waiting for the
    // replicas. Cut off from them and then lost, the owner takes those publishes along.
    let buggify = nsq::nsqd::Buggify {
        replica_ok_before_ack: true,
        ..nsq::nsqd::Buggify::default()
    };
    caught_with_a_replay_command(
        "replicated-owner-cut-off-then-lost.toml",
        buggify,
        Invariant::ReplicatedNoLoss,
        "never delivered",
    );
}

#[test]
fn a_fin_that_drops_copies_other_channels_need_is_caught_with_a_replay_command() {
    // The planted bug: a replica takes a FIN on one channel for a FIN on every channel,
    // so what the other channel had not finished is gone when the owner is lost.
    let buggify = nsq::nsqd::Buggify {
        replica_fin_drops_every_channel: true,
        ..nsq::nsqd::Buggify::default()
    };
    caught_with_a_replay_command(
        "replicated-owner-lost.toml",
        buggify,
        Invariant::ReplicatedNoLoss,
        "never delivered on channel",
    );
}

#[test]
fn a_failover_that_skips_deferred_messages_is_caught_with_a_replay_command() {
    // The planted bug: the failover delivers only the copies already due.
    let buggify = nsq::nsqd::Buggify {
        failover_skips_deferred: true,
        ..nsq::nsqd::Buggify::default()
    };
    caught_with_a_replay_command(
        "replicated-owner-lost.toml",
        buggify,
        Invariant::ReplicatedNoLoss,
        "never delivered",
    );
}

#[test]
fn an_identity_kept_after_a_crash_that_lost_memory_is_caught_with_a_replay_command() {
    // The planted bug: the owner keeps its replication identity after a crash that lost
    // billing's backlog from its memory queue, so the peers never deliver their copies.
    let buggify = nsq::nsqd::Buggify {
        identity_kept_after_crash: true,
        ..nsq::nsqd::Buggify::default()
    };
    caught_with_a_replay_command(
        "replicated-owner-crashes-with-memory-queues.toml",
        buggify,
        Invariant::ReplicatedNoLoss,
        "never delivered",
    );
}

#[test]
fn every_peer_taking_over_is_caught_with_a_replay_command() {
    // The planted bug: both peers of the lost owner take its copies over at the
    // failover timeout, so its whole backlog is delivered twice.
    let buggify = nsq::nsqd::Buggify {
        every_peer_takes_over: true,
        ..nsq::nsqd::Buggify::default()
    };
    caught_with_a_replay_command(
        "replicated-owner-lost.toml",
        buggify,
        Invariant::SingleTakeover,
        "was taken over by nsqd-b and nsqd-c",
    );
}

#[test]
fn every_peer_taking_over_a_blank_owners_copies_is_caught_with_a_replay_command() {
    // The same planted bug where owners come back blank: both peers take the earlier
    // run's copies over at once.
    let buggify = nsq::nsqd::Buggify {
        every_peer_takes_over: true,
        ..nsq::nsqd::Buggify::default()
    };
    caught_with_a_replay_command(
        "replicated-nodes-lost-and-back-blank.toml",
        buggify,
        Invariant::SingleTakeover,
        "of a lost owner was taken over by",
    );
}

fn refused(text: &str) -> String {
    match Scenario::parse(text, "bad.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error @ (ScenarioError::Parse { .. } | ScenarioError::Invalid { .. })) => {
            error.to_string()
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

const MINIMAL: &str = r#"
name = "t"
description = "d"
heal_at_ms = 1000
settle_ms = 1000
[[host]]
name = "nsqd1"
kind = "nsqd"
"#;

#[test]
fn bad_scenario_files_are_refused_naming_the_key() {
    assert!(Scenario::parse(MINIMAL, "ok.toml").is_ok());
    let unknown = refused(&format!("{MINIMAL}colour = \"red\"\n"));
    assert!(unknown.contains("colour"), "{unknown}");
    let host_key = refused(&MINIMAL.replace("kind = \"nsqd\"", "kind = \"nsqd\"\nram = 1"));
    assert!(host_key.contains("ram"), "{host_key}");
    let opt = refused(&MINIMAL.replace(
        "kind = \"nsqd\"",
        "kind = \"nsqd\"\nopts = { mem_queue = 1 }",
    ));
    assert!(
        opt.contains("host[0].opts") && opt.contains("mem_queue"),
        "{opt}"
    );
    let value = refused(&MINIMAL.replace(
        "kind = \"nsqd\"",
        "kind = \"nsqd\"\nopts = { msg_timeout = \"soon\" }",
    ));
    assert!(value.contains("msg_timeout"), "{value}");
    let kind = refused(&MINIMAL.replace("kind = \"nsqd\"", "kind = \"redis\""));
    assert!(kind.contains("redis"), "{kind}");
    let target = refused(&format!(
        "{MINIMAL}[[workload]]\nkind = \"producer\"\nname = \"p\"\ntarget = \"nsqd9\"\ntopic = \"t\"\ncount = 1\nrate_per_s = 1\n"
    ));
    assert!(
        target.contains("workload[0].target") && target.contains("nsqd9"),
        "{target}"
    );
    let late = refused(&format!(
        "{MINIMAL}[[fault]]\nat_ms = 5000\naction = \"crash\"\nhosts = [\"nsqd1\"]\n"
    ));
    assert!(late.contains("fault[0].at_ms"), "{late}");
    let action = refused(&format!(
        "{MINIMAL}[[fault]]\nat_ms = 5\naction = \"meteor\"\n"
    ));
    assert!(action.contains("meteor"), "{action}");
    let accepted = format!("{MINIMAL}[invariants]\nenabled = [\"no_loss\", \"deterministic\"]\n");
    let scenario = Scenario::parse(&accepted, "ok.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(scenario.checks_determinism());
    assert_eq!(scenario.enabled_invariants(), vec![Invariant::NoLoss]);
    let invariant = refused(&format!(
        "{MINIMAL}[invariants]\nenabled = [\"no_loss\", \"vibes\"]\n"
    ));
    assert!(
        invariant.contains("invariants.enabled[1]") && invariant.contains("vibes"),
        "{invariant}"
    );
    let swarm = refused(&format!(
        "{MINIMAL}[swarm]\ncrash_probability_per_s = [0.5, 0.1]\n"
    ));
    assert!(swarm.contains("swarm.crash_probability_per_s"), "{swarm}");
}
