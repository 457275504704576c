//! Deferred messages across restarts and crashes, at the level of topics, channels and
//! their disk queues on a `MemFs`: the due time comes back with the message.

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::channel::{Channel, ChannelRef, Requeued};
use super::client::test_client;
use super::diskqueue::DiskQueueConfig;
use super::topic::{BackendFactory, Topic};
use crate::env::{CrashMode, Fs, MemFs};

const SEC: i64 = 1_000_000_000;
const TIMEOUT: i64 = 60 * SEC;

async fn data_dir() -> MemFs {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("data")).await.unwrap();
    fs.sync(Path::new("data")).await.unwrap();
    fs
}

fn factory(fs: &MemFs, due_at_restart: bool) -> BackendFactory {
    budget_factory(fs, due_at_restart, usize::MAX)
}

fn budget_factory(fs: &MemFs, due_at_restart: bool, budget: usize) -> BackendFactory {
    BackendFactory {
        fs: Arc::new(fs.clone()),
        data_path: "data".into(),
        config: DiskQueueConfig {
            sync_every: 1,
            ..DiskQueueConfig::default()
        },
        deferred_due_at_restart: due_at_restart,
        deferred_memory_budget: budget,
    }
}

/// A topic `t` whose memory queues hold `mem` messages, with channel `c`.
fn topic_with_channel(fs: &MemFs, mem: i64) -> (Topic, ChannelRef) {
    let topic = Topic::new("t", 1, mem, 0, None, Some(factory(fs, false)));
    let channel = topic.get_or_create_channel("c", 0).unwrap();
    (topic, channel)
}

/// How many messages a client ready for 10 gets at `now_ns`, from memory or disk.
async fn deliverable(channel: &Channel, now_ns: i64) -> usize {
    channel.process_deferred(now_ns);
    let client = test_client();
    let mut out = BytesMut::new();
    let from_memory = channel.take_for_client(&client, 10, now_ns, TIMEOUT, || true, &mut out);
    let from_disk = channel
        .take_from_backend(&client, 10, now_ns, TIMEOUT, || true, &mut out)
        .await
        .unwrap();
    from_memory + from_disk
}

/// With `--mem-queue-size=0 --sync-every=1`, an acknowledged DPUB keeps its due time
/// through a crash that drops every unsynced write.
#[tokio::test]
async fn a_crash_safe_dpub_waits_for_its_time_after_a_crash() {
    for due_at_restart in [false, true] {
        let fs = data_dir().await;
        let (topic, _) = topic_with_channel(&fs, 0);
        topic
            .publish(vec![Bytes::from_static(b"later")], SEC, 10 * SEC)
            .await
            .unwrap();
        fs.crash(CrashMode::DropUnsynced, 1);

        let topic = Topic::new("t", 1, 0, 0, None, Some(factory(&fs, due_at_restart)));
        let channel = topic.get_or_create_channel("c", 2 * SEC).unwrap();
        channel.restore_due_times(2 * SEC).await;
        if due_at_restart {
            assert_eq!(deliverable(&channel, 2 * SEC).await, 1, "the planted bug");
            continue;
        }
        assert_eq!(channel.snapshot().deferred_count, 1);
        assert_eq!(
            deliverable(&channel, 2 * SEC).await,
            0,
            "not before its time"
        );
        assert_eq!(
            channel.snapshot().deferred_count,
            1,
            "waiting in memory now"
        );
        assert_eq!(deliverable(&channel, 11 * SEC - 1).await, 0);
        assert_eq!(deliverable(&channel, 11 * SEC).await, 1);
        assert_eq!(channel.snapshot().deferred_count, 0);
    }
}

/// At exit, deferred messages in memory go to the disk queue as Go writes them, and
/// their due times to the journal; the next run defers them again, in due order.
#[tokio::test]
async fn deferred_messages_in_memory_keep_their_time_across_a_graceful_restart() {
    let fs = data_dir().await;
    let (topic, channel) = topic_with_channel(&fs, 100);
    for (body, defer) in [("c", 30), ("a", 10), ("b", 20)] {
        topic
            .publish(vec![Bytes::from_static(body.as_bytes())], 0, defer * SEC)
            .await
            .unwrap();
    }
    topic
        .publish(vec![Bytes::from_static(b"now")], 0, 0)
        .await
        .unwrap();
    assert_eq!(channel.snapshot().deferred_count, 3);
    topic.flush_to_backends(SEC).await.unwrap();
    fs.crash(CrashMode::DropUnsynced, 2);

    let (_topic, channel) = topic_with_channel(&fs, 100);
    channel.restore_due_times(2 * SEC).await;
    assert_eq!(channel.snapshot().deferred_count, 3);
    assert_eq!(
        deliverable(&channel, 2 * SEC).await,
        1,
        "only the undelayed one"
    );
    for (at, body) in [(10, "a"), (20, "b"), (30, "c")] {
        assert_eq!(deliverable(&channel, at * SEC - 1).await, 0);
        assert_eq!(
            delivered_bodies(&channel, at * SEC).await,
            [body],
            "due at {at} s"
        );
    }
    assert_eq!(channel.snapshot().deferred_count, 0);
}

/// A REQ with a delay of a message read from disk survives a crash: the message is still
/// held there, and its new due time is journaled.
#[tokio::test]
async fn a_requeue_of_a_message_from_disk_keeps_its_delay_after_a_crash() {
    let fs = data_dir().await;
    let (topic, channel) = topic_with_channel(&fs, 0);
    topic
        .publish(vec![Bytes::from_static(b"m")], 0, 0)
        .await
        .unwrap();
    let client = test_client();
    let mut out = BytesMut::new();
    let taken = channel
        .take_from_backend(&client, 1, SEC, TIMEOUT, || true, &mut out)
        .await
        .unwrap();
    assert_eq!(taken, 1);
    let message_id = crate::protocol::Message::decode(out.split_off(8).freeze())
        .unwrap()
        .id;
    let Requeued::JournalDue(due) = channel
        .requeue(client.id, &message_id, SEC, 5 * SEC)
        .unwrap()
    else {
        panic!("held on disk: a due time to journal");
    };
    assert_eq!(due, 6 * SEC);
    channel.journal_due_time(message_id, due).await.unwrap();
    assert_eq!(channel.snapshot().deferred_count, 1);
    fs.crash(CrashMode::DropUnsynced, 3);

    let (_topic, channel) = topic_with_channel(&fs, 0);
    assert_eq!(deliverable(&channel, 2 * SEC).await, 0);
    assert_eq!(deliverable(&channel, 6 * SEC).await, 1);
}

/// A DPUB parked on a topic with no channel keeps its due time through a crash, and
/// when a channel appears it waits there.
#[tokio::test]
async fn a_dpub_parked_on_a_topic_waits_after_a_crash() {
    let fs = data_dir().await;
    let topic = Topic::new("t", 1, 0, 0, None, Some(factory(&fs, false)));
    topic
        .publish(vec![Bytes::from_static(b"x")], 0, 10 * SEC)
        .await
        .unwrap();
    fs.crash(CrashMode::DropUnsynced, 4);

    let topic = Topic::new("t", 1, 0, 0, None, Some(factory(&fs, false)));
    let channel = topic.get_or_create_channel("c", SEC).unwrap();
    assert!(topic.drain_backend(SEC, 100).await.unwrap());
    assert_eq!(channel.snapshot().deferred_count, 1);
    assert_eq!(deliverable(&channel, 9 * SEC).await, 0);
    assert_eq!(deliverable(&channel, 10 * SEC).await, 1);
    // Once passed, the topic forgets the due time and its journal goes away.
    topic.compact_due_journal(10 * SEC).await.unwrap();
    assert!(!fs
        .file_names()
        .iter()
        .any(|p| p.to_string_lossy().ends_with("t.deferred.journal")));
}

/// Emptying a channel forgets its due times, on disk too.
#[tokio::test]
async fn empty_removes_the_due_times() {
    let fs = data_dir().await;
    let (topic, channel) = topic_with_channel(&fs, 0);
    topic
        .publish(vec![Bytes::from_static(b"x")], 0, 10 * SEC)
        .await
        .unwrap();
    assert_eq!(channel.snapshot().deferred_count, 1);
    channel.empty();
    channel.backend().unwrap().empty().await.unwrap();
    assert_eq!(channel.snapshot().deferred_count, 0);
    assert!(!fs
        .file_names()
        .iter()
        .any(|p| p.to_string_lossy().contains("deferred.journal")));
}

/// The journal is compacted once it has grown well past what it held after its last
/// rewrite: the records that passed go.
#[tokio::test]
async fn the_journal_is_compacted_as_messages_come_due() {
    let fs = data_dir().await;
    let (topic, channel) = topic_with_channel(&fs, 0);
    for n in 0..3000i64 {
        topic
            .publish(vec![Bytes::from(n.to_string())], 0, SEC + n)
            .await
            .unwrap();
    }
    let journal = channel.backend().unwrap().due_journal();
    assert_eq!(journal.records().await, 3000);
    let mut delivered = 0;
    while delivered < 2990 {
        let now = SEC + delivered as i64;
        channel.process_deferred(now);
        let mut out = BytesMut::new();
        let client = test_client();
        delivered += channel
            .take_from_backend(&client, 10, now, TIMEOUT, || true, &mut out)
            .await
            .unwrap();
        delivered += channel.take_for_client(&client, 10, now, TIMEOUT, || true, &mut out);
    }
    channel.compact_due_journal(SEC + 2990).await.unwrap();
    assert!(journal.records().await < 100, "{}", journal.records().await);
}

/// How many messages a client gets at `now_ns`, reading until nothing more comes.
async fn deliver_all(channel: &Channel, now_ns: i64) -> usize {
    let mut total = 0;
    loop {
        let got = deliverable(channel, now_ns).await;
        if got == 0 {
            return total;
        }
        total += got;
    }
}

/// After a compaction, a crash still finds the due times of the deferred messages that
/// wait on disk (read early, waiting in memory, held), and only theirs.
#[tokio::test]
async fn a_crash_after_a_compaction_keeps_the_future_due_times() {
    let fs = data_dir().await;
    let (topic, channel) = topic_with_channel(&fs, 0);
    for n in 0..1100 {
        dpub(&topic, &format!("soon{n}"), 0, 1_000).await;
    }
    for n in 0..5 {
        dpub(&topic, &format!("late{n}"), 0, 100_000).await;
    }
    assert_eq!(deliver_all(&channel, 2 * SEC).await, 1100);
    assert_eq!(channel.snapshot().deferred_count, 5, "waiting in memory");
    channel.compact_due_journal(2 * SEC).await.unwrap();
    let journal = channel.backend().unwrap().due_journal();
    assert_eq!(journal.records().await, 5);
    fs.crash(CrashMode::DropUnsynced, 8);

    let (_topic, channel) = topic_with_channel(&fs, 0);
    channel.restore_due_times(3 * SEC).await;
    assert_eq!(channel.snapshot().deferred_count, 5);
    assert_eq!(
        deliver_all(&channel, 3 * SEC).await,
        1100,
        "the unfinished ones come back at once, the late ones wait"
    );
    assert_eq!(deliver_all(&channel, 100 * SEC - 1).await, 0);
    assert_eq!(deliver_all(&channel, 100 * SEC).await, 5);
}

/// The bodies a client ready for everything gets at `now_ns` after the disk loop and the
/// queue scan ran, in order.
async fn delivered_bodies(channel: &Channel, now_ns: i64) -> Vec<String> {
    channel.load_due_spill(now_ns).await;
    channel.process_deferred(now_ns);
    let client = test_client();
    let mut out = BytesMut::new();
    channel.take_for_client(&client, 1000, now_ns, TIMEOUT, || true, &mut out);
    channel
        .take_from_backend(&client, 1000, now_ns, TIMEOUT, || true, &mut out)
        .await
        .unwrap();
    let mut bodies = Vec::new();
    while let Some((_, data)) = crate::protocol::frame::decode_frame(&mut out, usize::MAX).unwrap()
    {
        let message = crate::protocol::Message::decode(data).unwrap();
        bodies.push(String::from_utf8(message.body.to_vec()).unwrap());
    }
    bodies
}

/// Publishes `body` deferred `defer_ms` at `at_ns`.
async fn dpub(topic: &Topic, body: &str, at_ns: i64, defer_ms: i64) {
    topic
        .publish(
            vec![Bytes::from(body.to_string())],
            at_ns,
            defer_ms * 1_000_000,
        )
        .await
        .unwrap();
}

/// Past the memory budget, deferred messages wait in spill segments, and leave on time
/// in due order, those due together in publish order; they count as deferred.
#[tokio::test]
async fn past_the_budget_deferred_messages_wait_on_disk_and_leave_in_order() {
    let fs = data_dir().await;
    // Room for about two small messages.
    let topic = Topic::new("t", 1, 100, 0, None, Some(budget_factory(&fs, false, 400)));
    let channel = topic.get_or_create_channel("c", 0).unwrap();
    let plan = [
        ("d", 4_500),
        ("a", 1_500),
        ("b1", 2_500),
        ("e", 9_000),
        ("b2", 2_500),
        ("c", 3_000),
    ];
    for (body, defer_ms) in plan {
        dpub(&topic, body, 0, defer_ms).await;
    }
    assert_eq!(channel.snapshot().deferred_count, 6);
    let spill = channel.backend().unwrap().deferred_spill();
    assert!(spill.count() >= 4, "{} spilled", spill.count());
    let mut got = Vec::new();
    for ms in (0..=10_000).step_by(100) {
        let now = ms * 1_000_000;
        for body in delivered_bodies(&channel, now).await {
            let due = plan.iter().find(|(b, _)| *b == body).unwrap().1;
            assert!(ms >= due, "{body} due at {due} ms left at {ms} ms");
            assert!(
                ms < due + 100,
                "{body} due at {due} ms left late, at {ms} ms"
            );
            got.push(body);
        }
    }
    assert_eq!(got, ["a", "b1", "b2", "c", "d", "e"]);
    assert_eq!(channel.snapshot().deferred_count, 0);
    assert_eq!(spill.count(), 0);
}

/// Spilled messages go to the disk queue at exit (where Go can read them) with their
/// due times journaled; after a crash instead, the segments written out by the disk
/// loop's last tick are found again.
#[tokio::test]
async fn spilled_messages_keep_their_time_across_an_exit_and_a_crash() {
    for graceful in [true, false] {
        let fs = data_dir().await;
        let topic = Topic::new("t", 1, 100, 0, None, Some(budget_factory(&fs, false, 0)));
        let channel = topic.get_or_create_channel("c", 0).unwrap();
        for (n, defer_ms) in [2_000, 1_000, 3_000].into_iter().enumerate() {
            dpub(&topic, &format!("m{n}"), 0, defer_ms).await;
        }
        assert_eq!(channel.backend().unwrap().deferred_spill().count(), 3);
        if graceful {
            topic.flush_to_backends(100_000_000).await.unwrap();
            assert!(!fs
                .file_names()
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".dat")
                    && p.to_string_lossy().contains(".deferred.")));
            fs.crash(CrashMode::DropUnsynced, 5);
        } else {
            // The disk loop's tick writes out what the spill gathered.
            channel.load_due_spill(0).await;
            fs.crash(CrashMode::Keep, 5);
        }
        let topic = Topic::new("t", 1, 100, 0, None, Some(budget_factory(&fs, false, 0)));
        let channel = topic.get_or_create_channel("c", 0).unwrap();
        channel.restore_due_times(200_000_000).await;
        assert_eq!(channel.snapshot().deferred_count, 3, "graceful: {graceful}");
        let mut got = Vec::new();
        for ms in (200..=3_000).step_by(100) {
            for body in delivered_bodies(&channel, ms * 1_000_000).await {
                got.push((body, ms));
            }
        }
        assert_eq!(
            got,
            [
                ("m1".to_string(), 1_000),
                ("m0".to_string(), 2_000),
                ("m2".to_string(), 3_000)
            ],
            "graceful: {graceful}"
        );
    }
}
