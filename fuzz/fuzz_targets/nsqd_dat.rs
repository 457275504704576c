//! `nsqd.dat` loading: Go's JSON metadata (topics, channels, paused flags). A file that
//! decodes re-encodes to a file that decodes to the same metadata, and splitting off
//! invalid names leaves only valid ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsq::nsqd::metadata::Metadata;
use nsq::protocol::{is_ephemeral, is_valid_channel_name, is_valid_topic_name};

fuzz_target!(|data: &[u8]| {
    let Ok(metadata) = Metadata::decode(data) else {
        return;
    };
    let encoded = metadata.encode();
    let again = Metadata::decode(&encoded).expect("our own encoding decodes");
    // Ephemeral topics and channels are never persisted.
    let mut durable = metadata.clone();
    durable.topics.retain(|t| !is_ephemeral(&t.name));
    for topic in &mut durable.topics {
        topic.channels.retain(|c| !is_ephemeral(&c.name));
    }
    assert_eq!(again, durable, "round trip");
    let (valid, _skipped) = metadata.split_invalid();
    for topic in &valid.topics {
        assert!(
            is_valid_topic_name(&topic.name),
            "kept topic {:?}",
            topic.name
        );
        for channel in &topic.channels {
            assert!(
                is_valid_channel_name(&channel.name),
                "kept channel {:?}",
                channel.name
            );
        }
    }
});
