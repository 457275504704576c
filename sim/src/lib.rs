//! Deterministic turmoil simulations of nsq-rs.
//!
//! # Layout
//! - [`env`]: the daemons' `Env` seams implemented on turmoil: its network, its simulated
//!   clock, a seeded RNG and one `MemFs` per host kept outside the host so it survives a
//!   crash and a restart.
//!
//! The full cluster builder, scenario files and checkers come with the simulation issue;
//! for now `tests/` proves that an `Nsqd` runs unchanged on the simulated network
//! (`seams.rs`) and that a host crash with its disk dropping unsynced writes loses no
//! acknowledged message in crash-safe mode, replayably from a seed (`crash_restart.rs`).

pub mod env;
