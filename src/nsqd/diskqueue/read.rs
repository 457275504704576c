//! Reading: the next record from the read file, finishing files the reader leaves, and
//! go-diskqueue's answers to damage (`.bad` rename, skip, the tail check).

use std::fmt;
use std::io;

use bytes::Bytes;

use super::record::{self, InvalidSize, Parsed};
use super::{DiskQueue, RecordPos};

/// Bytes read ahead at once, so consecutive small records cost one `read_at`. Records
/// handed out share this window (no copy), so it lives until the last of them is dropped.
const READ_AHEAD_BYTES: u64 = 512 * 1024;

/// A window of one data file, read ahead.
#[derive(Debug, Default)]
pub(super) struct ReadBuf {
    /// The file the bytes are from.
    file: u64,
    /// Where `data[0]` is in it.
    start: u64,
    /// Records handed out are slices of it, not copies.
    data: Bytes,
}

impl ReadBuf {
    pub(super) fn clear(&mut self) {
        self.data = Bytes::new();
    }

    /// Where the bytes held from `pos` of `file` up to `end` are in `data`, if `pos` is
    /// inside the window.
    fn range(&self, file: u64, pos: u64, end: u64) -> std::ops::Range<usize> {
        if file != self.file || pos < self.start {
            return 0..0;
        }
        let (Ok(from), Ok(to)) = (
            usize::try_from(pos - self.start),
            usize::try_from(end.saturating_sub(self.start)),
        ) else {
            return 0..0;
        };
        let to = to.min(self.data.len());
        if from > to {
            return 0..0;
        }
        from..to
    }
}

/// Why the record at the read position could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The file system failed (or the file is missing).
    Io(io::Error),
    /// The length prefix is outside the valid sizes.
    InvalidSize(InvalidSize),
    /// The record runs past the end of the data (file end, or the write position).
    Truncated {
        /// Bytes the record needs from the read position.
        needed: u64,
        /// Bytes there are.
        available: u64,
    },
    /// The read position is past the end of the file.
    PastEnd {
        /// The file's length.
        end: u64,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::InvalidSize(e) => write!(f, "{e}"),
            ReadError::Truncated { needed, available } => {
                write!(
                    f,
                    "record of {needed} bytes but only {available} left (EOF)"
                )
            }
            ReadError::PastEnd { end } => write!(f, "read position past the end ({end})"),
        }
    }
}

impl DiskQueue {
    /// [`DiskQueue::read_next`]: the next record, after skipping finished and damaged
    /// files; then any sync that became due.
    pub(super) async fn read_record_or_skip(&mut self) -> Option<(Bytes, RecordPos)> {
        let found = self.read_record_deferring_sync().await;
        if self.sync_due() {
            self.sync_or_log("after a read").await;
        }
        found
    }

    /// [`DiskQueue::read_record_or_skip`] without the sync at the end.
    pub(super) async fn read_record_deferring_sync(&mut self) -> Option<(Bytes, RecordPos)> {
        let found = loop {
            if !self.has_unread() {
                // Also catches a depth left over when finished files ran out.
                self.check_tail_corruption().await;
                break None;
            }
            let at = RecordPos {
                file: self.read_file,
                pos: self.read_pos,
            };
            match self.read_record().await {
                Ok(Some(payload)) => break Some((payload, at)),
                Ok(None) => self.leave_read_file(),
                Err(error) => self.handle_read_error(error).await,
            }
        };
        found
    }

    /// The record at the read position, consumed; `Ok(None)` when a finished file has
    /// been read to its end.
    async fn read_record(&mut self) -> Result<Option<Bytes>, ReadError> {
        let end = self.read_end().await?;
        let pos = self.read_pos;
        if pos == end {
            return Ok(None);
        }
        if pos > end {
            return Err(ReadError::PastEnd { end });
        }
        if self.read_file == self.write_file && pos >= self.flushed_pos {
            return self.read_gathered(pos).await.map(Some);
        }
        let mut refilled = false;
        loop {
            let range = self.read_buf.range(self.read_file, pos, end);
            let available = &self.read_buf.data[range.clone()];
            match record::parse(available, self.limits).map_err(ReadError::InvalidSize)? {
                Parsed::Record { payload_len } => {
                    let payload_start = range.start + 4;
                    let payload_end = payload_start + payload_len as usize;
                    let payload = self.read_buf.data.slice(payload_start..payload_end);
                    self.consume(record::record_bytes(payload_len as usize), end)
                        .await;
                    return Ok(Some(payload));
                }
                Parsed::Incomplete { total } => {
                    let left = end - pos;
                    if total > left || refilled {
                        return Err(ReadError::Truncated {
                            needed: total,
                            available: left.min(available.len() as u64),
                        });
                    }
                    self.fill(pos, total.max(READ_AHEAD_BYTES).min(left))
                        .await?;
                    refilled = true;
                }
            }
        }
    }

    /// A record the writer has gathered and not yet written to the file (it starts at
    /// `pos`, at or past `flushed_pos`), consumed.
    async fn read_gathered(&mut self, pos: u64) -> Result<Bytes, ReadError> {
        let from = usize::try_from(pos - self.flushed_pos).unwrap_or(usize::MAX);
        let available = self.unflushed.get(from..).unwrap_or(&[]);
        match record::parse(available, self.limits).map_err(ReadError::InvalidSize)? {
            Parsed::Record { payload_len } => {
                let payload = Bytes::copy_from_slice(&available[4..4 + payload_len as usize]);
                let end = self.write_pos;
                self.consume(record::record_bytes(payload_len as usize), end)
                    .await;
                Ok(payload)
            }
            Parsed::Incomplete { total } => Err(ReadError::Truncated {
                needed: total,
                available: available.len() as u64,
            }),
        }
    }

    /// Where the data of the read file ends: the write position while it is the write
    /// file (the written part, while the reader is in it), else its length (taken once,
    /// as Go does when it opens it).
    async fn read_end(&mut self) -> Result<u64, ReadError> {
        if self.read_file == self.write_file {
            if self.read_pos < self.flushed_pos {
                return Ok(self.flushed_pos);
            }
            return Ok(self.write_pos);
        }
        if let Some(len) = self.read_file_len {
            return Ok(len);
        }
        let len = self
            .fs
            .len(&self.files.data(self.read_file))
            .await
            .map_err(ReadError::Io)?;
        self.read_file_len = Some(len);
        Ok(len)
    }

    /// Reads `len` bytes of the read file at `pos` into the window.
    async fn fill(&mut self, pos: u64, len: u64) -> Result<(), ReadError> {
        let path = self.files.data(self.read_file);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let data = self
            .fs
            .read_at(&path, pos, len)
            .await
            .map_err(ReadError::Io)?;
        self.read_buf = ReadBuf {
            file: self.read_file,
            start: pos,
            data: Bytes::from(data),
        };
        Ok(())
    }

    /// Go's `moveForward`: the record of `bytes` at the read position is handed over.
    async fn consume(&mut self, bytes: u64, end: u64) {
        self.read_pos += bytes;
        self.depth -= 1;
        self.ops_since_sync += 1;
        if self.read_file < self.write_file && self.read_pos >= end {
            self.leave_read_file();
        }
        self.check_tail_corruption().await;
    }

    /// The reader is done with its file: on to the next, and the finished one goes once
    /// the metadata says so.
    fn leave_read_file(&mut self) {
        self.finished_files.push(self.read_file);
        self.set_read_file(self.read_file + 1);
        self.need_sync = true;
    }

    /// Go's `handleReadError`: the read file is renamed `.bad` and reading jumps to the
    /// next file; when it was the write file, writing moves on too.
    async fn handle_read_error(&mut self, error: ReadError) {
        let bad = self.files.data(self.read_file);
        tracing::error!(queue = %self.name, pos = self.read_pos, path = %bad.display(), %error, "reading failed");
        if self.read_file == self.write_file {
            // The damage is in the written part; the records still gathered are whole
            // and move on with the writer, to the start of its new file.
            self.write_file += 1;
            self.write_pos = self.unflushed.len() as u64;
            self.flushed_pos = 0;
            self.write_unsynced = false;
        }
        let missing = matches!(&error, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound);
        let mut next = self.read_file + 1;
        if missing {
            next = self.next_existing_file().await;
        } else {
            let renamed = self.files.bad(self.read_file);
            tracing::warn!(queue = %self.name, path = %renamed.display(), "jump to next file and saving bad file");
            if let Err(error) = self.fs.rename(&bad, &renamed).await {
                tracing::error!(queue = %self.name, path = %bad.display(), %error, "failed to rename bad diskqueue file");
            }
        }
        self.set_read_file(next);
        self.need_sync = true;
        self.check_tail_corruption().await;
    }

    /// The first data file after the (missing) read file, up to the write file: one
    /// jump instead of one error per absent number.
    async fn next_existing_file(&self) -> u64 {
        let Ok(paths) = self.fs.list(self.files.dir()).await else {
            return self.read_file + 1;
        };
        paths
            .iter()
            .filter_map(|p| self.files.data_file_num(p))
            .filter(|n| *n > self.read_file && *n <= self.write_file)
            .min()
            .unwrap_or(self.write_file)
    }

    /// Go's `checkTailCorruption`: once the reader meets the writer the depth must be 0,
    /// and a reader past the writer means both move to a new file.
    async fn check_tail_corruption(&mut self) {
        if self.has_unread() {
            return;
        }
        let depth = self.depth;
        if depth < 0 {
            tracing::error!(queue = %self.name, depth, "negative depth at tail, metadata corruption, resetting 0...");
        } else if depth > 0 {
            tracing::error!(queue = %self.name, depth, "positive depth at tail, data loss, resetting 0...");
        }
        if depth != 0 {
            self.depth = 0;
            self.need_sync = true;
        }
        if self.read_file != self.write_file || self.read_pos != self.write_pos {
            tracing::error!(queue = %self.name, read = ?(self.read_file, self.read_pos), write = ?(self.write_file, self.write_pos), "reader past writer, corruption, skipping to next writeFileNum and resetting 0...");
            if let Err(error) = self.remove_all_files_but_meta().await {
                tracing::error!(queue = %self.name, %error, "error skipping to next file");
            }
            self.need_sync = true;
        }
    }
}
