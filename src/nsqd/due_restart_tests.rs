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
        buggify: crate::nsqd::Buggify {
            deferred_due_at_restart: due_at_restart,
            ..crate::nsqd::Buggify::default()
        },
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
    bodies_at(channel, now_ns, false).await
}

/// [`delivered_bodies`], each message then finished (FIN).
async fn finished_bodies(channel: &Channel, now_ns: i64) -> Vec<String> {
    bodies_at(channel, now_ns, true).await
}

async fn bodies_at(channel: &Channel, now_ns: i64, finish: bool) -> Vec<String> {
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
        if finish {
            channel.finish(client.id, &message.id, || now_ns).unwrap();
        }
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

/// A topic `t` with channel `c` whose memory queues hold `mem` messages and whose
/// deferred messages may take `budget` bytes of memory, created at `now_ns`.
fn budget_topic(fs: &MemFs, mem: i64, budget: usize, now_ns: i64) -> (Topic, ChannelRef) {
    let topic = Topic::new(
        "t",
        1,
        mem,
        0,
        None,
        Some(budget_factory(fs, false, budget)),
    );
    let channel = topic.get_or_create_channel("c", now_ns).unwrap();
    (topic, channel)
}

/// Runs the channel from `from_ms` to `to_ms` in 100 ms steps (disk loop, queue scan, a
/// client ready for everything), and checks that every body of `plan` (body, due ms)
/// leaves at its due time or later, never before, and by 100 ms after it when `prompt`
/// (bodies not in `plan`, or due at 0, were not deferred). Returns the bodies in the
/// order they left.
async fn run_plan(
    channel: &Channel,
    plan: &[(String, i64)],
    from_ms: i64,
    to_ms: i64,
    prompt: bool,
) -> Vec<String> {
    let mut got = Vec::new();
    for ms in (from_ms..=to_ms).step_by(100) {
        for body in delivered_bodies(channel, ms * 1_000_000).await {
            let due = plan.iter().find(|(b, _)| *b == body).map_or(0, |(_, d)| *d);
            assert!(ms >= due, "{body} due at {due} ms left early, at {ms} ms");
            if prompt && due > 0 {
                assert!(
                    ms < due + 100,
                    "{body} due at {due} ms left late, at {ms} ms"
                );
            }
            got.push(body);
        }
    }
    got
}

/// `n` DPUBs at time 0 with due times spread over 1-20 s (several per window, some
/// due together), then one message not deferred.
async fn publish_plan(topic: &Topic, n: usize) -> Vec<(String, i64)> {
    let mut plan = Vec::new();
    for i in 0..n {
        let due_ms = 1_000 + ((i * 7919) % 19_000) as i64 / 250 * 250;
        let body = format!("m{i}");
        dpub(topic, &body, 0, due_ms).await;
        plan.push((body, due_ms));
    }
    dpub(topic, "now", 0, 0).await;
    plan.push(("now".to_string(), 0));
    plan
}

/// Deferred messages read from a memory-less channel's disk before their time wait in
/// synced spill segments beyond the budget, not in memory, and their copies in the disk
/// queue are let go; each window goes back to the disk queue when it starts, and every
/// message leaves on time, those due together in publish order.
#[tokio::test]
async fn read_early_messages_beyond_the_budget_wait_in_synced_segments() {
    let fs = data_dir().await;
    // Room in memory for about two small messages.
    let (topic, channel) = budget_topic(&fs, 0, 400, 0);
    let plan = publish_plan(&topic, 200).await;
    assert_eq!(channel.snapshot().deferred_count, 200);
    assert_eq!(delivered_bodies(&channel, 0).await, ["now"]);
    let backend = channel.backend().unwrap();
    let spilled = backend.read_early_spill().count();
    assert!(spilled >= 197, "{spilled} spilled");
    assert_eq!(channel.snapshot().deferred_count, 200);
    // The disk loop's tick syncs the segments and lets go of the queue's copies: what
    // stays held is the message in flight and those waiting in memory.
    channel.load_due_spill(0).await;
    assert_eq!(backend.held_count(), 1 + 200 - spilled as usize);
    let got = run_plan(&channel, &plan, 100, 21_000, true).await;
    assert_eq!(got.len(), 200, "every deferred message left once");
    let mut expected: Vec<&(String, i64)> = plan.iter().filter(|(b, _)| b != "now").collect();
    expected.sort_by_key(|(_, due)| *due);
    let expected: Vec<&String> = expected.into_iter().map(|(b, _)| b).collect();
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        expected,
        "due order, then publish order"
    );
    assert_eq!(channel.snapshot().deferred_count, 0);
    assert_eq!(backend.read_early_spill().count(), 0);
    assert!(!fs
        .file_names()
        .iter()
        .any(|p| p.to_string_lossy().contains(".deferred-synced.")));
}

/// In crash-safe mode, a crash at any point of a read-early message's way (gathered for
/// its segment, synced there with the queue's copy let go, the queue's read position
/// synced past it, back in the queue when its window started) loses nothing and
/// delivers nothing early.
#[tokio::test]
async fn read_early_messages_survive_a_crash_at_every_step() {
    for step in ["gathered", "synced", "read past", "returned"] {
        let fs = data_dir().await;
        let (topic, channel) = budget_topic(&fs, 0, 0, 0);
        let plan = publish_plan(&topic, 60).await;
        assert_eq!(finished_bodies(&channel, 0).await, ["now"], "{step}");
        let mut from_ms = 100;
        match step {
            "gathered" => {}
            "synced" => channel.load_due_spill(0).await,
            "read past" => {
                channel.load_due_spill(0).await;
                // A later read syncs the queue's read position past the copies let go.
                dpub(&topic, "later", 0, 0).await;
                assert_eq!(finished_bodies(&channel, 0).await, ["later"], "{step}");
            }
            _ => {
                for ms in (100..=3_000).step_by(100) {
                    for body in finished_bodies(&channel, ms * 1_000_000).await {
                        let due = plan.iter().find(|(b, _)| *b == body).map_or(0, |(_, d)| *d);
                        assert!(ms >= due, "{step}: {body} early");
                    }
                }
                from_ms = 3_000;
            }
        }
        fs.crash(CrashMode::DropUnsynced, 6);

        let (_topic, channel) = budget_topic(&fs, 0, 0, 0);
        channel.restore_due_times(from_ms * 1_000_000).await;
        if step == "read past" {
            channel.backend().unwrap().open().await.unwrap();
            // `later`, finished after the last sync, is still there; the deferred
            // messages are only in the segments now.
            assert_eq!(channel.backend_depth(), 1, "{step}");
        }
        let got = run_plan(&channel, &plan, from_ms, 21_000, false).await;
        let missing: Vec<&String> = plan
            .iter()
            .filter(|(b, due)| b != "now" && *due > from_ms && !got.contains(b))
            .map(|(b, _)| b)
            .collect();
        assert!(missing.is_empty(), "{step}: {missing:?} never arrived");
    }
}

/// A REQ with a delay of a message held on disk, past the budget, journals the new due
/// time and moves the message to a synced segment: not early, also after a crash.
#[tokio::test]
async fn a_requeue_past_the_budget_of_a_message_from_disk_waits_in_a_synced_segment() {
    let fs = data_dir().await;
    let (topic, channel) = budget_topic(&fs, 0, 0, 0);
    dpub(&topic, "m", 0, 0).await;
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
    let Requeued::JournalDueAndSpill(message, due) = channel
        .requeue(client.id, &message_id, SEC, 5 * SEC)
        .unwrap()
    else {
        panic!("held on disk, past the budget: journal, then spill");
    };
    channel.journal_and_spill_held(message, due).await.unwrap();
    channel.load_due_spill(SEC).await;
    let backend = channel.backend().unwrap();
    assert_eq!(backend.read_early_spill().count(), 1);
    assert_eq!(backend.held_count(), 0);
    assert_eq!(channel.snapshot().deferred_count, 1);
    fs.crash(CrashMode::DropUnsynced, 7);

    let (_topic, channel) = budget_topic(&fs, 0, 0, 0);
    channel.restore_due_times(2 * SEC).await;
    let plan = [("m".to_string(), 6_000)];
    let got = run_plan(&channel, &plan, 2_000, 7_000, false).await;
    assert!(got.contains(&"m".to_string()));
}

/// A graceful exit writes the synced segments to the disk queue with their due times,
/// and the next run defers them again.
#[tokio::test]
async fn read_early_messages_keep_their_time_across_a_graceful_restart() {
    let fs = data_dir().await;
    let (topic, channel) = budget_topic(&fs, 0, 400, 0);
    let plan = publish_plan(&topic, 60).await;
    assert_eq!(delivered_bodies(&channel, 0).await, ["now"]);
    channel.load_due_spill(0).await;
    assert!(channel.backend().unwrap().read_early_spill().count() > 50);
    topic.flush_to_backends(100_000_000).await.unwrap();
    assert!(!fs
        .file_names()
        .iter()
        .any(|p| p.to_string_lossy().contains(".deferred-synced.")));
    fs.crash(CrashMode::DropUnsynced, 8);

    let (_topic, channel) = budget_topic(&fs, 0, 400, 0);
    channel.restore_due_times(200_000_000).await;
    assert_eq!(channel.snapshot().deferred_count, 60);
    let got = run_plan(&channel, &plan, 200, 21_000, true).await;
    assert_eq!(got.len(), 60 + 1, "the undelivered `now` comes back too");
}

/// When a window of read-early messages starts while an older message in flight keeps
/// the queue's read position before their copies there, they are held there again
/// instead of being written a second time: after a crash each comes back once, not
/// twice in the same run.
#[tokio::test]
async fn a_returned_window_leaves_one_copy_for_a_crash_to_bring_back() {
    let fs = data_dir().await;
    let (topic, channel) = budget_topic(&fs, 0, 0, 0);
    dpub(&topic, "first", 0, 0).await;
    let plan: Vec<(String, i64)> = (0..20).map(|i| (format!("m{i}"), 2_000 + i * 10)).collect();
    for (body, due_ms) in &plan {
        dpub(&topic, body, 0, *due_ms).await;
    }
    // `first` stays in flight: its hold keeps the read position before the others.
    assert_eq!(delivered_bodies(&channel, 0).await, ["first"]);
    channel.load_due_spill(0).await;
    assert_eq!(channel.backend().unwrap().read_early_spill().count(), 20);
    let got = run_plan(&channel, &plan, 2_000, 2_100, true).await;
    assert_eq!(got.len(), 11, "those due by 2.1 s left: {got:?}");
    assert_eq!(channel.backend().unwrap().read_early_spill().count(), 0);
    fs.crash(CrashMode::DropUnsynced, 9);

    let (_topic, channel) = budget_topic(&fs, 0, 0, 0);
    channel.restore_due_times(2_100_000_000).await;
    // One at a time, each finished as it arrives, so a second copy is handed out too.
    let mut got = Vec::new();
    for ms in (2_100..=4_000).step_by(100) {
        for body in finished_one_by_one(&channel, ms * 1_000_000).await {
            let due = plan.iter().find(|(b, _)| *b == body).map_or(0, |(_, d)| *d);
            assert!(ms >= due, "{body} due at {due} ms left early, at {ms} ms");
            got.push(body);
        }
    }
    got.sort();
    let mut once: Vec<String> = plan.iter().map(|(b, _)| b.clone()).collect();
    once.push("first".to_string());
    once.sort();
    assert_eq!(got, once, "each once in the run after the crash");
}

/// The bodies a client ready for one message at a time gets at `now_ns`, each finished
/// before the next is taken.
async fn finished_one_by_one(channel: &Channel, now_ns: i64) -> Vec<String> {
    channel.load_due_spill(now_ns).await;
    channel.process_deferred(now_ns);
    let client = test_client();
    let mut bodies = Vec::new();
    loop {
        let mut out = BytesMut::new();
        let mut taken = channel.take_for_client(&client, 1, now_ns, TIMEOUT, || true, &mut out);
        if taken == 0 {
            taken = channel
                .take_from_backend(&client, 1, now_ns, TIMEOUT, || true, &mut out)
                .await
                .unwrap();
        }
        if taken == 0 {
            return bodies;
        }
        let (_, data) = crate::protocol::frame::decode_frame(&mut out, usize::MAX)
            .unwrap()
            .unwrap();
        let message = crate::protocol::Message::decode(data).unwrap();
        channel.finish(client.id, &message.id, || now_ns).unwrap();
        bodies.push(String::from_utf8(message.body.to_vec()).unwrap());
    }
}
