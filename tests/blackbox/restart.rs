//! Restarts on the same `--data-path`: what a graceful exit keeps (messages in memory,
//! on disk and in flight, topics, channels, paused state), the files it leaves in
//! go-diskqueue's and Go's `nsqd.dat` layout, and the lock that keeps a second nsqd out.
//! The test itself reads the data directory with `std::fs` to see what a user would.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;

use bytes::Bytes;
use nsq::env::Env;
use nsq::nsqd::{Nsqd, Options};

use crate::support::*;

/// Options on a given data directory.
fn options_in(dir: &tempfile::TempDir, mem_queue_size: i64) -> Options {
    Options {
        data_path: dir.path().to_string_lossy().into_owned(),
        mem_queue_size,
        ..golden_options()
    }
}

fn bodies(n: usize) -> Vec<Bytes> {
    (0..n).map(|i| Bytes::from(format!("kept-{i}"))).collect()
}

async fn publish_all(server: &Server, topic: &str, bodies: &[Bytes]) {
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_ref()).collect();
    server.publish(topic, &refs).await;
}

async fn drain(server: &Server, topic: &str, channel: &str) -> Vec<Msg> {
    let mut sub = server.subscriber(topic, channel, 1000).await;
    sub.drain_messages(QUIET, true).await
}

fn body_set(msgs: &[Msg]) -> BTreeSet<Bytes> {
    msgs.iter().map(|m| m.body.clone()).collect()
}

#[tokio::test]
async fn messages_in_memory_and_on_disk_survive_a_graceful_restart() {
    for mem_queue_size in [10_000, 3, 0] {
        let dir = tempfile::tempdir().expect("tempdir");
        let sent = bodies(10);
        let server = start_with(options_in(&dir, mem_queue_size)).await;
        // A channel so the messages fan out, and a second topic held without channels.
        drop(server.subscriber("kept", "ch", 0).await);
        publish_all(&server, "kept", &sent).await;
        publish_all(&server, "held", &sent).await;
        server.stop().await;

        let server = start_with(options_in(&dir, mem_queue_size)).await;
        let channel = server.channel_stats("kept", "ch").await;
        assert_eq!(channel["depth"], 10, "mem {mem_queue_size}: {channel}");
        let topic = server.topic_stats("held").await;
        assert_eq!(topic["depth"], 10, "mem {mem_queue_size}: {topic}");
        let expected: BTreeSet<Bytes> = sent.iter().cloned().collect();
        let got = drain(&server, "kept", "ch").await;
        assert_eq!(got.len(), 10, "mem {mem_queue_size}: nothing twice");
        assert_eq!(body_set(&got), expected, "mem {mem_queue_size}");
        let got = drain(&server, "held", "late").await;
        assert_eq!(body_set(&got), expected, "mem {mem_queue_size}");
        server.stop().await;
    }
}

#[tokio::test]
async fn in_flight_messages_come_back_after_a_restart_with_their_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(options_in(&dir, 10_000)).await;
    let mut sub = server.subscriber("inflight", "ch", 10).await;
    publish_all(&server, "inflight", &bodies(3)).await;
    let first = sub.drain_messages(QUIET, false).await;
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|m| m.attempts == 1));
    server.stop().await;

    let server = start_with(options_in(&dir, 10_000)).await;
    let again = drain(&server, "inflight", "ch").await;
    assert_eq!(body_set(&again), body_set(&first));
    assert!(
        again.iter().all(|m| m.attempts == 2),
        "redelivered with attempts kept: {:?}",
        again.iter().map(|m| m.attempts).collect::<Vec<_>>()
    );
    let ids: BTreeSet<_> = first.iter().map(|m| m.id).collect();
    assert!(again.iter().all(|m| ids.contains(&m.id)), "same ids");
    server.stop().await;
}

#[tokio::test]
async fn topics_channels_and_pauses_come_back_from_nsqd_dat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(options_in(&dir, 10_000)).await;
    for path in [
        "/topic/create?topic=t1",
        "/channel/create?topic=t1&channel=c1",
        "/channel/create?topic=t1&channel=c2",
        "/channel/pause?topic=t1&channel=c2",
        "/topic/create?topic=t2",
        "/topic/pause?topic=t2",
        "/topic/create?topic=gone%23ephemeral",
    ] {
        assert_eq!(server.http("POST", path, None).await.status, 200, "{path}");
    }
    server.stop().await;

    let dat = std::fs::read_to_string(dir.path().join("nsqd.dat")).expect("nsqd.dat");
    assert_eq!(
        dat,
        r#"{"topics":[{"name":"t1","paused":false,"channels":[{"name":"c1","paused":false},{"name":"c2","paused":true}]},{"name":"t2","paused":true,"channels":null}],"version":"1.3.0"}"#
    );

    let server = start_with(options_in(&dir, 10_000)).await;
    assert_eq!(server.topic_names().await, vec!["t1", "t2"]);
    assert_eq!(server.channel_stats("t1", "c2").await["paused"], true);
    assert_eq!(server.channel_stats("t1", "c1").await["paused"], false);
    assert_eq!(server.topic_stats("t2").await["paused"], true);
    server.stop().await;
}

#[tokio::test]
async fn a_second_nsqd_on_the_same_data_path_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(options_in(&dir, 10_000)).await;
    let error = Nsqd::new(options_in(&dir, 10_000), Env::real())
        .await
        .expect_err("the data path is locked");
    assert!(
        error
            .to_string()
            .contains("in use (possibly by another instance of nsqd)"),
        "{error}"
    );
    server.stop().await;
    // Released at exit: the next start works.
    let server = start_with(options_in(&dir, 10_000)).await;
    server.stop().await;
}

#[tokio::test]
async fn disk_files_use_go_diskqueue_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(options_in(&dir, 0)).await;
    drop(server.subscriber("files", "ch", 0).await);
    publish_all(&server, "files", &bodies(2)).await;
    server.stop().await;
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "files.diskqueue.meta.dat",
            "files:ch.diskqueue.000000.dat",
            "files:ch.diskqueue.meta.dat",
            "nsqd.dat",
        ]
    );
    let meta =
        std::fs::read_to_string(dir.path().join("files:ch.diskqueue.meta.dat")).expect("meta");
    // depth 2, read at 0/0, written to the end of file 0: two 4+26+6-byte records.
    assert_eq!(meta, "2\n0,0\n0,72\n");
}

#[tokio::test]
async fn an_nsqd_dat_that_is_not_json_stops_startup_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("nsqd.dat"), b"{not json").expect("write");
    let error = Nsqd::new(options_in(&dir, 10_000), Env::real())
        .await
        .expect_err("refused");
    assert!(
        error.to_string().contains("failed to parse metadata"),
        "{error}"
    );
    // Nothing was overwritten: the operator can still inspect the file.
    assert_eq!(
        std::fs::read(dir.path().join("nsqd.dat")).expect("read"),
        b"{not json"
    );
}

#[tokio::test]
async fn invalid_names_in_nsqd_dat_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("nsqd.dat"),
        br#"{"topics":[{"name":"ok","paused":false,"channels":[{"name":"bad!","paused":false},{"name":"fine","paused":false}]},{"name":"bad topic","paused":false,"channels":null}],"version":"1.3.0"}"#,
    )
    .expect("write");
    let server = start_with(options_in(&dir, 10_000)).await;
    assert_eq!(server.topic_names().await, vec!["ok"]);
    let topic = server.topic_stats("ok").await;
    assert_eq!(
        topic["channels"].as_array().map(Vec::len),
        Some(1),
        "{topic}"
    );
    server.stop().await;
}
