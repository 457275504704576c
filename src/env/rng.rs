//! Seeded randomness.

use parking_lot::Mutex;

/// The only source of randomness the daemons may use, so a simulation can seed it.
pub trait Rng: Send + Sync {
    /// A uniformly random `u64`.
    fn next_u64(&self) -> u64;

    /// A uniformly random number in `0..n` (`0` when `n` is `0`).
    fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift: unbiased enough for sampling and jitter.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A fast PRNG behind a mutex, seeded explicitly (simulations) or from the OS (production).
#[derive(Debug)]
pub struct SeededRng {
    inner: Mutex<fastrand::Rng>,
}

impl SeededRng {
    /// An RNG whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng {
            inner: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    /// An RNG seeded from the operating system, for production.
    #[allow(clippy::disallowed_methods)]
    pub fn from_entropy() -> Self {
        SeededRng {
            inner: Mutex::new(fastrand::Rng::new()),
        }
    }
}

impl Rng for SeededRng {
    fn next_u64(&self) -> u64 {
        self.inner.lock().u64(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_sequence() {
        let a = SeededRng::new(7);
        let b = SeededRng::new(7);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
    }

    #[test]
    fn below_stays_in_range() {
        let r = SeededRng::new(1);
        for n in 1..200 {
            assert!(r.below(n) < n);
        }
        assert_eq!(r.below(0), 0);
    }
}
