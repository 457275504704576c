//! An in-memory file system with crash semantics.
//!
//! Each file keeps two images: `pending`, what reads see, and `durable`, what a power cut
//! would leave. `sync` copies the first to the second; [`MemFs::crash`] throws away (some
//! of) the difference. [`MemFs::wipe`] throws away everything: the disk itself is
//! lost. The namespace model is deliberately simple:
//!
//! - Directories are a set of paths (`create_dir_all`); they are durable at once.
//! - A file's creation becomes durable with its first `sync`, or with a `sync` of its
//!   directory (which keeps it, empty, if its data was never synced).
//! - `rename` and `remove` are durable at once and atomic. A renamed file carries its
//!   images along, so renaming a never-synced file over an old one and crashing leaves
//!   neither: sync before you rename.
//! - Directory locks (`lock_dir`) live in the shared state, so every clone sees them (a
//!   second nsqd on the same disk is refused); dropping the guard or [`MemFs::crash`]
//!   releases them, as the death of a process releases its flocks.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::fs::already_locked;
use super::{BoxFuture, DirLock, Fs};

/// What a simulated crash does to writes that were not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Unsynced writes are lost; files never synced (nor their directory since they were
    /// created) vanish.
    DropUnsynced,
    /// Like `Keep`, except that each file's last unsynced write is torn: only a prefix of
    /// it (possibly empty, never all of it) survives.
    TornTail,
    /// Everything written survives (as after a process crash with a healthy OS).
    Keep,
}

/// An in-memory [`Fs`] for unit tests, property tests and the simulator.
///
/// Clones share one file system (an `Arc` inside), so the simulator can keep a host's disk
/// outside the host, crash it, and hand the same disk to the restarted host.
#[derive(Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
}

/// Everything behind the lock.
#[derive(Default)]
struct State {
    /// Directories created so far (`/` and the current directory always exist).
    dirs: BTreeSet<PathBuf>,
    /// Files by normalized path; a `BTreeMap` so listings and crashes are deterministic.
    files: BTreeMap<PathBuf, File>,
    /// Injected fault: `write` and `append` fail.
    fail_writes: bool,
    /// Injected fault: `sync` fails (and makes nothing durable).
    fail_syncs: bool,
    /// Injected fault: total pending bytes allowed; writes beyond fail with `StorageFull`.
    capacity_bytes: Option<u64>,
    /// Locked directories, each with the id of the guard holding it, so a guard that
    /// outlives a crash cannot release a lock taken after it.
    locks: BTreeMap<PathBuf, u64>,
    /// The id of the next lock guard.
    next_lock_id: u64,
}

/// One file's two images.
#[derive(Default)]
struct File {
    /// What reads see.
    pending: Vec<u8>,
    /// What survives a crash; `None` while the file's very existence is not durable.
    durable: Option<Vec<u8>>,
    /// The last write since the last sync: where it starts in `pending` and how long it
    /// is. `TornTail` cuts inside it.
    last_unsynced: Option<(usize, usize)>,
}

impl MemFs {
    /// An empty file system with no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash: afterwards every file equals its durable image, chosen by `mode`.
    /// `rng_value` decides, deterministically, how much of each torn write survives.
    /// Every directory lock is released (the crashed process held them). Injected faults
    /// (failing writes or syncs, capacity) stay as they were.
    pub fn crash(&self, mode: CrashMode, rng_value: u64) {
        let mut state = self.state.lock();
        state.locks.clear();
        match mode {
            CrashMode::DropUnsynced => state.files.retain(|_, file| {
                file.last_unsynced = None;
                match &file.durable {
                    Some(durable) => {
                        file.pending.clone_from(durable);
                        true
                    }
                    None => false,
                }
            }),
            CrashMode::TornTail | CrashMode::Keep => {
                for (path, file) in state.files.iter_mut() {
                    if let (CrashMode::TornTail, Some((start, len))) = (mode, file.last_unsynced) {
                        if len > 0 {
                            let kept = mix(rng_value ^ path_hash(path)) % len as u64;
                            file.pending.truncate(start + kept as usize);
                        }
                    }
                    file.last_unsynced = None;
                    file.durable = Some(file.pending.clone());
                }
            }
        }
        tracing::debug!(?mode, files = state.files.len(), "memfs crash");
    }

    /// Simulates the loss of the disk itself (a host replaced, its disk with it): every
    /// file and directory is gone, synced or not, every directory lock is released, and the
    /// injected faults are cleared, as the new disk is a healthy one. Clones see the blank
    /// disk, so the simulator can start a lost host again on it. A lock guard taken before
    /// the wipe cannot release a lock taken after it.
    pub fn wipe(&self) {
        let mut state = self.state.lock();
        let next_lock_id = state.next_lock_id;
        *state = State {
            next_lock_id,
            ..State::default()
        };
        tracing::debug!("memfs wiped");
    }

    /// Makes every later `write` and `append` fail (`true`) or succeed again (`false`).
    pub fn set_fail_writes(&self, on: bool) {
        self.state.lock().fail_writes = on;
    }

    /// Makes every later `sync` fail without making anything durable (`true`), or work
    /// again (`false`).
    pub fn set_fail_syncs(&self, on: bool) {
        self.state.lock().fail_syncs = on;
    }

    /// Limits the total size of all files; a write that would exceed it fails with
    /// `StorageFull` and changes nothing. `None` removes the limit.
    pub fn set_capacity_bytes(&self, limit: Option<u64>) {
        self.state.lock().capacity_bytes = limit;
    }

    /// The paths of all files, sorted, so tests can see what a crash left behind.
    pub fn file_names(&self) -> Vec<PathBuf> {
        self.state.lock().files.keys().cloned().collect()
    }
}

impl std::fmt::Debug for MemFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("MemFs")
            .field("dirs", &state.dirs.len())
            .field("files", &state.files.len())
            .finish_non_exhaustive()
    }
}

impl State {
    fn is_dir(&self, path: &Path) -> bool {
        is_root(path) || self.dirs.contains(path)
    }

    /// Checks that `path` may hold a file: its parent is a directory and it is not one.
    fn check_file_slot(&self, path: &Path) -> io::Result<()> {
        if self.is_dir(path) {
            return Err(error(io::ErrorKind::IsADirectory, path, "is a directory"));
        }
        match path.parent() {
            Some(parent) if self.files.contains_key(parent) => Err(error(
                io::ErrorKind::NotADirectory,
                parent,
                "not a directory",
            )),
            Some(parent) if !self.is_dir(parent) => {
                Err(error(io::ErrorKind::NotFound, parent, "no such directory"))
            }
            _ => Ok(()),
        }
    }

    fn file(&self, path: &Path) -> io::Result<&File> {
        match self.files.get(path) {
            Some(file) => Ok(file),
            None if self.is_dir(path) => {
                Err(error(io::ErrorKind::IsADirectory, path, "is a directory"))
            }
            None => Err(error(io::ErrorKind::NotFound, path, "no such file")),
        }
    }

    /// Checks the injected faults before a write that grows `path` from `old_len` to
    /// `new_len` bytes.
    fn check_write(&self, path: &Path, old_len: usize, new_len: usize) -> io::Result<()> {
        if self.fail_writes {
            return Err(error(io::ErrorKind::Other, path, "injected write failure"));
        }
        if let Some(limit) = self.capacity_bytes {
            let used: u64 = self.files.values().map(|f| f.pending.len() as u64).sum();
            let after = used - old_len as u64 + new_len as u64;
            if after > limit {
                return Err(error(
                    io::ErrorKind::StorageFull,
                    path,
                    "no space left on device",
                ));
            }
        }
        Ok(())
    }

    fn write(&mut self, path: &Path, data: &[u8], append: bool) -> io::Result<()> {
        let old_len = self.files.get(path).map_or(0, |f| f.pending.len());
        let start = if append { old_len } else { 0 };
        self.write_from(path, start, data)
    }

    /// Writes `data` at `start` (zeros fill a gap past the end) and cuts the file there.
    fn write_from(&mut self, path: &Path, start: usize, data: &[u8]) -> io::Result<()> {
        self.check_file_slot(path)?;
        let old_len = self.files.get(path).map_or(0, |f| f.pending.len());
        self.check_write(path, old_len, start + data.len())?;
        let file = self.files.entry(path.to_path_buf()).or_default();
        file.pending.resize(start, 0);
        file.pending.extend_from_slice(data);
        file.last_unsynced = Some((start, data.len()));
        Ok(())
    }

    fn sync(&mut self, path: &Path) -> io::Result<()> {
        if self.fail_syncs {
            return Err(error(io::ErrorKind::Other, path, "injected fsync failure"));
        }
        if self.is_dir(path) {
            // A directory sync makes its entries durable, not their data.
            for (_, file) in self
                .files
                .iter_mut()
                .filter(|(p, _)| p.parent() == Some(path))
            {
                file.durable.get_or_insert_with(Vec::new);
            }
            return Ok(());
        }
        let file = self
            .files
            .get_mut(path)
            .ok_or_else(|| error(io::ErrorKind::NotFound, path, "no such file"))?;
        file.durable = Some(file.pending.clone());
        file.last_unsynced = None;
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if self.is_dir(from) {
            return Err(error(
                io::ErrorKind::Unsupported,
                from,
                "MemFs renames files only",
            ));
        }
        self.file(from)?;
        self.check_file_slot(to)?;
        if let Some(file) = self.files.remove(from) {
            self.files.insert(to.to_path_buf(), file);
        }
        Ok(())
    }

    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        if self.files.contains_key(dir) {
            return Err(error(io::ErrorKind::AlreadyExists, dir, "file exists"));
        }
        if let Some(file_ancestor) = dir
            .ancestors()
            .skip(1)
            .find(|a| self.files.contains_key(*a))
        {
            return Err(error(
                io::ErrorKind::NotADirectory,
                file_ancestor,
                "not a directory",
            ));
        }
        for ancestor in dir.ancestors().filter(|a| !is_root(a)) {
            self.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        if self.files.contains_key(dir) {
            return Err(error(io::ErrorKind::NotADirectory, dir, "not a directory"));
        }
        if !self.is_dir(dir) {
            return Err(error(io::ErrorKind::NotFound, dir, "no such directory"));
        }
        Ok(self
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }
}

impl Fs for MemFs {
    fn create_dir_all<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.state.lock().create_dir_all(&normalize(dir)) })
    }

    fn read<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<Vec<u8>>> {
        Box::pin(async move {
            let state = self.state.lock();
            Ok(state.file(&normalize(path))?.pending.clone())
        })
    }

    fn read_at<'a>(
        &'a self,
        path: &'a Path,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, io::Result<Vec<u8>>> {
        Box::pin(async move {
            let state = self.state.lock();
            let pending = &state.file(&normalize(path))?.pending;
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(pending.len());
            let end = start.saturating_add(len).min(pending.len());
            Ok(pending[start..end].to_vec())
        })
    }

    fn write<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.state.lock().write(&normalize(path), data, false) })
    }

    fn append<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.state.lock().write(&normalize(path), data, true) })
    }

    fn write_at<'a>(
        &'a self,
        path: &'a Path,
        offset: u64,
        data: Vec<u8>,
    ) -> BoxFuture<'a, (Vec<u8>, io::Result<()>)> {
        Box::pin(async move {
            let written = match usize::try_from(offset) {
                Ok(start) => self.state.lock().write_from(&normalize(path), start, &data),
                Err(_) => Err(error(io::ErrorKind::InvalidInput, path, "offset too large")),
            };
            (data, written)
        })
    }

    fn sync<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.state.lock().sync(&normalize(path)) })
    }

    fn rename<'a>(&'a self, from: &'a Path, to: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.state.lock().rename(&normalize(from), &normalize(to)) })
    }

    fn remove<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let path = normalize(path);
            let mut state = self.state.lock();
            state.file(&path)?;
            state.files.remove(&path);
            Ok(())
        })
    }

    fn list<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<Vec<PathBuf>>> {
        Box::pin(async move { self.state.lock().list(&normalize(dir)) })
    }

    fn len<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<u64>> {
        Box::pin(async move {
            let state = self.state.lock();
            Ok(state.file(&normalize(path))?.pending.len() as u64)
        })
    }

    fn lock_dir<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, io::Result<DirLock>> {
        Box::pin(async move {
            let normalized = normalize(dir);
            let mut state = self.state.lock();
            if state.files.contains_key(&normalized) {
                return Err(error(io::ErrorKind::NotADirectory, dir, "not a directory"));
            }
            if !state.is_dir(&normalized) {
                return Err(error(io::ErrorKind::NotFound, dir, "no such directory"));
            }
            if state.locks.contains_key(&normalized) {
                return Err(already_locked(dir));
            }
            let id = state.next_lock_id;
            state.next_lock_id += 1;
            state.locks.insert(normalized.clone(), id);
            let release = MemDirLock {
                state: self.state.clone(),
                dir: normalized,
                id,
            };
            Ok(DirLock::new(dir, release))
        })
    }
}

/// What a `MemFs` [`DirLock`] holds: dropping it unregisters the lock, unless a crash
/// already released it (and someone may have locked the directory again since).
struct MemDirLock {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
    id: u64,
}

impl Drop for MemDirLock {
    fn drop(&mut self) {
        let mut state = self.state.lock();
        if state.locks.get(&self.dir) == Some(&self.id) {
            state.locks.remove(&self.dir);
        }
    }
}

/// `./a//b/./c/` and `a/b/c` name the same file.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// The directories that exist without being created: `/` and the current directory
/// (`""` once normalized).
fn is_root(path: &Path) -> bool {
    let mut components = path.components();
    match components.next() {
        None => true,
        Some(Component::RootDir) => components.next().is_none(),
        Some(_) => false,
    }
}

fn error(kind: io::ErrorKind, path: &Path, what: &str) -> io::Error {
    io::Error::new(kind, format!("{}: {what}", path.display()))
}

/// FNV-1a of the path's bytes: gives each file its own tear point for one `rng_value`.
fn path_hash(path: &Path) -> u64 {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// splitmix64's finalizer: spreads nearby inputs over the whole range.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    /// A file system with `/data` and the file `/data/q.dat` holding `synced` (synced)
    /// followed by the unsynced appends `tail`.
    async fn with_file(synced: &[u8], tail: &[&[u8]]) -> MemFs {
        let fs = MemFs::new();
        fs.create_dir_all(&p("/data")).await.unwrap();
        fs.append(&p("/data/q.dat"), synced).await.unwrap();
        fs.sync(&p("/data/q.dat")).await.unwrap();
        for data in tail {
            fs.append(&p("/data/q.dat"), data).await.unwrap();
        }
        fs
    }

    #[tokio::test]
    async fn reads_see_pending_writes() {
        let fs = with_file(b"abc", &[b"def"]).await;
        assert_eq!(fs.read(&p("/data/q.dat")).await.unwrap(), b"abcdef");
        assert_eq!(fs.read_at(&p("/data/q.dat"), 2, 3).await.unwrap(), b"cde");
        assert_eq!(fs.read_at(&p("/data/q.dat"), 4, 100).await.unwrap(), b"ef");
        assert!(fs
            .read_at(&p("/data/q.dat"), 100, 4)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(fs.len(&p("/data/q.dat")).await.unwrap(), 6);
        fs.write(&p("/data/q.dat"), b"xy").await.unwrap();
        assert_eq!(fs.read(&p("//data/./q.dat")).await.unwrap(), b"xy");
    }

    #[tokio::test]
    async fn drop_unsynced_keeps_only_synced_bytes() {
        let fs = with_file(b"abc", &[b"def", b"ghi"]).await;
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(fs.read(&p("/data/q.dat")).await.unwrap(), b"abc");
    }

    #[tokio::test]
    async fn drop_unsynced_reverts_an_unsynced_overwrite() {
        let fs = with_file(b"old", &[]).await;
        fs.write(&p("/data/q.dat"), b"new!").await.unwrap();
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(fs.read(&p("/data/q.dat")).await.unwrap(), b"old");
    }

    #[tokio::test]
    async fn drop_unsynced_removes_never_synced_files_unless_the_dir_was_synced() {
        let fs = with_file(b"abc", &[]).await;
        fs.append(&p("/data/kept.dat"), b"xyz").await.unwrap();
        fs.sync(&p("/data")).await.unwrap();
        fs.append(&p("/data/lost.dat"), b"xyz").await.unwrap();
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(fs.file_names(), vec![p("/data/kept.dat"), p("/data/q.dat")]);
        // The directory sync made the entry durable, not the data.
        assert!(fs.read(&p("/data/kept.dat")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn keep_keeps_everything() {
        let fs = with_file(b"abc", &[b"def"]).await;
        fs.append(&p("/data/new.dat"), b"xyz").await.unwrap();
        fs.crash(CrashMode::Keep, 0);
        assert_eq!(fs.read(&p("/data/q.dat")).await.unwrap(), b"abcdef");
        assert_eq!(fs.read(&p("/data/new.dat")).await.unwrap(), b"xyz");
        // What survived is durable now: a second crash changes nothing.
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(fs.read(&p("/data/q.dat")).await.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn torn_tail_keeps_a_proper_prefix_of_the_last_append() {
        let mut seen = BTreeSet::new();
        for rng_value in 0..64 {
            let fs = with_file(b"abc", &[b"def", b"0123456789"]).await;
            fs.crash(CrashMode::TornTail, rng_value);
            let data = fs.read(&p("/data/q.dat")).await.unwrap();
            let full = b"abcdef0123456789";
            assert!(
                data.len() >= 6 && data.len() < full.len(),
                "len {}",
                data.len()
            );
            assert_eq!(&full[..data.len()], &data[..]);
            seen.insert(data.len());
        }
        assert!(
            seen.len() > 5,
            "tear points should vary with rng_value: {seen:?}"
        );
    }

    #[tokio::test]
    async fn torn_tail_is_deterministic_and_leaves_synced_files_alone() {
        let run = |rng_value| async move {
            let fs = with_file(b"abc", &[b"0123456789"]).await;
            fs.append(&p("/data/synced.dat"), b"whole").await.unwrap();
            fs.sync(&p("/data/synced.dat")).await.unwrap();
            fs.crash(CrashMode::TornTail, rng_value);
            assert_eq!(fs.read(&p("/data/synced.dat")).await.unwrap(), b"whole");
            fs.read(&p("/data/q.dat")).await.unwrap()
        };
        assert_eq!(run(42).await, run(42).await);
    }

    #[tokio::test]
    async fn rename_replaces_the_target_atomically() {
        let fs = with_file(b"abc", &[]).await;
        fs.write(&p("/data/meta.tmp"), b"new").await.unwrap();
        fs.sync(&p("/data/meta.tmp")).await.unwrap();
        fs.write(&p("/data/meta.dat"), b"old").await.unwrap();
        fs.rename(&p("/data/meta.tmp"), &p("/data/meta.dat"))
            .await
            .unwrap();
        assert_eq!(fs.read(&p("/data/meta.dat")).await.unwrap(), b"new");
        let err = fs.read(&p("/data/meta.tmp")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        // The renamed file carries its durable image along.
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(fs.read(&p("/data/meta.dat")).await.unwrap(), b"new");
    }

    #[tokio::test]
    async fn rename_errors_like_a_real_fs() {
        let fs = with_file(b"abc", &[]).await;
        let missing = fs
            .rename(&p("/data/nope"), &p("/data/x"))
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let no_dir = fs
            .rename(&p("/data/q.dat"), &p("/other/x"))
            .await
            .unwrap_err();
        assert_eq!(no_dir.kind(), io::ErrorKind::NotFound);
        let onto_dir = fs.rename(&p("/data/q.dat"), &p("/data")).await.unwrap_err();
        assert_eq!(onto_dir.kind(), io::ErrorKind::IsADirectory);
        fs.rename(&p("/data/q.dat"), &p("/data/q.dat"))
            .await
            .unwrap();
        assert_eq!(fs.read(&p("/data/q.dat")).await.unwrap(), b"abc");
    }

    #[tokio::test]
    async fn list_is_sorted_and_shallow() {
        let fs = MemFs::new();
        fs.create_dir_all(&p("/d/sub")).await.unwrap();
        for name in ["c", "a.2", "b", "a.10"] {
            fs.write(&p("/d").join(name), b"").await.unwrap();
        }
        fs.write(&p("/d/sub/deep"), b"").await.unwrap();
        let names = fs.list(&p("/d")).await.unwrap();
        assert_eq!(names, vec![p("/d/a.10"), p("/d/a.2"), p("/d/b"), p("/d/c")]);
        assert_eq!(
            fs.list(&p("/d/sub/")).await.unwrap(),
            vec![p("/d/sub/deep")]
        );
        assert_eq!(
            fs.list(&p("/nope")).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let not_dir = fs.list(&p("/d/b")).await.unwrap_err();
        assert_eq!(not_dir.kind(), io::ErrorKind::NotADirectory);
    }

    #[tokio::test]
    async fn missing_paths_and_directories_error_like_a_real_fs() {
        let fs = MemFs::new();
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(
            kind(fs.write(&p("/nodir/f"), b"x").await),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs.read(&p("/f")).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs.len(&p("/f")).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(kind(fs.sync(&p("/f")).await), io::ErrorKind::NotFound);
        assert_eq!(kind(fs.remove(&p("/f")).await), io::ErrorKind::NotFound);
        fs.create_dir_all(&p("/d")).await.unwrap();
        fs.create_dir_all(&p("/d")).await.unwrap();
        assert_eq!(
            kind(fs.write(&p("/d"), b"x").await),
            io::ErrorKind::IsADirectory
        );
        assert_eq!(
            fs.read(&p("/d")).await.unwrap_err().kind(),
            io::ErrorKind::IsADirectory
        );
        fs.write(&p("/d/f"), b"x").await.unwrap();
        assert_eq!(
            kind(fs.create_dir_all(&p("/d/f")).await),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.create_dir_all(&p("/d/f/g")).await),
            io::ErrorKind::NotADirectory
        );
        assert_eq!(
            kind(fs.write(&p("/d/f/g"), b"x").await),
            io::ErrorKind::NotADirectory
        );
        fs.remove(&p("/d/f")).await.unwrap();
        assert!(fs.file_names().is_empty());
        // Relative paths live under an implicit current directory.
        fs.write(&p("rel.dat"), b"r").await.unwrap();
        assert_eq!(fs.list(&p(".")).await.unwrap(), vec![p("rel.dat")]);
        assert_eq!(fs.read(&p("./rel.dat")).await.unwrap(), b"r");
    }

    #[tokio::test]
    async fn injected_write_failures_change_nothing() {
        let fs = with_file(b"abc", &[]).await;
        fs.set_fail_writes(true);
        let err = fs.append(&p("/data/q.dat"), b"def").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(fs.write(&p("/data/new"), b"x").await.is_err());
        assert_eq!(fs.file_names(), vec![p("/data/q.dat")]);
        fs.set_fail_writes(false);
        fs.append(&p("/data/q.dat"), b"def").await.unwrap();
        assert_eq!(fs.read(&p("/data/q.dat")).await.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn injected_sync_failures_make_nothing_durable() {
        let fs = with_file(b"abc", &[b"def"]).await;
        fs.set_fail_syncs(true);
        assert!(fs.sync(&p("/data/q.dat")).await.is_err());
        assert!(fs.sync(&p("/data")).await.is_err());
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(fs.read(&p("/data/q.dat")).await.unwrap(), b"abc");
        fs.set_fail_syncs(false);
        fs.append(&p("/data/q.dat"), b"def").await.unwrap();
        fs.sync(&p("/data/q.dat")).await.unwrap();
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(fs.read(&p("/data/q.dat")).await.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn capacity_limits_total_pending_bytes() {
        let fs = with_file(b"abc", &[]).await;
        fs.set_capacity_bytes(Some(8));
        fs.append(&p("/data/q.dat"), b"de").await.unwrap();
        let full = fs.append(&p("/data/other"), b"xyzw").await.unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        assert_eq!(fs.file_names(), vec![p("/data/q.dat")]);
        // Overwriting frees the old bytes first.
        fs.write(&p("/data/q.dat"), b"12345678").await.unwrap();
        fs.remove(&p("/data/q.dat")).await.unwrap();
        fs.append(&p("/data/other"), b"xyzw").await.unwrap();
        fs.set_capacity_bytes(None);
        fs.append(&p("/data/other"), &[0; 64]).await.unwrap();
    }

    #[tokio::test]
    async fn a_locked_dir_refuses_every_clone_until_the_guard_drops() {
        let fs = with_file(b"abc", &[]).await;
        let other_host = fs.clone();
        let lock = fs.lock_dir(&p("/data")).await.unwrap();
        assert_eq!(lock.dir(), p("/data"));
        let err = other_host.lock_dir(&p("/data/")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(
            err.to_string(),
            "/data/: directory is locked (in use by another process)"
        );
        assert!(fs.lock_dir(&p("./data/.")).await.is_err());
        fs.create_dir_all(&p("/other")).await.unwrap();
        let _other = other_host.lock_dir(&p("/other")).await.unwrap();
        drop(lock);
        let _again = other_host.lock_dir(&p("/data")).await.unwrap();
    }

    #[tokio::test]
    async fn a_crash_releases_locks_and_a_stale_guard_releases_nothing() {
        let fs = with_file(b"abc", &[]).await;
        let before_crash = fs.lock_dir(&p("/data")).await.unwrap();
        fs.crash(CrashMode::Keep, 0);
        let after_crash = fs.lock_dir(&p("/data")).await.unwrap();
        // The crashed process's guard goes away late: the new holder keeps the lock.
        drop(before_crash);
        let err = fs.lock_dir(&p("/data")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(after_crash);
        fs.lock_dir(&p("/data")).await.unwrap();
    }

    #[tokio::test]
    async fn a_wipe_leaves_a_blank_healthy_disk_and_stale_guards_release_nothing() {
        let fs = with_file(b"abc", &[b"def"]).await;
        fs.create_dir_all(&p("/data/sub")).await.unwrap();
        fs.set_fail_syncs(true);
        fs.set_capacity_bytes(Some(0));
        let before_wipe = fs.lock_dir(&p("/data")).await.unwrap();
        let clone = fs.clone();
        clone.wipe();
        assert!(fs.file_names().is_empty());
        let gone = fs.read(&p("/data/q.dat")).await.unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            fs.lock_dir(&p("/data")).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // The new disk is healthy: writes and syncs work, and a crash keeps what was synced.
        fs.create_dir_all(&p("/data")).await.unwrap();
        fs.append(&p("/data/new.dat"), b"xyz").await.unwrap();
        fs.sync(&p("/data/new.dat")).await.unwrap();
        let after_wipe = fs.lock_dir(&p("/data")).await.unwrap();
        drop(before_wipe);
        let err = fs.lock_dir(&p("/data")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(after_wipe);
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(fs.file_names(), vec![p("/data/new.dat")]);
    }

    #[tokio::test]
    async fn only_existing_directories_can_be_locked() {
        let fs = with_file(b"abc", &[]).await;
        let missing = fs.lock_dir(&p("/nope")).await.unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let file = fs.lock_dir(&p("/data/q.dat")).await.unwrap_err();
        assert_eq!(file.kind(), io::ErrorKind::NotADirectory);
        // `/` and the current directory always exist.
        let _root = fs.lock_dir(&p("/")).await.unwrap();
        let _cwd = fs.lock_dir(&p(".")).await.unwrap();
    }

    #[tokio::test]
    async fn clones_share_one_disk_across_a_crash() {
        let fs = with_file(b"abc", &[b"def"]).await;
        let kept_outside_host = fs.clone();
        drop(fs);
        kept_outside_host.crash(CrashMode::DropUnsynced, 0);
        let restarted: Arc<dyn Fs> = Arc::new(kept_outside_host.clone());
        assert_eq!(restarted.read(&p("/data/q.dat")).await.unwrap(), b"abc");
    }
}
