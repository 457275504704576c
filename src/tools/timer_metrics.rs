//! bitly/timer_metrics v1.0.0, which nsq_to_http and nsq_to_nsq log their request times
//! with: a rolling window of the last `status_every` durations, and a line
//! `<prefix> finished <n> - 99th: 1.23ms - 95th: 1.00ms - avg: 0.50ms` each time the
//! window wraps.

use std::sync::Arc;
use std::time::Duration;

/// One window's figures, printed as Go's `Stats.String()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The metrics' prefix (`[aggregate]:`, `[<addr>]:`).
    pub prefix: String,
    /// How many durations the window holds.
    pub count: usize,
    /// Their mean (whole nanoseconds, as Go divides a `Duration`).
    pub avg: Duration,
    /// Go's 95th percentile.
    pub p95: Duration,
    /// Go's 99th percentile.
    pub p99: Duration,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "{} finished {} - 99th: {:.2}ms - 95th: {:.2}ms - avg: {:.2}ms",
            self.prefix,
            self.count,
            ms(self.p99),
            ms(self.p95),
            ms(self.avg)
        )
    }
}

#[derive(Debug, Default)]
struct Window {
    timings: Vec<Duration>,
    position: i64,
}

/// Go's `TimerMetrics`. A `status_every` of 0 disables it; below 0 it prints on every
/// record (Go's arithmetic, kept).
#[derive(Debug)]
pub struct TimerMetrics {
    prefix: String,
    status_every: i64,
    window: std::sync::Mutex<Window>,
}

impl TimerMetrics {
    /// Go's `NewTimerMetrics`, with its warning for windows under 100.
    pub fn new(status_every: i64, prefix: &str) -> Self {
        if status_every > 0 && status_every < 100 {
            tracing::warn!(
                "Warning: use more than 100 status values for accurate percentiles (configured with {status_every})"
            );
        }
        TimerMetrics {
            prefix: prefix.to_string(),
            status_every,
            window: std::sync::Mutex::new(Window::default()),
        }
    }

    /// The relays' per-destination metrics, as Go makes them: off with one destination;
    /// otherwise one per destination, prefixed `[<addr>]:` (a repeated address shares
    /// one), in the order of `addresses`.
    pub fn per_address(addresses: &[String], status_every: i64) -> Vec<Arc<TimerMetrics>> {
        if addresses.len() == 1 {
            return vec![Arc::new(TimerMetrics::new(0, ""))];
        }
        let mut by_address = std::collections::HashMap::new();
        for address in addresses {
            let metrics = Arc::new(TimerMetrics::new(status_every, &format!("[{address}]:")));
            by_address.insert(address.as_str(), metrics);
        }
        addresses
            .iter()
            .filter_map(|address| by_address.get(address.as_str()).cloned())
            .collect()
    }

    /// Go's `Status(startTime)`: records the time since `started`.
    pub fn status(&self, started: tokio::time::Instant) {
        if self.status_every == 0 {
            return;
        }
        if let Some(stats) = self.record(started.elapsed()) {
            tracing::info!("{stats}");
        }
    }

    /// Go's `StatusDuration` without the logging: records `duration` and returns the
    /// window's figures when it has just wrapped.
    pub fn record(&self, duration: Duration) -> Option<Stats> {
        if self.status_every == 0 {
            return None;
        }
        let mut window = self.window.lock().ok()?;
        window.position += 1;
        let looped = window.position > self.status_every;
        if looped {
            window.position = 1;
        }
        let slot = usize::try_from(window.position - 1).unwrap_or(0);
        if slot >= window.timings.len() {
            window.timings.push(duration);
        } else {
            window.timings[slot] = duration;
        }
        looped.then(|| stats(&self.prefix, &window.timings))
    }
}

fn stats(prefix: &str, timings: &[Duration]) -> Stats {
    let total: Duration = timings.iter().sum();
    let mut sorted = timings.to_vec();
    sorted.sort();
    let count = sorted.len();
    let avg =
        u32::try_from(count)
            .ok()
            .filter(|count| *count > 0)
            .map_or(Duration::ZERO, |count| {
                Duration::from_nanos(
                    u64::try_from(total.as_nanos() / u128::from(count)).unwrap_or(0),
                )
            });
    Stats {
        prefix: prefix.to_string(),
        count,
        avg,
        p95: percentile(95.0, &sorted),
        p99: percentile(99.0, &sorted),
    }
}

/// Go's `percentile`: index `ceil(perc/100 × len + 0.5)`, at most `len - 1`.
fn percentile(perc: f64, sorted: &[Duration]) -> Duration {
    let length = sorted.len();
    if length == 0 {
        return Duration::ZERO;
    }
    let index = ((perc / 100.0) * length as f64 + 0.5).ceil() as usize;
    sorted[index.min(length - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_when_the_window_wraps() {
        let metrics = TimerMetrics::new(4, "[aggregate]:");
        let ms = Duration::from_millis;
        for d in [1, 2, 3, 4] {
            assert_eq!(metrics.record(ms(d)), None);
        }
        // The 5th record replaces the 1st and prints the window.
        let stats = metrics.record(ms(5)).unwrap();
        assert_eq!(
            stats.to_string(),
            "[aggregate]: finished 4 - 99th: 5.00ms - 95th: 5.00ms - avg: 3.50ms"
        );
        for d in [6, 7, 8] {
            assert_eq!(metrics.record(ms(d)), None);
        }
        assert!(metrics.record(ms(9)).is_some());
    }

    #[test]
    fn zero_disables_and_a_negative_window_prints_every_time() {
        let off = TimerMetrics::new(0, "");
        assert_eq!(off.record(Duration::from_millis(1)), None);
        let negative = TimerMetrics::new(-1, "[x]:");
        for _ in 0..3 {
            let stats = negative.record(Duration::from_millis(2)).unwrap();
            assert_eq!(stats.count, 1);
        }
    }

    #[test]
    fn percentiles_use_gos_index() {
        let sorted: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        // ceil(0.95 × 200 + 0.5) = 191 → the 192nd value.
        assert_eq!(percentile(95.0, &sorted), Duration::from_millis(192));
        assert_eq!(percentile(99.0, &sorted), Duration::from_millis(200));
    }
}
