//! What the client needs to speak TLS after IDENTIFY `tls_v1`: the rustls configuration
//! and the name the server's certificate is checked against.

use std::sync::Arc;

use rustls::pki_types::ServerName;

/// How a connection upgrades to TLS when nsqd's IDENTIFY answer turns it on.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// The rustls client configuration (roots, verifier, client certificate).
    pub config: Arc<rustls::ClientConfig>,
    /// The name sent in SNI and checked against the certificate (go-nsq uses the host
    /// part of the address it dialled).
    pub server_name: ServerName<'static>,
}
