//! RDY [count]: how many messages the subscriber accepts in flight (no count means 1).

use bytes::{BufMut, BytesMut};

use super::{
    byte_to_base10, complete_line, put_decimal, ClientState, Command, Decoded, Line, ParseContext,
    ParseError,
};

pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    if ctx.state == ClientState::Closing {
        // Go ignores RDY after CLS without looking at its parameters.
        return complete_line(src, line, Command::Nop);
    }
    if ctx.state != ClientState::Subscribed {
        return Err(ParseError::invalid("cannot RDY in current state"));
    }
    let mut count = 1i64;
    if line.count > 1 {
        let raw = line.param(src, 1);
        let parsed = byte_to_base10(raw).ok_or_else(|| {
            ParseError::invalid(format!(
                "RDY could not parse count {}",
                String::from_utf8_lossy(raw)
            ))
        })?;
        count = parsed as i64;
    }
    let max = ctx.limits.max_rdy_count;
    if count < 0 || count > max {
        return Err(ParseError::invalid(format!(
            "RDY count {count} out of range 0-{max}"
        )));
    }
    complete_line(src, line, Command::Rdy { count })
}

pub(super) fn encode(dst: &mut BytesMut, count: i64) {
    dst.reserve(25);
    dst.put_slice(b"RDY ");
    put_decimal(dst, count);
    dst.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn golden_rdy_ok() {
        let c = ctx(ClientState::Subscribed);
        assert_eq!(decode_one(b"RDY 10\n", &c), Command::Rdy { count: 10 });
        assert_eq!(decode_one(b"RDY\n", &c), Command::Rdy { count: 1 });
        assert_eq!(decode_one(b"RDY 2500\n", &c), Command::Rdy { count: 2500 });
        // An empty parameter parses as 0, as Go's ByteToBase10 does.
        assert_eq!(decode_one(b"RDY \n", &c), Command::Rdy { count: 0 });
        assert_eq!(encoded(&Command::Rdy { count: 10 }), b"RDY 10\n");
    }

    #[test]
    fn golden_rdy_errors() {
        let c = ctx(ClientState::Subscribed);
        assert_eq!(
            error_text(b"RDY -1\n", &c),
            "E_INVALID RDY could not parse count -1"
        );
        assert_eq!(
            error_text(b"RDY 2501\n", &c),
            "E_INVALID RDY count 2501 out of range 0-2500"
        );
        assert_eq!(
            error_text(b"RDY 1\n", &ctx(ClientState::Init)),
            "E_INVALID cannot RDY in current state"
        );
        // Wrapping u64 -> i64 like Go's int64(b10).
        assert_eq!(
            error_text(b"RDY 18446744073709551615\n", &c),
            "E_INVALID RDY count -1 out of range 0-2500"
        );
    }

    #[test]
    fn golden_rdy_after_cls_is_ignored() {
        let c = ctx(ClientState::Closing);
        assert_eq!(decode_one(b"RDY 5\n", &c), Command::Nop);
        assert_eq!(decode_one(b"RDY -1\n", &c), Command::Nop);
    }
}
