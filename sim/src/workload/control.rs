//! The control host: runs the scenario's scheduled admin requests (topic tombstones) and,
//! at the end of the run, observes every daemon over HTTP (`/stats` of each nsqd;
//! `/nodes`, `/topics` and `/lookup` of each lookupd) into the history.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nsq::env::Net;
use nsq::http_client::{get_json, HttpTimeouts};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{sleep_until_ms, Phases};
use crate::cluster::{LOOKUPD_HTTP_PORT, NSQD_HTTP_PORT};
use crate::env::SimNet;
use crate::history::{ChannelDepths, Event, History};
use crate::now_micros;
use crate::scenario::TombstoneFault;

/// The largest answer read from a daemon.
const BODY_MAX: usize = 16 * 1024 * 1024;

const TIMEOUTS: HttpTimeouts = HttpTimeouts {
    connect: Duration::from_secs(1),
    request: Duration::from_secs(2),
};

/// Runs the control host: tombstones when they are due, then the observation.
pub async fn run(
    nsqds: Vec<String>,
    lookupds: Vec<String>,
    mut tombstones: Vec<TombstoneFault>,
    phases: Phases,
    history: Arc<Mutex<History>>,
) -> turmoil::Result {
    tombstones.sort_by_key(|t| t.at_ms);
    for tombstone in tombstones {
        sleep_until_ms(tombstone.at_ms).await;
        for lookupd in &tombstone.lookupds {
            let path = format!(
                "/topic/tombstone?topic={}&node={}:{NSQD_HTTP_PORT}",
                tombstone.topic, tombstone.nsqd
            );
            let status = post(&format!("{lookupd}:{LOOKUPD_HTTP_PORT}"), &path).await;
            history.lock().record(
                now_micros(),
                Event::Fault {
                    description: format!(
                        "tombstone {} of {} on {lookupd}: {}",
                        tombstone.topic,
                        tombstone.nsqd,
                        status.unwrap_or_else(|e| e.to_string())
                    ),
                },
            );
        }
    }
    sleep_until_ms(phases.observe_ms).await;
    for nsqd in &nsqds {
        if let Some(channels) = observe_nsqd(nsqd).await {
            history.lock().record(
                now_micros(),
                Event::NsqdObserved {
                    nsqd: nsqd.clone(),
                    channels,
                },
            );
        }
    }
    for lookupd in &lookupds {
        if let Some((nodes, topics)) = observe_lookupd(lookupd).await {
            history.lock().record(
                now_micros(),
                Event::LookupdObserved {
                    lookupd: lookupd.clone(),
                    nodes,
                    topics,
                },
            );
        }
    }
    std::future::pending::<()>().await;
    Ok(())
}

#[derive(Deserialize)]
struct Stats {
    topics: Vec<TopicStats>,
}

#[derive(Deserialize)]
struct TopicStats {
    topic_name: String,
    channels: Vec<ChannelStats>,
}

#[derive(Deserialize)]
struct ChannelStats {
    channel_name: String,
    depth: u64,
    in_flight_count: u64,
    deferred_count: u64,
}

async fn observe_nsqd(nsqd: &str) -> Option<BTreeMap<(String, String), ChannelDepths>> {
    let addr = format!("{nsqd}:{NSQD_HTTP_PORT}");
    let stats: Stats = get_json(&SimNet, &addr, "/stats?format=json", TIMEOUTS, BODY_MAX)
        .await
        .ok()?;
    let mut channels = BTreeMap::new();
    for topic in stats.topics {
        for channel in topic.channels {
            channels.insert(
                (topic.topic_name.clone(), channel.channel_name),
                ChannelDepths {
                    depth: channel.depth,
                    in_flight: channel.in_flight_count,
                    deferred: channel.deferred_count,
                },
            );
        }
    }
    Some(channels)
}

#[derive(Deserialize)]
struct Producers {
    #[serde(default)]
    producers: Option<Vec<ProducerInfo>>,
}

#[derive(Deserialize)]
struct ProducerInfo {
    broadcast_address: String,
}

#[derive(Deserialize)]
struct Topics {
    #[serde(default)]
    topics: Option<Vec<String>>,
}

type LookupdView = (Vec<String>, BTreeMap<String, Vec<String>>);

async fn observe_lookupd(lookupd: &str) -> Option<LookupdView> {
    let addr = format!("{lookupd}:{LOOKUPD_HTTP_PORT}");
    let nodes: Producers = get_json(&SimNet, &addr, "/nodes", TIMEOUTS, BODY_MAX)
        .await
        .ok()?;
    let topics: Topics = get_json(&SimNet, &addr, "/topics", TIMEOUTS, BODY_MAX)
        .await
        .ok()?;
    let mut listed = BTreeMap::new();
    for topic in topics.topics.unwrap_or_default() {
        let path = format!("/lookup?topic={topic}");
        let producers = match get_json::<Producers>(&SimNet, &addr, &path, TIMEOUTS, BODY_MAX).await
        {
            Ok(answer) => addresses(answer),
            Err(_) => Vec::new(),
        };
        listed.insert(topic, producers);
    }
    Some((addresses(nodes), listed))
}

fn addresses(answer: Producers) -> Vec<String> {
    let mut addresses: Vec<String> = answer
        .producers
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.broadcast_address)
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// `POST path` with an empty body; the status line's code and reason.
async fn post(addr: &str, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::time::timeout(TIMEOUTS.connect, SimNet.connect_tcp(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(TIMEOUTS.request, stream.read(&mut answer))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let text = String::from_utf8_lossy(&answer[..read]);
    Ok(text.lines().next().unwrap_or_default().to_string())
}
