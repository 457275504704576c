//! Go's rules for the values flags and config files take: `strconv`'s booleans, integers
//! (`ParseInt(s, 0, 64)`: `0x1F`, `0o17`, `017`, `0b101`, `1_000`) and floats, `flag`'s
//! durations, float lists, and the log levels of NSQ's `lg` package.

use std::time::Duration;

use crate::go_fmt::go_quote;
use crate::go_time::parse_go_duration;

/// Why an integer was refused; the text is the Go flag package's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntError {
    /// Not an integer literal.
    #[error("parse error")]
    Syntax,
    /// An integer literal outside the target range.
    #[error("value out of range")]
    Range,
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(text, 0, 64)`: a sign, then a base prefix picks the radix.
pub fn parse_go_int(text: &str) -> Result<i64, IntError> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = parse_go_uint(unsigned)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude).ok_or(IntError::Range)
    } else {
        i64::try_from(magnitude).map_err(|_| IntError::Range)
    }
}

/// Go's `ParseUint(text, 0, 64)`, underscores included.
fn parse_go_uint(text: &str) -> Result<u64, IntError> {
    if text.is_empty() {
        return Err(IntError::Syntax);
    }
    let bytes = text.as_bytes();
    let prefixed =
        |c: u8| bytes.len() >= 3 && bytes[0] == b'0' && bytes[1].eq_ignore_ascii_case(&c);
    let (radix, digits) = if prefixed(b'b') {
        (2, &bytes[2..])
    } else if prefixed(b'o') {
        (8, &bytes[2..])
    } else if prefixed(b'x') {
        (16, &bytes[2..])
    } else if bytes[0] == b'0' {
        (8, &bytes[1..])
    } else {
        (10, bytes)
    };
    let mut value: u64 = 0;
    let mut saw_underscore = false;
    for &c in digits {
        if c == b'_' {
            saw_underscore = true;
            continue;
        }
        let digit = char::from(c)
            .to_digit(36)
            .filter(|d| *d < radix)
            .ok_or(IntError::Syntax)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(IntError::Range)?;
    }
    if saw_underscore && !underscores_ok(text) {
        return Err(IntError::Syntax);
    }
    Ok(value)
}

/// Go's `underscoreOK`: each underscore sits between digits (a base prefix counts as one).
fn underscores_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    let base_prefix = bytes.len() >= 2
        && bytes[0] == b'0'
        && matches!(bytes[1].to_ascii_lowercase(), b'b' | b'o' | b'x');
    let hex = base_prefix && bytes[1].eq_ignore_ascii_case(&b'x');
    // The class of the previous character: '^' start, '0' digit or prefix, '_', '!' other.
    let (mut saw, start) = if base_prefix { (b'0', 2) } else { (b'^', 0) };
    for &c in &bytes[start..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else if saw == b'_' {
            return false;
        } else {
            saw = b'!';
        }
    }
    saw != b'_'
}

/// Go's `strconv.ParseFloat(s, 64)` for the plain decimal forms nsqd's percentiles use.
pub fn parse_go_float(text: &str) -> Option<f64> {
    if text.is_empty() || text.contains('_') {
        return None;
    }
    text.parse::<f64>().ok()
}

/// Go's `flag.Duration` says only "parse error"; a negative one gets its own reason.
pub fn parse_flag_duration(text: &str) -> Result<Duration, String> {
    // Go's flag package says only "parse error"; the duration parser's reason
    // (`time: missing unit in duration "90"`) tells a newcomer what to fix.
    let ns = parse_go_duration(text).map_err(|error| error.to_string())?;
    // Go accepts negative durations; no nsqd option means anything by one.
    let ns = u64::try_from(ns).map_err(|_| "negative duration".to_string())?;
    Ok(Duration::from_nanos(ns))
}

/// `1.0,0.99,0.95` (spaces around items are allowed).
pub fn parse_float_list(text: &str) -> Result<Vec<f64>, String> {
    text.split(',')
        .map(|item| {
            parse_go_float(item.trim()).ok_or_else(|| format!("could not parse {}", go_quote(item)))
        })
        .collect()
}

/// The canonical (lower-case) log level, case-insensitively, with Go's message.
pub fn parse_log_level(text: &str) -> Result<&'static str, String> {
    match text.to_ascii_lowercase().as_str() {
        "debug" => Ok("debug"),
        "info" => Ok("info"),
        "warn" => Ok("warn"),
        "error" => Ok("error"),
        "fatal" => Ok("fatal"),
        _ => Err(format!(
            "invalid log level '{text}' (debug, info, warn, error, fatal)"
        )),
    }
}

/// Go's `lg.LogLevel.String()`.
pub fn go_log_level_name(level: &str) -> &'static str {
    match level {
        "debug" => "DEBUG",
        "warn" => "WARNING",
        "error" => "ERROR",
        "fatal" => "FATAL",
        _ => "INFO",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_are_go_bools() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "tRUE", "2", " true"] {
            assert_eq!(parse_go_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn ints_take_go_base_prefixes() {
        assert_eq!(parse_go_int("42"), Ok(42));
        assert_eq!(parse_go_int("-42"), Ok(-42));
        assert_eq!(parse_go_int("+42"), Ok(42));
        assert_eq!(parse_go_int("0"), Ok(0));
        assert_eq!(parse_go_int("0x1F"), Ok(31));
        assert_eq!(parse_go_int("0X1f"), Ok(31));
        assert_eq!(parse_go_int("017"), Ok(15));
        assert_eq!(parse_go_int("0o17"), Ok(15));
        assert_eq!(parse_go_int("0b101"), Ok(5));
        assert_eq!(parse_go_int("0x_1F"), Ok(31));
        assert_eq!(parse_go_int("0_17"), Ok(15));
        assert_eq!(parse_go_int("1_000"), Ok(1000));
        assert_eq!(parse_go_int("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
    }

    #[test]
    fn ints_refuse_like_go() {
        for bad in [
            "", "-", "x", "1.5", "08", "0x", "_1", "1__0", "0x__1", "0x1_", " 1", "1e3",
        ] {
            assert_eq!(parse_go_int(bad), Err(IntError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_go_int("9223372036854775808"), Err(IntError::Range));
        assert_eq!(
            parse_go_int("99999999999999999999999"),
            Err(IntError::Range)
        );
    }

    #[test]
    fn log_levels_are_case_insensitive() {
        assert_eq!(parse_log_level("DEBUG"), Ok("debug"));
        assert_eq!(parse_log_level("Warn"), Ok("warn"));
        assert_eq!(parse_log_level("fatal"), Ok("fatal"));
        assert_eq!(
            parse_log_level("loud"),
            Err("invalid log level 'loud' (debug, info, warn, error, fatal)".into())
        );
    }
}
