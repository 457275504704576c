//! V2 command decoding (every command, IDENTIFY's JSON, AUTH, MPUB bodies).
//!
//! Input: byte 0 picks the connection state and flags, bytes 1-2 the configured limits
//! (small, so the fuzzer reaches them), the rest is what the client sent. Every command
//! decoded must respect the limits, consume bytes, and round trip through its encoder;
//! an error leaves the buffer untouched; IDENTIFY bodies go through `negotiate`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use nsq::protocol::commands::MAX_LINE_LENGTH;
use nsq::protocol::{
    decode, negotiate, response_json, ClientState, Command, Decoded, IdentifyLimits, Limits,
    ParseContext,
};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let state = match data[0] & 3 {
        0 => ClientState::Init,
        1 => ClientState::Connected,
        2 => ClientState::Subscribed,
        _ => ClientState::Closing,
    };
    let max_msg_size = 1 + i64::from(data[1]) * 16;
    let limits = Limits {
        max_msg_size,
        max_body_size: max_msg_size + i64::from(data[2]) * 32,
        max_rdy_count: 2500,
        max_req_timeout_ms: 3_600_000,
    };
    let ctx = ParseContext {
        state,
        limits: &limits,
        heartbeats_enabled: data[0] & 4 == 0,
        tls_pending: data[0] & 8 != 0,
    };
    let mut src = BytesMut::from(&data[3..]);
    for _ in 0..64 {
        let before = src.clone();
        match decode(&mut src, &ctx) {
            Ok(Decoded::Complete(command)) => {
                let consumed = before.len() - src.len();
                assert!(consumed > 0, "a command consumed nothing");
                let body_max = usize::try_from(limits.max_body_size).unwrap();
                assert!(consumed <= MAX_LINE_LENGTH + 4 + body_max);
                check_limits(&command, &limits);
                round_trip(&command, &ctx);
                if let Command::Identify { body } = &command {
                    identify(body, data[0]);
                }
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert_eq!(src, before, "Incomplete consumed bytes");
                assert!(
                    needed > src.len(),
                    "Incomplete needs {needed} but has {}",
                    src.len()
                );
                let body_max = usize::try_from(limits.max_body_size).unwrap();
                assert!(
                    needed <= MAX_LINE_LENGTH + 8 + body_max,
                    "asks for {needed} bytes, past the configured limits"
                );
                return;
            }
            Err(_) => {
                assert_eq!(src, before, "an error consumed bytes");
                return;
            }
        }
    }
});

fn check_limits(command: &Command, limits: &Limits) {
    let msg_max = usize::try_from(limits.max_msg_size).unwrap();
    match command {
        Command::Pub { body, .. } | Command::Dpub { body, .. } => {
            assert!(
                !body.is_empty() && body.len() <= msg_max,
                "PUB body {}",
                body.len()
            );
        }
        Command::Mpub { bodies, .. } => {
            assert!(!bodies.is_empty());
            let total: usize = bodies.iter().map(|b| 4 + b.len()).sum();
            assert!(4 + total <= usize::try_from(limits.max_body_size).unwrap());
            for body in bodies {
                assert!(
                    !body.is_empty() && body.len() <= msg_max,
                    "MPUB body {}",
                    body.len()
                );
            }
        }
        Command::Rdy { count } => assert!((0..=limits.max_rdy_count).contains(count)),
        Command::Req { timeout_ms, .. } => {
            assert!((0..=limits.max_req_timeout_ms).contains(timeout_ms))
        }
        _ => {}
    }
    if let Command::Dpub { defer_ms, .. } = command {
        assert!((0..=limits.max_req_timeout_ms).contains(defer_ms));
    }
}

/// What our client encodes for a decoded command decodes to that same command.
fn round_trip(command: &Command, ctx: &ParseContext<'_>) {
    let mut wire = BytesMut::new();
    command.encode(&mut wire);
    // A last parameter ending in '\r' (`FIN <id ending in \r> <more>` decodes, as in Go)
    // cannot come back: Go's line reader strips one '\r' before the '\n'.
    let line_end = wire.iter().position(|b| *b == b'\n').unwrap_or(wire.len());
    if line_end > 0 && wire[line_end - 1] == b'\r' {
        return;
    }
    match decode(&mut wire, ctx) {
        Ok(Decoded::Complete(again)) => {
            assert_eq!(&again, command, "round trip");
            assert!(wire.is_empty(), "round trip left {} bytes", wire.len());
        }
        other => panic!("{command:?} encodes to bytes that decode to {other:?}"),
    }
}

/// IDENTIFY's JSON through Go's validation; a success answers valid JSON.
fn identify(body: &[u8], flags: u8) {
    let limits = IdentifyLimits {
        default_heartbeat_interval_ms: 30_000,
        max_heartbeat_interval_ms: 60_000,
        default_output_buffer_size: 16 * 1024,
        max_output_buffer_size: 64 * 1024,
        default_output_buffer_timeout_ms: 250,
        min_output_buffer_timeout_ms: 25,
        max_output_buffer_timeout_ms: 30_000,
        default_msg_timeout_ms: 60_000,
        max_msg_timeout_ms: 900_000,
        max_rdy_count: 2500,
        tls_available: flags & 16 != 0,
        snappy_enabled: flags & 32 != 0,
        deflate_enabled: flags & 64 != 0,
        max_deflate_level: 6,
        auth_required: flags & 128 != 0,
    };
    if let Ok(n) = negotiate(body, &limits) {
        assert!(!(n.snappy && n.deflate));
        assert!(n.deflate_level <= limits.max_deflate_level);
        assert!(n.msg_timeout_ms <= limits.max_msg_timeout_ms);
        assert!(n.heartbeat_interval_ms <= limits.max_heartbeat_interval_ms);
        assert!(n.output_buffer_size <= limits.max_output_buffer_size);
        let answer = response_json(&n, &limits, "1.3.0");
        serde_json::from_slice::<serde_json::Value>(&answer).expect("IDENTIFY answer is JSON");
    }
}
