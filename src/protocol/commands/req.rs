//! REQ <id> <timeout_ms>: put a message back, delivered again after the timeout.

use bytes::{BufMut, BytesMut};

use super::{
    byte_to_base10, complete_line, in_flight_id, limit_ms_to_ns, ms_to_ns_wrapping, put_decimal,
    Command, Decoded, Line, MessageId, ParseContext, ParseError,
};

/// Out-of-range timeouts are clamped, not rejected (Go only logs them); a negative one
/// does not parse at all.
pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    let id = in_flight_id("REQ", 3, line, src, ctx)?;
    let raw = line.param(src, 2);
    let ms = byte_to_base10(raw).ok_or_else(|| {
        ParseError::invalid(format!(
            "REQ could not parse timeout {}",
            String::from_utf8_lossy(raw)
        ))
    })?;
    let max_ns = limit_ms_to_ns(ctx.limits.max_req_timeout_ms).max(0);
    let timeout_ns = ms_to_ns_wrapping(ms).clamp(0, max_ns);
    let cmd = Command::Req {
        id,
        timeout_ms: timeout_ns / 1_000_000,
    };
    complete_line(src, line, cmd)
}

pub(super) fn encode(dst: &mut BytesMut, id: &MessageId, timeout_ms: i64) {
    dst.reserve(42);
    dst.put_slice(b"REQ ");
    dst.put_slice(id.as_bytes());
    dst.put_u8(b' ');
    put_decimal(dst, timeout_ms);
    dst.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    const ID: MessageId = MessageId(*b"18a8c28d96e69000");

    #[test]
    fn golden_req_ok_and_clamped() {
        let c = ctx(ClientState::Subscribed);
        assert_eq!(
            decode_one(b"REQ 18a8c28d96e69000 1000\n", &c),
            Command::Req {
                id: ID,
                timeout_ms: 1000
            }
        );
        assert_eq!(
            decode_one(b"REQ 18a8c28d96e69000 3600001\n", &c),
            Command::Req {
                id: ID,
                timeout_ms: 3_600_000
            }
        );
        assert_eq!(
            decode_one(b"REQ 0000000000000000 0\n", &ctx(ClientState::Closing)),
            Command::Req {
                id: MessageId(*b"0000000000000000"),
                timeout_ms: 0
            }
        );
        // u64 -> i64 -> ns wraps negative and is clamped to 0, as in Go.
        assert_eq!(
            decode_one(b"REQ 18a8c28d96e69000 18446744073709551615\n", &c),
            Command::Req {
                id: ID,
                timeout_ms: 0
            }
        );
        let cmd = Command::Req {
            id: ID,
            timeout_ms: 1000,
        };
        assert_eq!(encoded(&cmd), b"REQ 18a8c28d96e69000 1000\n");
    }

    #[test]
    fn golden_req_errors() {
        let c = ctx(ClientState::Subscribed);
        assert_eq!(
            error_text(b"REQ 18a8c28d96e69000 -1\n", &c),
            "E_INVALID REQ could not parse timeout -1"
        );
        assert_eq!(
            error_text(b"REQ 18a8c28d96e69000\n", &c),
            "E_INVALID REQ insufficient number of params"
        );
        assert_eq!(
            error_text(b"REQ abc 1\n", &c),
            "E_INVALID invalid message ID"
        );
        assert_eq!(
            error_text(b"REQ 18a8c28d96e69000 1\n", &ctx(ClientState::Init)),
            "E_INVALID cannot REQ in current state"
        );
    }
}
