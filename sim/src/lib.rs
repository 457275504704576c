//! Deterministic turmoil simulations of nsq-rs.
//!
//! # Layout
//! - [`env`]: the daemons' `Env` seams implemented on turmoil: its network, its simulated
//!   clock, a seeded RNG and one `MemFs` per host kept outside the host so it survives a
//!   crash and a restart.
//! - [`history`]: the event log of a run (what clients saw, what faults were applied) and
//!   its hash.
//! - [`check`]: the invariant checkers that judge a history.

pub mod check;
pub mod env;
pub mod history;
