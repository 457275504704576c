//! Tests of the whole queue on `MemFs` (and one on a real temporary directory). Pure
//! pieces (record framing, metadata text, file names) are tested beside their code.

mod basics;
mod compat;
mod corruption;
mod crash;
mod gathered;
mod model;
mod startup;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{DiskQueue, DiskQueueConfig};
use crate::env::{Fs, MemFs};

/// The data directory every test uses.
const DIR: &str = "/data";

fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

/// A config with small limits: payloads of 1..=64 bytes, `max_bytes_per_file` as given,
/// a sync only when asked (or at roll), every put written through.
fn config(max_bytes_per_file: u64) -> DiskQueueConfig {
    DiskQueueConfig {
        max_bytes_per_file,
        min_msg_size: 1,
        max_msg_size: 64,
        sync_every: u64::MAX,
        write_buffer_bytes: 0,
    }
}

async fn open(fs: &MemFs, name: &str, config: DiskQueueConfig) -> DiskQueue {
    let shared: Arc<dyn Fs> = Arc::new(fs.clone());
    DiskQueue::open(shared, dir(), name, config).await.unwrap()
}

/// Reads until the queue is empty.
async fn drain(q: &mut DiskQueue) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(record) = q.read_next().await.unwrap() {
        out.push(record);
    }
    out
}

/// The names (not paths) of the files in the data directory, sorted.
fn names(fs: &MemFs) -> Vec<String> {
    fs.file_names()
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect()
}

async fn read(fs: &MemFs, name: &str) -> Vec<u8> {
    fs.read(&dir().join(name)).await.unwrap()
}

async fn write(fs: &MemFs, name: &str, data: &[u8]) {
    fs.create_dir_all(Path::new(DIR)).await.unwrap();
    fs.write(&dir().join(name), data).await.unwrap();
    fs.sync(&dir().join(name)).await.unwrap();
}

/// The on-disk bytes of records holding `payloads`, built by hand from the spec:
/// `int32` big-endian length, then the payload.
fn records(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        out.extend_from_slice(&(p.len() as i32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// A payload that names its place in a history: an 8-byte index, then `extra` bytes
/// derived from it, so a record that is garbage or from elsewhere is recognised.
fn indexed(index: u64, extra: usize) -> Vec<u8> {
    let mut p = index.to_be_bytes().to_vec();
    p.extend((0..extra).map(|k| (index as u8).wrapping_mul(31).wrapping_add(k as u8)));
    p
}

/// The index of a payload made by [`indexed`], if it is one.
fn index_of(payload: &[u8]) -> Option<u64> {
    let index = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    let extra = &payload[8..];
    extra
        .iter()
        .enumerate()
        .all(|(k, b)| *b == (index as u8).wrapping_mul(31).wrapping_add(k as u8))
        .then_some(index)
}
