//! Health (nsq-reference §4.8): a failed disk write makes `/ping` answer 500 with the
//! error, and `/stats` show it, until a write succeeds again.

use std::sync::Arc;

use nsq::env::{Env, MemFs};
use nsq::nsqd::Options;
use nsq::protocol::FrameType;

use crate::support::*;

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
