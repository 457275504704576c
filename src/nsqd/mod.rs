//! The nsqd daemon.

pub mod cli;
pub mod options;

pub use options::Options;
