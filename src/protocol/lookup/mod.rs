//! Pure, IO-free nsqlookupd TCP protocol V1 (nsq-reference §5.2): the magic, command
//! lines, the IDENTIFY body, the response framing and the errors.
//!
//! The connection code in `crate::lookupd` reads bytes and hands them here; nothing in
//! this module touches a socket or a clock, so every rule is unit-tested.
//!
//! Framing differs from V2: a response is `[int32 BE size][data]` with no frame type, and
//! an error is the same frame holding `"<CODE> <description>"`.

use serde::Deserialize;

use super::names::{is_valid_channel_name, is_valid_topic_name};

/// The 4 bytes a V1 client sends first.
pub const MAGIC_V1: &[u8; 4] = b"  V1";

/// The answer (then a close) to any other magic.
pub const BAD_PROTOCOL: &str = "E_BAD_PROTOCOL";

/// The longest command line read; Go reads lines without a bound, we refuse longer ones
/// (the longest valid line is `UNREGISTER <64> <64>`, far below this).
pub const LINE_LENGTH_MAX: usize = 4096;

/// The largest IDENTIFY body accepted. Go lookupd allocates whatever size the peer
/// announces; nsqd's default `--max-body-size` (5 MiB) bounds it here, as nsqd bounds its
/// own IDENTIFY.
pub const IDENTIFY_BODY_SIZE_MAX: i32 = 5 * 1024 * 1024;

/// The `OK` answer of REGISTER, UNREGISTER and PING.
pub const OK: &[u8] = b"OK";

/// A V1 error: its code, its text, sent as `"<code> <desc>"` in a response frame. Every
/// lookupd error is fatal (Go's `FatalClientErr`): the connection closes after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {desc}")]
pub struct LookupError {
    /// `E_INVALID`, `E_BAD_BODY`, `E_BAD_TOPIC` or `E_BAD_CHANNEL`.
    pub code: &'static str,
    /// The description after the code.
    pub desc: String,
}

impl LookupError {
    fn new(code: &'static str, desc: impl Into<String>) -> Self {
        LookupError {
            code,
            desc: desc.into(),
        }
    }

    /// `E_INVALID <desc>`.
    pub fn invalid(desc: impl Into<String>) -> Self {
        Self::new("E_INVALID", desc)
    }

    /// `E_BAD_BODY <desc>`.
    pub fn bad_body(desc: impl Into<String>) -> Self {
        Self::new("E_BAD_BODY", desc)
    }

    /// The frame sent to the peer.
    pub fn to_frame(&self) -> Vec<u8> {
        frame(self.to_string().as_bytes())
    }
}

/// One command line, parsed. IDENTIFY's body follows the line and is read separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `PING`: `OK`, and the peer's last update moves to now when it has identified.
    Ping,
    /// `IDENTIFY`, followed by `[int32 size][JSON]`.
    Identify,
    /// `REGISTER topic [channel]`, its parameters unchecked: Go checks IDENTIFY first
    /// (see [`TopicChannel::parse`]).
    Register(Vec<String>),
    /// `UNREGISTER topic [channel]`, its parameters unchecked.
    Unregister(Vec<String>),
}

/// The topic (and maybe channel) of REGISTER and UNREGISTER, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicChannel {
    /// A valid topic name.
    pub topic: String,
    /// A valid channel name, or none for a topic-only (un)registration.
    pub channel: Option<String>,
}

/// Parses one command line (without or with its `\n`) as Go does: whitespace-trimmed,
/// split on single spaces. Errors are Go's, all fatal.
pub fn parse_line(line: &[u8]) -> Result<Command, LookupError> {
    let text = String::from_utf8_lossy(line);
    let params: Vec<&str> = text.trim().split(' ').collect();
    let (name, args) = match params.split_first() {
        Some((name, args)) => (*name, args),
        None => ("", &[][..]),
    };
    match name {
        "PING" => Ok(Command::Ping),
        "IDENTIFY" => Ok(Command::Identify),
        "REGISTER" => Ok(Command::Register(owned(args))),
        "UNREGISTER" => Ok(Command::Unregister(owned(args))),
        other => Err(LookupError::invalid(format!("invalid command {other}"))),
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

impl TopicChannel {
    /// Go's `getTopicChan` for `command` (REGISTER or UNREGISTER): a topic is required, a
    /// channel is optional; names are quoted with single quotes in the errors.
    pub fn parse(command: &str, args: &[String]) -> Result<TopicChannel, LookupError> {
        topic_channel(command, args)
    }
}

fn topic_channel(command: &str, args: &[String]) -> Result<TopicChannel, LookupError> {
    let Some((topic, rest)) = args.split_first() else {
        return Err(LookupError::invalid(format!(
            "{command} insufficient number of params"
        )));
    };
    let channel = rest.first().map(String::as_str).unwrap_or("");
    if !is_valid_topic_name(topic) {
        return Err(LookupError::new(
            "E_BAD_TOPIC",
            format!("{command} topic name '{topic}' is not valid"),
        ));
    }
    if !channel.is_empty() && !is_valid_channel_name(channel) {
        return Err(LookupError::new(
            "E_BAD_CHANNEL",
            format!("{command} channel name '{channel}' is not valid"),
        ));
    }
    Ok(TopicChannel {
        topic: topic.to_string(),
        channel: (!channel.is_empty()).then(|| channel.to_string()),
    })
}

/// Checks the IDENTIFY body size read after the line; the error is fatal.
pub fn check_identify_size(size: i32) -> Result<usize, LookupError> {
    if size > IDENTIFY_BODY_SIZE_MAX {
        return Err(LookupError::bad_body(format!(
            "IDENTIFY body too big {size} > {IDENTIFY_BODY_SIZE_MAX}"
        )));
    }
    usize::try_from(size)
        .map_err(|_| LookupError::bad_body(format!("IDENTIFY invalid body size {size}")))
}

/// What a producer (an nsqd) says about itself in IDENTIFY. Fields Go's `PeerInfo` does
/// not know are ignored, as Go's JSON decoder ignores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct IdentifyBody {
    /// Where clients reach the producer.
    pub broadcast_address: String,
    /// The producer's hostname.
    pub hostname: String,
    /// The producer's TCP port.
    pub tcp_port: i64,
    /// The producer's HTTP port.
    pub http_port: i64,
    /// The producer's version.
    pub version: String,
}

/// Decodes and checks an IDENTIFY body: Go's two errors, both fatal.
pub fn parse_identify(body: &[u8]) -> Result<IdentifyBody, LookupError> {
    // Go decodes `null` into an untouched struct, which then lacks every field.
    let info: Option<IdentifyBody> = serde_json::from_slice(body)
        .map_err(|_| LookupError::bad_body("IDENTIFY failed to decode JSON body"))?;
    let info = info.unwrap_or_default();
    if info.broadcast_address.is_empty()
        || info.tcp_port == 0
        || info.http_port == 0
        || info.version.is_empty()
    {
        return Err(LookupError::bad_body("IDENTIFY missing fields"));
    }
    Ok(info)
}

/// The lookupd's answer to IDENTIFY: its own ports, version and names, with the keys in
/// alphabetical order as Go's map encoding writes them.
pub fn identify_response(
    broadcast_address: &str,
    hostname: &str,
    http_port: u16,
    tcp_port: u16,
    version: &str,
) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        broadcast_address: &'a str,
        hostname: &'a str,
        http_port: u16,
        tcp_port: u16,
        version: &'a str,
    }
    serde_json::to_vec(&Answer {
        broadcast_address,
        hostname,
        http_port,
        tcp_port,
        version,
    })
    .unwrap_or_else(|_| OK.to_vec())
}

/// A response frame: `[int32 BE size][data]`.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + data.len());
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_text(line: &str) -> String {
        match parse_line(line.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(Command::Register(args)) => TopicChannel::parse("REGISTER", &args)
                .unwrap_err()
                .to_string(),
            Ok(Command::Unregister(args)) => TopicChannel::parse("UNREGISTER", &args)
                .unwrap_err()
                .to_string(),
            Ok(other) => panic!("{other:?} parsed"),
        }
    }

    #[test]
    fn commands_parse_after_trimming() {
        assert_eq!(parse_line(b"  PING \r\n").unwrap(), Command::Ping);
        assert_eq!(parse_line(b"IDENTIFY\n").unwrap(), Command::Identify);
        let Command::Register(args) = parse_line(b"REGISTER t1 c1\n").unwrap() else {
            panic!("not REGISTER")
        };
        assert_eq!(
            TopicChannel::parse("REGISTER", &args).unwrap(),
            TopicChannel {
                topic: "t1".into(),
                channel: Some("c1".into())
            }
        );
        let Command::Unregister(args) = parse_line(b"UNREGISTER t1").unwrap() else {
            panic!("not UNREGISTER")
        };
        assert_eq!(
            TopicChannel::parse("UNREGISTER", &args).unwrap(),
            TopicChannel {
                topic: "t1".into(),
                channel: None
            }
        );
    }

    #[test]
    fn errors_are_gos_texts() {
        assert_eq!(error_text("FOO\n"), "E_INVALID invalid command FOO");
        assert_eq!(error_text("\n"), "E_INVALID invalid command ");
        assert_eq!(
            error_text("REGISTER\n"),
            "E_INVALID REGISTER insufficient number of params"
        );
        assert_eq!(
            error_text("REGISTER bad!topic\n"),
            "E_BAD_TOPIC REGISTER topic name 'bad!topic' is not valid"
        );
        assert_eq!(
            error_text("UNREGISTER t1 bad!ch\n"),
            "E_BAD_CHANNEL UNREGISTER channel name 'bad!ch' is not valid"
        );
        // Split on single spaces: a double space makes an empty topic.
        assert_eq!(
            error_text("REGISTER  t1"),
            "E_BAD_TOPIC REGISTER topic name '' is not valid"
        );
    }

    #[test]
    fn identify_body_rules() {
        let good = br#"{"broadcast_address":"h","hostname":"h","http_port":1,"tcp_port":2,"version":"1.3.0","x":1}"#;
        let info = parse_identify(good).unwrap();
        assert_eq!((info.tcp_port, info.http_port), (2, 1));
        assert_eq!(
            parse_identify(b"null").unwrap_err().to_string(),
            "E_BAD_BODY IDENTIFY missing fields"
        );
        assert_eq!(
            parse_identify(br#"{"hostname":"h"}"#)
                .unwrap_err()
                .to_string(),
            "E_BAD_BODY IDENTIFY missing fields"
        );
        for bad in [&b"{bad"[..], b"", b"[1]", br#"{"tcp_port":"1"}"#] {
            assert_eq!(
                parse_identify(bad).unwrap_err().to_string(),
                "E_BAD_BODY IDENTIFY failed to decode JSON body"
            );
        }
    }

    #[test]
    fn identify_sizes_are_bounded() {
        assert_eq!(check_identify_size(95).unwrap(), 95);
        assert_eq!(check_identify_size(0).unwrap(), 0);
        assert_eq!(
            check_identify_size(-1).unwrap_err().to_string(),
            "E_BAD_BODY IDENTIFY invalid body size -1"
        );
        assert!(check_identify_size(IDENTIFY_BODY_SIZE_MAX + 1)
            .unwrap_err()
            .to_string()
            .starts_with("E_BAD_BODY IDENTIFY body too big"));
    }

    #[test]
    fn frames_and_answers_match_the_golden_bytes() {
        assert_eq!(frame(OK), b"\x00\x00\x00\x02OK");
        assert_eq!(
            LookupError::invalid("cannot IDENTIFY again").to_frame(),
            b"\x00\x00\x00\x1fE_INVALID cannot IDENTIFY again"
        );
        assert_eq!(
            identify_response("vm", "vm", 4161, 4160, "1.3.0"),
            br#"{"broadcast_address":"vm","hostname":"vm","http_port":4161,"tcp_port":4160,"version":"1.3.0"}"#
        );
    }
}
