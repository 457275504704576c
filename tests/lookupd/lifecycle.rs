//! Registrations over time: what REGISTER and UNREGISTER add and remove (ephemeral rules
//! included), disconnects, tombstones for their lifetime and inactivity. The lookupd's
//! wall clock is moved by hand, so lifetimes pass instantly.

use std::time::Duration;

use crate::support::{options, start, start_with};

#[tokio::test]
async fn register_and_unregister_show_in_every_listing() {
    let server = start().await;
    let mut a = server.producer("a", 4150, 4151).await;
    a.ok("REGISTER t\n").await;
    assert_eq!(server.topics().await, ["t"]);
    assert_eq!(server.lookup_nodes("t").await, ["a:4151"]);
    assert!(server.channels("t").await.is_empty());
    a.ok("REGISTER t c1\n").await;
    a.ok("REGISTER t c2\n").await;
    assert_eq!(server.channels("t").await, ["c1", "c2"]);
    assert_eq!(server.nodes().await, ["a:4151"]);

    a.ok("UNREGISTER t c1\n").await;
    // As in Go, a channel left without producers stays registered...
    assert_eq!(server.channels("t").await, ["c1", "c2"]);
    // ...and a topic unregistration takes the producer off every channel and the topic.
    a.ok("UNREGISTER t\n").await;
    assert!(server.lookup_nodes("t").await.is_empty());
    let debug = server.get_json("/debug").await;
    let keys: Vec<&String> = debug.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["client::"],
        "only the client registration holds a producer"
    );
    server.stop().await;
}

#[tokio::test]
async fn ephemeral_registrations_go_with_their_last_producer() {
    let server = start().await;
    let mut a = server.producer("a", 4150, 4151).await;
    let mut b = server.producer("b", 4150, 4151).await;
    a.ok("REGISTER t c#ephemeral\n").await;
    b.ok("REGISTER t c#ephemeral\n").await;
    a.ok("UNREGISTER t c#ephemeral\n").await;
    assert_eq!(
        server.channels("t").await,
        ["c#ephemeral"],
        "b still has it"
    );
    b.ok("UNREGISTER t c#ephemeral\n").await;
    assert!(server.channels("t").await.is_empty());

    a.ok("REGISTER e#ephemeral\n").await;
    assert_eq!(server.topics().await, ["e#ephemeral", "t"]);
    a.ok("UNREGISTER e#ephemeral\n").await;
    assert_eq!(server.topics().await, ["t"]);
    let lookup = server.http("GET", "/lookup?topic=e%23ephemeral").await;
    assert_eq!(lookup.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn a_disconnect_removes_only_that_producer() {
    let server = start().await;
    let mut a = server.producer("a", 4150, 4151).await;
    let mut b = server.producer("b", 4150, 4152).await;
    for conn in [&mut a, &mut b] {
        conn.ok("REGISTER t\n").await;
        conn.ok("REGISTER t c\n").await;
    }
    assert_eq!(server.lookup_nodes("t").await, ["a:4151", "b:4152"]);
    drop(a);
    let mut nodes = Vec::new();
    for _ in 0..100 {
        nodes = server.nodes().await;
        if nodes.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(nodes, ["b:4152"]);
    assert_eq!(server.lookup_nodes("t").await, ["b:4152"]);
    assert_eq!(server.channels("t").await, ["c"]);
    b.ok("PING\n").await;
    server.stop().await;
}

#[tokio::test]
async fn a_tombstone_hides_the_producer_for_its_lifetime_only() {
    let server = start_with(crate::support::Options {
        tombstone_lifetime: Duration::from_secs(10),
        ..options()
    })
    .await;
    let mut a = server.producer("a", 4150, 4151).await;
    let mut b = server.producer("b", 4150, 4152).await;
    a.ok("REGISTER t\n").await;
    a.ok("REGISTER other\n").await;
    b.ok("REGISTER t\n").await;
    server.post_ok("/topic/tombstone?topic=t&node=a:4151").await;
    assert_eq!(server.lookup_nodes("t").await, ["b:4152"]);
    assert_eq!(
        server.lookup_nodes("other").await,
        ["a:4151"],
        "one topic only"
    );
    // Still a node, flagged for the tombstoned topic.
    let nodes = server.get_json("/nodes").await;
    assert_eq!(
        nodes["producers"][0]["tombstones"],
        serde_json::json!([false, true])
    );
    assert_eq!(
        nodes["producers"][0]["topics"],
        serde_json::json!(["other", "t"])
    );

    server.advance(Duration::from_secs(9));
    a.ok("PING\n").await;
    b.ok("PING\n").await;
    assert_eq!(server.lookup_nodes("t").await, ["b:4152"]);
    server.advance(Duration::from_secs(1));
    assert_eq!(server.lookup_nodes("t").await, ["a:4151", "b:4152"]);
    let debug = server.get_json("/debug").await;
    assert_eq!(
        debug["topic:t:"][0]["tombstoned"], true,
        "Go never clears the flag"
    );

    // While tombstoned, the nsqd can still unregister (nsqadmin's clean delete).
    server.post_ok("/topic/tombstone?topic=t&node=a:4151").await;
    a.ok("UNREGISTER t\n").await;
    server.advance(Duration::from_secs(60));
    a.ok("PING\n").await;
    b.ok("PING\n").await;
    assert_eq!(server.lookup_nodes("t").await, ["b:4152"]);
    server.stop().await;
}

#[tokio::test]
async fn inactive_producers_drop_out_of_lookup_and_nodes_until_they_ping() {
    let server = start_with(crate::support::Options {
        inactive_producer_timeout: Duration::from_secs(30),
        ..options()
    })
    .await;
    let mut a = server.producer("a", 4150, 4151).await;
    let mut b = server.producer("b", 4150, 4152).await;
    a.ok("REGISTER t\n").await;
    b.ok("REGISTER t\n").await;
    server.advance(Duration::from_secs(20));
    b.ok("PING\n").await;
    server.advance(Duration::from_secs(11));
    assert_eq!(server.lookup_nodes("t").await, ["b:4152"]);
    assert_eq!(server.nodes().await, ["b:4152"]);
    // No activity filter on the listings.
    assert_eq!(server.topics().await, ["t"]);
    // REGISTER is not a sign of life in Go; PING is.
    a.ok("REGISTER t c\n").await;
    assert_eq!(server.nodes().await, ["b:4152"]);
    a.ok("PING\n").await;
    assert_eq!(server.lookup_nodes("t").await, ["a:4151", "b:4152"]);
    assert_eq!(server.nodes().await, ["a:4151", "b:4152"]);
    server.stop().await;
}

#[tokio::test]
async fn http_created_registrations_have_no_producers_until_registered() {
    let server = start().await;
    server.post_ok("/channel/create?topic=t&channel=c").await;
    assert!(server.lookup_nodes("t").await.is_empty());
    let mut a = server.producer("a", 4150, 4151).await;
    a.ok("REGISTER t c\n").await;
    assert_eq!(server.lookup_nodes("t").await, ["a:4151"]);
    server.post_ok("/topic/delete?topic=t").await;
    assert!(server.topics().await.is_empty());
    assert_eq!(server.http("GET", "/lookup?topic=t").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_connections() {
    let server = start().await;
    let mut a = server.producer("a", 4150, 4151).await;
    a.ok("REGISTER t\n").await;
    server.stop().await;
    a.expect_closed().await;
}
