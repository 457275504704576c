//! Message ids in NSQ's snowflake layout:
//! `((now_ns >> 20) - TWEPOCH) << 22 | node_id << 12 | sequence`, as 16 lowercase hex digits.

use super::message::MessageId;

const NODE_ID_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
const NODE_ID_SHIFT: u32 = SEQUENCE_BITS;
const TIMESTAMP_SHIFT: u32 = SEQUENCE_BITS + NODE_ID_BITS;
const SEQUENCE_MASK: i64 = (1 << SEQUENCE_BITS) - 1;
const NODE_ID_MASK: i64 = (1 << NODE_ID_BITS) - 1;
/// Twitter's epoch in ms, applied by nsqd to its ~1.048 ms ticks (a quirk kept for id compatibility).
const TWEPOCH: i64 = 1_288_834_974_288;

/// Makes unique, increasing message ids for one topic.
#[derive(Debug, Clone)]
pub struct GuidFactory {
    /// Only the low 10 bits are used (nsqd validates `--node-id` to [0, 1024)).
    node_id: i64,
    /// The tick (now_ns >> 20) of the last id; may run ahead of the clock.
    last_tick: i64,
    sequence: i64,
}

impl GuidFactory {
    /// A factory for this nsqd's node id.
    pub fn new(node_id: i64) -> Self {
        GuidFactory {
            node_id: node_id & NODE_ID_MASK,
            last_tick: i64::MIN,
            sequence: 0,
        }
    }

    /// A new unique id for wall time `now_ns`. Never fails and never sleeps: when the clock
    /// went backwards or 4096 ids were taken in one tick, it continues from the last tick
    /// (sequence overflow moves to the next tick), so ids stay unique and increasing.
    pub fn next_id(&mut self, now_ns: i64) -> MessageId {
        let tick = now_ns >> 20;
        if tick > self.last_tick {
            self.last_tick = tick;
            self.sequence = 0;
        } else {
            self.sequence = (self.sequence + 1) & SEQUENCE_MASK;
            if self.sequence == 0 {
                self.last_tick = self.last_tick.wrapping_add(1);
            }
        }
        let id = (self.last_tick.wrapping_sub(TWEPOCH) << TIMESTAMP_SHIFT)
            | (self.node_id << NODE_ID_SHIFT)
            | self.sequence;
        MessageId::from_u64(id as u64)
    }
}

/// The node id (`--node-id`) of the nsqd that minted `id`, if `id` is a GUID of this
/// layout (16 hex digits): replication tells an adopted message from its own by it.
pub fn node_id_of(id: &MessageId) -> Option<u16> {
    let text = std::str::from_utf8(id.as_bytes()).ok()?;
    let value = u64::from_str_radix(text, 16).ok()?;
    u16::try_from((value >> NODE_ID_SHIFT) & NODE_ID_MASK as u64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_id_is_read_back_from_an_id() {
        let mut factory = GuidFactory::new(517);
        let id = factory.next_id(1_700_000_000_000_000_000);
        assert_eq!(node_id_of(&id), Some(517));
        assert_eq!(node_id_of(&MessageId(*b"not-hex-at-all!!")), None);
    }

    fn as_u64(id: MessageId) -> u64 {
        u64::from_str_radix(&id.to_string(), 16).unwrap()
    }

    #[test]
    fn layout_matches_nsqd() {
        let now_ns: i64 = 1_795_662_413_592_662_806;
        let mut f = GuidFactory::new(123);
        let id = f.next_id(now_ns);
        let expected = (((now_ns >> 20) - 1_288_834_974_288) << 22) | (123 << 12);
        assert_eq!(id.to_string(), format!("{expected:016x}"));
        let second = f.next_id(now_ns);
        assert_eq!(as_u64(second), expected as u64 | 1);
        assert!(id
            .to_string()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn node_id_is_masked_to_ten_bits() {
        let mut f = GuidFactory::new(1024 + 5);
        let id = as_u64(f.next_id(1 << 50));
        assert_eq!((id >> 12) & 0x3ff, 5);
    }

    #[test]
    fn ids_stay_unique_and_increasing_when_the_clock_goes_back() {
        let mut f = GuidFactory::new(1);
        let base: i64 = 1_700_000_000_000_000_000;
        let times = [
            base,
            base + 5_000_000,
            base - 50_000_000,
            base - 1,
            base + 5_000_000,
            base + 1,
        ];
        let mut last = 0u64;
        for t in times {
            let id = as_u64(f.next_id(t));
            assert!(id > last, "{id:x} after {last:x}");
            last = id;
        }
    }

    #[test]
    fn more_than_4096_ids_in_one_tick_move_to_the_next_tick() {
        let mut f = GuidFactory::new(7);
        let now: i64 = 1_700_000_000_000_000_000;
        let ids: Vec<u64> = (0..10_000).map(|_| as_u64(f.next_id(now))).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let first_tick = ids[0] >> 22;
        assert_eq!(ids[4095] >> 22, first_tick);
        assert_eq!(ids[4095] & 0xfff, 4095);
        assert_eq!(ids[4096] >> 22, first_tick + 1);
        assert_eq!(ids[4096] & 0xfff, 0);
        // The real clock catching up with the borrowed ticks does not reuse them.
        let caught_up = as_u64(f.next_id(now + (1 << 20)));
        assert!(caught_up > ids[9999]);
    }
}
