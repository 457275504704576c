//! Go's duration syntax (`time.ParseDuration`, `Duration.String`), as nsqd's flags and
//! config file use it: `90s`, `1m30s`, `1.5h`, `500ms`, `300us`, `10ns`, `0`.

use std::time::Duration;

/// Why a duration string was refused; the text follows Go's `time` package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all (or too large for Go's int64 nanoseconds).
    #[error("time: invalid duration {0}")]
    Invalid(String),
    /// A number with no unit after it, e.g. `10`.
    #[error("time: missing unit in duration {0}")]
    MissingUnit(String),
    /// A unit Go does not know, e.g. `10d`.
    #[error("time: unknown unit {unit} in duration {orig}")]
    UnknownUnit { unit: String, orig: String },
    /// Go accepts negative durations; no nsqd option means anything by one.
    #[error("negative duration {0} is not allowed")]
    Negative(String),
}

/// Go's largest duration: `math.MaxInt64` nanoseconds.
const NANOS_MAX: u64 = i64::MAX as u64;

/// Parses a duration exactly as Go's `time.ParseDuration` does, refusing negative ones.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let quoted = super::go_values::go_quote(text);
    let invalid = || DurationError::Invalid(quoted.clone());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: u64 = 0;
    while !rest.is_empty() {
        let component;
        (component, rest) = split_component(rest).ok_or_else(invalid)?;
        let unit_ns = unit_nanos(component.unit).ok_or_else(|| {
            if component.unit.is_empty() {
                DurationError::MissingUnit(quoted.clone())
            } else {
                DurationError::UnknownUnit {
                    unit: super::go_values::go_quote(component.unit),
                    orig: quoted.clone(),
                }
            }
        })?;
        let ns = component.nanos(unit_ns).ok_or_else(invalid)?;
        total_ns = total_ns
            .checked_add(ns)
            .filter(|t| *t <= NANOS_MAX)
            .ok_or_else(invalid)?;
    }
    if negative && total_ns > 0 {
        return Err(DurationError::Negative(quoted));
    }
    Ok(Duration::from_nanos(total_ns))
}

/// One `<number><unit>` piece of a duration string.
struct Component<'a> {
    whole: u64,
    /// Fraction digits as an integer, and the power of ten that scales them down.
    fraction: u64,
    fraction_scale: f64,
    unit: &'a str,
}

impl Component<'_> {
    /// The component in nanoseconds, `None` on overflow (Go's rounding: the fraction is
    /// converted through a float and truncated).
    fn nanos(&self, unit_ns: u64) -> Option<u64> {
        let mut ns = self
            .whole
            .checked_mul(unit_ns)
            .filter(|v| *v <= NANOS_MAX)?;
        if self.fraction > 0 {
            let extra = (self.fraction as f64 * (unit_ns as f64 / self.fraction_scale)) as u64;
            ns = ns.checked_add(extra).filter(|v| *v <= NANOS_MAX)?;
        }
        Some(ns)
    }
}

/// Splits the leading component off `text`; `None` when the number part is malformed.
fn split_component(text: &str) -> Option<(Component<'_>, &str)> {
    let starts_number = text.starts_with('.') || text.starts_with(|c: char| c.is_ascii_digit());
    if !starts_number {
        return None;
    }
    let int_len = text.bytes().take_while(u8::is_ascii_digit).count();
    let whole = leading_int(&text[..int_len])?;
    let mut rest = &text[int_len..];
    let (mut fraction, mut fraction_scale, mut fraction_len) = (0u64, 1f64, 0usize);
    if let Some(after_dot) = rest.strip_prefix('.') {
        fraction_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        (fraction, fraction_scale) = leading_fraction(&after_dot[..fraction_len]);
        rest = &after_dot[fraction_len..];
    }
    if int_len == 0 && fraction_len == 0 {
        return None; // "." or ".s"
    }
    // The unit runs to the next digit or dot; both are ASCII, so this is a char boundary.
    let unit_len = rest
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (unit, rest) = rest.split_at(unit_len);
    let component = Component {
        whole,
        fraction,
        fraction_scale,
        unit,
    };
    Some((component, rest))
}

/// Go's `leadingInt`: the digits as a number, `None` past int64.
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?
            .checked_add(u64::from(d - b'0'))
            .filter(|v| *v <= NANOS_MAX)
    })
}

/// Go's `leadingFraction`: digits past what fits are ignored, not an error.
fn leading_fraction(digits: &str) -> (u64, f64) {
    let (mut value, mut scale, mut overflowed) = (0u64, 1f64, false);
    for d in digits.bytes() {
        if overflowed {
            continue;
        }
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
        {
            Some(v) if v <= NANOS_MAX => {
                value = v;
                scale *= 10.0;
            }
            _ => overflowed = true,
        }
    }
    (value, scale)
}

/// Nanoseconds per unit, for the units Go knows (both micro signs included).
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return None,
    })
}

/// Formats a duration as Go's `Duration.String` does (`10m0s`, `250ms`, `1h0m0s`).
pub fn format_go_duration(duration: Duration) -> String {
    let ns = u64::try_from(duration.as_nanos())
        .unwrap_or(u64::MAX)
        .min(NANOS_MAX);
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}{}\u{00b5}s", ns / 1_000, fraction_digits(ns % 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}{}ms", ns / 1_000_000, fraction_digits(ns % 1_000_000, 6));
    }
    let secs = ns / 1_000_000_000;
    let seconds_part = format!("{}{}s", secs % 60, fraction_digits(ns % 1_000_000_000, 9));
    match (secs / 3600, secs / 60 % 60) {
        (0, 0) => seconds_part,
        (0, minutes) => format!("{minutes}m{seconds_part}"),
        (hours, minutes) => format!("{hours}h{minutes}m{seconds_part}"),
    }
}

/// `.ddd` with `width` digits and trailing zeros removed; empty for zero.
fn fraction_digits(value: u64, width: usize) -> String {
    if value == 0 {
        return String::new();
    }
    let digits = format!("{value:0width$}");
    format!(".{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn parses_every_go_form() {
        assert_eq!(parse_go_duration("90s"), Ok(ms(90_000)));
        assert_eq!(parse_go_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_go_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1.5h"), Ok(ms(5_400_000)));
        assert_eq!(parse_go_duration("300us"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_go_duration("300µs"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_go_duration("300μs"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_go_duration("10ns"), Ok(Duration::from_nanos(10)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("+5s"), Ok(ms(5_000)));
        assert_eq!(parse_go_duration("-0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-0s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1.s"), Ok(ms(1_000)));
        assert_eq!(
            parse_go_duration("1h2m3s4ms5us6ns"),
            Ok(Duration::new(3723, 4_005_006))
        );
        assert_eq!(
            parse_go_duration("2562047h47m16.854775807s"),
            Ok(Duration::from_nanos(NANOS_MAX))
        );
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in ["", "s", ".", ".s", "1.2.3s", "-", "+", "1e3s", " 1s", "1s "] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            parse_go_duration("10"),
            Err(DurationError::MissingUnit("\"10\"".into()))
        );
        assert_eq!(
            parse_go_duration("10d").unwrap_err().to_string(),
            "time: unknown unit \"d\" in duration \"10d\""
        );
        assert!(
            parse_go_duration("2562047h47m16.854775808s").is_err(),
            "overflow"
        );
        assert!(
            parse_go_duration("9223372036854775808ns").is_err(),
            "overflow"
        );
        assert_eq!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative("\"-1s\"".into()))
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_nanos(10)), "10ns");
        assert_eq!(format_go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(format_go_duration(ms(25)), "25ms");
        assert_eq!(format_go_duration(ms(250)), "250ms");
        assert_eq!(format_go_duration(ms(2_000)), "2s");
        assert_eq!(format_go_duration(ms(2_500)), "2.5s");
        assert_eq!(format_go_duration(ms(60_000)), "1m0s");
        assert_eq!(format_go_duration(ms(600_000)), "10m0s");
        assert_eq!(format_go_duration(ms(900_000)), "15m0s");
        assert_eq!(format_go_duration(ms(3_600_000)), "1h0m0s");
        assert_eq!(format_go_duration(ms(5_400_500)), "1h30m0.5s");
    }
}
