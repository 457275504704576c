//! Writing: records appended to the write file, rolling to a new file before one that
//! would take a non-empty file past `max_bytes_per_file`.

use super::record;
use super::{DiskQueue, DiskQueueError};

/// Most bytes gathered into one append, so a huge batch does not become a huge buffer.
const APPEND_BYTES_MAX: usize = 4 << 20;

impl DiskQueue {
    /// [`DiskQueue::put_many`] once the queue is known to be open.
    pub(super) async fn write_records<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
    ) -> Result<(), DiskQueueError> {
        self.append_records(payloads).await?;
        if self.sync_due() {
            self.sync_now().await?;
        }
        Ok(())
    }

    /// Validates and appends `payloads` without the `sync_every` fsync.
    pub(super) async fn append_records<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
    ) -> Result<(), DiskQueueError> {
        for payload in payloads {
            let len = payload.as_ref().len();
            if !self.limits.allows(len as u64) {
                return Err(DiskQueueError::InvalidSize {
                    len,
                    min: self.limits.min,
                    max: self.limits.max,
                });
            }
        }
        let mut next = 0;
        while let Some(first) = payloads.get(next) {
            let first_bytes = record::record_bytes(first.as_ref().len());
            let over = self.write_pos + first_bytes > self.config.max_bytes_per_file;
            if self.write_pos > 0 && (over || self.roll_before_next_write) {
                self.roll().await;
            }
            next += self.append_some(&payloads[next..]).await?;
        }
        Ok(())
    }

    /// Appends, in one write, as many of `payloads` as fit the current file (at least
    /// one: the caller rolled if needed). Returns how many.
    async fn append_some<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
    ) -> Result<usize, DiskQueueError> {
        let mut buf = std::mem::take(&mut self.write_buf);
        buf.clear();
        let mut end = self.write_pos;
        let mut count = 0;
        for payload in payloads {
            let payload = payload.as_ref();
            let bytes = record::record_bytes(payload.len());
            let fits = end + bytes <= self.config.max_bytes_per_file
                && buf.len() + payload.len() + 4 <= APPEND_BYTES_MAX;
            if count > 0 && !fits {
                break;
            }
            record::encode_into(&mut buf, payload);
            end += bytes;
            count += 1;
        }
        let path = self.files.data(self.write_file);
        // A new file starts from nothing, whatever a failed earlier attempt left in it.
        let written = if self.write_pos == 0 {
            self.fs.write(&path, &buf).await
        } else {
            self.fs.append(&path, &buf).await
        };
        if buf.capacity() <= APPEND_BYTES_MAX {
            self.write_buf = buf;
        }
        if let Err(source) = written {
            tracing::error!(queue = %self.name, path = %path.display(), error = %source, "failed to write");
            // The file may now end in part of a record: never append after it.
            self.roll_before_next_write = self.write_pos > 0;
            return Err(DiskQueueError::Write { path, source });
        }
        if self.write_pos == 0 {
            tracing::info!(queue = %self.name, path = %path.display(), "writeOne() opened");
        }
        self.write_pos = end;
        self.write_unsynced = true;
        let count_i64 = i64::try_from(count).unwrap_or(i64::MAX);
        self.depth = self.depth.saturating_add(count_i64);
        self.ops_since_sync += count as u64;
        Ok(count)
    }

    /// Starts the next write file: the finished one is fsynced and the metadata names
    /// the new one (Go syncs every time it starts a new file).
    async fn roll(&mut self) {
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
        self.write_unsynced = false;
        self.roll_before_next_write = false;
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
    }
}
