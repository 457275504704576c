//! Property tests of the wire code: encode/decode round trips (also fed byte by byte),
//! arbitrary bytes into every decoder, and the bound on what a decoder asks to buffer.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::commands::{
    decode, ClientState, Command, Decoded, Limits, ParseContext, ParseError, MAX_LINE_LENGTH,
};
use super::frame::{decode_frame, write_frame, write_message_frame, FrameType};
use super::message::{Message, MessageId};

/// Small limits, so generated commands reach them.
static LIMITS: Limits = Limits {
    max_body_size: 4096,
    max_msg_size: 512,
    max_rdy_count: 2500,
    max_req_timeout_ms: 3_600_000,
};

/// What a decoder may ask for beyond the configured maximum: a line and two size fields.
const HEADER_BOUND: usize = MAX_LINE_LENGTH + 8;

fn name() -> impl Strategy<Value = String> {
    "[.a-zA-Z0-9_-]{1,54}(#ephemeral)?"
}

/// Any 16 bytes that survive a command line: no ' ' or '\n', and no '\r' at the end.
fn message_id() -> impl Strategy<Value = MessageId> {
    prop::array::uniform16(any::<u8>().prop_filter("separator", |b| *b != b' ' && *b != b'\n'))
        .prop_map(|mut id| {
            if id[15] == b'\r' {
                id[15] = b'r';
            }
            MessageId(id)
        })
}

fn body(max_len: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 1..=max_len).prop_map(Bytes::from)
}

fn any_state() -> impl Strategy<Value = ClientState> {
    prop_oneof![
        Just(ClientState::Init),
        Just(ClientState::Disconnected),
        Just(ClientState::Connected),
        Just(ClientState::Subscribed),
        Just(ClientState::Closing),
    ]
}

fn in_flight_state() -> impl Strategy<Value = ClientState> {
    prop_oneof![Just(ClientState::Subscribed), Just(ClientState::Closing)]
}

/// A valid command and a connection state in which it decodes.
fn command() -> impl Strategy<Value = (Command, ClientState)> {
    let max_req = LIMITS.max_req_timeout_ms;
    prop_oneof![
        body(512).prop_map(|body| (Command::Identify { body }, ClientState::Init)),
        body(64).prop_map(|secret| (Command::Auth { secret }, ClientState::Init)),
        (name(), name())
            .prop_map(|(topic, channel)| (Command::Sub { topic, channel }, ClientState::Init)),
        (0..=LIMITS.max_rdy_count)
            .prop_map(|count| (Command::Rdy { count }, ClientState::Subscribed)),
        (message_id(), in_flight_state()).prop_map(|(id, s)| (Command::Fin { id }, s)),
        (message_id(), 0..=max_req, in_flight_state())
            .prop_map(|(id, timeout_ms, s)| (Command::Req { id, timeout_ms }, s)),
        (message_id(), in_flight_state()).prop_map(|(id, s)| (Command::Touch { id }, s)),
        Just((Command::Cls, ClientState::Subscribed)),
        any_state().prop_map(|s| (Command::Nop, s)),
        (name(), body(512), any_state())
            .prop_map(|(topic, body, s)| (Command::Pub { topic, body }, s)),
        (name(), prop::collection::vec(body(400), 1..=8), any_state())
            .prop_map(|(topic, bodies, s)| (Command::Mpub { topic, bodies }, s)),
        (name(), 0..=max_req, body(512), any_state()).prop_map(|(topic, defer_ms, body, s)| (
            Command::Dpub {
                topic,
                defer_ms,
                body
            },
            s
        )),
    ]
}

fn ctx_for(state: ClientState) -> ParseContext<'static> {
    ParseContext {
        state,
        limits: &LIMITS,
        heartbeats_enabled: true,
        tls_pending: false,
    }
}

fn encoded(cmd: &Command) -> Vec<u8> {
    let mut buf = BytesMut::new();
    cmd.encode(&mut buf);
    buf.to_vec()
}

/// Pieces that make random input reach deep into the parsers.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "IDENTIFY", "AUTH", "SUB", "RDY", "FIN", "REQ", "TOUCH", "CLS", "NOP", "PUB", "MPUB",
        "DPUB",
    ]);
    prop_oneof![
        command().prop_map(|(cmd, _)| encoded(&cmd)),
        prop::collection::vec(any::<u8>(), 0..64),
        (names, prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(n, rest)| {
            let mut v = n.as_bytes().to_vec();
            v.extend(rest);
            v
        }),
        any::<i32>().prop_map(|v| v.to_be_bytes().to_vec()),
        Just(b" ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
    ]
}

fn arbitrary_limits() -> impl Strategy<Value = Limits> {
    (-8i64..2048, 0u32..=100, -5i64..3000, -5i64..4_000_000).prop_map(
        |(max_body_size, msg_pct, max_rdy_count, max_req_timeout_ms)| Limits {
            max_body_size,
            // A sane config never allows a message larger than a body.
            max_msg_size: max_body_size * i64::from(msg_pct) / 100,
            max_rdy_count,
            max_req_timeout_ms,
        },
    )
}

/// What decoding `wire` from one buffer yields, feeding it in chunks of `chunk` bytes.
fn decode_all(
    wire: &[u8],
    chunk: usize,
    ctx: &ParseContext<'_>,
) -> Result<Vec<Command>, ParseError> {
    let bound =
        ctx.limits.max_body_size.max(ctx.limits.max_msg_size).max(0) as usize + HEADER_BOUND;
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut out = Vec::new();
    loop {
        let before = buf.clone();
        match decode(&mut buf, ctx) {
            Ok(Decoded::Complete(cmd)) => {
                assert!(
                    buf.len() < before.len(),
                    "a complete command consumes bytes"
                );
                out.push(cmd);
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert_eq!(buf, before, "nothing consumed while incomplete");
                assert!(
                    needed > buf.len(),
                    "needed {needed} <= buffered {}",
                    buf.len()
                );
                assert!(needed <= bound, "needed {needed} > bound {bound}");
                if fed == wire.len() {
                    return Ok(out);
                }
                let next = (fed + chunk).min(wire.len());
                buf.extend_from_slice(&wire[fed..next]);
                fed = next;
            }
            Err(e) => {
                assert_eq!(buf, before, "nothing consumed on error");
                return Err(e);
            }
        }
    }
}

proptest! {
    #[test]
    fn commands_round_trip((cmd, state) in command()) {
        let ctx = ctx_for(state);
        let wire = encoded(&cmd);
        let mut buf = BytesMut::from(&wire[..]);
        prop_assert_eq!(decode(&mut buf, &ctx), Ok(Decoded::Complete(cmd.clone())));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn commands_fed_byte_by_byte_are_incomplete_until_the_last_byte((cmd, state) in command()) {
        let ctx = ctx_for(state);
        let wire = encoded(&cmd);
        let mut buf = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            buf.put_u8(*b);
            let result = decode(&mut buf, &ctx);
            if i + 1 < wire.len() {
                let Ok(Decoded::Incomplete { needed }) = result else {
                    return Err(TestCaseError::fail(format!("at {i}: {result:?}")));
                };
                prop_assert!(needed > i + 1 && needed <= wire.len(), "needed {} at {}", needed, i);
                prop_assert_eq!(buf.len(), i + 1);
            } else {
                prop_assert_eq!(result, Ok(Decoded::Complete(cmd.clone())));
                prop_assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_ask_past_the_limits(
        fragments in prop::collection::vec(fragment(), 0..12),
        state in any_state(),
        heartbeats_enabled in any::<bool>(),
        tls_pending in prop::bool::weighted(0.1),
        limits in arbitrary_limits(),
        chunk in 1usize..64,
    ) {
        let wire = fragments.concat();
        let ctx = ParseContext { state, limits: &limits, heartbeats_enabled, tls_pending };
        let whole = decode_all(&wire, wire.len().max(1), &ctx);
        let chunked = decode_all(&wire, chunk, &ctx);
        prop_assert_eq!(whole, chunked, "decoding must not depend on how bytes arrive");
    }

    #[test]
    fn messages_round_trip(
        id in prop::array::uniform16(any::<u8>()),
        timestamp_ns in any::<i64>(),
        attempts in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let msg = Message { id: MessageId(id), timestamp_ns, attempts, body: Bytes::from(body) };
        let mut buf = BytesMut::new();
        msg.encode(&mut buf);
        prop_assert_eq!(buf.len(), msg.encoded_len());
        prop_assert_eq!(Message::decode(buf.freeze()), Ok(msg.clone()));

        let mut frame = BytesMut::new();
        write_message_frame(&mut frame, &msg);
        let decoded = decode_frame(&mut frame, 1 << 20);
        let Ok(Some((FrameType::Message, data))) = decoded else {
            return Err(TestCaseError::fail(format!("{decoded:?}")));
        };
        prop_assert!(frame.is_empty());
        prop_assert_eq!(Message::decode(data), Ok(msg));
    }

    #[test]
    fn frames_round_trip(kind in 0i32..=2, data in prop::collection::vec(any::<u8>(), 0..64)) {
        let kind = FrameType::from_i32(kind).unwrap_or(FrameType::Response);
        let mut buf = BytesMut::new();
        write_frame(&mut buf, kind, &data);
        let decoded = decode_frame(&mut buf, 68).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded, Some((kind, Bytes::from(data))));
    }

    #[test]
    fn decode_frame_never_panics(
        pieces in prop::collection::vec(frame_fragment(), 0..8),
        max_frame_size in 0usize..256,
    ) {
        let bytes = pieces.concat();
        let mut buf = BytesMut::from(&bytes[..]);
        let capacity = buf.capacity();
        loop {
            let before = buf.len();
            match decode_frame(&mut buf, max_frame_size) {
                Ok(Some((_, data))) => {
                    prop_assert!(data.len() + 4 <= max_frame_size);
                    prop_assert_eq!(buf.len(), before - 8 - data.len());
                }
                Ok(None) => {
                    prop_assert_eq!(buf.len(), before);
                    break;
                }
                Err(_) => break,
            }
        }
        prop_assert!(buf.capacity() <= capacity, "the decoder never allocates");
    }
}

/// Well-formed frames (of any type number and size) and random bytes.
fn frame_fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (-1i32..4, prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(kind, data)| {
            let mut v = ((data.len() + 4) as i32).to_be_bytes().to_vec();
            v.extend(kind.to_be_bytes());
            v.extend(data);
            v
        }),
        prop::collection::vec(any::<u8>(), 0..16),
    ]
}
