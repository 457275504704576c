//! nsqlookupd's command line and config file, read the way Go nsqlookupd v1.3.0 reads
//! them, with the Go flag syntax, value parsers and usage layout nsqd uses
//! ([`crate::go_cli`]). Precedence: command line > config file > default.

use std::time::Duration;

use crate::go_cli::syntax::scan_with;
use crate::go_cli::toml_values::{toml_bool, toml_duration, toml_str};
use crate::go_cli::usage::push_usage_entry;
use crate::go_cli::values::{
    go_log_level_name, parse_flag_duration, parse_go_bool, parse_log_level,
};
use crate::go_cli::ConfigError;
use crate::go_fmt::go_quote;
use crate::go_time::{format_go_duration, go_nanos};
use crate::lookupd::options::{Options, VERSION};

/// What the command line asks the binary to do.
pub type CliAction = crate::go_cli::CliAction<Options>;

/// Why nsqlookupd will not start: a bad command line (exit 2), or a config file that
/// cannot be read or is refused (exit 1), with the same texts as nsqd's.
pub use crate::go_cli::CliError;

/// What a flag writes into.
#[derive(Clone, Copy)]
enum Target {
    Str(fn(&mut Options) -> &mut String),
    Duration(fn(&mut Options) -> &mut Duration),
    LogLevel,
    /// `--verbose`: deprecated, accepted, ignored.
    NoEffect,
    Version,
    Config,
}

impl Target {
    fn is_bool(self) -> bool {
        matches!(self, Target::NoEffect | Target::Version)
    }

    fn type_name(self) -> &'static str {
        match self {
            Target::Str(_) | Target::Config => "string",
            Target::Duration(_) => "duration",
            Target::LogLevel => "value",
            Target::NoEffect | Target::Version => "",
        }
    }
}

/// One Go nsqlookupd flag.
struct Flag {
    name: &'static str,
    /// The TOML key; `None` for flags the config file cannot set.
    cfg_key: Option<&'static str>,
    target: Target,
    usage: &'static str,
}

/// Every flag of Go nsqlookupd v1.3.0, sorted by name as `flag.PrintDefaults` prints them.
static FLAGS: &[Flag] = &[
    Flag {
        name: "broadcast-address",
        cfg_key: Some("broadcast_address"),
        target: Target::Str(|o| &mut o.broadcast_address),
        usage: "address of this lookupd node, (default to the OS hostname)",
    },
    Flag {
        name: "config",
        cfg_key: None,
        target: Target::Config,
        usage: "path to config file",
    },
    Flag {
        name: "http-address",
        cfg_key: Some("http_address"),
        target: Target::Str(|o| &mut o.http_address),
        usage: "<addr>:<port> to listen on for HTTP clients",
    },
    Flag {
        name: "inactive-producer-timeout",
        cfg_key: Some("inactive_producer_timeout"),
        target: Target::Duration(|o| &mut o.inactive_producer_timeout),
        usage: "duration of time a producer will remain in the active list since its last ping",
    },
    Flag {
        name: "log-level",
        cfg_key: Some("log_level"),
        target: Target::LogLevel,
        usage: "set log verbosity: debug, info, warn, error, or fatal",
    },
    Flag {
        name: "log-prefix",
        cfg_key: Some("log_prefix"),
        target: Target::Str(|o| &mut o.log_prefix),
        usage: "log message prefix",
    },
    Flag {
        name: "tcp-address",
        cfg_key: Some("tcp_address"),
        target: Target::Str(|o| &mut o.tcp_address),
        usage: "<addr>:<port> to listen on for TCP clients",
    },
    Flag {
        name: "tombstone-lifetime",
        cfg_key: Some("tombstone_lifetime"),
        target: Target::Duration(|o| &mut o.tombstone_lifetime),
        usage: "duration of time a producer will remain tombstoned if registration remains",
    },
    Flag {
        name: "verbose",
        cfg_key: Some("verbose"),
        target: Target::NoEffect,
        usage: "[deprecated] has no effect, use --log-level",
    },
    Flag {
        name: "version",
        cfg_key: None,
        target: Target::Version,
        usage: "print version string",
    },
];

fn find(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
}

/// Parses one command-line value as Go's flag `Set` would and stores it.
fn set_from_text(target: Target, options: &mut Options, text: &str) -> Result<(), String> {
    match target {
        Target::Str(field) => *field(options) = text.to_string(),
        Target::Duration(field) => *field(options) = parse_flag_duration(text)?,
        Target::LogLevel => options.log_level = parse_log_level(text)?.to_string(),
        Target::NoEffect | Target::Version => {
            parse_go_bool(text).ok_or("parse error")?;
        }
        Target::Config => {}
    }
    Ok(())
}

/// Stores one config-file value.
fn set_from_toml(target: Target, options: &mut Options, value: &toml::Value) -> Result<(), String> {
    match target {
        Target::Str(field) => *field(options) = toml_str(value)?.to_string(),
        Target::Duration(field) => *field(options) = toml_duration(value)?,
        Target::LogLevel => options.log_level = parse_log_level(toml_str(value)?)?.to_string(),
        Target::NoEffect => {
            toml_bool(value)?;
        }
        Target::Version | Target::Config => return Err("not a config file key".to_string()),
    }
    Ok(())
}

/// What `flag.PrintDefaults` shows as a flag's default (`None` for a zero value).
fn shown_default(target: Target, options: &mut Options) -> Option<String> {
    let shown = match target {
        Target::Str(field) => Some(field(options).clone())
            .filter(|s| !s.is_empty())
            .map(|s| go_quote(&s)),
        Target::Duration(field) => Some(*field(options))
            .filter(|d| !d.is_zero())
            .map(|d| format_go_duration(go_nanos(d))),
        Target::LogLevel => Some(go_log_level_name(&options.log_level).to_string()),
        Target::NoEffect | Target::Version | Target::Config => None,
    };
    shown.map(|s| format!(" (default {s})"))
}

/// Go nsqlookupd's usage text, with this host's defaults.
pub fn usage() -> String {
    let mut options = Options::default();
    let mut out = String::from("Usage of nsqlookupd:\n");
    for flag in FLAGS {
        let default = shown_default(flag.target, &mut options);
        push_usage_entry(
            &mut out,
            flag.name,
            flag.target.type_name(),
            flag.usage,
            default.as_deref(),
        );
    }
    out
}

/// The `--version` line.
pub fn version_line() -> String {
    format!("nsqlookupd v{VERSION} (built w/rustc)")
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
    let mut scratch = Options::default();
    let scanned = scan_with(
        &args,
        find,
        |flag| flag.target.is_bool(),
        |flag, value| set_from_text(flag.target, &mut scratch, value),
    );
    let occurrences = match scanned {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(CliAction::Help(usage())),
        Err(message) => {
            return Err(CliError::Usage {
                message,
                usage: usage(),
            })
        }
    };
    let last = |name: &str| {
        occurrences
            .iter()
            .rev()
            .find(|(f, _)| f.name == name)
            .map(|(_, v)| v.as_str())
    };
    if last("version").and_then(parse_go_bool) == Some(true) {
        return Ok(CliAction::Version(version_line()));
    }
    let mut options = Options::default();
    if let Some(path) = last("config").filter(|p| !p.is_empty()) {
        let text = read_file(path).map_err(|source| CliError::ConfigRead {
            path: path.to_string(),
            source,
        })?;
        apply_config(&text, &mut options).map_err(|source| CliError::Config {
            path: path.to_string(),
            source,
        })?;
    }
    for (flag, value) in &occurrences {
        // Already checked by the scan; a failure here cannot happen.
        set_from_text(flag.target, &mut options, value).map_err(|reason| CliError::Usage {
            message: format!(
                "invalid value {} for flag -{}: {reason}",
                go_quote(value),
                flag.name
            ),
            usage: usage(),
        })?;
    }
    Ok(CliAction::Run(Box::new(options)))
}

/// Applies every key of the TOML document `text`. Unknown keys are refused (Go ignores
/// them), as nsqd's config file does.
fn apply_config(text: &str, options: &mut Options) -> Result<(), ConfigError> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError::NotToml(e.to_string().trim_end().to_string()))?;
    apply_table(&table, options)
}

/// Applies config-file keys already parsed into a table (the simulator's scenario
/// `opts`), with the same checks as a config file.
pub fn apply_table(table: &toml::Table, options: &mut Options) -> Result<(), ConfigError> {
    for (key, value) in table {
        let flag = FLAGS
            .iter()
            .find(|f| f.cfg_key == Some(key.as_str()))
            .ok_or_else(|| ConfigError::UnknownKey(key.clone()))?;
        set_from_toml(flag.target, options, value).map_err(|reason| ConfigError::BadValue {
            key: key.clone(),
            reason,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse_args_with(args, |_| Ok(String::new())) {
            Ok(CliAction::Run(o)) => *o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_gos() {
        let o = run(&[]);
        assert_eq!(o.tcp_address, "0.0.0.0:4160");
        assert_eq!(o.http_address, "0.0.0.0:4161");
        assert_eq!(o.inactive_producer_timeout, Duration::from_secs(300));
        assert_eq!(o.tombstone_lifetime, Duration::from_secs(45));
        assert_eq!(o.log_prefix, "[nsqlookupd] ");
    }

    #[test]
    fn flags_override_the_config_file() {
        let file =
            "tcp_address = \"127.0.0.1:1\"\ntombstone_lifetime = \"10s\"\nlog_level = \"WARN\"\n";
        let action = parse_args_with(
            [
                "--config=x.toml",
                "--tcp-address",
                "127.0.0.1:2",
                "-verbose",
            ],
            |_| Ok(file.to_string()),
        );
        let Ok(CliAction::Run(o)) = action else {
            panic!("{action:?}")
        };
        assert_eq!(o.tcp_address, "127.0.0.1:2");
        assert_eq!(o.tombstone_lifetime, Duration::from_secs(10));
        assert_eq!(o.log_level, "warn");
    }

    #[test]
    fn bad_input_reads_like_go() {
        let err = parse_args_with(["--no-such-flag"], |_| Ok(String::new())).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err
            .to_string()
            .starts_with("flag provided but not defined: -no-such-flag\nUsage of nsqlookupd:\n"));
        let err = parse_args_with(["--tombstone-lifetime=5"], |_| Ok(String::new())).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("invalid value \"5\" for flag -tombstone-lifetime: time: missing unit in duration \"5\""));
        let err = parse_args_with(["--config=c"], |_| Ok("nope = 1".into())).unwrap_err();
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(
            parse_args_with(["-h"], |_| Ok(String::new())),
            Ok(CliAction::Help(_))
        ));
        assert!(matches!(
            parse_args_with(["--version"], |_| Ok(String::new())),
            Ok(CliAction::Version(v)) if v.starts_with("nsqlookupd v1.3.0")
        ));
    }

    #[test]
    fn usage_matches_the_golden_text_but_the_hostname() {
        let golden = include_str!("../../tests/data/nsqlookupd-help.txt");
        let host = crate::env::os_hostname();
        assert_eq!(usage(), golden.replace("<HOST>", &host));
    }
}
