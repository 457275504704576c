//! The disk side of a topic or channel: its go-diskqueue, opened on first use and shared
//! by the publishers that overflow into it and the consumers that read from it.
//!
//! The queue sits behind an async mutex (its operations do file IO); a depth mirror
//! lets stats and the delivery path look without waiting for it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::Mutex;

use super::diskqueue::{DiskQueue, DiskQueueConfig, DiskQueueError};
use crate::env::Fs;
use crate::protocol::Message;

/// A disk queue of messages.
pub struct Backend {
    name: String,
    fs: Arc<dyn Fs>,
    data_path: PathBuf,
    config: DiskQueueConfig,
    queue: Mutex<Option<DiskQueue>>,
    depth: AtomicI64,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// The queue `name` in `data_path` (nothing is touched until first use).
    pub fn new(fs: Arc<dyn Fs>, data_path: PathBuf, name: String, config: DiskQueueConfig) -> Self {
        Backend {
            name,
            fs,
            data_path,
            config,
            queue: Mutex::new(None),
            depth: AtomicI64::new(0),
        }
    }

    /// Messages on disk (as of the last operation).
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Acquire)
    }

    /// Opens the queue if it is not open yet, picking up what a previous run left.
    pub async fn open(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        self.ensure_open(&mut guard).await.map(|_| ())
    }

    async fn ensure_open<'a>(
        &self,
        slot: &'a mut Option<DiskQueue>,
    ) -> Result<&'a mut DiskQueue, DiskQueueError> {
        if slot.is_none() {
            let queue = DiskQueue::open(
                self.fs.clone(),
                self.data_path.clone(),
                &self.name,
                self.config,
            )
            .await?;
            self.depth.store(queue.depth(), Ordering::Release);
            *slot = Some(queue);
        }
        match slot {
            Some(queue) => Ok(queue),
            None => Err(DiskQueueError::Closed),
        }
    }

    /// Writes `messages` (26-byte header + body each), in order.
    pub async fn put(&self, messages: &[Message]) -> Result<(), DiskQueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let payloads: Vec<BytesMut> = messages
            .iter()
            .map(|message| {
                let mut payload = BytesMut::with_capacity(message.encoded_len());
                message.encode(&mut payload);
                payload
            })
            .collect();
        let mut guard = self.queue.lock().await;
        let queue = self.ensure_open(&mut guard).await?;
        let result = queue.put_many(&payloads).await;
        self.depth.store(queue.depth(), Ordering::Release);
        result
    }

    /// Reads up to `max` messages; each leaves the disk as it is handed out. A record
    /// that is not a message is logged and skipped.
    pub async fn read(&self, max: usize) -> Result<Vec<Message>, DiskQueueError> {
        if self.depth() <= 0 {
            return Ok(Vec::new());
        }
        let mut guard = self.queue.lock().await;
        let queue = self.ensure_open(&mut guard).await?;
        let mut messages = Vec::new();
        while messages.len() < max {
            let Some(record) = queue.read_next().await? else {
                break;
            };
            match Message::decode(record) {
                Ok(message) => messages.push(message),
                Err(error) => {
                    tracing::error!(queue = %self.name, %error, "skipping a record that is not a message");
                }
            }
        }
        self.depth.store(queue.depth(), Ordering::Release);
        Ok(messages)
    }

    /// The periodic `--sync-timeout` sync, when there was activity since the last one.
    pub async fn sync_if_due(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        match guard.as_mut() {
            Some(queue) if queue.needs_periodic_sync() => queue.sync().await,
            _ => Ok(()),
        }
    }

    /// Drops every message on disk (`/topic/empty`, `/channel/empty`).
    pub async fn empty(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        let queue = self.ensure_open(&mut guard).await?;
        let result = queue.empty().await;
        self.depth.store(queue.depth(), Ordering::Release);
        result
    }

    /// Removes the queue's files (the topic or channel was deleted).
    pub async fn delete(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        let queue = self.ensure_open(&mut guard).await?;
        let result = queue.delete().await;
        *guard = None;
        self.depth.store(0, Ordering::Release);
        result
    }

    /// Syncs and closes the queue (exit). A queue never used is opened first, so it
    /// leaves its meta file behind as go-diskqueue does. Later use reopens it.
    pub async fn close(&self) -> Result<(), DiskQueueError> {
        let mut guard = self.queue.lock().await;
        let result = match self.ensure_open(&mut guard).await {
            Ok(queue) => queue.close().await,
            Err(error) => Err(error),
        };
        *guard = None;
        result
    }
}
