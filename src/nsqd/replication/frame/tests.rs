use proptest::prelude::*;

use super::*;

const MAX: usize = 1 << 20;

fn id(n: u64) -> MessageId {
    MessageId::from_u64(n)
}

fn hello() -> Hello {
    Hello {
        version: VERSION,
        node_id: 7,
        data_id: 0x0102_0304_0506_0708,
        address: "nsqd-2:4150".to_string(),
        replication_factor: 2,
        tls: true,
    }
}

fn replicated(n: u64) -> Replicated {
    let mut message = Message::new(
        id(n),
        1_700_000_000_000_000_000 + n as i64,
        Bytes::from(format!("body {n}")),
    );
    message.attempts = 3;
    Replicated {
        seq: n,
        message,
        due_ns: if n.is_multiple_of(2) {
            0
        } else {
            5_000_000_000
        },
        channels: vec!["a".to_string(), "b#ephemeral".to_string()],
    }
}

/// One frame of every type.
fn every_frame() -> Vec<Frame> {
    vec![
        Frame::Hello(hello()),
        Frame::HelloOk(hello()),
        Frame::Error("E_BAD_PEER node id 7 is mine".to_string()),
        Frame::Auth(Bytes::from_static(b"secret")),
        Frame::AuthOk,
        Frame::CatchUp(vec![("t".to_string(), 9), ("u".to_string(), 0)]),
        Frame::Messages {
            topic: "t".to_string(),
            records: (1..4).map(replicated).collect(),
        },
        Frame::Ack {
            topic: "t".to_string(),
            seq: 3,
        },
        Frame::Channel {
            topic: "t".to_string(),
            channel: "c".to_string(),
            created: true,
            seq: 4,
        },
        Frame::TopicDeleted("t".to_string()),
        Frame::Fins {
            topic: "t".to_string(),
            channel: "c".to_string(),
            finished: vec![id(1), id(2)],
            deferred: vec![(id(3), 42)],
        },
        Frame::Ping { data_id: 5 },
        Frame::Pong { data_id: 6 },
        Frame::Adopted {
            owner: 3,
            topic: "t".to_string(),
            ids: vec![id(1), id(2)],
        },
    ]
}

#[test]
fn every_frame_round_trips_whole_and_byte_by_byte() {
    let frames = every_frame();
    let mut wire = BytesMut::new();
    for frame in &frames {
        frame.encode(&mut wire);
    }
    let whole = wire.clone();
    let mut decoded = Vec::new();
    while let Some(frame) = Frame::decode(&mut wire, MAX).unwrap() {
        decoded.push(frame);
    }
    assert_eq!(decoded, frames);
    assert!(wire.is_empty());

    // Arriving a byte at a time, nothing is decoded before its last byte.
    let mut trickle = BytesMut::new();
    let mut decoded = Vec::new();
    for byte in whole {
        trickle.put_u8(byte);
        if let Some(frame) = Frame::decode(&mut trickle, MAX).unwrap() {
            decoded.push(frame);
        }
    }
    assert_eq!(decoded, frames);
}

#[test]
fn the_layout_is_size_type_payload_checksum() {
    let mut wire = BytesMut::new();
    Frame::Ping { data_id: 1 }.encode(&mut wire);
    assert_eq!(&wire[..4], &13u32.to_be_bytes(), "type, 8 bytes, checksum");
    assert_eq!(wire[4], 12, "PING");
    assert_eq!(&wire[5..13], &1u64.to_be_bytes());
    assert_eq!(&wire[13..], &crc32c::crc32c(&wire[4..13]).to_be_bytes());
    assert_eq!(MAGIC, b"  R1");
}

#[test]
fn a_size_past_the_limit_is_refused_before_the_bytes_arrive() {
    let mut wire = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
    assert_eq!(
        Frame::decode(&mut wire, MAX),
        Err(FrameError::TooLarge {
            size: u32::MAX as usize,
            max: MAX
        })
    );
    let mut short = BytesMut::from(&4u32.to_be_bytes()[..]);
    assert_eq!(Frame::decode(&mut short, MAX), Err(FrameError::TooShort(4)));
}

#[test]
fn damaged_frames_are_errors_naming_what_is_wrong() {
    let mut good = BytesMut::new();
    Frame::Ack {
        topic: "t".to_string(),
        seq: 1,
    }
    .encode(&mut good);

    let mut flipped = good.clone();
    flipped[7] ^= 1;
    assert_eq!(Frame::decode(&mut flipped, MAX), Err(FrameError::Checksum));

    // A count that claims more items than the bytes left could hold allocates nothing.
    let mut lying = BytesMut::new();
    let mut payload = BytesMut::new();
    payload.put_u8(ADOPTED);
    payload.put_u16(3);
    put_str(&mut payload, "t");
    payload.put_u32(u32::MAX);
    frame_of(&mut lying, &payload);
    assert_eq!(
        Frame::decode(&mut lying, MAX),
        Err(FrameError::Malformed("ADOPTED"))
    );

    let mut unknown = BytesMut::new();
    frame_of(&mut unknown, &[99]);
    assert_eq!(
        Frame::decode(&mut unknown, MAX),
        Err(FrameError::UnknownType(99))
    );

    let mut bad_name = BytesMut::new();
    Frame::TopicDeleted("no spaces".to_string()).encode(&mut bad_name);
    assert_eq!(
        Frame::decode(&mut bad_name, MAX),
        Err(FrameError::BadName("no spaces".to_string()))
    );

    let mut trailing = BytesMut::new();
    frame_of(&mut trailing, &[AUTH_OK, 0]);
    assert_eq!(
        Frame::decode(&mut trailing, MAX),
        Err(FrameError::Malformed("AUTH_OK"))
    );
}

/// Wraps a raw type-and-payload in a size and a good checksum.
fn frame_of(out: &mut BytesMut, type_and_payload: &[u8]) {
    out.put_u32((type_and_payload.len() + 4) as u32);
    out.put_slice(type_and_payload);
    out.put_u32(crc32c::crc32c(type_and_payload));
}

proptest! {
    /// Any bytes decode to frames or an error, never a panic; and any payload behind a
    /// good checksum too.
    #[test]
    fn any_bytes_decode_without_a_panic(
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        kind in 0u8..16,
    ) {
        let mut wire = BytesMut::from(&noise[..]);
        while let Ok(Some(_)) = Frame::decode(&mut wire, MAX) {}
        let mut payload = vec![kind];
        payload.extend_from_slice(&noise);
        let mut framed = BytesMut::new();
        frame_of(&mut framed, &payload);
        let _ = Frame::decode(&mut framed, MAX);
    }

    /// Messages frames of any bodies, ids, times and channel sets round trip.
    #[test]
    fn messages_round_trip(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..5),
        due in any::<i64>(),
        attempts in any::<u16>(),
    ) {
        let records: Vec<Replicated> = bodies
            .into_iter()
            .enumerate()
            .map(|(n, body)| {
                let mut message = Message::new(id(n as u64), -(n as i64), Bytes::from(body));
                message.attempts = attempts;
                Replicated { seq: n as u64, message, due_ns: due, channels: vec!["c".to_string(); n] }
            })
            .collect();
        let frame = Frame::Messages { topic: "t".to_string(), records };
        let mut wire = BytesMut::new();
        frame.encode(&mut wire);
        prop_assert_eq!(Frame::decode(&mut wire, MAX), Ok(Some(frame)));
    }
}
