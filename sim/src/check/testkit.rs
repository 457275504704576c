//! Hand-built histories for the checkers' unit tests: a script that stamps each event
//! with the current time in milliseconds, and a small cluster context.

use std::collections::BTreeMap;

use bytes::Bytes;
use nsq::protocol::message::MessageId;

use super::{check, CheckContext, Invariant, NsqdFacts, Violation};
use crate::history::{ChannelDepths, ConnId, Event, History, PublishId};

/// `nsqd1` and `nsqd2` (msg timeout 5 s, not crash durable, unreplicated), `lookupd1`,
/// 25 ms latency.
pub fn ctx() -> CheckContext {
    let facts = |name: &str| NsqdFacts {
        msg_timeout_ms: 5_000,
        crash_durable: false,
        broadcast_address: format!("{name}.addr"),
        lookupds: None,
        replication_factor: 1,
        node_id: if name == "nsqd1" { 1 } else { 2 },
    };
    CheckContext {
        nsqds: BTreeMap::from([
            ("nsqd1".to_string(), facts("nsqd1")),
            ("nsqd2".to_string(), facts("nsqd2")),
        ]),
        lookupds: vec!["lookupd1".to_string()],
        max_latency_ms: 25,
        unreliable_timing: Vec::new(),
    }
}

/// [`ctx`] with `nsqd1` and `nsqd2` replicating with `factor`.
pub fn replicated_ctx(factor: u32) -> CheckContext {
    let mut ctx = ctx();
    for facts in ctx.nsqds.values_mut() {
        facts.replication_factor = factor;
    }
    ctx
}

/// The id nsqd would give GUID `n`.
pub fn id(n: u64) -> MessageId {
    MessageId::from_u64(n)
}

/// Runs one checker.
pub fn run(invariant: Invariant, script: &Script, ctx: &CheckContext) -> Vec<Violation> {
    check(&[invariant], &script.history, ctx)
}

/// A history written event by event.
#[derive(Default)]
pub struct Script {
    pub history: History,
    now_us: u64,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock to `ms`.
    pub fn at(&mut self, ms: u64) -> &mut Self {
        self.now_us = ms * 1_000;
        self
    }

    fn push(&mut self, event: Event) -> &mut Self {
        self.history.record(self.now_us, event);
        self
    }

    pub fn connect(&mut self, conn: ConnId, nsqd: &str) -> &mut Self {
        self.push(Event::Connected {
            conn,
            workload: "w".into(),
            nsqd: nsqd.into(),
        })
    }

    pub fn sub(&mut self, conn: ConnId, topic: &str, channel: &str) -> &mut Self {
        self.push(Event::Subscribed {
            conn,
            topic: topic.into(),
            channel: channel.into(),
        })
    }

    /// A consumer on `conn` of `nsqd`'s `t`/`channel` with RDY `rdy`.
    pub fn consumer(&mut self, conn: ConnId, nsqd: &str, channel: &str, rdy: u64) -> &mut Self {
        self.connect(conn, nsqd)
            .sub(conn, "t", channel)
            .rdy(conn, rdy)
    }

    /// A publish of `bodies` to `nsqd`'s topic `t` on connection 100, answered `ok`.
    pub fn publish(
        &mut self,
        publish: PublishId,
        nsqd: &str,
        bodies: &[&str],
        ok: bool,
    ) -> &mut Self {
        self.publish_sent(publish, nsqd, "t", bodies, None)
            .answer(publish, ok)
    }

    pub fn publish_sent(
        &mut self,
        publish: PublishId,
        nsqd: &str,
        topic: &str,
        bodies: &[&str],
        defer_ms: Option<u64>,
    ) -> &mut Self {
        self.push(Event::PublishSent {
            publish,
            conn: 100,
            nsqd: nsqd.into(),
            topic: topic.into(),
            bodies: bodies.iter().map(|b| Bytes::from(b.to_string())).collect(),
            defer_ms,
        })
    }

    pub fn answer(&mut self, publish: PublishId, ok: bool) -> &mut Self {
        self.push(Event::PublishAnswered {
            publish,
            ok,
            error: (!ok).then(|| "E_PUB_FAILED".into()),
        })
    }

    pub fn rdy(&mut self, conn: ConnId, count: u64) -> &mut Self {
        self.push(Event::Ready { conn, count })
    }

    pub fn deliver(&mut self, conn: ConnId, n: u64, attempts: u16, body: &str) -> &mut Self {
        self.push(Event::Delivered {
            conn,
            id: id(n),
            attempts,
            body: Bytes::from(body.to_string()),
        })
    }

    pub fn fin(&mut self, conn: ConnId, n: u64) -> &mut Self {
        self.push(Event::Finished { conn, id: id(n) })
    }

    pub fn req(&mut self, conn: ConnId, n: u64, delay_ms: u64) -> &mut Self {
        self.push(Event::Requeued {
            conn,
            id: id(n),
            delay_ms,
        })
    }

    /// A marker TOUCH of id `n` on `conn`, and its `E_TOUCH_FAILED` answer if `answered`.
    pub fn marked(&mut self, conn: ConnId, n: u64, answered: bool) -> &mut Self {
        self.push(Event::Marked {
            conn,
            marker: id(n),
        });
        if answered {
            let text = format!("E_TOUCH_FAILED TOUCH {} failed ID not in flight", id(n));
            self.error(conn, &text);
        }
        self
    }

    pub fn error(&mut self, conn: ConnId, text: &str) -> &mut Self {
        self.push(Event::ServerError {
            conn,
            text: text.into(),
        })
    }

    pub fn close(&mut self, conn: ConnId, clean: bool) -> &mut Self {
        self.push(Event::Closed { conn, clean })
    }

    /// A fault from the schedule, as the runner notes it.
    pub fn fault(&mut self, description: &str) -> &mut Self {
        self.push(Event::Fault {
            description: description.into(),
        })
    }

    pub fn crash(&mut self, host: &str) -> &mut Self {
        self.push(Event::HostCrashed { host: host.into() })
    }

    /// A crash of `host` and the loss of its disk, as the `lose` fault records them.
    pub fn lose(&mut self, host: &str) -> &mut Self {
        self.crash(host);
        self.push(Event::HostLost { host: host.into() })
    }

    pub fn stop(&mut self, host: &str) -> &mut Self {
        self.push(Event::HostStopped { host: host.into() })
    }

    pub fn restart(&mut self, host: &str) -> &mut Self {
        self.push(Event::HostRestarted { host: host.into() })
    }

    /// `channels` as `(topic, channel, depth, in_flight, deferred)`.
    pub fn nsqd_seen(&mut self, nsqd: &str, channels: &[(&str, &str, u64, u64, u64)]) -> &mut Self {
        let channels = channels
            .iter()
            .map(|(t, c, depth, in_flight, deferred)| {
                let depths = ChannelDepths {
                    depth: *depth,
                    in_flight: *in_flight,
                    deferred: *deferred,
                };
                ((t.to_string(), c.to_string()), depths)
            })
            .collect();
        self.push(Event::NsqdObserved {
            nsqd: nsqd.into(),
            channels,
        })
    }

    pub fn lookupd_seen(
        &mut self,
        lookupd: &str,
        nodes: &[&str],
        topics: &[(&str, &[&str])],
    ) -> &mut Self {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        self.push(Event::LookupdObserved {
            lookupd: lookupd.into(),
            nodes: strings(nodes),
            topics: topics
                .iter()
                .map(|(t, n)| (t.to_string(), strings(n)))
                .collect(),
        })
    }
}
