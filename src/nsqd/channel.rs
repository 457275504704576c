//! A channel: one consumer group's copy of a topic's stream, with its memory queue,
//! in-flight and deferred queues and subscribed clients.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::backend::Backend;
use super::client::ClientRef;
use super::deferred::{memory_cost, DeferredQueue};
use super::deferred_spill::{DeferredSpill, WINDOW_NS};
use super::diskqueue::DiskQueueError;
use super::due_journal::JournalError;
use super::due_times::DueTimes;
use super::e2e::{E2eConfig, LatencyWindow};
use super::finished_elsewhere::FinishedElsewhere;
use super::in_flight::{InFlight, InFlightError, InFlightQueue};
use super::stats::E2eLatency;
use crate::protocol::{frame, names, Message, MessageId};

/// Why a channel refused a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// `--max-channel-consumers` reached (Go's text).
    #[error("consumers for {topic}:{channel} exceeds limit of {limit}")]
    TooManyConsumers {
        /// Topic name.
        topic: String,
        /// Channel name.
        channel: String,
        /// The configured limit.
        limit: i64,
    },
    /// The channel is being deleted.
    #[error("exiting")]
    Exiting,
}

#[derive(Debug, Default)]
struct ChannelState {
    memory: VecDeque<Message>,
    in_flight: InFlightQueue,
    deferred: DeferredQueue,
    clients: BTreeMap<u64, ClientRef>,
    paused: bool,
    exiting: bool,
    /// When each deferred message whose body is in the disk queue is due, as its
    /// due-time journal says: messages not read yet (a memory-less channel keeps even
    /// deferred ones on disk, and a restart leaves them all there), and messages read
    /// before their time that wait in `deferred`, still held on disk.
    due_on_disk: DueTimes,
    /// How many of `due_on_disk` wait in `deferred`.
    due_on_disk_waiting: usize,
    /// When due times of messages no longer on disk may next be forgotten (see
    /// [`Channel::compact_due_journal`]).
    orphans_checked_until: i64,
    /// Messages read from the disk queue, still held there, that wait in `memory` or
    /// `deferred` (requeued, timed out, or read before they were due): delivered again,
    /// they are in flight as held. Usually empty, so messages that never touched the
    /// disk pay one emptiness check and no hold book lookup.
    held_waiting: rustc_hash::FxHashSet<MessageId>,
    /// Messages another nsqd of the replica set finished here: dropped when they come
    /// up instead of delivered.
    finished_elsewhere: FinishedElsewhere,
}

impl ChannelState {
    /// Whether `id`, just taken from `memory`, is held on disk (and no longer waiting).
    fn take_held(&mut self, id: &MessageId) -> bool {
        !self.held_waiting.is_empty() && self.held_waiting.remove(id)
    }

    /// Remembers that message `id`, on disk, is due at `due_ns`.
    fn note_due(&mut self, id: MessageId, due_ns: i64) {
        self.due_on_disk.insert(id, due_ns);
        self.orphans_checked_until = self.orphans_checked_until.min(due_ns);
    }

    /// Puts `message`, held on disk with its due time in `due_on_disk`, in `deferred`.
    fn wait_held(&mut self, message: Message, due_ns: i64) {
        self.held_waiting.insert(message.id);
        if self.deferred.push(message, due_ns).is_ok() {
            self.due_on_disk_waiting += 1;
        }
    }

    /// Forgets the due times that passed of messages not waiting in `deferred` (unread
    /// ones are delivered at once when read anyway), and notes when the earliest left
    /// will pass.
    fn forget_passed_unread(&mut self, now_ns: i64) {
        let ChannelState {
            due_on_disk,
            deferred,
            ..
        } = self;
        let mut earliest = i64::MAX;
        due_on_disk.retain(|id, due| {
            if deferred.contains(id) {
                return true;
            }
            if *due > now_ns {
                earliest = earliest.min(*due);
                return true;
            }
            false
        });
        self.orphans_checked_until = earliest;
    }

    /// Deferred messages, in memory or on disk.
    fn deferred_count(&self) -> usize {
        self.deferred.len()
            + self
                .due_on_disk
                .len()
                .saturating_sub(self.due_on_disk_waiting)
    }
}

/// Where [`Channel::put_deferred`] left a message.
#[derive(Debug)]
pub enum Deferral {
    /// It waits in memory.
    Kept,
    /// The caller journals its due time, then writes it to the disk queue (a channel
    /// with `--mem-queue-size=0` keeps even deferred messages there).
    ToDisk(Message),
    /// The caller hands it to [`Channel::spill_deferred`]: the memory budget is spent,
    /// or messages of its due window already wait on disk and it must leave after them.
    ToSpill(Message),
}

/// What the caller of [`Channel::requeue`] still has to do.
#[derive(Debug)]
pub enum Requeued {
    /// Nothing.
    Done,
    /// Journal the new due time of a message held on disk
    /// ([`Channel::journal_due_time`]).
    JournalDue(i64),
    /// Hand the message and its due time to [`Channel::spill_deferred`].
    Spill(Message, i64),
    /// Journal the new due time of a message held on disk, then hand it to
    /// [`Channel::spill_read_early`]: the memory budget is spent.
    JournalDueAndSpill(Message, i64),
}

/// A snapshot of a channel's numbers for `/stats`.
#[derive(Debug, Clone)]
pub struct ChannelSnapshot {
    /// Channel name.
    pub name: String,
    /// Messages waiting in memory and on disk.
    pub depth: u64,
    /// Messages waiting on disk.
    pub backend_depth: u64,
    /// Messages in flight.
    pub in_flight_count: u64,
    /// Messages deferred.
    pub deferred_count: u64,
    /// Messages ever put on the channel.
    pub message_count: u64,
    /// REQs, counted per message.
    pub requeue_count: u64,
    /// Timeouts.
    pub timeout_count: u64,
    /// Whether it is paused.
    pub paused: bool,
    /// Subscribed clients.
    pub clients: Vec<ClientRef>,
}

/// One channel of a topic.
#[derive(Debug)]
pub struct Channel {
    /// The channel's name.
    pub name: String,
    /// The topic it belongs to.
    pub topic_name: String,
    /// `#ephemeral` channels drop overflow and vanish with their last client.
    pub ephemeral: bool,
    mem_queue_size: usize,
    max_consumers: i64,
    state: Mutex<ChannelState>,
    /// Wakes one waiting client pump when messages arrive.
    pub new_messages: Notify,
    message_count: AtomicU64,
    requeue_count: AtomicU64,
    timeout_count: AtomicU64,
    /// Publish-to-FIN latencies, when percentiles are configured. Its own lock, taken
    /// after the state lock is released, so `/stats` merging it never stalls delivery.
    e2e: Option<Mutex<LatencyWindow>>,
    /// Where messages go when memory is full, and wait across restarts (none for
    /// ephemeral channels, which drop overflow instead).
    backend: Option<Arc<Backend>>,
    /// Whether the due times an earlier run journaled are in `due_on_disk`.
    due_restored: AtomicBool,
}

impl Channel {
    /// A new, empty channel created at `now_ns`; `e2e` turns latency tracking on.
    pub fn new(
        topic_name: &str,
        name: &str,
        mem_queue_size: i64,
        max_consumers: i64,
        e2e: Option<&E2eConfig>,
        now_ns: i64,
        backend: Option<Arc<Backend>>,
    ) -> Self {
        Channel {
            name: name.to_string(),
            topic_name: topic_name.to_string(),
            ephemeral: names::is_ephemeral(name),
            mem_queue_size: usize::try_from(mem_queue_size).unwrap_or(0),
            max_consumers,
            state: Mutex::new(ChannelState::default()),
            new_messages: Notify::new(),
            message_count: AtomicU64::new(0),
            requeue_count: AtomicU64::new(0),
            timeout_count: AtomicU64::new(0),
            e2e: e2e.map(|config| Mutex::new(LatencyWindow::new(config, now_ns))),
            due_restored: AtomicBool::new(backend.is_none()),
            backend,
        }
    }

    /// Notes that another nsqd of the replica set finished `ids` on this channel: each
    /// is dropped instead of delivered when it comes up here (messages already in
    /// flight are not recalled).
    pub fn finished_elsewhere(&self, ids: impl IntoIterator<Item = MessageId>) {
        self.state.lock().finished_elsewhere.add(ids);
    }

    /// Reads, once, the due times an earlier run journaled for messages on this
    /// channel's disk, so they wait again instead of being delivered when read. Runs at
    /// startup and before the first read from disk, whichever comes first.
    pub async fn restore_due_times(&self, now_ns: i64) {
        if self.due_restored.load(Ordering::Acquire) {
            return;
        }
        let Some(backend) = &self.backend else {
            return;
        };
        backend.deferred_spill().recover().await;
        // Opening the queue recovers the synced segments against its read position.
        if let Err(error) = backend.open().await {
            tracing::error!(topic = %self.topic_name, channel = %self.name, %error, "failed to open the disk queue");
        }
        if let Some(earlier) = backend.due_journal().load_once(now_ns).await {
            if !earlier.is_empty() {
                tracing::info!(topic = %self.topic_name, channel = %self.name, deferred = earlier.len(), "deferred messages on disk wait for their due time");
            }
            let earliest = earlier.min_due().unwrap_or(i64::MAX);
            let mut state = self.state.lock();
            // The loaded map, built in bulk, becomes the base and what this run noted
            // goes over it (newer wins): far fewer entries to move.
            let newer = std::mem::replace(&mut state.due_on_disk, earlier);
            state.due_on_disk.extend(newer);
            state.orphans_checked_until = state.orphans_checked_until.min(earliest);
        }
        self.due_restored.store(true, Ordering::Release);
    }

    /// Journals (synced) the due time [`Channel::requeue`] returned for a message held
    /// on disk, so no crash before its FIN delivers it early.
    pub async fn journal_due_time(&self, id: MessageId, due_ns: i64) -> Result<(), JournalError> {
        match &self.backend {
            Some(backend) => backend.due_journal().append(&[(id, due_ns)]).await,
            None => Ok(()),
        }
    }

    /// Disk loop work: forgets the due times of messages that never reached the disk,
    /// and compacts the due-time journal when it has grown or everything in it passed
    /// ([`DueJournal::rewrite_if_stale`](super::due_journal::DueJournal::rewrite_if_stale)).
    ///
    /// A due time whose message never reached the disk (the write failed, or a crash
    /// kept the journal's record and lost the message) would count as deferred forever:
    /// once the disk has nothing unread, those that passed are forgotten, and the next
    /// look waits until the earliest left would pass. Forgetting a due time that passed
    /// is always safe: read now, its message would be delivered at once anyway. The
    /// journal is compacted from the file, not from this memory: it keeps every record
    /// still in the future.
    pub async fn compact_due_journal(&self, now_ns: i64) -> Result<(), JournalError> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        self.restore_due_times(now_ns).await;
        {
            let mut state = self.state.lock();
            let unread = state.due_on_disk.len() > state.due_on_disk_waiting;
            if unread && backend.depth() == 0 && now_ns >= state.orphans_checked_until {
                state.forget_passed_unread(now_ns);
            }
        }
        backend
            .due_journal()
            .rewrite_if_stale(now_ns)
            .await
            .map(|_| ())
    }

    /// How many new messages the memory queue can still take (an ephemeral channel drops
    /// what does not fit, so it always has room).
    pub fn room(&self) -> usize {
        if self.ephemeral {
            return usize::MAX;
        }
        self.mem_queue_size
            .saturating_sub(self.state.lock().memory.len())
    }

    /// The channel's disk queue (none for an ephemeral channel).
    pub fn backend(&self) -> Option<&Arc<Backend>> {
        self.backend.as_ref()
    }

    /// Messages on disk.
    pub fn backend_depth(&self) -> u64 {
        self.backend
            .as_ref()
            .map_or(0, |b| u64::try_from(b.depth()).unwrap_or(0))
    }

    /// Puts new messages from the topic, each a new delivery for this channel, into
    /// memory while it has room. Returns what did not fit, for the caller to write to
    /// [`Channel::backend`]; an ephemeral channel drops it instead, as Go does.
    pub fn put_messages(&self, messages: impl IntoIterator<Item = Message>) -> Vec<Message> {
        let mut count = 0u64;
        let mut overflow = Vec::new();
        {
            let mut state = self.state.lock();
            for message in messages {
                count += 1;
                if state.memory.len() >= self.mem_queue_size {
                    if !self.ephemeral {
                        overflow.push(message);
                    }
                    continue;
                }
                state.memory.push_back(message);
            }
        }
        self.message_count.fetch_add(count, Ordering::Relaxed);
        self.new_messages.notify_one();
        overflow
    }

    /// [`Channel::put_messages`] for a whole queue the topic held: an empty memory queue
    /// with room for all of it takes the queue itself, already allocated and filled.
    pub fn put_queue(&self, messages: VecDeque<Message>) -> Vec<Message> {
        let count = messages.len();
        {
            let mut state = self.state.lock();
            if !state.memory.is_empty() || count > self.mem_queue_size {
                drop(state);
                return self.put_messages(messages);
            }
            state.memory = messages;
        }
        self.message_count
            .fetch_add(count as u64, Ordering::Relaxed);
        self.new_messages.notify_one();
        Vec::new()
    }

    /// Puts a message from the topic that must wait until `due_ns` first.
    /// With `--mem-queue-size=0` the message goes to the disk queue like every other one,
    /// so an acknowledged DPUB survives a crash; it is returned for the caller to journal
    /// its due time and then write it, and it waits again when read back, also after a
    /// restart or a crash.
    pub fn put_deferred(&self, message: Message, due_ns: i64) -> Deferral {
        self.message_count.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock();
        if let Some(backend) = &self.backend {
            if self.mem_queue_size == 0 {
                state.note_due(message.id, due_ns);
                return Deferral::ToDisk(message);
            }
            if must_spill(backend, &state.deferred, &message, due_ns) {
                return Deferral::ToSpill(message);
            }
        }
        // An id collision is impossible for a fresh message: ids are unique per topic.
        let _ = state.deferred.push(message, due_ns);
        Deferral::Kept
    }

    /// Writes deferred messages to the spill segments. Should that fail, they wait in
    /// memory after all: a full disk costs memory, never a message.
    pub async fn spill_deferred(&self, entries: Vec<(Message, i64)>) {
        let Some(backend) = &self.backend else {
            self.keep_deferred(entries);
            return;
        };
        let failed = backend.deferred_spill().put(&entries).await;
        self.keep_deferred(failed);
    }

    fn keep_deferred(&self, entries: Vec<(Message, i64)>) {
        let mut state = self.state.lock();
        for (message, due_ns) in entries {
            let _ = state.deferred.push(message, due_ns);
        }
    }

    /// Moves deferred messages read from the disk queue, still held there, to the
    /// synced spill segments ([`Backend::spill_read_early`]); their due times are in the
    /// journal already. Should the write fail, they wait in memory after all, held.
    pub async fn spill_read_early(&self, entries: Vec<(Message, i64)>) {
        let Some(backend) = &self.backend else {
            self.keep_deferred(entries);
            return;
        };
        let failed = backend.spill_read_early(&entries).await;
        self.keep_held(failed);
    }

    /// For [`Requeued::JournalDueAndSpill`]: journals (synced) the message's new due
    /// time, then moves it to the synced spill segments. Should the journal fail, the
    /// message waits in memory, held on disk, as a requeued message within the budget does.
    pub async fn journal_and_spill_held(
        &self,
        message: Message,
        due_ns: i64,
    ) -> Result<(), JournalError> {
        let journaled = self.journal_due_time(message.id, due_ns).await;
        match journaled {
            Ok(()) => self.spill_read_early(vec![(message, due_ns)]).await,
            Err(_) => self.keep_held(vec![(message, due_ns)]),
        }
        journaled
    }

    /// Deferred messages held on disk that must wait in memory after all.
    fn keep_held(&self, entries: Vec<(Message, i64)>) {
        if entries.is_empty() {
            return;
        }
        let mut state = self.state.lock();
        for (message, due_ns) in entries {
            state.note_due(message.id, due_ns);
            state.wait_held(message, due_ns);
        }
    }

    /// Disk loop work: writes out the spill records gathered since the last tick, and
    /// once the earliest spill window has started, its messages come back to memory to
    /// wait the rest of their time. A look at two counters otherwise.
    pub async fn load_due_spill(&self, now_ns: i64) {
        let Some(backend) = &self.backend else {
            return;
        };
        let spill = backend.deferred_spill();
        if spill.count() > 0 {
            let failed = spill.write_out().await;
            self.keep_deferred(failed);
        }
        if spill.next_window_start() <= now_ns {
            let loaded = spill.take_due(now_ns).await;
            self.keep_deferred(loaded);
        }
        if backend.read_early_spill().count() > 0 {
            let failed = backend.write_out_read_early().await;
            self.keep_held(failed);
            self.return_read_early(backend, now_ns).await;
        }
    }

    /// Brings back the messages of every synced spill window that started, to wait the
    /// rest of their time. One whose copy in the disk queue a crash could still bring
    /// back is held there again and waits in memory; the others are written back to the
    /// queue, their due times noted (and journaled) first so that no read and no crash
    /// finds them without. Either way there is one copy a crash can bring back. A
    /// window's segment goes once its messages are safe; after a failure nothing of it
    /// is brought back, it stays, and the next tick tries the whole window again.
    async fn return_read_early(&self, backend: &Backend, now_ns: i64) {
        let spill = backend.read_early_spill();
        while let Some(window) = spill.started_window(now_ns).await {
            let records = spill.read_window_records(window).await;
            let (held, to_write) = backend.hold_again_or_return(records).await;
            if !to_write.is_empty() {
                let due: Vec<(MessageId, i64)> = to_write.iter().map(|(m, d)| (m.id, *d)).collect();
                {
                    let mut state = self.state.lock();
                    for &(id, due_ns) in &due {
                        state.note_due(id, due_ns);
                    }
                }
                let messages: Vec<Message> = to_write.into_iter().map(|(m, _)| m).collect();
                let returned = match backend.due_journal().append(&due).await {
                    Ok(()) => backend.put_synced(&messages).await,
                    Err(error) => {
                        tracing::error!(topic = %self.topic_name, channel = %self.name, %error, "deferred messages wait on disk until their due times can be journaled");
                        return;
                    }
                };
                if let Err(error) = returned {
                    tracing::error!(topic = %self.topic_name, channel = %self.name, %error, "deferred messages wait on disk until the disk queue takes them back");
                    return;
                }
            }
            // Only now: were the window kept for another try, they would come twice.
            self.keep_held(held);
            spill.remove_window(window).await;
            self.new_messages.notify_one();
        }
    }

    /// Hands up to `max` messages to `client`, recording them as in flight until
    /// `now_ns + msg_timeout_ns`, and appends their message frames to `out`. `keep`
    /// decides sampling: a message it rejects is consumed and dropped, as Go does.
    /// Returns how many messages were handed out.
    ///
    /// The frames are written while the message moves into the in-flight queue, so a
    /// delivery neither clones the message nor allocates.
    pub fn take_for_client(
        &self,
        client: &ClientRef,
        max: usize,
        now_ns: i64,
        msg_timeout_ns: i64,
        mut keep: impl FnMut() -> bool,
        out: &mut BytesMut,
    ) -> usize {
        let mut taken = 0;
        let more_left = {
            let mut state = self.state.lock();
            if state.paused {
                return 0;
            }
            let deadline = now_ns.saturating_add(msg_timeout_ns);
            while taken < max {
                let Some(message) = state.memory.pop_front() else {
                    break;
                };
                let held = state.take_held(&message.id);
                if state.finished_elsewhere.take(&message.id) || !keep() {
                    if held {
                        self.release(&message.id);
                    }
                    continue;
                }
                let id = client.id;
                if self.start_in_flight(&mut state, message, id, now_ns, deadline, held, out) {
                    taken += 1;
                }
            }
            !state.memory.is_empty()
        };
        client.sent_messages(taken as u64);
        if more_left {
            // Another ready client may take what this one had no room for.
            self.new_messages.notify_one();
        }
        taken
    }

    /// Hands up to `max` messages from the disk queue to `client`, like
    /// [`Channel::take_for_client`] does from memory. Used when memory is empty.
    /// Deferred messages read before their time wait in memory, held on disk, or beyond
    /// the memory budget in the synced spill segments; reading goes on past them until
    /// something is handed out or the disk has nothing more.
    pub async fn take_from_backend(
        &self,
        client: &ClientRef,
        max: usize,
        now_ns: i64,
        msg_timeout_ns: i64,
        mut keep: impl FnMut() -> bool,
        out: &mut BytesMut,
    ) -> Result<usize, DiskQueueError> {
        let Some(backend) = &self.backend else {
            return Ok(0);
        };
        if !backend.may_have_messages() || self.is_paused() {
            return Ok(0);
        }
        self.restore_due_times(now_ns).await;
        let deadline = now_ns.saturating_add(msg_timeout_ns);
        let mut taken = 0;
        while taken == 0 && backend.may_have_messages() {
            // Held on disk until FIN: a crash while they are in flight redelivers them.
            let messages = backend.read_held(max).await?;
            if messages.is_empty() {
                break;
            }
            let mut to_spill = Vec::new();
            {
                let mut state = self.state.lock();
                for message in messages {
                    match state.due_on_disk.get(&message.id) {
                        Some(&due_ns) if due_ns > now_ns => {
                            if must_spill_held(backend, &state.deferred, &message, due_ns, now_ns) {
                                state.due_on_disk.remove(&message.id);
                                to_spill.push((message, due_ns));
                            } else {
                                state.wait_held(message, due_ns);
                            }
                            continue;
                        }
                        Some(_) => {
                            state.due_on_disk.remove(&message.id);
                        }
                        None => {}
                    }
                    if !state.finished_elsewhere.take(&message.id) && keep() {
                        let id = client.id;
                        if self
                            .start_in_flight(&mut state, message, id, now_ns, deadline, true, out)
                        {
                            taken += 1;
                        }
                    } else {
                        backend.release(&message.id);
                    }
                }
            }
            if !to_spill.is_empty() {
                self.spill_read_early(to_spill).await;
            }
        }
        client.sent_messages(taken as u64);
        Ok(taken)
    }

    /// Exit (Go's `Channel.Close` flush): every message still in memory, in flight or
    /// deferred goes to the disk queue, which is then synced and closed. In-flight
    /// messages keep their attempts, so they come back as redeliveries. The due times of
    /// the deferred ones, and of those still unread on disk, are journaled first (Go's
    /// files stay Go's: Go started on them delivers everything at once). An ephemeral
    /// channel has no disk queue and loses them, as in Go.
    pub async fn flush_to_backend(&self, now_ns: i64) -> Result<(), DiskQueueError> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        self.restore_due_times(now_ns).await;
        let (pending, due) = {
            let mut state = self.state.lock();
            let mut pending: Vec<Message> = state.memory.drain(..).collect();
            pending.extend(state.in_flight.drain().into_iter().map(|e| e.message));
            let mut due = std::mem::take(&mut state.due_on_disk);
            for (message, due_ns) in state.deferred.drain_with_due() {
                due.insert(message.id, due_ns);
                pending.push(message);
            }
            state.due_on_disk_waiting = 0;
            state.held_waiting.clear();
            (pending, due)
        };
        let journaled = backend.due_journal().rewrite(|| due).await;
        if let Err(error) = journaled {
            tracing::error!(topic = %self.topic_name, channel = %self.name, %error, "due times of deferred messages lost: they are delivered at once after the restart");
        }
        // Everything held is written again below: the old records need not be kept.
        backend.release_all();
        self.flush_spill_to_backend(backend, backend.deferred_spill())
            .await?;
        self.flush_spill_to_backend(backend, backend.read_early_spill())
            .await?;
        let written = backend.put(&pending).await;
        let closed = backend.close().await;
        written.and(closed)
    }

    /// Exit: the spilled messages go to the disk queue too, one window at a time (so
    /// memory holds one window, not all), each window's due times journaled first; a
    /// segment is removed once its messages are written.
    async fn flush_spill_to_backend(
        &self,
        backend: &Backend,
        spill: &DeferredSpill,
    ) -> Result<(), DiskQueueError> {
        for window in spill.windows().await {
            let entries = spill.read_window(window).await;
            let due: Vec<(MessageId, i64)> = entries.iter().map(|(m, d)| (m.id, *d)).collect();
            if let Err(error) = backend.due_journal().append(&due).await {
                tracing::error!(topic = %self.topic_name, channel = %self.name, %error, "due times of deferred messages lost: they are delivered at once after the restart");
            }
            let messages: Vec<Message> = entries.into_iter().map(|(m, _)| m).collect();
            backend.put(&messages).await?;
            spill.remove_window(window).await;
        }
        Ok(())
    }

    /// Counts a delivery attempt, appends the message's frame to `out` and records the
    /// message as in flight to `client_id` (`held`: held on disk). False (and nothing
    /// appended) if it could not be recorded.
    #[allow(clippy::too_many_arguments)]
    fn start_in_flight(
        &self,
        state: &mut ChannelState,
        mut message: Message,
        client_id: u64,
        now_ns: i64,
        deadline_ns: i64,
        held: bool,
        out: &mut BytesMut,
    ) -> bool {
        message.attempts = message.attempts.saturating_add(1);
        let mark = out.len();
        frame::write_message_frame(out, &message);
        let id = message.id;
        if let Err(error) = state
            .in_flight
            .push(message, client_id, now_ns, deadline_ns, held)
        {
            // Unreachable while a message lives in exactly one queue of its channel;
            // should it happen, the copy already in flight is the one kept.
            out.truncate(mark);
            tracing::error!(topic = %self.topic_name, channel = %self.name, %id, %error, "duplicate delivery skipped");
            return false;
        }
        true
    }

    /// FIN: the client is done with the message. With latency tracking on, its age
    /// (`now_ns()` − its timestamp) is recorded; the clock is read only then.
    pub fn finish(
        &self,
        client_id: u64,
        id: &MessageId,
        now_ns: impl FnOnce() -> i64,
    ) -> Result<InFlight, InFlightError> {
        let entry = self.state.lock().in_flight.remove(id, client_id)?;
        if entry.held {
            self.release(id);
        }
        if let Some(e2e) = &self.e2e {
            let now = now_ns();
            e2e.lock()
                .insert(now.saturating_sub(entry.message.timestamp_ns), now);
        }
        Ok(entry)
    }

    /// FIN for a run of ids from one client, under one lock: for each id in order what
    /// [`Channel::finish`] does. `failed(i, error)` is called, in order, for each
    /// `ids[i]` that was not finished. Returns how many were.
    pub fn finish_many(
        &self,
        client_id: u64,
        ids: &[MessageId],
        now_ns: impl FnOnce() -> i64,
        mut failed: impl FnMut(usize, InFlightError),
    ) -> usize {
        let mut finished = 0;
        // Filled only for messages held on disk, and with latency tracking on.
        let mut held: Vec<MessageId> = Vec::new();
        let mut timestamps: Vec<i64> = Vec::new();
        {
            let mut state = self.state.lock();
            for (i, id) in ids.iter().enumerate() {
                match state.in_flight.remove(id, client_id) {
                    Ok(entry) => {
                        finished += 1;
                        if entry.held {
                            held.push(*id);
                        }
                        if self.e2e.is_some() {
                            timestamps.push(entry.message.timestamp_ns);
                        }
                    }
                    Err(error) => failed(i, error),
                }
            }
        }
        if !held.is_empty() {
            if let Some(backend) = &self.backend {
                backend.release_many(&held);
            }
        }
        if let (Some(e2e), false) = (&self.e2e, timestamps.is_empty()) {
            let now = now_ns();
            let mut window = e2e.lock();
            for timestamp in timestamps {
                window.insert(now.saturating_sub(timestamp), now);
            }
        }
        finished
    }

    /// The message `id`, read from disk, is done with: its record no longer holds the
    /// disk queue's read position back.
    fn release(&self, id: &MessageId) {
        if let Some(backend) = &self.backend {
            backend.release(id);
        }
    }

    /// [`Buggify::fin_loses_next_message`](crate::nsqd::Buggify): drops the next message
    /// waiting in memory, as a lost-message bug would.
    pub fn buggify_drop_next(&self) {
        self.state.lock().memory.pop_front();
    }

    /// REQ: back to the queue now (`delay_ns == 0`) or after `delay_ns`. For a message
    /// held on disk and delayed, returns its new due time, which the caller journals
    /// with [`Channel::journal_due_time`].
    pub fn requeue(
        &self,
        client_id: u64,
        id: &MessageId,
        now_ns: i64,
        delay_ns: i64,
    ) -> Result<Requeued, InFlightError> {
        let mut state = self.state.lock();
        let entry = state.in_flight.remove(id, client_id)?;
        self.requeue_count.fetch_add(1, Ordering::Relaxed);
        if delay_ns <= 0 {
            if entry.held {
                state.held_waiting.insert(entry.message.id);
            }
            state.memory.push_back(entry.message);
            drop(state);
            self.new_messages.notify_one();
            return Ok(Requeued::Done);
        }
        let due_ns = now_ns.saturating_add(delay_ns);
        if entry.held {
            if let Some(backend) = &self.backend {
                if must_spill_held(backend, &state.deferred, &entry.message, due_ns, now_ns) {
                    return Ok(Requeued::JournalDueAndSpill(entry.message, due_ns));
                }
            }
            state.note_due(entry.message.id, due_ns);
            state.wait_held(entry.message, due_ns);
            return Ok(Requeued::JournalDue(due_ns));
        }
        if let Some(backend) = &self.backend {
            if must_spill(backend, &state.deferred, &entry.message, due_ns) {
                return Ok(Requeued::Spill(entry.message, due_ns));
            }
        }
        let _ = state.deferred.push(entry.message, due_ns);
        Ok(Requeued::Done)
    }

    /// TOUCH: restarts the message's timeout, never past delivery + `max_msg_timeout_ns`.
    pub fn touch(
        &self,
        client_id: u64,
        id: &MessageId,
        now_ns: i64,
        msg_timeout_ns: i64,
        max_msg_timeout_ns: i64,
    ) -> Result<(), InFlightError> {
        self.state
            .lock()
            .in_flight
            .reschedule(id, client_id, |entry| {
                let wanted = now_ns.saturating_add(msg_timeout_ns);
                let cap = entry.delivered_ns.saturating_add(max_msg_timeout_ns);
                if wanted - entry.delivered_ns >= max_msg_timeout_ns {
                    cap
                } else {
                    wanted
                }
            })
    }

    /// Queue scan work: times out expired in-flight messages (back to the queue, the
    /// owning client gets its slot back). Returns whether anything was due.
    pub fn process_in_flight(&self, now_ns: i64) -> bool {
        let mut expired = Vec::new();
        let mut state = self.state.lock();
        while let Some(entry) = state.in_flight.pop_expired(now_ns) {
            expired.push(entry);
        }
        if expired.is_empty() {
            return false;
        }
        let owners: Vec<ClientRef> = expired
            .iter()
            .filter_map(|e| state.clients.get(&e.client_id).cloned())
            .collect();
        self.timeout_count
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        for entry in expired {
            if entry.held {
                state.held_waiting.insert(entry.message.id);
            }
            state.memory.push_back(entry.message);
        }
        drop(state);
        for owner in owners {
            owner.in_flight_done();
        }
        self.new_messages.notify_one();
        true
    }

    /// Queue scan work: moves due deferred messages to the queue. Returns whether any was due.
    pub fn process_deferred(&self, now_ns: i64) -> bool {
        let mut state = self.state.lock();
        let mut moved = false;
        while let Some(message) = state.deferred.pop_due(now_ns) {
            if !state.due_on_disk.is_empty() && state.due_on_disk.remove(&message.id).is_some() {
                state.due_on_disk_waiting = state.due_on_disk_waiting.saturating_sub(1);
            }
            state.memory.push_back(message);
            moved = true;
        }
        drop(state);
        if moved {
            self.new_messages.notify_one();
        }
        moved
    }

    /// Subscribes a client.
    pub fn add_client(&self, client: ClientRef) -> Result<(), ChannelError> {
        let mut state = self.state.lock();
        if state.exiting {
            return Err(ChannelError::Exiting);
        }
        if state.clients.contains_key(&client.id) {
            return Ok(());
        }
        if self.max_consumers > 0 && state.clients.len() as i64 >= self.max_consumers {
            return Err(ChannelError::TooManyConsumers {
                topic: self.topic_name.clone(),
                channel: self.name.clone(),
                limit: self.max_consumers,
            });
        }
        state.clients.insert(client.id, client);
        Ok(())
    }

    /// Unsubscribes a client. Returns true when an ephemeral channel just lost its last
    /// client and must now be deleted. Its in-flight messages stay until they time out.
    pub fn remove_client(&self, client_id: u64) -> bool {
        let mut state = self.state.lock();
        if state.clients.remove(&client_id).is_none() {
            return false;
        }
        if self.ephemeral && state.clients.is_empty() && !state.exiting {
            state.exiting = true;
            return true;
        }
        false
    }

    /// Whether the channel is being deleted.
    pub fn is_exiting(&self) -> bool {
        self.state.lock().exiting
    }

    /// Marks the channel deleted and closes its clients' connections.
    pub fn close(&self) {
        let clients: Vec<ClientRef> = {
            let mut state = self.state.lock();
            state.exiting = true;
            state.clients.values().cloned().collect()
        };
        for client in clients {
            client.close.cancel();
        }
    }

    /// Deletes the channel (Go's `Channel.Delete`): closes its clients' connections and
    /// drops every message. The topic has already forgotten it.
    pub fn delete(&self) {
        self.close();
        self.empty();
    }

    /// Pauses or unpauses delivery.
    pub fn set_paused(&self, paused: bool) {
        let clients: Vec<ClientRef> = {
            let mut state = self.state.lock();
            state.paused = paused;
            state.clients.values().cloned().collect()
        };
        for client in clients {
            client.ready_changed.notify_one();
        }
    }

    /// Whether delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.state.lock().paused
    }

    /// Drops every queued, in-flight and deferred message.
    pub fn empty(&self) {
        let clients: Vec<ClientRef> = {
            let mut state = self.state.lock();
            state.memory.clear();
            state.in_flight.drain();
            state.deferred.drain();
            state.due_on_disk.clear();
            state.due_on_disk_waiting = 0;
            state.held_waiting.clear();
            state.clients.values().cloned().collect()
        };
        for client in clients {
            client.in_flight_cleared();
        }
    }

    /// End-to-end latency over the window as of `now_ns`; `{"count":0,"percentiles":null}`
    /// when tracking is off.
    pub fn e2e_latency(&self, now_ns: i64) -> E2eLatency {
        match &self.e2e {
            Some(window) => window.lock().query(now_ns),
            None => E2eLatency::default(),
        }
    }

    /// Adds this channel's latency window, as of `now_ns`, to a topic's `total`.
    pub fn merge_e2e_into(&self, total: &mut LatencyWindow, now_ns: i64) {
        if let Some(window) = &self.e2e {
            total.merge(&mut window.lock(), now_ns);
        }
    }

    /// Numbers for `/stats`.
    pub fn snapshot(&self) -> ChannelSnapshot {
        let state = self.state.lock();
        ChannelSnapshot {
            name: self.name.clone(),
            depth: state.memory.len() as u64 + self.backend_depth(),
            backend_depth: self.backend_depth(),
            in_flight_count: state.in_flight.len() as u64,
            deferred_count: state.deferred_count() as u64
                + self.backend.as_ref().map_or(0, |b| {
                    b.deferred_spill().count() + b.read_early_spill().count()
                }),
            message_count: self.message_count.load(Ordering::Relaxed),
            requeue_count: self.requeue_count.load(Ordering::Relaxed),
            timeout_count: self.timeout_count.load(Ordering::Relaxed),
            paused: state.paused,
            clients: state.clients.values().cloned().collect(),
        }
    }
}

/// A handle to a channel.
pub type ChannelRef = Arc<Channel>;

/// Whether a deferred message must go to the spill segments: the memory budget is
/// spent, or messages of its due window (or later) already wait there, so it must leave
/// after them.
fn must_spill(backend: &Backend, deferred: &DeferredQueue, message: &Message, due_ns: i64) -> bool {
    deferred.bytes().saturating_add(memory_cost(message)) > backend.deferred_memory_budget()
        || backend.deferred_spill().next_window_start() <= due_ns
}

/// Whether a deferred message held on disk (read early, or requeued with a delay) must
/// leave memory for the synced spill segments: its window has not started (or it would
/// come straight back), and the memory budget is spent or messages of its window (or
/// later) already wait there.
fn must_spill_held(
    backend: &Backend,
    deferred: &DeferredQueue,
    message: &Message,
    due_ns: i64,
    now_ns: i64,
) -> bool {
    let window_start = due_ns.div_euclid(WINDOW_NS).saturating_mul(WINDOW_NS);
    window_start > now_ns
        && (deferred.bytes().saturating_add(memory_cost(message))
            > backend.deferred_memory_budget()
            || backend.read_early_spill().next_window_start() <= due_ns)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::nsqd::client::test_client;

    const SEC: i64 = 1_000_000_000;

    /// Puts a message published at `published_ns` and hands it to `client`.
    fn deliver(channel: &Channel, client: &ClientRef, n: u64, published_ns: i64) -> MessageId {
        let id = MessageId::from_u64(n);
        channel.put_messages([Message::new(id, published_ns, Bytes::from_static(b"x"))]);
        let mut out = BytesMut::new();
        let taken = channel.take_for_client(client, 1, published_ns, 60 * SEC, || true, &mut out);
        assert_eq!(taken, 1);
        let mut expected = Message::new(id, published_ns, Bytes::from_static(b"x"));
        expected.attempts = 1;
        let mut frame = BytesMut::new();
        frame::write_message_frame(&mut frame, &expected);
        assert_eq!(out, frame, "the message frame, attempts counted");
        id
    }

    #[test]
    fn fin_reads_no_clock_and_reports_null_when_tracking_is_off() {
        let channel = Channel::new("t", "c", 100, 0, None, 0, None);
        let client = test_client();
        let id = deliver(&channel, &client, 1, SEC);
        channel
            .finish(client.id, &id, || panic!("the clock is not read"))
            .unwrap();
        assert_eq!(channel.e2e_latency(2 * SEC), E2eLatency::default());
    }

    #[test]
    fn fin_records_age_since_publish_and_a_failed_fin_records_nothing() {
        let config = E2eConfig::new(&[1.0], Duration::from_secs(600)).unwrap();
        let channel = Channel::new("t", "c", 100, 0, Some(&config), 0, None);
        let client = test_client();
        let id = deliver(&channel, &client, 1, SEC);
        assert!(channel.finish(client.id + 1, &id, || 2 * SEC).is_err());
        channel.finish(client.id, &id, || SEC + 200).unwrap();
        assert!(channel.finish(client.id, &id, || 3 * SEC).is_err());
        let latency = channel.e2e_latency(SEC + 200);
        assert_eq!(latency.count, 1);
        assert_eq!(latency.percentiles.unwrap()[0].value, 200);
        let mut total = LatencyWindow::new(&config, SEC);
        channel.merge_e2e_into(&mut total, SEC + 200);
        assert_eq!(total.query(SEC + 200).count, 1);
    }

    #[test]
    fn finish_many_finishes_in_order_and_reports_each_failure() {
        let config = E2eConfig::new(&[1.0], Duration::from_secs(600)).unwrap();
        let channel = Channel::new("t", "c", 100, 0, Some(&config), 0, None);
        let client = test_client();
        let a = deliver(&channel, &client, 1, SEC);
        let b = deliver(&channel, &client, 2, SEC);
        let mut failures = Vec::new();
        let ids = [a, MessageId::from_u64(9), a, b];
        let finished =
            channel.finish_many(client.id, &ids, || SEC + 100, |i, e| failures.push((i, e)));
        assert_eq!(finished, 2);
        assert_eq!(
            failures,
            [
                (1, InFlightError::NotInFlight),
                (2, InFlightError::NotInFlight)
            ]
        );
        assert_eq!(channel.e2e_latency(SEC + 100).count, 2);
        let other = channel.finish_many(client.id + 1, &[b], || panic!("no clock"), |_, _| {});
        assert_eq!(other, 0);
    }

    /// A message read from disk stays held through a REQ and a redelivery from memory,
    /// until its FIN; a message that never was on disk never touches the hold book.
    #[tokio::test]
    async fn held_messages_stay_held_until_fin_across_requeues() {
        use crate::env::MemFs;
        use crate::nsqd::diskqueue::DiskQueueConfig;
        let backend = Arc::new(Backend::new(
            Arc::new(MemFs::new()),
            "data".into(),
            "t:c".into(),
            DiskQueueConfig::default(),
        ));
        let on_disk: Vec<Message> = (1..=2)
            .map(|n| Message::new(MessageId::from_u64(n), SEC, Bytes::from_static(b"d")))
            .collect();
        backend.put(&on_disk).await.unwrap();
        let channel = Channel::new("t", "c", 100, 0, None, 0, Some(backend.clone()));
        let client = test_client();
        let mut out = BytesMut::new();
        let taken = channel
            .take_from_backend(&client, 10, SEC, 60 * SEC, || true, &mut out)
            .await
            .unwrap();
        assert_eq!(taken, 2);
        assert_eq!(backend.held_count(), 2);
        let (a, b) = (on_disk[0].id, on_disk[1].id);
        channel.requeue(client.id, &a, SEC, 0).unwrap();
        channel.finish(client.id, &b, || SEC).unwrap();
        assert_eq!(backend.held_count(), 1, "the requeued one is still held");
        assert_eq!(
            channel.take_for_client(&client, 10, SEC, 60 * SEC, || true, &mut out),
            1
        );
        let fresh = deliver(&channel, &client, 3, SEC);
        channel.finish(client.id, &fresh, || SEC).unwrap();
        assert_eq!(backend.held_count(), 1);
        // Timed out, it waits in memory still held, and comes back held.
        assert!(channel.process_in_flight(61 * SEC + SEC));
        assert_eq!(
            channel.take_for_client(&client, 10, 62 * SEC, 60 * SEC, || true, &mut out),
            1
        );
        assert_eq!(channel.finish_many(client.id, &[a], || SEC, |_, _| {}), 1);
        assert_eq!(backend.held_count(), 0, "released by its FIN");
    }
}
