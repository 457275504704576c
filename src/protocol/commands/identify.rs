//! IDENTIFY: a size-prefixed JSON body; `protocol::identify::negotiate` interprets it.

use bytes::{BufMut, BytesMut};

use super::{
    checked_body, put_sized, ClientState, Command, Decoded, Line, ParseContext, ParseError,
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
    let body = match checked_body("IDENTIFY", line, src, ctx.limits.max_body_size)? {
        Ok(body) => body,
        Err(incomplete) => return Ok(incomplete),
    };
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

    /// The golden IDENTIFY cases as sent on the wire, through decode and then negotiate.
    #[test]
    fn golden_identify_wire_through_negotiate() {
        use crate::protocol::identify::{negotiate, response_json, tests::go_defaults};
        let limits = go_defaults();
        let errors: [(&[u8], &str); 9] = [
            (
                b"\x00\x00\x00\x1a{\"heartbeat_interval\":500}",
                "E_BAD_BODY IDENTIFY heartbeat interval (500) is invalid",
            ),
            (
                b"\x00\x00\x00\x1c{\"heartbeat_interval\":60001}",
                "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid",
            ),
            (
                b"\x00\x00\x00\x19{\"output_buffer_size\":10}",
                "E_BAD_BODY IDENTIFY output buffer size (10) is invalid",
            ),
            (
                b"\x00\x00\x00\x1c{\"output_buffer_timeout\":10}",
                "E_BAD_BODY IDENTIFY output buffer timeout (10) is invalid",
            ),
            (
                b"\x00\x00\x00\x12{\"msg_timeout\":10}",
                "E_BAD_BODY IDENTIFY msg timeout (10) is invalid",
            ),
            (
                b"\x00\x00\x00\x13{\"sample_rate\":100}",
                "E_BAD_BODY IDENTIFY sample rate (100) is invalid",
            ),
            (
                b"\x00\x00\x00\x12{\"sample_rate\":-1}",
                "E_BAD_BODY IDENTIFY sample rate (-1) is invalid",
            ),
            (
                b"\x00\x00\x00\t{bad json",
                "E_BAD_BODY IDENTIFY failed to decode JSON body",
            ),
            (
                b"\x00\x00\x009{\"feature_negotiation\":true,\"snappy\":true,\"deflate\":true}",
                "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression",
            ),
        ];
        for (after_line, text) in errors {
            let wire = [&b"IDENTIFY\n"[..], after_line].concat();
            let Command::Identify { body } = decode_one(&wire, &ctx(ClientState::Init)) else {
                panic!("not an IDENTIFY");
            };
            let err = negotiate(&body, &limits).unwrap_err();
            assert!(err.is_fatal());
            assert_eq!(err.text(), text);
        }

        let wire = b"IDENTIFY\n\x00\x00\x00\x1c{\"feature_negotiation\":true}";
        let Command::Identify { body } = decode_one(wire, &ctx(ClientState::Init)) else {
            panic!("not an IDENTIFY");
        };
        let n = negotiate(&body, &limits).unwrap();
        assert_eq!(
            response_json(&n, &limits, "1.3.0"),
            br#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250}"#
        );
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
