//! IDENTIFY: a size-prefixed JSON body; `protocol::identify::negotiate` interprets it.

use bytes::{BufMut, BytesMut};

use super::{
    incomplete_body, put_sized, read_i32, take_body, ClientState, Command, Decoded, ErrorCode,
    Line, ParseContext, ParseError,
};

/// Go checks "too big" before "<= 0" here (PUB does the opposite).
pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    if ctx.state != ClientState::Init {
        return Err(ParseError::invalid("cannot IDENTIFY in current state"));
    }
    let Some(size) = read_i32(src, line.len) else {
        return Ok(Decoded::Incomplete {
            needed: line.len + 4,
        });
    };
    let max = ctx.limits.max_body_size;
    if i64::from(size) > max {
        return Err(ParseError::new(
            ErrorCode::BadBody,
            format!("IDENTIFY body too big {size} > {max}"),
        ));
    }
    if size <= 0 {
        return Err(ParseError::new(
            ErrorCode::BadBody,
            format!("IDENTIFY invalid body size {size}"),
        ));
    }
    let len = size as usize;
    if let Some(incomplete) = incomplete_body(src, line, len) {
        return Ok(incomplete);
    }
    let body = take_body(src, line, len);
    Ok(Decoded::Complete(Command::Identify { body }))
}

pub(super) fn encode(dst: &mut BytesMut, body: &[u8]) {
    dst.reserve(13 + body.len());
    dst.put_slice(b"IDENTIFY\n");
    put_sized(dst, body);
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn golden_identify_bodies() {
        let c = ctx(ClientState::Init);
        let wire = b"IDENTIFY\n\x00\x00\x00\x1c{\"feature_negotiation\":true}";
        assert_eq!(
            decode_one(wire, &c),
            Command::Identify {
                body: Bytes::from_static(b"{\"feature_negotiation\":true}")
            }
        );
        // A second IDENTIFY before SUB is fine: the state is still init.
        assert!(matches!(
            decode_one(b"IDENTIFY\n\x00\x00\x00\x11{\"client_id\":\"b\"}", &c),
            Command::Identify { .. }
        ));
    }

    #[test]
    fn golden_identify_errors() {
        let c = ctx(ClientState::Init);
        assert_eq!(
            error_text(b"IDENTIFY\n\x00\x00\x00\x00", &c),
            "E_BAD_BODY IDENTIFY invalid body size 0"
        );
        assert_eq!(
            error_text(b"IDENTIFY\n\xff\xff\xff\xff", &c),
            "E_BAD_BODY IDENTIFY invalid body size -1"
        );
        assert_eq!(
            error_text(b"IDENTIFY\n\x00P\x00\x01", &c),
            "E_BAD_BODY IDENTIFY body too big 5242881 > 5242880"
        );
        assert_eq!(
            error_text(b"IDENTIFY\n", &ctx(ClientState::Subscribed)),
            "E_INVALID cannot IDENTIFY in current state"
        );
    }

    #[test]
    fn partial_size_and_body_are_incomplete() {
        let c = ctx(ClientState::Init);
        assert_eq!(needed(b"IDENTIFY\n", &c), 13);
        assert_eq!(needed(b"IDENTIFY\n\x00\x00", &c), 13);
        assert_eq!(needed(b"IDENTIFY\n\x00\x00\x00\x02{", &c), 15);
    }

    #[test]
    fn encode_round_trips() {
        let cmd = Command::Identify {
            body: Bytes::from_static(b"{}"),
        };
        assert_eq!(encoded(&cmd), b"IDENTIFY\n\x00\x00\x00\x02{}");
        assert_eq!(decode_one(&encoded(&cmd), &ctx(ClientState::Init)), cmd);
    }
}
