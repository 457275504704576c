//! The command-line syntax of Go's `flag` package: `-name`, `--name`, `-name=value`,
//! `-name value` (not for booleans), stopping at the first non-flag argument and after
//! `--`. Each value is checked as it is met, so the first bad flag is the one reported,
//! as in Go.

use super::flags::{self, Flag};
use super::go_values::go_quote;
use crate::nsqd::Options;

/// One flag as given on the command line.
#[derive(Clone)]
pub struct Occurrence {
    /// Which flag.
    pub flag: &'static Flag,
    /// Its value; `"true"` for a boolean given bare.
    pub value: String,
}

/// What the command line asked for.
pub enum Scan {
    /// Flags to apply, in command-line order.
    Flags(Vec<Occurrence>),
    /// `-h`, `-help` or `--help`.
    Help,
}

/// Reads `args` (without the program name) as Go's `FlagSet.Parse` would. The error is
/// the line Go prints before the usage text.
pub fn scan(args: &[String]) -> Result<Scan, String> {
    // Every value is parsed into a scratch copy as it is met, only to check it.
    let mut scratch = Options::default();
    let found = scan_with(
        args,
        flags::find,
        |flag| flag.target.is_bool(),
        |flag, value| flags::set_from_text(flag.target, &mut scratch, value),
    )?;
    Ok(match found {
        Some(pairs) => Scan::Flags(
            pairs
                .into_iter()
                .map(|(flag, value)| Occurrence { flag, value })
                .collect(),
        ),
        None => Scan::Help,
    })
}

/// Go's `FlagSet.Parse` over any flag table, so nsqd and nsqlookupd share one parser:
/// `find` looks a name up, `is_bool` says whether the flag stands alone, `check` parses a
/// value (its error is the reason in Go's message). `None` means help was asked for;
/// otherwise the flags met, in command-line order, with their values (`"true"` for a
/// boolean given bare).
pub fn scan_with<F: Copy>(
    args: &[String],
    find: impl Fn(&str) -> Option<F>,
    is_bool: impl Fn(F) -> bool,
    mut check: impl FnMut(F, &str) -> Result<(), String>,
) -> Result<Option<Vec<(F, String)>>, String> {
    let mut occurrences = Vec::new();
    let mut rest = args;
    while let Some((arg, after)) = rest.split_first() {
        rest = after;
        let name_and_value = match flag_text(arg)? {
            FlagText::Flag(text) => text,
            FlagText::End => break,
        };
        let (name, inline_value) = match name_and_value.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (name_and_value, None),
        };
        let Some(flag) = find(name) else {
            if name == "help" || name == "h" {
                return Ok(None);
            }
            return Err(format!("flag provided but not defined: -{name}"));
        };
        let value = if is_bool(flag) {
            let value = inline_value.unwrap_or("true");
            check(flag, value).map_err(|reason| {
                format!(
                    "invalid boolean value {} for -{name}: {reason}",
                    go_quote(value)
                )
            })?;
            value
        } else {
            let value = match (inline_value, rest.split_first()) {
                (Some(value), _) => value,
                (None, Some((next, after))) => {
                    rest = after;
                    next.as_str()
                }
                (None, None) => return Err(format!("flag needs an argument: -{name}")),
            };
            check(flag, value).map_err(|reason| {
                format!(
                    "invalid value {} for flag -{name}: {reason}",
                    go_quote(value)
                )
            })?;
            value
        };
        occurrences.push((flag, value.to_string()));
    }
    Ok(Some(occurrences))
}

/// An argument read as a flag.
enum FlagText<'a> {
    /// `name` or `name=value`, dashes removed.
    Flag(&'a str),
    /// A non-flag argument or `--`: Go stops parsing here.
    End,
}

/// Strips one or two leading dashes; Go's "bad flag syntax" for `---x`, `-=x`, `--=x`.
fn flag_text(arg: &str) -> Result<FlagText<'_>, String> {
    if arg.len() < 2 || !arg.starts_with('-') {
        return Ok(FlagText::End);
    }
    if arg == "--" {
        return Ok(FlagText::End);
    }
    let text = arg.strip_prefix("--").unwrap_or(&arg[1..]);
    if text.is_empty() || text.starts_with('-') || text.starts_with('=') {
        return Err(format!("bad flag syntax: {arg}"));
    }
    Ok(FlagText::Flag(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn pairs(list: &[&str]) -> Vec<(String, String)> {
        match scan(&args(list)) {
            Ok(Scan::Flags(found)) => found
                .into_iter()
                .map(|o| (o.flag.name.to_string(), o.value))
                .collect(),
            Ok(Scan::Help) => panic!("unexpected help"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    fn error(list: &[&str]) -> String {
        match scan(&args(list)) {
            Err(e) => e,
            Ok(_) => panic!("expected an error for {list:?}"),
        }
    }

    #[test]
    fn every_dash_and_value_form() {
        let want = vec![("mem-queue-size".to_string(), "5".to_string())];
        for form in [
            &["-mem-queue-size=5"][..],
            &["--mem-queue-size=5"],
            &["-mem-queue-size", "5"],
            &["--mem-queue-size", "5"],
        ] {
            assert_eq!(pairs(form), want, "{form:?}");
        }
    }

    #[test]
    fn a_separate_value_may_start_with_a_dash() {
        assert_eq!(
            pairs(&["-log-prefix", "-x-"]),
            vec![("log-prefix".into(), "-x-".into())]
        );
    }

    #[test]
    fn booleans_never_take_the_next_argument() {
        assert_eq!(
            pairs(&["-snappy", "false", "-deflate=false"]),
            vec![("snappy".into(), "true".into())],
            "'false' is a non-flag argument, so parsing stops there"
        );
        assert_eq!(
            pairs(&["-snappy=false"]),
            vec![("snappy".into(), "false".into())]
        );
    }

    #[test]
    fn parsing_stops_at_non_flags_and_double_dash() {
        assert_eq!(pairs(&["-snappy", "x", "-nope"]).len(), 1);
        assert_eq!(pairs(&["-snappy", "--", "-nope"]).len(), 1);
        assert_eq!(pairs(&["-snappy", "-", "-nope"]).len(), 1);
        assert!(pairs(&[]).is_empty());
    }

    #[test]
    fn errors_read_like_go() {
        assert_eq!(
            error(&["-no-such-flag"]),
            "flag provided but not defined: -no-such-flag"
        );
        assert_eq!(
            error(&["--no-such-flag=1"]),
            "flag provided but not defined: -no-such-flag"
        );
        assert_eq!(
            error(&["-mem-queue-size"]),
            "flag needs an argument: -mem-queue-size"
        );
        assert_eq!(error(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(error(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(
            error(&["-snappy=yes"]),
            "invalid boolean value \"yes\" for -snappy: parse error"
        );
        assert_eq!(
            error(&["-mem-queue-size=lots"]),
            "invalid value \"lots\" for flag -mem-queue-size: parse error"
        );
        assert_eq!(
            error(&["-mem-queue-size=99999999999999999999"]),
            "invalid value \"99999999999999999999\" for flag -mem-queue-size: value out of range"
        );
        assert_eq!(
            error(&["-msg-timeout", "60"]),
            "invalid value \"60\" for flag -msg-timeout: parse error"
        );
    }

    #[test]
    fn the_first_bad_flag_wins() {
        assert_eq!(
            error(&["-snappy=x", "-nope"]),
            "invalid boolean value \"x\" for -snappy: parse error"
        );
        assert!(matches!(scan(&args(&["-h", "-nope"])), Ok(Scan::Help)));
        assert!(scan(&args(&["-nope", "-h"])).is_err());
    }

    #[test]
    fn help_in_every_spelling() {
        for form in ["-h", "--h", "-help", "--help", "-help=1"] {
            assert!(matches!(scan(&args(&[form])), Ok(Scan::Help)), "{form}");
        }
    }
}
