//! PUB <topic>: one size-prefixed message body. Allowed in every state.

use bytes::{BufMut, BytesMut};

use super::{
    bad_topic, incomplete_body, name_string, put_sized, read_i32, take_body, valid_name, Command,
    Decoded, ErrorCode, Line, ParseContext, ParseError,
};

pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    if line.count < 2 {
        return Err(ParseError::invalid("PUB insufficient number of parameters"));
    }
    let raw_topic = line.param(src, 1);
    if valid_name(raw_topic).is_none() {
        return Err(bad_topic("PUB", raw_topic));
    }
    let Some(size) = read_i32(src, line.len) else {
        return Ok(Decoded::Incomplete {
            needed: line.len + 4,
        });
    };
    let len = message_size("PUB", size, ctx.limits.max_msg_size)?;
    if let Some(incomplete) = incomplete_body(src, line, len) {
        return Ok(incomplete);
    }
    let topic = name_string(line.param(src, 1));
    let body = take_body(src, line, len);
    Ok(Decoded::Complete(Command::Pub { topic, body }))
}

/// PUB's and DPUB's body-size checks: "<= 0" first, then the maximum.
pub(super) fn message_size(cmd: &str, size: i32, max: i64) -> Result<usize, ParseError> {
    if size <= 0 {
        return Err(ParseError::new(
            ErrorCode::BadMessage,
            format!("{cmd} invalid message body size {size}"),
        ));
    }
    if i64::from(size) > max {
        return Err(ParseError::new(
            ErrorCode::BadMessage,
            format!("{cmd} message too big {size} > {max}"),
        ));
    }
    Ok(size as usize)
}

pub(super) fn encode(dst: &mut BytesMut, topic: &str, body: &[u8]) {
    dst.reserve(9 + topic.len() + body.len());
    dst.put_slice(b"PUB ");
    dst.put_slice(topic.as_bytes());
    dst.put_u8(b'\n');
    put_sized(dst, body);
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn golden_pub_ok_in_any_state() {
        let cmd = Command::Pub {
            topic: "golden".into(),
            body: Bytes::from_static(b"hello"),
        };
        for state in [
            ClientState::Init,
            ClientState::Subscribed,
            ClientState::Closing,
        ] {
            assert_eq!(
                decode_one(b"PUB golden\n\x00\x00\x00\x05hello", &ctx(state)),
                cmd
            );
        }
        assert_eq!(encoded(&cmd), b"PUB golden\n\x00\x00\x00\x05hello");
    }

    #[test]
    fn golden_pub_errors() {
        let c = ctx(ClientState::Init);
        assert_eq!(
            error_text(b"PUB golden_pub_empty\n\x00\x00\x00\x00", &c),
            "E_BAD_MESSAGE PUB invalid message body size 0"
        );
        assert_eq!(
            error_text(b"PUB golden_pub_big\n\x00\x10\x00\x01", &c),
            "E_BAD_MESSAGE PUB message too big 1048577 > 1048576"
        );
        assert_eq!(
            error_text(b"PUB bad!topic\n", &c),
            "E_BAD_TOPIC PUB topic name \"bad!topic\" is not valid"
        );
        let long = format!("PUB {}\n", "a".repeat(65));
        assert_eq!(
            error_text(long.as_bytes(), &c),
            format!(
                "E_BAD_TOPIC PUB topic name \"{}\" is not valid",
                "a".repeat(65)
            )
        );
        assert_eq!(
            error_text(b"PUB\n", &c),
            "E_INVALID PUB insufficient number of parameters"
        );
    }

    #[test]
    fn partial_size_and_body_are_incomplete() {
        let c = ctx(ClientState::Init);
        assert_eq!(needed(b"PUB golden\n", &c), 15);
        assert_eq!(needed(b"PUB golden\n\x00\x00\x00", &c), 15);
        assert_eq!(needed(b"PUB golden\n\x00\x00\x00\x05hel", &c), 20);
    }

    #[test]
    fn body_is_a_slice_of_the_read_buffer() {
        let mut buf = BytesMut::from(&b"PUB t\n\x00\x00\x00\x03abcNOP\n"[..]);
        let body_at = buf[10..].as_ptr();
        let Ok(Decoded::Complete(Command::Pub { body, .. })) =
            decode(&mut buf, &ctx(ClientState::Init))
        else {
            panic!("not a PUB");
        };
        assert_eq!(body.as_ptr(), body_at);
        assert_eq!(&buf[..], b"NOP\n");
    }
}
