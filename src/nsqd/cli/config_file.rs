//! nsqd's TOML config file (`--config`): Go's keys, read with go-options' value rules
//! ([`crate::go_cli::toml_values`]).
//!
//! Go ignores keys it does not know; we refuse them, so a typo never goes unnoticed.

use toml::Value;

use super::flags::{self, Target};
use crate::go_cli::toml_values::{
    toml_bool, toml_duration, toml_float_list, toml_int, toml_scalar_text, toml_str, toml_str_list,
};
use crate::go_cli::values::parse_log_level;
use crate::go_cli::ConfigError;
use crate::nsqd::Options;

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
        Target::LogLevel => options.log_level = parse_log_level(toml_str(value)?)?.to_string(),
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
