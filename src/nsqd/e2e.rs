//! End-to-end processing latency (nsq-reference §4.10): how long messages took from
//! publish to FIN, as quantiles over a sliding window.
//!
//! Go nsqd keeps, per channel, two bmizerany/perks targeted-quantile streams: FIN inserts
//! `now − message timestamp` into the current one, the streams swap every window/2 (the
//! one swapped in is cleared first), and a query merges both, so an answer always covers
//! between half a window and a whole window of FINs. The topic's answer merges its
//! channels'. [`LatencyWindow`] is that pair of halves, with the time always passed in
//! (from `env.clock`) so rotation is deterministic under simulation.
//!
//! # Why HdrHistogram rather than a CKMS/targeted-quantile port
//!
//! The estimator is the `hdrhistogram` crate, the Rust port maintained by the
//! HdrHistogram project itself and the most used quantile structure in the Rust
//! ecosystem. What matters here:
//! - Merging is exact: adding one histogram to another is adding counts, so "window =
//!   current + previous half" and "topic = sum of its channels" lose nothing. Merging
//!   CKMS/targeted summaries (what perks does) is known to be inaccurate, and the Rust
//!   CKMS crates are little maintained.
//! - Error is bounded in value rather than in rank: with two significant digits every
//!   reported quantile is within 1% of a value that really sits at that rank (Go's perks
//!   promises 1% rank error around each target, which at a long tail can be far off in
//!   value). Small values (under 256 ns) are exact.
//! - Recording is O(1) with no allocation except when a value beyond every earlier one
//!   grows the histogram (each growth doubles the range; the first minute is allocated up
//!   front), and memory is fixed: about 30 KiB per half for latencies up to a minute.
//!
//! Differences from Go that a reader of `/stats` could see:
//! - Values are bucket upper bounds (within 1%), not samples that were inserted.
//! - A negative latency (a message timestamp ahead of the clock) counts as 0.
//! - The topic merges each channel's window as it stands at query time; Go merges the
//!   channels' raw streams and so may still count a half that the channel itself has
//!   already rotated out.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::options::Options;
use super::stats::{E2eLatency, Percentile};

/// Significant decimal digits kept: values are exact to within 1%.
const SIGNIFICANT_DIGITS: u8 = 2;
/// The range allocated up front (one minute in ns); larger values grow the histogram.
const INITIAL_HIGHEST_NS: u64 = 60 * 1_000_000_000;
/// The largest latency recorded as itself (about 73 years): the most an auto-resizing
/// histogram can grow to track. Larger values are recorded as this.
const MAX_LATENCY_NS: i64 = i64::MAX / 2;

/// The quantiles to report and the window length, shared by every channel of an nsqd.
/// Exists only when `--e2e-processing-latency-percentile` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct E2eConfig {
    /// The quantiles, in the order they were configured (that is the output order).
    quantiles: Arc<[f64]>,
    /// How long one half of the window lasts before the halves swap (at least 1 ns).
    half_window_ns: i64,
}

impl E2eConfig {
    /// The configuration `opts` asks for, or None when no percentile is configured.
    pub fn from_options(opts: &Options) -> Option<Self> {
        Self::new(
            &opts.e2e_processing_latency_percentiles,
            opts.e2e_processing_latency_window_time,
        )
    }

    /// Tracks `quantiles` over `window`; None when `quantiles` is empty (tracking off).
    pub fn new(quantiles: &[f64], window: Duration) -> Option<Self> {
        if quantiles.is_empty() {
            return None;
        }
        let window_ns = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
        Some(E2eConfig {
            quantiles: quantiles.into(),
            // Go would spin forever on a zero half; one nanosecond just keeps nothing.
            half_window_ns: (window_ns / 2).max(1),
        })
    }
}

/// One channel's latencies over the last window: two histograms, the current half taking
/// inserts and the previous half kept until the next swap.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    config: E2eConfig,
    halves: [Histogram<u64>; 2],
    /// Index of the half that takes inserts.
    current: usize,
    /// When the current half started (ns); it is stale once `now` is past this + half.
    last_move_ns: i64,
}

impl LatencyWindow {
    /// An empty window starting at `now_ns`.
    pub fn new(config: &E2eConfig, now_ns: i64) -> Self {
        LatencyWindow {
            config: config.clone(),
            halves: [empty_histogram(), empty_histogram()],
            current: 0,
            last_move_ns: now_ns,
        }
    }

    /// Records one latency observed at `now_ns`.
    pub fn insert(&mut self, value_ns: i64, now_ns: i64) {
        self.advance(now_ns);
        let value = u64::try_from(value_ns.clamp(0, MAX_LATENCY_NS)).unwrap_or(0);
        let half = &mut self.halves[self.current];
        if half.record(value).is_err() {
            // Growing failed (usize too small to index the counts): clamp to the range.
            half.saturating_record(value);
        }
    }

    /// Count and configured quantiles over both halves as of `now_ns`. An empty window
    /// answers 0 for every quantile, as Go's empty stream does.
    pub fn query(&mut self, now_ns: i64) -> E2eLatency {
        self.advance(now_ns);
        let mut both = self.halves[self.current].clone();
        add(&mut both, &self.halves[1 - self.current]);
        let count = both.len();
        let percentiles = self
            .config
            .quantiles
            .iter()
            .map(|&quantile| Percentile {
                quantile,
                value: if count == 0 {
                    0
                } else {
                    i64::try_from(both.value_at_quantile(quantile)).unwrap_or(i64::MAX)
                },
            })
            .collect();
        E2eLatency {
            count,
            percentiles: Some(percentiles),
        }
    }

    /// Adds `other`'s latencies to this window: both are first brought up to `now_ns`,
    /// then current half goes into current half and previous into previous, and the later
    /// start of the two current halves is kept, as Go's merge does.
    pub fn merge(&mut self, other: &mut LatencyWindow, now_ns: i64) {
        self.advance(now_ns);
        other.advance(now_ns);
        let (mine, theirs) = (self.current, other.current);
        add(&mut self.halves[mine], &other.halves[theirs]);
        add(&mut self.halves[1 - mine], &other.halves[1 - theirs]);
        self.last_move_ns = self.last_move_ns.max(other.last_move_ns);
    }

    /// Swaps halves for every half-window that has passed since the current one started.
    fn advance(&mut self, now_ns: i64) {
        let half = self.config.half_window_ns;
        let elapsed = now_ns.saturating_sub(self.last_move_ns);
        if elapsed <= half {
            return;
        }
        // Go moves one half at a time while `now` is strictly after the current half's
        // end; this is the same number of moves, counted at once.
        let moves = (elapsed - 1) / half;
        if moves >= 2 {
            self.halves[0].reset();
            self.halves[1].reset();
        } else {
            self.halves[1 - self.current].reset();
        }
        if moves % 2 == 1 {
            self.current = 1 - self.current;
        }
        self.last_move_ns = self.last_move_ns.saturating_add(moves.saturating_mul(half));
    }
}

/// A histogram ready for nanosecond latencies.
fn empty_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy `new_with_bounds` (low >= 1, high >= 2 * low,
    // digits <= 5); a unit test builds one.
    let mut histogram =
        Histogram::new_with_bounds(1, INITIAL_HIGHEST_NS, SIGNIFICANT_DIGITS).expect("valid");
    histogram.auto(true);
    histogram
}

/// `into += from`. Both auto-resize, so this fails only if `usize` cannot index the
/// grown histogram, which no nanosecond value reaches.
fn add(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if let Err(error) = into.add(from) {
        tracing::warn!(?error, "e2e latency histograms could not be merged");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn config(quantiles: &[f64], window_s: u64) -> E2eConfig {
        E2eConfig::new(quantiles, Duration::from_secs(window_s)).unwrap()
    }

    fn values(latency: &E2eLatency) -> Vec<(f64, i64)> {
        latency
            .percentiles
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.quantile, p.value))
            .collect()
    }

    /// `got` is within 1% of `want`.
    fn close(got: i64, want: i64) -> bool {
        (got - want).abs() as f64 <= want as f64 * 0.01
    }

    #[test]
    fn off_without_quantiles_and_half_window_never_zero() {
        assert!(E2eConfig::new(&[], Duration::from_secs(600)).is_none());
        assert!(E2eConfig::from_options(&Options::default()).is_none());
        assert_eq!(config(&[0.5], 600).half_window_ns, 300 * SEC);
        let zero = E2eConfig::new(&[0.5], Duration::ZERO).unwrap();
        assert_eq!(zero.half_window_ns, 1);
        let mut window = LatencyWindow::new(&zero, 0);
        window.insert(5, 1_000_000);
        assert_eq!(window.query(1_000_000).count, 1);
        assert_eq!(window.query(1_000_002).count, 0);
    }

    #[test]
    fn empty_window_answers_zero_for_each_quantile_in_configured_order() {
        let mut window = LatencyWindow::new(&config(&[1.0, 0.99, 0.5], 600), 0);
        let latency = window.query(0);
        assert_eq!(latency.count, 0);
        assert_eq!(values(&latency), vec![(1.0, 0), (0.99, 0), (0.5, 0)]);
    }

    #[test]
    fn small_values_are_exact() {
        let mut window = LatencyWindow::new(&config(&[1.0, 0.5, 0.01], 600), 0);
        for v in 1..=100 {
            window.insert(v, 0);
        }
        let latency = window.query(0);
        assert_eq!(latency.count, 100);
        assert_eq!(values(&latency), vec![(1.0, 100), (0.5, 50), (0.01, 1)]);
    }

    #[test]
    fn uniform_distribution_within_one_percent() {
        let quantiles = [1.0, 0.999, 0.99, 0.95, 0.5, 0.1];
        let mut window = LatencyWindow::new(&config(&quantiles, 600), 0);
        let n = 100_000i64;
        // 1 µs .. 100 ms in 1 µs steps, in a scrambled order.
        for i in 0..n {
            let k = (i * 7919) % n + 1;
            window.insert(k * 1_000, SEC);
        }
        let latency = window.query(SEC);
        assert_eq!(latency.count, n as u64);
        for (q, got) in values(&latency) {
            let want = (q * n as f64).ceil() as i64 * 1_000;
            assert!(close(got, want), "q={q}: got {got}, want ~{want}");
        }
    }

    #[test]
    fn long_tail_distribution_within_one_percent() {
        // 990 fast messages (1 ms) and 10 slow ones (2 s .. 20 s): p99 is still fast, the
        // max is the slowest.
        let mut window = LatencyWindow::new(&config(&[1.0, 0.995, 0.99, 0.5], 600), 0);
        for _ in 0..990 {
            window.insert(1_000_000, 0);
        }
        for i in 1..=10 {
            window.insert(i * 2 * SEC, 0);
        }
        let got = values(&window.query(0));
        assert!(close(got[0].1, 20 * SEC), "{got:?}");
        assert!(close(got[1].1, 10 * SEC), "{got:?}");
        assert!(close(got[2].1, 1_000_000), "{got:?}");
        assert!(close(got[3].1, 1_000_000), "{got:?}");
    }

    #[test]
    fn halves_rotate_every_half_window() {
        // A 10 s window: halves of 5 s, the first starting at t=0.
        let mut window = LatencyWindow::new(&config(&[1.0], 10), 0);
        window.insert(10, SEC);
        // Exactly at the end of the half it is not stale yet (Go's strict After).
        window.insert(20, 5 * SEC);
        assert_eq!(window.query(5 * SEC).count, 2);
        // Past it the halves swap: both values now sit in the previous half.
        window.insert(30, 5 * SEC + 1);
        let latency = window.query(6 * SEC);
        assert_eq!((latency.count, values(&latency)[0].1), (3, 30));
        // The second swap (past 10 s) drops the first half's values.
        let latency = window.query(10 * SEC + 1);
        assert_eq!((latency.count, values(&latency)[0].1), (1, 30));
        // The third (past 15 s) drops the rest.
        assert_eq!(window.query(15 * SEC + 1).count, 0);
    }

    #[test]
    fn a_long_idle_gap_clears_both_halves_at_once() {
        let mut window = LatencyWindow::new(&config(&[0.5], 10), 0);
        window.insert(7, SEC);
        window.insert(8, 6 * SEC);
        // A year later: one step, not a loop over every missed half.
        let later = 365 * 24 * 3600 * SEC;
        assert_eq!(window.query(later).count, 0);
        window.insert(9, later);
        // The halves stayed on the 5 s grid that started at 0.
        assert_eq!(window.last_move_ns % (5 * SEC), 0);
        assert!(later - window.last_move_ns <= 5 * SEC);
        assert_eq!(window.query(later).count, 1);
    }

    #[test]
    fn a_clock_going_back_does_not_rotate() {
        let mut window = LatencyWindow::new(&config(&[0.5], 10), 100 * SEC);
        window.insert(1, 100 * SEC);
        window.insert(2, 50 * SEC);
        assert_eq!(window.query(0).count, 2);
    }

    #[test]
    fn negative_and_huge_latencies_do_not_panic() {
        let mut window = LatencyWindow::new(&config(&[1.0, 0.5], 600), 0);
        window.insert(-5 * SEC, 0);
        window.insert(i64::MAX, 0);
        let got = values(&window.query(0));
        assert_eq!(got[1], (0.5, 0), "a negative latency counts as 0");
        assert!(got[0].1 > 1_000_000 * SEC, "{got:?}");
    }

    #[test]
    fn merge_sums_counts_and_matches_one_window_with_everything() {
        let cfg = config(&[1.0, 0.9, 0.5], 600);
        let (mut a, mut b, mut all) = (
            LatencyWindow::new(&cfg, 0),
            LatencyWindow::new(&cfg, 0),
            LatencyWindow::new(&cfg, 0),
        );
        for v in 1..=1_000 {
            let ns = v * 10_000;
            if v % 3 == 0 {
                a.insert(ns, SEC);
            } else {
                b.insert(ns, SEC);
            }
            all.insert(ns, SEC);
        }
        let mut total = LatencyWindow::new(&cfg, SEC);
        total.merge(&mut a, SEC);
        total.merge(&mut b, SEC);
        let merged = total.query(SEC);
        assert_eq!(merged.count, 1_000);
        assert_eq!(values(&merged), values(&all.query(SEC)));
        let got = values(&merged);
        assert!(close(got[0].1, 10_000_000) && close(got[2].1, 5_000_000));
    }

    #[test]
    fn merge_keeps_halves_apart_and_leaves_expired_halves_out() {
        let cfg = config(&[1.0], 10);
        let mut old = LatencyWindow::new(&cfg, 0);
        old.insert(100, SEC);
        let mut fresh = LatencyWindow::new(&cfg, 3 * SEC);
        fresh.insert(200, 4 * SEC);
        // At 9 s each has swapped once: both values sit in previous halves.
        let mut total = LatencyWindow::new(&cfg, 9 * SEC);
        total.merge(&mut old, 9 * SEC);
        total.merge(&mut fresh, 9 * SEC);
        assert_eq!(total.query(9 * SEC).count, 2);
        // At 11 s `old`'s value has expired; merged at that time it is left out.
        let mut total = LatencyWindow::new(&cfg, 11 * SEC);
        total.merge(&mut old, 11 * SEC);
        total.merge(&mut fresh, 11 * SEC);
        let latency = total.query(11 * SEC);
        assert_eq!((latency.count, values(&latency)[0].1), (1, 200));
    }
}
