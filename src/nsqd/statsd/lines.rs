//! The lines of one statsd push, in Go nsqd's order and format (nsq-reference §4.9):
//! `<prefix><stat>:<value>|c` for counters (deltas since the last push) and `|g` for
//! gauges, each ending in `\n`. Pure: no IO, no clock.

use std::collections::BTreeMap;

use crate::nsqd::stats::{ChannelStats, E2eLatency, TopicStats};
use crate::protocol::names;

/// Expands `--statsd-prefix` as Go does at startup: every `%s` becomes the host key
/// (`<broadcast_address>:<http_port>` with `.` and `:` turned into `_`, an IPv6 address
/// in brackets as `net.JoinHostPort` writes it), and a `.` is appended when the result
/// does not already end with one. An empty prefix stays empty.
pub(crate) fn expand_prefix(prefix: &str, broadcast_address: &str, http_port: u16) -> String {
    if prefix.is_empty() {
        return String::new();
    }
    let host_port = if broadcast_address.contains(':') {
        format!("[{broadcast_address}]:{http_port}")
    } else {
        format!("{broadcast_address}:{http_port}")
    };
    let host_key = host_port.replace(['.', ':'], "_");
    let mut expanded = prefix.replace("%s", &host_key);
    if !expanded.ends_with('.') {
        expanded.push('.');
    }
    expanded
}

/// The counters of the previous push, by topic and channel name: what the next push
/// subtracts. A topic or channel missing here counts from zero.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Counters {
    topics: BTreeMap<String, TopicCounters>,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct TopicCounters {
    message_count: u64,
    message_bytes: u64,
    channels: BTreeMap<String, ChannelCounters>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ChannelCounters {
    message_count: u64,
    requeue_count: u64,
    timeout_count: u64,
}

impl Counters {
    /// Remembers the counters of every topic and channel in `topics` (ephemeral ones
    /// too, as Go keeps its whole last snapshot).
    pub(crate) fn of(topics: &[TopicStats]) -> Counters {
        let topics = topics
            .iter()
            .map(|topic| {
                let channels = topic
                    .channels
                    .iter()
                    .map(|channel| {
                        let counters = ChannelCounters {
                            message_count: channel.message_count,
                            requeue_count: channel.requeue_count,
                            timeout_count: channel.timeout_count,
                        };
                        (channel.channel_name.clone(), counters)
                    })
                    .collect();
                let counters = TopicCounters {
                    message_count: topic.message_count,
                    message_bytes: topic.message_bytes,
                    channels,
                };
                (topic.topic_name.clone(), counters)
            })
            .collect();
        Counters { topics }
    }
}

/// A counter's value for this push: `now - before` as Go computes it, in wrapping
/// unsigned arithmetic read back as signed. A topic deleted and re-created between two
/// pushes therefore reports a negative delta, exactly as Go nsqd does.
pub(crate) fn delta(now: u64, before: u64) -> i64 {
    now.wrapping_sub(before) as i64
}

/// A gauge's value (Go's stats fields are int64; ours never exceed it in practice).
fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The stat name suffix of one e2e quantile: quantile × 100 formatted as Go's `%.0f`
/// (round half to even on the exact value, as Rust's `{:.0}` also does): 0.99 → `99`.
pub(crate) fn e2e_stat_name(quantile: f64) -> String {
    format!("e2e_processing_latency_{:.0}", quantile * 100.0)
}

/// Collects lines under one prefix.
struct Lines<'a> {
    prefix: &'a str,
    out: Vec<String>,
}

impl Lines<'_> {
    fn counter(&mut self, stat: &str, value: i64) {
        self.out.push(format!("{}{stat}:{value}|c\n", self.prefix));
    }

    fn gauge(&mut self, stat: &str, value: i64) {
        self.out.push(format!("{}{stat}:{value}|g\n", self.prefix));
    }

    /// One gauge per configured quantile, in the order the stats list them.
    fn e2e(&mut self, stat_base: &str, latency: &E2eLatency) {
        for percentile in latency.percentiles.iter().flatten() {
            let stat = format!("{stat_base}.{}", e2e_stat_name(percentile.quantile));
            self.gauge(&stat, percentile.value);
        }
    }
}

/// Every topic and channel line of one push, in Go's order: per topic its counters,
/// gauges and e2e quantiles, then each of its channels. With `exclude_ephemeral`,
/// `#ephemeral` topics (with all their channels) and `#ephemeral` channels are skipped.
pub(crate) fn build_lines(
    prefix: &str,
    topics: &[TopicStats],
    previous: &Counters,
    exclude_ephemeral: bool,
) -> Vec<String> {
    let mut lines = Lines {
        prefix,
        out: Vec::new(),
    };
    let empty = TopicCounters::default();
    for topic in topics {
        if exclude_ephemeral && names::is_ephemeral(&topic.topic_name) {
            continue;
        }
        let before = previous.topics.get(&topic.topic_name).unwrap_or(&empty);
        let base = format!("topic.{}", topic.topic_name);
        lines.counter(
            &format!("{base}.message_count"),
            delta(topic.message_count, before.message_count),
        );
        lines.counter(
            &format!("{base}.message_bytes"),
            delta(topic.message_bytes, before.message_bytes),
        );
        lines.gauge(&format!("{base}.depth"), gauge_value(topic.depth));
        lines.gauge(
            &format!("{base}.backend_depth"),
            gauge_value(topic.backend_depth),
        );
        lines.e2e(&base, &topic.e2e_processing_latency);
        for channel in &topic.channels {
            if exclude_ephemeral && names::is_ephemeral(&channel.channel_name) {
                continue;
            }
            let before = before
                .channels
                .get(&channel.channel_name)
                .copied()
                .unwrap_or_default();
            channel_lines(&mut lines, &base, channel, before);
        }
    }
    lines.out
}

fn channel_lines(
    lines: &mut Lines<'_>,
    topic_base: &str,
    channel: &ChannelStats,
    before: ChannelCounters,
) {
    let base = format!("{topic_base}.channel.{}", channel.channel_name);
    lines.counter(
        &format!("{base}.message_count"),
        delta(channel.message_count, before.message_count),
    );
    lines.gauge(&format!("{base}.depth"), gauge_value(channel.depth));
    lines.gauge(
        &format!("{base}.backend_depth"),
        gauge_value(channel.backend_depth),
    );
    lines.gauge(
        &format!("{base}.in_flight_count"),
        gauge_value(channel.in_flight_count),
    );
    lines.gauge(
        &format!("{base}.deferred_count"),
        gauge_value(channel.deferred_count),
    );
    lines.counter(
        &format!("{base}.requeue_count"),
        delta(channel.requeue_count, before.requeue_count),
    );
    lines.counter(
        &format!("{base}.timeout_count"),
        delta(channel.timeout_count, before.timeout_count),
    );
    lines.gauge(
        &format!("{base}.clients"),
        gauge_value(channel.client_count),
    );
    lines.e2e(&base, &channel.e2e_processing_latency);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nsqd::stats::Percentile;

    /// The prefix of the golden capture (`nsq.<HOST>_<PORT>.` with host `vm` and a
    /// five-digit port), so packet sizes compare with Go's.
    pub(crate) const GOLDEN_PREFIX: &str = "nsq.vm_12345.";

    pub(crate) fn channel(name: &str) -> ChannelStats {
        ChannelStats {
            channel_name: name.into(),
            depth: 0,
            backend_depth: 0,
            in_flight_count: 0,
            deferred_count: 0,
            message_count: 0,
            requeue_count: 0,
            timeout_count: 0,
            client_count: 0,
            clients: None,
            paused: false,
            e2e_processing_latency: E2eLatency::default(),
        }
    }

    pub(crate) fn topic(name: &str, channels: Vec<ChannelStats>) -> TopicStats {
        TopicStats {
            topic_name: name.into(),
            channels,
            depth: 0,
            backend_depth: 0,
            message_count: 0,
            message_bytes: 0,
            paused: false,
            e2e_processing_latency: E2eLatency::default(),
        }
    }

    /// The state of the golden capture after its traffic A: 3 messages (11 bytes)
    /// published, one requeued, one still in flight, one client.
    pub(crate) fn golden_after_traffic_a() -> Vec<TopicStats> {
        let mut ch = channel("ch");
        ch.message_count = 3;
        ch.requeue_count = 1;
        ch.in_flight_count = 1;
        ch.client_count = 1;
        let mut golden = topic("golden", vec![ch]);
        golden.message_count = 3;
        golden.message_bytes = 11;
        vec![golden]
    }

    /// ... and after traffic B: 2 more messages (8 bytes), both FINished.
    pub(crate) fn golden_after_traffic_b() -> Vec<TopicStats> {
        let mut topics = golden_after_traffic_a();
        topics[0].message_count += 2;
        topics[0].message_bytes += 8;
        topics[0].channels[0].message_count += 2;
        topics
    }

    fn text(lines: &[String]) -> String {
        lines.concat()
    }

    #[test]
    fn prefix_expands_host_key_and_appends_a_dot() {
        assert_eq!(expand_prefix("nsq.%s", "vm", 4151), "nsq.vm_4151.");
        assert_eq!(
            expand_prefix("nsq.%s", "host.example.com", 4151),
            "nsq.host_example_com_4151."
        );
        assert_eq!(expand_prefix("nsq.%s.", "10.0.0.1", 80), "nsq.10_0_0_1_80.");
        assert_eq!(expand_prefix("%s.x.%s", "a", 1), "a_1.x.a_1.");
        assert_eq!(expand_prefix("fixed", "a", 1), "fixed.");
        assert_eq!(expand_prefix("", "a", 1), "", "an empty prefix stays empty");
        assert_eq!(
            expand_prefix("nsq.%s", "::1", 4151),
            "nsq.[__1]_4151.",
            "IPv6 goes through net.JoinHostPort's brackets"
        );
    }

    #[test]
    fn first_push_matches_go_golden_lines_and_order() {
        let lines = build_lines(
            GOLDEN_PREFIX,
            &golden_after_traffic_a(),
            &Counters::default(),
            false,
        );
        let p = GOLDEN_PREFIX;
        let expected = format!(
            "{p}topic.golden.message_count:3|c\n\
             {p}topic.golden.message_bytes:11|c\n\
             {p}topic.golden.depth:0|g\n\
             {p}topic.golden.backend_depth:0|g\n\
             {p}topic.golden.channel.ch.message_count:3|c\n\
             {p}topic.golden.channel.ch.depth:0|g\n\
             {p}topic.golden.channel.ch.backend_depth:0|g\n\
             {p}topic.golden.channel.ch.in_flight_count:1|g\n\
             {p}topic.golden.channel.ch.deferred_count:0|g\n\
             {p}topic.golden.channel.ch.requeue_count:1|c\n\
             {p}topic.golden.channel.ch.timeout_count:0|c\n\
             {p}topic.golden.channel.ch.clients:1|g\n"
        );
        assert_eq!(text(&lines), expected);
        assert_eq!(lines.len(), 12, "one line per element");
    }

    #[test]
    fn counters_are_deltas_since_the_previous_push_and_gauges_are_not() {
        let previous = Counters::of(&golden_after_traffic_a());
        let lines = build_lines(GOLDEN_PREFIX, &golden_after_traffic_b(), &previous, false);
        let text = text(&lines);
        assert!(text.contains("topic.golden.message_count:2|c\n"), "{text}");
        assert!(text.contains("topic.golden.message_bytes:8|c\n"));
        assert!(text.contains("channel.ch.message_count:2|c\n"));
        assert!(text.contains("channel.ch.requeue_count:0|c\n"));
        assert!(text.contains("channel.ch.in_flight_count:1|g\n"), "gauge");
        assert!(text.contains("channel.ch.clients:1|g\n"), "gauge");
    }

    #[test]
    fn new_topics_and_channels_count_from_zero() {
        let previous = Counters::of(&[topic("old", vec![])]);
        let mut fresh = channel("fresh");
        fresh.message_count = 4;
        let mut new = topic("new", vec![fresh]);
        new.message_count = 4;
        let lines = text(&build_lines("", &[new], &previous, false));
        assert!(
            lines.starts_with("topic.new.message_count:4|c\n"),
            "{lines}"
        );
        assert!(lines.contains("topic.new.channel.fresh.message_count:4|c\n"));
    }

    #[test]
    fn a_recreated_topic_reports_a_negative_delta_like_go() {
        let mut before = topic("t", vec![]);
        before.message_count = 5;
        let previous = Counters::of(&[before]);
        let mut after = topic("t", vec![]);
        after.message_count = 2;
        let lines = build_lines("", &[after], &previous, false);
        assert_eq!(lines[0], "topic.t.message_count:-3|c\n");
        assert_eq!(delta(u64::MAX, 0), -1, "uint64 wraps into int64 as in Go");
        assert_eq!(delta(7, 7), 0);
    }

    #[test]
    fn e2e_quantiles_become_gauges_after_their_element() {
        let quantiles = || E2eLatency {
            count: 1,
            percentiles: Some(vec![
                Percentile {
                    quantile: 0.99,
                    value: 1_500_000,
                },
                Percentile {
                    quantile: 0.5,
                    value: 900_000,
                },
            ]),
        };
        let mut ch = channel("ch");
        ch.e2e_processing_latency = quantiles();
        let mut golden = topic("golden", vec![ch]);
        golden.e2e_processing_latency = quantiles();
        let lines = build_lines("", &[golden], &Counters::default(), false);
        let names: Vec<&str> = lines
            .iter()
            .map(|l| l.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "topic.golden.message_count",
                "topic.golden.message_bytes",
                "topic.golden.depth",
                "topic.golden.backend_depth",
                "topic.golden.e2e_processing_latency_99",
                "topic.golden.e2e_processing_latency_50",
                "topic.golden.channel.ch.message_count",
                "topic.golden.channel.ch.depth",
                "topic.golden.channel.ch.backend_depth",
                "topic.golden.channel.ch.in_flight_count",
                "topic.golden.channel.ch.deferred_count",
                "topic.golden.channel.ch.requeue_count",
                "topic.golden.channel.ch.timeout_count",
                "topic.golden.channel.ch.clients",
                "topic.golden.channel.ch.e2e_processing_latency_99",
                "topic.golden.channel.ch.e2e_processing_latency_50",
            ],
            "the order of Go's extra capture"
        );
        assert_eq!(
            lines[4],
            "topic.golden.e2e_processing_latency_99:1500000|g\n"
        );
        assert_eq!(
            lines[15],
            "topic.golden.channel.ch.e2e_processing_latency_50:900000|g\n"
        );
    }

    #[test]
    fn e2e_names_follow_go_percent_zero_f() {
        assert_eq!(e2e_stat_name(0.99), "e2e_processing_latency_99");
        assert_eq!(e2e_stat_name(1.0), "e2e_processing_latency_100");
        assert_eq!(e2e_stat_name(0.5), "e2e_processing_latency_50");
        assert_eq!(e2e_stat_name(0.999), "e2e_processing_latency_100");
        assert_eq!(
            e2e_stat_name(0.125),
            "e2e_processing_latency_12",
            "half to even"
        );
        assert_eq!(e2e_stat_name(0.001), "e2e_processing_latency_0");
    }

    #[test]
    fn no_percentiles_no_e2e_lines() {
        let lines = build_lines(
            "",
            &[topic("t", vec![channel("c")])],
            &Counters::default(),
            false,
        );
        assert!(lines.iter().all(|l| !l.contains("e2e")));
        assert_eq!(lines.len(), 4 + 8);
    }

    #[test]
    fn exclude_ephemeral_skips_ephemeral_topics_and_channels() {
        let topics = vec![
            topic("eph#ephemeral", vec![channel("c")]),
            topic("t", vec![channel("c#ephemeral"), channel("d")]),
        ];
        let all = build_lines("", &topics, &Counters::default(), false);
        assert_eq!(all.len(), (4 + 8) + (4 + 8 + 8));
        let kept = build_lines("", &topics, &Counters::default(), true);
        assert_eq!(kept.len(), 4 + 8);
        assert!(kept.iter().all(|l| !l.contains("ephemeral")), "{kept:?}");
        assert!(kept.iter().any(|l| l.starts_with("topic.t.channel.d.")));
    }
}
