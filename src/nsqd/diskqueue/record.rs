//! The framing of a data file: each record is an `int32` big-endian length followed by
//! that many payload bytes, back to back, with nothing before, between or after them.
//!
//! Pure code, no IO: the queue feeds it the bytes it read.

/// Bytes of the length prefix.
pub(super) const HEADER_BYTES: u64 = 4;

/// The payload sizes a queue accepts (go-diskqueue's `minMsgSize..=maxMsgSize`). A length
/// outside them in a data file means the file is corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SizeLimits {
    /// Smallest valid payload, bytes.
    pub(super) min: u32,
    /// Largest valid payload, bytes (at most `i32::MAX`).
    pub(super) max: u32,
}

impl SizeLimits {
    /// Whether a payload of `len` bytes is valid.
    pub(super) fn allows(&self, len: u64) -> bool {
        len >= u64::from(self.min) && len <= u64::from(self.max)
    }
}

/// What the bytes at a record boundary hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Parsed {
    /// A whole record: its payload is `buf[4..4 + payload_len]`.
    Record {
        /// Payload bytes.
        payload_len: u32,
    },
    /// The record is not all there: it needs `total` bytes from the boundary, and the
    /// buffer has fewer.
    Incomplete {
        /// Bytes from the boundary to the end of the record (4 while the length itself is
        /// cut short).
        total: u64,
    },
}

/// A length prefix no valid record has: the file is corrupt from here on, since nothing
/// says where the next record would start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid message read size ({0})")]
pub(super) struct InvalidSize(pub(super) i32);

/// The bytes on disk of one record holding `payload_len` bytes.
pub(super) fn record_bytes(payload_len: usize) -> u64 {
    HEADER_BYTES + payload_len as u64
}

/// Something the queue can store as one record's payload: raw bytes, or a value that
/// encodes itself straight into the queue's write buffer (nsqd's messages), so no
/// intermediate copy is made.
pub trait Payload {
    /// The payload's length in bytes.
    fn payload_len(&self) -> usize;
    /// Appends exactly [`Payload::payload_len`] bytes to `out`.
    fn write_payload(&self, out: &mut Vec<u8>);
}

impl<T: AsRef<[u8]>> Payload for T {
    fn payload_len(&self) -> usize {
        self.as_ref().len()
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_ref());
    }
}

/// Appends the record of `payload` to `out`. The caller has checked the payload against
/// its [`SizeLimits`], so the length fits an `i32`.
pub(super) fn encode_into<P: Payload + ?Sized>(out: &mut Vec<u8>, payload: &P) {
    let payload_len = payload.payload_len();
    debug_assert!(i32::try_from(payload_len).is_ok());
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    out.reserve(4 + payload_len);
    out.extend_from_slice(&len.to_be_bytes());
    let start = out.len();
    payload.write_payload(out);
    debug_assert_eq!(out.len() - start, payload_len);
}

/// Reads the record that starts at `buf[0]`.
pub(super) fn parse(buf: &[u8], limits: SizeLimits) -> Result<Parsed, InvalidSize> {
    let Some(header) = buf.first_chunk::<4>() else {
        return Ok(Parsed::Incomplete {
            total: HEADER_BYTES,
        });
    };
    let len = i32::from_be_bytes(*header);
    let payload_len = u32::try_from(len).map_err(|_| InvalidSize(len))?;
    if !limits.allows(u64::from(payload_len)) {
        return Err(InvalidSize(len));
    }
    let total = HEADER_BYTES + u64::from(payload_len);
    if (buf.len() as u64) < total {
        return Ok(Parsed::Incomplete { total });
    }
    Ok(Parsed::Record { payload_len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: SizeLimits = SizeLimits { min: 3, max: 10 };

    #[test]
    fn a_record_is_a_big_endian_length_then_the_payload() {
        let mut out = Vec::new();
        encode_into(&mut out, b"one");
        encode_into(&mut out, b"three");
        assert_eq!(out, b"\x00\x00\x00\x03one\x00\x00\x00\x05three");
        assert_eq!(record_bytes(3), 7);
        assert_eq!(parse(&out, LIMITS), Ok(Parsed::Record { payload_len: 3 }));
        assert_eq!(
            parse(&out[7..], LIMITS),
            Ok(Parsed::Record { payload_len: 5 })
        );
    }

    #[test]
    fn golden_message_record_header() {
        // data-dir.txt: a 3-byte body makes a 29-byte message, 33 bytes on disk.
        let message = [0u8; 29];
        let mut out = Vec::new();
        encode_into(&mut out, &message);
        assert_eq!(&out[..4], &[0x00, 0x00, 0x00, 0x1d]);
        assert_eq!(out.len(), 33);
    }

    #[test]
    fn short_buffers_are_incomplete_not_errors() {
        let full = b"\x00\x00\x00\x05three";
        for cut in 0..4 {
            assert_eq!(
                parse(&full[..cut], LIMITS),
                Ok(Parsed::Incomplete { total: 4 })
            );
        }
        for cut in 4..full.len() {
            assert_eq!(
                parse(&full[..cut], LIMITS),
                Ok(Parsed::Incomplete { total: 9 })
            );
        }
    }

    #[test]
    fn lengths_outside_the_limits_are_corruption() {
        for (header, len) in [
            ([0, 0, 0, 2], 2),
            ([0, 0, 0, 11], 11),
            ([0xff, 0xff, 0xff, 0xff], -1),
            ([0x80, 0, 0, 0], i32::MIN),
            ([0x7f, 0xff, 0xff, 0xff], i32::MAX),
        ] {
            assert_eq!(parse(&header, LIMITS), Err(InvalidSize(len)));
        }
        assert_eq!(
            InvalidSize(-1).to_string(),
            "invalid message read size (-1)"
        );
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(buf in prop::collection::vec(any::<u8>(), 0..32)) {
            match parse(&buf, LIMITS) {
                Ok(Parsed::Record { payload_len }) => {
                    prop_assert!(LIMITS.allows(u64::from(payload_len)));
                    prop_assert!(buf.len() as u64 >= record_bytes(payload_len as usize));
                }
                Ok(Parsed::Incomplete { total }) => prop_assert!(total > buf.len() as u64),
                Err(InvalidSize(len)) => prop_assert!(!(3..=10).contains(&len)),
            }
        }

        #[test]
        fn encoded_records_parse_back(payloads in prop::collection::vec(
            prop::collection::vec(any::<u8>(), 3..=10), 0..8)
        ) {
            let mut out = Vec::new();
            for p in &payloads {
                encode_into(&mut out, p);
            }
            let mut at = 0usize;
            for p in &payloads {
                let parsed = parse(&out[at..], LIMITS);
                prop_assert_eq!(parsed, Ok(Parsed::Record { payload_len: p.len() as u32 }));
                prop_assert_eq!(&out[at + 4..at + 4 + p.len()], &p[..]);
                at += 4 + p.len();
            }
            prop_assert_eq!(at, out.len());
        }
    }
}
