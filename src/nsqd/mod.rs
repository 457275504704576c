//! The nsqd daemon.

pub mod options;

pub use options::Options;
