//! TOUCH <id>: the subscriber needs more time for a message.

use bytes::{BufMut, BytesMut};

use super::{
    complete_line, in_flight_id, Command, Decoded, Line, MessageId, ParseContext, ParseError,
};

pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    let id = in_flight_id("TOUCH", 2, line, src, ctx)?;
    complete_line(src, line, Command::Touch { id })
}

pub(super) fn encode(dst: &mut BytesMut, id: &MessageId) {
    dst.reserve(23);
    dst.put_slice(b"TOUCH ");
    dst.put_slice(id.as_bytes());
    dst.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn golden_touch_ok() {
        let cmd = Command::Touch {
            id: MessageId(*b"0000000000000000"),
        };
        assert_eq!(
            decode_one(b"TOUCH 0000000000000000\n", &ctx(ClientState::Subscribed)),
            cmd
        );
        assert_eq!(encoded(&cmd), b"TOUCH 0000000000000000\n");
    }

    #[test]
    fn touch_errors() {
        let c = ctx(ClientState::Closing);
        assert_eq!(
            error_text(b"TOUCH 123\n", &c),
            "E_INVALID invalid message ID"
        );
        assert_eq!(
            error_text(b"TOUCH\n", &c),
            "E_INVALID TOUCH insufficient number of params"
        );
        assert_eq!(
            error_text(b"TOUCH 0000000000000000\n", &ctx(ClientState::Init)),
            "E_INVALID cannot TOUCH in current state"
        );
    }
}
