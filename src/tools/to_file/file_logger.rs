//! One topic's writer (Go nsq_to_file's `FileLogger`): messages are appended to the
//! current file, the file is synced every `--sync-interval` (or when `--max-in-flight`
//! messages wait), and only then are those messages FIN'd, so a crash loses nothing that
//! was acknowledged. Files rotate by name, size and age, and move from the work dir to
//! the output dir when closed, never over an existing file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use tokio::sync::watch;
use tokio::time::Instant;

use super::naming::{strftime, with_rev, FilenameTemplate};
use crate::env::Env;
use crate::tools::consumer::{stopped, Consumer, Delivery};

/// How files are named, written, rotated and synced.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// `--output-dir`.
    pub output_dir: PathBuf,
    /// `--work-dir` (the output dir when not given).
    pub work_dir: PathBuf,
    /// `--datetime-format`.
    pub datetime_format: String,
    /// `--gzip-level` when `--gzip` is on.
    pub gzip_level: Option<u32>,
    /// `--rotate-size` (0: off).
    pub rotate_size: u64,
    /// `--rotate-interval` (zero: off).
    pub rotate_interval: Duration,
    /// `--sync-interval`.
    pub sync_interval: Duration,
    /// `--skip-empty-files`.
    pub skip_empty_files: bool,
    /// `--max-in-flight`: this many waiting messages force a sync.
    pub max_in_flight: usize,
}

/// A failure Go's nsq_to_file treats as fatal.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Creating a directory failed.
    #[error("unable to create dir: {0}")]
    CreateDir(#[source] std::io::Error),
    /// Writing or compressing failed.
    #[error("writing message to disk: {0}")]
    Write(#[source] std::io::Error),
    /// The sync failed.
    #[error("failed syncing messages: {0}")]
    Sync(#[source] std::io::Error),
    /// Moving a finished file to the output dir failed.
    #[error("unable to rename file from {from} to {to}: {source}")]
    Move {
        /// The file in the work dir.
        from: String,
        /// Where it was going.
        to: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The file being written.
struct OpenFile {
    /// Its name with `<REV>` still in it (for the move's revision search).
    name: String,
    rev: u32,
    /// Where it is written (in the work dir).
    path: PathBuf,
    /// Bytes given to it (uncompressed), the size it had when opened included.
    size: u64,
    opened_at: Instant,
    /// What is written but not yet appended to the file.
    pending: Pending,
    /// gzip members appended so far.
    members: u32,
    /// Bytes went into the current gzip member.
    member_has_data: bool,
}

enum Pending {
    Plain(Vec<u8>),
    Gzip(GzEncoder<Vec<u8>>),
}

/// One topic's writer.
pub struct FileLogger {
    env: Env,
    topic: String,
    channel: String,
    template: FilenameTemplate,
    settings: FileSettings,
    file: Option<OpenFile>,
    /// The name (datetime filled in) of the last file opened.
    last_name: String,
    rev: u32,
    /// Messages written and not yet synced: FIN'd after the next sync.
    unsynced: Vec<Delivery>,
}

impl FileLogger {
    /// A writer for `topic`'s messages on `channel`.
    pub fn new(
        env: Env,
        topic: &str,
        channel: &str,
        template: FilenameTemplate,
        settings: FileSettings,
    ) -> Self {
        FileLogger {
            env,
            topic: topic.to_string(),
            channel: channel.to_string(),
            template,
            settings,
            file: None,
            last_name: String::new(),
            rev: 0,
            unsynced: Vec::new(),
        }
    }

    /// Go's router loop: runs until the consumer has stopped (after `stop` turned true)
    /// and everything it delivered is written, synced and FIN'd. `hup` ticks close the
    /// file (SIGHUP).
    pub async fn run(
        mut self,
        mut consumer: Consumer,
        mut stop: watch::Receiver<bool>,
        mut hup: watch::Receiver<u64>,
    ) -> Result<(), FileError> {
        let mut ticker = tokio::time::interval(self.settings.sync_interval);
        ticker.reset();
        let mut stopping = false;
        loop {
            let mut sync = false;
            let mut close = false;
            let mut exit = false;
            tokio::select! {
                next = consumer.next() => match next {
                    Some(delivery) => {
                        if self.needs_rotation() {
                            self.update_file().await?;
                            sync = true;
                        }
                        self.write(delivery)?;
                        if self.unsynced.len() >= self.settings.max_in_flight.max(1) {
                            sync = true;
                        }
                    }
                    None => {
                        sync = true;
                        close = true;
                        exit = true;
                    }
                },
                () = stopped(&mut stop), if !stopping => {
                    stopping = true;
                    consumer.stop();
                    sync = true;
                }
                Ok(()) = hup.changed() => {
                    sync = true;
                    close = true;
                }
                _ = ticker.tick() => {
                    if self.needs_rotation() {
                        if self.settings.skip_empty_files {
                            close = true;
                        } else {
                            self.update_file().await?;
                        }
                    }
                    sync = true;
                }
            }
            if sync || self.starved() {
                self.sync().await?;
            }
            if close {
                self.close().await?;
            }
            if exit {
                consumer.wait().await;
                return Ok(());
            }
        }
    }

    /// go-nsq's `IsStarved`, for one connection: most of `max_in_flight` waits for us.
    fn starved(&self) -> bool {
        let waiting = self.unsynced.len() as f64;
        waiting > 0.0 && waiting >= 0.85 * self.settings.max_in_flight as f64
    }

    fn current_name(&self) -> String {
        let now = strftime(&self.settings.datetime_format, self.env.clock.now_ns());
        self.template.with_datetime(&now)
    }

    fn needs_rotation(&self) -> bool {
        let Some(file) = &self.file else {
            return true;
        };
        if self.current_name() != self.last_name {
            tracing::info!(topic = %self.topic, "new filename, rotating...");
            return true;
        }
        let interval = self.settings.rotate_interval;
        if !interval.is_zero() && file.opened_at.elapsed() > interval {
            tracing::info!(topic = %self.topic, "{} since last open, rotating...", crate::tools::consumer::go_duration(interval));
            return true;
        }
        let size = self.settings.rotate_size;
        if size > 0 && file.size > size {
            tracing::info!(topic = %self.topic, "currently {} bytes (> {size}), rotating...", file.size);
            return true;
        }
        false
    }

    fn write(&mut self, delivery: Delivery) -> Result<(), FileError> {
        if let Some(file) = &mut self.file {
            let body = &delivery.message.body;
            match &mut file.pending {
                Pending::Plain(bytes) => {
                    bytes.extend_from_slice(body);
                    bytes.push(b'\n');
                }
                Pending::Gzip(encoder) => {
                    encoder.write_all(body).map_err(FileError::Write)?;
                    encoder.write_all(b"\n").map_err(FileError::Write)?;
                    file.member_has_data = true;
                }
            }
            file.size += body.len() as u64 + 1;
        }
        self.unsynced.push(delivery);
        Ok(())
    }

    /// Appends what is pending (a finished gzip member), syncs, then FINs every message
    /// written since the last sync.
    async fn sync(&mut self) -> Result<(), FileError> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        tracing::info!(
            "[{}/{}] syncing {} records to disk",
            self.topic,
            self.channel,
            self.unsynced.len()
        );
        if let Some(file) = &mut self.file {
            flush(&self.env, file, self.settings.gzip_level).await?;
            self.env
                .fs
                .sync(&file.path)
                .await
                .map_err(FileError::Sync)?;
        }
        for delivery in self.unsynced.drain(..) {
            delivery.finish();
        }
        Ok(())
    }

    /// Closes the current file (its last gzip member written, synced) and moves it to
    /// the output dir.
    async fn close(&mut self) -> Result<(), FileError> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        if let Pending::Gzip(_) = file.pending {
            if file.members == 0 {
                // Even an empty file is a valid gzip stream, as Go's is.
                flush_member(&self.env, &mut file, self.settings.gzip_level, true).await?;
            }
        }
        flush(&self.env, &mut file, self.settings.gzip_level).await?;
        self.env
            .fs
            .sync(&file.path)
            .await
            .map_err(FileError::Sync)?;
        if self.settings.work_dir != self.settings.output_dir {
            self.move_to_output(&file).await?;
        }
        Ok(())
    }

    async fn move_to_output(&self, file: &OpenFile) -> Result<(), FileError> {
        let fs = &self.env.fs;
        let mut rev = file.rev;
        loop {
            let dst = self.settings.output_dir.join(with_rev(&file.name, rev));
            if exists(&self.env, &dst).await {
                tracing::warn!(topic = %self.topic, "destination file already exists: {}", dst.display());
                rev += 1;
                continue;
            }
            if let Some(parent) = dst.parent() {
                fs.create_dir_all(parent)
                    .await
                    .map_err(FileError::CreateDir)?;
            }
            tracing::info!(
                topic = %self.topic,
                "moving finished file {} to {}",
                file.path.display(),
                dst.display()
            );
            return fs
                .rename(&file.path, &dst)
                .await
                .map_err(|source| FileError::Move {
                    from: file.path.display().to_string(),
                    to: dst.display().to_string(),
                    source,
                });
        }
    }

    /// Go's `updateFile`: closes the current file and opens the next name, skipping
    /// revisions that exist (or, appending, that are already too big).
    async fn update_file(&mut self) -> Result<(), FileError> {
        self.close().await?;
        let name = self.current_name();
        if name == self.last_name {
            self.rev += 1;
        } else {
            self.rev = 0;
        }
        self.last_name = name.clone();
        let exclusive =
            self.settings.gzip_level.is_some() || !self.settings.rotate_interval.is_zero();
        let moves = self.settings.work_dir != self.settings.output_dir;
        loop {
            let relative = with_rev(&name, self.rev);
            let path = self.settings.work_dir.join(&relative);
            if let Some(parent) = path.parent() {
                self.env
                    .fs
                    .create_dir_all(parent)
                    .await
                    .map_err(FileError::CreateDir)?;
            }
            if moves {
                let output = self.settings.output_dir.join(&relative);
                if exists(&self.env, &output).await {
                    tracing::warn!(topic = %self.topic, "output file already exists: {}", output.display());
                    self.rev += 1;
                    continue;
                }
            }
            let size = self.env.fs.len(&path).await.ok();
            if exclusive && size.is_some() {
                tracing::warn!(topic = %self.topic, "working file already exists: {}", path.display());
                self.rev += 1;
                continue;
            }
            let size = size.unwrap_or(0);
            let limit = self.settings.rotate_size;
            if limit > 0 && size > limit {
                tracing::info!(topic = %self.topic, "{} currently {size} bytes (> {limit}), rotating...", path.display());
                self.rev += 1;
                continue;
            }
            self.env
                .fs
                .append(&path, b"")
                .await
                .map_err(FileError::Write)?;
            tracing::info!(
                "[{}/{}] opening {}",
                self.topic,
                self.channel,
                path.display()
            );
            let pending = match self.settings.gzip_level {
                Some(level) => Pending::Gzip(GzEncoder::new(Vec::new(), Compression::new(level))),
                None => Pending::Plain(Vec::new()),
            };
            self.file = Some(OpenFile {
                name: name.clone(),
                rev: self.rev,
                path,
                size,
                opened_at: Instant::now(),
                pending,
                members: 0,
                member_has_data: false,
            });
            return Ok(());
        }
    }
}

/// Whether a file is there.
async fn exists(env: &Env, path: &Path) -> bool {
    env.fs.len(path).await.is_ok()
}

/// Appends what is pending: plain bytes, or the gzip member written so far.
async fn flush(env: &Env, file: &mut OpenFile, gzip_level: Option<u32>) -> Result<(), FileError> {
    match &mut file.pending {
        Pending::Plain(bytes) => {
            if !bytes.is_empty() {
                env.fs
                    .append(&file.path, bytes)
                    .await
                    .map_err(FileError::Write)?;
                bytes.clear();
            }
            Ok(())
        }
        Pending::Gzip(_) => flush_member(env, file, gzip_level, false).await,
    }
}

/// Finishes the current gzip member and appends it, unless it is empty and `even_empty`
/// is false; a new member starts.
async fn flush_member(
    env: &Env,
    file: &mut OpenFile,
    gzip_level: Option<u32>,
    even_empty: bool,
) -> Result<(), FileError> {
    let level = Compression::new(gzip_level.unwrap_or(6));
    let Pending::Gzip(encoder) = &mut file.pending else {
        return Ok(());
    };
    if !file.member_has_data && !even_empty {
        return Ok(());
    }
    let finished = std::mem::replace(encoder, GzEncoder::new(Vec::new(), level));
    let member = finished.finish().map_err(FileError::Write)?;
    env.fs
        .append(&file.path, &member)
        .await
        .map_err(FileError::Write)?;
    file.members += 1;
    Ok(())
}
