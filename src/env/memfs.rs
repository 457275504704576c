//! An in-memory file system with crash semantics.

/// What a simulated crash does to writes that were not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Unsynced writes are lost.
    DropUnsynced,
    /// Unsynced writes are lost except a torn prefix of the last one.
    TornTail,
    /// Everything written survives (as after a process crash with a healthy OS).
    Keep,
}

/// In-memory file system (filled in by the env work).
#[derive(Debug, Default)]
pub struct MemFs;
