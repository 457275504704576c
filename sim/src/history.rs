//! The history of a simulation run: every client-visible event, in the order the
//! simulation produced it, stamped with simulated time.
//!
//! Workloads and the fault injector append; checkers only read. The same seed gives the
//! same history, and [`History::hash`] condenses it into one number a run prints so two
//! runs can be compared.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use nsq::protocol::message::MessageId;

/// Simulated time since the start of the run, in microseconds.
pub type Micros = u64;

/// One TCP connection of a workload, numbered in the order they were opened.
pub type ConnId = u64;

/// One publish command (PUB, MPUB or DPUB), numbered in the order they were sent.
pub type PublishId = u64;

/// What a workload, the fault injector or the end-of-run observer saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A workload opened a connection to an nsqd host.
    Connected {
        /// The new connection.
        conn: ConnId,
        /// The workload's name.
        workload: String,
        /// The nsqd host connected to.
        nsqd: String,
    },
    /// A publish command was written: its bodies (one for PUB and DPUB, several for MPUB).
    PublishSent {
        /// This publish.
        publish: PublishId,
        /// The producer's connection.
        conn: ConnId,
        /// The nsqd host it was sent to.
        nsqd: String,
        /// The topic.
        topic: String,
        /// The message bodies, each unique in the run.
        bodies: Vec<Bytes>,
        /// DPUB's deferral; `None` for PUB and MPUB.
        defer_ms: Option<u64>,
    },
    /// nsqd answered a publish. `ok` is true for `OK`; false for an error frame.
    PublishAnswered {
        /// The publish answered.
        publish: PublishId,
        /// Whether nsqd acknowledged it.
        ok: bool,
        /// The error text, for a refusal.
        error: Option<String>,
    },
    /// nsqd answered `OK` to a SUB: the channel exists on that nsqd from now on.
    Subscribed {
        /// The consumer's connection.
        conn: ConnId,
        /// The topic.
        topic: String,
        /// The channel.
        channel: String,
    },
    /// The consumer sent `RDY count`.
    Ready {
        /// The connection.
        conn: ConnId,
        /// The count sent.
        count: u64,
    },
    /// A message arrived on a consumer's connection.
    Delivered {
        /// The connection.
        conn: ConnId,
        /// nsqd's message id.
        id: MessageId,
        /// The attempts field of this delivery.
        attempts: u16,
        /// The body.
        body: Bytes,
    },
    /// The consumer sent FIN for a message it had received.
    Finished {
        /// The connection.
        conn: ConnId,
        /// The message.
        id: MessageId,
    },
    /// The consumer sent REQ for a message it had received.
    Requeued {
        /// The connection.
        conn: ConnId,
        /// The message.
        id: MessageId,
        /// The requested delay.
        delay_ms: u64,
    },
    /// The consumer sent TOUCH for a message it had received.
    Touched {
        /// The connection.
        conn: ConnId,
        /// The message.
        id: MessageId,
    },
    /// The consumer sent TOUCH of `marker`, an id nsqd never makes, right after a REQ with
    /// a delay. nsqd reads a connection's commands in order and answers the marker with
    /// `E_TOUCH_FAILED`, so that answer proves every command sent before it was processed.
    Marked {
        /// The connection.
        conn: ConnId,
        /// The id touched: below 2^32, far below any id nsqd's snowflake layout makes.
        marker: MessageId,
    },
    /// An error frame arrived (e.g. `E_FIN_FAILED FIN <id> failed ...`), on a consumer's or
    /// a producer's connection, outside a publish answer.
    ServerError {
        /// The connection.
        conn: ConnId,
        /// The whole error text, code first.
        text: String,
    },
    /// A connection ended. `clean` is true when the consumer sent CLS and read
    /// `CLOSE_WAIT`: every answer to its earlier commands has then arrived.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Whether it ended with `CLOSE_WAIT`.
        clean: bool,
    },
    /// A fault from the schedule (or drawn by the swarm) was applied.
    Fault {
        /// What was done, e.g. `partition nsqd1 <-> lookupd1`.
        description: String,
    },
    /// A host was killed: its tasks stopped and unsynced disk writes were dealt with as
    /// the host's crash mode says.
    HostCrashed {
        /// The host.
        host: String,
    },
    /// A crashed host's disk was wiped (the `lose` fault; recorded right after its
    /// [`Event::HostCrashed`]): whatever it held is gone, and if it starts again it starts
    /// blank. Checkers excuse what only that disk held, and nothing else.
    HostLost {
        /// The host.
        host: String,
    },
    /// A host was stopped gracefully (the daemon's own shutdown ran).
    HostStopped {
        /// The host.
        host: String,
    },
    /// A stopped or crashed host was started again.
    HostRestarted {
        /// The host.
        host: String,
    },
    /// Every fault was repaired (`heal_at_ms`); liveness is judged from here on.
    Healed,
    /// What an nsqd reported in `/stats` at the end of the run.
    NsqdObserved {
        /// The nsqd host.
        nsqd: String,
        /// Its channels as `(topic, channel) -> depths`.
        channels: BTreeMap<(String, String), ChannelDepths>,
    },
    /// What a lookupd reported at the end of the run.
    LookupdObserved {
        /// The lookupd host.
        lookupd: String,
        /// The `broadcast_address` of every producer in `/nodes`.
        nodes: Vec<String>,
        /// For every topic it knows, the `broadcast_address`es `/lookup` lists.
        topics: BTreeMap<String, Vec<String>>,
    },
}

/// A channel's queues as `/stats` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelDepths {
    /// Messages waiting (memory + disk).
    pub depth: u64,
    /// Messages delivered and not yet answered.
    pub in_flight: u64,
    /// Deferred messages (DPUB and REQ with a delay).
    pub deferred: u64,
}

/// An event and when it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Simulated time.
    pub at: Micros,
    /// What happened.
    pub event: Event,
}

/// The whole run, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    entries: Vec<Entry>,
    next_conn: ConnId,
    next_publish: PublishId,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event that happened at `at`.
    pub fn record(&mut self, at: Micros, event: Event) {
        self.entries.push(Entry { at, event });
    }

    /// A fresh connection number.
    pub fn next_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        self.next_conn
    }

    /// A fresh publish number.
    pub fn next_publish(&mut self) -> PublishId {
        self.next_publish += 1;
        self.next_publish
    }

    /// Every entry, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// A 64-bit FNV-1a hash of the history's canonical text: equal histories hash
    /// equally, on any machine and Rust version.
    pub fn hash(&self) -> u64 {
        let mut hasher = Fnv1a::default();
        let mut line = String::new();
        for entry in &self.entries {
            line.clear();
            // The Debug rendering of our own types is stable text; it is the canonical form.
            let _ = writeln!(line, "{} {:?}", entry.at, entry.event);
            hasher.write(line.as_bytes());
        }
        hasher.finish()
    }
}

/// FNV-1a, 64-bit: simple and fixed forever, unlike std's `DefaultHasher`.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_histories_hash_equally_and_a_change_shows() {
        let mut a = History::new();
        a.record(5, Event::Healed);
        let b = a.clone();
        assert_eq!(a.hash(), b.hash());
        a.record(6, Event::Healed);
        assert_ne!(a.hash(), b.hash());
    }
}
