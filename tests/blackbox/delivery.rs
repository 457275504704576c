//! Message delivery seen from the wire: RDY flow control, the message frame, timeouts,
//! REQ, TOUCH, DPUB, ownership, CLS, heartbeats, ephemeral cleanup, fan-out across
//! channels, distribution within a channel, sampling and a full memory queue.
//!
//! Timing tests run on [`fast_options`] (300 ms message timeout, 10 ms queue scan).

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use nsq::nsqd::Options;
use nsq::protocol::{Command, FrameType};
use tokio::time::Instant;

use crate::support::*;

/// A 300 ms message timeout, as [`fast_options`] sets it.
const MSG_TIMEOUT: Duration = Duration::from_millis(300);

fn bodies(n: usize, prefix: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect()
}

async fn publish_all(server: &Server, topic: &str, bodies: &[Vec<u8>]) {
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    server.publish(topic, &refs).await;
}

#[tokio::test]
async fn message_frame_has_26_byte_header_and_first_attempt_1() {
    let server = start().await;
    let mut sub = server.conn().await;
    sub.send(b"SUB msgs ch\n").await;
    sub.expect_ok().await;
    sub.send(b"RDY 1\n").await;
    sub.expect_quiet().await;
    let before = wall_ns();
    let mut producer = server.conn().await;
    producer.send(b"PUB msgs\n\x00\x00\x00\x05hello").await;
    producer.expect_ok().await;
    let after = wall_ns();
    let msg = sub.message().await;
    let raw = &msg.frame.raw;
    assert_eq!(raw.len(), 4 + 35);
    assert_eq!(
        &raw[..8],
        b"\x00\x00\x00\x23\x00\x00\x00\x02",
        "size 35, type 2"
    );
    assert_eq!(&raw[16..18], b"\x00\x01", "attempts 1");
    assert_eq!(&raw[34..], b"hello");
    assert_eq!(msg.attempts, 1);
    assert!(
        (before..=after).contains(&msg.timestamp_ns),
        "timestamp {} is set when the message is created, between {before} and {after}",
        msg.timestamp_ns
    );
    let id = msg.id_text();
    assert!(
        id.len() == 16
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "id is 16 lowercase hex digits: {id:?}"
    );
    sub.fin(&msg).await;
    sub.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn rdy_1_delivers_one_message_until_fin() {
    let server = start().await;
    let mut sub = server.subscriber("rdy1", "ch", 1).await;
    publish_all(&server, "rdy1", &bodies(3, "m")).await;
    let first = sub.message().await;
    assert_eq!(&first.body[..], b"m-0");
    sub.expect_quiet().await;
    sub.fin(&first).await;
    let second = sub.message().await;
    assert_eq!(&second.body[..], b"m-1");
    sub.expect_quiet().await;
    sub.fin(&second).await;
    let third = sub.message().await;
    assert_eq!(&third.body[..], b"m-2");
    server.stop().await;
}

#[tokio::test]
async fn rdy_0_delivers_nothing_until_rdy_rises() {
    let server = start().await;
    let mut sub = server.subscriber("rdy0", "ch", 0).await;
    server.publish("rdy0", &[b"held"]).await;
    sub.expect_quiet().await;
    let channel = server.channel_stats("rdy0", "ch").await;
    assert_eq!(channel["depth"], 1, "{channel}");
    sub.rdy(1).await;
    let msg = sub.message().await;
    assert_eq!(&msg.body[..], b"held");
    server.stop().await;
}

#[tokio::test]
async fn rdy_n_never_has_more_than_n_in_flight() {
    let server = start().await;
    let mut sub = server.subscriber("rdyn", "ch", 3).await;
    publish_all(&server, "rdyn", &bodies(10, "m")).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(sub.message().await);
    }
    sub.expect_quiet().await;
    let client = &server.channel_stats("rdyn", "ch").await["clients"][0];
    assert_eq!(client["in_flight_count"], 3, "{client}");
    assert_eq!(client["ready_count"], 3, "{client}");
    // Each FIN frees exactly one slot.
    let mut seen: Vec<Bytes> = held.iter().map(|m| m.body.clone()).collect();
    let mut held: std::collections::VecDeque<Msg> = held.into();
    while let Some(done) = held.pop_front() {
        sub.fin(&done).await;
        if seen.len() < 10 {
            let next = sub.message().await;
            seen.push(next.body.clone());
            held.push_back(next);
        }
        sub.expect_quiet_for(Duration::from_millis(50)).await;
    }
    let expected: Vec<Bytes> = bodies(10, "m").into_iter().map(Bytes::from).collect();
    assert_eq!(seen, expected, "delivered in order, each once");
    server.stop().await;
}

#[tokio::test]
async fn lowering_rdy_stops_delivery_beyond_the_new_count() {
    let server = start().await;
    let mut sub = server.subscriber("rdylow", "ch", 2).await;
    publish_all(&server, "rdylow", &bodies(5, "m")).await;
    let a = sub.message().await;
    let b = sub.message().await;
    sub.rdy(1).await;
    sub.fin(&a).await;
    sub.expect_quiet().await;
    sub.fin(&b).await;
    let c = sub.message().await;
    assert_eq!(&c.body[..], b"m-2");
    sub.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn unfinished_message_times_out_and_comes_back_with_attempts_2() {
    let server = start_with(fast_options()).await;
    let mut sub = server.subscriber("timeout", "ch", 1).await;
    server.publish("timeout", &[b"slow"]).await;
    let first = sub.message().await;
    let delivered = Instant::now();
    assert_eq!(first.attempts, 1);
    let again = sub.message().await;
    let waited = delivered.elapsed();
    assert!(
        waited >= MSG_TIMEOUT - Duration::from_millis(50),
        "redelivered after {waited:?}, before the {MSG_TIMEOUT:?} timeout"
    );
    assert_eq!(again.id, first.id);
    assert_eq!(again.attempts, 2);
    assert_eq!(again.timestamp_ns, first.timestamp_ns, "same message");
    assert_eq!(&again.body[..], b"slow");
    let channel = server.channel_stats("timeout", "ch").await;
    assert_eq!(channel["timeout_count"], 1, "{channel}");
    assert_eq!(channel["in_flight_count"], 1, "{channel}");
    let client = &channel["clients"][0];
    assert_eq!(client["in_flight_count"], 1, "{client}");
    assert_eq!(client["message_count"], 2, "{client}");
    sub.fin(&again).await;
    sub.expect_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn req_0_redelivers_at_once_with_attempts_plus_1() {
    let server = start().await;
    let mut sub = server.subscriber("req0", "ch", 1).await;
    server.publish("req0", &[b"again"]).await;
    let first = sub.message().await;
    sub.send(format!("REQ {} 0\n", first.id_text()).as_bytes())
        .await;
    let again = sub.message_within(Duration::from_millis(500)).await;
    assert_eq!((again.id, again.attempts), (first.id, 2));
    sub.send(format!("REQ {} 0\n", again.id_text()).as_bytes())
        .await;
    let third = sub.message_within(Duration::from_millis(500)).await;
    assert_eq!((third.id, third.attempts), (first.id, 3));
    let channel = server.channel_stats("req0", "ch").await;
    assert_eq!(channel["requeue_count"], 2, "{channel}");
    assert_eq!(channel["clients"][0]["requeue_count"], 2, "{channel}");
    assert_eq!(channel["timeout_count"], 0, "{channel}");
    server.stop().await;
}

#[tokio::test]
async fn req_with_delay_is_not_delivered_before_the_delay() {
    let server = start_with(fast_options()).await;
    let mut sub = server.subscriber("reqdelay", "ch", 1).await;
    server.publish("reqdelay", &[b"later"]).await;
    let first = sub.message().await;
    sub.send(format!("REQ {} 500\n", first.id_text()).as_bytes())
        .await;
    let requeued = Instant::now();
    sub.expect_quiet_for(Duration::from_millis(400)).await;
    let channel = server.channel_stats("reqdelay", "ch").await;
    assert_eq!(channel["deferred_count"], 1, "{channel}");
    let again = sub.message().await;
    let waited = requeued.elapsed();
    assert!(
        waited >= Duration::from_millis(480),
        "came back after {waited:?}"
    );
    assert_eq!((again.id, again.attempts), (first.id, 2));
    server.stop().await;
}

#[tokio::test]
async fn touch_extends_the_deadline() {
    let server = start_with(fast_options()).await;
    let mut sub = server.subscriber("touch", "ch", 1).await;
    server.publish("touch", &[b"slow"]).await;
    let msg = sub.message().await;
    // Touch every 100 ms for 600 ms: twice the 300 ms timeout, and nothing comes back.
    for _ in 0..6 {
        sub.expect_quiet_for(Duration::from_millis(100)).await;
        sub.command(Command::Touch { id: msg.id }).await;
    }
    let channel = server.channel_stats("touch", "ch").await;
    assert_eq!(channel["timeout_count"], 0, "{channel}");
    assert_eq!(channel["in_flight_count"], 1, "{channel}");
    // Untouched, it times out as usual.
    let again = sub.message().await;
    assert_eq!((again.id, again.attempts), (msg.id, 2));
    let channel = server.channel_stats("touch", "ch").await;
    assert_eq!(channel["timeout_count"], 1, "{channel}");
    server.stop().await;
}

#[tokio::test]
async fn dpub_is_not_delivered_before_its_defer() {
    let server = start_with(fast_options()).await;
    let mut sub = server.subscriber("dpub", "ch", 1).await;
    let mut producer = server.conn().await;
    producer.send(b"DPUB dpub 500\n\x00\x00\x00\x05later").await;
    producer.expect_ok().await;
    let published = Instant::now();
    sub.expect_quiet_for(Duration::from_millis(400)).await;
    let channel = server.channel_stats("dpub", "ch").await;
    assert_eq!(channel["deferred_count"], 1, "{channel}");
    assert_eq!(channel["depth"], 0, "{channel}");
    let msg = sub.message().await;
    let waited = published.elapsed();
    assert!(
        waited >= Duration::from_millis(480),
        "came after {waited:?}"
    );
    assert_eq!((msg.attempts, &msg.body[..]), (1, &b"later"[..]));
    server.stop().await;
}

/// With `--mem-queue-size=0` a DPUB goes to disk (so it survives a crash) yet still
/// waits for its time once read back.
#[tokio::test]
async fn dpub_through_disk_still_waits_for_its_defer() {
    let server = start_with(Options {
        mem_queue_size: 0,
        ..fast_options()
    })
    .await;
    let mut sub = server.subscriber("dpub0", "ch", 1).await;
    let mut producer = server.conn().await;
    producer
        .send(b"DPUB dpub0 500\n\x00\x00\x00\x05later")
        .await;
    producer.expect_ok().await;
    let published = Instant::now();
    sub.expect_quiet_for(Duration::from_millis(400)).await;
    let channel = server.channel_stats("dpub0", "ch").await;
    assert_eq!(channel["deferred_count"], 1, "{channel}");
    let msg = sub.message().await;
    let waited = published.elapsed();
    assert!(
        waited >= Duration::from_millis(480),
        "came after {waited:?}"
    );
    assert_eq!((msg.attempts, &msg.body[..]), (1, &b"later"[..]));
    server.stop().await;
}

#[tokio::test]
async fn fin_of_another_clients_message_fails_without_closing() {
    let server = start().await;
    let mut owner = server.subscriber("msgs", "ch", 1).await;
    let mut other = server.subscriber("msgs", "ch", 0).await;
    server.publish("msgs", &[b"mine"]).await;
    let msg = owner.message().await;
    let id = msg.id_text();
    other.send(format!("FIN {id}\n").as_bytes()).await;
    let text = format!("E_FIN_FAILED FIN {id} failed client does not own message");
    let frame = other.expect_error(&text).await;
    assert_eq!(&frame.raw[..4], b"\x00\x00\x00H", "size 72");
    other.expect_usable("probe").await;
    other.send(format!("REQ {id} 0\n").as_bytes()).await;
    other
        .expect_error(&format!(
            "E_REQ_FAILED REQ {id} failed client does not own message"
        ))
        .await;
    other.send(format!("TOUCH {id}\n").as_bytes()).await;
    other
        .expect_error(&format!(
            "E_TOUCH_FAILED TOUCH {id} failed client does not own message"
        ))
        .await;
    other.expect_usable("probe").await;
    owner.fin(&msg).await;
    owner.expect_quiet().await;
    let channel = server.channel_stats("msgs", "ch").await;
    assert_eq!(channel["in_flight_count"], 0, "{channel}");
    server.stop().await;
}

#[tokio::test]
async fn cls_answers_close_wait_and_fin_is_still_accepted() {
    let server = start().await;
    let mut sub = server.subscriber("cls", "ch", 1).await;
    server.publish("cls", &[b"slow", b"next"]).await;
    let msg = sub.message().await;
    sub.send(b"CLS\n").await;
    sub.expect_raw(b"\x00\x00\x00\x0e\x00\x00\x00\x00CLOSE_WAIT")
        .await;
    sub.expect_quiet().await;
    sub.fin(&msg).await;
    // Nothing more is delivered in state closing, and RDY is ignored there.
    sub.expect_quiet().await;
    sub.rdy(5).await;
    sub.expect_quiet().await;
    sub.send(b"NOP\n").await;
    sub.expect_quiet().await;
    let channel = server.channel_stats("cls", "ch").await;
    assert_eq!(channel["in_flight_count"], 0, "{channel}");
    assert_eq!(channel["depth"], 1, "{channel}");
    let client = &channel["clients"][0];
    assert_eq!(client["state"], 4, "closing: {client}");
    assert_eq!(client["ready_count"], 0, "{client}");
    assert_eq!(client["finish_count"], 1, "{client}");
    server.stop().await;
}

#[tokio::test]
async fn heartbeats_arrive_each_interval_and_silence_closes_after_two() {
    let server = start().await;
    let mut conn = server.conn().await;
    let answer = conn.identify(r#"{"heartbeat_interval":1000}"#).await;
    assert_eq!(&answer.raw[..], OK_FRAME);
    let identified = Instant::now();
    let beat = conn.frame_within(Duration::from_millis(1500)).await;
    assert_eq!(
        &beat.raw[..],
        b"\x00\x00\x00\x0f\x00\x00\x00\x00_heartbeat_"
    );
    let first_at = identified.elapsed();
    assert!(
        first_at >= Duration::from_millis(900),
        "first heartbeat at {first_at:?}"
    );
    // The 2 s read deadline races the second heartbeat, as in Go: take it if it comes.
    loop {
        match conn.read(Duration::from_millis(1500)).await {
            Read::Frame(frame) => {
                assert_eq!(frame.kind, FrameType::Response);
                assert_eq!(&frame.data[..], b"_heartbeat_");
            }
            Read::Closed => break,
            Read::Timeout => panic!("still open {:?} after IDENTIFY", identified.elapsed()),
        }
    }
    let closed_at = identified.elapsed();
    assert!(
        (Duration::from_millis(1900)..Duration::from_millis(2600)).contains(&closed_at),
        "closed at {closed_at:?}, expected about 2 s"
    );
    server.stop().await;
}

#[tokio::test]
async fn answering_heartbeats_with_nop_keeps_the_connection() {
    let server = start().await;
    let mut conn = server.conn().await;
    let answer = conn.identify(r#"{"heartbeat_interval":1000}"#).await;
    assert_eq!(&answer.raw[..], OK_FRAME);
    let identified = Instant::now();
    for _ in 0..3 {
        conn.expect_response(b"_heartbeat_").await;
        conn.send(b"NOP\n").await;
    }
    assert!(identified.elapsed() >= Duration::from_millis(2800));
    conn.expect_usable("probe").await;
    server.stop().await;
}

#[tokio::test]
async fn ephemeral_channel_goes_with_its_last_client() {
    let server = start().await;
    let first = server.subscriber("eph", "ch#ephemeral", 0).await;
    let second = server.subscriber("eph", "ch#ephemeral", 0).await;
    let keeper = server.subscriber("eph", "durable", 0).await;
    let channel = server.channel_stats("eph", "ch#ephemeral").await;
    assert_eq!(channel["client_count"], 2, "{channel}");
    drop(first);
    server
        .wait_for_stats("one client left", |s| {
            find_named(
                &find_named(&s["topics"], "topic_name", "eph")["channels"],
                "channel_name",
                "ch#ephemeral",
            )["client_count"]
                == 1
        })
        .await;
    drop(second);
    server
        .wait_for_stats("the ephemeral channel to go", |s| {
            find_named(
                &find_named(&s["topics"], "topic_name", "eph")["channels"],
                "channel_name",
                "ch#ephemeral",
            )
            .is_null()
        })
        .await;
    drop(keeper);
    tokio::time::sleep(QUIET).await;
    let durable = server.channel_stats("eph", "durable").await;
    assert_eq!(
        durable["client_count"], 0,
        "a normal channel stays: {durable}"
    );
    server.stop().await;
}

#[tokio::test]
async fn ephemeral_topic_goes_with_its_last_channel() {
    let server = start().await;
    // An ephemeral topic with a normal channel stays when the client leaves.
    let sub = server.subscriber("keep#ephemeral", "ch", 0).await;
    drop(sub);
    tokio::time::sleep(QUIET).await;
    assert!(server
        .topic_names()
        .await
        .contains(&"keep#ephemeral".to_string()));

    let sub = server.subscriber("gone#ephemeral", "ch#ephemeral", 0).await;
    assert!(server
        .topic_names()
        .await
        .contains(&"gone#ephemeral".to_string()));
    drop(sub);
    server
        .wait_for_stats("the ephemeral topic to go", |s| {
            find_named(&s["topics"], "topic_name", "gone#ephemeral").is_null()
        })
        .await;
    // It comes back fresh when used again.
    let mut sub = server.subscriber("gone#ephemeral", "ch#ephemeral", 1).await;
    server.publish("gone#ephemeral", &[b"again"]).await;
    assert_eq!(&sub.message().await.body[..], b"again");
    server.stop().await;
}

#[tokio::test]
async fn every_channel_gets_every_message() {
    let server = start().await;
    let mut one = server.subscriber("fanout", "one", 100).await;
    let mut two = server.subscriber("fanout", "two", 100).await;
    let sent = bodies(20, "m");
    publish_all(&server, "fanout", &sent).await;
    let sent: Vec<Bytes> = sent.into_iter().map(Bytes::from).collect();
    let got_one: Vec<_> = one.drain_messages(QUIET, true).await;
    let got_two: Vec<_> = two.drain_messages(QUIET, true).await;
    let bodies_one: Vec<Bytes> = got_one.iter().map(|m| m.body.clone()).collect();
    let bodies_two: Vec<Bytes> = got_two.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies_one, sent);
    assert_eq!(bodies_two, sent);
    for (a, b) in got_one.iter().zip(&got_two) {
        assert_eq!(
            (a.id, a.timestamp_ns),
            (b.id, b.timestamp_ns),
            "same message in both"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn consumers_of_one_channel_share_its_messages_exactly_once() {
    let server = start().await;
    let one = server.subscriber("share", "ch", 1).await;
    let two = server.subscriber("share", "ch", 1).await;
    let sent = bodies(40, "m");
    let consume = |mut conn: Conn| {
        tokio::spawn(async move {
            let got = conn.drain_messages(Duration::from_millis(300), true).await;
            got.into_iter().map(|m| m.body).collect::<Vec<_>>()
        })
    };
    let (a, b) = (consume(one), consume(two));
    publish_all(&server, "share", &sent).await;
    let a = a.await.unwrap();
    let b = b.await.unwrap();
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both got some: {} and {}",
        a.len(),
        b.len()
    );
    let mut all: Vec<Bytes> = a.into_iter().chain(b).collect();
    assert_eq!(all.len(), sent.len(), "no duplicates, nothing lost");
    all.sort();
    let mut expected: Vec<Bytes> = sent.into_iter().map(Bytes::from).collect();
    expected.sort();
    assert_eq!(all, expected);
    server.stop().await;
}

#[tokio::test]
async fn sample_rate_50_delivers_about_half_and_consumes_the_rest() {
    let server = start().await;
    let mut sub = server.conn().await;
    let answer = sub.identify(r#"{"sample_rate":50}"#).await;
    assert_eq!(&answer.raw[..], OK_FRAME);
    sub.sub("sampled", "ch").await;
    sub.rdy(1000).await;
    publish_all(&server, "sampled", &bodies(400, "m")).await;
    let got = sub.drain_messages(Duration::from_millis(300), false).await;
    // A message is kept when rand[0,100) <= 50: p = 0.51, so 204 +/- 10 of 400.
    assert!(
        (140..=270).contains(&got.len()),
        "sample_rate 50 delivered {} of 400",
        got.len()
    );
    assert!(got.iter().all(|m| m.attempts == 1));
    let channel = server.channel_stats("sampled", "ch").await;
    assert_eq!(
        channel["depth"], 0,
        "sampled-out messages are consumed: {channel}"
    );
    assert_eq!(channel["in_flight_count"], got.len(), "{channel}");
    assert_eq!(channel["clients"][0]["sample_rate"], 50, "{channel}");
    server.stop().await;
}

/// Drains `topic`/`ch` and returns the bodies received (each FINished).
async fn receive_all(server: &Server, topic: &str) -> BTreeSet<Bytes> {
    let mut sub = server.subscriber(topic, "ch", 100).await;
    let got: Vec<Bytes> = sub
        .drain_messages(QUIET, true)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    let unique: BTreeSet<Bytes> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "no message twice");
    unique
}

#[tokio::test]
async fn a_topic_without_channels_overflows_to_disk_and_keeps_everything() {
    let server = start_with(Options {
        mem_queue_size: 5,
        ..golden_options()
    })
    .await;
    let mut producer = server.conn().await;
    for i in 0..10 {
        producer.publish("full", format!("m-{i}").as_bytes()).await;
    }
    producer
        .command(Command::Mpub {
            topic: "full".into(),
            bodies: (10..12).map(|i| Bytes::from(format!("m-{i}"))).collect(),
        })
        .await;
    producer.expect_ok().await;
    let topic = server.topic_stats("full").await;
    assert_eq!(topic["message_count"], 12, "{topic}");
    assert_eq!(topic["depth"], 12, "memory and disk: {topic}");
    assert_eq!(
        topic["backend_depth"], 7,
        "what memory could not hold: {topic}"
    );

    let expected: BTreeSet<Bytes> = bodies(12, "m").into_iter().map(Bytes::from).collect();
    assert_eq!(receive_all(&server, "full").await, expected);
    server.stop().await;
}

#[tokio::test]
async fn a_full_channel_overflows_to_disk_and_delivers_everything_once() {
    let server = start_with(Options {
        mem_queue_size: 5,
        ..golden_options()
    })
    .await;
    let mut sub = server.subscriber("full2", "ch", 0).await;
    let mut producer = server.conn().await;
    for i in 0..20 {
        producer.publish("full2", format!("m-{i}").as_bytes()).await;
    }
    let channel = server.channel_stats("full2", "ch").await;
    assert_eq!(channel["depth"], 20, "{channel}");
    assert_eq!(channel["backend_depth"], 15, "{channel}");
    sub.rdy(100).await;
    let got: BTreeSet<Bytes> = sub
        .drain_messages(QUIET, true)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    let expected: BTreeSet<Bytes> = bodies(20, "m").into_iter().map(Bytes::from).collect();
    assert_eq!(got, expected, "every accepted message is delivered once");
    server.stop().await;
}

#[tokio::test]
async fn mem_queue_size_zero_sends_everything_through_disk() {
    let server = start_with(Options {
        mem_queue_size: 0,
        ..golden_options()
    })
    .await;
    server.publish("disk", &[b"a", b"b", b"c"]).await;
    let topic = server.topic_stats("disk").await;
    assert_eq!(topic["backend_depth"], 3, "{topic}");
    let expected: BTreeSet<Bytes> = [b"a", b"b", b"c"]
        .iter()
        .map(|b| Bytes::from_static(*b))
        .collect();
    assert_eq!(receive_all(&server, "disk").await, expected);
    server.stop().await;
}
