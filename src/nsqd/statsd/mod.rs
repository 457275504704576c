//! The statsd loop (nsq-reference §4.9): every `--statsd-interval` it takes a stats
//! snapshot, turns it into Go nsqd's statsd lines (counters as deltas since the last
//! push, gauges as they are), packs them into UDP packets of at most
//! `--statsd-udp-packet-size` bytes and sends them from a fresh UDP socket, spreading the
//! writes over (interval − 1 s) as Go does.
//!
//! Layout: `lines` builds the lines (prefix, deltas, order); `packets` packs them and
//! computes the spacing; this file owns the timer and the socket.
//!
//! # `mem.*` lines
//! Go appends `mem.heap_objects`, `mem.heap_idle_bytes`, `mem.heap_in_use_bytes`,
//! `mem.heap_released_bytes`, `mem.gc_pause_usec_{100,99,95}`, `mem.next_gc_bytes` and
//! `mem.gc_runs` when `--statsd-mem-stats` is true (its default). They are Go runtime
//! heap and garbage-collector numbers; a Rust process has no garbage collector and no
//! equivalent heap accounting, so nsq-rs sends none of them rather than invent values.
//! The flag is accepted and has no effect (README, "statsd").
//!
//! # Differences kept on purpose
//! - A push with no lines (no topics) sends nothing; Go v1.3.0 would divide by zero in
//!   its spread writer there (it only reaches that with `--statsd-mem-stats=false`).
//! - The library accepts any non-zero interval; at 1 s or less the packets go out back
//!   to back. The CLI refuses ≤ 1 s, on which Go v1.3.0 panics.

mod lines;
mod packets;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::stats::StatsFilter;
use super::NsqdInner;
use crate::env::Datagram;
use lines::{build_lines, expand_prefix, Counters};
use packets::{pack, packet_size_bytes, spread_step};

/// The longest one packet write may take (Go dials its UDP socket with a 1 s timeout;
/// a send can only block on resolving a host name).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs until shutdown; started by [`crate::nsqd::Nsqd::run`] only when
/// `--statsd-address` is set.
pub(crate) async fn statsd_loop(nsqd: Arc<NsqdInner>) {
    let opts = &nsqd.opts;
    let interval = opts.statsd_interval;
    let prefix = expand_prefix(
        &opts.statsd_prefix,
        &opts.broadcast_address,
        broadcast_http_port(&nsqd),
    );
    let size_max = packet_size_bytes(opts.statsd_udp_packet_size);
    let first_tick = Instant::now()
        .checked_add(interval)
        .unwrap_or_else(Instant::now);
    // Go's ticker: first tick one interval after start; a slow push drops ticks.
    let mut ticker = tokio::time::interval_at(first_tick, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut previous = Counters::default();
    loop {
        tokio::select! {
            biased;
            _ = nsqd.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let addr = opts.statsd_address.as_str();
        // As in Go, a socket failure skips the push without forgetting the last
        // snapshot, so the next push's deltas cover both intervals.
        let socket = match nsqd.env.net.bind_udp(local_bind_address(addr)).await {
            Ok(socket) => socket,
            Err(error) => {
                tracing::error!(addr, %error, "failed to create UDP socket to statsd");
                continue;
            }
        };
        tracing::info!(addr, "STATSD: pushing stats");
        let topics = nsqd
            .stats(&StatsFilter::default())
            .topics
            .unwrap_or_default();
        let lines = build_lines(&prefix, &topics, &previous, opts.statsd_exclude_ephemeral);
        previous = Counters::of(&topics);
        let packets = pack(&lines, size_max);
        send_spread(&nsqd, &*socket, addr, &packets, interval).await;
    }
    tracing::info!("STATSD: closing");
}

/// The HTTP port in the prefix: `--broadcast-http-port`, else the real HTTP port (0
/// without an HTTP listener, as Go's empty address gives).
fn broadcast_http_port(nsqd: &NsqdInner) -> u16 {
    match nsqd.opts.broadcast_http_port {
        0 => nsqd.http_addr.map(|a| a.port()).unwrap_or(0),
        port => port,
    }
}

/// Where the sending socket binds: any address of the statsd address's family.
fn local_bind_address(statsd_address: &str) -> &'static str {
    if statsd_address.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
}

/// Sends `packets` in order, the first at once and each next one a
/// [`spread_step`] later; on shutdown the rest go out at once (Go skips the sleeps and
/// finishes the writes). A failed write is logged and the push goes on.
async fn send_spread(
    nsqd: &NsqdInner,
    socket: &dyn Datagram,
    addr: &str,
    packets: &[Vec<u8>],
    interval: Duration,
) {
    let step = spread_step(interval, packets.len());
    let start = Instant::now();
    for (index, packet) in packets.iter().enumerate() {
        if index > 0 && !step.is_zero() && !nsqd.shutdown.is_cancelled() {
            let offset = step.saturating_mul(u32::try_from(index).unwrap_or(u32::MAX));
            let due = start.checked_add(offset).unwrap_or(start);
            tokio::select! {
                biased;
                _ = nsqd.shutdown.cancelled() => {}
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        match tokio::time::timeout(SEND_TIMEOUT, socket.send_to(packet, addr)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(addr, %error, "STATSD: packet not sent"),
            Err(_) => tracing::warn!(addr, "STATSD: packet send timed out"),
        }
    }
}
