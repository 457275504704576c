//! JSON values written the way Go 1.19's `encoding/json` (which built NSQ v1.3.0) writes
//! them, where our output must match Go's bytes: `nsqd.dat`, `/config/:opt` answers and
//! the IDENTIFY nsqd sends to nsqlookupd.

/// Appends `s` as a JSON string, HTML escaping on: `"` and `\` backslashed; `\n`, `\r`,
/// `\t` short; other control bytes, `<`, `>`, `&` as `\u00XX`; U+2028 and U+2029 as
/// `\u2028`, `\u2029`; everything else raw.
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// `s` as a JSON string (see [`push_string`]).
pub fn string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_string(&mut out, s);
    String::from_utf8_lossy(&out).into_owned()
}

/// A float64 as Go writes it: the shortest form that reads back the same, in exponent
/// form only below 1e-6 or from 1e21 (`1e-7`, `1e+21`).
pub fn float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                format!("{mantissa}e+{exponent}")
            }
            _ => text,
        }
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_go_does() {
        assert_eq!(string("nsq.%s"), r#""nsq.%s""#);
        assert_eq!(
            string("a\"b\\c\nd\te\u{1}<>&\u{2028}é"),
            r#""a\"b\\c\nd\te\u0001\u003c\u003e\u0026\u2028é""#
        );
    }

    #[test]
    fn floats_use_go_formatting() {
        let cases = [
            (0.99, "0.99"),
            (1.0, "1"),
            (0.5, "0.5"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
        ];
        for (value, want) in cases {
            assert_eq!(float(value), want, "{value}");
        }
    }
}
