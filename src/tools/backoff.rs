//! go-nsq's backoff: after a failed message the consumer holds every connection at RDY 0
//! for a while, then tries one message; each success lowers the level, each failure
//! raises it, and level 0 gives every connection its share of `max_in_flight` back.
//!
//! This is the state machine alone; the consumer applies what it decides.

use std::time::Duration;

use super::nsq_config::NsqConfig;

/// How a message ended, as the backoff sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// FIN: a success.
    Finished,
    /// REQ after a failure: back off.
    Failed,
    /// REQ that says nothing about health (e.g. handed back while stopping).
    Neutral,
}

/// What the consumer must do after an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing changes.
    Stay,
    /// Backoff is over: every connection gets its share of `max_in_flight` again.
    Resume,
    /// Every connection to RDY 0 for this long; then one connection gets RDY 1 and
    /// [`Backoff::timeout_over`] must be called.
    Pause(Duration),
}

/// The backoff level and whether a pause is running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    level: u32,
    paused: bool,
}

impl Backoff {
    /// The current level (0: not backing off).
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Whether the consumer is backing off (paused, or testing with RDY 1).
    pub fn active(&self) -> bool {
        self.level > 0 || self.paused
    }

    /// go-nsq's `startStopContinueBackoff`. `random` in `[0, 1)` is used by the
    /// full-jitter strategy. Outcomes during a pause are ignored, as in go-nsq.
    pub fn record(&mut self, outcome: Outcome, config: &NsqConfig, random: f64) -> Step {
        if self.paused {
            return Step::Stay;
        }
        let mut lowered = false;
        match outcome {
            Outcome::Finished if self.level > 0 => {
                self.level -= 1;
                lowered = true;
            }
            Outcome::Failed => {
                let next = config.backoff_strategy.calculate(
                    config.backoff_multiplier,
                    self.level + 1,
                    random,
                );
                if next <= config.max_backoff_duration {
                    self.level += 1;
                }
            }
            Outcome::Finished | Outcome::Neutral => {}
        }
        if self.level == 0 {
            return if lowered { Step::Resume } else { Step::Stay };
        }
        self.paused = true;
        Step::Pause(config.backoff_duration(self.level, random))
    }

    /// The pause has ended (one connection is now at RDY 1).
    pub fn timeout_over(&mut self) {
        self.paused = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_raise_the_level_and_successes_lower_it() {
        let config = NsqConfig::new();
        let mut backoff = Backoff::default();
        assert_eq!(backoff.record(Outcome::Finished, &config, 0.5), Step::Stay);
        assert_eq!(
            backoff.record(Outcome::Failed, &config, 0.5),
            Step::Pause(Duration::from_secs(2))
        );
        // Ignored while paused.
        assert_eq!(backoff.record(Outcome::Failed, &config, 0.5), Step::Stay);
        backoff.timeout_over();
        assert_eq!(
            backoff.record(Outcome::Failed, &config, 0.5),
            Step::Pause(Duration::from_secs(4))
        );
        backoff.timeout_over();
        // A success lowers the level but pauses again while it is above 0.
        assert_eq!(
            backoff.record(Outcome::Finished, &config, 0.5),
            Step::Pause(Duration::from_secs(2))
        );
        backoff.timeout_over();
        assert_eq!(
            backoff.record(Outcome::Finished, &config, 0.5),
            Step::Resume
        );
        assert!(!backoff.active());
    }

    #[test]
    fn the_level_stops_below_max_backoff_duration() {
        let config = NsqConfig::new();
        let mut backoff = Backoff::default();
        for _ in 0..20 {
            backoff.record(Outcome::Failed, &config, 0.5);
            backoff.timeout_over();
        }
        // 1s x 2^6 = 64s fits the default 2m; 2^7 = 128s does not.
        assert_eq!(backoff.level(), 6);
    }

    #[test]
    fn a_zero_max_backoff_duration_never_backs_off() {
        let mut config = NsqConfig::new();
        config.max_backoff_duration = Duration::ZERO;
        let mut backoff = Backoff::default();
        assert_eq!(backoff.record(Outcome::Failed, &config, 0.5), Step::Stay);
        assert!(!backoff.active());
    }
}
