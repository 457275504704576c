//! Go's time syntax, as the Go bench tools read and print it: `time.ParseDuration`,
//! `time.Duration.String` and the `--deadline` layout `2006-01-02 15:04:05` (UTC).

/// Why a duration or deadline string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoTimeError {
    /// Not `[-+]?([0-9]*(\.[0-9]*)?unit)+` (Go: `time: invalid duration`).
    #[error("time: invalid duration {0:?}")]
    InvalidDuration(String),
    /// A unit other than ns, us, µs, μs, ms, s, m, h.
    #[error("time: unknown unit {unit:?} in duration {text:?}")]
    UnknownUnit { unit: String, text: String },
    /// More than about 292 years.
    #[error("time: invalid duration {0:?} (overflow)")]
    Overflow(String),
    /// Not `YYYY-MM-DD HH:MM:SS`.
    #[error("deadline {0:?} does not match 2006-01-02 15:04:05")]
    InvalidDeadline(String),
}

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;

/// Nanoseconds per unit, by Go's unit names.
fn unit_ns(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => NS_PER_US,
        "ms" => NS_PER_MS,
        "s" => NS_PER_S,
        "m" => 60 * NS_PER_S,
        "h" => 3600 * NS_PER_S,
        _ => return None,
    })
}

/// Parses a Go duration (`10s`, `1m30s`, `1.5h`, `250ms`, `-2s`, `0`) into nanoseconds,
/// accepting and refusing exactly what Go's `time.ParseDuration` does.
pub fn parse_go_duration(text: &str) -> Result<i64, GoTimeError> {
    let invalid = || GoTimeError::InvalidDuration(text.to_owned());
    let overflow = || GoTimeError::Overflow(text.to_owned());
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
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (whole, fraction, after_number) = split_number(rest).ok_or_else(invalid)?;
        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        if unit_len == 0 {
            return Err(invalid());
        }
        let unit = &after_number[..unit_len];
        rest = &after_number[unit_len..];
        let per_unit = unit_ns(unit).ok_or_else(|| GoTimeError::UnknownUnit {
            unit: unit.to_owned(),
            text: text.to_owned(),
        })?;
        let whole = whole.ok_or_else(overflow)?;
        let mut value = whole
            .checked_mul(per_unit)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(overflow)?;
        if let Some((digits, scale)) = fraction {
            // Go adds the fraction through float64 and truncates, so 1.0000000001s is 1s.
            value += (digits as f64 * (per_unit as f64 / scale)) as u64;
        }
        total = total
            .checked_add(value)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(overflow)?;
    }
    if negative {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| overflow())
}

/// `(whole part, (fraction digits, 10^count), rest)` of a leading `[0-9]*(\.[0-9]*)?`;
/// None when there are no digits at all. A whole part that overflows is `None` inside.
#[allow(clippy::type_complexity)]
fn split_number(text: &str) -> Option<(Option<u64>, Option<(u64, f64)>, &str)> {
    let whole_len = text.bytes().take_while(u8::is_ascii_digit).count();
    let whole = text[..whole_len]
        .bytes()
        .try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .filter(|v| *v <= 1 << 63);
    let mut rest = &text[whole_len..];
    let mut fraction = None;
    let mut fraction_len = 0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        fraction_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        let (mut digits, mut scale, mut overflowed) = (0u64, 1.0f64, false);
        for d in after_dot[..fraction_len].bytes() {
            // Like Go's leadingFraction: digits past u64 precision are consumed and ignored.
            match digits
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
            {
                Some(next) if !overflowed => {
                    digits = next;
                    scale *= 10.0;
                }
                _ => overflowed = true,
            }
        }
        fraction = Some((digits, scale));
        rest = &after_dot[fraction_len..];
    }
    if whole_len == 0 && fraction_len == 0 {
        return None;
    }
    Some((whole, fraction.filter(|(digits, _)| *digits > 0), rest))
}

/// Go's `time.Duration.String()`: `0s`, `750ns`, `1.5µs`, `12.5ms`, `10.000213s`, `1m30s`,
/// `2h0m0s`.
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
    let (hours, minutes) = (total_s / 3600, (total_s / 60) % 60);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, _) => format!("{sign}{minutes}m{seconds}s"),
        _ => format!("{sign}{hours}h{minutes}m{seconds}s"),
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

    #[test]
    fn durations_parse_like_go() {
        let cases: [(&str, i64); 12] = [
            ("10s", 10_000_000_000),
            ("0", 0),
            ("+0", 0),
            ("-2s", -2_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("250ms", 250_000_000),
            ("1us", 1_000),
            ("1µs", 1_000),
            (".5s", 500_000_000),
            ("3.s", 3_000_000_000),
            ("1h2m3.004005006s", 3_723_004_005_006),
        ];
        for (text, ns) in cases {
            assert_eq!(parse_go_duration(text), Ok(ns), "{text}");
        }
    }

    #[test]
    fn bad_durations_are_refused_like_go() {
        for text in ["", "-", "10", "s", ".s", "1.2.3s", "5 s", "1e3s"] {
            assert!(
                matches!(
                    parse_go_duration(text),
                    Err(GoTimeError::InvalidDuration(_) | GoTimeError::UnknownUnit { .. })
                ),
                "{text}"
            );
        }
        assert!(matches!(
            parse_go_duration("3d"),
            Err(GoTimeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("9999999999h"),
            Err(GoTimeError::Overflow(_))
        ));
        assert_eq!(parse_go_duration("-9223372036854775808ns"), Ok(i64::MIN));
        assert!(matches!(
            parse_go_duration("9223372036854775808ns"),
            Err(GoTimeError::Overflow(_))
        ));
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(750), "750ns");
        assert_eq!(format_go_duration(1_500), "1.5µs");
        assert_eq!(format_go_duration(12_500_000), "12.5ms");
        assert_eq!(format_go_duration(10_000_213_000), "10.000213s");
        assert_eq!(format_go_duration(90_000_000_000), "1m30s");
        assert_eq!(format_go_duration(7_200_000_000_000), "2h0m0s");
        assert_eq!(format_go_duration(-1_500_000_000), "-1.5s");
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
