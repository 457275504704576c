//! How a tool opens a connection to nsqd, as go-nsq's `Conn.Connect` does: dial within
//! `dial_timeout`, IDENTIFY with feature negotiation, the TLS and compression upgrades
//! nsqd turned on, then AUTH with `auth_secret` when nsqd requires it.

use serde_json::Value;

use super::nsq_config::{ConfigError, NsqConfig};
use crate::client::{ClientError, Connection};
use crate::env::Net;
use crate::protocol::commands::Command;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The TLS options could not be turned into a TLS client.
    #[error(transparent)]
    Tls(#[from] ConfigError),
    /// Dialling, IDENTIFY, an upgrade or AUTH failed on the wire.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// nsqd did not accept the connection within `dial_timeout`.
    #[error("dial timed out")]
    DialTimeout,
    /// IDENTIFY (and AUTH) took longer than `read_timeout`.
    #[error("i/o timeout")]
    ReadTimeout,
    /// nsqd requires AUTH and no `auth_secret` was given (go-nsq's `Auth Required`).
    #[error("Auth Required")]
    AuthRequired,
    /// nsqd refused the secret.
    #[error("Error authenticating {0}")]
    AuthFailed(#[source] ClientError),
}

/// An open, identified (and authenticated) connection, with nsqd's IDENTIFY answer.
pub struct Opened {
    /// The connection, ready for SUB or PUB.
    pub conn: Connection,
    /// nsqd's negotiation answer (`Value::Null` when it answered a bare `OK`).
    pub answer: Value,
}

impl Opened {
    /// The most RDY this nsqd accepts (`max_rdy_count`; 2500 when it did not say).
    pub fn max_rdy_count(&self) -> i64 {
        self.answer
            .get("max_rdy_count")
            .and_then(Value::as_i64)
            .unwrap_or(2500)
    }
}

/// Opens `address` as go-nsq does; see the module docs. A zero `dial_timeout` or
/// `read_timeout` is no limit, as for Go's dialer and deadlines.
pub async fn open(
    net: &dyn Net,
    address: &str,
    config: &NsqConfig,
) -> Result<Opened, HandshakeError> {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let tls = config.tls_client(host)?;
    let dial = Connection::connect(net, address);
    let mut conn = if config.dial_timeout.is_zero() {
        dial.await?
    } else {
        tokio::time::timeout(config.dial_timeout, dial)
            .await
            .map_err(|_| HandshakeError::DialTimeout)??
    };
    let greet = greet(&mut conn, config, tls.as_ref());
    let answer = if config.read_timeout.is_zero() {
        greet.await?
    } else {
        tokio::time::timeout(config.read_timeout, greet)
            .await
            .map_err(|_| HandshakeError::ReadTimeout)??
    };
    Ok(Opened { conn, answer })
}

/// IDENTIFY, the upgrades, and AUTH when required; nsqd's IDENTIFY answer.
async fn greet(
    conn: &mut Connection,
    config: &NsqConfig,
    tls: Option<&crate::client::TlsClient>,
) -> Result<Value, HandshakeError> {
    let negotiated = conn
        .identify_and_upgrade_tls(config.identify_json(), tls)
        .await?;
    let answer = serde_json::from_slice::<Value>(&negotiated.answer).unwrap_or(Value::Null);
    let auth_required = answer
        .get("auth_required")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if auth_required {
        if config.auth_secret.is_empty() {
            return Err(HandshakeError::AuthRequired);
        }
        let auth = Command::Auth {
            secret: bytes::Bytes::from(config.auth_secret.clone()),
        };
        conn.request(&auth)
            .await
            .map_err(HandshakeError::AuthFailed)?;
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::bench::FakeNsqd;
    use crate::env::{BoxFuture, BoxStream, Datagram, Listener, RealNet};

    /// Real sockets whose connects take 20 ms, as a remote dial would, or never finish.
    struct SlowNet {
        never: bool,
    }

    impl Net for SlowNet {
        fn bind_tcp<'a>(
            &'a self,
            addr: &'a str,
        ) -> BoxFuture<'a, std::io::Result<Box<dyn Listener>>> {
            RealNet.bind_tcp(addr)
        }

        fn connect_tcp<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxStream>> {
            Box::pin(async move {
                if self.never {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                RealNet.connect_tcp(addr).await
            })
        }

        fn bind_udp<'a>(
            &'a self,
            addr: &'a str,
        ) -> BoxFuture<'a, std::io::Result<Box<dyn Datagram>>> {
            RealNet.bind_udp(addr)
        }
    }

    fn config(dial_timeout: Duration) -> NsqConfig {
        let mut config = NsqConfig::with_hostname("test");
        config.dial_timeout = dial_timeout;
        config
    }

    #[tokio::test]
    async fn a_zero_dial_timeout_is_no_limit() {
        let nsqd = FakeNsqd::start().await;
        let net: Arc<dyn Net> = Arc::new(SlowNet { never: false });
        let opened = open(&*net, &nsqd.address(), &config(Duration::ZERO)).await;
        assert!(opened.is_ok(), "{:?}", opened.err());
    }

    #[tokio::test]
    async fn a_dial_slower_than_dial_timeout_fails() {
        let nsqd = FakeNsqd::start().await;
        let net: Arc<dyn Net> = Arc::new(SlowNet { never: true });
        let opened = open(&*net, &nsqd.address(), &config(Duration::from_millis(50))).await;
        assert!(
            matches!(opened, Err(HandshakeError::DialTimeout)),
            "{:?}",
            opened.err()
        );
    }
}
