//! Which destination a relay sends a message to (`--mode`), as nsq_to_http and
//! nsq_to_nsq choose: every one in turn from a shared counter (`round-robin`; the first
//! message goes to the second address, as in Go), go-hostpool's pool (`hostpool`, and
//! `epsilon-greedy`, whose weighting by response time we do not copy), or every address
//! (nsq_to_http's leftover mode for any other `--mode`).

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use super::hostpool::HostPool;

/// How a destination is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every destination, in order (nsq_to_http's `ModeAll`).
    All,
    /// One destination in turn.
    RoundRobin,
    /// go-hostpool: in turn, skipping destinations that failed recently.
    HostPool,
}

impl Mode {
    /// nsq_to_http's `--mode`: `round-robin`, `hostpool` or `epsilon-greedy`; anything
    /// else leaves Go's zero value, `ModeAll`.
    pub fn for_http(mode: &str) -> Mode {
        match mode {
            "round-robin" => Mode::RoundRobin,
            "hostpool" | "epsilon-greedy" => Mode::HostPool,
            _ => Mode::All,
        }
    }

    /// nsq_to_nsq's `--mode`: as nsq_to_http's, but its zero value is round-robin.
    pub fn for_nsq(mode: &str) -> Mode {
        match Mode::for_http(mode) {
            Mode::All => Mode::RoundRobin,
            other => other,
        }
    }
}

/// The destinations a message may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// All of them, in order.
    Every,
    /// The one at this index.
    One(usize),
}

/// Chooses among `len` destinations by [`Mode`].
#[derive(Debug)]
pub struct Upstreams {
    mode: Mode,
    len: usize,
    counter: AtomicU64,
    pool: std::sync::Mutex<HostPool>,
}

impl Upstreams {
    /// A chooser over `len` destinations (at least one).
    pub fn new(mode: Mode, len: usize) -> Self {
        Upstreams {
            mode,
            len: len.max(1),
            counter: AtomicU64::new(0),
            pool: std::sync::Mutex::new(HostPool::new(len, Instant::now())),
        }
    }

    /// Where the next message goes.
    pub fn pick(&self) -> Pick {
        match self.mode {
            Mode::All => Pick::Every,
            Mode::RoundRobin => {
                let counter = self.counter.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
                let len = u64::try_from(self.len).unwrap_or(1);
                Pick::One(usize::try_from(counter % len).unwrap_or(0))
            }
            Mode::HostPool => match self.pool.lock() {
                Ok(mut pool) => Pick::One(pool.get(Instant::now())),
                Err(_) => Pick::One(0),
            },
        }
    }

    /// The outcome of a send to the destination at `index` (go-hostpool's `Mark`; the
    /// other modes keep no health).
    pub fn mark(&self, index: usize, ok: bool) {
        if self.mode == Mode::HostPool {
            if let Ok(mut pool) = self.pool.lock() {
                pool.mark(index, ok, Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_go_reads_them() {
        assert_eq!(Mode::for_http("round-robin"), Mode::RoundRobin);
        assert_eq!(Mode::for_http("epsilon-greedy"), Mode::HostPool);
        assert_eq!(Mode::for_http("nope"), Mode::All);
        assert_eq!(Mode::for_nsq("nope"), Mode::RoundRobin);
        assert_eq!(Mode::for_nsq("hostpool"), Mode::HostPool);
    }

    #[tokio::test]
    async fn round_robin_starts_at_the_second_destination() {
        let upstreams = Upstreams::new(Mode::RoundRobin, 3);
        let picks: Vec<Pick> = (0..4).map(|_| upstreams.pick()).collect();
        assert_eq!(
            picks,
            [Pick::One(1), Pick::One(2), Pick::One(0), Pick::One(1)]
        );
        assert_eq!(Upstreams::new(Mode::All, 2).pick(), Pick::Every);
    }
}
