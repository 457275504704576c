//! SUB <topic> <channel>: subscribe this connection to one channel.

use bytes::{BufMut, BytesMut};

use super::{
    bad_topic, complete_line, go_quote, valid_name, ClientState, Command, Decoded, ErrorCode, Line,
    ParseContext, ParseError,
};

pub(super) fn parse(
    line: &Line,
    src: &mut BytesMut,
    ctx: &ParseContext<'_>,
) -> Result<Decoded, ParseError> {
    if ctx.state != ClientState::Init {
        return Err(ParseError::invalid("cannot SUB in current state"));
    }
    if !ctx.heartbeats_enabled {
        return Err(ParseError::invalid("cannot SUB with heartbeats disabled"));
    }
    if line.count < 3 {
        return Err(ParseError::invalid("SUB insufficient number of parameters"));
    }
    let raw_topic = line.param(src, 1);
    let topic = valid_name(raw_topic).ok_or_else(|| bad_topic("SUB", raw_topic))?;
    let raw_channel = line.param(src, 2);
    let channel = valid_name(raw_channel).ok_or_else(|| {
        ParseError::new(
            ErrorCode::BadChannel,
            format!("SUB channel name {} is not valid", go_quote(raw_channel)),
        )
    })?;
    let cmd = Command::Sub {
        topic: topic.to_owned(),
        channel: channel.to_owned(),
    };
    complete_line(src, line, cmd)
}

pub(super) fn encode(dst: &mut BytesMut, topic: &str, channel: &str) {
    dst.reserve(6 + topic.len() + channel.len());
    dst.put_slice(b"SUB ");
    dst.put_slice(topic.as_bytes());
    dst.put_u8(b' ');
    dst.put_slice(channel.as_bytes());
    dst.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn golden_sub_ok() {
        let cmd = Command::Sub {
            topic: "golden".into(),
            channel: "ch".into(),
        };
        assert_eq!(decode_one(b"SUB golden ch\n", &ctx(ClientState::Init)), cmd);
        assert_eq!(encoded(&cmd), b"SUB golden ch\n");
    }

    #[test]
    fn golden_sub_errors() {
        let c = ctx(ClientState::Init);
        assert_eq!(
            error_text(b"SUB golden ch\n", &ctx(ClientState::Subscribed)),
            "E_INVALID cannot SUB in current state"
        );
        assert_eq!(
            error_text(b"SUB golden bad!ch\n", &c),
            "E_BAD_CHANNEL SUB channel name \"bad!ch\" is not valid"
        );
        assert_eq!(
            error_text(b"SUB bad!topic ch\n", &c),
            "E_BAD_TOPIC SUB topic name \"bad!topic\" is not valid"
        );
        assert_eq!(
            error_text(b"SUB golden\n", &c),
            "E_INVALID SUB insufficient number of parameters"
        );
        let mut no_heartbeats = ctx(ClientState::Init);
        no_heartbeats.heartbeats_enabled = false;
        assert_eq!(
            error_text(b"SUB golden ch\n", &no_heartbeats),
            "E_INVALID cannot SUB with heartbeats disabled"
        );
    }

    #[test]
    fn state_is_checked_before_heartbeats_and_params() {
        let mut c = ctx(ClientState::Subscribed);
        c.heartbeats_enabled = false;
        assert_eq!(
            error_text(b"SUB\n", &c),
            "E_INVALID cannot SUB in current state"
        );
        c.state = ClientState::Init;
        assert_eq!(
            error_text(b"SUB\n", &c),
            "E_INVALID cannot SUB with heartbeats disabled"
        );
    }
}
