//! A tool's flags, declared as a table and read the way Go's `flag` package reads them
//! ([`crate::go_cli::syntax`]), with Go's `-h` text: scripts written for Go's tools pass
//! their command lines to ours unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::go_cli::syntax::scan_args;
use crate::go_cli::usage::push_usage_entry;
use crate::go_cli::values::{parse_flag_duration, parse_go_bool, parse_go_float, parse_go_int};
use crate::go_cli::{CliAction, CliError};
use crate::go_fmt::go_quote;

/// How a flag's value is read, and the type word Go's `-h` shows for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Go `bool`: stands alone, `-name=false` to turn off.
    Bool,
    /// A Go `int`/`int64` (base prefixes and `_` allowed).
    Int,
    /// A Go `float64`.
    Float,
    /// A Go `string`.
    Str,
    /// A Go `time.Duration` (`90s`, `1m30s`).
    Duration,
    /// A repeatable flag (`app.StringArray`, `nsq.ConfigFlag`): every occurrence kept.
    List,
    /// A Go `flag.Value` of the tool's own (its check says what it takes); `-h` shows
    /// `value` and no default.
    Value,
}

/// A value check beyond the kind's syntax (e.g. `--consumer-opt` keys); its error is the
/// reason in Go's `invalid value ... for flag -name: <reason>`.
pub type Check = fn(&str) -> Result<(), String>;

/// One flag of a tool.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The name, without dashes.
    pub name: &'static str,
    /// How its value is read.
    pub kind: Kind,
    /// Go's default value text (`""` for none); shown by `-h` unless it is the zero value.
    pub default: &'static str,
    /// The usage text, verbatim from Go. A word in backquotes becomes the type word.
    pub usage: &'static str,
    /// A further check of each value, run as the command line is read.
    pub check: Option<Check>,
}

impl Flag {
    /// A flag with no further check.
    pub const fn new(
        name: &'static str,
        kind: Kind,
        default: &'static str,
        usage: &'static str,
    ) -> Flag {
        Flag {
            name,
            kind,
            default,
            usage,
            check: None,
        }
    }

    /// The same flag with a further check of each value.
    pub const fn checked(self, check: Check) -> Flag {
        Flag {
            check: Some(check),
            ..self
        }
    }

    fn check_value(&self, value: &str) -> Result<(), String> {
        match self.kind {
            Kind::Bool => {
                parse_go_bool(value).ok_or("parse error")?;
            }
            Kind::Int => {
                parse_go_int(value).map_err(|e| e.to_string())?;
            }
            Kind::Float => {
                parse_go_float(value).ok_or("parse error")?;
            }
            Kind::Duration => {
                parse_flag_duration(value)?;
            }
            Kind::Str | Kind::List | Kind::Value => {}
        }
        match self.check {
            Some(check) => check(value),
            None => Ok(()),
        }
    }

    /// Go's `UnquoteUsage`: the type word and the usage with the backquotes removed.
    fn type_word_and_usage(&self) -> (&'static str, String) {
        let mut parts = self.usage.splitn(3, '`');
        if let (Some(before), Some(word), Some(after)) = (parts.next(), parts.next(), parts.next())
        {
            return (word, format!("{before}{word}{after}"));
        }
        let word = match self.kind {
            Kind::Bool => "",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Str => "string",
            Kind::Duration => "duration",
            Kind::List | Kind::Value => "value",
        };
        (word, self.usage.to_string())
    }

    /// ` (default X)` when the default is not the kind's zero value, as Go shows it.
    fn shown_default(&self) -> Option<String> {
        let zero = match self.kind {
            Kind::Bool => self.default.is_empty() || self.default == "false",
            Kind::Int | Kind::Float => self.default.is_empty() || self.default == "0",
            Kind::Duration => self.default.is_empty() || self.default == "0s",
            Kind::Str | Kind::List | Kind::Value => self.default.is_empty(),
        };
        if zero {
            return None;
        }
        Some(match self.kind {
            Kind::Str => format!(" (default {})", go_quote(self.default)),
            _ => format!(" (default {})", self.default),
        })
    }
}

/// A tool's flag table.
#[derive(Debug, Clone, Copy)]
pub struct FlagSet {
    /// Every flag, sorted by name as Go's `-h` lists them.
    pub flags: &'static [Flag],
}

impl FlagSet {
    /// Go's `-h` text: `Usage of <program>:` (Go shows argv[0] for its default flag set)
    /// and every flag.
    pub fn usage(&self, program: &str) -> String {
        let mut out = format!("Usage of {program}:\n");
        for flag in self.flags {
            let (word, usage) = flag.type_word_and_usage();
            let default = flag.shown_default();
            push_usage_entry(&mut out, flag.name, word, &usage, default.as_deref());
        }
        out
    }

    /// Reads `args` (without the program name). A bad command line is Go's one-line
    /// message in [`CliError::Usage`], with the usage text for `program`.
    pub fn parse(&self, program: &str, args: &[String]) -> Result<CliAction<FlagValues>, CliError> {
        let find = |name: &str| self.flags.iter().find(|f| f.name == name);
        let scanned = scan_args(
            args,
            find,
            |flag| flag.kind == Kind::Bool,
            |flag, value| flag.check_value(value),
        );
        let scanned = match scanned {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(CliAction::Help(self.usage(program))),
            Err(message) => {
                return Err(CliError::Usage {
                    message,
                    usage: self.usage(program),
                })
            }
        };
        let mut given: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (flag, value) in scanned.flags {
            given.entry(flag.name).or_default().push(value);
        }
        Ok(CliAction::Run(Box::new(FlagValues {
            flags: self.flags,
            given,
            rest: scanned.rest,
        })))
    }
}

/// The flags a command line set, read back by name with their Go defaults.
#[derive(Debug, Clone)]
pub struct FlagValues {
    flags: &'static [Flag],
    given: BTreeMap<&'static str, Vec<String>>,
    rest: Vec<String>,
}

impl FlagValues {
    /// The last value given, else Go's default. Asking for a name not in the table is a
    /// programming error, answered with the empty string.
    fn last(&self, name: &str) -> &str {
        match self.given.get(name).and_then(|values| values.last()) {
            Some(value) => value,
            None => self
                .flags
                .iter()
                .find(|flag| flag.name == name)
                .map_or("", |flag| flag.default),
        }
    }

    /// The arguments after the flags (Go's `FlagSet.Args()`).
    pub fn args(&self) -> &[String] {
        &self.rest
    }

    /// Whether the flag was on the command line.
    pub fn is_set(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    /// A `bool` flag.
    pub fn bool(&self, name: &str) -> bool {
        parse_go_bool(self.last(name)).unwrap_or(false)
    }

    /// An `int` flag (already checked while parsing).
    pub fn int(&self, name: &str) -> i64 {
        parse_go_int(self.last(name)).unwrap_or(0)
    }

    /// A `float64` flag.
    pub fn float(&self, name: &str) -> f64 {
        parse_go_float(self.last(name)).unwrap_or(0.0)
    }

    /// A `string` flag.
    pub fn string(&self, name: &str) -> String {
        self.last(name).to_string()
    }

    /// A `duration` flag.
    pub fn duration(&self, name: &str) -> Duration {
        parse_flag_duration(self.last(name)).unwrap_or_default()
    }

    /// Every value of a repeatable flag, in command-line order.
    pub fn list(&self, name: &str) -> &[String] {
        self.given.get(name).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FLAGS: &[Flag] = &[
        Flag::new("channel", Kind::Str, "", "NSQ channel"),
        Flag::new(
            "delimiter",
            Kind::Str,
            "\n",
            "character to split input from stdin",
        ),
        Flag::new(
            "interval",
            Kind::Duration,
            "2s",
            "duration of time between polling",
        ),
        Flag::new("max-in-flight", Kind::Int, "200", "max number of messages"),
        Flag::new("n", Kind::Int, "0", "total messages to show"),
        Flag::new("print-topic", Kind::Bool, "false", "print topic name"),
        Flag::new(
            "rotate-size",
            Kind::Int,
            "0",
            "rotate the file when it exceeds `rotate-size` bytes",
        ),
        Flag::new(
            "topic",
            Kind::List,
            "",
            "NSQ topic (may be given multiple times)",
        ),
    ];
    const SET: FlagSet = FlagSet { flags: FLAGS };

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str]) -> FlagValues {
        match SET.parse("tool", &args(list)) {
            Ok(CliAction::Run(values)) => *values,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_reads_like_gos_print_defaults() {
        assert_eq!(
            SET.usage("tool"),
            "Usage of tool:\n  -channel string\n    \tNSQ channel\n  -delimiter string\n    \tcharacter to split input from stdin (default \"\\n\")\n  -interval duration\n    \tduration of time between polling (default 2s)\n  -max-in-flight int\n    \tmax number of messages (default 200)\n  -n int\n    \ttotal messages to show\n  -print-topic\n    \tprint topic name\n  -rotate-size rotate-size\n    \trotate the file when it exceeds rotate-size bytes\n  -topic value\n    \tNSQ topic (may be given multiple times)\n"
        );
    }

    #[test]
    fn values_and_defaults() {
        let values = run(&["--topic=a", "-topic", "b", "-n", "0x10", "--print-topic"]);
        assert_eq!(values.list("topic"), ["a", "b"]);
        assert_eq!(values.int("n"), 16);
        assert_eq!(values.int("max-in-flight"), 200);
        assert!(values.bool("print-topic"));
        assert_eq!(values.string("delimiter"), "\n");
        assert_eq!(values.duration("interval"), Duration::from_secs(2));
        assert!(values.is_set("n") && !values.is_set("channel"));
        assert!(values.list("nope").is_empty());
        assert!(values.args().is_empty());
        assert_eq!(run(&["-n", "1", "a", "-n", "2"]).args(), ["a", "-n", "2"]);
        assert_eq!(run(&["-n", "1", "--", "-x"]).args(), ["-x"]);
    }

    #[test]
    fn bad_command_lines_get_gos_messages() {
        let message = |list: &[&str]| match SET.parse("tool", &args(list)) {
            Err(CliError::Usage { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(message(&["-x"]), "flag provided but not defined: -x");
        assert_eq!(
            message(&["-n", "lots"]),
            "invalid value \"lots\" for flag -n: parse error"
        );
        assert_eq!(
            message(&["-interval=90"]),
            "invalid value \"90\" for flag -interval: time: missing unit in duration \"90\""
        );
        assert!(matches!(
            SET.parse("tool", &args(&["-h"])),
            Ok(CliAction::Help(_))
        ));
    }
}
