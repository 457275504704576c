//! The TCP listener: accepts V2 connections until shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::{conn, NsqdInner};
use crate::env::Listener;

/// Accepts connections and hands each to its own task.
pub(crate) async fn accept_loop(nsqd: Arc<NsqdInner>, listener: Box<dyn Listener>) {
    loop {
        tokio::select! {
            biased;
            _ = nsqd.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    nsqd.tasks.spawn(conn::serve(nsqd.clone(), stream, peer));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    tracing::info!("TCP: closing listener");
}
