//! MPUB <topic>: `[i32 body size][i32 count]` then count × `[i32 size][bytes]`.
//!
//! As in Go, the messages are read one after another straight off the stream; the body
//! size is only range-checked, never compared with what the messages add up to. One
//! bound is ours: the messages together may not exceed `max_body_size`, so a lying body
//! size cannot make us buffer more than that (Go would keep reading).

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    bad_topic, name_string, read_i32, take_body, valid_name, Command, Decoded, ErrorCode, Limits,
    Line, ParseContext, ParseError,
};

/// Bytes of the count field at the start of the body.
const COUNT_LENGTH: usize = 4;

pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    if line.count < 2 {
        return Err(ParseError::invalid(
            "MPUB insufficient number of parameters",
        ));
    }
    let raw_topic = line.param(src, 1);
    if valid_name(raw_topic).is_none() {
        // Go's text repeats the code.
        return Err(bad_topic("E_BAD_TOPIC MPUB", raw_topic));
    }
    // From here on Go has created the topic, even if the body turns out bad.
    let topic = || name_string(line.param(src, 1));
    let (inner_len, count) = match scan(src, line.len, ctx.limits) {
        Ok(Scan::Incomplete(needed)) => return Ok(Decoded::Incomplete { needed }),
        Ok(Scan::Complete { inner_len, count }) => (inner_len, count),
        Err(mut e) => {
            e.mpub_topic = Some(topic());
            return Err(e);
        }
    };
    let topic = topic();
    let body = take_body(src, line, inner_len);
    let bodies = split_messages(&body, count);
    Ok(Decoded::Complete(Command::Mpub { topic, bodies }))
}

enum Scan {
    Incomplete(usize),
    /// All messages are buffered: `inner_len` bytes after the size field hold them.
    Complete {
        inner_len: usize,
        count: usize,
    },
}

/// Validates sizes in Go's order without consuming or allocating anything.
fn scan(src: &[u8], line_len: usize, limits: &Limits) -> Result<Scan, ParseError> {
    let Some(size) = read_i32(src, line_len) else {
        return Ok(Scan::Incomplete(line_len + 4));
    };
    let max_body = limits.max_body_size;
    if size <= 0 {
        return Err(bad_body(format!("MPUB invalid body size {size}")));
    }
    if i64::from(size) > max_body {
        return Err(bad_body(format!("MPUB body too big {size} > {max_body}")));
    }
    let base = line_len + 4;
    let Some(count) = read_i32(src, base) else {
        return Ok(Scan::Incomplete(base + COUNT_LENGTH));
    };
    // 4 bytes of count, then at least 4 + 1 per message.
    let max_messages = (max_body - 4) / 5;
    if count <= 0 || i64::from(count) > max_messages {
        return Err(bad_body(format!("MPUB invalid message count {count}")));
    }
    let mut inner = COUNT_LENGTH;
    for i in 0..count {
        let Some(msg_size) = read_i32(src, base + inner) else {
            return Ok(Scan::Incomplete(base + inner + 4));
        };
        check_message_size(i, msg_size, limits.max_msg_size)?;
        inner += 4 + msg_size as usize;
        if inner as i64 > max_body {
            return Err(bad_body(format!("MPUB body too big {inner} > {max_body}")));
        }
        if src.len() < base + inner {
            return Ok(Scan::Incomplete(base + inner));
        }
    }
    Ok(Scan::Complete {
        inner_len: inner,
        count: count as usize,
    })
}

fn check_message_size(i: i32, size: i32, max: i64) -> Result<(), ParseError> {
    if size <= 0 {
        return Err(ParseError::new(
            ErrorCode::BadMessage,
            format!("MPUB invalid message({i}) body size {size}"),
        ));
    }
    if i64::from(size) > max {
        return Err(ParseError::new(
            ErrorCode::BadMessage,
            format!("MPUB message too big {size} > {max}"),
        ));
    }
    Ok(())
}

fn bad_body(description: String) -> ParseError {
    ParseError::new(ErrorCode::BadBody, description)
}

/// Zero-copy slices of the (already validated) messages in `body`.
fn split_messages(body: &Bytes, count: usize) -> Vec<Bytes> {
    let mut bodies = Vec::with_capacity(count);
    let mut at = COUNT_LENGTH;
    while bodies.len() < count {
        let Some(size) = read_i32(body, at) else {
            break;
        };
        let start = at + 4;
        let end = start + size as usize;
        if size <= 0 || end > body.len() {
            break;
        }
        bodies.push(body.slice(start..end));
        at = end;
    }
    bodies
}

pub(super) fn encode(dst: &mut BytesMut, topic: &str, bodies: &[Bytes]) {
    let inner: usize = COUNT_LENGTH + bodies.iter().map(|b| 4 + b.len()).sum::<usize>();
    dst.reserve(10 + topic.len() + inner);
    dst.put_slice(b"MPUB ");
    dst.put_slice(topic.as_bytes());
    dst.put_u8(b'\n');
    dst.put_u32(inner as u32);
    dst.put_u32(bodies.len() as u32);
    for body in bodies {
        dst.put_u32(body.len() as u32);
        dst.put_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    fn mpub_error(wire: &[u8]) -> ParseError {
        let mut buf = BytesMut::from(wire);
        decode(&mut buf, &ctx(ClientState::Init)).unwrap_err()
    }

    #[test]
    fn golden_mpub_ok() {
        let wire =
            b"MPUB golden\n\x00\x00\x00\x12\x00\x00\x00\x02\x00\x00\x00\x03one\x00\x00\x00\x03two";
        let cmd = Command::Mpub {
            topic: "golden".into(),
            bodies: vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")],
        };
        assert_eq!(decode_one(wire, &ctx(ClientState::Subscribed)), cmd);
        assert_eq!(encoded(&cmd), wire);
    }

    #[test]
    fn golden_mpub_errors_create_the_topic() {
        let cases: [(&[u8], &str, &str); 4] = [
            (
                b"MPUB golden_mpub_count0\n\x00\x00\x00\x04\x00\x00\x00\x00",
                "golden_mpub_count0",
                "E_BAD_BODY MPUB invalid message count 0",
            ),
            (
                b"MPUB golden_mpub_inner0\n\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00",
                "golden_mpub_inner0",
                "E_BAD_MESSAGE MPUB invalid message(0) body size 0",
            ),
            (
                b"MPUB golden_mpub_innerbig\n\x00\x10\x00\x18\x00\x00\x00\x02\x00\x00\x00\x01x\x00\x10\x00\x01",
                "golden_mpub_innerbig",
                "E_BAD_MESSAGE MPUB message too big 1048577 > 1048576",
            ),
            (
                b"MPUB golden_mpub_body0\n\x00\x00\x00\x00",
                "golden_mpub_body0",
                "E_BAD_BODY MPUB invalid body size 0",
            ),
        ];
        for (wire, topic, text) in cases {
            assert_eq!(error_text(wire, &ctx(ClientState::Init)), text);
            assert_eq!(mpub_error(wire).mpub_topic.as_deref(), Some(topic));
        }
    }

    #[test]
    fn golden_mpub_bad_topic_creates_nothing() {
        let c = ctx(ClientState::Init);
        assert_eq!(
            error_text(b"MPUB bad!topic\n", &c),
            "E_BAD_TOPIC E_BAD_TOPIC MPUB topic name \"bad!topic\" is not valid"
        );
        assert_eq!(mpub_error(b"MPUB bad!topic\n").mpub_topic, None);
        assert_eq!(
            error_text(b"MPUB\n", &c),
            "E_INVALID MPUB insufficient number of parameters"
        );
        assert_eq!(mpub_error(b"MPUB\n").mpub_topic, None);
    }

    #[test]
    fn body_and_count_limits() {
        let c = ctx(ClientState::Init);
        assert_eq!(
            error_text(b"MPUB t\n\x00P\x00\x01", &c),
            "E_BAD_BODY MPUB body too big 5242881 > 5242880"
        );
        assert_eq!(
            error_text(b"MPUB t\n\xff\xff\xff\xff", &c),
            "E_BAD_BODY MPUB invalid body size -1"
        );
        // (5242880 - 4) / 5 = 1048575 messages at most.
        assert_eq!(
            error_text(b"MPUB t\n\x00\x00\x00\x10\x00\x10\x00\x00", &c),
            "E_BAD_BODY MPUB invalid message count 1048576"
        );
        assert_eq!(needed(b"MPUB t\n\x00\x00\x00\x10\x00\x0f\xff\xff", &c), 19);
    }

    #[test]
    fn messages_past_max_body_size_are_refused_before_buffering() {
        let limits = Limits {
            max_body_size: 20,
            ..LIMITS
        };
        let c = ParseContext {
            limits: &limits,
            ..ctx(ClientState::Init)
        };
        // The declared size (8) is within bounds but the messages claim 4+4+9+4+9 = 30.
        let wire = b"MPUB t\n\x00\x00\x00\x08\x00\x00\x00\x02\x00\x00\x00\x09";
        assert_eq!(needed(wire, &c), 11 + 4 + 4 + 9);
        let mut more = wire.to_vec();
        more.extend_from_slice(b"123456789\x00\x00\x00\x09");
        assert_eq!(
            error_text(&more, &c),
            "E_BAD_BODY MPUB body too big 30 > 20"
        );
    }

    #[test]
    fn a_short_declared_size_is_not_enforced_like_go() {
        // Declared 5, actual 4 + 4 + 3: Go reads the messages off the stream regardless.
        let wire = b"MPUB t\n\x00\x00\x00\x05\x00\x00\x00\x01\x00\x00\x00\x03abcNOP\n";
        let mut buf = BytesMut::from(&wire[..]);
        let c = ctx(ClientState::Init);
        assert!(matches!(
            decode(&mut buf, &c),
            Ok(Decoded::Complete(Command::Mpub { ref bodies, .. })) if bodies.len() == 1
        ));
        assert_eq!(decode(&mut buf, &c), Ok(Decoded::Complete(Command::Nop)));
    }

    #[test]
    fn partial_mpub_asks_for_the_next_piece() {
        let c = ctx(ClientState::Init);
        let wire =
            b"MPUB t\n\x00\x00\x00\x12\x00\x00\x00\x02\x00\x00\x00\x03one\x00\x00\x00\x03two";
        assert_eq!(needed(&wire[..7], &c), 11);
        assert_eq!(needed(&wire[..11], &c), 15);
        assert_eq!(needed(&wire[..15], &c), 19);
        assert_eq!(needed(&wire[..19], &c), 22);
        assert_eq!(needed(&wire[..22], &c), 26);
        assert_eq!(needed(&wire[..26], &c), 29);
        assert_eq!(needed(&wire[..28], &c), 29);
    }

    #[test]
    fn bodies_are_slices_of_the_read_buffer() {
        let wire =
            b"MPUB t\n\x00\x00\x00\x12\x00\x00\x00\x02\x00\x00\x00\x03one\x00\x00\x00\x03two";
        let mut buf = BytesMut::from(&wire[..]);
        let one_at = buf[19..].as_ptr();
        let two_at = buf[26..].as_ptr();
        let Ok(Decoded::Complete(Command::Mpub { bodies, .. })) =
            decode(&mut buf, &ctx(ClientState::Init))
        else {
            panic!("not an MPUB");
        };
        assert_eq!(bodies[0].as_ptr(), one_at);
        assert_eq!(bodies[1].as_ptr(), two_at);
        assert!(buf.is_empty());
    }
}
