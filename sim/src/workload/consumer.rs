//! A consumer host: finds nsqds (through lookupds or by name), keeps one subscribed
//! connection to each, answers messages with the scenario's mix of FIN, REQ, TOUCH and
//! silence until the heal, FINs everything after it, and closes with CLS at the end.
//! Every delivery, answer, error frame and connection end goes to the history.
//!
//! After a REQ with a delay it also TOUCHes a marker id nsqd never makes: the
//! `E_TOUCH_FAILED` answer proves nsqd processed the REQ (and every earlier command) while
//! the connection lived, so checkers can hold nsqd to it across a later restart or crash.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use nsq::client::{lookup_nsqds, Consumer as Client, Frame};
use nsq::env::{Rng, SeededRng};
use nsq::http_client::HttpTimeouts;
use nsq::protocol::commands::Command;
use nsq::protocol::message::{Message, MessageId};
use parking_lot::Mutex;

use super::{client_rng, draw, identify, sleep_until_ms, Phases};
use crate::cluster::NSQD_TCP_PORT;
use crate::env::SimNet;
use crate::history::{ConnId, Event, History, Micros};
use crate::now_micros;
use crate::scenario::Consumer;

/// How long the consumer waits for `CLOSE_WAIT` after CLS.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one start of a consumer host. `lookupds` are the lookupds' HTTP addresses.
pub async fn run(
    spec: Consumer,
    seed: u64,
    start: u64,
    phases: Phases,
    lookupds: Vec<String>,
    history: Arc<Mutex<History>>,
) -> turmoil::Result {
    let spec = Arc::new(spec);
    let rng = Arc::new(client_rng(seed, &spec.name, start));
    let connected: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    sleep_until_ms(spec.start_ms).await;
    while now_micros() / 1000 < phases.close_ms {
        for addr in discover(&spec, &lookupds).await {
            if connected.lock().insert(addr.clone()) {
                let task = Connection {
                    spec: spec.clone(),
                    nsqd: addr.split(':').next().unwrap_or_default().to_string(),
                    rng: rng.clone(),
                    phases,
                    history: history.clone(),
                    held: BTreeSet::new(),
                    due: BTreeMap::new(),
                    next_due: 0,
                    next_marker: 0,
                };
                let connected = connected.clone();
                // Local, like the daemons' tasks: a crash drops them in a fixed order.
                tokio::task::spawn_local(async move {
                    task.run(&addr).await;
                    connected.lock().remove(&addr);
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(spec.poll_ms)).await;
    }
    std::future::pending::<()>().await;
    Ok(())
}

/// The nsqd TCP addresses to be connected to now.
async fn discover(spec: &Consumer, lookupds: &[String]) -> Vec<String> {
    if spec.discover != "lookupd" {
        return vec![format!("{}:{NSQD_TCP_PORT}", spec.discover)];
    }
    let timeouts = HttpTimeouts {
        connect: Duration::from_secs(1),
        request: Duration::from_secs(2),
    };
    lookup_nsqds(&SimNet, lookupds, &spec.topic, timeouts)
        .await
        .unwrap_or_default()
}

/// What the consumer will do with a message it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Fin,
    Req { delay_ms: u64 },
    Touch,
}

/// One subscribed connection.
struct Connection {
    spec: Arc<Consumer>,
    nsqd: String,
    rng: Arc<SeededRng>,
    phases: Phases,
    history: Arc<Mutex<History>>,
    /// Messages received and not answered yet.
    held: BTreeSet<MessageId>,
    /// Answers to send, by when.
    due: BTreeMap<(Micros, u64), (MessageId, Action)>,
    next_due: u64,
    /// The last marker id TOUCHed.
    next_marker: u64,
}

impl Connection {
    fn record(&self, event: Event) {
        self.history.lock().record(now_micros(), event);
    }

    async fn run(mut self, addr: &str) {
        let Ok(mut client) = Client::connect(&SimNet, addr).await else {
            return;
        };
        let conn = {
            let mut h = self.history.lock();
            let conn = h.next_conn();
            h.record(
                now_micros(),
                Event::Connected {
                    conn,
                    workload: self.spec.name.clone(),
                    nsqd: self.nsqd.clone(),
                },
            );
            conn
        };
        let serving = self.serve(&mut client, conn).await;
        if serving.is_err() {
            self.record(Event::Closed { conn, clean: false });
        }
    }

    /// IDENTIFY, SUB and RDY.
    async fn handshake(&mut self, client: &mut Client, conn: ConnId) -> Result<(), ()> {
        identify(
            client.connection_mut(),
            &self.spec.name,
            self.spec.heartbeat_ms,
            self.spec.compression,
        )
        .await
        .map_err(drop)?;
        client
            .subscribe(&self.spec.topic, &self.spec.channel)
            .await
            .map_err(drop)?;
        self.record(Event::Subscribed {
            conn,
            topic: self.spec.topic.clone(),
            channel: self.spec.channel.clone(),
        });
        let count = self.spec.max_in_flight;
        client
            .ready(i64::try_from(count).unwrap_or(1))
            .await
            .map_err(drop)?;
        self.record(Event::Ready { conn, count });
        Ok(())
    }

    async fn serve(&mut self, client: &mut Client, conn: ConnId) -> Result<(), ()> {
        // go-nsq's read deadline covers the handshake too: an nsqd cut off in the middle
        // of it is given up, and found again at the next poll.
        let deadline = Duration::from_millis(2 * self.spec.heartbeat_ms);
        tokio::time::timeout(deadline, self.handshake(client, conn))
            .await
            .map_err(drop)??;
        // go-nsq's read deadline: a connection silent for two heartbeats is dead.
        let silence = 2 * self.spec.heartbeat_ms * 1000;
        let mut last_frame = now_micros();
        loop {
            let now = now_micros();
            if now >= self.phases.close_ms * 1000 {
                return self.close(client, conn).await;
            }
            if now >= last_frame + silence {
                return Err(());
            }
            self.answer_due(client, conn, now).await?;
            let wake = self
                .due
                .keys()
                .next()
                .map_or(self.phases.close_ms * 1000, |(at, _)| *at)
                .min(self.phases.close_ms * 1000)
                .min(last_frame + silence);
            let wait = Duration::from_micros(wake.saturating_sub(now));
            tokio::select! {
                biased;
                frame = client.connection_mut().read_frame() => {
                    last_frame = now_micros();
                    match frame.map_err(drop)? {
                        Frame::Message(message) => self.received(conn, message),
                        Frame::Error(text) => self.record(Event::ServerError {
                            conn,
                            text: String::from_utf8_lossy(&text).into_owned(),
                        }),
                        Frame::Response(_) => {}
                    }
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Records a delivery; the message is held until answered.
    fn hold(&mut self, conn: ConnId, message: Message) -> MessageId {
        let id = message.id;
        self.record(Event::Delivered {
            conn,
            id,
            attempts: message.attempts,
            body: message.body,
        });
        self.held.insert(id);
        id
    }

    /// Records a delivery and decides its answer.
    fn received(&mut self, conn: ConnId, message: Message) {
        let id = self.hold(conn, message);
        let now = now_micros();
        if now >= self.phases.heal_ms * 1000 {
            self.schedule(now, id, Action::Fin);
            return;
        }
        let actions = &self.spec.actions;
        let work = draw(&*self.rng, actions.work_ms) * 1000;
        let total = actions.fin + actions.req + actions.timeout + actions.touch;
        let mut pick = (self.rng.below(1_000_000) as f64 / 1_000_000.0) * total;
        let mut choose = |share: f64| {
            pick -= share;
            pick < 0.0
        };
        if choose(actions.fin) {
            self.schedule(now + work, id, Action::Fin);
        } else if choose(actions.req) {
            let delay_ms = draw(&*self.rng, actions.req_delay_ms);
            self.schedule(now + work, id, Action::Req { delay_ms });
        } else if choose(actions.timeout) {
            // Left unanswered: nsqd times it out and delivers it again.
        } else {
            self.schedule(now + work / 2, id, Action::Touch);
            self.schedule(now + work, id, Action::Fin);
        }
    }

    fn schedule(&mut self, at: Micros, id: MessageId, action: Action) {
        self.next_due += 1;
        self.due.insert((at, self.next_due), (id, action));
    }

    /// Sends every answer that is due.
    async fn answer_due(
        &mut self,
        client: &mut Client,
        conn: ConnId,
        now: Micros,
    ) -> Result<(), ()> {
        let mut wrote = false;
        let mut delayed_req = false;
        while let Some(entry) = self.due.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (id, action) = entry.remove();
            if !self.held.contains(&id) {
                continue;
            }
            let connection = client.connection_mut();
            match action {
                Action::Fin => {
                    self.held.remove(&id);
                    connection.send(&Command::Fin { id });
                    self.record(Event::Finished { conn, id });
                }
                Action::Req { delay_ms } => {
                    self.held.remove(&id);
                    let timeout_ms = i64::try_from(delay_ms).unwrap_or(i64::MAX);
                    connection.send(&Command::Req { id, timeout_ms });
                    self.record(Event::Requeued { conn, id, delay_ms });
                    delayed_req |= delay_ms > 0;
                }
                Action::Touch => {
                    connection.send(&Command::Touch { id });
                    self.record(Event::Touched { conn, id });
                }
            }
            wrote = true;
        }
        if delayed_req {
            self.next_marker += 1;
            let marker = MessageId::from_u64(self.next_marker);
            client.connection_mut().send(&Command::Touch { id: marker });
            self.record(Event::Marked { conn, marker });
        }
        if wrote {
            client.connection_mut().flush().await.map_err(drop)?;
        }
        Ok(())
    }

    /// CLS, then every message still on its way, then `CLOSE_WAIT`; afterwards FINs all
    /// it still holds (those FINs are unconfirmed: nothing answers them).
    async fn close(&mut self, client: &mut Client, conn: ConnId) -> Result<(), ()> {
        let connection = client.connection_mut();
        connection.send(&Command::Cls);
        connection.flush().await.map_err(drop)?;
        let waited = tokio::time::timeout(CLOSE_TIMEOUT, async {
            loop {
                match client.connection_mut().read_frame().await.map_err(drop)? {
                    Frame::Message(message) => {
                        self.hold(conn, message);
                    }
                    Frame::Response(data) if data.as_ref() == b"CLOSE_WAIT" => {
                        return Ok::<(), ()>(())
                    }
                    Frame::Response(_) => {}
                    Frame::Error(text) => self.record(Event::ServerError {
                        conn,
                        text: String::from_utf8_lossy(&text).into_owned(),
                    }),
                }
            }
        })
        .await;
        match waited {
            Ok(Ok(())) => self.record(Event::Closed { conn, clean: true }),
            _ => return Err(()),
        }
        let held: Vec<MessageId> = std::mem::take(&mut self.held).into_iter().collect();
        for id in held {
            client.connection_mut().send(&Command::Fin { id });
            self.record(Event::Finished { conn, id });
        }
        let _ = client.connection_mut().flush().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }
}
