//! Go's time syntax, in one place for nsqd's flags and config file, its `/stats` text and
//! the bench tools: `time.ParseDuration` (`90s`, `1m30s`, `1.5h`, `500ms`, `-2s`, `0`),
//! `time.Duration.String` (`10m0s`, `1.5µs`) and the bench's `--deadline` layout
//! `2006-01-02 15:04:05` (UTC).
//!
//! Durations are Go's: signed 64-bit nanoseconds. Callers that refuse negative ones (nsqd's
//! options) check that themselves.

use std::time::Duration;

use crate::go_fmt::go_quote;

/// Why a duration or deadline string was refused; the duration texts are Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoTimeError {
    /// Not `[-+]?([0-9]*(\.[0-9]*)?unit)+`, or beyond Go's int64 nanoseconds.
    #[error("time: invalid duration {}", go_quote(.0))]
    InvalidDuration(String),
    /// A number with no unit after it, e.g. `10`.
    #[error("time: missing unit in duration {}", go_quote(.0))]
    MissingUnit(String),
    /// A unit other than ns, us, µs, μs, ms, s, m, h, e.g. `10d`.
    #[error("time: unknown unit {} in duration {}", go_quote(unit), go_quote(text))]
    UnknownUnit { unit: String, text: String },
    /// Not `YYYY-MM-DD HH:MM:SS`.
    #[error("deadline {0:?} does not match 2006-01-02 15:04:05")]
    InvalidDeadline(String),
}

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;

/// Go's bound while it sums a duration: `1 << 63`, one past `i64::MAX`, so that Go's
/// smallest duration `-9223372036854775808ns` parses.
const NS_BOUND: u64 = 1 << 63;

/// Parses a duration into nanoseconds, accepting and refusing exactly what Go's
/// `time.ParseDuration` does (negative durations included).
pub fn parse_go_duration(text: &str) -> Result<i64, GoTimeError> {
    let invalid = || GoTimeError::InvalidDuration(text.to_owned());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: u64 = 0;
    while !rest.is_empty() {
        let component;
        (component, rest) = split_component(rest).ok_or_else(invalid)?;
        let per_unit_ns = unit_ns(component.unit).ok_or_else(|| {
            if component.unit.is_empty() {
                GoTimeError::MissingUnit(text.to_owned())
            } else {
                GoTimeError::UnknownUnit {
                    unit: component.unit.to_owned(),
                    text: text.to_owned(),
                }
            }
        })?;
        let ns = component.nanos(per_unit_ns).ok_or_else(invalid)?;
        total_ns = total_ns
            .checked_add(ns)
            .filter(|t| *t <= NS_BOUND)
            .ok_or_else(invalid)?;
    }
    if negative {
        // total_ns <= 1 << 63, so this is exact (1 << 63 becomes i64::MIN).
        return Ok((total_ns as i64).wrapping_neg());
    }
    i64::try_from(total_ns).map_err(|_| invalid())
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
    /// The component in nanoseconds, `None` past Go's bound. Like Go, the fraction goes
    /// through a float and is truncated, so `1.0000000001s` is `1s`.
    fn nanos(&self, per_unit_ns: u64) -> Option<u64> {
        let mut ns = self
            .whole
            .checked_mul(per_unit_ns)
            .filter(|v| *v <= NS_BOUND)?;
        if self.fraction > 0 {
            let extra = (self.fraction as f64 * (per_unit_ns as f64 / self.fraction_scale)) as u64;
            ns = ns.checked_add(extra).filter(|v| *v <= NS_BOUND)?;
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

/// Go's `leadingInt`: the digits as a number, `None` past `1 << 63`.
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?
            .checked_add(u64::from(d - b'0'))
            .filter(|v| *v <= NS_BOUND)
    })
}

/// Go's `leadingFraction`: digits past what fits are consumed and ignored, not an error.
fn leading_fraction(digits: &str) -> (u64, f64) {
    let (mut value, mut scale) = (0u64, 1f64);
    for d in digits.bytes() {
        if value > (NS_BOUND - 1) / 10 {
            break;
        }
        let next = value * 10 + u64::from(d - b'0');
        if next > NS_BOUND {
            break;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale)
}

/// Nanoseconds per unit, for the units Go knows (both micro signs included).
fn unit_ns(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{00b5}s" | "\u{03bc}s" => NS_PER_US,
        "ms" => NS_PER_MS,
        "s" => NS_PER_S,
        "m" => 60 * NS_PER_S,
        "h" => 3600 * NS_PER_S,
        _ => return None,
    })
}

/// A std duration as Go's int64 nanoseconds, held at Go's largest (about 292 years).
pub fn go_nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// Go's `time.Duration.String()`: `0s`, `750ns`, `1.5µs`, `12.5ms`, `10.000213s`, `1m30s`,
/// `2h0m0s`, `-1.5s`.
pub fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_owned();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    if abs < NS_PER_US {
        return format!("{sign}{abs}ns");
    }
    if abs < NS_PER_MS {
        return format!("{sign}{}µs", decimal(abs, NS_PER_US, 3));
    }
    if abs < NS_PER_S {
        return format!("{sign}{}ms", decimal(abs, NS_PER_MS, 6));
    }
    let total_s = abs / NS_PER_S;
    let seconds = decimal(abs % (60 * NS_PER_S), NS_PER_S, 9);
    match (total_s / 3600, (total_s / 60) % 60) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, minutes) => format!("{sign}{minutes}m{seconds}s"),
        (hours, minutes) => format!("{sign}{hours}h{minutes}m{seconds}s"),
    }
}

/// `value / unit` with up to `digits` decimals, trailing zeros (and a bare dot) dropped.
fn decimal(value: u64, unit: u64, digits: usize) -> String {
    let (whole, rest) = (value / unit, value % unit);
    if rest == 0 {
        return whole.to_string();
    }
    let fraction = format!("{rest:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// Parses a `--deadline` in Go's layout `2006-01-02 15:04:05`. Go's `time.Parse` reads a
/// time without a zone as UTC, so this returns seconds since the Unix epoch (UTC).
pub fn parse_deadline(text: &str) -> Result<i64, GoTimeError> {
    let invalid = || GoTimeError::InvalidDeadline(text.to_owned());
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 19
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b' ',
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(invalid());
    }
    let field = |range: std::ops::Range<usize>| -> i64 {
        text[range]
            .bytes()
            .fold(0, |acc, d| acc * 10 + i64::from(d - b'0'))
    };
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    let (hour, minute, second) = (field(11..13), field(14..16), field(17..19));
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return Err(invalid());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;

    #[test]
    fn durations_parse_like_go() {
        let cases: [(&str, i64); 29] = [
            ("90s", 90 * S),
            ("10s", 10 * S),
            ("1m30s", 90 * S),
            ("500ms", 500 * MS),
            ("250ms", 250 * MS),
            ("1.5h", 5_400 * S),
            ("300us", 300_000),
            ("300µs", 300_000),
            ("300μs", 300_000),
            ("1us", 1_000),
            ("1µs", 1_000),
            ("10ns", 10),
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("-0s", 0),
            ("+5s", 5 * S),
            ("-2s", -2 * S),
            (".5s", 500 * MS),
            ("1.s", S),
            ("3.s", 3 * S),
            ("1.0000000001s", S),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("1h2m3.004005006s", 3_723_004_005_006),
            ("2562047h47m16.854775807s", i64::MAX),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("1.5m", 90 * S),
        ];
        for (text, ns) in cases {
            assert_eq!(parse_go_duration(text), Ok(ns), "{text}");
        }
    }

    #[test]
    fn bad_durations_are_refused_like_go() {
        let bad = [
            "", "s", ".", ".s", "-.s", "1.2.3s", "-", "+", "10", "1e3s", " 1s", "1s ", "5 s",
        ];
        for text in bad {
            assert!(
                matches!(
                    parse_go_duration(text),
                    Err(GoTimeError::InvalidDuration(_)
                        | GoTimeError::MissingUnit(_)
                        | GoTimeError::UnknownUnit { .. })
                ),
                "{text:?} should fail"
            );
        }
        assert_eq!(
            parse_go_duration("10"),
            Err(GoTimeError::MissingUnit("10".into()))
        );
        assert_eq!(
            parse_go_duration("10").unwrap_err().to_string(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_go_duration("10d").unwrap_err().to_string(),
            "time: unknown unit \"d\" in duration \"10d\""
        );
        assert!(matches!(
            parse_go_duration("3d"),
            Err(GoTimeError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn durations_past_int64_are_refused_like_go() {
        for text in [
            "2562047h47m16.854775808s",
            "9223372036854775808ns",
            "9999999999h",
            "-9223372036854775809ns",
            "99999999999999999999d",
        ] {
            assert_eq!(
                parse_go_duration(text),
                Err(GoTimeError::InvalidDuration(text.into())),
                "{text}"
            );
        }
        assert_eq!(
            parse_go_duration("9999999999h").unwrap_err().to_string(),
            "time: invalid duration \"9999999999h\""
        );
    }

    #[test]
    fn durations_print_like_go() {
        let cases: [(i64, &str); 25] = [
            (0, "0s"),
            (10, "10ns"),
            (750, "750ns"),
            (1_500, "1.5µs"),
            (12_500_000, "12.5ms"),
            (25 * MS, "25ms"),
            (250 * MS, "250ms"),
            (752_445_005, "752.445005ms"),
            (2 * S, "2s"),
            (2_500 * MS, "2.5s"),
            (5 * S, "5s"),
            (10_000_213_000, "10.000213s"),
            (60 * S, "1m0s"),
            (62_500 * MS, "1m2.5s"),
            (90 * S, "1m30s"),
            (600 * S, "10m0s"),
            (900 * S, "15m0s"),
            (3_600 * S, "1h0m0s"),
            (5_400_500 * MS, "1h30m0.5s"),
            (7_200 * S, "2h0m0s"),
            (-1_500 * MS, "-1.5s"),
            (-750, "-750ns"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (go_nanos(Duration::MAX), "2562047h47m16.854775807s"),
        ];
        for (ns, text) in cases {
            assert_eq!(format_go_duration(ns), text, "{ns}");
        }
    }

    #[test]
    fn std_durations_become_go_nanos() {
        assert_eq!(go_nanos(Duration::ZERO), 0);
        assert_eq!(go_nanos(Duration::from_millis(1_500)), 1_500 * MS);
        assert_eq!(go_nanos(Duration::from_nanos(u64::MAX)), i64::MAX);
    }

    #[test]
    fn deadlines_are_utc_seconds() {
        assert_eq!(parse_deadline("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_deadline("2000-03-01 00:00:01"), Ok(951_868_801));
        assert_eq!(parse_deadline("2024-02-29 23:59:59"), Ok(1_709_251_199));
        for bad in [
            "2023-02-29 00:00:00",
            "2024-13-01 00:00:00",
            "2024-01-01T00:00:00",
            "2024-1-1 0:0:0",
        ] {
            assert!(parse_deadline(bad).is_err(), "{bad}");
        }
    }
}
