//! Packing lines into UDP packets and spacing the packets over the interval, as Go's
//! `BoundaryBufferedWriter` over a `SpreadWriter` does. Pure: no IO, no clock.

use std::time::Duration;

/// The packet size Go falls back to when `--statsd-udp-packet-size` is 0 or negative
/// (`bufio.NewWriterSize` replaces a size ≤ 0 with its default buffer size).
pub(crate) const GO_DEFAULT_PACKET_BYTES: usize = 4096;

/// Go does not spread the packets over the whole interval but over the interval less
/// this, so the last one leaves before the next tick.
pub(crate) const SPREAD_MARGIN: Duration = Duration::from_secs(1);

/// The packet size in bytes for the configured `--statsd-udp-packet-size`.
pub(crate) fn packet_size_bytes(configured: i64) -> usize {
    if configured <= 0 {
        GO_DEFAULT_PACKET_BYTES
    } else {
        usize::try_from(configured).unwrap_or(usize::MAX)
    }
}

/// Packs whole lines, in order, into packets of at most `size_max` bytes: a line that
/// does not fit in the current packet starts the next one. A single line longer than
/// `size_max` is still sent, alone in its own packet (Go's buffered writer hands an
/// oversized write straight through). No line is ever split or dropped.
pub(crate) fn pack(lines: &[String], size_max: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for line in lines {
        let line = line.as_bytes();
        if line.len() > size_max - current.len() && !current.is_empty() {
            packets.push(std::mem::take(&mut current));
        }
        if line.len() > size_max {
            packets.push(line.to_vec());
        } else {
            current.extend_from_slice(line);
        }
    }
    if !current.is_empty() {
        packets.push(current);
    }
    packets
}

/// The time between two packet writes: (interval − 1 s) / packets, in whole
/// nanoseconds as Go's `Duration` division. Zero when there is nothing to spread over
/// (an interval of 1 s or less, which only the library allows: the CLI refuses it as Go
/// v1.3.0 would crash on it) or nothing to send.
pub(crate) fn spread_step(interval: Duration, packets: usize) -> Duration {
    let window = interval.saturating_sub(SPREAD_MARGIN);
    match u32::try_from(packets) {
        Ok(0) => Duration::ZERO,
        Ok(count) => window / count,
        Err(_) => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nsqd::statsd::lines::tests::{
        golden_after_traffic_a, golden_after_traffic_b, GOLDEN_PREFIX,
    };
    use crate::nsqd::statsd::lines::{build_lines, Counters};

    fn lines_of(lengths: &[usize]) -> Vec<String> {
        lengths
            .iter()
            .map(|&n| format!("{}\n", "x".repeat(n - 1)))
            .collect()
    }

    fn sizes(packets: &[Vec<u8>]) -> Vec<usize> {
        packets.iter().map(Vec::len).collect()
    }

    #[test]
    fn golden_pushes_split_where_go_splits() {
        let first = build_lines(
            GOLDEN_PREFIX,
            &golden_after_traffic_a(),
            &Counters::default(),
            false,
        );
        let packets = pack(&first, 508);
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].len(), 494, "Go's first packet of interval 1");
        assert!(String::from_utf8_lossy(&packets[1])
            .starts_with("nsq.vm_12345.topic.golden.channel.ch.timeout_count:0|c\n"));

        let previous = Counters::of(&golden_after_traffic_a());
        let second = build_lines(GOLDEN_PREFIX, &golden_after_traffic_b(), &previous, false);
        assert_eq!(
            pack(&second, 508)[0].len(),
            493,
            "Go's first packet of interval 2"
        );
    }

    #[test]
    fn packets_never_exceed_the_size_and_keep_every_line_in_order() {
        let lines = lines_of(&[10, 20, 30, 40, 5, 50, 1, 60, 25, 25]);
        for size in [60, 61, 75, 100, 1000] {
            let packets = pack(&lines, size);
            assert!(
                packets.iter().all(|p| p.len() <= size),
                "{size}: {:?}",
                sizes(&packets)
            );
            assert!(packets.iter().all(|p| p.ends_with(b"\n")));
            assert_eq!(packets.concat(), lines.concat().into_bytes(), "{size}");
        }
        assert_eq!(sizes(&pack(&lines, 60)), [60, 45, 51, 60, 50]);
    }

    #[test]
    fn a_packet_may_be_exactly_full() {
        assert_eq!(sizes(&pack(&lines_of(&[30, 30, 30]), 60)), [60, 30]);
    }

    #[test]
    fn an_oversized_line_goes_alone_and_whole() {
        let lines = lines_of(&[10, 100, 10, 10]);
        let packets = pack(&lines, 50);
        assert_eq!(sizes(&packets), [10, 100, 20]);
        assert_eq!(packets.concat(), lines.concat().into_bytes());
        assert_eq!(sizes(&pack(&lines_of(&[100]), 50)), [100]);
    }

    #[test]
    fn nothing_to_send_no_packets() {
        assert!(pack(&[], 508).is_empty());
    }

    #[test]
    fn packet_size_zero_or_negative_is_gos_default() {
        assert_eq!(packet_size_bytes(508), 508);
        assert_eq!(packet_size_bytes(1), 1);
        assert_eq!(packet_size_bytes(0), GO_DEFAULT_PACKET_BYTES);
        assert_eq!(packet_size_bytes(-5), GO_DEFAULT_PACKET_BYTES);
    }

    #[test]
    fn writes_are_spread_over_the_interval_less_one_second() {
        assert_eq!(
            spread_step(Duration::from_secs(2), 2),
            Duration::from_millis(500),
            "the golden capture: 2 packets 0.5 s apart"
        );
        assert_eq!(
            spread_step(Duration::from_secs(60), 3),
            Duration::from_secs(59) / 3
        );
        assert_eq!(
            spread_step(Duration::from_secs(10), 7),
            Duration::from_nanos(9_000_000_000 / 7),
            "whole nanoseconds, as Go divides"
        );
        assert_eq!(spread_step(Duration::from_secs(1), 2), Duration::ZERO);
        assert_eq!(spread_step(Duration::from_millis(300), 2), Duration::ZERO);
        assert_eq!(spread_step(Duration::from_secs(2), 0), Duration::ZERO);
    }
}
