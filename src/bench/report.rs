//! The one result line Go's bench_writer and bench_reader print.

use std::fmt;
use std::time::Duration;

use crate::go_time::{format_go_duration, go_nanos};

/// What a bench run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// From the start signal until the last connection finished.
    pub duration: Duration,
    /// Messages published (writer) or received (reader), over all connections.
    pub messages: u64,
    /// The `--size` flag: bytes per message, used only for the MiB/s figure.
    pub message_size: usize,
}

impl Summary {
    /// MiB per second (Go labels it `mb/s`).
    pub fn mib_per_s(&self) -> f64 {
        (self.messages as f64 * self.message_size as f64)
            / self.duration.as_secs_f64()
            / 1024.0
            / 1024.0
    }

    /// Messages per second.
    pub fn ops_per_s(&self) -> f64 {
        self.messages as f64 / self.duration.as_secs_f64()
    }

    /// Microseconds per message; Go truncates the duration to whole microseconds first.
    pub fn us_per_op(&self) -> f64 {
        self.duration.as_micros() as f64 / self.messages as f64
    }
}

impl fmt::Display for Summary {
    /// Go: `"duration: %s - %.03fmb/s - %.03fops/s - %.03fus/op"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "duration: {} - {}mb/s - {}ops/s - {}us/op",
            format_go_duration(go_nanos(self.duration)),
            go_fixed3(self.mib_per_s()),
            go_fixed3(self.ops_per_s()),
            go_fixed3(self.us_per_op()),
        )
    }
}

/// Go's `%.03f`: three decimals, with `+Inf`, `-Inf` and `NaN` spelled Go's way.
fn go_fixed3(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Summary;

    #[test]
    fn the_line_matches_go_format() {
        let summary = Summary {
            duration: Duration::from_nanos(10_000_213_456),
            messages: 5_000_000,
            message_size: 200,
        };
        assert_eq!(
            summary.to_string(),
            "duration: 10.000213456s - 95.365mb/s - 499989.327ops/s - 2.000us/op"
        );
    }

    #[test]
    fn no_messages_prints_go_infinity() {
        let summary = Summary {
            duration: Duration::from_millis(1500),
            messages: 0,
            message_size: 200,
        };
        assert_eq!(
            summary.to_string(),
            "duration: 1.5s - 0.000mb/s - 0.000ops/s - +Infus/op"
        );
    }
}
