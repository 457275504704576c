//! The client side of nsqlookupd's TCP protocol V1, as nsqd speaks it: the magic, the
//! command lines it sends, and the `[int32 size][data]` responses it reads. Pure: no IO.
//!
//! (The lookupd daemon has its own server-side V1 code; the two may be merged later.)

use bytes::{Buf, BufMut, BytesMut};
use serde::Deserialize;

/// The four bytes that open every connection to nsqlookupd.
pub const MAGIC_V1: &[u8] = b"  V1";

/// What nsqd tells a lookupd about itself in `IDENTIFY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyInfo {
    /// `--broadcast-address` (default: the OS hostname).
    pub broadcast_address: String,
    /// The OS hostname.
    pub hostname: String,
    /// `--broadcast-http-port`, or the real HTTP port.
    pub http_port: u16,
    /// `--broadcast-tcp-port`, or the real TCP port.
    pub tcp_port: u16,
    /// nsqd's version.
    pub version: String,
}

/// What a lookupd says about itself in answer to `IDENTIFY` (Go's `peerInfo`); its
/// broadcast address and HTTP port are where `/channels` is asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PeerInfo {
    /// The lookupd's TCP port.
    pub tcp_port: i64,
    /// The lookupd's HTTP port.
    pub http_port: i64,
    /// The lookupd's version.
    pub version: String,
    /// The lookupd's broadcast address ("" when it has none).
    pub broadcast_address: String,
}

impl PeerInfo {
    /// Go's `JoinHostPort(broadcast_address, http_port)`; None without an address.
    pub fn http_address(&self) -> Option<String> {
        if self.broadcast_address.is_empty() {
            return None;
        }
        if self.broadcast_address.contains(':') {
            Some(format!("[{}]:{}", self.broadcast_address, self.http_port))
        } else {
            Some(format!("{}:{}", self.broadcast_address, self.http_port))
        }
    }
}

/// One command nsqd sends to a lookupd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupCommand {
    /// `IDENTIFY\n` + size + JSON.
    Identify(IdentifyInfo),
    /// `REGISTER topic [channel]\n`.
    Register {
        /// The topic.
        topic: String,
        /// The channel, if it is a channel registration.
        channel: Option<String>,
    },
    /// `UNREGISTER topic [channel]\n`.
    Unregister {
        /// The topic.
        topic: String,
        /// The channel, if it is a channel registration.
        channel: Option<String>,
    },
    /// `PING\n`.
    Ping,
}

impl LookupCommand {
    /// The exact bytes on the wire.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            LookupCommand::Identify(info) => {
                let body = identify_body(info);
                out.put_slice(b"IDENTIFY\n");
                out.put_u32(body.len() as u32);
                out.put_slice(body.as_bytes());
            }
            LookupCommand::Register { topic, channel } => {
                put_line(out, "REGISTER", topic, channel.as_deref())
            }
            LookupCommand::Unregister { topic, channel } => {
                put_line(out, "UNREGISTER", topic, channel.as_deref())
            }
            LookupCommand::Ping => out.put_slice(b"PING\n"),
        }
    }

    /// The command as a log line (without the IDENTIFY body).
    pub fn describe(&self) -> String {
        match self {
            LookupCommand::Identify(_) => "IDENTIFY".into(),
            LookupCommand::Register { topic, channel } => line("REGISTER", topic, channel),
            LookupCommand::Unregister { topic, channel } => line("UNREGISTER", topic, channel),
            LookupCommand::Ping => "PING".into(),
        }
    }
}

fn line(verb: &str, topic: &str, channel: &Option<String>) -> String {
    match channel {
        Some(channel) => format!("{verb} {topic} {channel}"),
        None => format!("{verb} {topic}"),
    }
}

fn put_line(out: &mut BytesMut, verb: &str, topic: &str, channel: Option<&str>) {
    out.put_slice(verb.as_bytes());
    out.put_u8(b' ');
    out.put_slice(topic.as_bytes());
    if let Some(channel) = channel {
        out.put_u8(b' ');
        out.put_slice(channel.as_bytes());
    }
    out.put_u8(b'\n');
}

/// The IDENTIFY JSON as Go marshals its map: keys sorted, strings HTML-escaped.
pub fn identify_body(info: &IdentifyInfo) -> String {
    format!(
        r#"{{"broadcast_address":{},"hostname":{},"http_port":{},"tcp_port":{},"version":{}}}"#,
        crate::go_json::string(&info.broadcast_address),
        crate::go_json::string(&info.hostname),
        info.http_port,
        info.tcp_port,
        crate::go_json::string(&info.version),
    )
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The size prefix is negative or above the limit (Go's `readResponseBounded`).
    #[error("response body size ({size}) is greater than limit ({limit})")]
    TooBig {
        /// The announced size.
        size: i64,
        /// `--max-body-size`.
        limit: i64,
    },
}

/// Takes one `[int32 size][data]` response off `buf`: `Ok(None)` while more bytes are
/// needed. Nothing is allocated for a size above `limit`.
pub fn decode_response(buf: &mut BytesMut, limit: i64) -> Result<Option<Vec<u8>>, ResponseError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i64::from(i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
    if size > limit || size < 0 {
        return Err(ResponseError::TooBig { size, limit });
    }
    let total = 4 + size as usize;
    if buf.len() < total {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size as usize).to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(command: LookupCommand) -> Vec<u8> {
        let mut out = BytesMut::new();
        command.encode(&mut out);
        out.to_vec()
    }

    /// golden/lookupd.txt PART 1, with <HOST> = "vm" and 5-digit ports: body size 95.
    #[test]
    fn identify_matches_the_golden_bytes() {
        let info = IdentifyInfo {
            broadcast_address: "vm".into(),
            hostname: "vm".into(),
            http_port: 41511,
            tcp_port: 41501,
            version: "1.3.0".into(),
        };
        let body = br#"{"broadcast_address":"vm","hostname":"vm","http_port":41511,"tcp_port":41501,"version":"1.3.0"}"#;
        assert_eq!(body.len(), 95);
        let mut want = b"IDENTIFY\n\x00\x00\x00_".to_vec();
        want.extend_from_slice(body);
        assert_eq!(encoded(LookupCommand::Identify(info)), want);
    }

    #[test]
    fn identify_escapes_strings_as_go() {
        let info = IdentifyInfo {
            broadcast_address: "a<b>&\"".into(),
            hostname: "h\n".into(),
            http_port: 1,
            tcp_port: 2,
            version: "1.3.0".into(),
        };
        assert_eq!(
            identify_body(&info),
            r#"{"broadcast_address":"a\u003cb\u003e\u0026\"","hostname":"h\n","http_port":1,"tcp_port":2,"version":"1.3.0"}"#
        );
    }

    #[test]
    fn command_lines_match_the_golden_bytes() {
        let reg = |topic: &str, channel: Option<&str>| LookupCommand::Register {
            topic: topic.into(),
            channel: channel.map(str::to_string),
        };
        let unreg = |topic: &str, channel: Option<&str>| LookupCommand::Unregister {
            topic: topic.into(),
            channel: channel.map(str::to_string),
        };
        assert_eq!(encoded(reg("golden", None)), b"REGISTER golden\n");
        assert_eq!(encoded(reg("golden", Some("ch"))), b"REGISTER golden ch\n");
        assert_eq!(
            encoded(unreg("golden", Some("ch"))),
            b"UNREGISTER golden ch\n"
        );
        assert_eq!(encoded(unreg("golden", None)), b"UNREGISTER golden\n");
        assert_eq!(encoded(LookupCommand::Ping), b"PING\n");
        assert_eq!(reg("t", Some("c")).describe(), "REGISTER t c");
    }

    #[test]
    fn responses_are_size_prefixed_and_bounded() {
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x02OK\x00\x00"[..]);
        assert_eq!(decode_response(&mut buf, 100), Ok(Some(b"OK".to_vec())));
        assert_eq!(decode_response(&mut buf, 100), Ok(None));
        buf.extend_from_slice(b"\x00\x1f");
        assert_eq!(decode_response(&mut buf, 100), Ok(None));
        buf.extend_from_slice(b"E_INVALID cannot IDENTIFY again");
        assert_eq!(
            decode_response(&mut buf, 100),
            Ok(Some(b"E_INVALID cannot IDENTIFY again".to_vec()))
        );
        let mut big = BytesMut::from(&b"\x00\x00\x01\x00"[..]);
        assert_eq!(
            decode_response(&mut big, 255),
            Err(ResponseError::TooBig {
                size: 256,
                limit: 255
            })
        );
        let mut negative = BytesMut::from(&b"\xff\xff\xff\xff"[..]);
        assert!(decode_response(&mut negative, 255).is_err());
    }

    #[test]
    fn peer_info_parses_the_golden_answer_and_joins_host_port() {
        let answer = br#"{"broadcast_address":"vm","hostname":"vm","http_port":41611,"tcp_port":41601,"version":"1.3.0"}"#;
        let info: PeerInfo = serde_json::from_slice(answer).unwrap();
        assert_eq!(info.http_address().as_deref(), Some("vm:41611"));
        assert_eq!(info.tcp_port, 41601);
        let v6 = PeerInfo {
            broadcast_address: "::1".into(),
            http_port: 4161,
            ..PeerInfo::default()
        };
        assert_eq!(v6.http_address().as_deref(), Some("[::1]:4161"));
        assert_eq!(PeerInfo::default().http_address(), None);
    }
}
