//! Deterministic turmoil simulations of nsq-rs clusters.
//!
//! # Layout
//! - [`env`]: the daemons' `Env` seams implemented on turmoil: its network, its simulated
//!   clock, a seeded RNG and one `MemFs` per host kept outside the host so it survives a
//!   crash and a restart.
//! - [`scenario`]: scenario files (`scenarios/*.toml`), read and validated whole.
//! - [`cluster`]: the daemon hosts, started with the real daemons on their real options.
//! - [`workload`]: producer, consumer and control hosts, which record what they see.
//! - [`history`]: the event log of a run and its hash.
//! - [`runner`]: one run of one scenario from one seed, faults applied on schedule.
//! - [`swarm`]: fault schedules drawn per seed from a scenario's `[swarm]` ranges.
//! - [`check`]: the invariant checkers that judge a history.

pub mod check;
pub mod cluster;
pub mod env;
pub mod history;
pub mod runner;
pub mod scenario;
pub mod swarm;
pub mod workload;

/// Simulated time since the start of the run, in microseconds, as the calling host sees
/// it (0 outside a simulation).
pub fn now_micros() -> history::Micros {
    turmoil::sim_elapsed().map_or(0, |d| d.as_micros() as u64)
}
