//! bitly/go-hostpool v0.1.0's standard pool, which nsq_to_http and nsq_to_nsq use for
//! `--mode=hostpool`: hosts in turn, skipping the ones marked dead; a dead host is tried
//! again 30s after it failed, then after twice as long each time (at most 900s); a
//! success revives it; when every host is dead, all are revived and the first is used.

use std::time::Duration;

use tokio::time::Instant;

/// The first wait before a dead host is tried again.
const INITIAL_RETRY_DELAY: Duration = Duration::from_secs(30);
/// The longest wait between tries of a dead host.
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(900);

#[derive(Debug, Clone)]
struct Host {
    dead: bool,
    next_retry: Instant,
    retry_delay: Duration,
}

/// go-hostpool's `standardHostPool` over hosts `0..len`. Times come from the caller.
#[derive(Debug, Clone)]
pub struct HostPool {
    hosts: Vec<Host>,
    next: usize,
}

impl HostPool {
    /// A pool of `len` hosts (at least one), all alive.
    pub fn new(len: usize, now: Instant) -> Self {
        let host = Host {
            dead: false,
            next_retry: now,
            retry_delay: INITIAL_RETRY_DELAY,
        };
        HostPool {
            hosts: vec![host; len.max(1)],
            next: 0,
        }
    }

    /// Go's `Get`: the index of the next live host after the last one given, or of a
    /// dead one whose retry time has passed (its next retry moves out, doubled).
    pub fn get(&mut self, now: Instant) -> usize {
        let count = self.hosts.len();
        for i in 0..count {
            let index = (self.next + i) % count;
            let host = &mut self.hosts[index];
            if !host.dead {
                self.next = index + 1;
                return index;
            }
            if host.next_retry < now {
                host.retry_delay = (host.retry_delay * 2).min(MAX_RETRY_INTERVAL);
                host.next_retry = now + host.retry_delay;
                self.next = index + 1;
                return index;
            }
        }
        for host in &mut self.hosts {
            host.dead = false;
        }
        self.next = 0;
        0
    }

    /// Go's `Mark`: a success revives the host; a failure of a live host makes it dead
    /// until 30s from now.
    pub fn mark(&mut self, index: usize, ok: bool, now: Instant) {
        let Some(host) = self.hosts.get_mut(index) else {
            return;
        };
        if ok {
            host.dead = false;
        } else if !host.dead {
            host.dead = true;
            host.retry_delay = INITIAL_RETRY_DELAY;
            host.next_retry = now + INITIAL_RETRY_DELAY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hosts_in_turn_skipping_the_dead_until_their_retry() {
        let start = Instant::now();
        let mut pool = HostPool::new(3, start);
        assert_eq!(
            [pool.get(start), pool.get(start), pool.get(start)],
            [0, 1, 2]
        );
        pool.mark(1, false, start);
        assert_eq!([pool.get(start), pool.get(start)], [0, 2]);
        // Past the 30s retry: host 1 gets one try, and its next retry is 60s out.
        let later = start + Duration::from_secs(31);
        assert_eq!([pool.get(later), pool.get(later)], [0, 1]);
        assert_eq!([pool.get(later), pool.get(later)], [2, 0]);
        let after_60s = later + Duration::from_secs(61);
        assert_eq!(pool.get(after_60s), 1);
        pool.mark(1, true, after_60s);
        assert_eq!([pool.get(after_60s), pool.get(after_60s)], [2, 0]);
        assert_eq!(pool.get(after_60s), 1);
    }

    #[tokio::test]
    async fn all_dead_revives_all_and_starts_over() {
        let now = Instant::now();
        let mut pool = HostPool::new(2, now);
        pool.mark(0, false, now);
        pool.mark(1, false, now);
        // Go resets its index to 0 without moving past the host it returns.
        assert_eq!([pool.get(now), pool.get(now), pool.get(now)], [0, 0, 1]);
    }
}
