//! What a disk queue's files are called, exactly as go-diskqueue names them, so a data
//! directory moves between Go nsqd and ours.

use std::path::{Path, PathBuf};

/// The paths of one queue's files inside its data directory.
#[derive(Debug, Clone)]
pub(super) struct QueueFiles {
    /// The data directory (`--data-path`).
    dir: PathBuf,
    /// The queue name: `<topic>` or `<topic>:<channel>`.
    name: String,
}

impl QueueFiles {
    /// The files of queue `name` in `dir`.
    pub(super) fn new(dir: PathBuf, name: &str) -> Self {
        QueueFiles {
            dir,
            name: name.to_string(),
        }
    }

    /// The data directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Data file `num`: `<name>.diskqueue.%06d.dat`.
    pub(super) fn data(&self, num: u64) -> PathBuf {
        self.dir
            .join(format!("{}.diskqueue.{num:06}.dat", self.name))
    }

    /// Where a corrupt data file is moved: the data file's name plus `.bad`.
    pub(super) fn bad(&self, num: u64) -> PathBuf {
        self.dir
            .join(format!("{}.diskqueue.{num:06}.dat.bad", self.name))
    }

    /// The metadata file: `<name>.diskqueue.meta.dat`.
    pub(super) fn meta(&self) -> PathBuf {
        self.dir.join(format!("{}.diskqueue.meta.dat", self.name))
    }

    /// The temporary file the metadata is written to before the rename. Go adds a random
    /// number; a fixed name means a leftover from a crash is simply overwritten next time.
    pub(super) fn meta_tmp(&self) -> PathBuf {
        self.dir
            .join(format!("{}.diskqueue.meta.dat.tmp", self.name))
    }

    /// The number of `path` if it is one of this queue's data files (not `.bad`, not
    /// another queue's whose name merely starts the same way).
    pub(super) fn data_file_num(&self, path: &Path) -> Option<u64> {
        let file_name = path.file_name()?.to_str()?;
        let digits = file_name
            .strip_prefix(self.name.as_str())?
            .strip_prefix(".diskqueue.")?
            .strip_suffix(".dat")?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let num: u64 = digits.parse().ok()?;
        // Only the spelling `%06d` gives, so `0001234` is not taken for file 1234.
        (format!("{num:06}") == digits).then_some(num)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(name: &str) -> QueueFiles {
        QueueFiles::new(PathBuf::from("/data"), name)
    }

    #[test]
    fn names_are_go_diskqueues() {
        let f = files("golden:ch");
        assert_eq!(
            f.data(0),
            PathBuf::from("/data/golden:ch.diskqueue.000000.dat")
        );
        assert_eq!(
            f.data(1_234_567),
            PathBuf::from("/data/golden:ch.diskqueue.1234567.dat")
        );
        assert_eq!(
            f.bad(3),
            PathBuf::from("/data/golden:ch.diskqueue.000003.dat.bad")
        );
        assert_eq!(
            f.meta(),
            PathBuf::from("/data/golden:ch.diskqueue.meta.dat")
        );
        assert_ne!(f.meta_tmp(), f.meta());
    }

    #[test]
    fn data_file_numbers_parse_back_only_for_this_queue() {
        let f = files("t");
        for num in [0, 7, 999_999, 1_000_000, 123_456_789] {
            assert_eq!(f.data_file_num(&f.data(num)), Some(num));
        }
        for other in [
            "/data/t.diskqueue.000001.dat.bad",
            "/data/t.diskqueue.meta.dat",
            "/data/t.diskqueue.meta.dat.tmp",
            "/data/t:c.diskqueue.000001.dat",
            "/data/tt.diskqueue.000001.dat",
            "/data/t.diskqueue.00001.dat",
            "/data/t.diskqueue.0000001.dat",
            "/data/t.diskqueue.+00001.dat",
            "/data/t.diskqueue.000001.diskqueue.000000.dat",
            "/data/nsqd.dat",
        ] {
            assert_eq!(f.data_file_num(Path::new(other)), None, "{other}");
        }
        // A topic whose name looks like another queue's file is still told apart.
        let tricky = files("t.diskqueue.000001");
        assert_eq!(
            tricky.data_file_num(Path::new("/data/t.diskqueue.000001.dat")),
            None
        );
        assert_eq!(f.data_file_num(&tricky.data(0)), None);
    }
}
