//! The command-line syntax of Go's `flag` package: `-name`, `--name`, `-name=value`,
//! `-name value` (not for booleans), stopping at the first non-flag argument and after
//! `--`. Each value is checked as it is met, so the first bad flag is the one reported,
//! as in Go.

use crate::go_fmt::go_quote;

/// Go's `FlagSet.Parse` over any flag table, so nsqd and nsqlookupd share one parser:
/// `find` looks a name up, `is_bool` says whether the flag stands alone, `check` parses a
/// value (its error is the reason in Go's message). `None` means help was asked for;
/// otherwise the flags met, in command-line order, with their values (`"true"` for a
/// boolean given bare).
pub fn scan_with<F: Copy>(
    args: &[String],
    find: impl Fn(&str) -> Option<F>,
    is_bool: impl Fn(F) -> bool,
    check: impl FnMut(F, &str) -> Result<(), String>,
) -> Result<Option<Vec<(F, String)>>, String> {
    Ok(scan_args(args, find, is_bool, check)?.map(|scanned| scanned.flags))
}

/// What [`scan_args`] read: the flags, and the arguments after them (Go's
/// `FlagSet.Args()`: from the first non-flag argument on; a `--` is dropped).
pub struct Scanned<F> {
    /// The flags met, in command-line order, with their values.
    pub flags: Vec<(F, String)>,
    /// The arguments left.
    pub rest: Vec<String>,
}

/// [`scan_with`], keeping the arguments left after the flags.
pub fn scan_args<F: Copy>(
    args: &[String],
    find: impl Fn(&str) -> Option<F>,
    is_bool: impl Fn(F) -> bool,
    mut check: impl FnMut(F, &str) -> Result<(), String>,
) -> Result<Option<Scanned<F>>, String> {
    let mut occurrences = Vec::new();
    let mut rest = args;
    let mut left: &[String] = &[];
    while let Some((arg, after)) = rest.split_first() {
        let name_and_value = match flag_text(arg)? {
            FlagText::Flag(text) => text,
            FlagText::End => {
                left = if arg == "--" { after } else { rest };
                break;
            }
        };
        rest = after;
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
    Ok(Some(Scanned {
        flags: occurrences,
        rest: left.to_vec(),
    }))
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
