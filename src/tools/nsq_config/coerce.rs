//! How go-nsq's `Config.Set` turns a `--consumer-opt` value into a field: Go's `strconv`
//! and `time.ParseDuration` with their error texts, then the range check of the field's
//! `min`/`max` tags ([`super::limits`]).

use std::fmt;
use std::time::Duration;

use super::limits::{check, GoValue};
use super::{BackoffStrategy, ConfigError};
use crate::go_cli::values::{parse_go_bool, parse_go_float};
use crate::go_fmt::go_quote;
use crate::go_time::{parse_go_duration, GoTimeError};

/// Why a value could not be turned into its field's type: the `%s` after
/// `failed to coerce option <key> (<value>) - `.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoerceError {
    /// Go's text when the value's type does not fit the field: a value-less option
    /// (Go's `true`) for a number, duration, strategy or string, or an unknown
    /// `backoff_strategy`.
    #[error("invalid value type")]
    InvalidValueType,
    /// A `strconv` parse failure.
    #[error("{0}")]
    Number(NumError),
    /// A `time.ParseDuration` failure.
    #[error("{0}")]
    Duration(GoTimeError),
    /// Ours: a negative `dial_timeout` or `lookupd_poll_timeout` (Go accepts it, and then
    /// every dial fails at once).
    #[error("negative duration")]
    NegativeDuration,
    /// Ours: a `NaN` float (Go accepts it: it passes both range checks).
    #[error("not a number")]
    NotANumber,
}

/// Go's `*strconv.NumError`: `strconv.ParseInt: parsing "abc": invalid syntax`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumError {
    /// The function: `ParseInt`, `ParseUint`, `ParseFloat` or `ParseBool`.
    pub func: &'static str,
    /// The text that was parsed.
    pub num: String,
    /// What was wrong with it.
    pub kind: NumErrorKind,
}

impl fmt::Display for NumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (func, num, kind) = (self.func, go_quote(&self.num), self.kind);
        write!(f, "strconv.{func}: parsing {num}: {kind}")
    }
}

/// Go's `strconv.ErrSyntax` and `strconv.ErrRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumErrorKind {
    /// Not a number of the wanted kind.
    #[error("invalid syntax")]
    Syntax,
    /// A number too large for the wanted type.
    #[error("value out of range")]
    Range,
}

/// One `Config.Set` call: the option (dashes already turned into underscores) and its
/// value, `None` when the flag had no comma (go-nsq's `ConfigFlag` then passes Go's
/// `true`, a bool, not a string).
pub(super) struct Raw<'a> {
    pub option: &'a str,
    pub value: Option<&'a str>,
}

impl Raw<'_> {
    /// `failed to coerce option <key> (<value>) - <reason>`.
    pub fn coerce_error(&self, reason: CoerceError) -> ConfigError {
        ConfigError::Coerce {
            option: self.option.to_owned(),
            value: self.value.unwrap_or("true").to_owned(),
            reason,
        }
    }

    /// The value as text; Go's `true` fits no field that wants one.
    fn text(&self) -> Result<&str, ConfigError> {
        self.value
            .ok_or_else(|| self.coerce_error(CoerceError::InvalidValueType))
    }

    /// The value of a TLS option that wants a file name or version: Go's `true` gets
    /// `ERROR: true is not a string`.
    pub fn go_string(&self) -> Result<&str, ConfigError> {
        self.value
            .ok_or_else(|| ConfigError::NotAString("true".to_owned()))
    }

    fn number_error(&self, func: &'static str, kind: NumErrorKind) -> ConfigError {
        self.coerce_error(CoerceError::Number(NumError {
            func,
            num: self.value.unwrap_or("true").to_owned(),
            kind,
        }))
    }

    fn checked(&self, value: GoValue) -> Result<(), ConfigError> {
        check(self.option, self.option, value)
    }

    /// A string field. Go would store `%!s(bool=true)` for a value-less option; we refuse.
    pub fn string(&self) -> Result<String, ConfigError> {
        self.text().map(str::to_owned)
    }

    /// A bool field: Go's `strconv.ParseBool`; no value means `true`.
    pub fn bool(&self) -> Result<bool, ConfigError> {
        match self.value {
            None => Ok(true),
            Some(text) => parse_go_bool(text)
                .ok_or_else(|| self.number_error("ParseBool", NumErrorKind::Syntax)),
        }
    }

    /// A signed integer field: `strconv.ParseInt(s, 10, 64)`, range-checked, then narrowed
    /// to the field's width (an error where Go truncates; the range check comes first, so
    /// the fields with limits report Go's `invalid ... > max` instead).
    pub fn int<T: TryFrom<i64>>(&self) -> Result<T, ConfigError> {
        let text = self.text()?;
        let value = parse_decimal_int(text).map_err(|kind| self.number_error("ParseInt", kind))?;
        self.checked(GoValue::Int(value))?;
        T::try_from(value).map_err(|_| self.number_error("ParseInt", NumErrorKind::Range))
    }

    /// An unsigned integer field: `strconv.ParseUint(s, 10, 64)`, like [`Raw::int`].
    pub fn uint<T: TryFrom<u64>>(&self) -> Result<T, ConfigError> {
        let text = self.text()?;
        let value =
            parse_decimal_uint(text).map_err(|kind| self.number_error("ParseUint", kind))?;
        self.checked(GoValue::Uint(value))?;
        T::try_from(value).map_err(|_| self.number_error("ParseUint", NumErrorKind::Range))
    }

    /// A float field: `strconv.ParseFloat(s, 64)`, range-checked; `NaN` is refused.
    pub fn float(&self) -> Result<f64, ConfigError> {
        let text = self.text()?;
        let value = parse_go_float(text)
            .ok_or_else(|| self.number_error("ParseFloat", NumErrorKind::Syntax))?;
        if value.is_infinite() && !text.to_ascii_lowercase().contains("inf") {
            return Err(self.number_error("ParseFloat", NumErrorKind::Range));
        }
        if value.is_nan() {
            return Err(self.coerce_error(CoerceError::NotANumber));
        }
        self.checked(GoValue::Float(value))?;
        Ok(value)
    }

    /// A duration as Go holds it (signed nanoseconds): `time.ParseDuration`, so a unit is
    /// required, then range-checked.
    pub fn go_duration(&self) -> Result<i64, ConfigError> {
        let text = self.text()?;
        let ns =
            parse_go_duration(text).map_err(|e| self.coerce_error(CoerceError::Duration(e)))?;
        self.checked(GoValue::Duration(ns))?;
        Ok(ns)
    }

    /// A duration field the client waits on: as [`Raw::go_duration`], negative refused.
    pub fn duration(&self) -> Result<Duration, ConfigError> {
        let ns = self.go_duration()?;
        let ns = u64::try_from(ns).map_err(|_| self.coerce_error(CoerceError::NegativeDuration))?;
        Ok(Duration::from_nanos(ns))
    }

    /// A duration IDENTIFY sends in milliseconds, converted as go-nsq's `identify()` does:
    /// exactly `-1ns` becomes `-1`, anything else whole milliseconds, truncated toward
    /// zero (so `-1ms` is `-1` too).
    pub fn identify_millis(&self) -> Result<i64, ConfigError> {
        let ns = self.go_duration()?;
        Ok(if ns == -1 { -1 } else { ns / 1_000_000 })
    }

    /// `backoff_strategy`: `""` or `exponential`, or `full_jitter`.
    pub fn backoff_strategy(&self) -> Result<BackoffStrategy, ConfigError> {
        match self.text()? {
            "" | "exponential" => Ok(BackoffStrategy::Exponential),
            "full_jitter" => Ok(BackoffStrategy::FullJitter),
            _ => Err(self.coerce_error(CoerceError::InvalidValueType)),
        }
    }
}

/// Go's `strconv.ParseInt(text, 10, 64)` (a sign, then decimal digits only).
fn parse_decimal_int(text: &str) -> Result<i64, NumErrorKind> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = parse_decimal_uint(digits)?;
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    };
    value.ok_or(NumErrorKind::Range)
}

/// Go's `strconv.ParseUint(text, 10, 64)`: decimal digits only, no sign. Like Go it stops
/// at the first bad digit or the first overflow, whichever comes first.
fn parse_decimal_uint(digits: &str) -> Result<u64, NumErrorKind> {
    if digits.is_empty() {
        return Err(NumErrorKind::Syntax);
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        if !b.is_ascii_digit() {
            return Err(NumErrorKind::Syntax);
        }
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(NumErrorKind::Range)
    })
}
