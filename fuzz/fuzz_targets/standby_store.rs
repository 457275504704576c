//! A peer's standby store file (`docs/replication.md`, "Standby store format"): whatever
//! the bytes, opening returns (an error only for a foreign header); what opened adopts
//! without error; an append after it reads back; and a compaction keeps every copy.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nsq::env::{Fs, MemFs};
use nsq::nsqd::replication::frame::Replicated;
use nsq::nsqd::replication::standby::{file_path, StandbyStore};
use nsq::protocol::{Message, MessageId};

/// Records longer than this (plus room for channel names) are corrupt here.
const MAX_MSG_SIZE: usize = 512;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

async fn open(fs: &MemFs) -> Option<StandbyStore> {
    StandbyStore::open(
        Arc::new(fs.clone()),
        Path::new("data"),
        "t",
        3,
        MAX_MSG_SIZE,
    )
    .await
    .ok()
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("data")).await.expect("dir");
        let path = file_path(Path::new("data"), "t", 3);
        fs.write(&path, data).await.expect("write");
        let Some(mut store) = open(&fs).await else {
            return;
        };
        let before = store.adopt().await.expect("adopt what was loaded");
        assert_eq!(before.len(), store.unfinished());
        let Some(seq) = store.highest_seq().checked_add(1) else {
            return;
        };
        let id = MessageId(*b"ffffffffffffffff");
        let message = Message::new(id, 1, Bytes::from_static(b"after"));
        let replicated = Replicated {
            seq,
            message,
            due_ns: 0,
            channels: vec!["z".to_string()],
        };
        store.append(&[replicated]).await.expect("append");
        let reopened = open(&fs).await.expect("reopen after an append");
        assert!(
            reopened.read_problem().is_none(),
            "the append cut the damage"
        );
        assert_eq!(reopened.highest_seq(), seq);
        let after = reopened.adopt().await.expect("adopt after the append");
        assert_eq!(after.last().map(|a| a.message.id), Some(id));
        let mut compacted = reopened;
        compacted.compact().await.expect("compact");
        let again = open(&fs).await.expect("reopen after a compaction");
        assert_eq!(
            again.adopt().await.expect("adopt"),
            after,
            "compaction keeps every copy"
        );
        assert_eq!(again.highest_seq(), seq);
    });
});
