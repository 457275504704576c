//! The metadata file: go-diskqueue's text `"%d\n%d,%d\n%d,%d\n"` (depth, read file number
//! and position, write file number and position), replaced atomically through a synced
//! temporary file and a rename.

use std::io;
use std::path::Path;

use crate::env::Fs;

/// The five numbers of a metadata file, as written (nothing is checked here: a file from
/// elsewhere may hold any integers, and the queue decides what to make of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Meta {
    /// Records between the read and the write position.
    pub(super) depth: i64,
    /// The file the next record is read from.
    pub(super) read_file: i64,
    /// Where in it.
    pub(super) read_pos: i64,
    /// The file the next record is written to.
    pub(super) write_file: i64,
    /// Where in it.
    pub(super) write_pos: i64,
}

/// Why a metadata file could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum MetaError {
    /// The text does not have the expected shape.
    #[error("malformed metadata at byte {at}: expected {expected}")]
    Malformed {
        /// Offset of the first byte that does not fit.
        at: usize,
        /// What was expected there.
        expected: &'static str,
    },
}

impl Meta {
    /// The file's bytes, exactly as Go's `fmt.Fprintf(f, "%d\n%d,%d\n%d,%d\n", ...)`.
    pub(super) fn encode(&self) -> String {
        format!(
            "{}\n{},{}\n{},{}\n",
            self.depth, self.read_file, self.read_pos, self.write_file, self.write_pos
        )
    }

    /// Parses the text the way Go's `fmt.Fscanf` with the same format reads it: spaces
    /// before a number are skipped, a sign is allowed, the separators must match, and
    /// whatever follows the last newline is ignored (a missing last newline is tolerated).
    pub(super) fn parse(text: &[u8]) -> Result<Meta, MetaError> {
        let mut scan = Scanner { text, at: 0 };
        let depth = scan.number()?;
        scan.literal(b'\n')?;
        let read_file = scan.number()?;
        scan.literal(b',')?;
        let read_pos = scan.number()?;
        scan.literal(b'\n')?;
        let write_file = scan.number()?;
        scan.literal(b',')?;
        let write_pos = scan.number()?;
        if scan.at < text.len() {
            scan.literal(b'\n')?;
        }
        Ok(Meta {
            depth,
            read_file,
            read_pos,
            write_file,
            write_pos,
        })
    }
}

/// A cursor over the metadata text.
struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn malformed(&self, expected: &'static str) -> MetaError {
        MetaError::Malformed {
            at: self.at,
            expected,
        }
    }

    fn literal(&mut self, byte: u8) -> Result<(), MetaError> {
        if self.text.get(self.at) != Some(&byte) {
            return Err(self.malformed(if byte == b'\n' { "a newline" } else { "','" }));
        }
        self.at += 1;
        Ok(())
    }

    /// A decimal `i64`: optional spaces, an optional sign, at least one digit.
    fn number(&mut self) -> Result<i64, MetaError> {
        while matches!(self.text.get(self.at), Some(b' ' | b'\t')) {
            self.at += 1;
        }
        let negative = match self.text.get(self.at) {
            Some(b'-') => true,
            Some(b'+') => false,
            _ => {
                return self.digits(false);
            }
        };
        self.at += 1;
        self.digits(negative)
    }

    fn digits(&mut self, negative: bool) -> Result<i64, MetaError> {
        let start = self.at;
        let mut value: i64 = 0;
        while let Some(digit) = self.text.get(self.at).filter(|b| b.is_ascii_digit()) {
            let digit = i64::from(digit - b'0');
            value = value
                .checked_mul(10)
                .and_then(|v| {
                    if negative {
                        v.checked_sub(digit)
                    } else {
                        v.checked_add(digit)
                    }
                })
                .ok_or_else(|| self.malformed("a number that fits 64 bits"))?;
            self.at += 1;
        }
        if self.at == start {
            return Err(self.malformed("a decimal number"));
        }
        Ok(value)
    }
}

/// Reads the metadata file at `path`; `Ok(None)` when there is none.
pub(super) async fn load(fs: &dyn Fs, path: &Path) -> io::Result<Option<Result<Meta, MetaError>>> {
    match fs.read(path).await {
        Ok(text) => Ok(Some(Meta::parse(&text))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the file at `path` with `meta`: written to `tmp`, fsynced, then renamed over
/// it, so a crash leaves either the old or the new file, whole.
pub(super) async fn persist(fs: &dyn Fs, path: &Path, tmp: &Path, meta: &Meta) -> io::Result<()> {
    fs.write(tmp, meta.encode().as_bytes()).await?;
    fs.sync(tmp).await?;
    fs.rename(tmp, path).await
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::env::{CrashMode, MemFs};
    use proptest::prelude::*;

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
    fn encodes_like_go() {
        // The files real Go nsqd left (data-dir.txt and nsq-reference.md §4.3).
        assert_eq!(meta(0, 0, 101, 0, 101).encode(), "0\n0,101\n0,101\n");
        assert_eq!(meta(3, 0, 0, 0, 101).encode(), "3\n0,0\n0,101\n");
        assert_eq!(meta(0, 0, 0, 0, 0).encode(), "0\n0,0\n0,0\n");
        assert_eq!(
            meta(771_888, 3, 84_525_000, 5, 52_344_320).encode(),
            "771888\n3,84525000\n5,52344320\n"
        );
        assert_eq!(meta(-2, 0, 0, 0, 0).encode(), "-2\n0,0\n0,0\n");
    }

    #[test]
    fn parses_what_go_writes_and_what_fscanf_tolerates() {
        let cases: [(&[u8], Meta); 6] = [
            (b"3\n0,0\n0,101\n", meta(3, 0, 0, 0, 101)),
            (
                b"771888\n3,84525000\n5,52344320\n",
                meta(771_888, 3, 84_525_000, 5, 52_344_320),
            ),
            (b"3\n0,0\n0,101", meta(3, 0, 0, 0, 101)),
            (b"3\n0,0\n0,101\ntrailing junk", meta(3, 0, 0, 0, 101)),
            (b" 3\n +1, 2\n-4,-5\n", meta(3, 1, 2, -4, -5)),
            (
                b"9223372036854775807\n-9223372036854775808,0\n0,0\n",
                meta(i64::MAX, i64::MIN, 0, 0, 0),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Meta::parse(text),
                Ok(expected),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn rejects_malformed_text() {
        for text in [
            &b""[..],
            b"\n",
            b"3",
            b"3\n0;0\n0,101\n",
            b"3\n0,0\n0,101x",
            b"3,0,0,0,101\n",
            b"x\n0,0\n0,0\n",
            b"9223372036854775808\n0,0\n0,0\n",
            b"3\n0,0\n\n0,101\n",
            b"-\n0,0\n0,0\n",
        ] {
            assert!(
                Meta::parse(text).is_err(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        let err = Meta::parse(b"3\n0;0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed metadata at byte 3: expected ','"
        );
    }

    #[tokio::test]
    async fn persist_replaces_atomically_and_survives_a_crash() {
        let fs = MemFs::new();
        let dir = PathBuf::from("/d");
        fs.create_dir_all(&dir).await.unwrap();
        let path = dir.join("q.diskqueue.meta.dat");
        let tmp = dir.join("q.diskqueue.meta.dat.tmp");
        assert_eq!(load(&fs, &path).await.unwrap(), None);
        persist(&fs, &path, &tmp, &meta(1, 2, 3, 4, 5))
            .await
            .unwrap();
        persist(&fs, &path, &tmp, &meta(3, 0, 0, 0, 101))
            .await
            .unwrap();
        assert_eq!(fs.file_names(), vec![path.clone()]);
        fs.crash(CrashMode::DropUnsynced, 0);
        assert_eq!(fs.read(&path).await.unwrap(), b"3\n0,0\n0,101\n");
        assert_eq!(
            load(&fs, &path).await.unwrap(),
            Some(Ok(meta(3, 0, 0, 0, 101)))
        );
    }

    #[tokio::test]
    async fn a_failed_persist_leaves_the_old_file() {
        let fs = MemFs::new();
        let dir = PathBuf::from("/d");
        fs.create_dir_all(&dir).await.unwrap();
        let path = dir.join("m");
        let tmp = dir.join("m.tmp");
        persist(&fs, &path, &tmp, &meta(1, 0, 0, 0, 33))
            .await
            .unwrap();
        fs.set_fail_syncs(true);
        assert!(persist(&fs, &path, &tmp, &meta(2, 0, 0, 0, 66))
            .await
            .is_err());
        assert_eq!(fs.read(&path).await.unwrap(), b"1\n0,0\n0,33\n");
    }

    proptest! {
        #[test]
        fn any_numbers_round_trip(d: i64, rf: i64, rp: i64, wf: i64, wp: i64) {
            let m = meta(d, rf, rp, wf, wp);
            prop_assert_eq!(Meta::parse(m.encode().as_bytes()), Ok(m));
        }

        #[test]
        fn any_bytes_parse_without_panicking(text in prop::collection::vec(any::<u8>(), 0..40)) {
            let _ = Meta::parse(&text);
        }
    }
}
