//! nsqd's lookupd loop (nsq-reference §4.11): one [`peer::Peer`] per nsqlookupd address,
//! kept registered with every topic and channel of this nsqd.
//!
//! # Layout
//! - this file: the [`Registrations`] queue that topic and channel creation and deletion
//!   push to, and the single task that sends them, PINGs, and follows address changes.
//! - `peer`: one lookupd connection (lazy connect, IDENTIFY, re-sync, reconnect).
//! - `wire`: the V1 command and response bytes nsqd sends and reads.
//! - `channels`: the `/channels` query that pre-creates a new topic's channels (§4.1).

pub mod channels;
pub mod peer;
pub mod wire;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::NsqdInner;
use peer::{ConnectContext, Peer};
use wire::{IdentifyInfo, LookupCommand, PeerInfo};

/// The most registration changes waiting to be sent. Past it, changes are dropped and
/// every peer is reconnected instead: lookupd forgets a closed peer's registrations, and
/// the re-sync on reconnect tells it the truth.
const PENDING_CHANGES_MAX: usize = 16 * 1024;

/// The REGISTER and UNREGISTER commands waiting for the lookupd loop (Go's `notifyChan`),
/// in the order the changes happened: they are pushed under the lock that made them.
#[derive(Debug, Default)]
pub(crate) struct Registrations {
    pending: Mutex<VecDeque<LookupCommand>>,
    /// Set when a change was dropped because the queue was full.
    overflowed: AtomicBool,
    /// Off while metadata loads: the re-sync on connect covers what loading creates.
    active: AtomicBool,
    wake: Notify,
}

impl Registrations {
    /// Starts accepting changes (after metadata load).
    pub(crate) fn activate(&self) {
        self.active.store(true, Ordering::Release);
    }

    /// Queues `REGISTER topic [channel]`.
    pub(crate) fn register(&self, topic: &str, channel: Option<&str>) {
        self.push(LookupCommand::Register {
            topic: topic.to_string(),
            channel: channel.map(str::to_string),
        });
    }

    /// Queues `UNREGISTER topic [channel]`.
    pub(crate) fn unregister(&self, topic: &str, channel: Option<&str>) {
        self.push(LookupCommand::Unregister {
            topic: topic.to_string(),
            channel: channel.map(str::to_string),
        });
    }

    fn push(&self, command: LookupCommand) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        {
            let mut pending = self.pending.lock();
            if pending.len() >= PENDING_CHANGES_MAX {
                self.overflowed.store(true, Ordering::Release);
            } else {
                pending.push_back(command);
            }
        }
        self.wake.notify_one();
    }

    /// Everything queued, oldest first, and whether changes were dropped meanwhile.
    fn take(&self) -> (Vec<LookupCommand>, bool) {
        let commands = self.pending.lock().drain(..).collect();
        (commands, self.overflowed.swap(false, Ordering::AcqRel))
    }
}

/// What the rest of nsqd shares with the lookupd loop.
#[derive(Debug, Default)]
pub(crate) struct LookupShared {
    /// Changes to send (topics hold a clone to push channel changes).
    pub(crate) registrations: Arc<Registrations>,
    /// The IDENTIFY answer of each current peer that has one, in peer order.
    peer_infos: Mutex<Vec<PeerInfo>>,
}

impl LookupShared {
    /// Go's `lookupdHTTPAddrs`: `broadcast_address:http_port` of every peer that answered
    /// IDENTIFY with an address.
    pub(crate) fn http_addresses(&self) -> Vec<String> {
        self.peer_infos
            .lock()
            .iter()
            .filter_map(PeerInfo::http_address)
            .collect()
    }

    fn publish_infos(&self, peers: &[Peer]) {
        *self.peer_infos.lock() = peers.iter().filter_map(|p| p.info.clone()).collect();
    }
}

/// The lookupd loop (Go's `lookupLoop`): connects to every address, sends each queued
/// change to every peer in order, PINGs every `lookup_ping_interval`, and adds and removes
/// peers when `PUT /config/nsqlookupd_tcp_addresses` changes the list. Runs until exit,
/// when it sends nothing more (lookupd drops a closed peer's registrations itself).
pub(crate) async fn lookup_loop(nsqd: Arc<NsqdInner>) {
    let identify = identify_info(&nsqd);
    let resync = || resync_commands(&nsqd);
    let ctx = ConnectContext {
        net: &*nsqd.env.net,
        identify: &identify,
        max_body_size: nsqd.opts.max_body_size,
        resync: &resync,
    };
    let mut watcher = nsqd.runtime.watch_lookupd_addresses();
    let mut peers: Vec<Peer> = Vec::new();
    let interval = nsqd.opts.lookup_ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    // Go's ticker drops the ticks a slow round missed rather than bursting.
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let shared = &nsqd.lookup;
    let mut addresses_changed = true;
    loop {
        let work = async {
            if addresses_changed {
                let addresses = watcher.borrow_and_update().addresses.clone();
                update_peers(&ctx, &mut peers, &addresses).await;
                shared.publish_infos(&peers);
                addresses_changed = false;
            }
            // Changes are taken on every turn, so a wake-up that lost a race is harmless.
            let (commands, overflowed) = shared.registrations.take();
            if overflowed {
                tracing::warn!("LOOKUPD too many changes queued; reconnecting to re-sync");
                peers.iter_mut().for_each(Peer::close);
            }
            for command in &commands {
                send_to_all(&ctx, &mut peers, command).await;
            }
            tokio::select! {
                biased;
                changed = watcher.changed() => {
                    // The sender lives in `nsqd`, which outlives this task.
                    addresses_changed = changed.is_ok();
                }
                _ = shared.registrations.wake.notified() => {}
                _ = ping.tick() => {
                    send_to_all(&ctx, &mut peers, &LookupCommand::Ping).await;
                }
            }
            shared.publish_infos(&peers);
        };
        tokio::select! {
            biased;
            _ = nsqd.shutdown.cancelled() => break,
            _ = work => {}
        }
    }
    tracing::info!("LOOKUP: closing");
}

/// Removes the peers no longer listed, then adds and connects the new ones (Go keeps
/// a peer whose address stays, connection and all).
async fn update_peers(ctx: &ConnectContext<'_>, peers: &mut Vec<Peer>, addresses: &[String]) {
    peers.retain(|peer| {
        let keep = addresses.contains(&peer.addr);
        if !keep {
            tracing::info!(lookupd = %peer.addr, "LOOKUP removing peer");
        }
        keep
    });
    for addr in addresses {
        if addr.is_empty() || peers.iter().any(|p| &p.addr == addr) {
            continue;
        }
        tracing::info!(lookupd = %addr, "LOOKUP adding peer");
        let mut peer = Peer::new(addr.clone());
        if let Err(error) = peer.command(ctx, None).await {
            tracing::error!(lookupd = %addr, %error, "LOOKUPD connect failed");
        }
        peers.push(peer);
    }
}

async fn send_to_all(ctx: &ConnectContext<'_>, peers: &mut [Peer], command: &LookupCommand) {
    for peer in peers.iter_mut() {
        tracing::debug!(lookupd = %peer.addr, command = %command.describe(), "LOOKUPD sending");
        if let Err(error) = peer.command(ctx, Some(command)).await {
            tracing::error!(lookupd = %peer.addr, command = %command.describe(), %error, "LOOKUPD command failed");
        }
    }
}

/// What nsqd says about itself: Go's values (broadcast ports default to the real ones).
fn identify_info(nsqd: &NsqdInner) -> IdentifyInfo {
    let opts = &nsqd.opts;
    let real_http_port = nsqd.http_addr.map_or(0, |a| a.port());
    IdentifyInfo {
        broadcast_address: opts.broadcast_address.clone(),
        hostname: crate::env::os_hostname(),
        http_port: nonzero_or(opts.broadcast_http_port, real_http_port),
        tcp_port: nonzero_or(opts.broadcast_tcp_port, nsqd.tcp_addr.port()),
        version: super::options::VERSION.to_string(),
    }
}

fn nonzero_or(port: u16, real: u16) -> u16 {
    if port == 0 {
        real
    } else {
        port
    }
}

/// The full re-sync: `REGISTER topic` for a topic without channels, else `REGISTER topic
/// channel` for each of its channels (ephemeral ones too, as Go does).
fn resync_commands(nsqd: &NsqdInner) -> Vec<LookupCommand> {
    let mut commands = Vec::new();
    for topic in nsqd.topics() {
        let channels = topic.channels();
        if channels.is_empty() {
            commands.push(LookupCommand::Register {
                topic: topic.name.clone(),
                channel: None,
            });
        }
        for channel in channels {
            commands.push(LookupCommand::Register {
                topic: topic.name.clone(),
                channel: Some(channel.name.clone()),
            });
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_keep_order_and_wait_for_activation() {
        let queue = Registrations::default();
        queue.register("early", None);
        queue.activate();
        queue.register("t", None);
        queue.register("t", Some("c"));
        queue.unregister("t", Some("c"));
        queue.unregister("t", None);
        let (commands, overflowed) = queue.take();
        let lines: Vec<String> = commands.iter().map(LookupCommand::describe).collect();
        assert_eq!(
            lines,
            [
                "REGISTER t",
                "REGISTER t c",
                "UNREGISTER t c",
                "UNREGISTER t"
            ]
        );
        assert!(!overflowed);
    }

    #[test]
    fn a_full_queue_drops_changes_and_asks_for_a_resync() {
        let queue = Registrations::default();
        queue.activate();
        for _ in 0..PENDING_CHANGES_MAX + 3 {
            queue.register("t", None);
        }
        let (commands, overflowed) = queue.take();
        assert_eq!(commands.len(), PENDING_CHANGES_MAX);
        assert!(overflowed);
        assert!(!queue.take().1, "the flag is cleared once seen");
    }
}
