//! AUTH: a size-prefixed secret the connection sends to the auth server.

use bytes::{BufMut, BytesMut};

use super::{
    checked_body, put_sized, ClientState, Command, Decoded, Line, ParseContext, ParseError,
};

/// The checks up to reading the body; "already set", "disabled" and the auth server's
/// answer are the connection's.
pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    if ctx.state != ClientState::Init {
        return Err(ParseError::invalid("cannot AUTH in current state"));
    }
    if line.count != 1 {
        return Err(ParseError::invalid("AUTH invalid number of parameters"));
    }
    let secret = match checked_body("AUTH", line, src, ctx.limits.max_body_size)? {
        Ok(secret) => secret,
        Err(incomplete) => return Ok(incomplete),
    };
    Ok(Decoded::Complete(Command::Auth { secret }))
}

pub(super) fn encode(dst: &mut BytesMut, secret: &[u8]) {
    dst.reserve(9 + secret.len());
    dst.put_slice(b"AUTH\n");
    put_sized(dst, secret);
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn decodes_the_secret() {
        let cmd = Command::Auth {
            secret: Bytes::from_static(b"s3cret"),
        };
        assert_eq!(encoded(&cmd), b"AUTH\n\x00\x00\x00\x06s3cret");
        assert_eq!(decode_one(&encoded(&cmd), &ctx(ClientState::Init)), cmd);
        assert_eq!(
            needed(b"AUTH\n\x00\x00\x00\x06s3", &ctx(ClientState::Init)),
            15
        );
    }

    #[test]
    fn errors_in_go_order() {
        let c = ctx(ClientState::Init);
        assert_eq!(
            error_text(b"AUTH\n", &ctx(ClientState::Subscribed)),
            "E_INVALID cannot AUTH in current state"
        );
        assert_eq!(
            error_text(b"AUTH x\n", &c),
            "E_INVALID AUTH invalid number of parameters"
        );
        assert_eq!(
            error_text(b"AUTH\n\x00P\x00\x01", &c),
            "E_BAD_BODY AUTH body too big 5242881 > 5242880"
        );
        assert_eq!(
            error_text(b"AUTH\n\x00\x00\x00\x00", &c),
            "E_BAD_BODY AUTH invalid body size 0"
        );
    }
}
