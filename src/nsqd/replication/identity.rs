//! `replication.dat`: the id of this data directory, and the data directory id each
//! owner had when this node last heard from it. A node whose disk was lost comes back
//! with a new id, which tells its peers to deliver what they hold of it at once.
//!
//! So does a node that crashed while it could hold acknowledged messages in memory
//! only (`--mem-queue-size` > 0, or `--sync-every` > 1 and a power cut): the file says
//! whether the last run is still `running` (set at start, cleared at a graceful exit),
//! and a start that finds it set takes a new id. Its peers then deliver their copies of
//! its messages, duplicates of those its disk kept, rather than lose those it did not.
//!
//! The file is JSON, written to a temporary file, fsynced and renamed over the old one,
//! as `nsqd.dat` is. Go nsqd never opens it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::env::{Fs, Rng};
use crate::nsqd::metadata::{write_synced_then_rename, MetadataError};

/// The file's name in `--data-path`.
pub const FILE_NAME: &str = "replication.dat";
const VERSION: u32 = 1;

/// Why `replication.dat` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading failed.
    #[error("failed to read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not ours, or damaged.
    #[error("{} is not a replication.dat: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: serde_json::Error,
    },
    /// The file is of a version this nsqd does not know.
    #[error("{} is of version {found}, not {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] MetadataError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Contents {
    version: u32,
    data_id: u64,
    /// Owner node id → the data directory id it had.
    owners: BTreeMap<u16, u64>,
    /// Set from start to graceful exit (absent in files of earlier builds: not running).
    #[serde(default)]
    running: bool,
    /// The owners whose standby copies this node took over (absent in files of earlier
    /// builds: none).
    #[serde(default)]
    adopted_from: BTreeSet<u16>,
}

/// What an owner's HELLO says about its disk, next to what this node knew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerDisk {
    /// The same data directory as before.
    Same,
    /// First heard of.
    New,
    /// Another data directory: the one this node knew was lost.
    Replaced,
}

/// This node's `replication.dat`, loaded.
pub struct Identity {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    contents: tokio::sync::Mutex<Contents>,
    data_id: u64,
    /// `Contents::adopted_from`, readable without waiting.
    adopted_from: parking_lot::Mutex<BTreeSet<u16>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("path", &self.path)
            .field("data_id", &self.data_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads `replication.dat` in `data_path`, or makes one with a new random id (a new
    /// or wiped data directory), marks this run as running and writes it before
    /// returning. After a run that did not exit gracefully the id is new too, unless
    /// this node is `crash_safe` (`--mem-queue-size=0 --sync-every=1`: a crash loses
    /// nothing it acknowledged).
    pub async fn load_or_create(
        fs: Arc<dyn Fs>,
        data_path: &Path,
        rng: &dyn Rng,
        crash_safe: bool,
    ) -> Result<Identity, IdentityError> {
        let path = data_path.join(FILE_NAME);
        // 0 means "none" on the wire.
        let new_id = || rng.next_u64().max(1);
        let mut contents = match fs.read(&path).await {
            Ok(bytes) => decode(&path, &bytes)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let contents = Contents {
                    version: VERSION,
                    data_id: new_id(),
                    owners: BTreeMap::new(),
                    running: false,
                    adopted_from: BTreeSet::new(),
                };
                tracing::info!(data_id = contents.data_id, "new replication identity");
                contents
            }
            Err(source) => return Err(IdentityError::Read { path, source }),
        };
        if contents.running && !crash_safe {
            contents.data_id = new_id();
            tracing::warn!(
                data_id = contents.data_id,
                "the last run did not exit gracefully and may have lost acknowledged \
                 messages held in memory: new replication identity, so peers deliver \
                 their copies of this node's messages"
            );
        }
        contents.running = true;
        write(&*fs, &path, &contents).await?;
        Ok(Identity {
            fs,
            path,
            data_id: contents.data_id,
            adopted_from: parking_lot::Mutex::new(contents.adopted_from.clone()),
            contents: tokio::sync::Mutex::new(contents),
        })
    }

    /// This data directory's id.
    pub fn data_id(&self) -> u64 {
        self.data_id
    }

    /// The owners whose standby copies this node took over, in any run: FINs of their
    /// messages elsewhere concern copies here too.
    pub fn adopted_from(&self) -> BTreeSet<u16> {
        self.adopted_from.lock().clone()
    }

    /// Notes that this node takes over `owner`'s standby copies (written before this
    /// returns when it is new).
    pub async fn adopting_from(&self, owner: u16) -> Result<(), IdentityError> {
        let mut contents = self.contents.lock().await;
        if contents.adopted_from.contains(&owner) {
            return Ok(());
        }
        let mut changed = contents.clone();
        changed.adopted_from.insert(owner);
        write(&*self.fs, &self.path, &changed).await?;
        self.adopted_from.lock().insert(owner);
        *contents = changed;
        Ok(())
    }

    /// Notes a graceful exit (everything held in memory is on disk now): the next start
    /// keeps the id.
    pub async fn exited_gracefully(&self) -> Result<(), IdentityError> {
        let mut contents = self.contents.lock().await;
        let mut changed = contents.clone();
        changed.running = false;
        write(&*self.fs, &self.path, &changed).await?;
        *contents = changed;
        Ok(())
    }

    /// Notes that owner `node_id` has data directory `data_id` (written before this
    /// returns when it changed), and says how that compares with what was known.
    pub async fn owner_seen(&self, node_id: u16, data_id: u64) -> Result<OwnerDisk, IdentityError> {
        let mut contents = self.contents.lock().await;
        let disk = match contents.owners.get(&node_id) {
            Some(known) if *known == data_id => return Ok(OwnerDisk::Same),
            Some(_) => OwnerDisk::Replaced,
            None => OwnerDisk::New,
        };
        let mut changed = contents.clone();
        changed.owners.insert(node_id, data_id);
        write(&*self.fs, &self.path, &changed).await?;
        *contents = changed;
        Ok(disk)
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Contents, IdentityError> {
    let contents: Contents =
        serde_json::from_slice(bytes).map_err(|source| IdentityError::Decode {
            path: path.to_path_buf(),
            source,
        })?;
    if contents.version != VERSION {
        return Err(IdentityError::Version {
            path: path.to_path_buf(),
            found: contents.version,
        });
    }
    Ok(contents)
}

async fn write(fs: &dyn Fs, path: &Path, contents: &Contents) -> Result<(), MetadataError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    // Serializing a struct of numbers cannot fail.
    let bytes = serde_json::to_vec(contents).unwrap_or_default();
    write_synced_then_rename(fs, Path::new(&tmp), path, &bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{CrashMode, MemFs, SeededRng};

    #[tokio::test]
    async fn the_id_survives_a_restart_and_owners_are_compared() {
        let fs = Arc::new(MemFs::new());
        let dir = Path::new("/data");
        fs.create_dir_all(dir).await.unwrap();
        let rng = SeededRng::new(7);
        let first = Identity::load_or_create(fs.clone(), dir, &rng, false)
            .await
            .unwrap();
        assert_eq!(first.owner_seen(3, 100).await.unwrap(), OwnerDisk::New);
        assert_eq!(first.owner_seen(3, 100).await.unwrap(), OwnerDisk::Same);
        first.exited_gracefully().await.unwrap();
        fs.crash(CrashMode::DropUnsynced, 0);
        let again = Identity::load_or_create(fs.clone(), dir, &rng, false)
            .await
            .unwrap();
        assert_eq!(again.data_id(), first.data_id());
        assert_eq!(again.owner_seen(3, 100).await.unwrap(), OwnerDisk::Same);
        assert_eq!(again.owner_seen(3, 200).await.unwrap(), OwnerDisk::Replaced);
        assert!(again.adopted_from().is_empty());
        again.adopting_from(3).await.unwrap();
        again.adopting_from(3).await.unwrap();
        fs.crash(CrashMode::DropUnsynced, 0);
        let after = Identity::load_or_create(fs.clone(), dir, &rng, false)
            .await
            .unwrap();
        assert_eq!(after.adopted_from(), BTreeSet::from([3]));
    }

    #[tokio::test]
    async fn a_damaged_file_is_an_error() {
        let fs = Arc::new(MemFs::new());
        let dir = Path::new("/data");
        fs.create_dir_all(dir).await.unwrap();
        fs.write(&dir.join(FILE_NAME), b"{not json").await.unwrap();
        let error = Identity::load_or_create(fs, dir, &SeededRng::new(1), false)
            .await
            .unwrap_err();
        assert!(matches!(error, IdentityError::Decode { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_crash_gives_a_new_id_unless_the_node_is_crash_safe() {
        let fs = Arc::new(MemFs::new());
        let dir = Path::new("/data");
        fs.create_dir_all(dir).await.unwrap();
        let rng = SeededRng::new(7);
        let open = |crash_safe| Identity::load_or_create(fs.clone(), dir, &rng, crash_safe);
        let first = open(false).await.unwrap().data_id();
        fs.crash(CrashMode::DropUnsynced, 0);
        let after_crash = open(false).await.unwrap();
        assert_ne!(
            after_crash.data_id(),
            first,
            "a crash loses what memory held"
        );
        fs.crash(CrashMode::DropUnsynced, 0);
        let crash_safe = open(true).await.unwrap();
        assert_eq!(crash_safe.data_id(), after_crash.data_id());
        crash_safe.exited_gracefully().await.unwrap();
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(open(false).await.unwrap().data_id(), after_crash.data_id());
        // A file of an earlier build, without `running`, reads as a graceful exit.
        let old = br#"{"version":1,"data_id":5,"owners":{"3":100}}"#;
        fs.write(&dir.join(FILE_NAME), old).await.unwrap();
        let upgraded = open(false).await.unwrap();
        assert_eq!(upgraded.data_id(), 5);
        assert_eq!(upgraded.owner_seen(3, 100).await.unwrap(), OwnerDisk::Same);
    }
}
