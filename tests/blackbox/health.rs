//! Health (nsq-reference §4.8): a failed disk write makes `/ping` answer 500 with the
//! error, and `/stats` show it, until a write succeeds again.
//!
//! With `--sync-every=1` every publish is written and synced before its answer, so the
//! publish itself fails, as in Go. Otherwise the disk queue gathers messages and writes
//! them at the next sync: the failure shows at the `--sync-timeout` tick (or on the
//! publish that fills the buffer), and the gathered messages are kept for the next try.

use std::sync::Arc;

use nsq::env::{Env, MemFs};
use nsq::nsqd::Options;
use nsq::protocol::FrameType;

use crate::support::*;

async fn start_on_memfs(fs: &MemFs, options: Options) -> Server {
    nsq::env::Fs::create_dir_all(fs, std::path::Path::new("data"))
        .await
        .expect("data dir");
    let env = Env {
        fs: Arc::new(fs.clone()),
        ..Env::real()
    };
    start_with_env(
        Options {
            data_path: "data".into(),
            ..options
        },
        env,
    )
    .await
}

#[tokio::test]
async fn a_failed_disk_write_makes_nsqd_unhealthy_until_one_succeeds() {
    let fs = MemFs::new();
    nsq::env::Fs::create_dir_all(&fs, std::path::Path::new("data"))
        .await
        .expect("data dir");
    let env = Env {
        fs: Arc::new(fs.clone()),
        ..Env::real()
    };
    let server = start_with_env(
        Options {
            mem_queue_size: 0,
            data_path: "data".into(),
            sync_every: 1,
            ..golden_options()
        },
        env,
    )
    .await;
    assert_eq!(server.http("GET", "/ping", None).await.text(), "OK");

    fs.set_fail_writes(true);
    let mut producer = server.conn().await;
    producer.send(b"PUB sick\n\x00\x00\x00\x01x").await;
    let frame = producer.frame().await;
    assert_eq!(frame.kind, FrameType::Error);
    assert!(
        frame.text().starts_with("E_PUB_FAILED PUB failed "),
        "{frame:?}"
    );
    let ping = server.http("GET", "/ping", None).await;
    assert_eq!(ping.status, 500);
    assert!(
        !ping.text().is_empty() && ping.text() != "OK",
        "{}",
        ping.text()
    );
    let stats = server.stats("format=json").await;
    assert_eq!(stats["health"], ping.text().as_str());

    fs.set_fail_writes(false);
    server.publish("sick", &[b"y"]).await;
    assert_eq!(server.http("GET", "/ping", None).await.text(), "OK");
    assert_eq!(server.stats("format=json").await["health"], "OK");
    server.stop().await;
}

#[tokio::test]
async fn a_failed_gathered_write_shows_at_the_sync_tick_and_loses_nothing() {
    let fs = MemFs::new();
    let server = start_on_memfs(
        &fs,
        Options {
            // One message fits in memory; the next goes to the disk queue's buffer.
            mem_queue_size: 1,
            sync_timeout: std::time::Duration::from_millis(50),
            ..golden_options()
        },
    )
    .await;
    fs.set_fail_writes(true);
    server.publish("gathered", &[b"in memory", b"kept"]).await;
    let mut unhealthy = false;
    for _ in 0..100 {
        if server.http("GET", "/ping", None).await.status == 500 {
            unhealthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(unhealthy, "the failed sync shows in /ping");
    fs.set_fail_writes(false);
    let mut healthy = false;
    for _ in 0..100 {
        if server.http("GET", "/ping", None).await.text() == "OK" {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(healthy, "the next sync works and clears it");
    let mut consumer = server.conn().await;
    consumer.send(b"SUB gathered c\nRDY 2\n").await;
    assert_eq!(consumer.frame().await.text(), "OK");
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let message = consumer.frame().await;
        assert_eq!(message.kind, FrameType::Message);
        bodies.push(message.data[26..].to_vec());
    }
    bodies.sort();
    assert_eq!(bodies, vec![b"in memory".to_vec(), b"kept".to_vec()]);
    server.stop().await;
}
