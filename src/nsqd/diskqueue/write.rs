//! Writing: records appended to the write file, rolling to a new file before one that
//! would take a non-empty file past `max_bytes_per_file`.
//!
//! Records are first gathered in memory (`unflushed`) and reach the file in one
//! positioned write ([`DiskQueue::flush`]) when `write_buffer_bytes` is reached, before a
//! sync, a roll or a close, so a busy queue costs one write per many puts. A put either
//! queues all its records or, when the write fails, none of them (except those in a file
//! it finished first): records gathered by earlier puts stay gathered and are written by
//! the next attempt, which rewrites the file from the last good position.

use super::record::{self, Payload};
use super::{DiskQueue, DiskQueueError, MetaWrite};

/// Most bytes gathered beyond `write_buffer_bytes` by one put, so a huge batch does not
/// become a huge buffer: past this the records are written out before more are added.
const APPEND_BYTES_MAX: usize = 4 << 20;

/// A gathered buffer whose allocation grew past this is given back after its write.
const KEEP_CAPACITY_MAX: usize = 8 << 20;

/// Where a put started in the current write file, to take its records back if the
/// write fails.
#[derive(Debug, Clone, Copy)]
struct Mark {
    unflushed_len: usize,
    write_pos: u64,
    depth: i64,
    ops_since_sync: u64,
}

impl DiskQueue {
    /// [`DiskQueue::put_many`] once the queue is known to be open.
    pub(super) async fn write_records<P: Payload>(
        &mut self,
        payloads: &[P],
    ) -> Result<(), DiskQueueError> {
        self.append_records(payloads, false).await?;
        if self.sync_due() {
            self.sync_now(MetaWrite::IfReadMoved).await?;
        }
        Ok(())
    }

    /// Validates and appends `payloads` without the `sync_every` fsync. They are written
    /// to the file before this returns when `write_through` is set, when the gathered
    /// bytes reach `write_buffer_bytes` or when a sync is due.
    pub(super) async fn append_records<P: Payload>(
        &mut self,
        payloads: &[P],
        write_through: bool,
    ) -> Result<(), DiskQueueError> {
        for payload in payloads {
            let len = payload.payload_len();
            if !self.limits.allows(len as u64) {
                return Err(DiskQueueError::InvalidSize {
                    len,
                    min: self.limits.min,
                    max: self.limits.max,
                });
            }
        }
        // Records an earlier failed write left gathered go first, or nothing is added.
        if self.unflushed.len() as u64 >= self.config.write_buffer_bytes.max(1) {
            self.flush().await?;
        }
        let mut mark = self.mark();
        for payload in payloads {
            let bytes = record::record_bytes(payload.payload_len());
            if self.write_pos > 0 && self.write_pos + bytes > self.config.max_bytes_per_file {
                if let Err(error) = self.roll().await {
                    self.take_back(mark);
                    return Err(error);
                }
                mark = self.mark();
            } else if self.unflushed.len() >= APPEND_BYTES_MAX {
                if let Err(error) = self.flush().await {
                    self.take_back(mark);
                    return Err(error);
                }
                mark = self.mark();
            }
            record::encode_into(&mut self.unflushed, payload);
            self.write_pos += bytes;
            self.depth = self.depth.saturating_add(1);
            self.ops_since_sync += 1;
        }
        let gathered_enough = self.unflushed.len() as u64 >= self.config.write_buffer_bytes;
        if write_through || gathered_enough || self.sync_due() {
            if let Err(error) = self.flush().await {
                self.take_back(mark);
                return Err(error);
            }
        }
        Ok(())
    }

    fn mark(&self) -> Mark {
        Mark {
            unflushed_len: self.unflushed.len(),
            write_pos: self.write_pos,
            depth: self.depth,
            ops_since_sync: self.ops_since_sync,
        }
    }

    /// Forgets the records appended since `mark` (their write failed).
    fn take_back(&mut self, mark: Mark) {
        self.unflushed.truncate(mark.unflushed_len);
        self.write_pos = mark.write_pos;
        self.depth = mark.depth;
        self.ops_since_sync = mark.ops_since_sync;
    }

    /// Writes the gathered records to the write file, from the last good position (a
    /// failed earlier attempt may have left part of them there). On failure they stay
    /// gathered.
    pub(super) async fn flush(&mut self) -> Result<(), DiskQueueError> {
        if self.unflushed.is_empty() {
            return Ok(());
        }
        let path = self.files.data(self.write_file);
        let gathered = std::mem::take(&mut self.unflushed);
        let (mut gathered, written) = self.fs.write_at(&path, self.flushed_pos, gathered).await;
        if let Err(source) = written {
            tracing::error!(queue = %self.name, path = %path.display(), error = %source, "failed to write");
            self.unflushed = gathered;
            return Err(DiskQueueError::Write { path, source });
        }
        if self.flushed_pos == 0 {
            tracing::info!(queue = %self.name, path = %path.display(), "writeOne() opened");
        }
        self.flushed_pos = self.write_pos;
        self.write_unsynced = true;
        gathered.clear();
        if gathered.capacity() > KEEP_CAPACITY_MAX {
            gathered = Vec::new();
        }
        self.unflushed = gathered;
        Ok(())
    }

    /// Drops the gathered records (the queue was emptied, or writing moved on).
    pub(super) fn discard_unflushed(&mut self) {
        self.unflushed.clear();
        self.flushed_pos = self.write_pos;
    }

    /// Starts the next write file: the finished one is written out and fsynced, and the
    /// metadata names the new one (Go syncs every time it starts a new file). Fails only
    /// when the finished file's gathered records cannot be written.
    async fn roll(&mut self) -> Result<(), DiskQueueError> {
        self.flush().await?;
        let old = self.write_file;
        let old_end = self.write_pos;
        let mut synced = true;
        if self.write_unsynced {
            let path = self.files.data(old);
            if let Err(error) = self.fs.sync(&path).await {
                tracing::error!(queue = %self.name, path = %path.display(), %error, "failed to sync finished write file");
                synced = false;
            }
        }
        self.write_file += 1;
        self.write_pos = 0;
        self.flushed_pos = 0;
        self.write_unsynced = false;
        if self.read_file == old {
            if self.read_pos >= old_end {
                // Everything in it was read already: it is finished now.
                self.finished_files.push(old);
                self.set_read_file(self.write_file);
            } else {
                self.read_file_len = Some(old_end);
            }
        }
        if !synced {
            // As in Go, no metadata names the new file before the old one is durable.
            self.need_sync = true;
        } else if let Err(error) = self.commit_meta().await {
            tracing::error!(queue = %self.name, %error, "failed to sync");
        }
        Ok(())
    }
}
