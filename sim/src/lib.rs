//! Deterministic turmoil simulations of nsq-rs.
