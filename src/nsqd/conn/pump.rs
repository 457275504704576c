//! The write side of a connection: responses from the reader, heartbeats, and messages
//! from the subscribed channel under RDY.
//!
//! Messages are encoded into one output buffer and written when it passes the client's
//! output buffer size or when nothing more is ready, so a busy consumer gets many
//! messages per syscall and an idle one gets each message at once.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::{ToPump, UpgradeHandOff};
use crate::env::BoxStream;
use crate::nsqd::channel::ChannelRef;
use crate::nsqd::client::{ClientRef, ClientSettings};
use crate::nsqd::topic::TopicRef;
use crate::nsqd::NsqdInner;
use crate::protocol::{frame, FrameType};

/// Messages taken from the channel per lock, at most.
const TAKE_BATCH_MAX: usize = 256;
/// An output buffer larger than this is given back at a heartbeat if it is empty.
const IDLE_OUT_BYTES: usize = 4 * 1024;

struct Pump {
    nsqd: Arc<NsqdInner>,
    client: ClientRef,
    /// `None` only while the reader holds it for a stream upgrade.
    writer: Option<WriteHalf<BoxStream>>,
    out: BytesMut,
    settings: ClientSettings,
    subscription: Option<(TopicRef, ChannelRef)>,
}

/// Runs the pump until the reader is gone, the client is closed or a write fails.
pub(super) async fn run(
    nsqd: Arc<NsqdInner>,
    client: ClientRef,
    writer: WriteHalf<BoxStream>,
    mut from_reader: mpsc::Receiver<ToPump>,
) {
    let settings = client.settings.lock().clone();
    let mut pump = Pump {
        nsqd,
        client: client.clone(),
        writer: Some(writer),
        // Grows with what is written; an idle connection keeps none.
        out: BytesMut::new(),
        settings,
        subscription: None,
    };
    let mut heartbeat = heartbeat_interval(pump.settings.heartbeat_interval_ms);
    loop {
        if pump.deliver().await.is_err() || pump.flush().await.is_err() {
            break;
        }
        let waiting_channel = pump
            .subscription
            .as_ref()
            .filter(|_| client.room() > 0)
            .map(|(_, channel)| channel.clone());
        tokio::select! {
            biased;
            _ = client.close.cancelled() => break,
            command = from_reader.recv() => match command {
                None => break,
                Some(ToPump::Frame(frame)) => pump.out.extend_from_slice(&frame),
                Some(ToPump::Fatal(frame)) => {
                    pump.out.extend_from_slice(&frame);
                    let _ = pump.flush().await;
                    break;
                }
                Some(ToPump::Subscribed(topic, channel)) => {
                    frame::write_frame(&mut pump.out, FrameType::Response, frame::OK);
                    pump.subscription = Some((topic, channel));
                }
                Some(ToPump::SettingsChanged) => {
                    pump.settings = client.settings.lock().clone();
                    heartbeat = heartbeat_interval(pump.settings.heartbeat_interval_ms);
                }
                Some(ToPump::Upgrade(hand_off)) => {
                    let UpgradeHandOff { answer, writer_out, writer_in } = *hand_off;
                    pump.out.extend_from_slice(&answer);
                    if pump.flush().await.is_err() {
                        break;
                    }
                    let Some(writer) = pump.writer.take() else { break };
                    if writer_out.send(writer).is_err() {
                        break;
                    }
                    match writer_in.await {
                        Ok(writer) => pump.writer = Some(writer),
                        Err(_) => break,
                    }
                }
            },
            _ = tick(&mut heartbeat) => {
                // Once a heartbeat, an empty buffer grown while busy goes back; a busy
                // pump grows it again at once, a quiet one keeps none.
                if pump.out.is_empty() && pump.out.capacity() > IDLE_OUT_BYTES {
                    pump.out = BytesMut::new();
                }
                frame::write_frame(&mut pump.out, FrameType::Response, frame::HEARTBEAT);
            }
            _ = client.ready_changed.notified() => {}
            _ = wait_for_messages(waiting_channel) => {}
        }
    }
    client.close.cancel();
    if let Some(writer) = pump.writer.as_mut() {
        let _ = writer.shutdown().await;
    }
}

impl Pump {
    /// Sends messages while the client has room and the channel has messages.
    async fn deliver(&mut self) -> std::io::Result<()> {
        let Some((topic, channel)) = self.subscription.clone() else {
            return Ok(());
        };
        let msg_timeout_ns = self.settings.msg_timeout_ms.saturating_mul(1_000_000);
        let sample_rate = self.settings.sample_rate;
        let buffer_size = usize::try_from(self.settings.output_buffer_size).unwrap_or(1);
        loop {
            let room = usize::try_from(self.client.room()).unwrap_or(0);
            if room == 0 {
                break;
            }
            let now = self.nsqd.now_ns();
            let rng = &self.nsqd.env.rng;
            // Go delivers a message when rand[0,100) <= rate; the rest are dropped.
            let keep = || sample_rate <= 0 || rng.below(100) as i64 <= sample_rate;
            // The frames go straight into the output buffer.
            let mut taken = channel.take_for_client(
                &self.client,
                room.min(TAKE_BATCH_MAX),
                now,
                msg_timeout_ns,
                keep,
                &mut self.out,
            );
            if taken == 0 {
                // Memory is empty: what overflowed to disk comes next.
                // Boxed, as the write below: the pump's own future, which every idle
                // connection holds, stays small.
                let read = Box::pin(channel.take_from_backend(
                    &self.client,
                    room.min(TAKE_BATCH_MAX),
                    now,
                    msg_timeout_ns,
                    keep,
                    &mut self.out,
                ))
                .await;
                match read {
                    Ok(n) => taken = n,
                    Err(error) => {
                        tracing::error!(client = self.client.id, %error, "reading the disk queue failed");
                    }
                }
            }
            if taken == 0 {
                break;
            }
            if self.out.len() >= buffer_size {
                self.flush().await?;
            }
        }
        if topic.has_pending() {
            topic.retry_pending(self.nsqd.now_ns());
        }
        Ok(())
    }

    /// Writes out everything buffered, within the write deadline (1 x heartbeat).
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let deadline_ms = u64::try_from(self.settings.heartbeat_interval_ms)
            .ok()
            .filter(|ms| *ms > 0);
        let Some(writer) = self.writer.as_mut() else {
            return Err(std::io::ErrorKind::NotConnected.into());
        };
        let out = &self.out;
        // The flush ends a compressed block (snappy, deflate) or a TLS record.
        let write_and_flush = async {
            writer.write_all(out).await?;
            writer.flush().await
        };
        let write = async {
            match deadline_ms {
                Some(ms) => tokio::time::timeout(Duration::from_millis(ms), write_and_flush)
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
                None => write_and_flush.await,
            }
        };
        // A client that never reads must not hold up a shutdown or a channel deletion.
        let result = tokio::select! {
            biased;
            _ = self.client.close.cancelled() => Err(std::io::ErrorKind::ConnectionAborted.into()),
            result = write => result,
        };
        self.out.clear();
        result
    }
}

fn heartbeat_interval(ms: i64) -> Option<Interval> {
    let ms = u64::try_from(ms).ok().filter(|ms| *ms > 0)?;
    let period = Duration::from_millis(ms);
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some(interval)
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn wait_for_messages(channel: Option<ChannelRef>) {
    match channel {
        Some(channel) => channel.new_messages.notified().await,
        None => std::future::pending().await,
    }
}
