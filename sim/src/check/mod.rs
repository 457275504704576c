//! Invariant checkers: each reads the [`History`] of a run and reports every violation it
//! finds. Checkers observe; they never drive the simulation.
//!
//! Safety checkers hold at every moment of the run; liveness checkers
//! ([`Invariant::Drains`], [`Invariant::LookupdConverges`]) judge the state observed at the
//! end, `settle_ms` after every fault was repaired.
//!
//! Every checker is sound: it reports only what real NSQ semantics forbid, whatever the
//! latency, broken connections (commands left unconfirmed), crashes and restarts did.
//!
//! # Layout
//! - `view`: the history indexed once (connections, publishes, deliveries, host lives).
//! - one module per invariant: `no_loss`, `no_unexpected`, `attempts`, `fin_final`,
//!   `deferred`, `rdy`, `drains`, `lookupd`, `replicated_no_loss`, `single_takeover`.
//!
//! A host lost with its disk (the `lose` fault, [`crate::history::Event::HostLost`]) is a
//! crash that also forgets everything the disk held: each checker excuses what only that
//! disk could have kept (see each module), except `replicated_no_loss`, whose whole point
//! is that a replicated topic survives it.

use std::collections::BTreeMap;

use nsq::protocol::message::MessageId;

use crate::history::{History, Micros};

mod attempts;
mod deferred;
mod drains;
mod fin_final;
mod lookupd;
mod no_loss;
mod no_unexpected;
mod rdy;
mod replicated_no_loss;
mod single_takeover;
#[cfg(test)]
mod testkit;
mod view;

use view::View;

/// One guarantee a scenario can ask to be checked, by the name scenario files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// `no_loss`: every acknowledged publish reaches every channel that existed on that
    /// nsqd when it was sent (a crash may lose only what the nsqd's durability allows).
    NoLoss,
    /// `no_unexpected`: nothing is delivered that was never published; an id always
    /// carries the same body; two different publishes never share an id.
    NoUnexpected,
    /// `attempts_monotonic`: between restarts of an nsqd, each redelivery of a message on a
    /// channel carries a larger `attempts` than every earlier delivery of it there.
    AttemptsMonotonic,
    /// `fin_final`: a FIN nsqd accepted is final: the message never comes back on that
    /// channel (until the nsqd crashes).
    FinFinal,
    /// `deferred_not_early`: a DPUB is not delivered before its delay has passed since it
    /// was sent, nor a REQ-delayed message before its delay since the REQ.
    DeferredNotEarly,
    /// `rdy_respected`: a connection never holds more unanswered, unexpired messages than
    /// the RDY count it sent.
    RdyRespected,
    /// `drains`: at the end every channel's depth, in-flight and deferred counts are 0.
    Drains,
    /// `lookupd_converges`: at the end every lookupd lists exactly the live nsqds, each under
    /// the topics it has.
    LookupdConverges,
    /// `replicated_no_loss`: every acknowledged publish to a replicated topic is delivered
    /// and FINished, by any nsqd, on every channel that existed when it was sent, whatever
    /// crashed or was lost with its disk.
    ReplicatedNoLoss,
    /// `single_takeover`: in a run whose only faults are crashes and losses of nsqds, a
    /// lost owner's message is taken over by one peer, not by every peer holding it (a
    /// peer down since the owner went down excepted).
    SingleTakeover,
}

impl Invariant {
    /// Every invariant, in the order they are checked and reported.
    pub const ALL: [Invariant; 10] = [
        Invariant::NoLoss,
        Invariant::NoUnexpected,
        Invariant::AttemptsMonotonic,
        Invariant::FinFinal,
        Invariant::DeferredNotEarly,
        Invariant::RdyRespected,
        Invariant::Drains,
        Invariant::LookupdConverges,
        Invariant::ReplicatedNoLoss,
        Invariant::SingleTakeover,
    ];

    /// The name scenario files and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoLoss => "no_loss",
            Invariant::NoUnexpected => "no_unexpected",
            Invariant::AttemptsMonotonic => "attempts_monotonic",
            Invariant::FinFinal => "fin_final",
            Invariant::DeferredNotEarly => "deferred_not_early",
            Invariant::RdyRespected => "rdy_respected",
            Invariant::Drains => "drains",
            Invariant::LookupdConverges => "lookupd_converges",
            Invariant::ReplicatedNoLoss => "replicated_no_loss",
            Invariant::SingleTakeover => "single_takeover",
        }
    }

    /// The invariant a scenario file names, if any.
    pub fn from_name(name: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// What the checkers need to know about the cluster beyond the history.
#[derive(Debug, Clone, Default)]
pub struct CheckContext {
    /// Every nsqd host by name.
    pub nsqds: BTreeMap<String, NsqdFacts>,
    /// Every lookupd host by name.
    pub lookupds: Vec<String>,
    /// The network's largest one-way latency when no latency fault is active.
    pub max_latency_ms: u64,
    /// Time windows `[from, to)` in which a hold or latency fault made delivery times
    /// unbounded; timing checkers skip deliveries that fall in them.
    pub unreliable_timing: Vec<(Micros, Micros)>,
}

/// The facts about one nsqd host the checkers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsqdFacts {
    /// `--msg-timeout`.
    pub msg_timeout_ms: u64,
    /// Whether an acknowledged publish survives a crash of this host
    /// (`--mem-queue-size=0 --sync-every=1` and a disk that keeps synced writes).
    pub crash_durable: bool,
    /// The `broadcast_address` it registers with lookupds (what lookupd lists).
    pub broadcast_address: String,
    /// The lookupd hosts it registers with (`--lookupd-tcp-address`); `None` for every
    /// lookupd of the cluster.
    pub lookupds: Option<Vec<String>>,
    /// `--replication-factor`: at 2 or more its topics are replicated, so a publish it
    /// acknowledged must survive its loss and may be delivered by another nsqd.
    pub replication_factor: u32,
    /// `--node-id`: the node bits of the message ids it mints.
    pub node_id: u16,
}

impl NsqdFacts {
    /// Whether this nsqd's (durable) topics are replicated.
    pub fn replicated(&self) -> bool {
        self.replication_factor >= 2
    }

    /// Whether message `id`, delivered by this nsqd, was taken over from a peer (a
    /// failover): another node minted it.
    pub fn adopted(&self, id: &nsq::protocol::MessageId) -> bool {
        self.replicated()
            && nsq::protocol::guid::node_id_of(id).is_some_and(|node| node != self.node_id)
    }
}

/// Whether `nsqd` replicates its topics, by the facts of `ctx`.
pub(crate) fn replicated(ctx: &CheckContext, nsqd: &str) -> bool {
    ctx.nsqds.get(nsqd).is_some_and(NsqdFacts::replicated)
}

/// One broken guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which guarantee.
    pub invariant: Invariant,
    /// The message concerned, when there is one.
    pub message_id: Option<MessageId>,
    /// When it was seen to break (simulated µs), when known.
    pub at: Option<Micros>,
    /// What happened, in words.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.invariant.name())?;
        if let Some(at) = self.at {
            write!(f, " at {}.{:03} ms", at / 1000, at % 1000)?;
        }
        if let Some(id) = self.message_id {
            write!(f, " message {id}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Runs the `enabled` checkers over `history`; violations come ordered by time, unknown
/// times last, so the first is the first thing that went wrong.
pub fn check(enabled: &[Invariant], history: &History, ctx: &CheckContext) -> Vec<Violation> {
    let view = View::new(history);
    let mut violations = Vec::new();
    for invariant in Invariant::ALL {
        if enabled.contains(&invariant) {
            violations.extend(check_one(invariant, &view, ctx));
        }
    }
    violations.sort_by_key(|v| (v.at.is_none(), v.at));
    violations
}

fn check_one(invariant: Invariant, view: &View<'_>, ctx: &CheckContext) -> Vec<Violation> {
    match invariant {
        Invariant::NoLoss => no_loss::check(view, ctx),
        Invariant::NoUnexpected => no_unexpected::check(view, ctx),
        Invariant::AttemptsMonotonic => attempts::check(view, ctx),
        Invariant::FinFinal => fin_final::check(view, ctx),
        Invariant::DeferredNotEarly => deferred::check(view, ctx),
        Invariant::RdyRespected => rdy::check(view, ctx),
        Invariant::Drains => drains::check(view, ctx),
        Invariant::LookupdConverges => lookupd::check(view, ctx),
        Invariant::ReplicatedNoLoss => replicated_no_loss::check(view, ctx),
        Invariant::SingleTakeover => single_takeover::check(view, ctx),
    }
}
