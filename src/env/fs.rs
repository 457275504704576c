//! The few file operations the disk queue and the metadata file need.

use std::io;
use std::path::{Path, PathBuf};

use super::{BoxFuture, DirLock};

/// File access for the disk queue and `nsqd.dat`.
///
/// Deliberately small: whole-file reads and writes, appends, reads at an offset, fsync,
/// atomic rename, remove, list and length. `MemFs` implements the same trait with a
/// durable and a pending image per file, so tests and simulations can crash a host and
/// see exactly what a real disk would have kept.
pub trait Fs: Send + Sync {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<()>>;
    /// Reads a whole file.
    fn read<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<Vec<u8>>>;
    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    fn read_at<'a>(
        &'a self,
        path: &'a Path,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, io::Result<Vec<u8>>>;
    /// Creates or truncates `path` and writes `data` (not synced).
    fn write<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;
    /// Appends `data` to `path`, creating it (mode 0600) if missing (not synced).
    fn append<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;
    /// Writes `data` at `offset` of `path` (created with mode 0600 if missing) and cuts
    /// off whatever the file held past `offset + data.len()`, so a retry after a failed
    /// or torn write leaves exactly the same file. Not synced. Hands `data` back so the
    /// caller can reuse its allocation for the next batch.
    fn write_at<'a>(
        &'a self,
        path: &'a Path,
        offset: u64,
        data: Vec<u8>,
    ) -> BoxFuture<'a, (Vec<u8>, io::Result<()>)>;
    /// Makes everything written to `path` so far durable (fsync).
    fn sync<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<()>>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename<'a>(&'a self, from: &'a Path, to: &'a Path) -> BoxFuture<'a, io::Result<()>>;
    /// Removes a file.
    fn remove<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<()>>;
    /// The paths of the files directly inside `dir`, sorted by name.
    fn list<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<Vec<PathBuf>>>;
    /// The length of a file in bytes.
    fn len<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<u64>>;
    /// Takes the exclusive lock on the existing directory `dir` without waiting, as Go's
    /// `dirlock` does for `--data-path`. Fails with `io::ErrorKind::WouldBlock` while
    /// anyone else (another process, or another `lock_dir` here) holds it. The lock lasts
    /// until the returned guard is dropped.
    fn lock_dir<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<DirLock>>;
}

/// The error for a directory someone else has locked.
pub(super) fn already_locked(dir: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "{}: directory is locked (in use by another process)",
            dir.display()
        ),
    )
}

/// The real file system: `std::fs` run off the async worker threads (small writes
/// aside, see [`INLINE_WRITE_MAX_BYTES`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

/// Writes up to this many bytes are made on the calling thread: into the page cache
/// they take microseconds, less than the hop to the blocking pool and back (a replica
/// storing one frame per MPUB spent 0.76 CPU s per million messages with the hop, 0.53
/// without). Larger ones, and everything else, run on the blocking pool.
const INLINE_WRITE_MAX_BYTES: usize = 256 << 10;

/// Runs a blocking `std::fs` operation off the async worker threads.
async fn blocking<T, F>(f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    #[allow(clippy::disallowed_methods)]
    let joined = tokio::task::spawn_blocking(f).await;
    joined.map_err(io::Error::other)?
}

#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
impl Fs for RealFs {
    fn create_dir_all<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        let dir = dir.to_path_buf();
        Box::pin(blocking(move || std::fs::create_dir_all(dir)))
    }

    fn read<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<Vec<u8>>> {
        let path = path.to_path_buf();
        Box::pin(blocking(move || std::fs::read(path)))
    }

    fn read_at<'a>(
        &'a self,
        path: &'a Path,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, io::Result<Vec<u8>>> {
        let path = path.to_path_buf();
        Box::pin(blocking(move || read_at_blocking(&path, offset, len)))
    }

    fn write<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        let path = path.to_path_buf();
        let data = data.to_vec();
        Box::pin(blocking(move || {
            let mut file = open_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            std::io::Write::write_all(&mut file, &data)
        }))
    }

    fn append<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        let path = path.to_path_buf();
        let data = data.to_vec();
        Box::pin(blocking(move || {
            let mut file = open_options().append(true).create(true).open(path)?;
            std::io::Write::write_all(&mut file, &data)
        }))
    }

    fn write_at<'a>(
        &'a self,
        path: &'a Path,
        offset: u64,
        data: Vec<u8>,
    ) -> BoxFuture<'a, (Vec<u8>, io::Result<()>)> {
        let path = path.to_path_buf();
        if data.len() <= INLINE_WRITE_MAX_BYTES {
            return Box::pin(async move {
                let written = write_at_blocking(&path, offset, &data);
                (data, written)
            });
        }
        Box::pin(async move {
            // The buffer travels to the blocking thread and back: no copy of the data.
            let joined = tokio::task::spawn_blocking(move || {
                let written = write_at_blocking(&path, offset, &data);
                (data, written)
            })
            .await;
            match joined {
                Ok(done) => done,
                Err(error) => (Vec::new(), Err(io::Error::other(error))),
            }
        })
    }

    fn sync<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        let path = path.to_path_buf();
        Box::pin(blocking(move || {
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)?
                .sync_all()
        }))
    }

    fn rename<'a>(&'a self, from: &'a Path, to: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        Box::pin(blocking(move || std::fs::rename(from, to)))
    }

    fn remove<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        let path = path.to_path_buf();
        Box::pin(blocking(move || std::fs::remove_file(path)))
    }

    fn list<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<Vec<PathBuf>>> {
        let dir = dir.to_path_buf();
        Box::pin(blocking(move || {
            let mut paths = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    paths.push(entry.path());
                }
            }
            paths.sort();
            Ok(paths)
        }))
    }

    fn len<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<u64>> {
        let path = path.to_path_buf();
        Box::pin(blocking(move || Ok(std::fs::metadata(path)?.len())))
    }

    fn lock_dir<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<DirLock>> {
        let dir = dir.to_path_buf();
        Box::pin(blocking(move || {
            // flock(LOCK_EX | LOCK_NB) on the directory itself, like Go's dirlock. The
            // lock belongs to this open file: closing it (dropping the guard) releases it,
            // and so does the process dying.
            let file = std::fs::File::open(&dir)?;
            match file.try_lock() {
                Ok(()) => Ok(DirLock::new(&dir, file)),
                Err(std::fs::TryLockError::WouldBlock) => Err(already_locked(&dir)),
                Err(std::fs::TryLockError::Error(error)) => Err(error),
            }
        }))
    }
}

/// [`Fs::read_at`] on the real file system: one read into a buffer sized to what the
/// file has left (never zero-filled first), up to `len` bytes.
#[allow(clippy::disallowed_types)]
fn read_at_blocking(path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let left = file.metadata()?.len().saturating_sub(offset);
    let want = len.min(usize::try_from(left).unwrap_or(usize::MAX));
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(want);
    file.take(want as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// [`Fs::write_at`] on the real file system: one positioned write, and a truncate only
/// when an earlier, failed attempt left bytes past the end.
#[allow(clippy::disallowed_types)]
fn write_at_blocking(path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = open_options().write(true).create(true).open(path)?;
    file.write_all_at(data, offset)?;
    let end = offset + data.len() as u64;
    if file.metadata()?.len() > end {
        file.set_len(end)?;
    }
    Ok(())
}

/// Files are created with mode 0600, as go-diskqueue creates them.
#[allow(clippy::disallowed_types)]
fn open_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    /// flock on a directory opened read-only works (Linux), excludes a second open of
    /// the same directory even in this process, and ends when the guard drops.
    #[tokio::test]
    async fn real_dir_lock_excludes_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RealFs.lock_dir(dir.path()).await.unwrap();
        assert_eq!(lock.dir(), dir.path());
        let err = RealFs.lock_dir(dir.path()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains("directory is locked"), "{err}");
        drop(lock);
        let _again = RealFs.lock_dir(dir.path()).await.unwrap();
    }

    /// `write_at` creates the file, writes at the offset, cuts off what a longer earlier
    /// attempt left past the end, and hands the buffer back.
    #[tokio::test]
    #[allow(clippy::disallowed_methods)]
    async fn real_write_at_rewrites_from_the_offset_and_cuts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.dat");
        let (buf, written) = RealFs.write_at(&path, 0, b"hello world".to_vec()).await;
        written.unwrap();
        assert_eq!(buf, b"hello world");
        let (_, written) = RealFs.write_at(&path, 6, b"you".to_vec()).await;
        written.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello you");
        let (_, written) = RealFs.write_at(&path, 9, b"!".to_vec()).await;
        written.unwrap();
        assert_eq!(RealFs.read(&path).await.unwrap(), b"hello you!");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn real_dir_lock_of_a_missing_dir_fails() {
        let dir = tempfile::tempdir().unwrap();
        let err = RealFs
            .lock_dir(&dir.path().join("missing"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
