//! The deferred-message files nsqd recovers from: a due-time journal and a spill segment
//! (`docs/deferred.md`). Whatever the bytes, decoding returns; what decodes re-encodes to
//! bytes that decode the same; a spill record never exceeds the length limit; and a
//! journal loaded from the bytes is rewritten clean, so an append after it reads back.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use nsq::env::{Fs, MemFs};
use nsq::nsqd::deferred_spill::{
    decode_segment, encode_record as encode_spill, KIND_SPILL, KIND_SYNCED_SPILL,
};
use nsq::nsqd::due_journal::{decode, encode_header, encode_record, DueJournal};
use nsq::protocol::MessageId;

/// Records longer than this are corrupt here.
const MAX_MESSAGE_LEN: usize = 512;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let journal = decode(data);
    let mut again = encode_header().to_vec();
    for (id, due) in &journal.records {
        again.extend_from_slice(&encode_record(id, *due));
    }
    let redecoded = decode(&again);
    assert_eq!(redecoded.records, journal.records, "journal round trip");
    assert!(redecoded.problems.is_empty());

    // Both kinds of spill segment: the synced kind's records carry a source position.
    for kind in [KIND_SPILL, KIND_SYNCED_SPILL] {
        let (records, _problem) = decode_segment(data, kind, MAX_MESSAGE_LEN);
        let mut segment = nsq::nsqd::due_journal::header_of_kind(kind).to_vec();
        for record in &records {
            assert!(
                record.message.encoded_len() <= MAX_MESSAGE_LEN,
                "record within the limit"
            );
            encode_spill(&mut segment, &record.message, record.due_ns, record.source);
        }
        let (back, problem) = decode_segment(&segment, kind, MAX_MESSAGE_LEN);
        assert!(problem.is_none());
        assert_eq!(back, records, "segment round trip");
    }

    runtime().block_on(async {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("data")).await.expect("dir");
        fs.write(Path::new("data/t:c.deferred.journal"), data)
            .await
            .expect("write");
        let loaded = DueJournal::new(Arc::new(fs.clone()), Path::new("data"), "t:c", false);
        let id = MessageId(*b"ffffffffffffffff");
        loaded.append(&[(id, i64::MAX)]).await.expect("append");
        let reopened = DueJournal::new(Arc::new(fs), Path::new("data"), "t:c", false);
        let due = reopened.load_once(0).await.expect("first load");
        assert_eq!(due.get(&id), Some(&i64::MAX), "an append after a damaged file reads back");
        for (id, at) in &journal.records {
            if *at > 0 {
                // An id's latest due time wins, whatever the order of its records.
                assert!(due.get(id).is_some_and(|latest| latest >= at), "{id:?} kept");
            }
        }
    });
});
