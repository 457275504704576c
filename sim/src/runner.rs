//! Runs one scenario from one seed: builds the turmoil simulation (network, daemon hosts,
//! client hosts, control host), steps it, applies the fault schedule as its times come,
//! heals everything at `heal_at_ms` (but a host lost for good stays down), ends at
//! `heal_at_ms + settle_ms`, and judges the history with the scenario's checkers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::check::{self, CheckContext, NsqdFacts, Violation};
use crate::cluster::{self, DaemonOptions, HostControl, LOOKUPD_HTTP_PORT};
use crate::history::{Event, History, Micros};
use crate::scenario::{Fault, HostKind, Scenario, Workload};
use crate::workload::{self, Phases};

/// The name of the control host.
pub const CONTROL_HOST: &str = "sim-control";

/// How a run is made.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The seed of everything random: network, daemons, clients, swarm faults.
    pub seed: u64,
    /// Add faults drawn from the scenario's `[swarm]` ranges.
    pub swarm: bool,
    /// Deliberate bugs switched on in every nsqd, to prove the checkers catch them.
    pub buggify: nsq::nsqd::Buggify,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The hash of the history: equal for equal runs.
    pub hash: u64,
    /// The broken guarantees, first one first.
    pub violations: Vec<Violation>,
    /// Why the simulation itself failed (a daemon returned an error), if it did.
    pub failure: Option<String>,
    /// The swarm's fault classes, for swarm runs.
    pub swarm_classes: Option<String>,
    /// Every event.
    pub history: History,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.failure.is_none()
    }
}

/// Runs `scenario` as `options` say; twice when the scenario enables `deterministic`,
/// failing the run if the two histories differ.
pub fn run(scenario: &Scenario, options: &RunOptions) -> Result<Report, String> {
    let mut report = run_once(scenario, options)?;
    if scenario.checks_determinism() {
        let again = run_once(scenario, options)?;
        if again.hash != report.hash && report.failure.is_none() {
            report.failure = Some(format!(
                "deterministic: the same seed gave two histories ({:016x}, then {:016x})",
                report.hash, again.hash
            ));
        }
    }
    Ok(report)
}

fn run_once(scenario: &Scenario, options: &RunOptions) -> Result<Report, String> {
    let seed = options.seed;
    let phases = Phases::of(scenario);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .simulation_duration(Duration::from_millis(phases.end_ms + 60_000))
        .tick_duration(Duration::from_millis(scenario.tick_ms))
        .min_message_latency(Duration::from_millis(scenario.network.latency_ms[0]))
        .max_message_latency(Duration::from_millis(scenario.network.latency_ms[1]))
        .build();
    let history = Arc::new(Mutex::new(History::new()));
    let controls = cluster::add_daemons(&mut sim, scenario, seed, &history, &options.buggify)?;
    add_workloads(&mut sim, scenario, seed, phases, &history);

    let mut faults = scenario.faults.clone();
    let mut swarm_classes = None;
    if options.swarm {
        if let Some(swarm) = &scenario.swarm {
            let (drawn, classes) = crate::swarm::draw_faults(scenario, swarm, seed);
            faults.extend(drawn);
            swarm_classes = Some(classes);
        }
    }
    let tombstones = faults
        .iter()
        .filter_map(|f| match f {
            Fault::Tombstone(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let nsqds = scenario.host_names(HostKind::Nsqd);
    let lookupds = scenario.host_names(HostKind::Nsqlookupd);
    {
        let history = history.clone();
        let (nsqds, lookupds) = (nsqds.clone(), lookupds.clone());
        let tombstones: Vec<_> = tombstones;
        sim.host(CONTROL_HOST, move || {
            workload::control::run(
                nsqds.clone(),
                lookupds.clone(),
                tombstones.clone(),
                phases,
                history.clone(),
            )
        });
    }
    // Stable: faults at the same time apply in file order.
    faults.sort_by_key(Fault::at_ms);

    let mut injector = Injector {
        controls,
        scenario,
        seed,
        history: history.clone(),
        state: FaultState::default(),
    };
    let mut next_fault = 0;
    let mut healed = false;
    let mut failure = None;
    loop {
        if let Err(error) = sim.step() {
            failure = Some(error.to_string());
            break;
        }
        let now_ms = sim.elapsed().as_millis() as u64;
        while next_fault < faults.len() && faults[next_fault].at_ms() <= now_ms {
            injector.apply(&mut sim, &faults[next_fault]);
            next_fault += 1;
        }
        injector.restart_stopped(&mut sim, now_ms);
        injector.restart_crashed(&mut sim, now_ms);
        if !healed && now_ms >= scenario.heal_at_ms {
            injector.heal(&mut sim);
            healed = true;
        }
        if now_ms >= phases.end_ms {
            break;
        }
    }
    let history = history.lock().clone();
    let context = check_context(scenario, &injector.state)?;
    let violations = check::check(&scenario.enabled_invariants(), &history, &context);
    Ok(Report {
        scenario: scenario.name.clone(),
        seed,
        hash: history.hash(),
        violations,
        failure,
        swarm_classes,
        history,
    })
}

fn add_workloads(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    seed: u64,
    phases: Phases,
    history: &Arc<Mutex<History>>,
) {
    let lookupd_http: Vec<String> = scenario
        .host_names(HostKind::Nsqlookupd)
        .into_iter()
        .map(|l| format!("{l}:{LOOKUPD_HTTP_PORT}"))
        .collect();
    for workload in &scenario.workloads {
        let starts = Arc::new(AtomicU64::new(0));
        let history = history.clone();
        match workload.clone() {
            Workload::Producer(spec) => {
                let name = spec.name.clone();
                sim.host(name.as_str(), move || {
                    let start = starts.fetch_add(1, Ordering::SeqCst);
                    workload::producer::run(spec.clone(), seed, start, phases, history.clone())
                });
            }
            Workload::Consumer(spec) => {
                let name = spec.name.clone();
                let lookupds = lookupd_http.clone();
                sim.host(name.as_str(), move || {
                    let start = starts.fetch_add(1, Ordering::SeqCst);
                    workload::consumer::run(
                        spec.clone(),
                        seed,
                        start,
                        phases,
                        lookupds.clone(),
                        history.clone(),
                    )
                });
            }
        }
    }
}

/// Which faults are in effect, so the heal can undo them all.
#[derive(Debug, Default)]
struct FaultState {
    partitioned: BTreeSet<(String, String)>,
    held: BTreeSet<(String, String)>,
    slowed: BTreeSet<(String, String)>,
    crashed: BTreeSet<String>,
    /// Crashed hosts that start again by themselves (lost ones, blank), and when.
    restart_at: BTreeMap<String, u64>,
    /// Hosts lost for good: never started again, not even by the heal.
    lost_forever: BTreeSet<String>,
    /// Gracefully stopping hosts and when they start again.
    stopping: BTreeMap<String, u64>,
    disk_faulty: BTreeSet<String>,
    /// When holds and latency faults began and ended, for the timing checkers.
    timing_windows: Vec<(Micros, Option<Micros>)>,
}

/// Applies faults to the simulation and records them.
struct Injector<'s> {
    controls: BTreeMap<String, HostControl>,
    scenario: &'s Scenario,
    seed: u64,
    history: Arc<Mutex<History>>,
    state: FaultState,
}

impl Injector<'_> {
    fn record(&self, sim: &turmoil::Sim<'_>, event: Event) {
        let at = sim.elapsed().as_micros() as u64;
        self.history.lock().record(at, event);
    }

    fn note(&self, sim: &turmoil::Sim<'_>, description: String) {
        self.record(sim, Event::Fault { description });
    }

    fn apply(&mut self, sim: &mut turmoil::Sim<'_>, fault: &Fault) {
        let now = sim.elapsed().as_micros() as u64;
        match fault {
            Fault::Partition(f) => {
                for (a, b) in pairs(&f.a, &f.b) {
                    if f.oneway {
                        sim.partition_oneway(a.as_str(), b.as_str());
                    } else {
                        sim.partition(a.as_str(), b.as_str());
                    }
                    self.state.partitioned.insert((a, b));
                }
                let arrow = if f.oneway { "->" } else { "<->" };
                self.note(sim, format!("partition {:?} {arrow} {:?}", f.a, f.b));
            }
            Fault::Repair(f) => {
                for (a, b) in pairs(&f.a, &f.b) {
                    if f.oneway {
                        sim.repair_oneway(a.as_str(), b.as_str());
                    } else {
                        sim.repair(a.as_str(), b.as_str());
                    }
                    self.state.partitioned.remove(&(a, b));
                }
                self.note(sim, format!("repair {:?} / {:?}", f.a, f.b));
            }
            Fault::Hold(f) => {
                for (a, b) in pairs(&f.a, &f.b) {
                    sim.hold(a.as_str(), b.as_str());
                    self.state.held.insert((a, b));
                }
                self.state.timing_windows.push((now, None));
                self.note(sim, format!("hold {:?} / {:?}", f.a, f.b));
            }
            Fault::Release(f) => {
                for (a, b) in pairs(&f.a, &f.b) {
                    sim.release(a.as_str(), b.as_str());
                    self.state.held.remove(&(a, b));
                }
                self.close_timing_window(now);
                self.note(sim, format!("release {:?} / {:?}", f.a, f.b));
            }
            Fault::Latency(f) => {
                for (a, b) in pairs(&f.a, &f.b) {
                    if f.ms == 0 {
                        self.restore_latency(sim, &a, &b);
                        self.state.slowed.remove(&(a, b));
                    } else {
                        sim.set_link_latency(a.as_str(), b.as_str(), Duration::from_millis(f.ms));
                        self.state.slowed.insert((a, b));
                    }
                }
                if f.ms == 0 {
                    self.close_timing_window(now);
                } else {
                    self.state.timing_windows.push((now, None));
                }
                self.note(sim, format!("latency {} ms {:?} / {:?}", f.ms, f.a, f.b));
            }
            Fault::Crash(f) => {
                for host in &f.hosts {
                    self.crash(sim, host);
                }
            }
            Fault::Restart(f) => {
                for host in &f.hosts {
                    self.state.restart_at.remove(host);
                    if self.state.crashed.remove(host) {
                        sim.bounce(host.as_str());
                        self.record(sim, Event::HostRestarted { host: host.clone() });
                    }
                }
            }
            Fault::GracefulRestart(f) => {
                for host in &f.hosts {
                    if self.is_down(host) || self.state.stopping.contains_key(host) {
                        continue;
                    }
                    if let Some(control) = self.controls.get(host) {
                        control.request_stop();
                        let start_at = sim.elapsed().as_millis() as u64 + f.down_ms;
                        self.state.stopping.insert(host.clone(), start_at);
                        self.note(sim, format!("graceful stop of {host}"));
                    }
                }
            }
            Fault::Lose(f) => {
                for host in &f.hosts {
                    self.lose(sim, host, f.down_ms);
                }
            }
            Fault::Disk(f) => {
                if let Some(control) = self.controls.get(&f.host) {
                    let fs = &control.fs;
                    if let Some(on) = f.write_errors {
                        fs.set_fail_writes(on);
                    }
                    if let Some(on) = f.fsync_errors {
                        fs.set_fail_syncs(on);
                    }
                    if let Some(on) = f.full {
                        fs.set_capacity_bytes(on.then_some(0));
                    }
                    self.state.disk_faulty.insert(f.host.clone());
                }
                self.note(
                    sim,
                    format!(
                        "disk {}: write_errors={:?} fsync_errors={:?} full={:?}",
                        f.host, f.write_errors, f.fsync_errors, f.full
                    ),
                );
            }
            // Sent by the control host.
            Fault::Tombstone(_) => {}
        }
    }

    /// Whether `host` is crashed or lost for good.
    fn is_down(&self, host: &str) -> bool {
        self.state.crashed.contains(host) || self.state.lost_forever.contains(host)
    }

    fn crash(&mut self, sim: &mut turmoil::Sim<'_>, host: &str) {
        if self.is_down(host) {
            return;
        }
        sim.crash(host);
        if let (Some(control), Some(spec)) = (self.controls.get(host), self.scenario.host(host)) {
            let rng_value = self.seed ^ sim.elapsed().as_micros() as u64;
            control.fs.crash(spec.disk.crash.mode(), rng_value);
            control.clear_stop();
        }
        self.state.stopping.remove(host);
        self.state.crashed.insert(host.to_string());
        self.record(
            sim,
            Event::HostCrashed {
                host: host.to_string(),
            },
        );
    }

    /// Crashes `host` (unless it is down already) and wipes its disk; it starts again blank
    /// `down_ms` later, or never.
    fn lose(&mut self, sim: &mut turmoil::Sim<'_>, host: &str, down_ms: Option<u64>) {
        if self.state.lost_forever.contains(host) {
            return;
        }
        self.crash(sim, host);
        if let Some(control) = self.controls.get(host) {
            control.fs.wipe();
        }
        self.state.disk_faulty.remove(host);
        self.record(
            sim,
            Event::HostLost {
                host: host.to_string(),
            },
        );
        match down_ms {
            Some(down_ms) => {
                let at = sim.elapsed().as_millis() as u64 + down_ms;
                self.state.restart_at.insert(host.to_string(), at);
            }
            None => {
                self.state.crashed.remove(host);
                self.state.restart_at.remove(host);
                self.state.lost_forever.insert(host.to_string());
            }
        }
    }

    /// Starts crashed hosts whose time to start again by themselves has come.
    fn restart_crashed(&mut self, sim: &mut turmoil::Sim<'_>, now_ms: u64) {
        let due: Vec<String> = self
            .state
            .restart_at
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(host, _)| host.clone())
            .collect();
        for host in due {
            self.state.restart_at.remove(&host);
            if self.state.crashed.remove(&host) {
                sim.bounce(host.as_str());
                self.record(sim, Event::HostRestarted { host });
            }
        }
    }

    /// Starts gracefully stopped hosts whose down time is over (once their shutdown ended).
    fn restart_stopped(&mut self, sim: &mut turmoil::Sim<'_>, now_ms: u64) {
        let due: Vec<String> = self
            .state
            .stopping
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(host, _)| host.clone())
            .collect();
        for host in due {
            if sim.is_host_running(host.as_str()) {
                continue;
            }
            self.state.stopping.remove(&host);
            if let Some(control) = self.controls.get(&host) {
                control.clear_stop();
            }
            sim.bounce(host.as_str());
            self.record(sim, Event::HostRestarted { host });
        }
    }

    fn restore_latency(&self, sim: &turmoil::Sim<'_>, a: &str, b: &str) {
        let [min, max] = self.scenario.network.latency_ms;
        sim.set_link_latency(a, b, Duration::from_millis(min));
        sim.set_link_max_message_latency(a, b, Duration::from_millis(max));
    }

    fn close_timing_window(&mut self, now: Micros) {
        if let Some(window) = self.state.timing_windows.iter_mut().find(|w| w.1.is_none()) {
            window.1 = Some(now);
        }
    }

    /// Undoes every fault in effect; a host lost for good stays down.
    fn heal(&mut self, sim: &mut turmoil::Sim<'_>) {
        let now = sim.elapsed().as_micros() as u64;
        for (a, b) in std::mem::take(&mut self.state.partitioned) {
            sim.repair(a.as_str(), b.as_str());
        }
        for (a, b) in std::mem::take(&mut self.state.held) {
            sim.release(a.as_str(), b.as_str());
        }
        for (a, b) in std::mem::take(&mut self.state.slowed) {
            self.restore_latency(sim, &a, &b);
        }
        for window in &mut self.state.timing_windows {
            window.1.get_or_insert(now);
        }
        for host in std::mem::take(&mut self.state.disk_faulty) {
            if let Some(control) = self.controls.get(&host) {
                control.fs.set_fail_writes(false);
                control.fs.set_fail_syncs(false);
                control.fs.set_capacity_bytes(None);
            }
        }
        self.state.restart_at.clear();
        for host in std::mem::take(&mut self.state.crashed) {
            sim.bounce(host.as_str());
            self.record(sim, Event::HostRestarted { host });
        }
        // Stopped hosts start at once, or as soon as their shutdown ends.
        for at in self.state.stopping.values_mut() {
            *at = 0;
        }
        self.record(sim, Event::Healed);
    }
}

/// Every (a, b) link between the two groups, skipping a host paired with itself.
fn pairs(a: &[String], b: &[String]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for x in a {
        for y in b {
            if x != y {
                pairs.push((x.clone(), y.clone()));
            }
        }
    }
    pairs
}

fn check_context(scenario: &Scenario, state: &FaultState) -> Result<CheckContext, String> {
    let mut nsqds = BTreeMap::new();
    let mut longest_timeout_ms = 0;
    for (index, host) in scenario.hosts.iter().enumerate() {
        if let DaemonOptions::Nsqd(options) = cluster::daemon_options(host, index)? {
            let msg_timeout_ms = options.msg_timeout.as_millis() as u64;
            longest_timeout_ms = longest_timeout_ms.max(msg_timeout_ms);
            nsqds.insert(
                host.name.clone(),
                NsqdFacts {
                    msg_timeout_ms,
                    crash_durable: options.mem_queue_size == 0 && options.sync_every == 1,
                    broadcast_address: options.broadcast_address.clone(),
                    lookupds: Some(host.lookupd.clone()),
                    replication_factor: host.replication_factor(),
                    node_id: u16::try_from(options.id).unwrap_or(0),
                },
            );
        }
    }
    let unreliable_timing = state
        .timing_windows
        .iter()
        .map(|(from, to)| {
            (
                *from,
                to.unwrap_or(u64::MAX)
                    .saturating_add(longest_timeout_ms * 1000),
            )
        })
        .collect();
    Ok(CheckContext {
        nsqds,
        lookupds: scenario.host_names(HostKind::Nsqlookupd),
        max_latency_ms: scenario.network.latency_ms[1],
        unreliable_timing,
    })
}

/// The command that replays a run.
pub fn replay_command(file: &std::path::Path, seed: u64, swarm: bool) -> String {
    format!(
        "cargo run -p nsq-sim --bin nsq-sim -- run {} --seed {seed}{}",
        file.display(),
        if swarm { " --swarm" } else { "" }
    )
}
