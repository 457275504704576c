//! The queue scan loop: Go's Redis-style probabilistic sweep of in-flight timeouts and
//! due deferred messages (nsq-reference §4.5).
//!
//! Every scan interval it picks up to `queue-scan-selection-count` distinct random
//! channels and has a worker pool process them; when more than the dirty percentage had
//! work, it goes again at once. The channel list and the pool size are refreshed every
//! refresh interval: pool = clamp(channels x 0.25, 1, queue-scan-worker-pool-max).

use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::channel::ChannelRef;
use super::NsqdInner;

type WorkQueue = Arc<Mutex<mpsc::Receiver<ChannelRef>>>;

/// Runs until shutdown.
pub(crate) async fn queue_scan_loop(nsqd: Arc<NsqdInner>) {
    let selection_max = usize::try_from(nsqd.opts.queue_scan_selection_count)
        .unwrap_or(1)
        .max(1);
    let (work_tx, work_rx) = mpsc::channel::<ChannelRef>(selection_max);
    let work_rx: WorkQueue = Arc::new(Mutex::new(work_rx));
    let (done_tx, mut done_rx) = mpsc::channel::<bool>(selection_max);
    let mut workers = JoinSet::new();
    let mut work_tick = tokio::time::interval(nsqd.opts.queue_scan_interval);
    work_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut refresh_tick = tokio::time::interval(nsqd.opts.queue_scan_refresh_interval);
    refresh_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut channels: Vec<ChannelRef> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = nsqd.shutdown.cancelled() => break,
            _ = refresh_tick.tick() => {
                channels = nsqd.channels();
                resize_pool(&nsqd, &mut workers, channels.len(), &work_rx, &done_tx).await;
                continue;
            }
            _ = work_tick.tick() => {
                if channels.is_empty() {
                    continue;
                }
            }
        }
        let selection = selection_max.min(channels.len());
        loop {
            for index in distinct_random_indices(&nsqd, selection, channels.len()) {
                if work_tx.send(channels[index].clone()).await.is_err() {
                    return;
                }
            }
            let mut dirty = 0usize;
            for _ in 0..selection {
                match done_rx.recv().await {
                    Some(true) => dirty += 1,
                    Some(false) => {}
                    None => return,
                }
            }
            let dirty_fraction = dirty as f64 / selection as f64;
            if dirty_fraction <= nsqd.opts.queue_scan_dirty_percent || nsqd.shutdown.is_cancelled()
            {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    workers.abort_all();
}

/// Grows or shrinks the worker pool to clamp(channels x 0.25, 1, pool max).
async fn resize_pool(
    nsqd: &Arc<NsqdInner>,
    workers: &mut JoinSet<()>,
    channel_count: usize,
    work_rx: &WorkQueue,
    done_tx: &mpsc::Sender<bool>,
) {
    let pool_max = usize::try_from(nsqd.opts.queue_scan_worker_pool_max)
        .unwrap_or(1)
        .max(1);
    let ideal = ((channel_count as f64 * 0.25) as usize).clamp(1, pool_max);
    if workers.len() > ideal {
        // Workers are stateless and idle between scans: restart the pool at its new size.
        workers.shutdown().await;
    }
    while workers.len() < ideal {
        nsqd.tasks.spawn_into(
            workers,
            worker(nsqd.clone(), work_rx.clone(), done_tx.clone()),
        );
    }
}

async fn worker(nsqd: Arc<NsqdInner>, work_rx: WorkQueue, done_tx: mpsc::Sender<bool>) {
    loop {
        let channel = { work_rx.lock().await.recv().await };
        let Some(channel) = channel else {
            return;
        };
        let now = nsqd.now_ns();
        let timed_out = channel.process_in_flight(now);
        let released = channel.process_deferred(now);
        if done_tx.send(timed_out || released).await.is_err() {
            return;
        }
    }
}

/// `count` distinct indices in `0..len`, drawn from the nsqd's seeded RNG (Go's UniqRands).
fn distinct_random_indices(nsqd: &NsqdInner, count: usize, len: usize) -> Vec<usize> {
    pick_distinct(&*nsqd.env.rng, count, len)
}

/// A partial Fisher-Yates shuffle: the first `count` of a random permutation of `0..len`.
fn pick_distinct(rng: &dyn crate::env::Rng, count: usize, len: usize) -> Vec<usize> {
    let count = count.min(len);
    let mut indices: Vec<usize> = (0..len).collect();
    for i in 0..count {
        let j = i + rng.below((len - i) as u64) as usize;
        indices.swap(i, j);
    }
    indices.truncate(count);
    indices
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SeededRng;

    #[test]
    fn distinct_indices_are_distinct_in_range_and_seeded() {
        let rng = SeededRng::new(3);
        let draw = |count, len| pick_distinct(&rng, count, len);
        for len in 0..30usize {
            for count in 0..=len {
                let mut picked = draw(count, len);
                assert_eq!(picked.len(), count);
                assert!(picked.iter().all(|&i| i < len));
                picked.sort_unstable();
                picked.dedup();
                assert_eq!(picked.len(), count, "no index twice");
            }
        }
        let again = SeededRng::new(3);
        let first = pick_distinct(&SeededRng::new(3), 5, 20);
        assert_eq!(first, pick_distinct(&again, 5, 20));
    }
}
