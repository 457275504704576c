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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::env::Env;
    use crate::nsqd::{Nsqd, Options};

    /// A connection that never sends its protocol magic is dropped at exit, not waited
    /// for until `--client-timeout` (a swarm seed's graceful stop hung on one).
    #[tokio::test]
    async fn a_connection_that_never_names_its_protocol_does_not_hold_up_exit() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = Options::on_loopback(dir.path());
        opts.client_timeout = Duration::from_secs(3600);
        let env = Env::real();
        let nsqd = Nsqd::new(opts, env.clone()).await.unwrap();
        let runner = nsqd.clone();
        tokio::spawn(async move { runner.run().await });
        let address = nsqd.tcp_addr().to_string();
        let _silent = env.net.connect_tcp(&address).await.unwrap();
        // Let the accept loop take it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let exited = tokio::time::timeout(Duration::from_secs(60), nsqd.shutdown()).await;
        assert!(exited.is_ok(), "exit waited for the silent connection");
    }
}
