//! The reader: Go's bench_reader. Each connection IDENTIFYs, SUBscribes and sets RDY, then
//! FINs every message it receives until `runfor` has passed. Unlike Go's, it then sends
//! its last FINs and CLS and FINs what is still on its way, so no message is left in
//! flight to wait for nsqd's msg-timeout.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::error::{on_connection, BenchError};
use super::report::Summary;
use super::Transport;
use crate::client::{ClientError, Connection, Frame};
use crate::env::Net;
use crate::protocol::commands::Command;

/// When the reader writes its queued FINs out.
///
/// Go's rule costs one write per message in the last quarter of each RDY window. On the
/// 2-core dev VM against our nsqd (rdy 2500, 2 connections, 200 B) it read ~1.35M msgs/s,
/// `Drained` ~3.1M msgs/s; Go's stays the default so numbers compare with Go's tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Go's rule: after a message, flush when `count % rdy > 0.75 * rdy`. Nothing is
    /// flushed for the first three quarters of each RDY window, so with `--rdy 1` the
    /// reader stalls, exactly like Go's.
    Go,
    /// Flush whenever no whole frame is left in the read buffer, just before blocking on
    /// the socket: every FIN leaves with the read that follows it.
    Drained,
}

/// The reader's flags.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// `--nsqd-tcp-address`.
    pub address: String,
    /// `--topic`.
    pub topic: String,
    /// `--channel`.
    pub channel: String,
    /// `--size`: only used for the MiB/s figure.
    pub size: usize,
    /// `--rdy`.
    pub rdy: i64,
    /// `--runfor`: each connection reads this long after its SUB is answered.
    pub runfor: Duration,
    /// `--connections`.
    pub connections: usize,
    /// When to start once the connections are prepared (`--deadline`); None: at once.
    pub start_at: Option<Instant>,
    /// `--fin-flush`.
    pub flush_policy: FlushPolicy,
    /// `--snappy` / `--deflate` / `--tls`.
    pub transport: Transport,
}

/// Runs the reader and reports the messages received by all connections.
pub async fn run_reader(net: Arc<dyn Net>, config: &ReaderConfig) -> Result<Summary, BenchError> {
    let mut prepared = Vec::with_capacity(config.connections);
    for index in 0..config.connections {
        let conn = prepare(net.as_ref(), config)
            .await
            .map_err(on_connection(index))?;
        prepared.push(conn);
    }
    if let Some(start_at) = config.start_at {
        tokio::time::sleep_until(start_at).await;
    }

    let start = Instant::now();
    let workers: Vec<_> = prepared
        .into_iter()
        .enumerate()
        .map(|(index, conn)| {
            let config = config.clone();
            tokio::spawn(async move {
                consume_until(conn, &config)
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

/// Connects and queues IDENTIFY and SUB (sent with RDY when the run starts, like Go);
/// with compression, IDENTIFY and the upgrade happen here and only SUB is queued.
async fn prepare(net: &dyn Net, config: &ReaderConfig) -> Result<Connection, ClientError> {
    let identify = json!({
        "client_id": "reader",
        "hostname": "reader",
        "user_agent": super::user_agent(),
    });
    let (mut conn, _) = super::open(net, &config.address, identify, &config.transport).await?;
    conn.send(&Command::Sub {
        topic: config.topic.clone(),
        channel: config.channel.clone(),
    });
    Ok(conn)
}

/// One connection's loop; returns the number of messages received.
async fn consume_until(mut conn: Connection, config: &ReaderConfig) -> Result<u64, ClientError> {
    conn.send(&Command::Rdy { count: config.rdy });
    conn.flush().await?;
    // The OKs for IDENTIFY and SUB are handled by the loop like any response, so a server
    // that lets a message overtake them still works (an error frame still stops us).
    let end = Instant::now() + config.runfor;
    let mut received = 0u64;
    loop {
        let frame = tokio::select! {
            biased;
            _ = tokio::time::sleep_until(end) => {
                finish_up(&mut conn).await?;
                return Ok(received);
            }
            frame = next_frame(&mut conn, config.flush_policy) => frame?,
        };
        match frame {
            Frame::Message(msg) => {
                conn.send(&Command::Fin { id: msg.id });
                received += 1;
                if config.flush_policy == FlushPolicy::Go && go_should_flush(received, config.rdy) {
                    conn.flush().await?;
                }
            }
            // OKs, heartbeats (already answered) and stray responses, which Go skips too.
            Frame::Response(_) => {}
            Frame::Error(data) => {
                return Err(ClientError::Server {
                    code_and_text: String::from_utf8_lossy(&data).into_owned(),
                })
            }
        }
    }
}

/// How long a reader waits, after its run, for nsqd to confirm the close.
const CLOSE_WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// After the run: the FINs still queued go out, then CLS, and every message still on its
/// way is FIN'd (not counted) until nsqd answers `CLOSE_WAIT`, so a run leaves nothing in
/// flight behind it.
async fn finish_up(conn: &mut Connection) -> Result<(), ClientError> {
    conn.send(&Command::Cls);
    conn.flush().await?;
    let closed = tokio::time::timeout(CLOSE_WAIT_TIMEOUT, async {
        loop {
            match conn.read_frame().await? {
                Frame::Message(msg) => conn.send(&Command::Fin { id: msg.id }),
                Frame::Response(data) if data == crate::protocol::frame::CLOSE_WAIT => break,
                Frame::Response(_) => {}
                // A FIN of a message that timed out meanwhile (and went to another
                // connection): nsqd says so and goes on.
                Frame::Error(data) if data.starts_with(b"E_FIN_FAILED") => {}
                Frame::Error(data) => {
                    return Err(ClientError::Server {
                        code_and_text: String::from_utf8_lossy(&data).into_owned(),
                    })
                }
            }
        }
        conn.flush().await
    })
    .await;
    closed.unwrap_or(Ok(()))
}

/// The next frame; under [`FlushPolicy::Drained`], queued FINs go out before blocking.
/// Cancel-safe, as both of its awaits are.
pub(super) async fn next_frame(
    conn: &mut Connection,
    policy: FlushPolicy,
) -> Result<Frame, ClientError> {
    if policy == FlushPolicy::Drained {
        if let Some(frame) = conn.try_read_frame()? {
            return Ok(frame);
        }
        conn.flush().await?;
    }
    conn.read_frame().await
}

/// Go's `float64(msgCount%int64(*rdy)) > float64(*rdy)*0.75`.
fn go_should_flush(received: u64, rdy: i64) -> bool {
    let rdy = rdy.max(0) as u64;
    if rdy == 0 {
        // Go would panic with an integer division by zero; never flushing is the closest
        // harmless reading (RDY 0 receives nothing anyway).
        return false;
    }
    (received % rdy) as f64 > rdy as f64 * 0.75
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{go_should_flush, run_reader, FlushPolicy, ReaderConfig};
    use crate::bench::fake_nsqd::FakeNsqd;
    use crate::bench::{BenchError, Compression, Transport};
    use crate::env::RealNet;

    fn config(address: String, flush_policy: FlushPolicy) -> ReaderConfig {
        ReaderConfig {
            address,
            topic: "sub_bench".into(),
            channel: "ch".into(),
            size: 16,
            rdy: 8,
            runfor: Duration::from_millis(50),
            connections: 2,
            start_at: None,
            flush_policy,
            transport: Transport::plain(),
        }
    }

    #[test]
    fn go_flushes_in_the_last_quarter_of_each_rdy_window() {
        let flushed: Vec<u64> = (1..=20).filter(|n| go_should_flush(*n, 8)).collect();
        assert_eq!(flushed, vec![7, 15]);
        assert!(!go_should_flush(5, 0));
    }

    #[tokio::test]
    async fn a_refused_subscription_stops_the_reader() {
        let nsqd = FakeNsqd::start().await;
        let mut bad = config(nsqd.address(), FlushPolicy::Go);
        bad.topic = "bad!topic".into();
        let err = run_reader(Arc::new(RealNet), &bad).await.unwrap_err();
        match err {
            BenchError::Connection { source, .. } => {
                assert_eq!(source.server_code(), Some("E_BAD_TOPIC"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn both_flush_policies_keep_messages_flowing() {
        for policy in [FlushPolicy::Go, FlushPolicy::Drained] {
            let nsqd = FakeNsqd::start().await;
            let summary = run_reader(Arc::new(RealNet), &config(nsqd.address(), policy))
                .await
                .unwrap();
            // Far more than one RDY window per connection: FINs did reach the server.
            assert!(summary.messages > 2 * 8 * 4, "{policy:?}: {summary:?}");
            assert!(nsqd.finished() > 0, "{policy:?}");
            assert_eq!(summary.message_size, 16);
        }
    }

    #[tokio::test]
    async fn compressed_connections_receive_and_fin() {
        for compression in [Compression::Snappy, Compression::Deflate { level: 6 }] {
            let nsqd = FakeNsqd::start().await;
            let mut compressed = config(nsqd.address(), FlushPolicy::Drained);
            compressed.transport.compression = compression;
            let summary = run_reader(Arc::new(RealNet), &compressed).await.unwrap();
            assert!(summary.messages > 2 * 8 * 4, "{compression:?}: {summary:?}");
            assert!(nsqd.finished() > 0, "{compression:?}");
        }
    }
}
