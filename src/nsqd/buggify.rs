//! Deliberate bugs, all off by default, that the simulator's tests switch on to prove its
//! checkers catch what they claim to catch. No flag or config key reaches them.

/// Which deliberate bugs are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buggify {
    /// After each successful FIN, the channel silently drops the next message waiting in
    /// its memory queue: a lost message no client ever sees.
    pub fin_loses_next_message: bool,
    /// At startup every due time read from the due-time journals is rounded down to the
    /// restart time: messages deferred across a restart are delivered at once, as a
    /// lost-delay bug would.
    pub deferred_due_at_restart: bool,
    /// Synced spill segments (deferred messages read early from a disk queue) are not
    /// synced before the queue lets go of the messages: a crash that drops unsynced
    /// writes loses them, as a missing fsync would.
    pub read_early_spill_unsynced: bool,
    /// A replicated publish is answered `OK` without waiting for the replicas: the loss
    /// of the owner right after loses it.
    pub replica_ok_before_ack: bool,
    /// A peer takes a FIN on one channel as a FIN on every channel, dropping standby
    /// copies other channels have not finished.
    pub replica_fin_drops_every_channel: bool,
    /// A failover delivers only the copies already due: deferred ones are dropped.
    pub failover_skips_deferred: bool,
    /// A replicated nsqd keeps its replication identity after a crash that lost what
    /// its memory queues held, so its peers keep their copies of those messages to
    /// themselves.
    pub identity_kept_after_crash: bool,
    /// Every peer of a lost owner takes its copies over at the failover timeout, none
    /// waiting for the lower-ranked one's `ADOPTED`: the whole backlog comes once per
    /// peer.
    pub every_peer_takes_over: bool,
}
