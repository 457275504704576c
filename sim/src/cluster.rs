//! The simulated cluster: the daemon hosts of a scenario as turmoil hosts running the
//! real `Nsqd` and `Lookupd` on their real options, each on a `MemFs` kept outside the
//! host, with the controls the fault injector needs (crash, graceful stop, restart).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nsq::env::MemFs;
use parking_lot::Mutex;

use crate::env::sim_env;
use crate::history::{Event, History};
use crate::scenario::{Host, HostKind, Scenario};

/// nsqd's TCP port inside the simulation (unless a scenario's opts change it).
pub const NSQD_TCP_PORT: u16 = 4150;
/// nsqd's HTTP port.
pub const NSQD_HTTP_PORT: u16 = 4151;
/// nsqlookupd's TCP port.
pub const LOOKUPD_TCP_PORT: u16 = 4160;
/// nsqlookupd's HTTP port.
pub const LOOKUPD_HTTP_PORT: u16 = 4161;

/// A daemon's options, built from a scenario host.
#[derive(Debug, Clone)]
pub enum DaemonOptions {
    /// An nsqd's.
    Nsqd(Box<nsq::nsqd::Options>),
    /// An nsqlookupd's.
    Lookupd(nsq::lookupd::Options),
}

/// The options a scenario host starts with: the simulation's addresses (the host's name
/// as broadcast address, the default ports), then the host's `opts` through the daemon's
/// own config-file parser, then its lookupds. `node_id` is the host's `index + 1` unless
/// its opts set one. Errors name the offending key.
pub fn daemon_options(host: &Host, index: usize) -> Result<DaemonOptions, String> {
    match host.kind {
        HostKind::Nsqd => {
            let mut options = nsq::nsqd::Options {
                id: i64::try_from(index + 1).unwrap_or(0),
                tcp_address: format!("0.0.0.0:{NSQD_TCP_PORT}"),
                http_address: format!("0.0.0.0:{NSQD_HTTP_PORT}"),
                https_address: String::new(),
                broadcast_address: host.name.clone(),
                ..nsq::nsqd::Options::default()
            };
            nsq::nsqd::cli::apply_table(&host.opts, &mut options).map_err(|e| e.to_string())?;
            options.nsqlookupd_tcp_addresses = host
                .lookupd
                .iter()
                .map(|l| format!("{l}:{LOOKUPD_TCP_PORT}"))
                .collect();
            nsq::nsqd::cli::startup_checks(&mut options).map_err(|e| e.to_string())?;
            Ok(DaemonOptions::Nsqd(Box::new(options)))
        }
        HostKind::Nsqlookupd => {
            let mut options = nsq::lookupd::Options {
                tcp_address: format!("0.0.0.0:{LOOKUPD_TCP_PORT}"),
                http_address: format!("0.0.0.0:{LOOKUPD_HTTP_PORT}"),
                broadcast_address: host.name.clone(),
                ..nsq::lookupd::Options::default()
            };
            nsq::lookupd::cli::apply_table(&host.opts, &mut options).map_err(|e| e.to_string())?;
            Ok(DaemonOptions::Lookupd(options))
        }
    }
}

/// What the runner and a host's software share: the disk that outlives the host and the
/// request to stop gracefully.
#[derive(Clone, Default)]
pub struct HostControl {
    /// The host's disk.
    pub fs: MemFs,
    stop_requested: Arc<AtomicBool>,
}

impl HostControl {
    /// Asks the daemon to run its graceful shutdown; the host's software then ends.
    pub fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
    }

    /// Clears a stop request before the host is started again.
    pub fn clear_stop(&self) {
        self.stop_requested.store(false, Ordering::SeqCst);
    }

    /// Resolves once a stop was requested; polls on simulated time.
    async fn stop_requested(&self) {
        while !self.stop_requested.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Registers every daemon host of `scenario` with `sim`; returns their controls by name.
pub fn add_daemons(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    seed: u64,
    history: &Arc<Mutex<History>>,
    buggify: &nsq::nsqd::Buggify,
) -> Result<BTreeMap<String, HostControl>, String> {
    let mut controls = BTreeMap::new();
    for (index, host) in scenario.hosts.iter().enumerate() {
        let mut options = daemon_options(host, index)?;
        if let DaemonOptions::Nsqd(nsqd) = &mut options {
            nsqd.buggify = *buggify;
        }
        let control = HostControl::default();
        let host_seed = seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let name = host.name.clone();
        let shared = control.clone();
        let history = history.clone();
        let restarts = Arc::new(std::sync::atomic::AtomicU64::new(0));
        sim.host(host.name.as_str(), move || {
            let options = options.clone();
            let control = shared.clone();
            let name = name.clone();
            let history = history.clone();
            // A fresh RNG stream per start, still fixed by the seed.
            let start = restarts.fetch_add(1, Ordering::SeqCst);
            let env = sim_env(control.fs.clone(), host_seed.wrapping_add(start));
            async move {
                match options {
                    DaemonOptions::Nsqd(options) => {
                        run_nsqd(*options, env, control, name, history).await
                    }
                    DaemonOptions::Lookupd(options) => {
                        run_lookupd(options, env, control, name, history).await
                    }
                }
            }
        });
        controls.insert(host.name.clone(), control);
    }
    Ok(controls)
}

async fn run_nsqd(
    options: nsq::nsqd::Options,
    env: nsq::env::Env,
    control: HostControl,
    name: String,
    history: Arc<Mutex<History>>,
) -> turmoil::Result {
    let nsqd = nsq::nsqd::Nsqd::new(options, env).await?;
    serve_until_stopped(nsqd.run(), nsqd.shutdown(), &control, name, &history).await
}

async fn run_lookupd(
    options: nsq::lookupd::Options,
    env: nsq::env::Env,
    control: HostControl,
    name: String,
    history: Arc<Mutex<History>>,
) -> turmoil::Result {
    let lookupd = nsq::lookupd::Lookupd::new(options, env).await?;
    serve_until_stopped(lookupd.run(), lookupd.shutdown(), &control, name, &history).await
}

/// Drives a daemon's `run` until a graceful stop is requested, then its `shutdown` (both
/// futures are lazy: `shutdown` starts only then), and records the stop.
async fn serve_until_stopped<E>(
    run: impl std::future::Future<Output = Result<(), E>>,
    shutdown: impl std::future::Future<Output = ()>,
    control: &HostControl,
    name: String,
    history: &Mutex<History>,
) -> turmoil::Result
where
    E: std::error::Error + Send + Sync + 'static,
{
    tokio::select! {
        biased;
        () = control.stop_requested() => {
            shutdown.await;
            history.lock().record(crate::now_micros(), Event::HostStopped { host: name });
            Ok(())
        }
        result = run => {
            result?;
            Ok(())
        }
    }
}
