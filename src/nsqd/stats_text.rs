//! `/stats` in Go's human text layout (the default format).

use std::fmt::Write;
use std::time::Duration;

use super::stats::{ClientStats, E2eLatency, Stats};
use crate::go_time::format_go_duration;

/// Renders `stats` as Go's `printStats` does; `now_ns` gives uptime and connection ages.
pub(crate) fn render(stats: &Stats, now_ns: i64) -> String {
    let now_s = now_ns / 1_000_000_000;
    let mut w = String::new();
    let _ = writeln!(w, "nsqd v{} (built w/rustc)", stats.version);
    let start = std::time::UNIX_EPOCH + Duration::from_secs(stats.start_time.max(0) as u64);
    let _ = writeln!(w, "start_time {}", humantime::format_rfc3339_seconds(start));
    let uptime_ns = now_ns.saturating_sub(stats.start_time.saturating_mul(1_000_000_000));
    let _ = writeln!(w, "uptime {}", format_go_duration(uptime_ns));
    let _ = writeln!(w, "\nHealth: {}", stats.health);
    if let Some(mem) = &stats.memory {
        let _ = writeln!(w, "\nMemory:");
        for (name, value) in [
            ("heap_objects", mem.heap_objects),
            ("heap_idle_bytes", mem.heap_idle_bytes),
            ("heap_in_use_bytes", mem.heap_in_use_bytes),
            ("heap_released_bytes", mem.heap_released_bytes),
            ("gc_pause_usec_100", mem.gc_pause_usec_100),
            ("gc_pause_usec_99", mem.gc_pause_usec_99),
            ("gc_pause_usec_95", mem.gc_pause_usec_95),
            ("next_gc_bytes", mem.next_gc_bytes),
            ("gc_total_runs", mem.gc_total_runs),
        ] {
            let _ = writeln!(w, "   {name:<25}\t{value}");
        }
    }
    let topics = stats.topics.as_deref().unwrap_or(&[]);
    if topics.is_empty() {
        let _ = writeln!(w, "\nTopics: None");
    } else {
        let _ = write!(w, "\nTopics:");
    }
    for topic in topics {
        let prefix = if topic.paused { "*P " } else { "   " };
        let _ = writeln!(
            w,
            "\n{prefix}[{:<15}] depth: {:<5} be-depth: {:<5} msgs: {:<8} e2e%: {}",
            topic.topic_name,
            topic.depth,
            topic.backend_depth,
            topic.message_count,
            e2e(&topic.e2e_processing_latency)
        );
        for channel in &topic.channels {
            let prefix = if channel.paused { "   *P " } else { "      " };
            let _ = writeln!(
                w,
                "{prefix}[{:<25}] depth: {:<5} be-depth: {:<5} inflt: {:<4} def: {:<4} re-q: {:<5} timeout: {:<5} msgs: {:<8} e2e%: {}",
                channel.channel_name,
                channel.depth,
                channel.backend_depth,
                channel.in_flight_count,
                channel.deferred_count,
                channel.requeue_count,
                channel.timeout_count,
                channel.message_count,
                e2e(&channel.e2e_processing_latency)
            );
            for client in channel.clients.as_deref().unwrap_or(&[]) {
                let _ = writeln!(w, "        {}", client_line(client, now_s));
            }
        }
    }
    let producers = stats.producers.as_deref().unwrap_or(&[]);
    if producers.is_empty() {
        let _ = writeln!(w, "\nProducers: None");
    } else {
        let _ = writeln!(w, "\nProducers:");
        for client in producers {
            let _ = writeln!(w, "   {}", client_line(client, now_s));
        }
    }
    w
}

/// Go's `quantile.Result.String()`: each value in human units, no quantile labels,
/// joined by `, `; empty when tracking is off.
fn e2e(latency: &E2eLatency) -> String {
    latency
        .percentiles
        .iter()
        .flatten()
        .map(|p| nanos_to_human(p.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Go's `stringy.NanoSecondToHuman`: one decimal in the largest unit the value exceeds.
fn nanos_to_human(ns: i64) -> String {
    let v = ns as f64;
    let (scaled, unit) = if v > 1e9 {
        (v / 1e9, "s")
    } else if v > 1e6 {
        (v / 1e6, "ms")
    } else if v > 1e3 {
        (v / 1e3, "us")
    } else {
        (v, "ns")
    };
    format!("{scaled:.1}{unit}")
}

/// Go's `ClientStats.String()`.
fn client_line(client: &ClientStats, now_s: i64) -> String {
    let port = client
        .remote_address
        .rsplit_once(':')
        .map(|(_, port)| port)
        .unwrap_or("");
    let mut identifier = format!("{}:{}", client.hostname, port);
    if !client.user_agent.is_empty() {
        identifier.push(' ');
        identifier.push_str(&client.user_agent);
    }
    let connected = format_go_duration((now_s - client.connect_ts).max(0) * 1_000_000_000);
    if !client.pub_counts.is_empty() {
        let total: u64 = client.pub_counts.iter().map(|p| p.count).sum();
        let topics: Vec<String> = client
            .pub_counts
            .iter()
            .map(|p| format!("{}={}", p.topic, p.count))
            .collect();
        return format!(
            "[{} {:<21}] msgs: {:<8} topics: {} connected: {}",
            client.version,
            identifier,
            total,
            topics.join(","),
            connected
        );
    }
    format!(
        "[{} {:<21}] state: {} inflt: {:<4} rdy: {:<4} fin: {:<8} re-q: {:<8} msgs: {:<8} connected: {}",
        client.version,
        identifier,
        client.state,
        client.in_flight_count,
        client.ready_count,
        client.finish_count,
        client.requeue_count,
        client.message_count,
        connected
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nsqd::stats::Percentile;

    #[test]
    fn nanos_to_human_matches_go_units_and_boundaries() {
        for (ns, text) in [
            (0, "0.0ns"),
            (999, "999.0ns"),
            (1_000, "1000.0ns"),
            (1_001, "1.0us"),
            (1_250, "1.2us"),
            (1_000_000, "1000.0us"),
            (2_345_678, "2.3ms"),
            (1_000_000_000, "1000.0ms"),
            (90_000_000_000, "90.0s"),
        ] {
            assert_eq!(nanos_to_human(ns), text, "{ns}");
        }
    }

    #[test]
    fn e2e_lists_values_only_or_nothing_when_off() {
        assert_eq!(e2e(&E2eLatency::default()), "");
        let latency = E2eLatency {
            count: 3,
            percentiles: Some(vec![
                Percentile {
                    quantile: 1.0,
                    value: 12_300_000,
                },
                Percentile {
                    quantile: 0.5,
                    value: 450,
                },
            ]),
        };
        assert_eq!(e2e(&latency), "12.3ms, 450.0ns");
    }
}
