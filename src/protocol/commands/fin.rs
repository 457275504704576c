//! FIN <id>: the subscriber finished a message.

use bytes::{BufMut, BytesMut};

use super::{
    complete_line, in_flight_id, Command, Decoded, Line, MessageId, ParseContext, ParseError,
};

pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    let id = in_flight_id("FIN", 2, line, src, ctx)?;
    complete_line(src, line, Command::Fin { id })
}

pub(super) fn encode(dst: &mut BytesMut, id: &MessageId) {
    dst.reserve(21);
    dst.put_slice(b"FIN ");
    dst.put_slice(id.as_bytes());
    dst.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn golden_fin_ok_when_subscribed_or_closing() {
        let cmd = Command::Fin {
            id: MessageId(*b"0000000000000000"),
        };
        for state in [ClientState::Subscribed, ClientState::Closing] {
            assert_eq!(decode_one(b"FIN 0000000000000000\n", &ctx(state)), cmd);
        }
        assert_eq!(encoded(&cmd), b"FIN 0000000000000000\n");
    }

    #[test]
    fn golden_fin_errors() {
        let c = ctx(ClientState::Subscribed);
        assert_eq!(error_text(b"FIN abc\n", &c), "E_INVALID invalid message ID");
        assert_eq!(
            error_text(b"FIN 0000000000000000\n", &ctx(ClientState::Init)),
            "E_INVALID cannot FIN in current state"
        );
        assert_eq!(
            error_text(b"FIN\n", &c),
            "E_INVALID FIN insufficient number of params"
        );
    }
}
