//! Opening a queue: where to read and write from, worked out from the metadata file and
//! checked against the data files actually there.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::files::QueueFiles;
use super::meta::{self, Meta};
use super::read::ReadBuf;
use super::record::{self, Parsed, SizeLimits};
use super::{DiskQueue, DiskQueueConfig, DiskQueueError};
use crate::env::Fs;

/// File numbers beyond this in metadata are nonsense (Go would need 2^48 files to get
/// there), and the bound leaves room to count up without overflow.
const FILE_NUM_MAX: i64 = 1 << 48;

/// Bytes read at a time when counting records.
const SCAN_CHUNK_BYTES: u64 = 1 << 20;

/// A read and a write position that make sense together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    read_file: u64,
    read_pos: u64,
    write_file: u64,
    write_pos: u64,
}

impl Position {
    /// The metadata's positions, if they make sense: none negative, file numbers in
    /// range, the reader not past the writer.
    fn from_meta(meta: &Meta) -> Result<Position, &'static str> {
        let num = |v: i64| u64::try_from(v).ok().filter(|_| v <= FILE_NUM_MAX);
        let pos = |v: i64| u64::try_from(v).ok();
        let (Some(read_file), Some(write_file)) = (num(meta.read_file), num(meta.write_file))
        else {
            return Err("file number negative or out of range");
        };
        let (Some(read_pos), Some(write_pos)) = (pos(meta.read_pos), pos(meta.write_pos)) else {
            return Err("negative position");
        };
        if read_file > write_file {
            return Err("readFileNum > writeFileNum");
        }
        if read_file == write_file && read_pos > write_pos {
            return Err("readPos > writePos");
        }
        Ok(Position {
            read_file,
            read_pos,
            write_file,
            write_pos,
        })
    }
}

/// [`DiskQueue::open`].
pub(super) async fn open(
    fs: Arc<dyn Fs>,
    data_path: PathBuf,
    name: &str,
    config: DiskQueueConfig,
) -> Result<DiskQueue, DiskQueueError> {
    check_name(name)?;
    check_config(&config)?;
    let files = QueueFiles::new(data_path, name);
    let open_error = |source| DiskQueueError::Open {
        path: files.dir().to_path_buf(),
        source,
    };
    fs.create_dir_all(files.dir()).await.map_err(open_error)?;
    let listed = fs.list(files.dir()).await.map_err(open_error)?;
    let num_max = FILE_NUM_MAX.unsigned_abs();
    let mut nums: Vec<u64> = listed
        .iter()
        .filter_map(|p| files.data_file_num(p))
        .filter(|n| *n <= num_max)
        .collect();
    nums.sort_unstable();

    let mut queue = DiskQueue {
        fs,
        files,
        name: name.to_string(),
        config,
        limits: SizeLimits {
            min: config.min_msg_size,
            max: config.max_msg_size,
        },
        depth: 0,
        read_file: 0,
        read_pos: 0,
        write_file: 0,
        write_pos: 0,
        read_file_len: None,
        read_buf: ReadBuf::default(),
        unflushed: Vec::new(),
        flushed_pos: 0,
        ops_since_sync: 0,
        need_sync: false,
        hold: None,
        committed_read: None,
        write_unsynced: false,
        finished_files: Vec::new(),
        closed: false,
    };
    match queue.load_position(&nums).await {
        Some((position, depth)) => {
            queue.apply(position, depth);
            queue.check_depth(&nums).await;
            queue.check_write_file(&nums).await;
        }
        None => queue.rebuild_from_files(&nums).await,
    }
    queue.remove_files_before_reader(&nums).await;
    queue.flushed_pos = queue.write_pos;
    if queue.need_sync {
        queue.sync_or_log("position repaired at open").await;
    }
    tracing::debug!(queue = %queue.name, ?queue, "disk queue open");
    Ok(queue)
}

/// A queue name must be one file name component.
fn check_name(name: &str) -> Result<(), DiskQueueError> {
    let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']);
    if bad {
        return Err(DiskQueueError::InvalidName(name.to_string()));
    }
    Ok(())
}

fn check_config(config: &DiskQueueConfig) -> Result<(), DiskQueueError> {
    if config.max_bytes_per_file == 0 {
        return Err(DiskQueueError::InvalidConfig(
            "max_bytes_per_file must be > 0",
        ));
    }
    if config.min_msg_size > config.max_msg_size {
        return Err(DiskQueueError::InvalidConfig(
            "min_msg_size must be <= max_msg_size",
        ));
    }
    if i32::try_from(config.max_msg_size).is_err() {
        return Err(DiskQueueError::InvalidConfig(
            "max_msg_size must fit an int32 length",
        ));
    }
    Ok(())
}

impl DiskQueue {
    /// The position and depth the metadata gives, or `None` (logged) when there is none
    /// to trust although data files exist.
    async fn load_position(&self, nums: &[u64]) -> Option<(Position, i64)> {
        let name = &self.name;
        let path = self.files.meta();
        match meta::load(&*self.fs, &path).await {
            Ok(Some(Ok(meta))) => match Position::from_meta(&meta) {
                Ok(position) => Some((position, meta.depth)),
                Err(reason) => {
                    tracing::error!(queue = %name, metadata = ?meta.encode(), reason, "nonsense metadata; rebuilding the position from the data files");
                    None
                }
            },
            Ok(Some(Err(error))) => {
                tracing::error!(queue = %name, %error, "failed to retrieveMetaData; rebuilding the position from the data files");
                None
            }
            Ok(None) if nums.is_empty() => Some((Position::default(), 0)),
            Ok(None) => {
                tracing::warn!(queue = %name, files = nums.len(), "no metadata file but data files exist; rebuilding the position from them");
                None
            }
            Err(error) => {
                tracing::error!(queue = %name, path = %path.display(), %error, "failed to read metadata; rebuilding the position from the data files");
                None
            }
        }
    }

    fn apply(&mut self, position: Position, depth: i64) {
        self.read_file = position.read_file;
        self.read_pos = position.read_pos;
        self.write_file = position.write_file;
        self.write_pos = position.write_pos;
        self.depth = depth;
    }

    /// Checks the metadata's depth against its positions: none left must mean depth 0
    /// (Go's tail check, done at once rather than after the next read), and records left
    /// must mean a positive depth (otherwise they are counted).
    async fn check_depth(&mut self, nums: &[u64]) {
        let at_tail = self.read_file == self.write_file && self.read_pos == self.write_pos;
        if at_tail && self.depth != 0 {
            let depth = self.depth;
            if depth < 0 {
                tracing::error!(queue = %self.name, depth, "negative depth at tail, metadata corruption, resetting 0...");
            } else {
                tracing::error!(queue = %self.name, depth, "positive depth at tail, data loss, resetting 0...");
            }
            self.depth = 0;
            self.need_sync = true;
        } else if !at_tail && self.depth <= 0 {
            let mut counted = 0;
            let unread = nums
                .iter()
                .copied()
                .filter(|n| (self.read_file..=self.write_file).contains(n));
            for num in unread {
                let from = if num == self.read_file {
                    self.read_pos
                } else {
                    0
                };
                let to = if num == self.write_file {
                    Some(self.write_pos)
                } else {
                    None
                };
                counted += self.count_records(num, from, to).await;
            }
            tracing::error!(queue = %self.name, depth = self.depth, counted, "depth does not fit the unread records; using the count");
            self.depth = i64::try_from(counted).unwrap_or(i64::MAX);
            self.need_sync = true;
        }
    }

    /// Go's check for an unsynced tail, widened: when the write file is not exactly as
    /// long as the metadata says, or data files lie past it, writing moves to a new file
    /// and the reader reads what is there. Whole records past the metadata's write
    /// position are counted into the depth.
    async fn check_write_file(&mut self, nums: &[u64]) {
        let path = self.files.data(self.write_file);
        let len = match self.fs.len(&path).await {
            Ok(len) => Some(len),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(0),
            Err(error) => {
                tracing::error!(queue = %self.name, path = %path.display(), %error, "cannot stat the write file; writing to a new file");
                None
            }
        };
        let beyond: Vec<u64> = nums
            .iter()
            .copied()
            .filter(|n| *n > self.write_file)
            .collect();
        if len == Some(self.write_pos) && beyond.is_empty() {
            return;
        }
        match len {
            Some(len) if len > self.write_pos => {
                tracing::warn!(queue = %self.name, path = %path.display(), write_pos = self.write_pos, file_size = len, "metadata writePos < file size, skipping to new file");
                let tail = self
                    .count_records(self.write_file, self.write_pos, Some(len))
                    .await;
                self.add_depth(tail);
            }
            Some(len) if len < self.write_pos => {
                tracing::error!(queue = %self.name, path = %path.display(), write_pos = self.write_pos, file_size = len, "write file shorter than the metadata says (data lost); skipping to new file");
            }
            _ => {}
        }
        for &num in &beyond {
            let found = self.count_records(num, 0, None).await;
            tracing::warn!(queue = %self.name, file = num, records = found, "data file past the metadata's write file; reading it");
            self.add_depth(found);
        }
        let last = beyond.last().copied().unwrap_or(self.write_file);
        self.write_file = last + 1;
        self.write_pos = 0;
        self.need_sync = true;
    }

    /// No usable metadata: read every data file there is from its start, write after
    /// the last one, and count what is there.
    async fn rebuild_from_files(&mut self, nums: &[u64]) {
        let (Some(&first), Some(&last)) = (nums.first(), nums.last()) else {
            self.apply(Position::default(), 0);
            self.need_sync = true;
            return;
        };
        self.apply(
            Position {
                read_file: first,
                read_pos: 0,
                write_file: last + 1,
                write_pos: 0,
            },
            0,
        );
        for &num in nums {
            let found = self.count_records(num, 0, None).await;
            self.add_depth(found);
        }
        tracing::warn!(queue = %self.name, read_file = first, write_file = last + 1, depth = self.depth, "rebuilt the position from the data files");
        self.need_sync = true;
    }

    fn add_depth(&mut self, records: u64) {
        self.depth = self
            .depth
            .saturating_add(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Data files before the reader's are finished: a crash between persisting the
    /// metadata and removing them leaves them behind.
    async fn remove_files_before_reader(&mut self, nums: &[u64]) {
        for &num in nums.iter().filter(|n| **n < self.read_file) {
            let path = self.files.data(num);
            tracing::info!(queue = %self.name, path = %path.display(), "removing finished data file left by a crash");
            if let Err(error) = super::remove_if_present(&*self.fs, &path).await {
                tracing::error!(queue = %self.name, path = %path.display(), %error, "failed to remove finished data file");
            }
        }
    }

    /// The whole, valid records in data file `num` from `from` up to `to` (the file's
    /// end when `None`), stopping at the first bad or cut-off one: exactly the records
    /// the reader will hand out before it meets the damage.
    pub(super) async fn count_records(&self, num: u64, from: u64, to: Option<u64>) -> u64 {
        let path = self.files.data(num);
        let to = match to {
            Some(to) => to,
            None => match self.fs.len(&path).await {
                Ok(len) => len,
                Err(_) => return 0,
            },
        };
        let mut count = 0;
        let mut pos = from;
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_start = from;
        while pos < to {
            let offset = usize::try_from(pos - chunk_start).unwrap_or(usize::MAX);
            let available = chunk.get(offset..).unwrap_or(&[]);
            match record::parse(available, self.limits) {
                Ok(Parsed::Record { payload_len }) => {
                    pos += record::record_bytes(payload_len as usize);
                    if pos > to {
                        break;
                    }
                    count += 1;
                }
                Ok(Parsed::Incomplete { total }) => {
                    if pos + total > to {
                        break;
                    }
                    let want = total.max(SCAN_CHUNK_BYTES).min(to - pos);
                    let Ok(read) = self
                        .fs
                        .read_at(&path, pos, usize::try_from(want).unwrap_or(usize::MAX))
                        .await
                    else {
                        break;
                    };
                    if (read.len() as u64) < total {
                        break;
                    }
                    chunk = read;
                    chunk_start = pos;
                }
                Err(_) => break,
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(depth: i64, rf: i64, rp: i64, wf: i64, wp: i64) -> Meta {
        Meta {
            depth,
            read_file: rf,
            read_pos: rp,
            write_file: wf,
            write_pos: wp,
        }
    }

    #[test]
    fn sensible_positions_are_taken() {
        assert_eq!(
            Position::from_meta(&meta(3, 0, 0, 0, 101)),
            Ok(Position {
                read_file: 0,
                read_pos: 0,
                write_file: 0,
                write_pos: 101
            })
        );
        assert!(Position::from_meta(&meta(0, 3, 500, 5, 20)).is_ok());
    }

    #[test]
    fn nonsense_positions_are_refused() {
        for m in [
            meta(0, -1, 0, 0, 0),
            meta(0, 0, -1, 0, 0),
            meta(0, 0, 0, 0, -5),
            meta(0, 2, 0, 1, 0),
            meta(0, 1, 50, 1, 20),
            meta(0, 0, 0, i64::MAX, 0),
        ] {
            assert!(Position::from_meta(&m).is_err(), "{m:?}");
        }
    }

    #[test]
    fn names_must_be_one_path_component() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["t", "golden:ch", "t#ephemeral", "a.b-c_d"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn configs_that_cannot_work_are_refused() {
        let ok = DiskQueueConfig::default();
        assert!(check_config(&ok).is_ok());
        for bad in [
            DiskQueueConfig {
                max_bytes_per_file: 0,
                ..ok
            },
            DiskQueueConfig {
                min_msg_size: 10,
                max_msg_size: 9,
                ..ok
            },
            DiskQueueConfig {
                max_msg_size: u32::MAX,
                ..ok
            },
        ] {
            assert!(check_config(&bad).is_err(), "{bad:?}");
        }
    }
}
