//! Replicated topics (issue 16; the design is `docs/replication.md`): an acknowledged
//! publish survives the loss of an nsqd and its disk. Being built piece by piece; so
//! far the wire format of peer connections and the standby store of a peer.

pub mod frame;
pub mod standby;
