//! Go's `fmt.Sprintf(format, s)` with one string argument, as nsq_to_http builds its GET
//! URLs (`fmt.Sprintf(addr, url.QueryEscape(body))`): `%s`/`%v` (with width, precision
//! and the `-` and `0` flags), `%q`, `%x`/`%X`, `%%`, and Go's error forms
//! (`%!d(string=…)`, `%!s(MISSING)`, `%!(NOVERB)`, `%!(EXTRA string=…)`).
//!
//! Not handled: `*` widths and `[n]` argument indexes (read as bad verbs), and the `+`,
//! `#` and space flags' effects on `%q`/`%x`.

use super::go_quote;

/// A verb's flags, width and precision.
#[derive(Default)]
struct Spec {
    minus: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

impl Spec {
    /// Pads `text` to the width, in runes, as Go's `fmt.padString` does.
    fn pad(&self, text: &str) -> String {
        let runes = text.chars().count();
        let Some(width) = self.width.filter(|width| *width > runes) else {
            return text.to_string();
        };
        let fill = width - runes;
        if self.minus {
            format!("{text}{}", " ".repeat(fill))
        } else if self.zero {
            format!("{}{text}", "0".repeat(fill))
        } else {
            format!("{}{text}", " ".repeat(fill))
        }
    }

    /// The first `precision` runes of `text` (all without a precision).
    fn truncate<'a>(&self, text: &'a str) -> &'a str {
        match self.precision {
            Some(precision) => match text.char_indices().nth(precision) {
                Some((at, _)) => &text[..at],
                None => text,
            },
            None => text,
        }
    }
}

/// Go's `fmt.Sprintf(format, arg)` for one string `arg` (see the module doc).
pub fn sprintf_string(format: &str, arg: &str) -> String {
    let mut out = String::with_capacity(format.len() + arg.len());
    let mut used = false;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.minus = true,
                '0' => spec.zero = !spec.minus,
                '+' | '#' | ' ' => {}
                _ => break,
            }
            chars.next();
        }
        spec.width = read_number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(read_number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        if used {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        }
        used = true;
        let text = match verb {
            's' | 'v' => spec.pad(spec.truncate(arg)),
            'q' => spec.pad(&go_quote(spec.truncate(arg))),
            'x' | 'X' => {
                let bytes = arg.as_bytes();
                let bytes = spec
                    .precision
                    .map_or(bytes, |p| &bytes[..p.min(bytes.len())]);
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                spec.pad(&if verb == 'X' { hex.to_uppercase() } else { hex })
            }
            // Go prints the value with the verb's width and precision still set.
            other => format!("%!{other}(string={})", spec.pad(spec.truncate(arg))),
        };
        out.push_str(&text);
    }
    if !used {
        out.push_str(&format!("%!(EXTRA string={arg})"));
    }
    out
}

fn read_number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut number: Option<usize> = None;
    while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        let so_far = number.unwrap_or(0);
        number = Some(so_far.saturating_mul(10).saturating_add(digit as usize));
    }
    number
}

#[cfg(test)]
mod tests {
    use super::sprintf_string;

    #[test]
    fn one_percent_s_is_replaced() {
        assert_eq!(
            sprintf_string("http://h:1/get?d=%s", "a+b"),
            "http://h:1/get?d=a+b"
        );
        assert_eq!(sprintf_string("%s%%", "x"), "x%");
        assert_eq!(sprintf_string("[%5s|%-3s]", "ab"), "[   ab|%!s(MISSING)]");
        assert_eq!(sprintf_string("%.2s", "abc"), "ab");
        assert_eq!(sprintf_string("%q", "a\"b"), "\"a\\\"b\"");
        assert_eq!(sprintf_string("%x", "hi"), "6869");
    }

    #[test]
    fn go_error_forms() {
        // A literal `%20` in a URL reads as width 20 and verb 'b', taking the argument.
        assert_eq!(
            sprintf_string("/a%20b?d=%s", "x"),
            format!("/a%!b(string={}x)?d=%!s(MISSING)", " ".repeat(19))
        );
        assert_eq!(sprintf_string("%%s", "x"), "%s%!(EXTRA string=x)");
        assert_eq!(sprintf_string("%d", "x"), "%!d(string=x)");
        assert_eq!(sprintf_string("a%", "x"), "a%!(NOVERB)%!(EXTRA string=x)");
    }
}
