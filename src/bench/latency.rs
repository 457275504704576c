//! The latency probe: publish at a fixed rate while a consumer on another connection
//! FINs every message, and measure publish-to-deliver latency.
//!
//! A consumer connects, SUBscribes (so the channel exists before the first publish) and
//! sets RDY; then a publisher sends `batch_size` messages (PUB for one, MPUB for more)
//! on every tick of a tokio interval of `batch_size / rate` seconds, waiting for each
//! `OK`; a tick missed while waiting fires at once, so the average rate holds when nsqd
//! keeps up. The consumer flushes its FINs whenever its read buffer is empty.
//!
//! Latency is the consumer's wall clock at delivery minus the 8-byte timestamp nsqd
//! wrote into the message header when it accepted the publish: client and nsqd share
//! the host's clock. So it is nsqd's accept-to-deliver time plus one loopback hop and
//! the client's read, not the publisher's own send time. Percentiles come from an HDR
//! histogram (3 significant digits).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::error::{on_connection, BenchError};
use super::reader::{next_frame, FlushPolicy};
use super::Transport;
use crate::client::{ClientError, Connection, Frame};
use crate::env::{Clock, Net, RealClock};
use crate::go_time::{format_go_duration, go_nanos};
use crate::protocol::commands::Command;

/// The latency probe's flags.
#[derive(Debug, Clone)]
pub struct LatencyConfig {
    /// `--nsqd-tcp-address`.
    pub address: String,
    /// `--topic`.
    pub topic: String,
    /// `--channel`.
    pub channel: String,
    /// `--size`: bytes per message body.
    pub size: usize,
    /// `--rate`: messages per second to publish (at least 1).
    pub rate: u64,
    /// `--batch-size`: messages per PUB (1) or MPUB (more) on each tick (at least 1).
    pub batch_size: usize,
    /// `--runfor`: how long to publish.
    pub runfor: Duration,
    /// `--rdy`: the consumer's RDY count.
    pub rdy: i64,
    /// `--drain-timeout`: how long the consumer waits, after publishing ends, for the
    /// messages still on their way.
    pub drain_timeout: Duration,
    /// `--snappy` / `--deflate` / `--tls`, for both connections.
    pub transport: Transport,
}

/// What a latency run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    /// How long the publisher ran.
    pub duration: Duration,
    /// Messages acknowledged by nsqd.
    pub published: u64,
    /// Messages delivered to the consumer (and FINished).
    pub received: u64,
    /// The rate asked for, messages per second.
    pub target_rate: u64,
    /// Median publish-to-deliver latency.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The largest latency seen.
    pub max: Duration,
}

impl LatencySummary {
    /// Messages published per second, as achieved.
    pub fn published_per_s(&self) -> f64 {
        self.published as f64 / self.duration.as_secs_f64()
    }
}

impl fmt::Display for LatencySummary {
    /// `latency: <D> - <N> published (<R> msgs/s, target <T>) - <M> received - p50 <..>
    /// - p99 <..> - p99.9 <..> - max <..>`, durations in Go's syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let go = |d: Duration| format_go_duration(go_nanos(d));
        write!(
            f,
            "latency: {} - {} published ({:.1} msgs/s, target {}) - {} received - \
             p50 {} - p99 {} - p99.9 {} - max {}",
            go(self.duration),
            self.published,
            self.published_per_s(),
            self.target_rate,
            self.received,
            go(self.p50),
            go(self.p99),
            go(self.p999),
            go(self.max),
        )
    }
}

/// The histogram's range: 1 ns to one hour, 3 significant digits.
fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|err| BenchError::Histogram(err.to_string()))
}

/// Runs the probe: subscribes, publishes at `rate` for `runfor`, waits for the rest to
/// arrive (at most `drain_timeout`), and reports the latency percentiles.
pub async fn run_latency(
    net: Arc<dyn Net>,
    config: &LatencyConfig,
) -> Result<LatencySummary, BenchError> {
    let histogram = new_histogram()?;
    let consumer = subscribe(net.as_ref(), config)
        .await
        .map_err(on_connection(0))?;
    let publisher = connect_publisher(net.as_ref(), config)
        .await
        .map_err(on_connection(1))?;
    let (done_tx, done_rx) = watch::channel(None);
    let drain_timeout = config.drain_timeout;
    let consuming = tokio::spawn(async move {
        consume(consumer, histogram, done_rx, drain_timeout)
            .await
            .map_err(on_connection(0))
    });
    let start = Instant::now();
    let published = publish(publisher, config).await;
    let duration = start.elapsed();
    let published = match published {
        Ok(published) => published,
        Err(err) => {
            consuming.abort();
            return Err(on_connection(1)(err));
        }
    };
    let _ = done_tx.send(Some(published));
    let (received, histogram) = consuming.await??;
    let at = |q: f64| Duration::from_nanos(histogram.value_at_quantile(q));
    Ok(LatencySummary {
        duration,
        published,
        received,
        target_rate: config.rate,
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: Duration::from_nanos(histogram.max()),
    })
}

/// The consumer: IDENTIFY, SUB (answered before we go on, so the channel exists) and
/// RDY.
async fn subscribe(net: &dyn Net, config: &LatencyConfig) -> Result<Connection, ClientError> {
    let identify = json!({
        "client_id": "latency-consumer",
        "hostname": "latency-consumer",
        "user_agent": super::user_agent(),
    });
    let (mut conn, identify_pending) =
        super::open(net, &config.address, identify, &config.transport).await?;
    conn.send(&Command::Sub {
        topic: config.topic.clone(),
        channel: config.channel.clone(),
    });
    conn.flush().await?;
    if identify_pending {
        super::expect_ok(conn.read_response().await?)?;
    }
    super::expect_ok(conn.read_response().await?)?;
    conn.send(&Command::Rdy { count: config.rdy });
    conn.flush().await?;
    Ok(conn)
}

async fn connect_publisher(
    net: &dyn Net,
    config: &LatencyConfig,
) -> Result<Connection, ClientError> {
    let identify = json!({
        "client_id": "latency-publisher",
        "hostname": "latency-publisher",
        "user_agent": super::user_agent(),
    });
    let (mut conn, identify_pending) =
        super::open(net, &config.address, identify, &config.transport).await?;
    if identify_pending {
        conn.flush().await?;
        super::expect_ok(conn.read_response().await?)?;
    }
    Ok(conn)
}

/// The tick period that sends `batch_size` messages per tick at `rate` per second.
fn tick_period(rate: u64, batch_size: usize) -> Duration {
    let rate = rate.max(1);
    let batch = batch_size.max(1) as u64;
    Duration::from_nanos((batch.saturating_mul(1_000_000_000) / rate).max(1))
}

/// Publishes one batch per tick until `runfor` has passed; returns the messages
/// acknowledged.
async fn publish(mut conn: Connection, config: &LatencyConfig) -> Result<u64, ClientError> {
    let batch_size = config.batch_size.max(1);
    let body = Bytes::from(vec![0u8; config.size]);
    let command = if batch_size == 1 {
        Command::Pub {
            topic: config.topic.clone(),
            body,
        }
    } else {
        Command::Mpub {
            topic: config.topic.clone(),
            bodies: vec![body; batch_size],
        }
    };
    let mut encoded = BytesMut::new();
    command.encode(&mut encoded);
    let mut ticks = tokio::time::interval(tick_period(config.rate, batch_size));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let end = Instant::now() + config.runfor;
    let mut published = 0u64;
    loop {
        ticks.tick().await;
        if Instant::now() >= end {
            return Ok(published);
        }
        conn.send_raw(&encoded);
        conn.flush().await?;
        super::expect_ok(conn.read_response().await?)?;
        published += batch_size as u64;
    }
}

/// Reads and FINs messages, recording each one's latency, until the publisher's total
/// (sent on `done`) has arrived or `drain_timeout` has passed since it was sent.
async fn consume(
    mut conn: Connection,
    mut histogram: Histogram<u64>,
    mut done: watch::Receiver<Option<u64>>,
    drain_timeout: Duration,
) -> Result<(u64, Histogram<u64>), ClientError> {
    let mut received = 0u64;
    let mut total: Option<u64> = None;
    // Far away until the publisher's total is known.
    let mut deadline = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    loop {
        if total.is_some_and(|total| received >= total) {
            return Ok((received, histogram));
        }
        let frame = tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline) => return Ok((received, histogram)),
            changed = done.changed(), if total.is_none() => {
                total = *done.borrow();
                if changed.is_err() || total.is_some() {
                    total.get_or_insert(u64::MAX);
                    deadline = Instant::now() + drain_timeout;
                }
                continue;
            }
            frame = next_frame(&mut conn, FlushPolicy::Drained) => frame?,
        };
        match frame {
            Frame::Message(msg) => {
                let latency = RealClock.now_ns().saturating_sub(msg.timestamp_ns);
                histogram.saturating_record(u64::try_from(latency).unwrap_or(0).max(1));
                conn.send(&Command::Fin { id: msg.id });
                received += 1;
            }
            Frame::Response(_) => {}
            Frame::Error(data) => {
                return Err(ClientError::Server {
                    code_and_text: String::from_utf8_lossy(&data).into_owned(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // A real nsqd needs a real data directory.
    #![allow(clippy::disallowed_methods)]

    use std::sync::Arc;
    use std::time::Duration;

    use super::{run_latency, tick_period, LatencyConfig, LatencySummary};
    use crate::bench::Transport;
    use crate::env::{Env, RealNet};
    use crate::nsqd::{Nsqd, Options};

    #[test]
    fn the_tick_sends_the_batch_at_the_rate() {
        assert_eq!(tick_period(50_000, 50), Duration::from_millis(1));
        assert_eq!(tick_period(1000, 1), Duration::from_millis(1));
        assert_eq!(tick_period(0, 0), Duration::from_secs(1));
        assert_eq!(tick_period(u64::MAX, 1), Duration::from_nanos(1));
    }

    #[test]
    fn the_line_names_every_percentile() {
        let summary = LatencySummary {
            duration: Duration::from_secs(2),
            published: 100_000,
            received: 100_000,
            target_rate: 50_000,
            p50: Duration::from_micros(85),
            p99: Duration::from_micros(310),
            p999: Duration::from_micros(1200),
            max: Duration::from_millis(4),
        };
        assert_eq!(
            summary.to_string(),
            "latency: 2s - 100000 published (50000.0 msgs/s, target 50000) - 100000 received \
             - p50 85µs - p99 310µs - p99.9 1.2ms - max 4ms"
        );
    }

    #[tokio::test]
    async fn every_published_message_is_delivered_and_timed() {
        let dir = tempfile::tempdir().unwrap();
        let nsqd = Nsqd::new(Options::on_loopback(dir.path()), Env::real())
            .await
            .unwrap();
        let runner = nsqd.clone();
        tokio::spawn(async move { runner.run().await });
        for batch_size in [1, 10] {
            let config = LatencyConfig {
                address: nsqd.tcp_addr().to_string(),
                topic: format!("latency_{batch_size}"),
                channel: "ch".into(),
                size: 32,
                rate: 5_000,
                batch_size,
                runfor: Duration::from_millis(200),
                rdy: 100,
                drain_timeout: Duration::from_secs(3),
                transport: Transport::plain(),
            };
            let summary = run_latency(Arc::new(RealNet), &config).await.unwrap();
            assert!(summary.published > 0, "{summary}");
            assert_eq!(summary.published % batch_size as u64, 0, "{summary}");
            assert_eq!(summary.received, summary.published, "{summary}");
            assert!(summary.p50 > Duration::ZERO, "{summary}");
            assert!(summary.p50 <= summary.p99, "{summary}");
            assert!(summary.p99 <= summary.p999, "{summary}");
            assert!(summary.p999 <= summary.max, "{summary}");
            assert!(summary.max < Duration::from_secs(3), "{summary}");
        }
        nsqd.shutdown().await;
    }
}
