//! A small async NSQ client for tests, tools, benches and simulations.
