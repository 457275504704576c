//! A topic: the stream producers publish to, copied to each of its channels.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::backend::Backend;
use super::channel::{Channel, ChannelRef, Deferral};
use super::diskqueue::{DiskQueueConfig, DiskQueueError};
use super::due_journal::JournalError;
use super::due_times::DueTimes;
use super::e2e::E2eConfig;
use super::lookup::Registrations;
use crate::protocol::message::MessageId;
use crate::protocol::{names, GuidFactory, Message};

/// Why a publish was refused; the text follows `PUB failed ` on the wire.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The topic is being deleted or nsqd is exiting.
    #[error("exiting")]
    Exiting,
    /// Writing to (or reading from) a disk queue failed.
    #[error(transparent)]
    Disk(#[from] DiskQueueError),
    /// Writing the due times of deferred messages failed.
    #[error(transparent)]
    DueTimes(#[from] JournalError),
}

/// What learns of every change a peer must repeat, in the order the topic makes them:
/// replication's owner side. It is told under the topic's lock, so it must only queue.
pub trait TopicWatcher: Send + Sync + std::fmt::Debug {
    /// `messages` were just minted, due at `due_ns` (0: now), for the non-ephemeral
    /// `channels` the topic has (none: for the channels it will have). Returns the
    /// number the publisher waits for.
    fn published(&self, topic: &str, messages: &[Message], due_ns: i64, channels: &[String])
        -> u64;
    /// A non-ephemeral channel was created (or deleted).
    fn channel_changed(&self, topic: &str, channel: &str, created: bool);
}

/// A message taken over from a lost peer, for [`Topic::adopt`].
#[derive(Debug, Clone)]
pub struct AdoptedMessage {
    /// The message as the peer held it.
    pub message: Message,
    /// When it is due (ns; 0 or past: now).
    pub due_ns: i64,
    /// The channels it is still unfinished on (none: the topic's, whichever they are).
    pub channels: Vec<String>,
}

/// Makes the disk queues of a topic and its channels (none for ephemeral names).
#[derive(Clone)]
pub struct BackendFactory {
    /// The file system.
    pub fs: Arc<dyn crate::env::Fs>,
    /// `--data-path`.
    pub data_path: std::path::PathBuf,
    /// Sizes and sync policy from the options.
    pub config: DiskQueueConfig,
    /// The planted bugs that concern disk queues (none outside the simulator's tests).
    pub buggify: crate::nsqd::Buggify,
    /// `--max-deferred-memory`, per channel.
    pub deferred_memory_budget: usize,
}

impl std::fmt::Debug for BackendFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendFactory")
            .field("data_path", &self.data_path)
            .finish_non_exhaustive()
    }
}

impl BackendFactory {
    /// The disk queue called `name` (`<topic>` or `<topic>:<channel>`), unless the topic or
    /// channel is ephemeral.
    fn make(&self, name: &str, ephemeral: bool) -> Option<Arc<Backend>> {
        (!ephemeral).then(|| {
            let backend = Backend::new(
                self.fs.clone(),
                self.data_path.clone(),
                name.to_string(),
                self.config,
            )
            .with_deferred_memory_budget(self.deferred_memory_budget);
            Arc::new(backend.planting(self.buggify))
        })
    }
}

/// Messages a publish could not keep in memory: they go to this disk queue (or its
/// channel's spill segments), and then `channel` (if any) is told it has something to
/// read.
struct DiskWrite {
    backend: Arc<Backend>,
    channel: Option<ChannelRef>,
    messages: Vec<Message>,
    /// When the messages are due, if deferred: journaled before they are written.
    due_ns: Option<i64>,
    /// Deferred messages beyond the channel's memory budget, for its spill segments
    /// instead of the disk queue.
    spill: bool,
}

/// Messages waiting in the topic's memory for a channel to take them.
///
/// Undelayed messages keep their own queue so that, when the channels have room for all
/// of them, the whole queue moves to a channel at once instead of message by message.
#[derive(Debug, Default)]
struct Held {
    /// Messages to deliver at once, oldest first.
    now: VecDeque<Message>,
    /// DPUB messages with their delay, oldest first; the delay counts from when a
    /// channel takes them, as in Go.
    deferred: VecDeque<(Message, i64)>,
}

impl Held {
    fn len(&self) -> usize {
        self.now.len() + self.deferred.len()
    }

    fn is_empty(&self) -> bool {
        self.now.is_empty() && self.deferred.is_empty()
    }

    fn push(&mut self, message: Message, defer_ns: i64) {
        if defer_ns > 0 {
            self.deferred.push_back((message, defer_ns));
        } else {
            self.now.push_back(message);
        }
    }

    fn clear(&mut self) {
        *self = Held::default();
    }

    /// Every message, undelayed first, for the disk queue, and the due times of the
    /// delayed ones were a channel to take them at `now_ns`, for the due-time journal.
    fn take_all(&mut self, now_ns: i64) -> (Vec<Message>, Vec<(MessageId, i64)>) {
        let Held { now, deferred } = std::mem::take(self);
        let due = deferred
            .iter()
            .map(|(message, defer_ns)| (message.id, now_ns.saturating_add(*defer_ns)))
            .collect();
        let messages = now
            .into_iter()
            .chain(deferred.into_iter().map(|(message, _)| message))
            .collect();
        (messages, due)
    }
}

#[derive(Debug)]
struct TopicState {
    channels: BTreeMap<String, ChannelRef>,
    /// Messages held while the topic has no channel or is paused.
    pending: Held,
    paused: bool,
    /// False while a new topic's channels are being pre-created from lookupd (Go's
    /// `Start()` not yet called): messages are held as if paused.
    started: bool,
    exiting: bool,
    guid: GuidFactory,
    /// When each DPUB message parked on the topic's disk queue is due (ns), as the
    /// topic's due-time journal says. Go's disk format has no room for a delay, so
    /// without this a DPUB published before its topic had a channel would be delivered at
    /// once when one appears. An entry stays until its time passes, also after its
    /// message moved to the channels: should a crash make the topic read it again, it
    /// still waits.
    due_on_disk: DueTimes,
    /// The earliest time in `due_on_disk` (`i64::MAX` when empty): the disk loop looks
    /// at the entries only once it has passed.
    earliest_due: i64,
    /// Whether the due times an earlier run journaled are in `due_on_disk`.
    due_restored: bool,
}

impl TopicState {
    /// Whether messages may leave the topic (started and not paused).
    fn flows(&self) -> bool {
        self.started && !self.paused
    }

    /// Remembers that the parked DPUB `id` is due at `due_ns`.
    fn note_due(&mut self, id: MessageId, due_ns: i64) {
        self.due_on_disk.insert(id, due_ns);
        self.earliest_due = self.earliest_due.min(due_ns);
    }
}

/// Numbers for `/stats`.
#[derive(Debug, Clone)]
pub struct TopicSnapshot {
    /// Topic name.
    pub name: String,
    /// Messages held in the topic itself (memory and disk).
    pub depth: u64,
    /// Messages on the topic's disk.
    pub backend_depth: u64,
    /// Messages ever published.
    pub message_count: u64,
    /// Bytes ever published.
    pub message_bytes: u64,
    /// Whether it is paused.
    pub paused: bool,
    /// Its channels, by name.
    pub channels: Vec<ChannelRef>,
}

/// One topic.
#[derive(Debug)]
pub struct Topic {
    /// The topic's name.
    pub name: String,
    /// `#ephemeral` topics drop overflow and vanish with their last channel.
    pub ephemeral: bool,
    mem_queue_size: usize,
    max_channel_consumers: i64,
    /// Latency tracking for every channel it creates (None: off).
    e2e: Option<E2eConfig>,
    state: Mutex<TopicState>,
    message_count: AtomicU64,
    message_bytes: AtomicU64,
    /// Mirrors `!pending.is_empty()` so consumers can check it without the lock.
    has_pending: AtomicBool,
    /// Makes the disk queues of this topic's channels (None: memory only, in tests).
    backends: Option<BackendFactory>,
    /// The topic's own disk queue (None for ephemeral topics).
    backend: Option<Arc<Backend>>,
    /// Where channel creations and deletions are queued for the lookupd loop (None: no
    /// lookupd loop, in tests and benches).
    registrations: Option<Arc<Registrations>>,
    /// Told of every message minted and channel changed (None: not replicated).
    watcher: Option<Arc<dyn TopicWatcher>>,
}

impl Topic {
    /// A new topic with no channels; its channels track end-to-end latency per `e2e`.
    pub fn new(
        name: &str,
        node_id: i64,
        mem_queue_size: i64,
        max_channel_consumers: i64,
        e2e: Option<E2eConfig>,
        backends: Option<BackendFactory>,
    ) -> Self {
        let ephemeral = names::is_ephemeral(name);
        let backend = backends.as_ref().and_then(|b| b.make(name, ephemeral));
        Topic {
            name: name.to_string(),
            ephemeral: names::is_ephemeral(name),
            mem_queue_size: usize::try_from(mem_queue_size).unwrap_or(0),
            max_channel_consumers,
            e2e,
            state: Mutex::new(TopicState {
                channels: BTreeMap::new(),
                pending: Held::default(),
                paused: false,
                started: true,
                exiting: false,
                guid: GuidFactory::new(node_id),
                due_on_disk: DueTimes::default(),
                earliest_due: i64::MAX,
                due_restored: backend.is_none(),
            }),
            message_count: AtomicU64::new(0),
            message_bytes: AtomicU64::new(0),
            has_pending: AtomicBool::new(false),
            backends,
            backend,
            registrations: None,
            watcher: None,
        }
    }

    /// Tells `watcher` of every message minted and channel changed from now on (a
    /// replicated topic; never an ephemeral one).
    pub(crate) fn with_watcher(mut self, watcher: Arc<dyn TopicWatcher>) -> Self {
        if !self.ephemeral {
            self.watcher = Some(watcher);
        }
        self
    }

    /// Queues a REGISTER or UNREGISTER for each channel created or deleted from now on.
    pub(crate) fn with_registrations(mut self, registrations: Arc<Registrations>) -> Self {
        self.registrations = Some(registrations);
        self
    }

    /// The topic's own disk queue.
    pub fn backend(&self) -> Option<&Arc<Backend>> {
        self.backend.as_ref()
    }

    /// Publishes `bodies` as new messages created at `now_ns`, delivered after `defer_ns`
    /// (0: at once). Memory takes what it can; the rest is written to disk before this
    /// returns, so an `OK` means every message is queued somewhere.
    pub async fn publish(
        &self,
        bodies: Vec<Bytes>,
        now_ns: i64,
        defer_ns: i64,
    ) -> Result<(), TopicError> {
        self.publish_watched(bodies, now_ns, defer_ns)
            .await
            .map(drop)
    }

    /// [`Topic::publish`], returning the number the watcher gave the messages, if the
    /// topic has one (what a replicated publish waits for).
    pub async fn publish_watched(
        &self,
        bodies: Vec<Bytes>,
        now_ns: i64,
        defer_ns: i64,
    ) -> Result<Option<u64>, TopicError> {
        let count = bodies.len() as u64;
        let bytes: usize = bodies.iter().map(Bytes::len).sum();
        let mut ticket = None;
        let writes = {
            let mut state = self.state.lock();
            if state.exiting {
                return Err(TopicError::Exiting);
            }
            self.flush_pending(&mut state, now_ns);
            let messages = self.new_messages(&mut state, bodies, now_ns);
            if let Some(watcher) = &self.watcher {
                let due_ns = if defer_ns > 0 {
                    now_ns.saturating_add(defer_ns)
                } else {
                    0
                };
                let channels = durable_channel_names(&state.channels);
                ticket = Some(watcher.published(&self.name, &messages, due_ns, &channels));
            }
            let deliver_now =
                state.pending.is_empty() && state.flows() && !state.channels.is_empty();
            let writes = if deliver_now {
                fan_out(&state.channels, messages, defer_ns, now_ns)
            } else {
                self.hold(&mut state, messages, defer_ns, now_ns)
            };
            self.has_pending
                .store(!state.pending.is_empty(), Ordering::Release);
            writes
        };
        write_all(writes).await?;
        self.message_count.fetch_add(count, Ordering::Relaxed);
        self.message_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(ticket)
    }

    /// Takes over messages a lost peer published (a failover): each goes to the
    /// channels named with it, made if missing, or, with none named, wherever a publish
    /// would put it. They keep their id, timestamp, attempts and due time, and are not
    /// told to the watcher: the peers hold them already. Written to disk, as a publish
    /// is, before this returns.
    pub async fn adopt(&self, adopted: Vec<AdoptedMessage>, now_ns: i64) -> Result<(), TopicError> {
        let names: std::collections::BTreeSet<&String> =
            adopted.iter().flat_map(|a| &a.channels).collect();
        for name in names {
            if names::is_valid_channel_name(name) {
                self.get_or_create_channel(name, now_ns)?;
            }
        }
        let writes = {
            let mut state = self.state.lock();
            if state.exiting {
                return Err(TopicError::Exiting);
            }
            let mut writes = Vec::new();
            for AdoptedMessage {
                message,
                due_ns,
                channels,
            } in adopted
            {
                let defer_ns = due_ns.saturating_sub(now_ns).max(0);
                if channels.is_empty() {
                    let deliver_now =
                        state.pending.is_empty() && state.flows() && !state.channels.is_empty();
                    writes.extend(if deliver_now {
                        fan_out(&state.channels, vec![message], defer_ns, now_ns)
                    } else {
                        self.hold(&mut state, vec![message], defer_ns, now_ns)
                    });
                } else {
                    let chosen: BTreeMap<String, ChannelRef> = channels
                        .into_iter()
                        .filter_map(|name| Some((name.clone(), state.channels.get(&name)?.clone())))
                        .collect();
                    writes.extend(fan_out(&chosen, vec![message], defer_ns, now_ns));
                }
            }
            self.has_pending
                .store(!state.pending.is_empty(), Ordering::Release);
            writes
        };
        write_all(writes).await
    }

    /// Keeps messages in the topic (no channel yet, or paused): memory while there is
    /// room, then the topic's disk queue; an ephemeral topic drops the rest.
    fn hold(
        &self,
        state: &mut TopicState,
        messages: Vec<Message>,
        defer_ns: i64,
        now_ns: i64,
    ) -> Vec<DiskWrite> {
        let mut overflow = Vec::new();
        let due_ns = (defer_ns > 0).then(|| now_ns.saturating_add(defer_ns));
        for message in messages {
            if state.pending.len() < self.mem_queue_size {
                state.pending.push(message, defer_ns);
            } else if !self.ephemeral {
                if let Some(due_ns) = due_ns {
                    state.note_due(message.id, due_ns);
                }
                overflow.push(message);
            }
        }
        match (&self.backend, overflow.is_empty()) {
            (Some(backend), false) => vec![DiskWrite {
                backend: backend.clone(),
                channel: None,
                messages: overflow,
                due_ns,
                spill: false,
            }],
            _ => Vec::new(),
        }
    }

    /// Reads, once, the due times an earlier run journaled for DPUBs parked on the
    /// topic's disk. Runs at startup and before the first move from disk to channels.
    pub async fn restore_due_times(&self, now_ns: i64) {
        if self.state.lock().due_restored {
            return;
        }
        let Some(backend) = &self.backend else {
            return;
        };
        let earlier = backend
            .due_journal()
            .load_once(now_ns)
            .await
            .unwrap_or_default();
        let earliest = earlier.min_due().unwrap_or(i64::MAX);
        let mut state = self.state.lock();
        // Newer entries go over the loaded ones (see `Channel::restore_due_times`).
        let newer = std::mem::replace(&mut state.due_on_disk, earlier);
        state.due_on_disk.extend(newer);
        state.earliest_due = state.earliest_due.min(earliest);
        state.due_restored = true;
    }

    /// Disk loop work: once the earliest due time has passed, forgets the due times
    /// that passed (costs nothing before then), and compacts the due-time journal when
    /// it has grown or everything in it passed (removes it then). The journal is
    /// compacted from the file, not from this memory: it keeps every record still in
    /// the future.
    pub async fn compact_due_journal(&self, now_ns: i64) -> Result<(), JournalError> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        {
            let mut state = self.state.lock();
            if !state.due_restored {
                return Ok(());
            }
            if state.earliest_due <= now_ns {
                state.due_on_disk.retain(|_, due| *due > now_ns);
                state.earliest_due = state.due_on_disk.min_due().unwrap_or(i64::MAX);
            }
        }
        backend
            .due_journal()
            .rewrite_if_stale(now_ns)
            .await
            .map(|_| ())
    }

    /// Moves messages from the topic's disk queue to its channels (the topic's pump for
    /// what overflowed to disk). Returns whether any moved.
    pub async fn drain_backend(&self, now_ns: i64, max: usize) -> Result<bool, TopicError> {
        let Some(backend) = &self.backend else {
            return Ok(false);
        };
        if !backend.may_have_messages() || !self.accepts_deliveries() {
            return Ok(false);
        }
        self.restore_due_times(now_ns).await;
        // The topic's read position is synced only after the channels have the
        // messages on their own disk: a crash in between repeats, never loses.
        let messages = backend.read_for_transfer(max).await?;
        if messages.is_empty() {
            return Ok(false);
        }
        let writes = {
            let mut state = self.state.lock();
            if state.channels.is_empty() {
                // The last channel went away meanwhile: keep them on the topic's disk
                // (their due times are still in `due_on_disk` and the journal).
                vec![DiskWrite {
                    backend: backend.clone(),
                    channel: None,
                    messages,
                    due_ns: None,
                    spill: false,
                }]
            } else {
                fan_out_from_disk(&mut state, messages, now_ns)
            }
        };
        write_all(writes).await?;
        backend.commit_reads().await?;
        Ok(true)
    }

    /// Whether messages may flow to channels now: not paused, not exiting, has a channel.
    fn accepts_deliveries(&self) -> bool {
        let state = self.state.lock();
        state.flows() && !state.exiting && !state.channels.is_empty()
    }

    /// Exit (Go's `Topic.Close` flush): what the topic holds in memory goes to its disk
    /// queue, every channel flushes its own, and the queues are synced and closed. The
    /// due times of the topic's deferred messages are journaled first.
    pub async fn flush_to_backends(&self, now_ns: i64) -> Result<(), TopicError> {
        self.restore_due_times(now_ns).await;
        let (pending, due, channels) = {
            let mut state = self.state.lock();
            state.exiting = true;
            let (pending, held_due) = state.pending.take_all(now_ns);
            let mut due = std::mem::take(&mut state.due_on_disk);
            due.extend(held_due);
            (
                pending,
                due,
                state.channels.values().cloned().collect::<Vec<_>>(),
            )
        };
        let mut result = Ok(());
        for channel in channels {
            if let Err(e) = channel.flush_to_backend(now_ns).await {
                result = Err(TopicError::Disk(e));
            }
        }
        if let Some(backend) = &self.backend {
            let journaled = backend.due_journal().rewrite(|| due).await;
            if let Err(error) = journaled {
                tracing::error!(topic = %self.name, %error, "due times of deferred messages lost: they are delivered at once after the restart");
            }
            let written = backend.put(&pending).await;
            let closed = backend.close().await;
            if let Err(e) = written.and(closed) {
                result = Err(TopicError::Disk(e));
            }
        }
        result
    }

    /// Removes the disk files of the topic and of `channels` (after a delete).
    pub async fn delete_files(&self, channels: &[ChannelRef]) {
        for backend in channels
            .iter()
            .filter_map(|c| c.backend())
            .chain(self.backend.iter())
        {
            if let Err(error) = backend.delete().await {
                tracing::error!(topic = %self.name, %error, "failed to delete disk queue files");
            }
        }
    }

    fn new_messages(
        &self,
        state: &mut TopicState,
        bodies: Vec<Bytes>,
        now_ns: i64,
    ) -> Vec<Message> {
        bodies
            .into_iter()
            .map(|body| Message::new(state.guid.next_id(now_ns), now_ns, body))
            .collect()
    }

    /// Moves held messages to the channels while they have room, oldest first.
    fn flush_pending(&self, state: &mut TopicState, now_ns: i64) {
        if state.pending.is_empty() || !state.flows() || state.channels.is_empty() {
            return;
        }
        // A delayed message waits in each channel's deferred queue, which has no limit.
        while let Some((message, defer_ns)) = state.pending.deferred.pop_front() {
            let _ = fan_out(&state.channels, vec![message], defer_ns, now_ns);
        }
        let room = state.channels.values().map(|c| c.room()).min().unwrap_or(0);
        let now = &mut state.pending.now;
        let fits = if room >= now.len() {
            std::mem::take(now)
        } else {
            let rest = now.split_off(room);
            std::mem::replace(now, rest)
        };
        if !fits.is_empty() {
            hand_over(&state.channels, fits);
        }
        self.has_pending
            .store(!state.pending.is_empty(), Ordering::Release);
    }

    /// Retries moving held messages to the channels (after a channel drained).
    pub fn retry_pending(&self, now_ns: i64) {
        let mut state = self.state.lock();
        self.flush_pending(&mut state, now_ns);
    }

    /// Whether messages are held in the topic.
    pub fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::Acquire)
    }

    /// The channel `name`, created if missing. Returns it and whether it was created.
    pub fn get_or_create_channel(&self, name: &str, now_ns: i64) -> Result<ChannelRef, TopicError> {
        let mut state = self.state.lock();
        if state.exiting {
            return Err(TopicError::Exiting);
        }
        if let Some(channel) = state.channels.get(name) {
            return Ok(channel.clone());
        }
        let channel = Arc::new(Channel::new(
            &self.name,
            name,
            self.mem_queue_size as i64,
            self.max_channel_consumers,
            self.e2e.as_ref(),
            now_ns,
            self.backends.as_ref().and_then(|b| {
                b.make(
                    &format!("{}:{}", self.name, name),
                    names::is_ephemeral(name),
                )
            }),
        ));
        state.channels.insert(name.to_string(), channel.clone());
        if let Some(registrations) = &self.registrations {
            registrations.register(&self.name, Some(name));
        }
        if let (Some(watcher), false) = (&self.watcher, names::is_ephemeral(name)) {
            watcher.channel_changed(&self.name, name, true);
        }
        tracing::info!(topic = %self.name, channel = %name, "new channel");
        self.flush_pending(&mut state, now_ns);
        Ok(channel)
    }

    /// An existing channel.
    pub fn channel(&self, name: &str) -> Option<ChannelRef> {
        self.state.lock().channels.get(name).cloned()
    }

    /// Deletes a channel: its clients are disconnected and its messages dropped. `None`
    /// when there is no such channel; `Some(true)` when an ephemeral topic just lost its
    /// last channel and must now be deleted too.
    pub fn delete_channel(&self, name: &str) -> Option<bool> {
        let mut state = self.state.lock();
        let channel = state.channels.remove(name)?;
        channel.delete();
        if let Some(registrations) = &self.registrations {
            registrations.unregister(&self.name, Some(name));
        }
        if let (Some(watcher), false) = (&self.watcher, names::is_ephemeral(name)) {
            watcher.channel_changed(&self.name, name, false);
        }
        tracing::info!(topic = %self.name, channel = %name, "deleted channel");
        if self.ephemeral && state.channels.is_empty() && !state.exiting {
            state.exiting = true;
            return Some(true);
        }
        Some(false)
    }

    /// Every channel, by name.
    pub fn channels(&self) -> Vec<ChannelRef> {
        self.state.lock().channels.values().cloned().collect()
    }

    /// Holds every message in the topic until [`Topic::start`] (a new topic whose channels
    /// are about to be pre-created).
    pub(crate) fn hold_until_started(self) -> Self {
        self.state.lock().started = false;
        self
    }

    /// Lets messages flow to the channels (Go's `Topic.Start`).
    pub(crate) fn start(&self, now_ns: i64) {
        let mut state = self.state.lock();
        state.started = true;
        self.flush_pending(&mut state, now_ns);
    }

    /// Pauses or unpauses the flow from the topic to its channels.
    pub fn set_paused(&self, paused: bool, now_ns: i64) {
        let mut state = self.state.lock();
        state.paused = paused;
        self.flush_pending(&mut state, now_ns);
    }

    /// Whether the topic is being deleted.
    pub fn is_exiting(&self) -> bool {
        self.state.lock().exiting
    }

    /// Drops every message held in the topic itself (Go's `Topic.Empty`); its channels
    /// keep theirs.
    pub fn empty(&self) {
        let mut state = self.state.lock();
        state.pending.clear();
        // The caller empties the disk queue too: no parked DPUB is left to be due.
        state.due_on_disk.clear();
        state.earliest_due = i64::MAX;
        self.has_pending.store(false, Ordering::Release);
    }

    /// Deletes the topic (Go's `Topic.Delete`): no more publishes, every channel deleted
    /// (their clients disconnected) and every message dropped. The caller forgets it.
    pub fn delete(&self) -> Vec<ChannelRef> {
        let channels = {
            let mut state = self.state.lock();
            state.exiting = true;
            state.pending.clear();
            self.has_pending.store(false, Ordering::Release);
            std::mem::take(&mut state.channels)
        };
        for channel in channels.values() {
            channel.delete();
        }
        channels.into_values().collect()
    }

    /// Marks the topic deleted and closes every channel.
    pub fn close(&self) {
        let channels: Vec<ChannelRef> = {
            let mut state = self.state.lock();
            state.exiting = true;
            state.channels.values().cloned().collect()
        };
        for channel in channels {
            channel.close();
        }
    }

    /// Messages on the topic's disk.
    pub fn backend_depth(&self) -> u64 {
        self.backend
            .as_ref()
            .map_or(0, |b| u64::try_from(b.depth()).unwrap_or(0))
    }

    /// Numbers for `/stats`.
    pub fn snapshot(&self) -> TopicSnapshot {
        let state = self.state.lock();
        TopicSnapshot {
            name: self.name.clone(),
            depth: state.pending.len() as u64 + self.backend_depth(),
            backend_depth: self.backend_depth(),
            message_count: self.message_count.load(Ordering::Relaxed),
            message_bytes: self.message_bytes.load(Ordering::Relaxed),
            paused: state.paused,
            channels: state.channels.values().cloned().collect(),
        }
    }
}

/// Hands messages read from the topic's disk queue to the channels: at once, or deferred
/// until the due time a DPUB parked on disk still has.
fn fan_out_from_disk(
    state: &mut TopicState,
    messages: Vec<Message>,
    now_ns: i64,
) -> Vec<DiskWrite> {
    if state.due_on_disk.is_empty() {
        return fan_out(&state.channels, messages, 0, now_ns);
    }
    let mut now = Vec::new();
    let mut writes = Vec::new();
    for message in messages {
        match state.due_on_disk.get(&message.id).copied() {
            Some(due_ns) if due_ns > now_ns => {
                let defer_ns = due_ns - now_ns;
                writes.extend(fan_out(&state.channels, vec![message], defer_ns, now_ns));
            }
            _ => now.push(message),
        }
    }
    writes.extend(fan_out(&state.channels, now, 0, now_ns));
    writes
}

/// The names of the channels that keep their messages (not ephemeral).
fn durable_channel_names(channels: &BTreeMap<String, ChannelRef>) -> Vec<String> {
    channels
        .keys()
        .filter(|name| !names::is_ephemeral(name))
        .cloned()
        .collect()
}

/// Moves messages held in the topic to channels that have room for all of them: the
/// last channel takes the queue itself, the others copies of it.
fn hand_over(channels: &BTreeMap<String, ChannelRef>, mut queue: VecDeque<Message>) {
    let count = channels.len();
    for (i, channel) in channels.values().enumerate() {
        if i + 1 == count {
            channel.put_queue(std::mem::take(&mut queue));
        } else {
            channel.put_messages(queue.iter().cloned());
        }
    }
}

/// Gives every channel its own copy of `messages` (same id, timestamp and body).
/// Returns what did not fit in a channel's memory, for its disk queue.
fn fan_out(
    channels: &BTreeMap<String, ChannelRef>,
    messages: Vec<Message>,
    defer_ns: i64,
    now_ns: i64,
) -> Vec<DiskWrite> {
    if defer_ns > 0 {
        let due_ns = now_ns.saturating_add(defer_ns);
        let mut writes = Vec::new();
        for channel in channels.values() {
            let (mut to_disk, mut to_spill) = (Vec::new(), Vec::new());
            for message in &messages {
                match channel.put_deferred(message.clone(), due_ns) {
                    Deferral::Kept => {}
                    Deferral::ToDisk(message) => to_disk.push(message),
                    Deferral::ToSpill(message) => to_spill.push(message),
                }
            }
            let Some(backend) = channel.backend() else {
                continue;
            };
            for (messages, spill) in [(to_disk, false), (to_spill, true)] {
                if !messages.is_empty() {
                    writes.push(DiskWrite {
                        backend: backend.clone(),
                        channel: Some(channel.clone()),
                        messages,
                        due_ns: Some(due_ns),
                        spill,
                    });
                }
            }
        }
        return writes;
    }
    let count = channels.len();
    let mut messages = Some(messages);
    let mut writes = Vec::new();
    for (i, channel) in channels.values().enumerate() {
        let overflow = if i + 1 == count {
            messages
                .take()
                .map(|last| channel.put_messages(last))
                .unwrap_or_default()
        } else if let Some(shared) = messages.as_ref() {
            channel.put_messages(shared.iter().cloned())
        } else {
            Vec::new()
        };
        if let (false, Some(backend)) = (overflow.is_empty(), channel.backend()) {
            writes.push(DiskWrite {
                backend: backend.clone(),
                channel: Some(channel.clone()),
                messages: overflow,
                due_ns: None,
                spill: false,
            });
        }
    }
    writes
}

/// Performs the disk writes of a publish, in order, then wakes the channels' consumers.
/// Deferred messages have their due time journaled (synced) first, so no crash leaves
/// one on disk without it.
async fn write_all(writes: Vec<DiskWrite>) -> Result<(), TopicError> {
    for DiskWrite {
        backend,
        channel,
        messages,
        due_ns,
        spill,
    } in writes
    {
        if let (true, Some(channel), Some(due_ns)) = (spill, &channel, due_ns) {
            let entries = messages.into_iter().map(|m| (m, due_ns)).collect();
            channel.spill_deferred(entries).await;
            continue;
        }
        if let Some(due_ns) = due_ns {
            let due: Vec<(MessageId, i64)> = messages.iter().map(|m| (m.id, due_ns)).collect();
            backend.due_journal().append(&due).await?;
        }
        backend.put(&messages).await?;
        if let Some(channel) = channel {
            channel.new_messages.notify_one();
        }
    }
    Ok(())
}

/// A handle to a topic.
pub type TopicRef = Arc<Topic>;

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::nsqd::client::test_client;
    use crate::protocol::frame;

    fn bodies(names: &[&'static str]) -> Vec<Bytes> {
        names
            .iter()
            .map(|n| Bytes::from_static(n.as_bytes()))
            .collect()
    }

    /// The bodies `channel` hands out from memory, in order.
    fn drain(channel: &Channel) -> Vec<Bytes> {
        let mut out = BytesMut::new();
        channel.take_for_client(
            &test_client(),
            usize::MAX,
            0,
            60_000_000_000,
            || true,
            &mut out,
        );
        let mut got = Vec::new();
        while let Some((_, data)) = frame::decode_frame(&mut out, usize::MAX).unwrap() {
            got.push(Message::decode(data).unwrap().body);
        }
        got
    }

    #[tokio::test]
    async fn held_messages_reach_every_channel_in_order_when_the_topic_starts() {
        let topic = Topic::new("t", 1, 10, 0, None, None).hold_until_started();
        let a = topic.get_or_create_channel("a", 0).unwrap();
        let b = topic.get_or_create_channel("b", 0).unwrap();
        topic.publish(bodies(&["1", "2"]), 0, 0).await.unwrap();
        topic.publish(bodies(&["later"]), 0, 5_000).await.unwrap();
        topic.publish(bodies(&["3"]), 0, 0).await.unwrap();
        assert_eq!(topic.snapshot().depth, 4);
        topic.start(100);
        assert_eq!(topic.snapshot().depth, 0);
        assert!(!topic.has_pending());
        for channel in [&a, &b] {
            assert_eq!(channel.snapshot().deferred_count, 1);
            assert_eq!(drain(channel), bodies(&["1", "2", "3"]));
        }
    }

    #[tokio::test]
    async fn only_what_fits_leaves_the_topic_and_the_rest_follows_later() {
        let topic = Topic::new("t", 1, 4, 0, None, None);
        let channel = topic.get_or_create_channel("c", 0).unwrap();
        topic.publish(bodies(&["1", "2"]), 0, 0).await.unwrap();
        topic.set_paused(true, 0);
        topic
            .publish(bodies(&["3", "4", "5", "6"]), 0, 0)
            .await
            .unwrap();
        topic.set_paused(false, 0);
        assert_eq!(channel.snapshot().depth, 4);
        assert_eq!(topic.snapshot().depth, 2);
        assert!(topic.has_pending());
        assert_eq!(drain(&channel), bodies(&["1", "2", "3", "4"]));
        topic.retry_pending(0);
        assert!(!topic.has_pending());
        assert_eq!(drain(&channel), bodies(&["5", "6"]));
    }
}
