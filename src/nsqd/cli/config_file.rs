//! nsqd's TOML config file (`--config`): Go's keys, and the value types Go accepts for
//! them (durations as Go duration strings or integer milliseconds, lists as arrays or
//! comma-separated strings, booleans and integers also as strings).
//!
//! Go ignores keys it does not know; we refuse them, so a typo never goes unnoticed.

use std::time::Duration;

use toml::Value;

use super::flags::{self, Target};
use super::go_values::{go_quote, parse_go_bool};
use crate::go_time::parse_go_duration;
use crate::nsqd::Options;

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

/// Applies every key of the TOML document `text` onto `options`.
pub fn apply(text: &str, options: &mut Options) -> Result<(), ConfigError> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError::NotToml(e.to_string().trim_end().to_string()))?;
    apply_table(&table, options)
}

/// Applies config-file keys already parsed into a table (the simulator's scenario
/// `opts`), with the same checks as a config file.
pub fn apply_table(table: &toml::Table, options: &mut Options) -> Result<(), ConfigError> {
    for (key, value) in table {
        let flag =
            flags::find_by_cfg_key(key).ok_or_else(|| ConfigError::UnknownKey(key.clone()))?;
        set_from_toml(flag.target, options, value).map_err(|reason| ConfigError::BadValue {
            key: key.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// Stores one config value, converting it as Go's option resolver does.
fn set_from_toml(target: Target, options: &mut Options, value: &Value) -> Result<(), String> {
    match target {
        Target::Bool(field) => *field(options) = toml_bool(value)?,
        Target::Int(field) => *field(options) = toml_int(value)?,
        Target::Port(field) => {
            *field(options) =
                u16::try_from(toml_int(value)?).map_err(|_| "not a port number (0-65535)")?
        }
        Target::Duration(field) => *field(options) = toml_duration(value)?,
        Target::Str(field) => *field(options) = toml_str(value)?.to_string(),
        Target::StrList(field) => *field(options) = toml_str_list(value)?,
        Target::FloatList(field) => *field(options) = toml_float_list(value)?,
        Target::LogLevel => {
            options.log_level = flags::parse_log_level(toml_str(value)?)?.to_string()
        }
        Target::TlsRequired => {
            options.tls_required = flags::parse_tls_required(&toml_scalar_text(value)?)?
        }
        Target::TlsMinVersion => {
            if let Some(version) = flags::parse_tls_min_version(toml_str(value)?)? {
                options.tls_min_version = version.to_string();
            }
        }
        Target::NoEffect => {
            toml_bool(value)?;
        }
        Target::Version | Target::Config => return Err("not a config file key".to_string()),
    }
    Ok(())
}

fn wrong_type(expected: &str, value: &Value) -> String {
    format!("expected {expected}, found {}", value.type_str())
}

pub(crate) fn toml_bool(value: &Value) -> Result<bool, String> {
    match value {
        Value::Boolean(b) => Ok(*b),
        Value::String(s) => parse_go_bool(s).ok_or_else(|| format!("invalid boolean {s:?}")),
        other => Err(wrong_type("a boolean", other)),
    }
}

fn toml_int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Integer(i) => Ok(*i),
        Value::String(s) => s.parse().map_err(|_| format!("invalid integer {s:?}")),
        other => Err(wrong_type("an integer", other)),
    }
}

/// A Go duration string, or an integer number of milliseconds (go-options' rule).
pub(crate) fn toml_duration(value: &Value) -> Result<Duration, String> {
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

pub(crate) fn toml_str(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| wrong_type("a string", value))
}

/// Go formats the value with `%v` before parsing it (`tls_required = true` or `"tcp-https"`).
fn toml_scalar_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Boolean(b) => Ok(b.to_string()),
        Value::Integer(i) => Ok(i.to_string()),
        other => Err(wrong_type("a boolean or \"tcp-https\"", other)),
    }
}

/// An array of strings, or one comma-separated string.
fn toml_str_list(value: &Value) -> Result<Vec<String>, String> {
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
fn toml_float_list(value: &Value) -> Result<Vec<f64>, String> {
    match value {
        Value::String(s) => flags::parse_float_list(s),
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
