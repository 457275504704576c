//! go-nsq's `min` and `max` struct tags: the one table both `Set` (reporting the option
//! name) and `Validate` (reporting the Go field name) check against, with values compared
//! and printed (`%v`) as Go compares and prints them.

use std::fmt;

use super::{ConfigError, NsqConfig};
use crate::go_fmt::go_float_v;
use crate::go_time::{format_go_duration, go_nanos};

/// A field's value as Go's `valueCompare` sees it.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub(super) enum GoValue {
    /// A `time.Duration`, in nanoseconds; prints as `50ms`, `5m0s`.
    Duration(i64),
    /// An `int`/`int32`.
    Int(i64),
    /// A `uint16`.
    Uint(u64),
    /// A `float64`; prints as `%v` (`1`, `1.5`, `+Inf`).
    Float(f64),
}

impl fmt::Display for GoValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GoValue::Duration(ns) => f.write_str(&format_go_duration(ns)),
            GoValue::Int(n) => write!(f, "{n}"),
            GoValue::Uint(n) => write!(f, "{n}"),
            GoValue::Float(x) => f.write_str(&go_float_v(x)),
        }
    }
}

/// One field with a `min` or `max` tag.
pub(super) struct Limit {
    /// The option name (`read_timeout`).
    pub opt: &'static str,
    /// The Go field name `Validate` reports (`ReadTimeout`).
    pub field: &'static str,
    /// The `min` tag, if any.
    pub min: Option<GoValue>,
    /// The `max` tag, if any.
    pub max: Option<GoValue>,
    /// The field's current value.
    pub get: fn(&NsqConfig) -> GoValue,
}

const MS: i64 = 1_000_000;
const SECOND: i64 = 1_000 * MS;
const MINUTE: i64 = 60 * SECOND;

const fn duration(ns: i64) -> Option<GoValue> {
    Some(GoValue::Duration(ns))
}

/// Every limited field, in Go's struct order (`Validate` reports the first failure).
pub(super) const LIMITS: [Limit; 16] = [
    Limit {
        opt: "read_timeout",
        field: "ReadTimeout",
        min: duration(100 * MS),
        max: duration(5 * MINUTE),
        get: |c| GoValue::Duration(go_nanos(c.read_timeout)),
    },
    Limit {
        opt: "write_timeout",
        field: "WriteTimeout",
        min: duration(100 * MS),
        max: duration(5 * MINUTE),
        get: |c| GoValue::Duration(go_nanos(c.write_timeout)),
    },
    Limit {
        opt: "lookupd_poll_interval",
        field: "LookupdPollInterval",
        min: duration(10 * MS),
        max: duration(5 * MINUTE),
        get: |c| GoValue::Duration(go_nanos(c.lookupd_poll_interval)),
    },
    Limit {
        opt: "lookupd_poll_jitter",
        field: "LookupdPollJitter",
        min: Some(GoValue::Float(0.0)),
        max: Some(GoValue::Float(1.0)),
        get: |c| GoValue::Float(c.lookupd_poll_jitter),
    },
    Limit {
        opt: "max_requeue_delay",
        field: "MaxRequeueDelay",
        min: duration(0),
        max: duration(60 * MINUTE),
        get: |c| GoValue::Duration(go_nanos(c.max_requeue_delay)),
    },
    Limit {
        opt: "default_requeue_delay",
        field: "DefaultRequeueDelay",
        min: duration(0),
        max: duration(60 * MINUTE),
        get: |c| GoValue::Duration(go_nanos(c.default_requeue_delay)),
    },
    Limit {
        opt: "max_backoff_duration",
        field: "MaxBackoffDuration",
        min: duration(0),
        max: duration(60 * MINUTE),
        get: |c| GoValue::Duration(go_nanos(c.max_backoff_duration)),
    },
    Limit {
        opt: "backoff_multiplier",
        field: "BackoffMultiplier",
        min: duration(0),
        max: duration(60 * MINUTE),
        get: |c| GoValue::Duration(go_nanos(c.backoff_multiplier)),
    },
    Limit {
        opt: "max_attempts",
        field: "MaxAttempts",
        min: Some(GoValue::Uint(0)),
        max: Some(GoValue::Uint(65535)),
        get: |c| GoValue::Uint(u64::from(c.max_attempts)),
    },
    Limit {
        opt: "low_rdy_idle_timeout",
        field: "LowRdyIdleTimeout",
        min: duration(SECOND),
        max: duration(5 * MINUTE),
        get: |c| GoValue::Duration(go_nanos(c.low_rdy_idle_timeout)),
    },
    Limit {
        opt: "low_rdy_timeout",
        field: "LowRdyTimeout",
        min: duration(SECOND),
        max: duration(5 * MINUTE),
        get: |c| GoValue::Duration(go_nanos(c.low_rdy_timeout)),
    },
    Limit {
        opt: "rdy_redistribute_interval",
        field: "RDYRedistributeInterval",
        min: duration(MS),
        max: duration(5 * SECOND),
        get: |c| GoValue::Duration(go_nanos(c.rdy_redistribute_interval)),
    },
    Limit {
        opt: "sample_rate",
        field: "SampleRate",
        min: Some(GoValue::Int(0)),
        max: Some(GoValue::Int(99)),
        get: |c| GoValue::Int(i64::from(c.sample_rate)),
    },
    Limit {
        opt: "deflate_level",
        field: "DeflateLevel",
        min: Some(GoValue::Int(1)),
        max: Some(GoValue::Int(9)),
        get: |c| GoValue::Int(i64::from(c.deflate_level)),
    },
    Limit {
        opt: "max_in_flight",
        field: "MaxInFlight",
        min: Some(GoValue::Int(0)),
        max: None,
        get: |c| GoValue::Int(c.max_in_flight),
    },
    Limit {
        opt: "msg_timeout",
        field: "MsgTimeout",
        min: duration(0),
        max: None,
        get: |c| GoValue::Duration(c.msg_timeout_ms.saturating_mul(MS)),
    },
];

/// Checks `value` against the limits of option `opt` (none: always fine), reporting
/// `name`: `invalid <name> ! <value> < <min>` or `... > <max>`. Values of one field are
/// always the same variant, so the derived ordering compares like Go's `valueCompare`.
pub(super) fn check(name: &str, opt: &str, value: GoValue) -> Result<(), ConfigError> {
    let Some(limit) = LIMITS.iter().find(|limit| limit.opt == opt) else {
        return Ok(());
    };
    if let Some(min) = limit.min.filter(|min| value < *min) {
        return Err(ConfigError::BelowMin {
            name: name.to_owned(),
            value: value.to_string(),
            min: min.to_string(),
        });
    }
    if let Some(max) = limit.max.filter(|max| value > *max) {
        return Err(ConfigError::AboveMax {
            name: name.to_owned(),
            value: value.to_string(),
            max: max.to_string(),
        });
    }
    Ok(())
}
