//! Replicated topics (issue 16; the design is `docs/replication.md`): an acknowledged
//! publish survives the loss of an nsqd and its disk.
//!
//! - `frame`: the wire format of peer connections; `link`: frames over a stream.
//! - `owner`: the publishing side (peer connections, acknowledgements).
//! - `peer`: the receiving side (standby copies), kept in `standby` stores, all of a
//!   node's in `stores` (which also ranks the peers for a takeover).
//! - `identity`: `replication.dat`, which tells a node that lost its disk.
//! - `node`: how nsqd runs all of it (publish, failover).

pub mod frame;
pub mod identity;
pub mod link;
pub(crate) mod node;
pub mod owner;
pub mod peer;
pub mod standby;
pub mod stores;

pub use node::{PublishError, Replication, ReplicationStartError};
