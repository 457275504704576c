//! Scenario files (`scenarios/*.toml`): the hosts of a simulated cluster with their real
//! options, the client workloads, a schedule of faults, when faults stop, the invariants
//! to check and, for swarms, the ranges faults are drawn from.
//!
//! A file is read and validated whole before anything runs: an unknown key, a value of the
//! wrong type, a daemon option the daemon refuses or a reference to a host that does not
//! exist is an error naming it.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::check::Invariant;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short identifier, used in reports and replay commands.
    pub name: String,
    /// What the scenario exercises, or the story of the bug it caught.
    pub description: String,
    /// The seed `run` uses when none is given.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The simulation's tick.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// When every fault is repaired and workloads switch to draining.
    pub heal_at_ms: u64,
    /// How long after `heal_at_ms` queues must have drained and lookupds converged; the
    /// run ends then.
    pub settle_ms: u64,
    /// The simulated network.
    #[serde(default)]
    pub network: Network,
    /// The daemons.
    #[serde(rename = "host")]
    pub hosts: Vec<Host>,
    /// The clients.
    #[serde(default, rename = "workload")]
    pub workloads: Vec<Workload>,
    /// The fault schedule.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    /// What to check.
    #[serde(default)]
    pub invariants: Invariants,
    /// Ranges random faults are drawn from by `nsq-sim swarm`.
    pub swarm: Option<Swarm>,
}

fn default_seed() -> u64 {
    1
}

fn default_tick_ms() -> u64 {
    1
}

/// The simulated network's behaviour when no fault is active.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The smallest and largest one-way latency of a segment.
    #[serde(default = "default_latency")]
    pub latency_ms: [u64; 2],
}

fn default_latency() -> [u64; 2] {
    [1, 5]
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_ms: default_latency(),
        }
    }
}

/// Which daemon a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    /// `nsqd`.
    Nsqd,
    /// `nsqlookupd`.
    Nsqlookupd,
}

/// One daemon host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// The host name (also its simulated DNS name).
    pub name: String,
    /// Which daemon it runs.
    pub kind: HostKind,
    /// For nsqd: the lookupd hosts it registers with (`--lookupd-tcp-address`).
    #[serde(default)]
    pub lookupd: Vec<String>,
    /// The daemon's options by their config-file keys (`mem_queue_size`, `msg_timeout`,
    /// `tombstone_lifetime`...), read by the daemon's own config parser.
    #[serde(default)]
    pub opts: toml::Table,
    /// What the host's disk does on a crash.
    #[serde(default)]
    pub disk: Disk,
}

impl Host {
    /// The `replication_factor` of the host's opts (1, unreplicated, when absent or not a
    /// positive integer): the checkers need it to know which topics promise to survive
    /// the loss of a node. Read from the table rather than the parsed options so the
    /// simulator does not depend on the daemon having the option.
    pub fn replication_factor(&self) -> u32 {
        self.opts
            .get("replication_factor")
            .and_then(toml::Value::as_integer)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1)
    }
}

/// A host's disk.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// What a crash does to unsynced writes.
    #[serde(default)]
    pub crash: CrashKind,
}

/// [`nsq::env::CrashMode`] by the names scenario files use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashKind {
    /// Unsynced writes are lost (a power cut).
    #[default]
    DropUnsynced,
    /// The last unsynced write of each file is torn.
    TornTail,
    /// Everything written survives (a process crash on a healthy OS).
    Keep,
}

impl CrashKind {
    /// The MemFs crash mode.
    pub fn mode(self) -> nsq::env::CrashMode {
        match self {
            CrashKind::DropUnsynced => nsq::env::CrashMode::DropUnsynced,
            CrashKind::TornTail => nsq::env::CrashMode::TornTail,
            CrashKind::Keep => nsq::env::CrashMode::Keep,
        }
    }
}

/// A client workload.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Workload {
    /// Publishes to one nsqd.
    Producer(Producer),
    /// Subscribes to a channel on one nsqd or on every nsqd a lookupd lists.
    Consumer(Consumer),
}

impl Workload {
    /// The workload's name.
    pub fn name(&self) -> &str {
        match self {
            Workload::Producer(p) => &p.name,
            Workload::Consumer(c) => &c.name,
        }
    }
}

/// A publishing client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Producer {
    /// The workload's (and its simulated host's) name.
    pub name: String,
    /// The nsqd host it publishes to.
    pub target: String,
    /// The topic.
    pub topic: String,
    /// Messages in all; the producer stops earlier when the run starts draining.
    pub count: u64,
    /// Publish commands per second.
    pub rate_per_s: u64,
    /// When it starts.
    #[serde(default)]
    pub start_ms: u64,
    /// Messages per command: 1 is PUB, more is MPUB.
    #[serde(default = "one")]
    pub batch: u64,
    /// The share of single publishes sent as DPUB.
    #[serde(default)]
    pub dpub: f64,
    /// The DPUB delay range.
    #[serde(default = "default_defer")]
    pub defer_ms: [u64; 2],
    /// The body size (at least the bytes that make each body unique).
    #[serde(default = "default_body")]
    pub body_bytes: usize,
    /// The IDENTIFY `heartbeat_interval`; a connection silent for twice as long is
    /// given up (go-nsq's read deadline), so a blackholed connection does not hang it.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// The stream compression negotiated in IDENTIFY.
    #[serde(default)]
    pub compression: Compression,
}

/// The compression a workload asks for in IDENTIFY.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain V2.
    #[default]
    None,
    /// Snappy's framing format.
    Snappy,
    /// Raw deflate at nsqd's default level.
    Deflate,
}

fn default_heartbeat() -> u64 {
    2_000
}

fn one() -> u64 {
    1
}

fn default_defer() -> [u64; 2] {
    [100, 2_000]
}

fn default_body() -> usize {
    32
}

/// A subscribing client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// The workload's (and its simulated host's) name.
    pub name: String,
    /// `"lookupd"` to find nsqds through every lookupd host, or one nsqd host's name.
    pub discover: String,
    /// The topic.
    pub topic: String,
    /// The channel.
    pub channel: String,
    /// The RDY count on each connection.
    #[serde(default = "default_rdy")]
    pub max_in_flight: u64,
    /// When it starts.
    #[serde(default)]
    pub start_ms: u64,
    /// How often it asks lookupds again (and reconnects lost nsqds).
    #[serde(default = "default_poll")]
    pub poll_ms: u64,
    /// What it does with each message before the heal.
    #[serde(default)]
    pub actions: Actions,
    /// The IDENTIFY `heartbeat_interval`; a connection silent for twice as long is
    /// given up (go-nsq's read deadline) and made again at the next poll.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// The stream compression negotiated in IDENTIFY.
    #[serde(default)]
    pub compression: Compression,
}

fn default_rdy() -> u64 {
    10
}

fn default_poll() -> u64 {
    1_000
}

/// The mix of answers a consumer gives before the heal; after it, it FINs everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    /// The share of messages FINished.
    #[serde(default = "one_f")]
    pub fin: f64,
    /// The share REQueued.
    #[serde(default)]
    pub req: f64,
    /// The share left to time out.
    #[serde(default)]
    pub timeout: f64,
    /// The share TOUCHed (once, halfway through the work) and then FINished.
    #[serde(default)]
    pub touch: f64,
    /// The REQ delay range.
    #[serde(default = "default_req_delay")]
    pub req_delay_ms: [u64; 2],
    /// How long processing a message takes before it is answered.
    #[serde(default)]
    pub work_ms: [u64; 2],
}

fn one_f() -> f64 {
    1.0
}

fn default_req_delay() -> [u64; 2] {
    [0, 500]
}

impl Default for Actions {
    fn default() -> Self {
        Actions {
            fin: 1.0,
            req: 0.0,
            timeout: 0.0,
            touch: 0.0,
            req_delay_ms: default_req_delay(),
            work_ms: [0, 0],
        }
    }
}

/// One scheduled fault. `action` picks the kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Fault {
    /// Cuts the links between every host of `a` and every host of `b` (only `a` to `b`
    /// with `oneway`).
    Partition(LinkFault),
    /// Restores links cut by `partition`.
    Repair(LinkFault),
    /// Holds every segment between `a` and `b` until `release`.
    Hold(LinkFault),
    /// Delivers what `hold` kept.
    Release(LinkFault),
    /// Adds latency between `a` and `b` until `heal_at_ms` or a `latency` of 0.
    Latency(LatencyFault),
    /// Kills hosts: tasks stop, the disk loses what its crash mode says.
    Crash(HostsFault),
    /// Starts crashed hosts again on their disks.
    Restart(HostsFault),
    /// Stops hosts with the daemon's own graceful shutdown and starts them again after
    /// `down_ms`.
    GracefulRestart(GracefulRestartFault),
    /// Loses hosts with their disks, as when a machine dies and is replaced: a crash, then
    /// every file of the host's disk is gone. The host starts again blank after `down_ms`,
    /// or never (not even at the heal) when `down_ms` is left out.
    Lose(LoseFault),
    /// Turns disk faults of one host on or off.
    Disk(DiskFault),
    /// Tombstones a topic of one nsqd on lookupds (`POST /topic/tombstone`).
    Tombstone(TombstoneFault),
}

impl Fault {
    /// When the fault is applied.
    pub fn at_ms(&self) -> u64 {
        match self {
            Fault::Partition(f) | Fault::Repair(f) | Fault::Hold(f) | Fault::Release(f) => f.at_ms,
            Fault::Latency(f) => f.at_ms,
            Fault::Crash(f) | Fault::Restart(f) => f.at_ms,
            Fault::GracefulRestart(f) => f.at_ms,
            Fault::Lose(f) => f.at_ms,
            Fault::Disk(f) => f.at_ms,
            Fault::Tombstone(f) => f.at_ms,
        }
    }
}

/// A fault between two groups of hosts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFault {
    /// When.
    pub at_ms: u64,
    /// One side.
    pub a: Vec<String>,
    /// The other side.
    pub b: Vec<String>,
    /// Only from `a` to `b` (partition and repair).
    #[serde(default)]
    pub oneway: bool,
}

/// Extra latency between two groups of hosts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyFault {
    /// When.
    pub at_ms: u64,
    /// One side.
    pub a: Vec<String>,
    /// The other side.
    pub b: Vec<String>,
    /// The latency of every segment between them; 0 restores the network's own.
    pub ms: u64,
}

/// A fault on some hosts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsFault {
    /// When.
    pub at_ms: u64,
    /// Which hosts.
    pub hosts: Vec<String>,
}

/// A graceful restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GracefulRestartFault {
    /// When the shutdown starts.
    pub at_ms: u64,
    /// Which hosts.
    pub hosts: Vec<String>,
    /// How long after the shutdown started the host starts again.
    #[serde(default = "default_down")]
    pub down_ms: u64,
}

fn default_down() -> u64 {
    1_000
}

/// The loss of hosts with their disks (`action = "lose"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoseFault {
    /// When the hosts crash and their disks are wiped.
    pub at_ms: u64,
    /// Which daemon hosts.
    pub hosts: Vec<String>,
    /// How long after the loss the host starts again, on a blank disk; left out, it stays
    /// down to the end of the run. A time past `heal_at_ms` means the heal.
    pub down_ms: Option<u64>,
}

/// Disk faults of one host; keys left out are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskFault {
    /// When.
    pub at_ms: u64,
    /// Which host.
    pub host: String,
    /// Every write fails.
    pub write_errors: Option<bool>,
    /// Every fsync fails.
    pub fsync_errors: Option<bool>,
    /// The disk is full: no write that needs more space succeeds.
    pub full: Option<bool>,
}

/// A topic tombstone, sent by the control host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TombstoneFault {
    /// When.
    pub at_ms: u64,
    /// The lookupd hosts asked.
    pub lookupds: Vec<String>,
    /// The topic.
    pub topic: String,
    /// The nsqd host whose registration is tombstoned.
    pub nsqd: String,
}

/// The name that asks for a second run of the same seed and equal histories: not a check
/// of one history, so the runner handles it.
pub const DETERMINISTIC: &str = "deterministic";

/// The invariants a scenario checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invariants {
    /// Checker names ([`Invariant::name`]), and `"deterministic"`; all the checkers
    /// when left out.
    #[serde(default = "all_invariants")]
    pub enabled: Vec<String>,
}

fn all_invariants() -> Vec<String> {
    Invariant::ALL
        .iter()
        .map(|i| i.name().to_string())
        .collect()
}

impl Default for Invariants {
    fn default() -> Self {
        Invariants {
            enabled: all_invariants(),
        }
    }
}

/// Ranges `nsq-sim swarm` draws per seed: each fault class is switched off for some
/// seeds, and when on, its rate is drawn from its range.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    /// Partitions (both ways) of one host from the rest, per second.
    #[serde(default)]
    pub partition_probability_per_s: [f64; 2],
    /// Holds of one host's links, per second.
    #[serde(default)]
    pub hold_probability_per_s: [f64; 2],
    /// Crashes of one host (restarted after `down_ms`), per second.
    #[serde(default)]
    pub crash_probability_per_s: [f64; 2],
    /// Graceful restarts of one host, per second.
    #[serde(default)]
    pub graceful_restart_probability_per_s: [f64; 2],
    /// Losses of one nsqd with its disk, per second; the nsqd starts again blank after
    /// `down_ms`, or, for a share `lose_forever_share` of them, never. (A lookupd keeps
    /// nothing on disk: its loss would be a crash, which `crash_probability_per_s` draws.)
    #[serde(default)]
    pub lose_probability_per_s: [f64; 2],
    /// The share of drawn losses whose host never starts again.
    #[serde(default)]
    pub lose_forever_share: f64,
    /// At most this many hosts are lost for good in one run (a replica set of factor `N`
    /// promises to survive `N - 1` losses, no more).
    #[serde(default = "one_usize")]
    pub lose_forever_max_hosts: usize,
    /// At most this many losses, for good or not, in one run (none: no limit). A
    /// replica set of factor `N` promises to survive `N - 1` losses, not more.
    #[serde(default)]
    pub lose_max: Option<usize>,
    /// Crashes count toward `lose_max` too: on nsqds whose memory queues are on, a
    /// crash loses what memory held, and the promise covers `N - 1` such losses.
    #[serde(default)]
    pub crash_counts_as_loss: bool,
    /// Disk faults (write errors, fsync errors or full) on one nsqd, per second.
    #[serde(default)]
    pub disk_fault_probability_per_s: [f64; 2],
    /// Latency spikes on one host's links, per second.
    #[serde(default)]
    pub latency_probability_per_s: [f64; 2],
    /// The range a fault's duration is drawn from.
    #[serde(default = "default_swarm_down")]
    pub down_ms: [u64; 2],
    /// The latency of a spike.
    #[serde(default = "default_spike")]
    pub latency_ms: [u64; 2],
    /// Faults are drawn at most this often (no flapping each tick).
    #[serde(default = "default_stability")]
    pub min_fault_stability_ms: u64,
    /// The hosts faults may hit; every daemon host when left out.
    #[serde(default)]
    pub hosts: Vec<String>,
}

fn one_usize() -> usize {
    1
}

fn default_swarm_down() -> [u64; 2] {
    [500, 5_000]
}

fn default_spike() -> [u64; 2] {
    [50, 500]
}

fn default_stability() -> u64 {
    2_000
}

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type (toml names the key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message, which names the key and the line.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("{path}: {key}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The offending key, e.g. `workload[2].target`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl Scenario {
    /// Reads and validates a scenario file. (The runner reads the real disk; only the
    /// simulated daemons must go through `Env`.)
    #[allow(clippy::disallowed_methods)]
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        Scenario::parse(&text, &shown)
    }

    /// Parses and validates scenario text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_string(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        scenario
            .validate()
            .map_err(|(key, reason)| ScenarioError::Invalid {
                path: path.to_string(),
                key,
                reason,
            })?;
        Ok(scenario)
    }

    /// The simulated time the run ends at.
    pub fn end_ms(&self) -> u64 {
        self.heal_at_ms + self.settle_ms
    }

    /// Whether the scenario asks to be run twice per seed, with equal histories required
    /// (`"deterministic"` in `invariants.enabled`).
    pub fn checks_determinism(&self) -> bool {
        self.invariants.enabled.iter().any(|n| n == DETERMINISTIC)
    }

    /// The invariants to check.
    pub fn enabled_invariants(&self) -> Vec<Invariant> {
        self.invariants
            .enabled
            .iter()
            .filter_map(|name| Invariant::from_name(name))
            .collect()
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The names of the hosts of one kind.
    pub fn host_names(&self, kind: HostKind) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| h.kind == kind)
            .map(|h| h.name.clone())
            .collect()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: String, reason: &str| Err((key, reason.to_string()));
        if self.name.is_empty() {
            return bad("name".into(), "must not be empty");
        }
        if !(1..=1_000).contains(&self.tick_ms) {
            return bad("tick_ms".into(), "must be 1..=1000");
        }
        if self.settle_ms < 1_000 {
            return bad("settle_ms".into(), "must be at least 1000");
        }
        check_range("network.latency_ms", self.network.latency_ms)?;
        let mut names = BTreeSet::new();
        for (i, host) in self.hosts.iter().enumerate() {
            self.validate_host(i, host, &mut names)?;
        }
        if self.hosts.is_empty() {
            return bad("host".into(), "at least one host is needed");
        }
        for (i, workload) in self.workloads.iter().enumerate() {
            if !names.insert(workload.name().to_string()) {
                return bad(
                    format!("workload[{i}].name"),
                    "names a host or workload twice",
                );
            }
            self.validate_workload(i, workload)?;
        }
        for (i, fault) in self.faults.iter().enumerate() {
            self.validate_fault(i, fault)?;
        }
        for (i, name) in self.invariants.enabled.iter().enumerate() {
            if Invariant::from_name(name).is_none() && name != DETERMINISTIC {
                return bad(
                    format!("invariants.enabled[{i}]"),
                    &format!("unknown invariant \"{name}\""),
                );
            }
        }
        if let Some(swarm) = &self.swarm {
            self.validate_swarm(swarm)?;
        }
        Ok(())
    }

    fn validate_host(
        &self,
        i: usize,
        host: &Host,
        names: &mut BTreeSet<String>,
    ) -> Result<(), (String, String)> {
        let key = |field: &str| format!("host[{i}].{field}");
        if !valid_host_name(&host.name) {
            return Err((key("name"), "must be letters, digits and '-'".into()));
        }
        if !names.insert(host.name.clone()) {
            return Err((key("name"), format!("\"{}\" is used twice", host.name)));
        }
        for lookupd in &host.lookupd {
            match self.host(lookupd) {
                Some(h) if h.kind == HostKind::Nsqlookupd && host.kind == HostKind::Nsqd => {}
                Some(_) if host.kind != HostKind::Nsqd => {
                    return Err((
                        key("lookupd"),
                        "only nsqd hosts register with lookupds".into(),
                    ))
                }
                _ => return Err((key("lookupd"), format!("no nsqlookupd host \"{lookupd}\""))),
            }
        }
        crate::cluster::daemon_options(host, i)
            .map(|_| ())
            .map_err(|reason| (key("opts"), reason))
    }

    fn validate_workload(&self, i: usize, workload: &Workload) -> Result<(), (String, String)> {
        let key = |field: &str| format!("workload[{i}].{field}");
        match workload {
            Workload::Producer(p) => {
                self.expect_host(&key("target"), &p.target, Some(HostKind::Nsqd))?;
                check_name(&key("topic"), &p.topic)?;
                if p.rate_per_s == 0 || p.rate_per_s > 100_000 {
                    return Err((key("rate_per_s"), "must be 1..=100000".into()));
                }
                if p.batch == 0 || p.batch > 1_000 {
                    return Err((key("batch"), "must be 1..=1000".into()));
                }
                check_share(&key("dpub"), p.dpub)?;
                check_range(&key("defer_ms"), p.defer_ms)?;
                if p.body_bytes > 1_000_000 {
                    return Err((key("body_bytes"), "must be at most 1000000".into()));
                }
                check_heartbeat(&key("heartbeat_ms"), p.heartbeat_ms)?;
            }
            Workload::Consumer(c) => {
                if c.discover != "lookupd" {
                    self.expect_host(&key("discover"), &c.discover, Some(HostKind::Nsqd))?;
                } else if self.host_names(HostKind::Nsqlookupd).is_empty() {
                    return Err((key("discover"), "there is no nsqlookupd host".into()));
                }
                check_name(&key("topic"), &c.topic)?;
                check_name(&key("channel"), &c.channel)?;
                if c.max_in_flight == 0 || c.max_in_flight > 2_500 {
                    return Err((key("max_in_flight"), "must be 1..=2500".into()));
                }
                if c.poll_ms < 100 {
                    return Err((key("poll_ms"), "must be at least 100".into()));
                }
                check_heartbeat(&key("heartbeat_ms"), c.heartbeat_ms)?;
                let a = &c.actions;
                for (name, share) in [
                    ("fin", a.fin),
                    ("req", a.req),
                    ("timeout", a.timeout),
                    ("touch", a.touch),
                ] {
                    check_share(&key(&format!("actions.{name}")), share)?;
                }
                if a.fin + a.req + a.timeout + a.touch <= 0.0 {
                    return Err((key("actions"), "the shares add up to 0".into()));
                }
                check_range(&key("actions.req_delay_ms"), a.req_delay_ms)?;
                check_range(&key("actions.work_ms"), a.work_ms)?;
            }
        }
        Ok(())
    }

    fn validate_fault(&self, i: usize, fault: &Fault) -> Result<(), (String, String)> {
        let key = |field: &str| format!("fault[{i}].{field}");
        if fault.at_ms() >= self.heal_at_ms {
            return Err((key("at_ms"), "must be before heal_at_ms".into()));
        }
        let daemons = |field: &str, hosts: &[String]| -> Result<(), (String, String)> {
            if hosts.is_empty() {
                return Err((key(field), "names no host".into()));
            }
            for host in hosts {
                self.expect_host(&key(field), host, None)?;
            }
            Ok(())
        };
        match fault {
            Fault::Partition(f) | Fault::Repair(f) | Fault::Hold(f) | Fault::Release(f) => {
                self.expect_any(&key("a"), &f.a)?;
                self.expect_any(&key("b"), &f.b)?;
                if f.oneway && matches!(fault, Fault::Hold(_) | Fault::Release(_)) {
                    return Err((
                        key("oneway"),
                        "only partition and repair are one-way".into(),
                    ));
                }
            }
            Fault::Latency(f) => {
                self.expect_any(&key("a"), &f.a)?;
                self.expect_any(&key("b"), &f.b)?;
                if f.ms > 60_000 {
                    return Err((key("ms"), "must be at most 60000".into()));
                }
            }
            Fault::Crash(f) | Fault::Restart(f) => self.expect_any(&key("hosts"), &f.hosts)?,
            Fault::GracefulRestart(f) => daemons("hosts", &f.hosts)?,
            Fault::Lose(f) => daemons("hosts", &f.hosts)?,
            Fault::Disk(f) => self.expect_host(&key("host"), &f.host, Some(HostKind::Nsqd))?,
            Fault::Tombstone(f) => {
                self.expect_host(&key("nsqd"), &f.nsqd, Some(HostKind::Nsqd))?;
                check_name(&key("topic"), &f.topic)?;
                if f.lookupds.is_empty() {
                    return Err((key("lookupds"), "names no host".into()));
                }
                for lookupd in &f.lookupds {
                    self.expect_host(&key("lookupds"), lookupd, Some(HostKind::Nsqlookupd))?;
                }
            }
        }
        Ok(())
    }

    fn validate_swarm(&self, swarm: &Swarm) -> Result<(), (String, String)> {
        for (name, range) in [
            (
                "partition_probability_per_s",
                swarm.partition_probability_per_s,
            ),
            ("hold_probability_per_s", swarm.hold_probability_per_s),
            ("crash_probability_per_s", swarm.crash_probability_per_s),
            (
                "graceful_restart_probability_per_s",
                swarm.graceful_restart_probability_per_s,
            ),
            (
                "disk_fault_probability_per_s",
                swarm.disk_fault_probability_per_s,
            ),
            ("latency_probability_per_s", swarm.latency_probability_per_s),
            ("lose_probability_per_s", swarm.lose_probability_per_s),
        ] {
            let key = format!("swarm.{name}");
            if !(0.0..=1.0).contains(&range[0]) || !(0.0..=1.0).contains(&range[1]) {
                return Err((key, "must be within 0.0..=1.0".into()));
            }
            if range[0] > range[1] {
                return Err((key, "the first bound is larger than the second".into()));
            }
        }
        check_share("swarm.lose_forever_share", swarm.lose_forever_share)?;
        check_range("swarm.down_ms", swarm.down_ms)?;
        check_range("swarm.latency_ms", swarm.latency_ms)?;
        if swarm.min_fault_stability_ms < 100 {
            return Err((
                "swarm.min_fault_stability_ms".into(),
                "must be at least 100".into(),
            ));
        }
        for host in &swarm.hosts {
            self.expect_host("swarm.hosts", host, None)?;
        }
        Ok(())
    }

    fn expect_host(
        &self,
        key: &str,
        name: &str,
        kind: Option<HostKind>,
    ) -> Result<(), (String, String)> {
        match (self.host(name), kind) {
            (Some(host), Some(kind)) if host.kind != kind => Err((
                key.to_string(),
                format!("\"{name}\" is not an {kind:?} host").to_lowercase(),
            )),
            (Some(_), _) => Ok(()),
            (None, _) => Err((key.to_string(), format!("no host \"{name}\""))),
        }
    }

    /// A group of hosts in a link fault: daemons or workloads.
    fn expect_any(&self, key: &str, names: &[String]) -> Result<(), (String, String)> {
        if names.is_empty() {
            return Err((key.to_string(), "names no host".into()));
        }
        for name in names {
            let known =
                self.host(name).is_some() || self.workloads.iter().any(|w| w.name() == name);
            if !known {
                return Err((key.to_string(), format!("no host or workload \"{name}\"")));
            }
        }
        Ok(())
    }
}

fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
}

fn check_name(key: &str, name: &str) -> Result<(), (String, String)> {
    if nsq::protocol::names::is_valid_topic_name(name)
        || nsq::protocol::names::is_valid_channel_name(name)
    {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("\"{name}\" is not a valid NSQ name"),
        ))
    }
}

/// nsqd accepts heartbeat intervals of 1 s up to `--max-heartbeat-interval` (60 s).
fn check_heartbeat(key: &str, ms: u64) -> Result<(), (String, String)> {
    if (1_000..=60_000).contains(&ms) {
        Ok(())
    } else {
        Err((key.to_string(), "must be 1000..=60000".into()))
    }
}

fn check_share(key: &str, share: f64) -> Result<(), (String, String)> {
    if (0.0..=1.0).contains(&share) {
        Ok(())
    } else {
        Err((key.to_string(), "must be within 0.0..=1.0".into()))
    }
}

fn check_range(key: &str, range: [u64; 2]) -> Result<(), (String, String)> {
    if range[0] > range[1] {
        Err((
            key.to_string(),
            "the first bound is larger than the second".into(),
        ))
    } else {
        Ok(())
    }
}
