//! The writer: Go's bench_writer. Each connection IDENTIFYs, then sends one MPUB of
//! `batch_size` copies of a `size`-byte body at a time, waiting for each `OK`, until
//! `runfor` has passed. Additions: a topic per connection and PUB instead of an MPUB of
//! one (for the suite), DPUB batches (`batch_size` DPUBs sent together, then their
//! `OK`s read) and a message count to stop at (for the deferred-message benchmark).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::json;
use tokio::time::Instant;

use super::error::{on_connection, BenchError};
use super::report::Summary;
use super::Transport;
use crate::client::{ClientError, Connection};
use crate::env::Net;
use crate::protocol::commands::Command;

/// The writer's flags.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// `--nsqd-tcp-address`.
    pub address: String,
    /// `--topic`.
    pub topic: String,
    /// `--size`: bytes per message body.
    pub size: usize,
    /// `--batch-size`: messages per MPUB.
    pub batch_size: usize,
    /// `--runfor`: a connection stops after the first batch answered past this.
    pub runfor: Duration,
    /// `--connections`.
    pub connections: usize,
    /// When to start once the connections are prepared (`--deadline`); None: at once.
    pub start_at: Option<Instant>,
    /// `--snappy` / `--deflate` / `--tls`.
    pub transport: Transport,
    /// Connection `i` publishes to `"{topic}_{i}"` instead of `topic` (the suite's
    /// many-topics case); Go's tool has no such mode.
    pub topic_per_connection: bool,
    /// With `batch_size` 1, send PUB instead of Go's MPUB of one body.
    pub single_pub: bool,
    /// `--defer`: publish with DPUB, deferred this long.
    pub defer: Option<Duration>,
    /// `--count`: stop once this many messages are published (split over the
    /// connections), or when `runfor` passes, whichever comes first.
    pub count: Option<u64>,
}

/// Runs the writer and reports the messages published by all connections.
pub async fn run_writer(net: Arc<dyn Net>, config: &WriterConfig) -> Result<Summary, BenchError> {
    let shared_command = encoded_command(config, &config.topic);
    let mut prepared = Vec::with_capacity(config.connections);
    for index in 0..config.connections {
        let conn = prepare(net.as_ref(), &config.address, &config.transport)
            .await
            .map_err(on_connection(index))?;
        let command = if config.topic_per_connection {
            encoded_command(config, &format!("{}_{index}", config.topic))
        } else {
            shared_command.clone()
        };
        prepared.push((conn, command));
    }
    if let Some(start_at) = config.start_at {
        tokio::time::sleep_until(start_at).await;
    }

    let start = Instant::now();
    let connections = prepared.len() as u64;
    let workers: Vec<_> = prepared
        .into_iter()
        .enumerate()
        .map(|(index, (conn, mpub))| {
            let (runfor, batch) = (config.runfor, config.batch_size);
            let quota = config
                .count
                .map(|count| count / connections + u64::from((index as u64) < count % connections));
            tokio::spawn(async move {
                publish_until(conn, mpub, batch, runfor, quota)
                    .await
                    .map_err(on_connection(index))
            })
        })
        .collect();
    let mut messages = 0;
    for worker in workers {
        messages += worker.await??;
    }
    Ok(Summary {
        duration: start.elapsed(),
        messages,
        message_size: config.size,
    })
}

/// The MPUB (or PUB, or DPUBs) command for `topic`, encoded once: every batch is the
/// same bytes.
fn encoded_command(config: &WriterConfig, topic: &str) -> Bytes {
    let body = Bytes::from(vec![0u8; config.size]);
    let mut buf = BytesMut::new();
    if let Some(defer) = config.defer {
        let dpub = Command::Dpub {
            topic: topic.to_owned(),
            defer_ms: i64::try_from(defer.as_millis()).unwrap_or(i64::MAX),
            body,
        };
        for _ in 0..config.batch_size {
            dpub.encode(&mut buf);
        }
        return buf.freeze();
    }
    let command = if config.single_pub && config.batch_size == 1 {
        Command::Pub {
            topic: topic.to_owned(),
            body,
        }
    } else {
        Command::Mpub {
            topic: topic.to_owned(),
            bodies: vec![body; config.batch_size],
        }
    };
    command.encode(&mut buf);
    buf.freeze()
}

/// A connection introduced to nsqd, and whether IDENTIFY's answer is still to be read.
type Prepared = (Connection, bool);

/// Connects and queues IDENTIFY (sent when the run starts, like Go), or IDENTIFYs and
/// upgrades at once when compression is asked for.
async fn prepare(
    net: &dyn Net,
    address: &str,
    transport: &Transport,
) -> Result<Prepared, ClientError> {
    let identify = json!({
        "client_id": "writer",
        "hostname": "writer",
        "user_agent": super::user_agent(),
    });
    super::open(net, address, identify, transport).await
}

/// One connection's loop; returns the number of messages nsqd acknowledged. `batch`
/// is one MPUB or PUB, or `batch_size` DPUBs (one `OK` each).
async fn publish_until(
    (mut conn, identify_pending): Prepared,
    batch: Bytes,
    batch_size: usize,
    runfor: Duration,
    quota: Option<u64>,
) -> Result<u64, ClientError> {
    if identify_pending {
        conn.flush().await?;
        conn.read_response().await?;
    }
    let dpubs = batch.starts_with(b"DPUB ");
    let one_dpub = batch.len() / batch_size.max(1);
    let end = Instant::now() + runfor;
    let mut published = 0u64;
    loop {
        let left = quota.map_or(u64::MAX, |quota| quota.saturating_sub(published));
        if left == 0 {
            return Ok(published);
        }
        let this_batch = if dpubs {
            let n = (batch_size as u64).min(left) as usize;
            conn.send_raw(&batch[..n * one_dpub]);
            n
        } else {
            conn.send_raw(&batch);
            batch_size
        };
        conn.flush().await?;
        for _ in 0..if dpubs { this_batch } else { 1 } {
            super::expect_ok(conn.read_response().await?)?;
        }
        published += this_batch as u64;
        if Instant::now() > end {
            return Ok(published);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{run_writer, WriterConfig};
    use crate::bench::fake_nsqd::FakeNsqd;
    use crate::bench::{BenchError, Compression, Transport};
    use crate::env::RealNet;

    fn config(address: String) -> WriterConfig {
        WriterConfig {
            address,
            topic: "sub_bench".into(),
            size: 10,
            batch_size: 7,
            runfor: Duration::from_millis(50),
            connections: 2,
            start_at: None,
            transport: Transport::plain(),
            topic_per_connection: false,
            single_pub: false,
            defer: None,
            count: None,
        }
    }

    #[tokio::test]
    async fn dpub_batches_stop_at_the_count() {
        let nsqd = FakeNsqd::start().await;
        let mut dpubs = config(nsqd.address());
        dpubs.defer = Some(Duration::from_secs(3600));
        dpubs.count = Some(30);
        dpubs.runfor = Duration::from_secs(60);
        let summary = run_writer(Arc::new(RealNet), &dpubs).await.unwrap();
        assert_eq!(summary.messages, 30);
        assert_eq!(nsqd.published(), 30);
    }

    #[tokio::test]
    async fn every_acknowledged_batch_is_counted() {
        let nsqd = FakeNsqd::start().await;
        let summary = run_writer(Arc::new(RealNet), &config(nsqd.address()))
            .await
            .unwrap();
        assert!(summary.messages > 0);
        assert_eq!(summary.messages % 7, 0);
        assert_eq!(summary.messages, nsqd.published());
        assert_eq!(summary.message_size, 10);
        assert!(summary.duration >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_server_error_names_the_connection() {
        let nsqd = FakeNsqd::start().await;
        let mut bad = config(nsqd.address());
        bad.topic = "bad!topic".into();
        let err = run_writer(Arc::new(RealNet), &bad).await.unwrap_err();
        match err {
            BenchError::Connection { source, .. } => {
                assert_eq!(source.server_code(), Some("E_BAD_TOPIC"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_server_error_reaches_a_compressed_connection() {
        let nsqd = FakeNsqd::start().await;
        let mut bad = config(nsqd.address());
        bad.topic = "bad!topic".into();
        bad.transport.compression = Compression::Snappy;
        let err = run_writer(Arc::new(RealNet), &bad).await.unwrap_err();
        match err {
            BenchError::Connection { source, .. } => {
                assert_eq!(source.server_code(), Some("E_BAD_TOPIC"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn compressed_connections_publish_too() {
        for compression in [Compression::Snappy, Compression::Deflate { level: 1 }] {
            let nsqd = FakeNsqd::start().await;
            let mut compressed = config(nsqd.address());
            compressed.transport.compression = compression;
            let summary = run_writer(Arc::new(RealNet), &compressed).await.unwrap();
            assert!(summary.messages > 0, "{compression:?}");
            assert_eq!(summary.messages, nsqd.published(), "{compression:?}");
        }
    }

    #[tokio::test]
    async fn a_refused_compression_is_a_clear_error() {
        let nsqd = FakeNsqd::start_with_compression(false).await;
        for (compression, name) in [
            (Compression::Snappy, "snappy"),
            (Compression::Deflate { level: 6 }, "deflate"),
        ] {
            let mut asked = config(nsqd.address());
            asked.transport.compression = compression;
            let err = run_writer(Arc::new(RealNet), &asked).await.unwrap_err();
            assert!(
                err.to_string().ends_with(&format!("nsqd refused {name}")),
                "{err}"
            );
        }
    }
}
