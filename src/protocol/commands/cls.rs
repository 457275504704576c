//! CLS: a subscriber asks to stop receiving; nsqd answers CLOSE_WAIT.

use bytes::{BufMut, BytesMut};

use super::{complete_line, ClientState, Command, Decoded, Line, ParseContext, ParseError};

pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    if ctx.state != ClientState::Subscribed {
        return Err(ParseError::invalid("cannot CLS in current state"));
    }
    complete_line(src, line, Command::Cls)
}

pub(super) fn encode(dst: &mut BytesMut) {
    dst.put_slice(b"CLS\n");
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn golden_cls_only_when_subscribed() {
        assert_eq!(
            decode_one(b"CLS\n", &ctx(ClientState::Subscribed)),
            Command::Cls
        );
        assert_eq!(
            error_text(b"CLS\n", &ctx(ClientState::Init)),
            "E_INVALID cannot CLS in current state"
        );
        assert_eq!(
            error_text(b"CLS\n", &ctx(ClientState::Closing)),
            "E_INVALID cannot CLS in current state"
        );
        assert_eq!(encoded(&Command::Cls), b"CLS\n");
    }
}
