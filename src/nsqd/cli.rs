//! nsqd's command line and config file: turns argv and an optional TOML file into
//! [`Options`], the way Go nsqd v1.3.0 does, so scripts written for Go nsqd start ours
//! unchanged.
//!
//! Precedence: a flag on the command line > the config file > the default. (Go's resolver
//! also has a "deprecated flag" tier, but v1.3.0 maps no deprecated flag onto an option:
//! `--worker-id` and `--verbose` are accepted booleans with no effect.)
//!
//! Layout: `flags` is the table of every flag; `go_syntax` reads argv as Go's `flag`
//! package does; `config_file` reads the TOML file; `validate` holds the startup checks
//! ; `go_values` is Go's value syntax (durations are in
//! [`crate::go_time`]).

pub(crate) mod config_file;
pub(crate) mod flags;
pub(crate) mod go_syntax;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

pub use config_file::apply_table;
pub use validate::{startup_checks, StartupError};

use crate::go_cli::values::parse_go_bool;
use crate::go_fmt::go_quote;
use crate::nsqd::options::VERSION;
use crate::nsqd::Options;
use flags::Target;
use go_syntax::{Occurrence, Scan};

/// What nsqd's command line asks the binary to do.
pub type CliAction = crate::go_cli::CliAction<Options>;

/// Why nsqd will not start: a refused command line or config file, or options that fail
/// Go's startup checks (printed as one fatal line, exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or the config file was refused.
    #[error(transparent)]
    Cli(#[from] crate::go_cli::CliError),
    /// The options fail Go's startup checks.
    #[error("failed to instantiate nsqd - {0}")]
    Startup(#[from] StartupError),
}

impl CliError {
    /// Go's exit status: 2 for a bad command line (the `flag` package), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Cli(error) => error.exit_code(),
            CliError::Startup(_) => 1,
        }
    }
}

/// Go nsqd's usage text (`Usage of nsqd:` and every flag), with this host's defaults.
pub fn usage() -> String {
    flags::render_usage(&Options::default())
}

/// The `--version` line. Tools read only the `nsqd v1.3.0` prefix.
pub fn version_line() -> String {
    format!("nsqd v{VERSION} (built w/rustc)")
}

/// Parses `args` (argv without the program name), reading `--config` from disk.
pub fn parse_args<I, S>(args: I) -> Result<CliAction, CliError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    parse_args_with(args, crate::env::read_config_file)
}

/// [`parse_args`] with the config file read by `read_file(path)`, so tests need no disk.
pub fn parse_args_with<I, S>(
    args: I,
    read_file: impl FnOnce(&str) -> std::io::Result<String>,
) -> Result<CliAction, CliError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string()).collect();
    let occurrences = match go_syntax::scan(&args) {
        Ok(Scan::Flags(found)) => found,
        Ok(Scan::Help) => return Ok(CliAction::Help(usage())),
        Err(message) => {
            return Err(crate::go_cli::CliError::Usage {
                message,
                usage: usage(),
            }
            .into())
        }
    };
    if last_value(&occurrences, "version").and_then(parse_go_bool) == Some(true) {
        return Ok(CliAction::Version(version_line()));
    }
    let mut options = Options::default();
    if let Some(path) = last_value(&occurrences, "config").filter(|p| !p.is_empty()) {
        let text = read_file(path).map_err(|source| crate::go_cli::CliError::ConfigRead {
            path: path.to_string(),
            source,
        })?;
        config_file::apply(&text, &mut options).map_err(|source| {
            crate::go_cli::CliError::Config {
                path: path.to_string(),
                source,
            }
        })?;
    }
    apply_command_line(&occurrences, &mut options)?;
    validate::startup_checks(&mut options)?;
    Ok(CliAction::Run(Box::new(options)))
}

/// The value of the last occurrence of flag `name`.
fn last_value<'a>(occurrences: &'a [Occurrence], name: &str) -> Option<&'a str> {
    occurrences
        .iter()
        .rev()
        .find(|o| o.flag.name == name)
        .map(|o| o.value.as_str())
}

/// Applies command-line flags over the config file's values. A repeatable flag given on
/// the command line replaces the config file's list rather than adding to it.
fn apply_command_line(occurrences: &[Occurrence], options: &mut Options) -> Result<(), CliError> {
    let mut replaced = BTreeSet::new();
    for occurrence in occurrences {
        let flag = occurrence.flag;
        if replaced.insert(flag.name) {
            match flag.target {
                Target::StrList(field) => field(options).clear(),
                Target::FloatList(field) => field(options).clear(),
                _ => {}
            }
        }
        flags::set_from_text(flag.target, options, &occurrence.value).map_err(|reason| {
            let value = go_quote(&occurrence.value);
            let message = format!("invalid value {value} for flag -{}: {reason}", flag.name);
            crate::go_cli::CliError::Usage {
                message,
                usage: usage(),
            }
        })?;
    }
    Ok(())
}
