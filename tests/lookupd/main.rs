//! Black-box tests of nsqlookupd over real loopback sockets, gathered into one test
//! binary.
//!
//! - `support`: start a lookupd (on a hand-driven clock), a raw V1 connection, asserts.
//! - `golden_tcp`: every V1 session of `golden/lookupd.txt`, byte for byte.
//! - `golden_http`: every HTTP exchange of `golden/lookupd.txt` (volatile values masked).
//! - `lifecycle`: registrations appearing and going, tombstones, inactivity, disconnects.
//! - `binary`: the `nsqlookupd` binary's `--help`, `--version` and bad flags.
//! - `bad_input`: Go's errors and closes, and no harm to other producers.

mod bad_input;
mod binary;
mod golden_http;
mod golden_tcp;
mod lifecycle;
mod support;
