//! One pass over a [`History`] that every checker shares: who each connection talks to and
//! what it subscribed, each publish and where its bodies went, every delivery, and when
//! each host crashed, lost its disk, stopped or restarted.
//!
//! Order between events is the history's order (an entry's index, [`Seq`]); times are
//! only used where a checker reasons about latency.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use nsq::protocol::message::MessageId;

use super::CheckContext;
use crate::history::{ChannelDepths, ConnId, Event, History, Micros, PublishId};

/// A position in the history: entries with a smaller index happened before.
pub(crate) type Seq = usize;

/// A channel of one nsqd: `(nsqd, topic, channel)`.
pub(crate) type ChannelKey<'h> = (&'h str, &'h str, &'h str);

/// One message on one channel in one incarnation of its nsqd:
/// `(channel, crashes of the nsqd before, id)`.
pub(crate) type MessageKey<'h> = (ChannelKey<'h>, usize, MessageId);

/// Which consumer command an `E_*_FAILED` error answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Command {
    Fin,
    Req,
    Touch,
}

/// A FIN, REQ or TOUCH a consumer sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    pub seq: Seq,
    pub at: Micros,
    pub id: MessageId,
    pub command: Command,
    /// REQ's delay; 0 for FIN and TOUCH.
    pub delay_ms: u64,
}

/// One workload connection.
#[derive(Debug, Clone)]
pub(crate) struct Conn<'h> {
    pub nsqd: &'h str,
    /// Where it was opened.
    pub opened: Seq,
    /// How many times the nsqd had crashed before this connection was opened: a
    /// connection only ever talks to the incarnation it was opened to.
    pub incarnation: usize,
    /// How many times the nsqd had lost its disk before this connection was opened: a
    /// blank nsqd starts its message ids over.
    pub disk: usize,
    /// `(topic, channel)` once SUB was answered `OK`.
    pub sub: Option<(&'h str, &'h str)>,
    /// Where it ended with `CLOSE_WAIT`: every answer to the commands sent before that
    /// has arrived (commands sent after it are answered by nothing).
    pub closed_clean: Option<Seq>,
    /// Every `RDY` sent, in order.
    pub rdy: Vec<(Seq, u64)>,
    /// Every FIN, REQ and TOUCH sent, in order.
    pub answers: Vec<Answer>,
    /// The ids named by `E_FIN_FAILED`, `E_REQ_FAILED` and `E_TOUCH_FAILED` on it.
    pub failed: BTreeSet<(Command, MessageId)>,
    /// How many such errors named each id.
    pub failures: BTreeMap<(Command, MessageId), usize>,
    /// Every marker TOUCHed ([`Event::Marked`]), in order.
    pub markers: Vec<(Seq, MessageId)>,
    /// Indexes into [`View::deliveries`], in order of arrival.
    pub deliveries: Vec<usize>,
}

/// One publish command.
#[derive(Debug, Clone)]
pub(crate) struct Publish<'h> {
    pub id: PublishId,
    pub seq: Seq,
    pub at: Micros,
    pub nsqd: &'h str,
    pub topic: &'h str,
    pub bodies: &'h [Bytes],
    pub defer_ms: Option<u64>,
    /// `Some(true)` for `OK`, `Some(false)` for an error, `None` while unanswered.
    pub ok: Option<bool>,
}

/// One message arrival.
#[derive(Debug, Clone)]
pub(crate) struct Delivery<'h> {
    pub seq: Seq,
    pub at: Micros,
    pub conn: ConnId,
    pub id: MessageId,
    pub attempts: u16,
    pub body: &'h Bytes,
}

/// A change in a host's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Life {
    Crashed,
    /// The disk was wiped after a crash (always preceded by `Crashed`).
    Lost,
    Stopped,
    Restarted,
}

/// The last `NsqdObserved` of a host.
pub(crate) type NsqdSeen<'h> = (Micros, &'h BTreeMap<(String, String), ChannelDepths>);

/// The last `LookupdObserved` of a host: when, its nodes, its topics.
pub(crate) type LookupdSeen<'h> = (Micros, &'h [String], &'h BTreeMap<String, Vec<String>>);

/// The indexed history.
#[derive(Debug, Default)]
pub(crate) struct View<'h> {
    pub conns: BTreeMap<ConnId, Conn<'h>>,
    pub publishes: BTreeMap<PublishId, Publish<'h>>,
    /// Every publish that carried a body.
    bodies: BTreeMap<&'h [u8], Vec<PublishId>>,
    /// Every arrival, in order.
    pub deliveries: Vec<Delivery<'h>>,
    lives: BTreeMap<&'h str, Vec<(Seq, Micros, Life)>>,
    /// When SUB on each channel was answered `OK`.
    subscribed: BTreeMap<ChannelKey<'h>, Vec<Seq>>,
    /// The last observation of each nsqd.
    pub nsqd_seen: BTreeMap<&'h str, NsqdSeen<'h>>,
    /// The last observation of each lookupd.
    pub lookupd_seen: BTreeMap<&'h str, LookupdSeen<'h>>,
    /// What each applied fault did (partitions, holds, latency, disks, graceful stops;
    /// crashes and losses are host lives), in order.
    pub faults: Vec<&'h str>,
    /// The time of the last entry.
    pub end: Micros,
}

impl<'h> View<'h> {
    /// Indexes `history` in one pass.
    pub fn new(history: &'h History) -> Self {
        let mut view = View::default();
        for (seq, entry) in history.entries().iter().enumerate() {
            view.end = view.end.max(entry.at);
            view.index(seq, entry.at, &entry.event);
        }
        view
    }

    fn index(&mut self, seq: Seq, at: Micros, event: &'h Event) {
        match event {
            Event::Connected { conn, nsqd, .. } => {
                let incarnation = self.incarnation(nsqd, seq);
                let disk = self.disk(nsqd, seq);
                self.conns
                    .insert(*conn, Conn::new(nsqd, seq, incarnation, disk));
            }
            Event::PublishSent {
                publish,
                nsqd,
                topic,
                bodies,
                defer_ms,
                ..
            } => {
                for body in bodies {
                    self.bodies.entry(body).or_default().push(*publish);
                }
                let publish_info = Publish {
                    id: *publish,
                    seq,
                    at,
                    nsqd,
                    topic,
                    bodies,
                    defer_ms: *defer_ms,
                    ok: None,
                };
                self.publishes.insert(*publish, publish_info);
            }
            Event::PublishAnswered { publish, ok, .. } => {
                if let Some(p) = self.publishes.get_mut(publish) {
                    p.ok = Some(*ok);
                }
            }
            Event::Subscribed {
                conn,
                topic,
                channel,
            } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.sub = Some((topic, channel));
                    let key = (c.nsqd, topic.as_str(), channel.as_str());
                    self.subscribed.entry(key).or_default().push(seq);
                }
            }
            Event::Ready { conn, count } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.rdy.push((seq, *count));
                }
            }
            Event::Delivered {
                conn,
                id,
                attempts,
                body,
            } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.deliveries.push(self.deliveries.len());
                }
                self.deliveries.push(Delivery {
                    seq,
                    at,
                    conn: *conn,
                    id: *id,
                    attempts: *attempts,
                    body,
                });
            }
            Event::Finished { conn, id } => self.answer(*conn, seq, at, *id, Command::Fin, 0),
            Event::Requeued { conn, id, delay_ms } => {
                self.answer(*conn, seq, at, *id, Command::Req, *delay_ms)
            }
            Event::Touched { conn, id } => self.answer(*conn, seq, at, *id, Command::Touch, 0),
            Event::Marked { conn, marker } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.markers.push((seq, *marker));
                }
            }
            Event::ServerError { conn, text } => {
                if let (Some(c), Some(failed)) = (self.conns.get_mut(conn), parse_failed(text)) {
                    c.failed.insert(failed);
                    *c.failures.entry(failed).or_default() += 1;
                }
            }
            Event::Closed { conn, clean } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.closed_clean = clean.then_some(seq);
                }
            }
            Event::HostCrashed { host } => self.life(host, seq, at, Life::Crashed),
            Event::HostLost { host } => self.life(host, seq, at, Life::Lost),
            Event::HostStopped { host } => self.life(host, seq, at, Life::Stopped),
            Event::HostRestarted { host } => self.life(host, seq, at, Life::Restarted),
            Event::NsqdObserved { nsqd, channels } => {
                self.nsqd_seen.insert(nsqd, (at, channels));
            }
            Event::LookupdObserved {
                lookupd,
                nodes,
                topics,
            } => {
                self.lookupd_seen.insert(lookupd, (at, nodes, topics));
            }
            Event::Fault { description } => self.faults.push(description),
            Event::Healed => {}
        }
    }

    fn answer(
        &mut self,
        conn: ConnId,
        seq: Seq,
        at: Micros,
        id: MessageId,
        command: Command,
        delay_ms: u64,
    ) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.answers.push(Answer {
                seq,
                at,
                id,
                command,
                delay_ms,
            });
        }
    }

    fn life(&mut self, host: &'h str, seq: Seq, at: Micros, life: Life) {
        self.lives.entry(host).or_default().push((seq, at, life));
    }

    /// How many times `host` crashed before `seq`.
    pub fn incarnation(&self, host: &str, seq: Seq) -> usize {
        self.lives(host)
            .iter()
            .filter(|(s, _, life)| *s < seq && *life == Life::Crashed)
            .count()
    }

    /// How many times `host` lost its disk before `seq`.
    pub fn disk(&self, host: &str, seq: Seq) -> usize {
        self.lives(host)
            .iter()
            .filter(|(s, _, life)| *s < seq && *life == Life::Lost)
            .count()
    }

    /// The first loss of `host`'s disk after `after`.
    pub fn lost_after(&self, host: &str, after: Seq) -> Option<Micros> {
        self.lives(host)
            .iter()
            .find(|(s, _, life)| *s > after && *life == Life::Lost)
            .map(|(_, at, _)| *at)
    }

    /// The first crash, loss, stop or restart of `host` strictly between `after` and
    /// `before`.
    pub fn life_between(&self, host: &str, after: Seq, before: Seq) -> Option<(Micros, Life)> {
        self.lives(host)
            .iter()
            .find(|(s, _, _)| after < *s && *s < before)
            .map(|(_, at, life)| (*at, *life))
    }

    /// The first crash of `host` after `after`.
    pub fn crash_after(&self, host: &str, after: Seq) -> Option<Micros> {
        self.lives(host)
            .iter()
            .find(|(s, _, life)| *s > after && *life == Life::Crashed)
            .map(|(_, at, _)| *at)
    }

    /// Whether `host` is up at the end: never crashed or stopped, or restarted since.
    pub fn running_at_end(&self, host: &str) -> bool {
        self.lives(host)
            .last()
            .is_none_or(|(_, _, life)| *life == Life::Restarted)
    }

    /// The first crash, loss or stop of `host`.
    pub fn first_down(&self, host: &str) -> Option<Seq> {
        self.lives(host)
            .iter()
            .find(|(_, _, life)| *life != Life::Restarted)
            .map(|(seq, _, _)| *seq)
    }

    fn lives(&self, host: &str) -> &[(Seq, Micros, Life)] {
        self.lives.get(host).map(Vec::as_slice).unwrap_or_default()
    }

    /// Whether the channel is known to exist on its nsqd at `seq`: a SUB on it was answered
    /// `OK` before, and the nsqd has not crashed since (a crash may lose `nsqd.dat`).
    pub fn channel_existed(&self, key: ChannelKey<'_>, seq: Seq) -> bool {
        let Some(subscribed) = self.subscribed.get(&key) else {
            return false;
        };
        let Some(last) = subscribed.iter().rev().find(|s| **s < seq) else {
            return false;
        };
        !self
            .lives(key.0)
            .iter()
            .any(|(s, _, life)| *last < *s && *s < seq && *life == Life::Crashed)
    }

    /// Every channel ever subscribed on `topic` of `nsqd`.
    pub fn channels_of<'a>(
        &'a self,
        nsqd: &'a str,
        topic: &'a str,
    ) -> impl Iterator<Item = &'h str> + 'a {
        self.subscribed
            .keys()
            .filter(move |(n, t, _)| *n == nsqd && *t == topic)
            .map(|(_, _, c)| *c)
    }

    /// The publishes that carried `body`.
    pub fn publishes_of(&self, body: &[u8]) -> &[PublishId] {
        self.bodies.get(body).map(Vec::as_slice).unwrap_or_default()
    }

    /// The one publish of `body` to `nsqd`'s `topic`, unless there are none or several.
    pub fn sole_publish(&self, body: &[u8], nsqd: &str, topic: &str) -> Option<&Publish<'h>> {
        let mut matching = self
            .publishes_of(body)
            .iter()
            .filter_map(|p| self.publishes.get(p))
            .filter(|p| p.nsqd == nsqd && p.topic == topic);
        let first = matching.next()?;
        matching.next().is_none().then_some(first)
    }

    /// Every arrival on a subscribed connection, grouped by message, in order.
    pub fn copies_by_message(&self) -> BTreeMap<MessageKey<'h>, Vec<&Delivery<'h>>> {
        let mut copies: BTreeMap<MessageKey<'h>, Vec<&Delivery<'h>>> = BTreeMap::new();
        for delivery in &self.deliveries {
            let (Some(channel), Some(conn)) = (
                self.channel_of(delivery.conn),
                self.conns.get(&delivery.conn),
            ) else {
                continue;
            };
            copies
                .entry((channel, conn.incarnation, delivery.id))
                .or_default()
                .push(delivery);
        }
        copies
    }

    /// The channel a delivery arrived on, once its connection subscribed.
    pub fn channel_of(&self, conn: ConnId) -> Option<ChannelKey<'h>> {
        let c = self.conns.get(&conn)?;
        let (topic, channel) = c.sub?;
        Some((c.nsqd, topic, channel))
    }

    /// Whether a FIN or REQ `answer` on `conn` certainly reached nsqd and succeeded: the
    /// connection later ended with `CLOSE_WAIT`, or a marker TOUCHed after it was answered
    /// with `E_TOUCH_FAILED` (either way every error reply to it had arrived, as nsqd
    /// answers a connection's commands in order), and no `E_*_FAILED` named the id.
    pub fn confirmed(&self, conn: &Conn<'_>, answer: &Answer) -> bool {
        let closed = conn.closed_clean.is_some_and(|closed| answer.seq < closed);
        let marked = conn.markers.iter().any(|(seq, marker)| {
            answer.seq < *seq && conn.failed.contains(&(Command::Touch, *marker))
        });
        (closed || marked) && !conn.failed.contains(&(answer.command, answer.id))
    }

    /// The copy a FIN or REQ `answer` on `conn` took out of flight, when that is certain.
    ///
    /// nsqd applies the command to whichever copy of the id is in flight to this
    /// connection when it reads it: normally the last one received before the command was
    /// sent, but if that copy timed out meanwhile, a later copy sent to the same
    /// connection. So it is certain only when the timeout cannot have passed: the copy
    /// arrived less than `msg_timeout - 2 * max_latency` before the command, no timing fault
    /// was active, and no FIN or REQ of the id was sent in between.
    pub fn answered_copy(
        &self,
        conn: &Conn<'_>,
        answer: &Answer,
        ctx: &CheckContext,
    ) -> Option<&Delivery<'h>> {
        let prev = self
            .copies_on(conn, answer.id)
            .into_iter()
            .rev()
            .find(|d| d.seq < answer.seq)?;
        let answered_before = conn.answers.iter().any(|a| {
            a.id == answer.id
                && a.command != Command::Touch
                && prev.seq < a.seq
                && a.seq < answer.seq
        });
        let facts = ctx.nsqds.get(conn.nsqd)?;
        let latency = ms_to_micros(ctx.max_latency_ms);
        let read_by = answer.at.saturating_add(latency);
        let timeout_possible = read_by.saturating_add(latency)
            >= prev.at.saturating_add(ms_to_micros(facts.msg_timeout_ms));
        let faulted = overlaps_unreliable(ctx, prev.at.saturating_sub(latency), read_by);
        (!answered_before && !timeout_possible && !faulted).then_some(prev)
    }

    /// The largest `attempts` the copy a confirmed FIN or REQ `answer` on `conn` took out
    /// of flight can have carried: exact when [`View::answered_copy`] is certain, else the
    /// largest attempts of the id ever received on the connection (its clean close proves
    /// the answered copy arrived there).
    pub fn answered_attempts(
        &self,
        conn: &Conn<'_>,
        answer: &Answer,
        ctx: &CheckContext,
    ) -> Option<u16> {
        match self.answered_copy(conn, answer, ctx) {
            Some(copy) => Some(copy.attempts),
            None => self
                .copies_on(conn, answer.id)
                .iter()
                .map(|d| d.attempts)
                .max(),
        }
    }

    /// Every copy of `id` received on `conn`, in order.
    fn copies_on(&self, conn: &Conn<'_>, id: MessageId) -> Vec<&Delivery<'h>> {
        conn.deliveries
            .iter()
            .filter_map(|i| self.deliveries.get(*i))
            .filter(|d| d.id == id)
            .collect()
    }
}

impl<'h> Conn<'h> {
    fn new(nsqd: &'h str, opened: Seq, incarnation: usize, disk: usize) -> Self {
        Conn {
            nsqd,
            opened,
            incarnation,
            disk,
            sub: None,
            closed_clean: None,
            rdy: Vec::new(),
            answers: Vec::new(),
            failed: BTreeSet::new(),
            failures: BTreeMap::new(),
            markers: Vec::new(),
            deliveries: Vec::new(),
        }
    }
}

/// The command and id an `E_FIN_FAILED FIN <id> failed ...` (or REQ/TOUCH) text names.
pub(crate) fn parse_failed(text: &str) -> Option<(Command, MessageId)> {
    let mut words = text.split_whitespace();
    let command = match words.next()? {
        "E_FIN_FAILED" => Command::Fin,
        "E_REQ_FAILED" => Command::Req,
        "E_TOUCH_FAILED" => Command::Touch,
        _ => return None,
    };
    let _verb = words.next()?;
    let id = MessageId::from_slice(words.next()?.as_bytes())?;
    Some((command, id))
}

/// Whether `at` falls in a window where a hold or latency fault made transit unbounded.
pub(crate) fn unreliable(ctx: &CheckContext, at: Micros) -> bool {
    ctx.unreliable_timing
        .iter()
        .any(|(from, to)| *from <= at && at < *to)
}

/// Whether any unreliable window touches `[from, to]`.
pub(crate) fn overlaps_unreliable(ctx: &CheckContext, from: Micros, to: Micros) -> bool {
    ctx.unreliable_timing
        .iter()
        .any(|(start, end)| *start <= to && from < *end)
}

/// Milliseconds as the history's microseconds.
pub(crate) fn ms_to_micros(ms: u64) -> Micros {
    ms.saturating_mul(1_000)
}

/// A time for a violation's text: `12.345ms`.
pub(crate) fn ms(at: Micros) -> String {
    format!("{}.{:03}ms", at / 1_000, at % 1_000)
}

/// A body for a violation's text: as text when printable, cut to 40 bytes.
pub(crate) fn show(body: &[u8]) -> String {
    let cut = &body[..body.len().min(40)];
    let text = String::from_utf8_lossy(cut);
    let more = if body.len() > cut.len() { "..." } else { "" };
    format!("{text:?}{more}")
}

/// Names ending in `#ephemeral` live in memory only, so they promise nothing.
pub(crate) fn is_ephemeral(name: &str) -> bool {
    name.ends_with("#ephemeral")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_errors_name_their_command_and_id() {
        let id = MessageId::from_u64(0xabc);
        assert_eq!(
            parse_failed("E_FIN_FAILED FIN 0000000000000abc failed ID not in flight"),
            Some((Command::Fin, id))
        );
        assert_eq!(
            parse_failed("E_REQ_FAILED REQ 0000000000000abc failed ID not in flight"),
            Some((Command::Req, id))
        );
        assert_eq!(
            parse_failed("E_TOUCH_FAILED TOUCH 0000000000000abc failed x"),
            Some((Command::Touch, id))
        );
        assert_eq!(parse_failed("E_INVALID cannot FIN in current state"), None);
        assert_eq!(parse_failed("E_FIN_FAILED FIN short failed"), None);
        assert_eq!(parse_failed(""), None);
    }
}
