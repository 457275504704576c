//! The registration database (Go's `RegistrationDB`): which producers (nsqds) hold which
//! topics and channels.
//!
//! A registration is `(category, key, subkey)`: `client::` for every identified peer,
//! `topic:T:` and `channel:T:C`. Each maps to its producers by peer id (the peer's remote
//! address). As in Go, removing the last producer leaves the registration in place (only
//! the HTTP deletes and ephemeral unregistrations remove keys). Every map is a `BTreeMap`,
//! so every listing is in a deterministic (sorted) order; Go's is its random map order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

/// The kind of a registration. The order is the names' (`/debug` lists keys sorted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// `channel:T:C`: a channel of topic T.
    Channel,
    /// `client::`: an identified peer.
    Client,
    /// `topic:T:`: a topic.
    Topic,
}

impl Category {
    /// Go's category string.
    pub fn name(self) -> &'static str {
        match self {
            Category::Channel => "channel",
            Category::Client => "client",
            Category::Topic => "topic",
        }
    }
}

/// One registration key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Registration {
    /// Its kind.
    pub category: Category,
    /// The topic ("" for clients).
    pub key: String,
    /// The channel ("" for topics and clients).
    pub sub_key: String,
}

impl Registration {
    /// `client::`.
    pub fn client() -> Self {
        Registration {
            category: Category::Client,
            key: String::new(),
            sub_key: String::new(),
        }
    }

    /// `topic:T:`.
    pub fn topic(topic: &str) -> Self {
        Registration {
            category: Category::Topic,
            key: topic.to_string(),
            sub_key: String::new(),
        }
    }

    /// `channel:T:C`.
    pub fn channel(topic: &str, channel: &str) -> Self {
        Registration {
            category: Category::Channel,
            key: topic.to_string(),
            sub_key: channel.to_string(),
        }
    }

    /// `/debug`'s key, `category:key:subkey`.
    pub fn debug_key(&self) -> String {
        format!("{}:{}:{}", self.category.name(), self.key, self.sub_key)
    }

    /// Go's `IsMatch`: `*` matches any key or subkey.
    fn matches(&self, category: Category, key: &str, sub_key: &str) -> bool {
        self.category == category
            && (key == "*" || self.key == key)
            && (sub_key == "*" || self.sub_key == sub_key)
    }
}

/// What one identified peer said about itself; shared by every registration it holds, so
/// a PING refreshes them all.
#[derive(Debug, Serialize)]
pub struct PeerInfo {
    /// The peer id: its remote address.
    #[serde(skip)]
    pub id: String,
    /// The peer's remote address.
    pub remote_address: String,
    /// From IDENTIFY.
    pub hostname: String,
    /// From IDENTIFY.
    pub broadcast_address: String,
    /// From IDENTIFY.
    pub tcp_port: i64,
    /// From IDENTIFY.
    pub http_port: i64,
    /// From IDENTIFY.
    pub version: String,
    /// Wall time (ns) of the IDENTIFY or the last PING.
    #[serde(skip)]
    last_update_ns: AtomicI64,
}

impl PeerInfo {
    /// A peer identified at `now_ns`.
    pub fn new(
        id: String,
        body: crate::protocol::lookup::IdentifyBody,
        now_ns: i64,
    ) -> Arc<PeerInfo> {
        Arc::new(PeerInfo {
            remote_address: id.clone(),
            id,
            hostname: body.hostname,
            broadcast_address: body.broadcast_address,
            tcp_port: body.tcp_port,
            http_port: body.http_port,
            version: body.version,
            last_update_ns: AtomicI64::new(now_ns),
        })
    }

    /// Wall time (ns) the peer was last heard from.
    pub fn last_update_ns(&self) -> i64 {
        self.last_update_ns.load(Ordering::Relaxed)
    }

    /// A PING: the peer is alive at `now_ns`.
    pub fn touch(&self, now_ns: i64) {
        self.last_update_ns.store(now_ns, Ordering::Relaxed);
    }

    /// Whether the peer was heard from within `timeout` of `now_ns`.
    pub fn is_active(&self, now_ns: i64, timeout: Duration) -> bool {
        now_ns.saturating_sub(self.last_update_ns()) <= duration_ns(timeout)
    }
}

/// One peer in one registration, with that registration's tombstone.
#[derive(Debug, Clone)]
pub struct Producer {
    /// The peer.
    pub peer: Arc<PeerInfo>,
    /// Set by `/topic/tombstone`; never cleared, only outlived.
    pub tombstoned_at_ns: Option<i64>,
}

impl Producer {
    /// Go's `IsTombstoned`: tombstoned less than `lifetime` ago.
    pub fn is_tombstoned(&self, now_ns: i64, lifetime: Duration) -> bool {
        self.tombstoned_at_ns
            .is_some_and(|at| now_ns.saturating_sub(at) < duration_ns(lifetime))
    }
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Producers by peer id.
pub type Producers = BTreeMap<String, Producer>;

/// The registrations and their producers.
#[derive(Debug, Default)]
pub struct RegistrationDb {
    map: Mutex<BTreeMap<Registration, Producers>>,
}

impl RegistrationDb {
    /// Adds a registration with no producers, if missing (HTTP create).
    pub fn add_registration(&self, key: Registration) {
        self.map.lock().entry(key).or_default();
    }

    /// Adds `peer` to `key` (creating it); false when it was already there.
    pub fn add_producer(&self, key: Registration, peer: &Arc<PeerInfo>) -> bool {
        let mut map = self.map.lock();
        let producers = map.entry(key).or_default();
        if producers.contains_key(&peer.id) {
            return false;
        }
        producers.insert(
            peer.id.clone(),
            Producer {
                peer: peer.clone(),
                tombstoned_at_ns: None,
            },
        );
        true
    }

    /// Removes peer `id` from `key`: whether it was there, and how many producers are left.
    /// The registration stays, even when empty (Go's behaviour).
    pub fn remove_producer(&self, key: &Registration, id: &str) -> (bool, usize) {
        let mut map = self.map.lock();
        match map.get_mut(key) {
            None => (false, 0),
            Some(producers) => {
                let removed = producers.remove(id).is_some();
                (removed, producers.len())
            }
        }
    }

    /// Removes a registration and all its producers.
    pub fn remove_registration(&self, key: &Registration) {
        self.map.lock().remove(key);
    }

    /// The registrations matching (`*` matches anything), sorted.
    pub fn find_registrations(
        &self,
        category: Category,
        key: &str,
        sub_key: &str,
    ) -> Vec<Registration> {
        self.map
            .lock()
            .keys()
            .filter(|r| r.matches(category, key, sub_key))
            .cloned()
            .collect()
    }

    /// The producers of every matching registration, each peer once (the first found).
    pub fn find_producers(&self, category: Category, key: &str, sub_key: &str) -> Vec<Producer> {
        let map = self.map.lock();
        let mut found: BTreeMap<&str, &Producer> = BTreeMap::new();
        for (registration, producers) in map.iter() {
            if registration.matches(category, key, sub_key) {
                for (id, producer) in producers {
                    found.entry(id.as_str()).or_insert(producer);
                }
            }
        }
        found.into_values().cloned().collect()
    }

    /// Every registration peer `id` is in.
    pub fn lookup_registrations(&self, id: &str) -> Vec<Registration> {
        self.map
            .lock()
            .iter()
            .filter(|(_, producers)| producers.contains_key(id))
            .map(|(registration, _)| registration.clone())
            .collect()
    }

    /// Tombstones, in topic `topic`, every producer whose `broadcast_address:http_port`
    /// is `node`.
    pub fn tombstone(&self, topic: &str, node: &str, now_ns: i64) {
        let mut map = self.map.lock();
        if let Some(producers) = map.get_mut(&Registration::topic(topic)) {
            for producer in producers.values_mut() {
                let peer = &producer.peer;
                if format!("{}:{}", peer.broadcast_address, peer.http_port) == node {
                    producer.tombstoned_at_ns = Some(now_ns);
                }
            }
        }
    }

    /// Every registration that has producers, with them (`/debug`).
    pub fn snapshot(&self) -> Vec<(Registration, Vec<Producer>)> {
        self.map
            .lock()
            .iter()
            .filter(|(_, producers)| !producers.is_empty())
            .map(|(r, producers)| (r.clone(), producers.values().cloned().collect()))
            .collect()
    }
}

/// Keeps the producers active at `now_ns` and not tombstoned (Go's `FilterByActive`).
pub fn filter_active(
    producers: Vec<Producer>,
    now_ns: i64,
    inactive_timeout: Duration,
    tombstone_lifetime: Duration,
) -> Vec<Producer> {
    producers
        .into_iter()
        .filter(|p| {
            p.peer.is_active(now_ns, inactive_timeout)
                && !p.is_tombstoned(now_ns, tombstone_lifetime)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::lookup::IdentifyBody;

    fn peer(id: &str, now_ns: i64) -> Arc<PeerInfo> {
        let body = IdentifyBody {
            broadcast_address: "h".into(),
            hostname: "h".into(),
            tcp_port: 1,
            http_port: 2,
            version: "1.3.0".into(),
        };
        PeerInfo::new(id.into(), body, now_ns)
    }

    #[test]
    fn add_find_and_remove_keep_keys_like_go() {
        let db = RegistrationDb::default();
        let a = peer("a:1", 0);
        let b = peer("b:1", 0);
        assert!(db.add_producer(Registration::topic("t"), &a));
        assert!(!db.add_producer(Registration::topic("t"), &a));
        assert!(db.add_producer(Registration::topic("t"), &b));
        assert!(db.add_producer(Registration::channel("t", "c"), &a));
        assert_eq!(db.find_producers(Category::Topic, "t", "").len(), 2);
        assert_eq!(
            db.find_registrations(Category::Channel, "t", "*"),
            vec![Registration::channel("t", "c")]
        );
        assert_eq!(db.lookup_registrations("a:1").len(), 2);
        assert_eq!(
            db.remove_producer(&Registration::topic("t"), "a:1"),
            (true, 1)
        );
        assert_eq!(
            db.remove_producer(&Registration::topic("t"), "a:1"),
            (false, 1)
        );
        assert_eq!(
            db.remove_producer(&Registration::topic("x"), "a:1"),
            (false, 0)
        );
        db.remove_producer(&Registration::channel("t", "c"), "a:1");
        assert_eq!(db.find_registrations(Category::Channel, "*", "*").len(), 1);
        assert_eq!(db.snapshot().len(), 1, "empty registrations are not shown");
    }

    #[test]
    fn tombstones_and_inactivity_filter() {
        let db = RegistrationDb::default();
        let a = peer("a:1", 0);
        db.add_producer(Registration::topic("t"), &a);
        db.tombstone("t", "h:2", 10);
        let all = db.find_producers(Category::Topic, "t", "");
        let lifetime = Duration::from_nanos(100);
        let timeout = Duration::from_nanos(1000);
        assert!(filter_active(all.clone(), 50, timeout, lifetime).is_empty());
        assert_eq!(filter_active(all.clone(), 110, timeout, lifetime).len(), 1);
        assert!(filter_active(all, 1001, timeout, lifetime).is_empty());
        a.touch(1000);
        let all = db.find_producers(Category::Topic, "t", "");
        assert_eq!(filter_active(all, 1500, timeout, lifetime).len(), 1);
    }
}
