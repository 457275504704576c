//! Go's `fmt` verbs that NSQ's messages use and ours reproduce byte for byte: `%q`, `%v`
//! of a float64, the text of Go's file errors (`*fs.PathError`), and `Sprintf` with one
//! string argument ([`sprintf_string`]).

mod sprintf;

pub use sprintf::sprintf_string;

/// Go's `%q`: a double-quoted string with Go escapes.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() && (c as u32) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits
/// that read back the same, in exponent form when the decimal exponent is below -4 or at
/// least 6 (`1e+06`, `1.5e-05`, `123456`), and `+Inf`, `-Inf`, `NaN`.
pub fn go_float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    // Rust's `{:e}` is the shortest round-trip form too: `1.5e-5`, `1e6`, `-2e0`.
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    } else {
        format!("{f}")
    }
}

/// The text of Go's `*fs.PathError` for a failed file operation: `open /x: no such file
/// or directory`. Go spells errno messages in lower case; reading a directory fails at
/// `read`, everything else at `open`.
pub fn go_path_error(path: &str, error: &std::io::Error) -> String {
    let op = if error.kind() == std::io::ErrorKind::IsADirectory {
        "read"
    } else {
        "open"
    };
    let text = error.to_string();
    // Rust appends ` (os error N)` to the C library's message; Go does not.
    let message = match text.rfind(" (os error ") {
        Some(at) => &text[..at],
        None => text.as_str(),
    };
    let mut chars = message.chars();
    let message = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{op} {path}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("vm"), "\"vm\"");
        assert_eq!(go_quote("[nsqd] "), "\"[nsqd] \"");
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
    }

    #[test]
    fn floats_print_as_go_v() {
        let cases = [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (2.0, "2"),
            (0.3, "0.3"),
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000015, "1.5e-05"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1e100, "1e+100"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float_v(f), want, "{f}");
        }
    }

    #[test]
    fn path_errors_read_as_go_s() {
        let missing = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            go_path_error("/nope", &missing),
            "open /nope: no such file or directory"
        );
        let denied = std::io::Error::from_raw_os_error(13);
        assert_eq!(go_path_error("/x", &denied), "open /x: permission denied");
        let directory = std::io::Error::from_raw_os_error(21);
        assert_eq!(
            go_path_error("/tmp", &directory),
            "read /tmp: is a directory"
        );
    }
}
