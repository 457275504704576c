//! Property tests of one nsqd's delivery guarantees.
//!
//! proptest draws a short sequence of client operations (PUB, MPUB, DPUB, SUB, RDY,
//! FIN, REQ, TOUCH, sleeps, abrupt consumer disconnects, graceful nsqd restarts). A
//! driver runs it against an unmodified `Nsqd` inside a turmoil simulation, so time is
//! simulated and a case replays exactly from its seed. Every consumer connection has
//! its own task that reads all the time and records what arrives, with the simulated
//! time, into a shared history. At the end every channel is drained (FIN everything
//! until nothing arrives for longer than any delay or timeout) and the history is
//! checked against what the client side knows:
//!
//! - every acknowledged publish reached every channel that existed when it was sent;
//! - nothing arrives that was not published: one body per id, one id per body, on the
//!   topic it was published to;
//! - the attempts of an id on a channel strictly increase;
//! - a FINished message (no `E_FIN_FAILED` for it) never comes back. A FIN or REQ sent
//!   less than a network hop before the client dropped its connection does not count:
//!   dropping a socket with unread data resets it (RFC 9293 §3.10.4, as turmoil does),
//!   and the reset may overtake the command;
//! - DPUB and REQ delays are never cut short, not even by a graceful restart in between
//!   (nsqd writes deferred messages to disk at exit, as Go does, and keeps their due
//!   times in its own journal, which Go would not);
//! - the live unacknowledged messages on a connection never exceed its RDY;
//! - FIN, REQ and TOUCH of a message well inside its timeout never fail.
//!
//! The run is deterministic: proptest's RNG has a fixed seed and no failure file is
//! written. `NSQ_SIM_PROPTEST_CASES` and `NSQ_SIM_PROPTEST_SEED` widen a local run;
//! `NSQ_SIM_PROPTEST_VERBOSE` prints one line per case (with `--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use nsq::client::{ClientError, Consumer, Frame, Producer};
use nsq::env::MemFs;
use nsq::nsqd::{Nsqd, Options};
use nsq::protocol::message::{Message, MessageId};
use nsq_sim::env::{sim_env, SimNet};
use parking_lot::Mutex;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use tokio::sync::{mpsc, oneshot, watch};

/// nsqd's `--msg-timeout`, short so timeouts happen inside a case.
const MSG_TIMEOUT: Duration = Duration::from_secs(2);
/// A message the client received this long before its timeout is no longer counted as
/// in flight, nor acknowledged: nsqd may have started its clock up to one output buffer
/// timeout (250 ms) plus a network hop earlier than the client saw it.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(400);
/// A RDY value still bounds deliveries this long after the client replaced it: messages
/// nsqd chose under it may still be buffered or on the wire.
const RDY_WINDOW: Duration = Duration::from_millis(400);
/// A command is surely processed by nsqd this long after it was sent: latency is at
/// most 20 ms.
const COMMAND_TRANSIT: Duration = Duration::from_millis(100);
/// The longest DPUB defer and REQ delay drawn.
const MAX_DEFER_MS: u64 = 1_500;
const MAX_REQ_MS: u64 = 1_000;
/// The drain ends after this long without a delivery: longer than a message timeout
/// plus the longest delay plus the queue scan's refresh interval.
const QUIET: Duration = Duration::from_secs(4);
/// The drain gives up (and the check reports what is missing) after this long.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// At most this many consumer connections are open at once.
const MAX_CONSUMERS: usize = 3;
/// RDY of every consumer while draining.
const DRAIN_RDY: i64 = 20;
const TOPICS: [&str; 2] = ["t0", "t1"];
const CHANNELS: [&str; 2] = ["c0", "c1"];

// ---------------------------------------------------------------------------------------
// Operations

/// What a consumer does with one of its live messages.
#[derive(Debug, Clone)]
enum AckKind {
    Finish,
    Requeue { delay_ms: u64 },
    Touch,
}

/// One generated client operation. Consumer and message indexes are taken modulo what
/// exists when the operation runs; an operation with nothing to act on does nothing.
#[derive(Debug, Clone)]
enum Op {
    /// PUB (one body) or MPUB (several) to a topic.
    Publish {
        topic: usize,
        count: usize,
    },
    /// DPUB of one body.
    DeferredPublish {
        topic: usize,
        defer_ms: u64,
    },
    /// A new consumer connection subscribes, then sends RDY `rdy` (unless 0).
    Subscribe {
        topic: usize,
        channel: usize,
        rdy: i64,
    },
    Ready {
        consumer: usize,
        count: i64,
    },
    Ack {
        consumer: usize,
        message: usize,
        kind: AckKind,
    },
    Sleep {
        ms: u64,
    },
    /// The consumer drops its connection, messages in flight and all.
    Disconnect {
        consumer: usize,
    },
    /// `Nsqd::shutdown`, then a new `Nsqd` on the same `MemFs`.
    Restart,
}

/// One generated case: the simulation seed, nsqd's memory queue size and the operations.
#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    mem_queue_size: i64,
    ops: Vec<Op>,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let topic = 0..TOPICS.len();
    let ack = prop_oneof![
        3 => Just(AckKind::Finish),
        2 => (0..=MAX_REQ_MS).prop_map(|delay_ms| AckKind::Requeue { delay_ms }),
        1 => Just(AckKind::Touch),
    ];
    prop_oneof![
        4 => (topic.clone(), 1..=4usize).prop_map(|(topic, count)| Op::Publish { topic, count }),
        2 => (topic.clone(), 0..=MAX_DEFER_MS)
            .prop_map(|(topic, defer_ms)| Op::DeferredPublish { topic, defer_ms }),
        2 => subscribe_strategy(0..=4),
        2 => (0..8usize, 0..=5i64).prop_map(|(consumer, count)| Op::Ready { consumer, count }),
        10 => (0..8usize, 0..8usize, ack)
            .prop_map(|(consumer, message, kind)| Op::Ack { consumer, message, kind }),
        4 => prop_oneof![3 => 1..=300u64, 1 => 300..=1_500u64].prop_map(|ms| Op::Sleep { ms }),
        1 => (0..8usize).prop_map(|consumer| Op::Disconnect { consumer }),
        1 => Just(Op::Restart),
    ]
}

fn subscribe_strategy(rdy: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = Op> {
    (0..TOPICS.len(), 0..CHANNELS.len(), rdy).prop_map(|(topic, channel, rdy)| Op::Subscribe {
        topic,
        channel,
        rdy,
    })
}

/// A few subscriptions with RDY first, so that most operations have something to act on.
fn case_strategy() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        prop_oneof![3 => Just(10_000i64), 1 => Just(0i64), 1 => Just(2i64)],
        proptest::collection::vec(subscribe_strategy(1..=4), 1..=3),
        proptest::collection::vec(op_strategy(), 1..36),
    )
        .prop_map(|(seed, mem_queue_size, mut ops, more)| {
            ops.extend(more);
            Case {
                seed,
                mem_queue_size,
                ops,
            }
        })
}

// ---------------------------------------------------------------------------------------
// History

/// A topic and channel, by name.
type ChannelKey = (String, String);

/// One publish as the producer saw it.
#[derive(Debug, Clone)]
struct Publish {
    topic: String,
    body: Bytes,
    /// The channels of the topic whose SUB had been answered before the publish was sent.
    channels: Vec<String>,
    sent: Duration,
    defer: Duration,
    /// nsqd answered OK.
    acked: bool,
}

/// One client-visible event on a consumer connection (`conn` indexes `History::conns`).
#[derive(Debug, Clone)]
enum Event {
    Delivery {
        conn: usize,
        message: Message,
        at: Duration,
    },
    Ready {
        conn: usize,
        count: i64,
        at: Duration,
    },
    Finish {
        conn: usize,
        id: MessageId,
        at: Duration,
    },
    Requeue {
        conn: usize,
        id: MessageId,
        delay: Duration,
        at: Duration,
    },
    Touch {
        conn: usize,
        id: MessageId,
        at: Duration,
    },
    /// A non-fatal `E_FIN_FAILED`, `E_REQ_FAILED` or `E_TOUCH_FAILED` naming `id`.
    Failed {
        conn: usize,
        code: String,
        id: String,
    },
    /// Any other error frame.
    ServerError { conn: usize, text: String },
    /// The client dropped the connection. With unread data in its socket that is an
    /// abortive close (a reset), which may overtake commands still on the wire.
    Disconnect { conn: usize, at: Duration },
    /// The graceful restart began. nsqd had processed every command sent before on the
    /// `synced` connections (the others had been dropped by the client).
    Restart { at: Duration, synced: Vec<usize> },
}

#[derive(Debug, Default)]
struct History {
    publishes: Vec<Publish>,
    events: Vec<Event>,
    /// The channel of every consumer connection ever opened.
    conns: Vec<ChannelKey>,
    last_delivery: Duration,
}

type Shared = Arc<Mutex<History>>;

/// Simulated time since the simulation started.
fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The simulation

/// Asks the nsqd host for graceful restarts and hears when one is done.
#[derive(Debug)]
struct RestartControl {
    /// The generation the driver wants running.
    requested: watch::Sender<u64>,
    /// The generation running.
    running: watch::Sender<u64>,
}

fn nsqd_options(mem_queue_size: i64) -> Options {
    Options {
        tcp_address: "0.0.0.0:4150".into(),
        http_address: String::new(),
        broadcast_address: "nsqd".into(),
        id: 1,
        msg_timeout: MSG_TIMEOUT,
        queue_scan_refresh_interval: Duration::from_secs(1),
        mem_queue_size,
        ..Options::default()
    }
}

/// Runs `case` and returns its history, or why the simulation itself failed.
fn simulate(case: &Case) -> Result<History, String> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(case.seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .simulation_duration(Duration::from_secs(600))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .build();
    let control = Arc::new(RestartControl {
        requested: watch::Sender::new(0),
        running: watch::Sender::new(0),
    });
    let fs = MemFs::new();
    let host_control = control.clone();
    let (seed, mem_queue_size) = (case.seed, case.mem_queue_size);
    sim.host("nsqd", move || {
        let fs = fs.clone();
        let control = host_control.clone();
        async move {
            let mut generation = 0u64;
            loop {
                let env = sim_env(fs.clone(), seed.wrapping_add(generation));
                let nsqd = Nsqd::new(nsqd_options(mem_queue_size), env).await?;
                let mut requested = control.requested.subscribe();
                control.running.send_replace(generation);
                tokio::select! {
                    biased;
                    _ = requested.wait_for(|wanted| *wanted > generation) => {}
                    result = nsqd.run() => return Ok(result?),
                }
                nsqd.shutdown().await;
                generation += 1;
            }
        }
    });
    let history: Shared = Arc::default();
    let driver = Driver {
        history: history.clone(),
        control,
        producer: None,
        consumers: Vec::new(),
        channels: BTreeSet::new(),
        next_body: 0,
        generation: 0,
    };
    let ops = case.ops.clone();
    sim.client("driver", async move {
        driver.run(ops).await?;
        Ok(())
    });
    sim.run().map_err(|error| error.to_string())?;
    let mut history = history.lock();
    Ok(std::mem::take(&mut *history))
}

/// Connects once nsqd listens (at start and after a restart).
async fn connect() -> Result<Consumer, ClientError> {
    let mut last_error = ClientError::Closed;
    for _ in 0..200 {
        match Consumer::connect(&SimNet, "nsqd:4150").await {
            Ok(consumer) => return Ok(consumer),
            Err(error) => last_error = error,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(last_error)
}

/// What the driver asks of a consumer task.
#[derive(Debug)]
enum Control {
    Ready(i64),
    Ack {
        message: usize,
        kind: AckKind,
    },
    /// Answer once nsqd has processed every command sent so far.
    Sync(oneshot::Sender<()>),
    /// FIN everything from now on, with a high RDY.
    Drain,
}

/// The driver's handle on a consumer task; dropping it disconnects abruptly.
struct ConsumerHandle {
    conn: usize,
    channel: (usize, usize),
    /// The last RDY asked for.
    rdy: i64,
    /// How many unacknowledged messages the task holds (expired ones included).
    holding: Arc<AtomicUsize>,
    control: mpsc::UnboundedSender<Control>,
}

struct Driver {
    history: Shared,
    control: Arc<RestartControl>,
    producer: Option<Producer>,
    consumers: Vec<ConsumerHandle>,
    /// The (topic, channel) pairs created so far (SUB answered).
    channels: BTreeSet<(usize, usize)>,
    next_body: u64,
    generation: u64,
}

impl Driver {
    async fn run(mut self, ops: Vec<Op>) -> Result<(), ClientError> {
        for op in ops {
            self.consumers.retain(|c| !c.control.is_closed());
            self.apply(op).await?;
        }
        self.drain().await
    }

    async fn apply(&mut self, op: Op) -> Result<(), ClientError> {
        match op {
            Op::Publish { topic, count } => self.publish(topic, count, 0).await,
            Op::DeferredPublish { topic, defer_ms } => self.publish(topic, 1, defer_ms).await,
            Op::Subscribe {
                topic,
                channel,
                rdy,
            } => {
                if self.consumers.len() < MAX_CONSUMERS {
                    self.subscribe(topic, channel, rdy).await?;
                }
                Ok(())
            }
            Op::Ready { consumer, count } => {
                if !self.consumers.is_empty() {
                    let index = consumer % self.consumers.len();
                    self.consumers[index].rdy = count;
                }
                self.tell(consumer, Control::Ready(count));
                Ok(())
            }
            Op::Ack {
                consumer,
                message,
                kind,
            } => {
                // Ask a consumer that holds something, so that most acks do something.
                let holders: Vec<&ConsumerHandle> = self
                    .consumers
                    .iter()
                    .filter(|c| c.holding.load(Ordering::Relaxed) > 0)
                    .collect();
                if !holders.is_empty() {
                    let handle = holders[consumer % holders.len()];
                    let _ = handle.control.send(Control::Ack { message, kind });
                }
                Ok(())
            }
            Op::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Op::Disconnect { consumer } => {
                if !self.consumers.is_empty() {
                    let index = consumer % self.consumers.len();
                    self.consumers.remove(index);
                }
                Ok(())
            }
            Op::Restart => self.restart().await,
        }
    }

    fn tell(&self, consumer: usize, control: Control) {
        if !self.consumers.is_empty() {
            let handle = &self.consumers[consumer % self.consumers.len()];
            let _ = handle.control.send(control);
        }
    }

    async fn publish(
        &mut self,
        topic: usize,
        count: usize,
        defer_ms: u64,
    ) -> Result<(), ClientError> {
        let topic_name = TOPICS[topic];
        let bodies: Vec<Bytes> = (0..count)
            .map(|_| {
                self.next_body += 1;
                Bytes::from(format!("{topic_name}/m{}", self.next_body))
            })
            .collect();
        let channels: Vec<String> = self
            .channels
            .iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, c)| CHANNELS[*c].to_string())
            .collect();
        let first = {
            let mut history = self.history.lock();
            let first = history.publishes.len();
            for body in &bodies {
                history.publishes.push(Publish {
                    topic: topic_name.to_string(),
                    body: body.clone(),
                    channels: channels.clone(),
                    sent: now(),
                    defer: Duration::from_millis(defer_ms),
                    acked: false,
                });
            }
            first
        };
        if self.producer.is_none() {
            self.producer = Some(Producer::from_connection(
                connect().await?.into_connection(),
            ));
        }
        let Some(producer) = self.producer.as_mut() else {
            return Ok(());
        };
        let result = if defer_ms > 0 {
            producer
                .deferred_publish(topic_name, defer_ms as i64, bodies[0].clone())
                .await
        } else if count == 1 {
            producer.publish(topic_name, bodies[0].clone()).await
        } else {
            producer.multi_publish(topic_name, &bodies).await
        };
        match result {
            Ok(()) => {
                let mut history = self.history.lock();
                for publish in &mut history.publishes[first..] {
                    publish.acked = true;
                }
            }
            // Not acknowledged, so not promised; a new connection next time.
            Err(_) => self.producer = None,
        }
        Ok(())
    }

    async fn subscribe(
        &mut self,
        topic: usize,
        channel: usize,
        rdy: i64,
    ) -> Result<(), ClientError> {
        let mut consumer = connect().await?;
        consumer.subscribe(TOPICS[topic], CHANNELS[channel]).await?;
        self.channels.insert((topic, channel));
        let conn = {
            let mut history = self.history.lock();
            history
                .conns
                .push((TOPICS[topic].to_string(), CHANNELS[channel].to_string()));
            history.conns.len() - 1
        };
        let (control, commands) = mpsc::unbounded_channel();
        let holding = Arc::new(AtomicUsize::new(0));
        tokio::spawn(consumer_task(
            conn,
            consumer,
            commands,
            self.history.clone(),
            holding.clone(),
        ));
        if rdy > 0 {
            let _ = control.send(Control::Ready(rdy));
        }
        self.consumers.push(ConsumerHandle {
            conn,
            channel: (topic, channel),
            rdy,
            holding,
            control,
        });
        Ok(())
    }

    /// Makes sure every consumer's earlier commands reached nsqd, restarts it and
    /// subscribes the consumers again.
    async fn restart(&mut self) -> Result<(), ClientError> {
        let synced = self.sync_consumers().await;
        self.history
            .lock()
            .events
            .push(Event::Restart { at: now(), synced });
        self.generation += 1;
        self.control.requested.send_replace(self.generation);
        let mut running = self.control.running.subscribe();
        let generation = self.generation;
        let _ = running.wait_for(|g| *g >= generation).await;
        // nsqd closed every connection; the consumers come back, as real ones would.
        self.producer = None;
        for consumer in std::mem::take(&mut self.consumers) {
            let (topic, channel) = consumer.channel;
            self.subscribe(topic, channel, consumer.rdy).await?;
        }
        Ok(())
    }

    /// The connections on which nsqd has processed every command sent so far.
    async fn sync_consumers(&self) -> Vec<usize> {
        let mut answers = Vec::new();
        for consumer in &self.consumers {
            let (tx, rx) = oneshot::channel();
            if consumer.control.send(Control::Sync(tx)).is_ok() {
                answers.push((consumer.conn, rx));
            }
        }
        let mut synced = Vec::new();
        for (conn, answer) in answers {
            if answer.await.is_ok() {
                synced.push(conn);
            }
        }
        synced
    }

    /// Every channel gets a consumer, every consumer FINs everything, until quiet.
    async fn drain(mut self) -> Result<(), ClientError> {
        self.consumers.retain(|c| !c.control.is_closed());
        let covered: BTreeSet<(usize, usize)> = self.consumers.iter().map(|c| c.channel).collect();
        let uncovered: Vec<(usize, usize)> = self.channels.difference(&covered).copied().collect();
        for (topic, channel) in uncovered {
            self.subscribe(topic, channel, 0).await?;
        }
        for consumer in &self.consumers {
            let _ = consumer.control.send(Control::Drain);
        }
        let start = now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let last = self.history.lock().last_delivery.max(start);
            if now() - last > QUIET || now() - start > DRAIN_LIMIT {
                break;
            }
        }
        Ok(())
    }
}

/// A message delivered to this connection and not yet acknowledged.
struct Live {
    id: MessageId,
    /// The client stops counting it (and acknowledging it) at this time.
    until: Duration,
}

/// Reads one consumer connection all the time, records what arrives and carries out
/// the driver's commands. Ends when the driver drops its handle or nsqd closes.
async fn consumer_task(
    conn: usize,
    mut consumer: Consumer,
    mut commands: mpsc::UnboundedReceiver<Control>,
    history: Shared,
    holding: Arc<AtomicUsize>,
) {
    let mut live: Vec<Live> = Vec::new();
    let mut draining = false;
    let mut next_marker = 0u64;
    let mut syncs: BTreeMap<String, oneshot::Sender<()>> = BTreeMap::new();
    let record = |event: Event| history.lock().events.push(event);
    loop {
        holding.store(live.len(), Ordering::Relaxed);
        tokio::select! {
            biased;
            command = commands.recv() => {
                let Some(command) = command else {
                    record(Event::Disconnect { conn, at: now() });
                    return;
                };
                let at = now();
                live.retain(|m| m.until > at);
                let sent = match command {
                    Control::Ready(count) => {
                        record(Event::Ready { conn, count, at });
                        consumer.ready(count).await
                    }
                    Control::Ack { message, kind } => {
                        if live.is_empty() {
                            continue;
                        }
                        let index = message % live.len();
                        let id = live[index].id;
                        match kind {
                            AckKind::Finish => {
                                live.remove(index);
                                record(Event::Finish { conn, id, at });
                                consumer.finish(&id).await
                            }
                            AckKind::Requeue { delay_ms } => {
                                live.remove(index);
                                let delay = Duration::from_millis(delay_ms);
                                record(Event::Requeue { conn, id, delay, at });
                                consumer.requeue(&id, delay_ms as i64).await
                            }
                            AckKind::Touch => {
                                live[index].until = at + MSG_TIMEOUT - TIMEOUT_MARGIN;
                                record(Event::Touch { conn, id, at });
                                consumer.touch(&id).await
                            }
                        }
                    }
                    Control::Sync(answer) => {
                        // A TOUCH of an id nsqd never made is answered, in order, with
                        // E_TOUCH_FAILED: the marker that all before it was processed.
                        next_marker += 1;
                        let marker = MessageId::from_u64(next_marker);
                        syncs.insert(marker.to_string(), answer);
                        consumer.touch(&marker).await
                    }
                    Control::Drain => {
                        draining = true;
                        for message in live.drain(..) {
                            record(Event::Finish { conn, id: message.id, at });
                            consumer.connection_mut().send(&nsq::protocol::commands::Command::Fin {
                                id: message.id,
                            });
                        }
                        record(Event::Ready { conn, count: DRAIN_RDY, at });
                        consumer.ready(DRAIN_RDY).await
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
            frame = consumer.connection_mut().read_frame() => {
                let at = now();
                match frame {
                    Ok(Frame::Message(message)) => {
                        let id = message.id;
                        {
                            let mut history = history.lock();
                            history.last_delivery = at;
                            history.events.push(Event::Delivery { conn, message, at });
                        }
                        if draining {
                            record(Event::Finish { conn, id, at });
                            if consumer.finish(&id).await.is_err() {
                                return;
                            }
                        } else {
                            live.retain(|m| m.id != id);
                            live.push(Live { id, until: at + MSG_TIMEOUT - TIMEOUT_MARGIN });
                        }
                    }
                    Ok(Frame::Error(data)) => {
                        let text = String::from_utf8_lossy(&data).into_owned();
                        let mut words = text.split(' ');
                        let code = words.next().unwrap_or_default().to_string();
                        let id = words.nth(1).unwrap_or_default().to_string();
                        if let Some(answer) = syncs.remove(&id) {
                            let _ = answer.send(());
                        } else if code.ends_with("_FAILED") && code != "E_SUB_FAILED" {
                            record(Event::Failed { conn, code, id });
                        } else {
                            record(Event::ServerError { conn, text });
                        }
                    }
                    Ok(Frame::Response(_)) => {}
                    Err(_) => return,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The checks

/// The first violated guarantee in `history`, if any.
fn check(history: &History) -> Result<(), String> {
    let restarts: Vec<(Duration, &[usize])> = history
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Restart { at, synced } => Some((*at, synced.as_slice())),
            _ => None,
        })
        .collect();
    let dropped: BTreeMap<usize, Duration> = history
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Disconnect { conn, at } => Some((*conn, *at)),
            _ => None,
        })
        .collect();
    // A FIN or REQ sent just before its connection was dropped may still have been on
    // the wire when the client's reset or nsqd's restart tore the connection down.
    let ack_may_be_lost = |conn: usize, sent: Duration| {
        let deadline = sent + COMMAND_TRANSIT;
        dropped.get(&conn).is_some_and(|at| *at <= deadline)
            || restarts
                .iter()
                .any(|(r, synced)| sent <= *r && *r <= deadline && !synced.contains(&conn))
    };
    let by_body: BTreeMap<&Bytes, &Publish> =
        history.publishes.iter().map(|p| (&p.body, p)).collect();
    let channel_of = |conn: usize| &history.conns[conn];

    let mut received: BTreeSet<(ChannelKey, Bytes)> = BTreeSet::new();
    let mut body_of: BTreeMap<MessageId, Bytes> = BTreeMap::new();
    let mut id_of: BTreeMap<Bytes, MessageId> = BTreeMap::new();
    let mut attempts: BTreeMap<(ChannelKey, MessageId), u16> = BTreeMap::new();
    // (channel, id) -> (conn, event index, time) of a FIN.
    let mut finished: BTreeMap<(ChannelKey, MessageId), (usize, usize, Duration)> = BTreeMap::new();
    // (channel, id) -> (conn, REQ time, delay, event index).
    let mut requeued: BTreeMap<(ChannelKey, MessageId), (usize, Duration, Duration, usize)> =
        BTreeMap::new();
    // Per connection: the RDY history and the live unacknowledged messages.
    let mut rdy: BTreeMap<usize, Vec<(Duration, i64)>> = BTreeMap::new();
    let mut live: BTreeMap<usize, BTreeMap<MessageId, Duration>> = BTreeMap::new();
    let failed_later = |conn: usize, code: &str, id: &MessageId, after: usize| {
        history.events[after..].iter().any(|e| {
            matches!(e, Event::Failed { conn: c, code: k, id: i }
                if *c == conn && k == code && *i == id.to_string())
        })
    };

    for (index, event) in history.events.iter().enumerate() {
        match event {
            Event::Delivery { conn, message, at } => {
                let channel = channel_of(*conn).clone();
                let key = (channel.clone(), message.id);
                let Some(publish) = by_body.get(&message.body) else {
                    return Err(format!(
                        "{channel:?} got {message:?}, which was never published"
                    ));
                };
                if publish.topic != channel.0 {
                    return Err(format!(
                        "{channel:?} got {:?}, published to topic {}",
                        message.body, publish.topic
                    ));
                }
                if let Some(body) = body_of.insert(message.id, message.body.clone()) {
                    if body != message.body {
                        return Err(format!(
                            "id {} came with bodies {body:?} and {:?}",
                            message.id, message.body
                        ));
                    }
                }
                if let Some(id) = id_of.insert(message.body.clone(), message.id) {
                    if id != message.id {
                        return Err(format!(
                            "body {:?} came with ids {id} and {}",
                            message.body, message.id
                        ));
                    }
                }
                if let Some(previous) = attempts.insert(key.clone(), message.attempts) {
                    if message.attempts <= previous {
                        return Err(format!(
                            "{channel:?} got {} with attempts {} after attempts {previous}",
                            message.id, message.attempts
                        ));
                    }
                }
                if let Some((fin_conn, fin_index, fin_at)) = finished.get(&key) {
                    if !failed_later(*fin_conn, "E_FIN_FAILED", &message.id, *fin_index)
                        && !ack_may_be_lost(*fin_conn, *fin_at)
                    {
                        return Err(format!(
                            "{channel:?} got {} (attempts {}) again at {at:?} after it was FINished",
                            message.id, message.attempts
                        ));
                    }
                }
                if !publish.defer.is_zero() && *at < publish.sent + publish.defer {
                    return Err(format!(
                        "{channel:?} got DPUB {:?} at {at:?}, sent at {:?} deferred {:?}",
                        message.body, publish.sent, publish.defer
                    ));
                }
                if let Some((req_conn, req_at, delay, req_index)) = requeued.get(&key) {
                    if *at < *req_at + *delay
                        && !ack_may_be_lost(*req_conn, *req_at)
                        && !failed_later(*req_conn, "E_REQ_FAILED", &message.id, *req_index)
                    {
                        return Err(format!(
                            "{channel:?} got {} at {at:?}, REQ'd at {req_at:?} for {delay:?}",
                            message.id
                        ));
                    }
                }
                let in_flight = live.entry(*conn).or_default();
                in_flight.retain(|_, until| *until > *at);
                in_flight.insert(message.id, *at + MSG_TIMEOUT - TIMEOUT_MARGIN);
                let history_of_rdy = rdy.get(conn).map(Vec::as_slice).unwrap_or_default();
                let limit = rdy_limit(history_of_rdy, *at);
                if in_flight.len() as i64 > limit {
                    return Err(format!(
                        "connection {conn} on {channel:?} has {} messages in flight at {at:?} \
                         with RDY {limit} (RDY history {history_of_rdy:?})",
                        in_flight.len()
                    ));
                }
                received.insert((channel, message.body.clone()));
            }
            Event::Ready { conn, count, at } => rdy.entry(*conn).or_default().push((*at, *count)),
            Event::Finish { conn, id, at } => {
                live.entry(*conn).or_default().remove(id);
                finished.insert((channel_of(*conn).clone(), *id), (*conn, index, *at));
            }
            Event::Requeue {
                conn,
                id,
                delay,
                at,
            } => {
                live.entry(*conn).or_default().remove(id);
                requeued.insert(
                    (channel_of(*conn).clone(), *id),
                    (*conn, *at, *delay, index),
                );
            }
            Event::Touch { conn, id, at } => {
                if let Some(until) = live.entry(*conn).or_default().get_mut(id) {
                    *until = *at + MSG_TIMEOUT - TIMEOUT_MARGIN;
                }
            }
            Event::Failed { conn, code, id } => {
                return Err(format!(
                    "connection {conn} on {:?} got {code} for {id}, acknowledged well inside its timeout",
                    channel_of(*conn)
                ));
            }
            Event::ServerError { conn, text } => {
                return Err(format!("connection {conn} got the error {text:?}"));
            }
            Event::Disconnect { .. } => {}
            Event::Restart { .. } => {
                live.clear();
            }
        }
    }

    for publish in history.publishes.iter().filter(|p| p.acked) {
        for channel in &publish.channels {
            let key = (
                (publish.topic.clone(), channel.clone()),
                publish.body.clone(),
            );
            if !received.contains(&key) {
                return Err(format!(
                    "acknowledged {:?} (sent at {:?}, defer {:?}) never reached channel {channel}",
                    publish.body, publish.sent, publish.defer
                ));
            }
        }
    }
    Ok(())
}

/// The highest RDY the connection had at any time in the window before `at`.
fn rdy_limit(history: &[(Duration, i64)], at: Duration) -> i64 {
    let window_start = at.saturating_sub(RDY_WINDOW);
    let mut limit = 0;
    let mut current = 0;
    for (set_at, count) in history {
        if *set_at > at {
            break;
        }
        if *set_at > window_start {
            limit = limit.max(current);
        }
        current = *count;
    }
    limit.max(current)
}

// ---------------------------------------------------------------------------------------
// The test

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One line about a case, to see what the strategy exercises.
fn summary(case: &Case, history: &History) -> String {
    let count = |keep: &dyn Fn(&Event) -> bool| history.events.iter().filter(|e| keep(e)).count();
    format!(
        "seed {} mem-queue-size {}: {} ops, {} publishes, {} connections, {} deliveries \
         ({} redeliveries), {} FIN, {} REQ, {} TOUCH, {} restarts",
        case.seed,
        case.mem_queue_size,
        case.ops.len(),
        history.publishes.len(),
        history.conns.len(),
        count(&|e| matches!(e, Event::Delivery { .. })),
        count(&|e| matches!(e, Event::Delivery { message, .. } if message.attempts > 1)),
        count(&|e| matches!(e, Event::Finish { .. })),
        count(&|e| matches!(e, Event::Requeue { .. })),
        count(&|e| matches!(e, Event::Touch { .. })),
        count(&|e| matches!(e, Event::Restart { .. })),
    )
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let history =
        simulate(case).map_err(|e| TestCaseError::fail(format!("simulation failed: {e}")))?;
    if std::env::var_os("NSQ_SIM_PROPTEST_VERBOSE").is_some() {
        eprintln!("{}", summary(case, &history));
    }
    check(&history).map_err(TestCaseError::fail)
}

#[test]
fn one_nsqd_keeps_its_delivery_guarantees_under_random_operations() {
    let config = Config {
        cases: env_u64("NSQ_SIM_PROPTEST_CASES").map_or(96, |n| n as u32),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let seed = env_u64("NSQ_SIM_PROPTEST_SEED").unwrap_or(0x6e73_715f_7369_6d21);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    if let Err(error) = runner.run(&case_strategy(), |case| run_case(&case)) {
        panic!("{error}");
    }
}

#[test]
fn the_rdy_limit_remembers_a_lowered_value_for_a_while() {
    let ms = Duration::from_millis;
    let history = [(ms(0), 5), (ms(1_000), 1)];
    assert_eq!(rdy_limit(&history, ms(500)), 5);
    assert_eq!(rdy_limit(&history, ms(1_100)), 5);
    assert_eq!(rdy_limit(&history, ms(1_500)), 1);
    assert_eq!(rdy_limit(&[], ms(10)), 0);
}
