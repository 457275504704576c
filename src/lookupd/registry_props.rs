//! Property tests of the registration DB against a model.
//!
//! Random sequences of what nsqlookupd does to its DB (an nsqd identifies, REGISTERs,
//! UNREGISTERs, PINGs or disconnects; the HTTP API creates, deletes and tombstones; time
//! passes) run against [`RegistrationDb`] and against a plain `BTreeMap` model written
//! from Go's `RegistrationDB` semantics (nsq-reference §5). After every step every
//! lookup the DB offers is compared with the model: the registrations by every pattern,
//! the producers of topics, channels and clients, what `/lookup` keeps after the
//! inactivity and tombstone filter, each peer's registrations, and the `/debug` snapshot.
//! The daemon-side sequences (REGISTER adds the channel then the topic; UNREGISTER drops
//! an emptied ephemeral key; a disconnect removes the peer everywhere; HTTP deletes)
//! follow `tcp.rs` and `http.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use super::registry::{filter_active, Category, PeerInfo, Registration, RegistrationDb};
use crate::protocol::is_ephemeral;
use crate::protocol::lookup::IdentifyBody;

const TOPICS: [&str; 3] = ["a", "b", "e#ephemeral"];
const CHANNELS: [&str; 3] = ["x", "y", "z#ephemeral"];
/// Peers 0 and 2 share a node (`broadcast_address:http_port`), so one tombstone hits both.
const PEERS: usize = 4;
const SECOND: i64 = 1_000_000_000;
const INACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const TOMBSTONE_LIFETIME: Duration = Duration::from_secs(45);

fn peer_id(peer: usize) -> String {
    format!("10.0.0.{peer}:4000")
}

fn node(peer: usize) -> String {
    format!("host{}:4151", peer % 2)
}

/// One thing nsqlookupd does to its DB.
#[derive(Debug, Clone)]
enum Op {
    Identify {
        peer: usize,
    },
    Register {
        peer: usize,
        topic: usize,
        channel: Option<usize>,
    },
    Unregister {
        peer: usize,
        topic: usize,
        channel: Option<usize>,
    },
    Ping {
        peer: usize,
    },
    Disconnect {
        peer: usize,
    },
    CreateTopic {
        topic: usize,
    },
    DeleteTopic {
        topic: usize,
    },
    CreateChannel {
        topic: usize,
        channel: usize,
    },
    DeleteChannel {
        topic: usize,
        channel: usize,
    },
    /// `/topic/tombstone?topic=T&node=N`, with N the node of `peer`.
    Tombstone {
        topic: usize,
        peer: usize,
    },
    Advance {
        seconds: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0..PEERS;
    let topic = 0..TOPICS.len();
    let channel = 0..CHANNELS.len();
    prop_oneof![
        3 => peer.clone().prop_map(|peer| Op::Identify { peer }),
        6 => (peer.clone(), topic.clone(), proptest::option::of(channel.clone()))
            .prop_map(|(peer, topic, channel)| Op::Register { peer, topic, channel }),
        3 => (peer.clone(), topic.clone(), proptest::option::of(channel.clone()))
            .prop_map(|(peer, topic, channel)| Op::Unregister { peer, topic, channel }),
        2 => peer.clone().prop_map(|peer| Op::Ping { peer }),
        1 => peer.clone().prop_map(|peer| Op::Disconnect { peer }),
        1 => topic.clone().prop_map(|topic| Op::CreateTopic { topic }),
        1 => topic.clone().prop_map(|topic| Op::DeleteTopic { topic }),
        1 => (topic.clone(), channel.clone())
            .prop_map(|(topic, channel)| Op::CreateChannel { topic, channel }),
        1 => (topic.clone(), channel).prop_map(|(topic, channel)| Op::DeleteChannel { topic, channel }),
        2 => (topic, peer).prop_map(|(topic, peer)| Op::Tombstone { topic, peer }),
        3 => prop_oneof![0..=60i64, 40..=50i64, 290..=310i64]
            .prop_map(|seconds| Op::Advance { seconds }),
    ]
}

/// One producer of one registration in the model.
#[derive(Debug, Clone, Default, PartialEq)]
struct ModelProducer {
    tombstoned_at: Option<i64>,
}

/// Go's `RegistrationDB` as plain maps, plus the connected peers' last update times.
#[derive(Debug, Default)]
struct Model {
    now: i64,
    registrations: BTreeMap<Registration, BTreeMap<String, ModelProducer>>,
    /// Identified peers: id -> last IDENTIFY or PING.
    peers: BTreeMap<String, i64>,
}

impl Model {
    /// Adds a producer; true when it was not there (an existing one keeps its tombstone).
    fn add(&mut self, key: Registration, id: &str) -> bool {
        let producers = self.registrations.entry(key).or_default();
        if producers.contains_key(id) {
            return false;
        }
        producers.insert(id.to_string(), ModelProducer::default());
        true
    }

    /// Removes a producer; (was it there, how many are left). The key stays.
    fn remove(&mut self, key: &Registration, id: &str) -> (bool, usize) {
        match self.registrations.get_mut(key) {
            None => (false, 0),
            Some(producers) => (producers.remove(id).is_some(), producers.len()),
        }
    }

    fn is_active(&self, id: &str) -> bool {
        self.peers
            .get(id)
            .is_some_and(|last| self.now - last <= INACTIVE_TIMEOUT.as_secs() as i64 * SECOND)
    }

    fn is_tombstoned(&self, producer: &ModelProducer) -> bool {
        producer
            .tombstoned_at
            .is_some_and(|at| self.now - at < TOMBSTONE_LIFETIME.as_secs() as i64 * SECOND)
    }
}

/// The DB under test with the peers' shared infos.
#[derive(Default)]
struct System {
    db: RegistrationDb,
    peers: BTreeMap<String, Arc<PeerInfo>>,
}

fn identify_body(peer: usize) -> IdentifyBody {
    IdentifyBody {
        broadcast_address: format!("host{}", peer % 2),
        hostname: format!("host{peer}"),
        tcp_port: 4150,
        http_port: 4151,
        version: "1.3.0".into(),
    }
}

/// Applies `op` to both sides, checking the answers the DB gives along the way.
fn apply(op: &Op, system: &mut System, model: &mut Model) -> Result<(), TestCaseError> {
    let now = model.now;
    let db = &system.db;
    match *op {
        Op::Identify { peer } => {
            let id = peer_id(peer);
            if system.peers.contains_key(&id) {
                return Ok(()); // IDENTIFY twice is refused before the DB.
            }
            let info = PeerInfo::new(id.clone(), identify_body(peer), now);
            prop_assert_eq!(
                db.add_producer(Registration::client(), &info),
                model.add(Registration::client(), &id)
            );
            system.peers.insert(id.clone(), info);
            model.peers.insert(id, now);
        }
        Op::Register {
            peer,
            topic,
            channel,
        } => {
            let id = peer_id(peer);
            let Some(info) = system.peers.get(&id) else {
                return Ok(());
            };
            if let Some(channel) = channel {
                let key = Registration::channel(TOPICS[topic], CHANNELS[channel]);
                prop_assert_eq!(db.add_producer(key.clone(), info), model.add(key, &id));
            }
            let key = Registration::topic(TOPICS[topic]);
            prop_assert_eq!(db.add_producer(key.clone(), info), model.add(key, &id));
        }
        Op::Unregister {
            peer,
            topic,
            channel,
        } => {
            let id = peer_id(peer);
            if !system.peers.contains_key(&id) {
                return Ok(());
            }
            let topic = TOPICS[topic];
            if let Some(channel) = channel {
                let key = Registration::channel(topic, CHANNELS[channel]);
                let answer = db.remove_producer(&key, &id);
                prop_assert_eq!(answer, model.remove(&key, &id));
                if answer.1 == 0 && is_ephemeral(CHANNELS[channel]) {
                    db.remove_registration(&key);
                    model.registrations.remove(&key);
                }
                return Ok(());
            }
            let channels: Vec<Registration> = model
                .registrations
                .keys()
                .filter(|r| r.category == Category::Channel && r.key == topic)
                .cloned()
                .collect();
            prop_assert_eq!(
                &db.find_registrations(Category::Channel, topic, "*"),
                &channels
            );
            for key in &channels {
                prop_assert_eq!(db.remove_producer(key, &id), model.remove(key, &id));
            }
            let key = Registration::topic(topic);
            let answer = db.remove_producer(&key, &id);
            prop_assert_eq!(answer, model.remove(&key, &id));
            if answer.1 == 0 && is_ephemeral(topic) {
                db.remove_registration(&key);
                model.registrations.remove(&key);
            }
        }
        Op::Ping { peer } => {
            let id = peer_id(peer);
            if let Some(info) = system.peers.get(&id) {
                info.touch(now);
                model.peers.insert(id, now);
            }
        }
        Op::Disconnect { peer } => {
            let id = peer_id(peer);
            if system.peers.remove(&id).is_none() {
                return Ok(());
            }
            model.peers.remove(&id);
            for key in db.lookup_registrations(&id) {
                prop_assert!(db.remove_producer(&key, &id).0);
            }
            for producers in model.registrations.values_mut() {
                producers.remove(&id);
            }
        }
        Op::CreateTopic { topic } => {
            let key = Registration::topic(TOPICS[topic]);
            db.add_registration(key.clone());
            model.registrations.entry(key).or_default();
        }
        Op::DeleteTopic { topic } => {
            let topic = TOPICS[topic];
            for key in db.find_registrations(Category::Channel, topic, "*") {
                db.remove_registration(&key);
            }
            for key in db.find_registrations(Category::Topic, topic, "") {
                db.remove_registration(&key);
            }
            model.registrations.retain(|r, _| {
                !(r.key == topic && matches!(r.category, Category::Channel | Category::Topic))
            });
        }
        Op::CreateChannel { topic, channel } => {
            let channel_key = Registration::channel(TOPICS[topic], CHANNELS[channel]);
            let topic_key = Registration::topic(TOPICS[topic]);
            db.add_registration(channel_key.clone());
            db.add_registration(topic_key.clone());
            model.registrations.entry(channel_key).or_default();
            model.registrations.entry(topic_key).or_default();
        }
        Op::DeleteChannel { topic, channel } => {
            let key = Registration::channel(TOPICS[topic], CHANNELS[channel]);
            let found = db.find_registrations(Category::Channel, TOPICS[topic], CHANNELS[channel]);
            prop_assert_eq!(found.is_empty(), !model.registrations.contains_key(&key));
            for key in found {
                db.remove_registration(&key);
            }
            model.registrations.remove(&key);
        }
        Op::Tombstone { topic, peer } => {
            let node = node(peer);
            db.tombstone(TOPICS[topic], &node, now);
            if let Some(producers) = model
                .registrations
                .get_mut(&Registration::topic(TOPICS[topic]))
            {
                for (id, producer) in producers.iter_mut() {
                    let index = (0..PEERS).find(|p| peer_id(*p) == *id);
                    if index.map(self::node).as_deref() == Some(node.as_str()) {
                        producer.tombstoned_at = Some(now);
                    }
                }
            }
        }
        Op::Advance { seconds } => model.now += seconds * SECOND,
    }
    Ok(())
}

/// A `/debug` entry: a registration and its producers' ids and tombstone times.
type Dump = (Registration, Vec<(String, Option<i64>)>);

fn ids(producers: &[super::registry::Producer]) -> Vec<String> {
    producers.iter().map(|p| p.peer.id.clone()).collect()
}

/// The model's producer ids of every registration matching, each once, sorted.
fn model_producers(model: &Model, matches: impl Fn(&Registration) -> bool) -> Vec<String> {
    let found: BTreeSet<&String> = model
        .registrations
        .iter()
        .filter(|(r, _)| matches(r))
        .flat_map(|(_, producers)| producers.keys())
        .collect();
    found.into_iter().cloned().collect()
}

fn model_keys(model: &Model, matches: impl Fn(&Registration) -> bool) -> Vec<Registration> {
    model
        .registrations
        .keys()
        .filter(|r| matches(r))
        .cloned()
        .collect()
}

/// Every lookup the DB offers agrees with the model.
fn check(system: &System, model: &Model) -> Result<(), TestCaseError> {
    let db = &system.db;
    let now = model.now;
    let is = |category: Category| move |r: &Registration| r.category == category;

    prop_assert_eq!(
        db.find_registrations(Category::Topic, "*", ""),
        model_keys(model, is(Category::Topic))
    );
    prop_assert_eq!(
        db.find_registrations(Category::Channel, "*", "*"),
        model_keys(model, is(Category::Channel))
    );
    prop_assert_eq!(
        db.find_registrations(Category::Client, "", ""),
        model_keys(model, is(Category::Client))
    );
    prop_assert_eq!(
        ids(&db.find_producers(Category::Client, "", "")),
        model_producers(model, is(Category::Client))
    );
    for topic in TOPICS {
        let of_topic =
            |category: Category| move |r: &Registration| r.category == category && r.key == topic;
        prop_assert_eq!(
            db.find_registrations(Category::Topic, topic, ""),
            model_keys(model, of_topic(Category::Topic))
        );
        prop_assert_eq!(
            db.find_registrations(Category::Channel, topic, "*"),
            model_keys(model, of_topic(Category::Channel))
        );
        let producers = db.find_producers(Category::Topic, topic, "");
        prop_assert_eq!(
            ids(&producers),
            model_producers(model, of_topic(Category::Topic))
        );
        prop_assert_eq!(
            ids(&db.find_producers(Category::Channel, topic, "*")),
            model_producers(model, of_topic(Category::Channel))
        );
        // `/lookup`: active and not tombstoned.
        let active = filter_active(producers, now, INACTIVE_TIMEOUT, TOMBSTONE_LIFETIME);
        let expected: Vec<String> = model
            .registrations
            .get(&Registration::topic(topic))
            .map(|producers| {
                producers
                    .iter()
                    .filter(|(id, p)| model.is_active(id) && !model.is_tombstoned(p))
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        prop_assert_eq!(
            ids(&active),
            expected,
            "active producers of {} at {}",
            topic,
            now
        );
        for channel in CHANNELS {
            let key = Registration::channel(topic, channel);
            prop_assert_eq!(
                ids(&db.find_producers(Category::Channel, topic, channel)),
                model_producers(model, |r| *r == key)
            );
        }
    }
    for channel in CHANNELS {
        prop_assert_eq!(
            db.find_registrations(Category::Channel, "*", channel),
            model_keys(model, |r| r.category == Category::Channel
                && r.sub_key == channel)
        );
    }
    for peer in 0..PEERS {
        let id = peer_id(peer);
        let expected: Vec<Registration> = model
            .registrations
            .iter()
            .filter(|(_, producers)| producers.contains_key(&id))
            .map(|(r, _)| r.clone())
            .collect();
        prop_assert_eq!(db.lookup_registrations(&id), expected);
    }
    // `/debug`: only registrations with producers, each with its producers and tombstones.
    let snapshot: Vec<Dump> = db
        .snapshot()
        .into_iter()
        .map(|(r, producers)| {
            let producers = producers
                .into_iter()
                .map(|p| (p.peer.id.clone(), p.tombstoned_at_ns))
                .collect();
            (r, producers)
        })
        .collect();
    let expected: Vec<Dump> = model
        .registrations
        .iter()
        .filter(|(_, producers)| !producers.is_empty())
        .map(|(r, producers)| {
            let producers = producers
                .iter()
                .map(|(id, p)| (id.clone(), p.tombstoned_at))
                .collect();
            (r.clone(), producers)
        })
        .collect();
    prop_assert_eq!(snapshot, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x006c_6f6f_6b75_7064),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_registry_agrees_with_a_model_of_gos_registration_db(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let mut system = System::default();
        let mut model = Model {
            now: 1_800_000_000 * SECOND,
            ..Model::default()
        };
        for op in &ops {
            apply(op, &mut system, &mut model)?;
            check(&system, &model)?;
        }
    }
}
