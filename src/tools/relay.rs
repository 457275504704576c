//! How the relays (nsq_to_http, nsq_to_nsq) run: one consumer per topic, every delivery
//! handed to the tool's handler, at most `concurrency` handled at a time (go-nsq's
//! `AddConcurrentHandlers`); at SIGINT/SIGTERM every consumer stops taking messages
//! (CLS), what was already delivered is still handled, and the run ends once every
//! connection has closed (go-nsq's `Stop`, then `<-StopChan`).

use std::future::Future;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::consumer::{stopped, Consumer, Delivery};

/// Runs `consumers` until a stop signal on `stop` and their graceful close. For each
/// delivery, `handle(consumer index, delivery)` is called in delivery order (so what it
/// does before its first `.await` happens in order); the future it returns runs in a
/// task of its own and must FIN or REQ the delivery.
pub async fn run<H, F>(
    consumers: Vec<Consumer>,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
    mut handle: H,
) where
    H: FnMut(usize, Delivery) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (merged_tx, mut merged) = mpsc::channel(1);
    let (stop_all, _) = watch::channel(false);
    let mut forwarders = JoinSet::new();
    for (index, consumer) in consumers.into_iter().enumerate() {
        forwarders.spawn(forward(
            index,
            consumer,
            merged_tx.clone(),
            stop_all.subscribe(),
        ));
    }
    drop(merged_tx);
    let mut handlers = JoinSet::new();
    let mut stopping = false;
    loop {
        tokio::select! {
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                stop_all.send_replace(true);
            }
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
            next = merged.recv(), if handlers.len() < concurrency => match next {
                Some((index, delivery)) => {
                    handlers.spawn(handle(index, delivery));
                }
                None => break,
            },
        }
    }
    while handlers.join_next().await.is_some() {}
    while forwarders.join_next().await.is_some() {}
}

/// Hands one consumer's deliveries on, tagged with its index, and stops the consumer
/// (waiting for its connections to close) when told to.
pub(crate) async fn forward(
    index: usize,
    mut consumer: Consumer,
    merged: mpsc::Sender<(usize, Delivery)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut stopping = false;
    loop {
        tokio::select! {
            next = consumer.next() => {
                let Some(delivery) = next else { break };
                if let Err(mpsc::error::SendError((_, delivery))) = merged.send((index, delivery)).await {
                    delivery.requeue_now();
                }
            }
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                consumer.stop();
            }
        }
    }
    consumer.wait().await;
}
