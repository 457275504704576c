//! FIN <id>: the subscriber finished a message.

use bytes::{Buf, BufMut, BytesMut};

use super::{
    complete_line, in_flight_id, ClientState, Command, Decoded, Line, MessageId, ParseContext,
    ParseError,
};

/// Bytes of `FIN <16-byte id>\n`.
const FIN_LINE_LEN: usize = 21;

/// The common case, `FIN <16-byte id>\n` exactly in a state that may FIN, decoded (and
/// consumed) without the general line split; a consumer sends thousands per read.
/// `None` when anything differs: the general parser then decides, with Go's errors. For
/// the lines it accepts it gives what the general parser gives: the id holds no `' '`
/// or `'\n'` (which would split or end the line) and does not end in the `'\r'` a CRLF
/// line ending would strip.
pub(super) fn fast(src: &mut BytesMut, ctx: &ParseContext<'_>) -> Option<Command> {
    let line = src.get(..FIN_LINE_LEN)?;
    if &line[..4] != b"FIN " || line[FIN_LINE_LEN - 1] != b'\n' {
        return None;
    }
    let raw_id = &line[4..FIN_LINE_LEN - 1];
    if raw_id.iter().any(|&b| b == b' ' || b == b'\n') || raw_id.last() == Some(&b'\r') {
        return None;
    }
    if ctx.tls_pending || !matches!(ctx.state, ClientState::Subscribed | ClientState::Closing) {
        return None;
    }
    let id = MessageId::from_slice(raw_id)?;
    src.advance(FIN_LINE_LEN);
    Some(Command::Fin { id })
}

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

    /// Found by the `v2_command` fuzz target (`fuzz/regressions/v2_command/`): an ID whose
    /// last byte is '\r' is whole when more parameters follow (Go strips only the line's
    /// last '\r'), so it decodes, but its encoding (`FIN <id>\n`) cannot come back.
    #[test]
    fn an_id_ending_in_cr_is_whole_only_before_more_params() {
        let id = *b"0\xff00otiation\"\r\r\r";
        let c = ctx(ClientState::Subscribed);
        let mut wire = b"FIN ".to_vec();
        wire.extend_from_slice(&id);
        wire.extend_from_slice(b"      \n");
        assert_eq!(decode_one(&wire, &c), Command::Fin { id: MessageId(id) });
        let again = encoded(&Command::Fin { id: MessageId(id) });
        assert_eq!(error_text(&again, &c), "E_INVALID invalid message ID");
    }

    /// The fast path decodes exactly what the general parser decodes, and leaves
    /// everything else to it.
    #[test]
    fn fast_path_agrees_with_the_general_parser() {
        let id = b"0123456789abcdef";
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        let line = |id: &[u8], end: &[u8]| [b"FIN ".as_slice(), id, end].concat();
        inputs.push(line(id, b"\n"));
        inputs.push(line(id, b"\nFIN 0123456789abcdef\n"));
        inputs.push(line(id, b"\r\n"));
        inputs.push(line(id, b""));
        inputs.push(line(id, b" extra\n"));
        inputs.push(line(b"0123456789abcde\r", b"\n"));
        inputs.push(line(b"0123456 89abcdef", b"\n"));
        inputs.push(line(b"0123456\n89abcdef", b"\n"));
        inputs.push(line(b"\r123456789abcdef", b"\n"));
        inputs.push(line(b"\xff\x00\t3456789abcdef", b"\n"));
        inputs.push(line(b"0123456789abcdefg", b"\n"));
        inputs.push(b"FINX0123456789abcdef\n".to_vec());
        inputs.push(b"fin 0123456789abcdef\n".to_vec());
        let states = [
            ClientState::Init,
            ClientState::Connected,
            ClientState::Subscribed,
            ClientState::Closing,
        ];
        for input in &inputs {
            for state in states {
                for tls_pending in [false, true] {
                    let mut c = ctx(state);
                    c.tls_pending = tls_pending;
                    let mut fast_buf = BytesMut::from(&input[..]);
                    let mut general_buf = BytesMut::from(&input[..]);
                    let fast = decode(&mut fast_buf, &c);
                    let general = decode_general(&mut general_buf, &c);
                    assert_eq!(fast, general, "{:?} {state:?} {tls_pending}", input);
                    assert_eq!(fast_buf, general_buf, "same bytes consumed");
                }
            }
        }
        let mut buf = BytesMut::from(&line(id, b"\n")[..]);
        assert!(super::fast(&mut buf, &ctx(ClientState::Subscribed)).is_some());
        assert!(buf.is_empty());
    }
}
