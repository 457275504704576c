//! The value types Go's config files accept (go-options' rules): durations as Go duration
//! strings or integer milliseconds, lists as arrays or comma-separated strings, booleans
//! and integers also as strings; and the errors a config file is refused with.

use std::time::Duration;

use toml::Value;

use super::values::{parse_float_list, parse_go_bool};
use crate::go_fmt::go_quote;
use crate::go_time::parse_go_duration;

/// Why a config file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not TOML.
    #[error("{0}")]
    NotToml(String),
    /// A key no Go nsqd flag has.
    #[error("unknown key \"{0}\"")]
    UnknownKey(String),
    /// A known key with a value of the wrong type or out of range.
    #[error("key \"{key}\": {reason}")]
    BadValue {
        /// The TOML key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
}

fn wrong_type(expected: &str, value: &Value) -> String {
    format!("expected {expected}, found {}", value.type_str())
}

pub fn toml_bool(value: &Value) -> Result<bool, String> {
    match value {
        Value::Boolean(b) => Ok(*b),
        Value::String(s) => parse_go_bool(s).ok_or_else(|| format!("invalid boolean {s:?}")),
        other => Err(wrong_type("a boolean", other)),
    }
}

pub fn toml_int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Integer(i) => Ok(*i),
        Value::String(s) => s.parse().map_err(|_| format!("invalid integer {s:?}")),
        other => Err(wrong_type("an integer", other)),
    }
}

/// A Go duration string, or an integer number of milliseconds (go-options' rule).
pub fn toml_duration(value: &Value) -> Result<Duration, String> {
    match value {
        Value::String(s) => {
            let ns = parse_go_duration(s).map_err(|e| e.to_string())?;
            // Go accepts negative durations; no nsqd option means anything by one.
            let ns = u64::try_from(ns)
                .map_err(|_| format!("negative duration {} is not allowed", go_quote(s)))?;
            Ok(Duration::from_nanos(ns))
        }
        Value::Integer(ms) => {
            let ms = u64::try_from(*ms)
                .map_err(|_| format!("negative duration {ms}ms is not allowed"))?;
            Ok(Duration::from_millis(ms))
        }
        other => Err(wrong_type("a duration string such as \"60s\"", other)),
    }
}

pub fn toml_str(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| wrong_type("a string", value))
}

/// Go formats the value with `%v` before parsing it (`tls_required = true` or `"tcp-https"`).
pub fn toml_scalar_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Boolean(b) => Ok(b.to_string()),
        Value::Integer(i) => Ok(i.to_string()),
        other => Err(wrong_type("a boolean or \"tcp-https\"", other)),
    }
}

/// An array of strings, or one comma-separated string.
pub fn toml_str_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(s.split(',').map(str::to_string).collect()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong_type("strings", item))
            })
            .collect(),
        other => Err(wrong_type("an array of strings", other)),
    }
}

/// An array of numbers, or one comma-separated string.
pub fn toml_float_list(value: &Value) -> Result<Vec<f64>, String> {
    match value {
        Value::String(s) => parse_float_list(s),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Float(f) => Ok(*f),
                Value::Integer(i) => Ok(*i as f64),
                other => Err(wrong_type("numbers", other)),
            })
            .collect(),
        other => Err(wrong_type("an array of numbers", other)),
    }
}
