//! Topic and channel names: `^[.a-zA-Z0-9_-]+(#ephemeral)?$`, 1..=64 bytes.

/// The longest valid name in bytes (the `#ephemeral` suffix counts).
pub const MAX_NAME_LENGTH: usize = 64;

const EPHEMERAL_SUFFIX: &str = "#ephemeral";

/// Whether `name` may name a topic.
pub fn is_valid_topic_name(name: &str) -> bool {
    is_valid_name(name.as_bytes())
}

/// Whether `name` may name a channel (the same rule as topics).
pub fn is_valid_channel_name(name: &str) -> bool {
    is_valid_name(name.as_bytes())
}

/// Whether the topic or channel disappears when its last client or channel goes.
pub fn is_ephemeral(name: &str) -> bool {
    name.ends_with(EPHEMERAL_SUFFIX)
}

/// The name rule on raw wire bytes, so the parser validates before allocating.
pub(crate) fn is_valid_name(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LENGTH {
        return false;
    }
    let core = name
        .strip_suffix(EPHEMERAL_SUFFIX.as_bytes())
        .unwrap_or(name);
    !core.is_empty()
        && core
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Go's `%q` of a byte string (strconv.Quote), used in error texts that quote a name.
/// Non-ASCII code points count as printable unless they are controls, spaces other than
/// U+0020, format characters, private-use or non-characters (Go's tables also escape
/// unassigned code points; names with those are rare enough not to carry the tables).
pub(crate) fn go_quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_quoted_char(&mut out, c);
        }
        for b in chunk.invalid() {
            push_hex_escape(&mut out, "\\x", u32::from(*b), 2);
        }
    }
    out.push('"');
    out
}

fn push_quoted_char(out: &mut String, c: char) {
    match c {
        '"' | '\\' => {
            out.push('\\');
            out.push(c);
        }
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if is_go_printable(c) => out.push(c),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => push_hex_escape(out, "\\x", c as u32, 2),
        c if (c as u32) < 0x10000 => push_hex_escape(out, "\\u", c as u32, 4),
        c => push_hex_escape(out, "\\U", c as u32, 8),
    }
}

fn push_hex_escape(out: &mut String, prefix: &str, v: u32, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str(prefix);
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((v >> (4 * i)) & 0xf) as usize]));
    }
}

fn is_go_printable(c: char) -> bool {
    let v = c as u32;
    if v < 0x80 {
        return (0x20..0x7f).contains(&v);
    }
    !(c.is_control() || c.is_whitespace() || is_format_or_private(v))
}

fn is_format_or_private(v: u32) -> bool {
    matches!(v,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x890..=0x891 | 0x8e2 | 0x180e
        | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f
        | 0xe000..=0xf8ff | 0xfdd0..=0xfdef | 0xfeff | 0xfff9..=0xfffb
        | 0x110bd | 0x110cd | 0x13430..=0x1343f | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a
        | 0xe0001 | 0xe0020..=0xe007f | 0xf0000..=0x10ffff)
        || v & 0xfffe == 0xfffe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(is_valid_topic_name("golden"));
        assert!(is_valid_topic_name("a.b-c_D9"));
        assert!(is_valid_channel_name("ch#ephemeral"));
        assert!(is_valid_topic_name(&"a".repeat(64)));
        assert!(is_valid_topic_name(&format!(
            "{}#ephemeral",
            "a".repeat(54)
        )));
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "bad!topic",
            "#ephemeral",
            "a#ephemeral#ephemeral",
            "a#eph",
            "a b",
            "ü",
            "a\n",
        ] {
            assert!(!is_valid_topic_name(bad), "{bad:?}");
        }
        assert!(!is_valid_topic_name(&"a".repeat(65)));
        assert!(!is_valid_channel_name(&format!(
            "{}#ephemeral",
            "a".repeat(55)
        )));
    }

    #[test]
    fn ephemeral_is_a_suffix() {
        assert!(is_ephemeral("t#ephemeral"));
        assert!(!is_ephemeral("t"));
        assert!(!is_ephemeral("t#ephemeral2"));
    }

    #[test]
    fn quote_matches_go_strconv_quote() {
        assert_eq!(go_quote(b"bad!topic"), "\"bad!topic\"");
        assert_eq!(go_quote(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote(b"\t\r\x07\x00\x7f"), "\"\\t\\r\\a\\x00\\x7f\"");
        assert_eq!(go_quote("ü€".as_bytes()), "\"ü€\"");
        assert_eq!(go_quote(b"\xff\xe2\x82"), "\"\\xff\\xe2\\x82\"");
        assert_eq!(go_quote("\u{a0}\u{200b}".as_bytes()), "\"\\u00a0\\u200b\"");
        assert_eq!(go_quote("\u{f0000}".as_bytes()), "\"\\U000f0000\"");
    }
}
