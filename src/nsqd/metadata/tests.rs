use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::env::{CrashMode, MemFs, SeededRng};

/// `nsqd.dat` as real Go nsqd v1.3.0 left it (shared/golden/data-dir.txt, scenarios 1-2b).
const GOLDEN: &[u8] = br#"{"topics":[{"name":"golden","paused":false,"channels":[{"name":"ch","paused":false}]}],"version":"1.3.0"}"#;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn topic(name: &str, paused: bool, channels: &[(&str, bool)]) -> TopicMetadata {
    TopicMetadata {
        name: name.to_string(),
        paused,
        channels: channels
            .iter()
            .map(|&(name, paused)| ChannelMetadata {
                name: name.to_string(),
                paused,
            })
            .collect(),
    }
}

fn golden() -> Metadata {
    Metadata::new(vec![topic("golden", false, &[("ch", false)])])
}

/// A MemFs with an empty `/data`.
async fn data_dir() -> MemFs {
    let fs = MemFs::new();
    fs.create_dir_all(&p("/data")).await.unwrap();
    fs
}

fn decode_err(data: &[u8]) -> String {
    Metadata::decode(data).unwrap_err().to_string()
}

// ---- encoding ----

#[test]
fn encode_is_byte_identical_to_go() {
    assert_eq!(golden().encode(), GOLDEN);
    assert_eq!(golden().encode().len(), 105);
}

#[test]
fn empty_lists_encode_as_null_like_go_nil_slices() {
    assert_eq!(
        Metadata::new(Vec::new()).encode(),
        br#"{"topics":null,"version":"1.3.0"}"#
    );
    let metadata = Metadata::new(vec![
        topic("t", true, &[]),
        topic("u", false, &[("c", true)]),
    ]);
    assert_eq!(
        metadata.encode(),
        br#"{"topics":[{"name":"t","paused":true,"channels":null},{"name":"u","paused":false,"channels":[{"name":"c","paused":true}]}],"version":"1.3.0"}"#
    );
}

#[test]
fn encode_leaves_out_ephemeral_topics_and_channels() {
    let metadata = Metadata::new(vec![
        topic("gone#ephemeral", false, &[("c", false)]),
        topic("t", false, &[("c#ephemeral", false), ("d", true)]),
        topic("u", false, &[("only#ephemeral", false)]),
    ]);
    assert_eq!(
        metadata.encode(),
        br#"{"topics":[{"name":"t","paused":false,"channels":[{"name":"d","paused":true}]},{"name":"u","paused":false,"channels":null}],"version":"1.3.0"}"#
    );
    let only_ephemeral = Metadata::new(vec![topic("x#ephemeral", false, &[])]);
    assert_eq!(
        only_ephemeral.encode(),
        br#"{"topics":null,"version":"1.3.0"}"#
    );
}

#[test]
fn strings_are_escaped_as_go_escapes_them() {
    let metadata = Metadata {
        topics: vec![topic(
            "a\"b\\c\n\r\t\u{1}\u{8}\u{c}<>&\u{7f}é\u{2028}\u{2029}",
            false,
            &[],
        )],
        version: String::new(),
    };
    let expected = concat!(
        r#"{"topics":[{"name":"a\"b\\c\n\r\t\u0001\u0008\u000c\u003c\u003e\u0026"#,
        "\u{7f}é",
        r#"\u2028\u2029","paused":false,"channels":null}],"version":""}"#
    );
    assert_eq!(String::from_utf8(metadata.encode()).unwrap(), expected);
}

// ---- decoding ----

#[test]
fn golden_file_decodes_and_reencodes_identically() {
    let decoded = Metadata::decode(GOLDEN).unwrap();
    assert_eq!(decoded, golden());
    assert_eq!(decoded.encode(), GOLDEN);
}

#[test]
fn decode_accepts_what_go_accepts() {
    // Unknown keys, other key case, missing and null fields, null elements, whitespace.
    let data = br#" {"Topics":[{"NAME":"t","paused":true,"extra":[1,{"x":null}],
        "channels":[null,{"name":"c"}]},null,{"name":null,"paused":null,"channels":null}],
        "other":1} "#;
    let decoded = Metadata::decode(data).unwrap();
    assert_eq!(
        decoded,
        Metadata {
            topics: vec![
                topic("t", true, &[("", false), ("c", false)]),
                TopicMetadata::default(),
                TopicMetadata::default(),
            ],
            version: String::new(),
        }
    );
    // Go: unmarshalling `null` into a struct leaves it untouched.
    assert_eq!(Metadata::decode(b"null").unwrap(), Metadata::default());
    assert_eq!(
        Metadata::decode(br#"{"topics":null}"#).unwrap(),
        Metadata::default()
    );
}

#[test]
fn exact_key_wins_over_other_case() {
    let data = br#"{"TOPICS":[{"name":"upper"}],"topics":[{"name":"exact"}]}"#;
    assert_eq!(Metadata::decode(data).unwrap().topics[0].name, "exact");
}

#[test]
fn invalid_utf8_in_a_string_becomes_the_replacement_character() {
    let decoded = Metadata::decode(b"{\"topics\":[{\"name\":\"a\xffb\"}]}").unwrap();
    assert_eq!(decoded.topics[0].name, "a\u{fffd}b");
}

#[test]
fn decode_refuses_what_go_refuses() {
    assert_eq!(decode_err(b""), "unexpected end of JSON input");
    assert_eq!(decode_err(b"  \n"), "unexpected end of JSON input");
    assert_eq!(
        decode_err(br#"{"topics":["#),
        "unexpected end of JSON input"
    );
    for garbage in [
        &b"not json"[..],
        b"\x00\x01\x02",
        br#"{"topics":[]} trailing"#,
        b"{'topics':[]}",
    ] {
        assert!(Metadata::decode(garbage).is_err(), "{garbage:?}");
    }
    assert_eq!(
        decode_err(b"[]"),
        "json: cannot unmarshal array into the metadata (want an object)"
    );
    assert_eq!(
        decode_err(br#""text""#),
        "json: cannot unmarshal string into the metadata (want an object)"
    );
    assert_eq!(
        decode_err(br#"{"topics":5}"#),
        "json: cannot unmarshal number into topics (want an array)"
    );
    assert_eq!(
        decode_err(br#"{"topics":[{"name":"t","paused":1}]}"#),
        "json: cannot unmarshal number into topics[0].paused (want a bool)"
    );
    assert_eq!(
        decode_err(br#"{"topics":[{"name":"t","channels":[{"name":7}]}]}"#),
        "json: cannot unmarshal number into topics[0].channels[0].name (want a string)"
    );
    assert_eq!(
        decode_err(br#"{"topics":[],"version":1.3}"#),
        "json: cannot unmarshal number into version (want a string)"
    );
    assert_eq!(
        decode_err(br#"{"topics":["t"]}"#),
        "json: cannot unmarshal string into topics[0] (want an object)"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let mut data = br#"{"x":"#.to_vec();
    data.extend(std::iter::repeat_n(b'[', 100_000));
    assert!(Metadata::decode(&data).is_err());
}

#[test]
fn invalid_names_are_split_off_with_their_channels() {
    let metadata = Metadata::new(vec![
        topic("bad topic", true, &[("c", false)]),
        topic("t", false, &[("ok", true), ("bad!", false), ("", false)]),
        topic("", false, &[]),
        topic("e#ephemeral", false, &[("c#ephemeral", false)]),
        topic(&"x".repeat(65), false, &[]),
    ]);
    let (kept, skipped) = metadata.split_invalid();
    assert_eq!(
        kept,
        Metadata::new(vec![
            topic("t", false, &[("ok", true)]),
            topic("e#ephemeral", false, &[("c#ephemeral", false)]),
        ])
    );
    let channel = |channel: &str| Skipped::Channel {
        topic: "t".to_string(),
        channel: channel.to_string(),
    };
    assert_eq!(
        skipped,
        vec![
            Skipped::Topic("bad topic".to_string()),
            channel("bad!"),
            channel(""),
            Skipped::Topic(String::new()),
            Skipped::Topic("x".repeat(65)),
        ]
    );
}

fn name() -> impl Strategy<Value = String> {
    "[.a-zA-Z0-9_-]{1,54}(#ephemeral)?"
}

fn metadata() -> impl Strategy<Value = Metadata> {
    let channel =
        (name(), any::<bool>()).prop_map(|(name, paused)| ChannelMetadata { name, paused });
    let topic = (name(), any::<bool>(), prop::collection::vec(channel, 0..4)).prop_map(
        |(name, paused, channels)| TopicMetadata {
            name,
            paused,
            channels,
        },
    );
    prop::collection::vec(topic, 0..6).prop_map(Metadata::new)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// What is written reads back as itself, minus the ephemeral names, and survives
    /// another round byte for byte.
    #[test]
    fn encode_then_decode_round_trips(metadata in metadata()) {
        let bytes = metadata.encode();
        let decoded = Metadata::decode(&bytes).unwrap();
        let mut durable = metadata.clone();
        durable.topics.retain(|t| !is_ephemeral(&t.name));
        for topic in &mut durable.topics {
            topic.channels.retain(|c| !is_ephemeral(&c.name));
        }
        prop_assert_eq!(&decoded, &durable);
        prop_assert_eq!(decoded.encode(), bytes.clone());
        // serde_json agrees that it is JSON.
        prop_assert!(serde_json::from_slice::<Value>(&bytes).is_ok());
        let (kept, skipped) = decoded.split_invalid();
        prop_assert!(skipped.is_empty());
        prop_assert_eq!(kept, durable);
    }

    /// No input makes the decoder panic.
    #[test]
    fn decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Metadata::decode(&data);
    }
}

// ---- load and persist ----

#[tokio::test]
async fn load_of_a_missing_file_is_a_fresh_start() {
    let fs = data_dir().await;
    assert!(load(&fs, &p("/data")).await.unwrap().is_none());
}

#[tokio::test]
async fn load_refuses_empty_garbage_and_non_object_files() {
    let fs = data_dir().await;
    for (data, reason) in [
        (&b""[..], "unexpected end of JSON input"),
        (b"\xde\xad\xbe\xef", "expected value"),
        (b"[1,2]", "cannot unmarshal array"),
        (b"42", "cannot unmarshal number"),
    ] {
        fs.write(&p("/data/nsqd.dat"), data).await.unwrap();
        let error = load(&fs, &p("/data")).await.unwrap_err();
        assert!(matches!(error, MetadataError::Parse { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.starts_with("failed to parse metadata in /data/nsqd.dat - "),
            "{text}"
        );
        assert!(text.contains(reason), "{text}");
    }
}

#[tokio::test]
async fn load_skips_invalid_names() {
    let fs = data_dir().await;
    let data = br#"{"topics":[{"name":"bad/name","paused":true,"channels":[{"name":"c","paused":false}]},{"name":"good","paused":true,"channels":[{"name":"c!","paused":false},{"name":"c","paused":true}]}],"version":"1.3.0"}"#;
    fs.write(&p("/data/nsqd.dat"), data).await.unwrap();
    let loaded = load(&fs, &p("/data")).await.unwrap().unwrap();
    assert_eq!(
        loaded,
        Metadata::new(vec![topic("good", true, &[("c", true)])])
    );
}

#[tokio::test]
async fn load_reports_a_read_error() {
    let fs = data_dir().await;
    fs.create_dir_all(&p("/data/nsqd.dat")).await.unwrap();
    let error = load(&fs, &p("/data")).await.unwrap_err();
    assert!(matches!(error, MetadataError::Read { .. }), "{error:?}");
    assert!(error
        .to_string()
        .starts_with("failed to read metadata from /data/nsqd.dat - "));
}

#[tokio::test]
async fn persist_then_load_round_trips_and_leaves_no_tmp() {
    let fs = data_dir().await;
    let rng = SeededRng::new(1);
    persist(&fs, &p("/data"), &golden(), &rng).await.unwrap();
    assert_eq!(fs.file_names(), vec![p("/data/nsqd.dat")]);
    assert_eq!(fs.read(&p("/data/nsqd.dat")).await.unwrap(), GOLDEN);
    assert_eq!(load(&fs, &p("/data")).await.unwrap(), Some(golden()));

    let next = Metadata::new(vec![topic("golden", true, &[]), topic("b", false, &[])]);
    persist(&fs, &p("/data"), &next, &rng).await.unwrap();
    assert_eq!(fs.file_names(), vec![p("/data/nsqd.dat")]);
    assert_eq!(load(&fs, &p("/data")).await.unwrap(), Some(next));
}

#[test]
fn tmp_name_is_gos() {
    assert_eq!(
        tmp_path(&p("/data/nsqd.dat"), 8_674_665_223_082_153_551),
        p("/data/nsqd.dat.8674665223082153551.tmp")
    );
}

#[tokio::test]
async fn a_failed_write_keeps_the_previous_file_and_no_tmp() {
    let fs = data_dir().await;
    let rng = SeededRng::new(2);
    persist(&fs, &p("/data"), &golden(), &rng).await.unwrap();
    let next = Metadata::new(vec![topic("other", false, &[])]);

    fs.set_fail_writes(true);
    let error = persist(&fs, &p("/data"), &next, &rng).await.unwrap_err();
    assert!(matches!(error, MetadataError::Write { .. }), "{error:?}");
    fs.set_fail_writes(false);
    assert_eq!(fs.file_names(), vec![p("/data/nsqd.dat")]);
    assert_eq!(fs.read(&p("/data/nsqd.dat")).await.unwrap(), GOLDEN);

    // A failed fsync: the temporary file was written, and must go again.
    fs.set_fail_syncs(true);
    let error = persist(&fs, &p("/data"), &next, &rng).await.unwrap_err();
    assert!(matches!(error, MetadataError::Sync { .. }), "{error:?}");
    assert!(error
        .to_string()
        .starts_with("failed to fsync /data/nsqd.dat."));
    fs.set_fail_syncs(false);
    assert_eq!(fs.file_names(), vec![p("/data/nsqd.dat")]);
    fs.crash(CrashMode::DropUnsynced, 0);
    assert_eq!(load(&fs, &p("/data")).await.unwrap(), Some(golden()));
}

#[tokio::test]
async fn a_missing_data_path_fails_persist_cleanly() {
    let fs = MemFs::new();
    let error = persist(&fs, &p("/nope"), &golden(), &SeededRng::new(3))
        .await
        .unwrap_err();
    assert!(matches!(error, MetadataError::Write { .. }), "{error:?}");
    assert!(fs.file_names().is_empty());
}

#[tokio::test]
async fn the_last_persisted_metadata_survives_a_crash() {
    for mode in [
        CrashMode::DropUnsynced,
        CrashMode::TornTail,
        CrashMode::Keep,
    ] {
        let fs = data_dir().await;
        let rng = SeededRng::new(4);
        persist(&fs, &p("/data"), &golden(), &rng).await.unwrap();
        let last = Metadata::new(vec![topic("golden", true, &[("ch", true), ("x", false)])]);
        persist(&fs, &p("/data"), &last, &rng).await.unwrap();
        fs.crash(mode, 99);
        assert_eq!(
            load(&fs, &p("/data")).await.unwrap(),
            Some(last),
            "{mode:?}"
        );
    }
}

// ---- the data-path lock ----

#[tokio::test]
async fn a_second_nsqd_on_the_same_data_path_is_refused() {
    let disk = data_dir().await;
    let second_host = disk.clone();
    let lock = lock_data_path(&disk, &p("/data")).await.unwrap();
    assert_eq!(lock.dir(), p("/data"));
    let error = lock_data_path(&second_host, &p("/data")).await.unwrap_err();
    assert!(
        matches!(error, MetadataError::DataPathInUse { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "--data-path=/data in use (possibly by another instance of nsqd)"
    );
    drop(lock);
    let _relocked = lock_data_path(&second_host, &p("/data")).await.unwrap();
}

#[tokio::test]
async fn locking_a_missing_data_path_says_so() {
    let fs = MemFs::new();
    let error = lock_data_path(&fs, &p("/missing")).await.unwrap_err();
    assert!(matches!(error, MetadataError::Lock { .. }), "{error:?}");
    assert!(error
        .to_string()
        .starts_with("cannot lock --data-path=/missing - "));
}
