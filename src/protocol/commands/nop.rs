//! NOP: does nothing, in any state; clients send it to answer heartbeats.

use bytes::{BufMut, BytesMut};

use super::{complete_line, Command, Decoded, Line, ParseContext, ParseError};

pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    _ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    complete_line(src, line, Command::Nop)
}

pub(super) fn encode(dst: &mut BytesMut) {
    dst.put_slice(b"NOP\n");
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn golden_nop_in_any_state() {
        for state in [
            ClientState::Init,
            ClientState::Subscribed,
            ClientState::Closing,
        ] {
            assert_eq!(decode_one(b"NOP\n", &ctx(state)), Command::Nop);
        }
        assert_eq!(encoded(&Command::Nop), b"NOP\n");
    }
}
