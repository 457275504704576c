//! DPUB <topic> <defer_ms>: one message, delivered no sooner than defer_ms from now.

use bytes::{BufMut, BytesMut};

use super::publish::message_size;
use super::{
    bad_topic, byte_to_base10, incomplete_body, limit_ms_to_ns, ms_to_ns_wrapping, name_string,
    put_decimal, put_sized, read_i32, take_body, valid_name, Command, Decoded, Line, ParseContext,
    ParseError,
};

/// Unlike REQ, an out-of-range defer is an error, checked before the body size is read.
pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    if line.count < 3 {
        return Err(ParseError::invalid(
            "DPUB insufficient number of parameters",
        ));
    }
    let raw_topic = line.param(src, 1);
    if valid_name(raw_topic).is_none() {
        return Err(bad_topic("DPUB", raw_topic));
    }
    let raw_defer = line.param(src, 2);
    let ms = byte_to_base10(raw_defer).ok_or_else(|| {
        ParseError::invalid(format!(
            "DPUB could not parse timeout {}",
            String::from_utf8_lossy(raw_defer)
        ))
    })?;
    let defer_ns = ms_to_ns_wrapping(ms);
    let max_ms = ctx.limits.max_req_timeout_ms;
    if defer_ns < 0 || defer_ns > limit_ms_to_ns(max_ms) {
        return Err(ParseError::invalid(format!(
            "DPUB timeout {ms} out of range 0-{max_ms}"
        )));
    }
    let Some(size) = read_i32(src, line.len) else {
        return Ok(Decoded::Incomplete {
            needed: line.len + 4,
        });
    };
    let len = message_size("DPUB", size, ctx.limits.max_msg_size)?;
    if let Some(incomplete) = incomplete_body(src, line, len) {
        return Ok(incomplete);
    }
    let topic = name_string(line.param(src, 1));
    let body = take_body(src, line, len);
    Ok(Decoded::Complete(Command::Dpub {
        topic,
        defer_ms: defer_ns / 1_000_000,
        body,
    }))
}

pub(super) fn encode(dst: &mut BytesMut, topic: &str, defer_ms: i64, body: &[u8]) {
    dst.reserve(31 + topic.len() + body.len());
    dst.put_slice(b"DPUB ");
    dst.put_slice(topic.as_bytes());
    dst.put_u8(b' ');
    put_decimal(dst, defer_ms);
    dst.put_u8(b'\n');
    put_sized(dst, body);
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn golden_dpub_ok() {
        let cmd = Command::Dpub {
            topic: "golden".into(),
            defer_ms: 1000,
            body: Bytes::from_static(b"later"),
        };
        let wire = b"DPUB golden 1000\n\x00\x00\x00\x05later";
        assert_eq!(decode_one(wire, &ctx(ClientState::Init)), cmd);
        assert_eq!(encoded(&cmd), wire);
    }

    #[test]
    fn golden_dpub_errors() {
        let c = ctx(ClientState::Init);
        assert_eq!(
            error_text(b"DPUB golden 3600001\n", &c),
            "E_INVALID DPUB timeout 3600001 out of range 0-3600000"
        );
        assert_eq!(
            error_text(b"DPUB golden -1\n", &c),
            "E_INVALID DPUB could not parse timeout -1"
        );
        assert_eq!(
            error_text(b"DPUB golden\n", &c),
            "E_INVALID DPUB insufficient number of parameters"
        );
        assert_eq!(
            error_text(b"DPUB bad!topic 1\n", &c),
            "E_BAD_TOPIC DPUB topic name \"bad!topic\" is not valid"
        );
        assert_eq!(
            error_text(b"DPUB t 0\n\x00\x00\x00\x00", &c),
            "E_BAD_MESSAGE DPUB invalid message body size 0"
        );
        assert_eq!(
            error_text(b"DPUB t 0\n\x00\x10\x00\x01", &c),
            "E_BAD_MESSAGE DPUB message too big 1048577 > 1048576"
        );
        // The unsigned value is printed, as Go's %d of a uint64 does.
        assert_eq!(
            error_text(b"DPUB t 18446744073709551615\n", &c),
            "E_INVALID DPUB timeout 18446744073709551615 out of range 0-3600000"
        );
    }

    #[test]
    fn partial_dpub_is_incomplete() {
        let c = ctx(ClientState::Init);
        assert_eq!(needed(b"DPUB t 5\n", &c), 13);
        assert_eq!(needed(b"DPUB t 5\n\x00\x00\x00\x02x", &c), 15);
    }
}
