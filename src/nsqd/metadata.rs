//! `nsqd.dat`: which topics and channels exist and which are paused, kept across restarts,
//! and the lock that keeps a second nsqd out of the same `--data-path`.
//!
//! The file is Go nsqd's, byte for byte (`shared/nsq-reference.md` §4.6), so a data
//! directory moves between Go nsqd and ours in both directions:
//!
//! ```text
//! {"topics":[{"name":"t1","paused":false,"channels":[{"name":"c1","paused":false}]}],"version":"1.3.0"}
//! ```
//!
//! - [`Metadata::encode`] writes what Go's `json.Marshal` of its `Metadata` struct writes:
//!   compact, fields in struct order, no trailing newline, an empty list as `null` (Go
//!   builds the lists by appending to nil slices), strings escaped as Go escapes them.
//!   **The encoder drops ephemeral topics and channels** (names ending in `#ephemeral`),
//!   so the daemon may hand it everything it has.
//! - [`persist`] writes `nsqd.dat.<random>.tmp`, fsyncs it and renames it over `nsqd.dat`
//!   (the directory is not fsynced, as in Go). A crash leaves the old file or the new one.
//! - [`load`] reads it back. A missing file is a fresh start; a file that is not the JSON
//!   Go expects fails startup ("failed to parse metadata in …", as Go does); topic and
//!   channel names that break the name rule are skipped with a warning.
//! - [`lock_data_path`] takes the directory lock for the daemon's lifetime.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::options::VERSION;
use crate::env::{DirLock, Fs, Rng};
use crate::protocol::{is_ephemeral, is_valid_channel_name, is_valid_topic_name};

/// The metadata file's name inside `--data-path`.
pub const FILE_NAME: &str = "nsqd.dat";

/// The contents of `nsqd.dat`: Go's `Metadata` struct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The topics, in the order they are written (Go's is map order; ours is the caller's).
    pub topics: Vec<TopicMetadata>,
    /// The nsqd version that wrote the file; read back but never checked, as in Go.
    pub version: String,
}

/// One topic in `nsqd.dat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicMetadata {
    /// The topic's name.
    pub name: String,
    /// Whether the topic is paused (it comes back paused).
    pub paused: bool,
    /// The topic's channels.
    pub channels: Vec<ChannelMetadata>,
}

/// One channel in `nsqd.dat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelMetadata {
    /// The channel's name.
    pub name: String,
    /// Whether the channel is paused (it comes back paused).
    pub paused: bool,
}

/// A topic or channel that [`Metadata::split_invalid`] left out because its name breaks
/// the name rule (a hand-edited file, or one from a different program).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// A topic, and with it all its channels.
    Topic(String),
    /// One channel of a kept topic.
    Channel {
        /// The topic it belongs to.
        topic: String,
        /// The channel's name.
        channel: String,
    },
}

/// Why `nsqd.dat` could not be read or written, or `--data-path` not locked.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// `nsqd.dat` exists but could not be read.
    #[error("failed to read metadata from {} - {source}", path.display())]
    Read {
        /// The metadata file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `nsqd.dat` is not the JSON Go writes; nsqd must not start (Go refuses too).
    #[error("failed to parse metadata in {} - {source}", path.display())]
    Parse {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// Writing the temporary file failed.
    #[error("failed to write {} - {source}", path.display())]
    Write {
        /// The temporary file (removed again).
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Fsyncing the temporary file failed.
    #[error("failed to fsync {} - {source}", path.display())]
    Sync {
        /// The temporary file (removed again).
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Renaming the temporary file over `nsqd.dat` failed.
    #[error("failed to rename {} to {} - {source}", from.display(), to.display())]
    Rename {
        /// The temporary file (removed again).
        from: PathBuf,
        /// The metadata file.
        to: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process (most likely another nsqd) holds the lock on `--data-path`.
    #[error("--data-path={} in use (possibly by another instance of nsqd)", path.display())]
    DataPathInUse {
        /// The data directory.
        path: PathBuf,
    },
    /// `--data-path` could not be locked for another reason (missing, not a directory,
    /// no permission). Go reports these as "in use" too; we say what happened.
    #[error("cannot lock --data-path={} - {source}", path.display())]
    Lock {
        /// The data directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// What is wrong with the bytes of an `nsqd.dat`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl Metadata {
    /// Metadata stamped with this nsqd's version, as the daemon persists it.
    pub fn new(topics: Vec<TopicMetadata>) -> Self {
        Metadata {
            topics,
            version: VERSION.to_string(),
        }
    }

    /// The file's bytes, identical to Go's `json.Marshal` output for the same topics in
    /// the same order. Ephemeral topics and channels are left out.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + 80 * self.topics.len());
        out.extend_from_slice(b"{\"topics\":");
        let topics = self.topics.iter().filter(|t| !is_ephemeral(&t.name));
        push_list(&mut out, topics, |out, topic| {
            out.extend_from_slice(b"{\"name\":");
            crate::go_json::push_string(out, &topic.name);
            out.extend_from_slice(b",\"paused\":");
            push_bool(out, topic.paused);
            out.extend_from_slice(b",\"channels\":");
            let channels = topic.channels.iter().filter(|c| !is_ephemeral(&c.name));
            push_list(out, channels, |out, channel| {
                out.extend_from_slice(b"{\"name\":");
                crate::go_json::push_string(out, &channel.name);
                out.extend_from_slice(b",\"paused\":");
                push_bool(out, channel.paused);
                out.push(b'}');
            });
            out.push(b'}');
        });
        out.extend_from_slice(b",\"version\":");
        crate::go_json::push_string(&mut out, &self.version);
        out.push(b'}');
        out
    }

    /// Parses `nsqd.dat` as Go's `json.Unmarshal` fills its struct: unknown keys are
    /// ignored, missing keys and `null` give the zero value (a top-level `null` is empty
    /// metadata), keys match ASCII-case-insensitively (an exact match wins), invalid UTF-8
    /// in strings becomes U+FFFD, and a value of the wrong JSON type is an error. Names
    /// are not checked here: see [`Metadata::split_invalid`]. Known differences, none of
    /// which Go ever writes: a number beyond `f64` range or a lone surrogate escape is an
    /// error even under an unknown key, and nesting deeper than 128 levels is refused.
    pub fn decode(data: &[u8]) -> Result<Metadata, DecodeError> {
        let text = String::from_utf8_lossy(data);
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            DecodeError(if e.is_eof() {
                "unexpected end of JSON input".to_string()
            } else {
                e.to_string()
            })
        })?;
        let mut metadata = Metadata::default();
        if let Some(fields) = object(&value, "the metadata")? {
            if let Some(v) = field(fields, "topics") {
                metadata.topics = list(v, "topics", decode_topic)?;
            }
            if let Some(v) = field(fields, "version") {
                metadata.version = string(v, "version")?;
            }
        }
        Ok(metadata)
    }

    /// Removes the topics and channels whose names break the name rule, as Go's
    /// `LoadMetadata` skips them, and says which. A skipped topic takes its channels with
    /// it. Everything else (duplicates, ephemeral names) stays as listed.
    pub fn split_invalid(mut self) -> (Metadata, Vec<Skipped>) {
        let mut skipped = Vec::new();
        self.topics.retain_mut(|topic| {
            if !is_valid_topic_name(&topic.name) {
                skipped.push(Skipped::Topic(topic.name.clone()));
                return false;
            }
            topic.channels.retain(|channel| {
                let valid = is_valid_channel_name(&channel.name);
                if !valid {
                    skipped.push(Skipped::Channel {
                        topic: topic.name.clone(),
                        channel: channel.name.clone(),
                    });
                }
                valid
            });
            true
        });
        (self, skipped)
    }
}

/// The path of `nsqd.dat` in `data_path`.
pub fn file_path(data_path: &Path) -> PathBuf {
    data_path.join(FILE_NAME)
}

/// Reads `<data_path>/nsqd.dat`: `None` when there is none (a fresh start), the metadata
/// without invalid names (each logged as a warning) otherwise.
pub async fn load(fs: &dyn Fs, data_path: &Path) -> Result<Option<Metadata>, MetadataError> {
    let path = file_path(data_path);
    let data = match fs.read(&path).await {
        Ok(data) => data,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MetadataError::Read { path, source }),
    };
    let decoded =
        Metadata::decode(&data).map_err(|source| MetadataError::Parse { path, source })?;
    let (metadata, skipped) = decoded.split_invalid();
    for item in &skipped {
        match item {
            Skipped::Topic(topic) => {
                tracing::warn!(topic = %topic, "skipping creation of invalid topic")
            }
            Skipped::Channel { topic, channel } => {
                tracing::warn!(topic = %topic, channel = %channel, "skipping creation of invalid channel")
            }
        }
    }
    Ok(Some(metadata))
}

/// Replaces `<data_path>/nsqd.dat` with `metadata`: the bytes go to
/// `nsqd.dat.<random>.tmp`, are fsynced, then renamed over `nsqd.dat`, so a crash leaves
/// either the previous file or the new one. On failure the temporary file is removed
/// and `nsqd.dat` is untouched.
pub async fn persist(
    fs: &dyn Fs,
    data_path: &Path,
    metadata: &Metadata,
    rng: &dyn Rng,
) -> Result<(), MetadataError> {
    let path = file_path(data_path);
    tracing::info!(path = %path.display(), "NSQ: persisting topic/channel metadata");
    // Go's rand.Int(): a non-negative int64.
    let tmp = tmp_path(&path, rng.next_u64() >> 1);
    let result = write_synced_then_rename(fs, &tmp, &path, &metadata.encode()).await;
    if result.is_err() {
        // Best effort: the write may not even have created it.
        let _ = fs.remove(&tmp).await;
    }
    result
}

/// Takes the lock on `--data-path` that keeps a second nsqd out; hold the guard until
/// the daemon has exited.
pub async fn lock_data_path(fs: &dyn Fs, data_path: &Path) -> Result<DirLock, MetadataError> {
    fs.lock_dir(data_path).await.map_err(|source| {
        let path = data_path.to_path_buf();
        if source.kind() == io::ErrorKind::WouldBlock {
            MetadataError::DataPathInUse { path }
        } else {
            MetadataError::Lock { path, source }
        }
    })
}

/// `<path>.<n>.tmp`, Go's temporary file name.
fn tmp_path(path: &Path, n: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}.tmp"));
    PathBuf::from(name)
}

pub(crate) async fn write_synced_then_rename(
    fs: &dyn Fs,
    tmp: &Path,
    path: &Path,
    data: &[u8],
) -> Result<(), MetadataError> {
    let error_path = || tmp.to_path_buf();
    fs.write(tmp, data)
        .await
        .map_err(|source| MetadataError::Write {
            path: error_path(),
            source,
        })?;
    fs.sync(tmp).await.map_err(|source| MetadataError::Sync {
        path: error_path(),
        source,
    })?;
    fs.rename(tmp, path)
        .await
        .map_err(|source| MetadataError::Rename {
            from: error_path(),
            to: path.to_path_buf(),
            source,
        })
}

// ---- encoding: Go's encoding/json, byte for byte ----

/// A list the way Go marshals a slice built by `append` from nil: `null` when empty.
fn push_list<T>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = T>,
    mut push_item: impl FnMut(&mut Vec<u8>, T),
) {
    let mut items = items.peekable();
    if items.peek().is_none() {
        out.extend_from_slice(b"null");
        return;
    }
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_item(out, item);
    }
    out.push(b']');
}

fn push_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

// ---- decoding: Go's json.Unmarshal into the Metadata struct ----

fn decode_topic(value: &Value, at: &str) -> Result<TopicMetadata, DecodeError> {
    let mut topic = TopicMetadata::default();
    if let Some(fields) = object(value, at)? {
        if let Some(v) = field(fields, "name") {
            topic.name = string(v, &format!("{at}.name"))?;
        }
        if let Some(v) = field(fields, "paused") {
            topic.paused = boolean(v, &format!("{at}.paused"))?;
        }
        if let Some(v) = field(fields, "channels") {
            topic.channels = list(v, &format!("{at}.channels"), decode_channel)?;
        }
    }
    Ok(topic)
}

fn decode_channel(value: &Value, at: &str) -> Result<ChannelMetadata, DecodeError> {
    let mut channel = ChannelMetadata::default();
    if let Some(fields) = object(value, at)? {
        if let Some(v) = field(fields, "name") {
            channel.name = string(v, &format!("{at}.name"))?;
        }
        if let Some(v) = field(fields, "paused") {
            channel.paused = boolean(v, &format!("{at}.paused"))?;
        }
    }
    Ok(channel)
}

/// The value of key `name`: an exact match, else the first ASCII-case-insensitive one.
fn field<'v>(fields: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    fields.get(name).or_else(|| {
        fields
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// An object's fields, `None` for `null`.
fn object<'v>(value: &'v Value, at: &str) -> Result<Option<&'v Map<String, Value>>, DecodeError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(fields) => Ok(Some(fields)),
        other => Err(wrong_type(other, at, "an object")),
    }
}

/// A list's elements decoded by `decode_item`; `null` is an empty list.
fn list<T>(
    value: &Value,
    at: &str,
    decode_item: impl Fn(&Value, &str) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| decode_item(item, &format!("{at}[{i}]")))
            .collect(),
        other => Err(wrong_type(other, at, "an array")),
    }
}

fn string(value: &Value, at: &str) -> Result<String, DecodeError> {
    match value {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        other => Err(wrong_type(other, at, "a string")),
    }
}

fn boolean(value: &Value, at: &str) -> Result<bool, DecodeError> {
    match value {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        other => Err(wrong_type(other, at, "a bool")),
    }
}

fn wrong_type(value: &Value, at: &str, want: &str) -> DecodeError {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    DecodeError(format!(
        "json: cannot unmarshal {kind} into {at} (want {want})"
    ))
}

#[cfg(test)]
mod tests;
