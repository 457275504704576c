//! The client hosts of a simulation: producers and consumers as a scenario describes them,
//! and the control host that runs scheduled admin requests and observes the cluster at
//! the end. Each records what it sees in the shared [`History`](crate::history::History).

pub mod consumer;
pub mod control;
pub mod producer;

use crate::scenario::{Compression, Scenario};

/// The moments of a run every client acts on, in milliseconds of simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    /// Faults are repaired; consumers FIN everything from now on.
    pub heal_ms: u64,
    /// Producers stop.
    pub produce_until_ms: u64,
    /// Consumers send CLS and close.
    pub close_ms: u64,
    /// The control host reads `/stats` and the lookupds.
    pub observe_ms: u64,
    /// The run ends.
    pub end_ms: u64,
}

impl Phases {
    /// The phases of `scenario`: producers stop halfway through the settle time,
    /// consumers close a fifth of it before the end, the observation comes a tenth before.
    pub fn of(scenario: &Scenario) -> Phases {
        let end_ms = scenario.end_ms();
        let settle = scenario.settle_ms;
        Phases {
            heal_ms: scenario.heal_at_ms,
            produce_until_ms: scenario.heal_at_ms + settle / 2,
            close_ms: end_ms - (settle / 5).max(500),
            observe_ms: end_ms - (settle / 10).max(250),
            end_ms,
        }
    }
}

/// A deterministic RNG for one start of one client host.
pub(crate) fn client_rng(seed: u64, name: &str, start: u64) -> nsq::env::SeededRng {
    let mut mixed = seed ^ start.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for byte in name.bytes() {
        mixed = (mixed ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    nsq::env::SeededRng::new(mixed)
}

/// A number drawn uniformly from the inclusive range `[lo, hi]`.
pub fn draw(rng: &dyn nsq::env::Rng, range: [u64; 2]) -> u64 {
    range[0] + rng.below(range[1] - range[0] + 1)
}

/// True with probability `share`.
pub(crate) fn chance(rng: &dyn nsq::env::Rng, share: f64) -> bool {
    share > 0.0 && (rng.below(1_000_000) as f64) < share * 1_000_000.0
}

/// IDENTIFYs on `conn` with the workload's name, heartbeat interval and compression, and
/// switches to the compression nsqd turned on; an error if nsqd refused it.
pub(crate) async fn identify(
    conn: &mut nsq::client::Connection,
    name: &str,
    heartbeat_ms: u64,
    compression: Compression,
) -> Result<(), nsq::client::ClientError> {
    let body = serde_json::json!({
        "client_id": name,
        "hostname": name,
        "user_agent": "nsq-sim",
        "heartbeat_interval": heartbeat_ms,
        "feature_negotiation": true,
        "snappy": compression == Compression::Snappy,
        "deflate": compression == Compression::Deflate,
    });
    let negotiated = conn.identify_and_upgrade(body).await?;
    let got = match negotiated.compression {
        nsq::client::Compression::None => Compression::None,
        nsq::client::Compression::Snappy => Compression::Snappy,
        nsq::client::Compression::Deflate { .. } => Compression::Deflate,
    };
    if got != compression {
        return Err(nsq::client::ClientError::Negotiation(format!(
            "asked for {compression:?}, nsqd turned on {got:?}"
        )));
    }
    Ok(())
}

/// Sleeps until simulated time `ms`.
pub(crate) async fn sleep_until_ms(ms: u64) {
    let now = crate::now_micros() / 1000;
    if ms > now {
        tokio::time::sleep(std::time::Duration::from_millis(ms - now)).await;
    }
}
