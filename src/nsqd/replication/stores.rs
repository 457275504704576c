//! Every standby store a node keeps ([`StandbyStores`]), when each owner was last heard
//! from, and which owners' copies are due for a takeover (the ranking of peers).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::standby::{Scope, StandbyError, StandbyStore, LOST_ADOPTER};
use crate::env::Fs;
use crate::protocol::MessageId;

/// The stores, by owner node id and topic.
pub type StoreMap = BTreeMap<(u16, String), StandbyStore>;

/// Every standby store this node keeps, and when each owner was last heard from.
pub struct StandbyStores {
    fs: Arc<dyn Fs>,
    data_path: PathBuf,
    max_msg_size: usize,
    /// What each store gathers before writing ([`StandbyStore::gather_up_to`]).
    gather_bytes: usize,
    stores: tokio::sync::Mutex<StoreMap>,
    heard: Mutex<BTreeMap<u16, Instant>>,
}

impl std::fmt::Debug for StandbyStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandbyStores")
            .field("data_path", &self.data_path)
            .finish_non_exhaustive()
    }
}

impl StandbyStores {
    /// Opens every store `data_path` holds; their owners count as heard from now, so
    /// each has a whole failover timeout to come back. Every store gathers up to
    /// `gather_bytes` before writing.
    pub async fn open(
        fs: Arc<dyn Fs>,
        data_path: PathBuf,
        max_msg_size: usize,
        gather_bytes: usize,
    ) -> Result<StandbyStores, StandbyError> {
        let mut stores = BTreeMap::new();
        let mut heard = BTreeMap::new();
        for (topic, owner) in StandbyStore::find_all(&*fs, &data_path).await? {
            let mut store =
                StandbyStore::open(fs.clone(), &data_path, &topic, owner, max_msg_size).await?;
            store.gather_up_to(gather_bytes);
            tracing::info!(%topic, owner, copies = store.unfinished(), "standby store opened");
            heard.insert(owner, Instant::now());
            stores.insert((owner, topic), store);
        }
        Ok(StandbyStores {
            fs,
            data_path,
            max_msg_size,
            gather_bytes,
            stores: tokio::sync::Mutex::new(stores),
            heard: Mutex::new(heard),
        })
    }

    /// Notes a frame from `owner`.
    pub fn heard(&self, owner: u16) {
        self.heard.lock().insert(owner, Instant::now());
    }

    /// The nodes heard from within `timeout`: alive, as far as this node can tell.
    pub fn live_nodes(&self, timeout: Duration) -> BTreeSet<u16> {
        self.heard
            .lock()
            .iter()
            .filter(|(_, at)| at.elapsed() < timeout)
            .map(|(node, _)| *node)
            .collect()
    }

    /// How long this node (`me`) waits, beyond the first, before it takes over copies of
    /// `owner`: the failover timeout per live node ranked before it (a lower node id).
    /// Zero when unranked (`rank_peers` false).
    pub fn rank_wait(&self, me: u16, owner: u16, timeout: Duration, rank_peers: bool) -> Duration {
        if !rank_peers {
            return Duration::ZERO;
        }
        let ahead = self
            .live_nodes(timeout)
            .into_iter()
            .filter(|&node| node < me && node != owner)
            .count();
        timeout.saturating_mul(u32::try_from(ahead).unwrap_or(u32::MAX))
    }

    /// The highest number this node holds of `owner`, over all its topics.
    pub async fn highest_seq_of(&self, owner: u16) -> u64 {
        let stores = self.stores.lock().await;
        stores
            .iter()
            .filter(|((store_owner, _), _)| *store_owner == owner)
            .map(|(_, store)| store.highest_seq())
            .max()
            .unwrap_or(0)
    }

    /// The owners whose copies this node (`me`) should take over now, each with the
    /// scope: [`Scope::Silent`], or [`Scope::Orphans`] for copies a node took over and
    /// was lost since ([`StandbyStore::orphaned`]).
    ///
    /// An owner is due once silent for `timeout` times one more than the live nodes
    /// ranked before this one (lower node ids), if it has copies not left to a live node
    /// that took them over. So in a replica set of three that loses one, the lowest live
    /// node takes over after `timeout`, and the other, a `timeout` later, only what that
    /// one did not say it took over (`ADOPTED`). Copies taken over by a node lost since
    /// are due in the same way, counted from that node's silence, even while their owner
    /// is alive. Unranked (`rank_peers` false), every peer takes over at `timeout`.
    pub async fn owners_due(
        &self,
        me: u16,
        timeout: Duration,
        rank_peers: bool,
    ) -> Vec<(u16, Scope)> {
        let live = self.live_nodes(timeout);
        // A silent owner is not live: no owner to leave out of the ranking.
        let waited = timeout + self.rank_wait(me, me, timeout, rank_peers);
        let silent: BTreeSet<u16> = {
            let heard = self.heard.lock();
            heard
                .iter()
                .filter(|(_, at)| at.elapsed() >= waited)
                .map(|(owner, _)| *owner)
                .collect()
        };
        let stores = self.stores.lock().await;
        let mut due: Vec<(u16, Scope)> = Vec::new();
        for ((owner, _), store) in stores.iter() {
            let entry = if silent.contains(owner) && store.adoptable(&live) > 0 {
                (*owner, Scope::Silent)
            } else if store
                .adopters()
                .any(|a| a == LOST_ADOPTER || silent.contains(&a))
                && store.orphaned(&live) > 0
            {
                (*owner, Scope::Orphans)
            } else {
                continue;
            };
            match due.last_mut() {
                Some(last) if last.0 == entry.0 => {
                    if entry.1 == Scope::Silent {
                        last.1 = Scope::Silent;
                    }
                }
                _ => due.push(entry),
            }
        }
        due
    }

    /// `node` came back without what it had taken over: see
    /// [`StandbyStore::orphan_copies_of`].
    pub async fn orphan_copies_of(&self, node: u16) {
        for store in self.stores.lock().await.values_mut() {
            store.orphan_copies_of(node);
        }
    }

    /// `adopter` took over and delivers the copies `ids` of the lost `owner`'s `topic`:
    /// this node's copies of them are kept for it (see [`StandbyStore::delegate`]).
    pub(super) async fn delegate(&self, owner: u16, topic: &str, ids: &[MessageId], adopter: u16) {
        if let Some(store) = self
            .stores
            .lock()
            .await
            .get_mut(&(owner, topic.to_string()))
        {
            store.delegate(ids, adopter);
        }
    }

    /// Applies FINs and REQ delays that `from` sent to the stores of `topic` of every
    /// other owner: a node finishes the messages it took over from a lost owner too, and
    /// a copy finished anywhere needs no standby copy here.
    pub(super) async fn finish_elsewhere(
        &self,
        from: u16,
        topic: &str,
        channel: &str,
        finished: &[MessageId],
        deferred: &[(MessageId, i64)],
    ) -> Result<(), StandbyError> {
        let mut stores = self.stores.lock().await;
        for ((owner, store_topic), store) in stores.iter_mut() {
            if *owner == from || store_topic != topic {
                continue;
            }
            store.finish(channel, finished).await?;
            for (id, due_ns) in deferred {
                store.requeued(*id, *due_ns).await?;
            }
            store.compact_if_mostly_dead().await?;
        }
        Ok(())
    }

    /// Runs `f` on the store of `owner`'s `topic`, opened (empty) if there is none.
    pub(super) async fn with_store<T>(
        &self,
        owner: u16,
        topic: &str,
        f: impl AsyncFnOnce(&mut StandbyStore) -> Result<T, StandbyError>,
    ) -> Result<T, StandbyError> {
        let mut stores = self.stores.lock().await;
        let store = match stores.entry((owner, topic.to_string())) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let mut store = StandbyStore::open(
                    self.fs.clone(),
                    &self.data_path,
                    topic,
                    owner,
                    self.max_msg_size,
                )
                .await?;
                store.gather_up_to(self.gather_bytes);
                entry.insert(store)
            }
        };
        f(store).await
    }

    /// Removes `owner`'s store of `topic` and its file (the owner deleted the topic).
    pub(super) async fn delete(&self, owner: u16, topic: &str) -> Result<(), StandbyError> {
        let removed = self.stores.lock().await.remove(&(owner, topic.to_string()));
        match removed {
            Some(store) => store.delete().await,
            None => Ok(()),
        }
    }

    /// Syncs `owner`'s stores of `topics`.
    pub(super) async fn sync(
        &self,
        owner: u16,
        topics: &BTreeSet<String>,
    ) -> Result<(), StandbyError> {
        let mut stores = self.stores.lock().await;
        for topic in topics {
            if let Some(store) = stores.get_mut(&(owner, topic.clone())) {
                store.sync().await?;
            }
        }
        Ok(())
    }

    /// Writes and syncs what every store gathered: nsqd is exiting.
    pub async fn sync_all(&self) {
        let mut stores = self.stores.lock().await;
        for ((owner, topic), store) in stores.iter_mut() {
            if let Err(error) = store.sync().await {
                tracing::error!(owner, %topic, %error, "failed to write a standby store at exit");
            }
        }
    }

    /// Every store, locked: a failover reads and forgets copies under it, so no frame
    /// of the owner lands in between.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, StoreMap> {
        self.stores.lock().await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;

    use super::*;
    use crate::env::MemFs;
    use crate::nsqd::replication::frame::Replicated;
    use crate::protocol::Message;

    const TIMEOUT: Duration = Duration::from_secs(3);

    fn copy(n: u64) -> Replicated {
        Replicated {
            seq: n,
            message: Message::new(MessageId::from_u64(n), 1, Bytes::from_static(b"x")),
            due_ns: 0,
            channels: vec!["c".to_string()],
        }
    }

    /// Node `me`'s stores, holding copies 1 to 3 of owner 2's topic "t"; nodes 2, 3 and
    /// 4 heard from now.
    async fn stores() -> StandbyStores {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("data")).await.unwrap();
        let stores = StandbyStores::open(Arc::new(fs), PathBuf::from("data"), 1 << 20, 0)
            .await
            .unwrap();
        stores
            .with_store(2, "t", async |s| {
                s.append(&[copy(1), copy(2), copy(3)]).await
            })
            .await
            .unwrap();
        for node in [2, 3, 4] {
            stores.heard(node);
        }
        stores
    }

    /// Advances the clock by `by`, nodes `alive` heard from meanwhile.
    async fn pass(stores: &StandbyStores, by: Duration, alive: &[u16]) {
        tokio::time::advance(by).await;
        for node in alive {
            stores.heard(*node);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_lowest_live_peer_takes_over_first_and_the_next_one_timeout_later() {
        let stores = stores().await;
        pass(&stores, TIMEOUT, &[3, 4]).await;
        // Owner 2 is silent: node 3 ranks first, node 4 after node 3.
        assert_eq!(
            stores.owners_due(3, TIMEOUT, true).await,
            vec![(2, Scope::Silent)]
        );
        assert_eq!(stores.owners_due(4, TIMEOUT, true).await, vec![]);
        assert_eq!(
            stores.owners_due(4, TIMEOUT, false).await,
            vec![(2, Scope::Silent)]
        );
        pass(&stores, TIMEOUT, &[3, 4]).await;
        assert_eq!(
            stores.owners_due(4, TIMEOUT, true).await,
            vec![(2, Scope::Silent)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn copies_another_peer_took_over_wait_for_its_loss() {
        let stores = stores().await;
        pass(&stores, TIMEOUT, &[3, 4]).await;
        // Node 3 took over copies 1 and 2; node 4 still has 3 to take over.
        let ids = [MessageId::from_u64(1), MessageId::from_u64(2)];
        stores.delegate(2, "t", &ids, 3).await;
        pass(&stores, TIMEOUT, &[3, 4]).await;
        assert_eq!(
            stores.owners_due(4, TIMEOUT, true).await,
            vec![(2, Scope::Silent)]
        );
        // Node 3 finishes copy 1 on "c": its FIN drops node 4's copy of it too.
        stores
            .finish_elsewhere(3, "t", "c", &ids[..1], &[])
            .await
            .unwrap();
        assert_eq!(stores.lock().await[&(2, "t".to_string())].unfinished(), 2);
        // Copy 3 is finished; owner 2 comes back: nothing is due while node 3 lives.
        let third = [MessageId::from_u64(3)];
        stores
            .with_store(2, "t", async |s| s.finish("c", &third).await)
            .await
            .unwrap();
        pass(&stores, Duration::ZERO, &[2]).await;
        assert_eq!(stores.owners_due(4, TIMEOUT, true).await, vec![]);
        // Node 3 is lost: copy 2 is orphaned, due though its owner is alive, once node
        // 3 has been silent for node 4's wait (node 4 ranks after the live node 2).
        pass(&stores, TIMEOUT, &[2, 4]).await;
        assert_eq!(stores.owners_due(4, TIMEOUT, true).await, vec![]);
        pass(&stores, TIMEOUT, &[2, 4]).await;
        assert_eq!(
            stores.owners_due(4, TIMEOUT, true).await,
            vec![(2, Scope::Orphans)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn copies_of_a_node_back_blank_are_orphaned_at_once() {
        let stores = stores().await;
        let ids = [
            MessageId::from_u64(1),
            MessageId::from_u64(2),
            MessageId::from_u64(3),
        ];
        stores.delegate(2, "t", &ids, 3).await;
        assert_eq!(stores.owners_due(4, TIMEOUT, true).await, vec![]);
        stores.orphan_copies_of(3).await;
        assert_eq!(
            stores.owners_due(4, TIMEOUT, true).await,
            vec![(2, Scope::Orphans)]
        );
    }
}
