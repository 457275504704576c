//! V2 client commands: one file per command, each with its parser (Go's checks in Go's
//! order) and its client-side encoder. [`decode`] splits the command line and dispatches.
//!
//! Nothing is consumed until a whole command is buffered, and every length is checked
//! against the configured maximum before the parser asks for the bytes behind it, so a
//! connection never reserves more than `max_body_size` (or `max_msg_size`) plus a line.

mod auth;
mod cls;
mod dpub;
mod fin;
mod identify;
mod mpub;
mod nop;
mod publish;
mod rdy;
mod req;
mod sub;
mod touch;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{ErrorCode, ProtocolError};
use super::message::MessageId;
use super::names::{go_quote, is_valid_name};

/// A connection's state, numbered as in Go (the number shows up in client stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Init = 0,
    Disconnected = 1,
    Connected = 2,
    Subscribed = 3,
    Closing = 4,
}

/// The daemon limits the parser enforces (nsqd flags; timeouts in ms).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_size: i64,
    pub max_msg_size: i64,
    pub max_rdy_count: i64,
    pub max_req_timeout_ms: i64,
}

/// Go's bufio default: a longer line closes the connection.
pub const MAX_LINE_LENGTH: usize = 16 * 1024;

/// Per-connection facts the parser needs to report Go's error in Go's order.
#[derive(Debug, Clone)]
pub struct ParseContext<'a> {
    pub state: ClientState,
    pub limits: &'a Limits,
    pub heartbeats_enabled: bool,
    /// `--tls-required` is on and the connection has not upgraded yet.
    pub tls_pending: bool,
}

/// One decoded client command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Raw JSON; the connection calls `identify::negotiate`.
    Identify {
        body: Bytes,
    },
    Auth {
        secret: Bytes,
    },
    Sub {
        topic: String,
        channel: String,
    },
    /// Already range-checked 0..=max_rdy_count. (RDY in state closing, which Go ignores
    /// without parsing it, decodes as [`Command::Nop`].)
    Rdy {
        count: i64,
    },
    Fin {
        id: MessageId,
    },
    /// `timeout_ms` is already clamped to 0..=max_req_timeout_ms.
    Req {
        id: MessageId,
        timeout_ms: i64,
    },
    Touch {
        id: MessageId,
    },
    Cls,
    Nop,
    Pub {
        topic: String,
        body: Bytes,
    },
    Mpub {
        topic: String,
        bodies: Vec<Bytes>,
    },
    /// `defer_ms` is already range-checked 0..=max_req_timeout_ms.
    Dpub {
        topic: String,
        defer_ms: i64,
        body: Bytes,
    },
}

/// The outcome of [`decode`] when the bytes are acceptable so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Complete(Command),
    /// need at least this many buffered bytes in total
    Incomplete {
        needed: usize,
    },
}

/// A parse failure; `mpub_topic` is set when Go would already have created the MPUB's topic
/// (it calls GetTopic before reading the body), so the connection creates it too. Go checks
/// auth before that, so with auth on the connection checks it first and reports an auth
/// failure instead (and creates nothing).
/// `close_silently` is set for a line longer than MAX_LINE_LENGTH (Go closes without an error frame).
/// Every parse error is fatal; `src` is left as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub error: ProtocolError,
    pub mpub_topic: Option<String>,
    pub close_silently: bool,
}

impl ParseError {
    fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        ParseError {
            error: ProtocolError::new(code, description),
            mpub_topic: None,
            close_silently: false,
        }
    }

    fn invalid(description: impl Into<String>) -> Self {
        ParseError::new(ErrorCode::Invalid, description)
    }
}

/// Decodes one command from the front of `src`, consuming it (bodies are zero-copy slices of `src`'s
/// bytes, via split_to().freeze()). Consumes nothing on Incomplete. Never reserves or allocates
/// past the configured maximum sizes: lengths are checked before waiting for the bytes.
/// Line: up to '\n', trailing '\r' stripped, split on single ' ' (b"a  b" has an empty param like Go's bytes.Split).
/// Order of checks is Go's: IDENTIFY first bypasses the TLS check; then if ctx.tls_pending any other command
/// is E_INVALID "cannot <CMD> in current state (TLS required)"; then per command exactly as Go's protocol_v2.go
/// (state checks, then params, then names, then lengths). Unknown → E_INVALID "invalid command <X>".
pub fn decode(src: &mut BytesMut, ctx: &ParseContext<'_>) -> Result<Decoded, ParseError> {
    if let Some(command) = fin::fast(src, ctx) {
        return Ok(Decoded::Complete(command));
    }
    decode_general(src, ctx)
}

/// [`decode`] without the FIN fast path.
fn decode_general(src: &mut BytesMut, ctx: &ParseContext<'_>) -> Result<Decoded, ParseError> {
    let line = match Line::find(src) {
        Some(line) => line,
        None if src.len() >= MAX_LINE_LENGTH => return Err(line_too_long()),
        None => {
            return Ok(Decoded::Incomplete {
                needed: src.len() + 1,
            })
        }
    };
    let name = line.param(src, 0);
    if name == b"IDENTIFY" {
        return identify::parse(&line, src, ctx);
    }
    if ctx.tls_pending {
        return Err(ParseError::invalid(format!(
            "cannot {} in current state (TLS required)",
            String::from_utf8_lossy(name)
        )));
    }
    match name {
        b"FIN" => fin::parse(&line, src, ctx),
        b"RDY" => rdy::parse(&line, src, ctx),
        b"REQ" => req::parse(&line, src, ctx),
        b"PUB" => publish::parse(&line, src, ctx),
        b"MPUB" => mpub::parse(&line, src, ctx),
        b"DPUB" => dpub::parse(&line, src, ctx),
        b"NOP" => nop::parse(&line, src, ctx),
        b"TOUCH" => touch::parse(&line, src, ctx),
        b"SUB" => sub::parse(&line, src, ctx),
        b"CLS" => cls::parse(&line, src, ctx),
        b"AUTH" => auth::parse(&line, src, ctx),
        other => Err(ParseError::invalid(format!(
            "invalid command {}",
            String::from_utf8_lossy(other)
        ))),
    }
}

fn line_too_long() -> ParseError {
    ParseError {
        error: ProtocolError::new(
            ErrorCode::Invalid,
            "failed to read command - bufio: buffer full",
        ),
        mpub_topic: None,
        close_silently: true,
    }
}

impl Command {
    /// Client side: the wire bytes of this command (line + body), used by our client, bench and tests.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Command::Identify { body } => identify::encode(dst, body),
            Command::Auth { secret } => auth::encode(dst, secret),
            Command::Sub { topic, channel } => sub::encode(dst, topic, channel),
            Command::Rdy { count } => rdy::encode(dst, *count),
            Command::Fin { id } => fin::encode(dst, id),
            Command::Req { id, timeout_ms } => req::encode(dst, id, *timeout_ms),
            Command::Touch { id } => touch::encode(dst, id),
            Command::Cls => cls::encode(dst),
            Command::Nop => nop::encode(dst),
            Command::Pub { topic, body } => publish::encode(dst, topic, body),
            Command::Mpub { topic, bodies } => mpub::encode(dst, topic, bodies),
            Command::Dpub {
                topic,
                defer_ms,
                body,
            } => dpub::encode(dst, topic, *defer_ms, body),
        }
    }

    /// The command's name as on the wire ("PUB", ...).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Identify { .. } => "IDENTIFY",
            Command::Auth { .. } => "AUTH",
            Command::Sub { .. } => "SUB",
            Command::Rdy { .. } => "RDY",
            Command::Fin { .. } => "FIN",
            Command::Req { .. } => "REQ",
            Command::Touch { .. } => "TOUCH",
            Command::Cls => "CLS",
            Command::Nop => "NOP",
            Command::Pub { .. } => "PUB",
            Command::Mpub { .. } => "MPUB",
            Command::Dpub { .. } => "DPUB",
        }
    }
}

/// Parameters kept per line; no command reads past the third.
const KEPT_PARAMS: usize = 4;

/// A buffered command line, as ranges into the buffer so the parser can still consume it.
struct Line {
    /// Bytes up to and including the '\n'.
    len: usize,
    /// How many parameters `bytes.Split(line, " ")` would return (at least 1).
    count: usize,
    kept: [(usize, usize); KEPT_PARAMS],
}

impl Line {
    /// The first line in `src`, if its '\n' is within MAX_LINE_LENGTH bytes.
    fn find(src: &[u8]) -> Option<Line> {
        let window = &src[..src.len().min(MAX_LINE_LENGTH)];
        let newline = window.iter().position(|&b| b == b'\n')?;
        let mut end = newline;
        if end > 0 && src[end - 1] == b'\r' {
            end -= 1;
        }
        let mut line = Line {
            len: newline + 1,
            count: 0,
            kept: [(0, 0); KEPT_PARAMS],
        };
        let mut start = 0;
        for (i, &b) in src[..end].iter().enumerate() {
            if b == b' ' {
                line.push(start, i);
                start = i + 1;
            }
        }
        line.push(start, end);
        Some(line)
    }

    fn push(&mut self, start: usize, end: usize) {
        if self.count < KEPT_PARAMS {
            self.kept[self.count] = (start, end);
        }
        self.count += 1;
    }

    /// Parameter `i` (0 is the command name); empty if there is none.
    fn param<'a>(&self, src: &'a [u8], i: usize) -> &'a [u8] {
        if i >= self.count.min(KEPT_PARAMS) {
            return &[];
        }
        let (start, end) = self.kept[i];
        &src[start..end]
    }
}

/// Go's `protocol.ByteToBase10`: digits only (so no sign), empty is 0, wrapping on overflow.
fn byte_to_base10(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
    })
}

/// A ms value from the wire as Go turns it into a time.Duration: ns, wrapping.
fn ms_to_ns_wrapping(ms: u64) -> i64 {
    (ms as i64).wrapping_mul(1_000_000)
}

/// A configured ms limit in ns, saturating instead of overflowing.
fn limit_ms_to_ns(ms: i64) -> i64 {
    ms.saturating_mul(1_000_000)
}

/// The 4-byte big-endian signed size at `at`, or None if not buffered yet.
fn read_i32(src: &[u8], at: usize) -> Option<i32> {
    let bytes = src.get(at..at + 4)?;
    Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// The name as text if it follows the topic/channel rule.
fn valid_name(raw: &[u8]) -> Option<&str> {
    if !is_valid_name(raw) {
        return None;
    }
    std::str::from_utf8(raw).ok()
}

/// "<CMD> topic name \"x\" is not valid" with Go's %q quoting.
fn bad_topic(prefix: &str, raw: &[u8]) -> ParseError {
    ParseError::new(
        ErrorCode::BadTopic,
        format!("{prefix} topic name {} is not valid", go_quote(raw)),
    )
}

/// Message ids in FIN/REQ/TOUCH must be exactly 16 bytes.
fn message_id(raw: &[u8]) -> Result<MessageId, ParseError> {
    MessageId::from_slice(raw).ok_or_else(|| ParseError::invalid("invalid message ID"))
}

/// The checks FIN, REQ and TOUCH share, in Go's order: subscribed (or closing), at least
/// `params` words, then a 16-byte id as the first parameter.
fn in_flight_id(
    name: &str,
    params: usize,
    line: &Line,
    src: &[u8],
    ctx: &ParseContext<'_>,
) -> Result<MessageId, ParseError> {
    if !matches!(ctx.state, ClientState::Subscribed | ClientState::Closing) {
        return Err(ParseError::invalid(format!(
            "cannot {name} in current state"
        )));
    }
    if line.count < params {
        return Err(ParseError::invalid(format!(
            "{name} insufficient number of params"
        )));
    }
    message_id(line.param(src, 1))
}

/// `Incomplete` until the line, the size and `len` body bytes are all buffered.
fn incomplete_body(src: &[u8], line: &Line, len: usize) -> Option<Decoded> {
    let needed = line.len + 4 + len;
    (src.len() < needed).then_some(Decoded::Incomplete { needed })
}

/// Consumes the line, the size and the body (checked complete) and returns the body.
/// The body of IDENTIFY and AUTH, checked in Go's order for those two ("too big"
/// before "<= 0", both E_BAD_BODY): `Ok(Err(..))` while it is not all buffered.
fn checked_body(
    name: &str,
    line: &Line,
    src: &mut BytesMut,
    max_body_size: i64,
) -> Result<Result<Bytes, Decoded>, ParseError> {
    let Some(size) = read_i32(src, line.len) else {
        return Ok(Err(Decoded::Incomplete {
            needed: line.len + 4,
        }));
    };
    if i64::from(size) > max_body_size {
        return Err(ParseError::new(
            ErrorCode::BadBody,
            format!("{name} body too big {size} > {max_body_size}"),
        ));
    }
    if size <= 0 {
        return Err(ParseError::new(
            ErrorCode::BadBody,
            format!("{name} invalid body size {size}"),
        ));
    }
    let len = size as usize;
    if let Some(incomplete) = incomplete_body(src, line, len) {
        return Ok(Err(incomplete));
    }
    Ok(Ok(take_body(src, line, len)))
}

fn take_body(src: &mut BytesMut, line: &Line, len: usize) -> Bytes {
    src.advance(line.len + 4);
    src.split_to(len).freeze()
}

/// An owned copy of a name that passed [`valid_name`] (so it is ASCII).
fn name_string(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Consumes a body-less command's line.
fn complete_line(src: &mut BytesMut, line: &Line, cmd: Command) -> Result<Decoded, ParseError> {
    src.advance(line.len);
    Ok(Decoded::Complete(cmd))
}

/// Appends a decimal integer without allocating.
fn put_decimal(dst: &mut BytesMut, v: i64) {
    let mut digits = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        dst.put_u8(b'-');
    }
    dst.put_slice(&digits[i..]);
}

/// Appends `<line>\n<size><body>` for the body-carrying commands.
fn put_sized(dst: &mut BytesMut, body: &[u8]) {
    dst.put_u32(body.len() as u32);
    dst.put_slice(body);
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Helpers shared by the command tests.
    use super::*;

    /// nsqd's defaults.
    pub(crate) const LIMITS: Limits = Limits {
        max_body_size: 5 * 1024 * 1024,
        max_msg_size: 1024 * 1024,
        max_rdy_count: 2500,
        max_req_timeout_ms: 3_600_000,
    };

    pub(crate) fn ctx(state: ClientState) -> ParseContext<'static> {
        ParseContext {
            state,
            limits: &LIMITS,
            heartbeats_enabled: true,
            tls_pending: false,
        }
    }

    /// Decodes all of `wire` as one command and checks nothing is left over.
    pub(crate) fn decode_one(wire: &[u8], ctx: &ParseContext<'_>) -> Command {
        let mut buf = BytesMut::from(wire);
        match decode(&mut buf, ctx) {
            Ok(Decoded::Complete(cmd)) => {
                assert!(buf.is_empty(), "left over: {:?}", &buf[..]);
                cmd
            }
            other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(wire)),
        }
    }

    /// The error text for `wire`, checking it is fatal and consumed nothing.
    pub(crate) fn error_text(wire: &[u8], ctx: &ParseContext<'_>) -> String {
        let mut buf = BytesMut::from(wire);
        match decode(&mut buf, ctx) {
            Err(e) => {
                assert!(e.error.is_fatal());
                assert!(!e.close_silently);
                assert_eq!(&buf[..], wire, "nothing consumed on error");
                e.error.text()
            }
            other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(wire)),
        }
    }

    /// The `needed` of an incomplete `wire`, checking nothing was consumed.
    pub(crate) fn needed(wire: &[u8], ctx: &ParseContext<'_>) -> usize {
        let mut buf = BytesMut::from(wire);
        match decode(&mut buf, ctx) {
            Ok(Decoded::Incomplete { needed }) => {
                assert_eq!(&buf[..], wire, "nothing consumed while incomplete");
                assert!(needed > wire.len());
                needed
            }
            other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(wire)),
        }
    }

    pub(crate) fn encoded(cmd: &Command) -> Vec<u8> {
        let mut buf = BytesMut::new();
        cmd.encode(&mut buf);
        buf.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;

    #[test]
    fn golden_unknown_commands() {
        let c = ctx(ClientState::Init);
        assert_eq!(
            error_text(b"FOO bar\n", &c),
            "E_INVALID invalid command FOO"
        );
        assert_eq!(error_text(b"nop\n", &c), "E_INVALID invalid command nop");
        assert_eq!(error_text(b"\n", &c), "E_INVALID invalid command ");
        assert_eq!(error_text(b"\r\n", &c), "E_INVALID invalid command ");
    }

    #[test]
    fn golden_crlf_line_endings() {
        let c = ctx(ClientState::Init);
        assert_eq!(decode_one(b"NOP\r\n", &c), Command::Nop);
        assert_eq!(
            decode_one(b"PUB golden\r\n\x00\x00\x00\x02rn", &c),
            Command::Pub {
                topic: "golden".into(),
                body: Bytes::from_static(b"rn")
            }
        );
        // Only one trailing '\r' is stripped; an inner one stays part of the parameter.
        assert_eq!(
            error_text(b"PUB gol\rden\n", &c),
            "E_BAD_TOPIC PUB topic name \"gol\\rden\" is not valid"
        );
        assert_eq!(
            error_text(b"NOP\r\r\n", &c),
            "E_INVALID invalid command NOP\r"
        );
    }

    #[test]
    fn params_split_on_single_spaces() {
        let c = ctx(ClientState::Init);
        // "SUB  golden ch" has an empty topic, like Go's bytes.Split.
        assert_eq!(
            error_text(b"SUB  golden ch\n", &c),
            "E_BAD_TOPIC SUB topic name \"\" is not valid"
        );
        assert_eq!(error_text(b" NOP\n", &c), "E_INVALID invalid command ");
        // Extra parameters are ignored.
        assert_eq!(
            decode_one(b"NOP extra stuff here and more\n", &c),
            Command::Nop
        );
    }

    #[test]
    fn partial_line_is_incomplete() {
        let c = ctx(ClientState::Init);
        assert_eq!(needed(b"", &c), 1);
        assert_eq!(needed(b"PU", &c), 3);
        assert_eq!(needed(b"NOP\r", &c), 5);
    }

    #[test]
    fn decodes_back_to_back_commands() {
        let c = ctx(ClientState::Init);
        let mut buf = BytesMut::from(&b"NOP\nPUB t\n\x00\x00\x00\x01xNOP"[..]);
        assert_eq!(decode(&mut buf, &c), Ok(Decoded::Complete(Command::Nop)));
        assert!(matches!(
            decode(&mut buf, &c),
            Ok(Decoded::Complete(Command::Pub { .. }))
        ));
        assert_eq!(decode(&mut buf, &c), Ok(Decoded::Incomplete { needed: 4 }));
        assert_eq!(&buf[..], b"NOP");
    }

    #[test]
    fn a_line_longer_than_the_read_buffer_closes_silently() {
        let c = ctx(ClientState::Init);
        let mut longest = vec![b'a'; MAX_LINE_LENGTH - 1];
        longest.push(b'\n');
        assert!(error_text(&longest, &c).starts_with("E_INVALID invalid command aaa"));

        let mut too_long = BytesMut::from(&vec![b'a'; MAX_LINE_LENGTH][..]);
        let err = decode(&mut too_long, &c).unwrap_err();
        assert!(err.close_silently);
        let mut with_newline = vec![b'a'; MAX_LINE_LENGTH];
        with_newline.push(b'\n');
        let err = decode(&mut BytesMut::from(&with_newline[..]), &c).unwrap_err();
        assert!(err.close_silently);
        assert_eq!(
            needed(&vec![b'a'; MAX_LINE_LENGTH - 1], &c),
            MAX_LINE_LENGTH
        );
    }

    #[test]
    fn tls_required_blocks_everything_but_identify() {
        let mut c = ctx(ClientState::Init);
        c.tls_pending = true;
        assert_eq!(
            error_text(b"PUB golden\n", &c),
            "E_INVALID cannot PUB in current state (TLS required)"
        );
        assert_eq!(
            error_text(b"FOO\n", &c),
            "E_INVALID cannot FOO in current state (TLS required)"
        );
        assert_eq!(
            error_text(b"NOP\n", &c),
            "E_INVALID cannot NOP in current state (TLS required)"
        );
        assert!(matches!(
            decode_one(b"IDENTIFY\n\x00\x00\x00\x02{}", &c),
            Command::Identify { .. }
        ));
    }

    #[test]
    fn base10_is_go_byte_to_base10() {
        assert_eq!(byte_to_base10(b""), Some(0));
        assert_eq!(byte_to_base10(b"0042"), Some(42));
        assert_eq!(byte_to_base10(b"-1"), None);
        assert_eq!(byte_to_base10(b"+1"), None);
        assert_eq!(byte_to_base10(b"1 "), None);
        assert_eq!(byte_to_base10(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(byte_to_base10(b"18446744073709551616"), Some(0));
    }

    #[test]
    fn decimal_encoding() {
        for v in [0i64, 7, -7, 1000, i64::MAX, i64::MIN] {
            let mut buf = BytesMut::new();
            put_decimal(&mut buf, v);
            assert_eq!(&buf[..], v.to_string().as_bytes());
        }
    }

    #[test]
    fn names_match_the_wire() {
        assert_eq!(Command::Nop.name(), "NOP");
        assert_eq!(
            Command::Mpub {
                topic: "t".into(),
                bodies: vec![]
            }
            .name(),
            "MPUB"
        );
    }
}
