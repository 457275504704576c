//! Wall-clock time.

/// Wall time in nanoseconds since the Unix epoch.
///
/// Only wall time goes through this seam (timestamps, GUIDs, stats); durations and
/// deadlines use `tokio::time`, which turmoil already simulates.
pub trait Clock: Send + Sync {
    /// Nanoseconds since the Unix epoch.
    fn now_ns(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

impl Clock for RealClock {
    #[allow(clippy::disallowed_methods)]
    fn now_ns(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}
