//! TLS for the bench: a client that trusts any certificate, and a throwaway self-signed
//! certificate for the nsqd the suite starts.
//!
//! **Bench only.** The client accepts whatever certificate the server shows (it still
//! checks the handshake signatures, so the connection is encrypted, but not
//! authenticated): the bench measures the cost of TLS against its own nsqd on loopback,
//! it does not protect anything. Never reuse it for real traffic.

use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::BenchError;
use crate::client::{AcceptAnyServerCert, TlsClient};

/// The bench's TLS client: rustls with graviola's provider, TLS 1.2 and 1.3, trusting
/// any server certificate (see the module doc), SNI `localhost`.
pub fn insecure_client() -> Result<TlsClient, BenchError> {
    let provider = Arc::new(rustls_graviola::default_provider());
    let verifier = Arc::new(AcceptAnyServerCert::new(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|err| BenchError::Tls(err.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let server_name =
        ServerName::try_from("localhost").map_err(|err| BenchError::Tls(err.to_string()))?;
    Ok(TlsClient {
        config: Arc::new(config),
        server_name,
    })
}

/// A self-signed certificate for `localhost` and `127.0.0.1` and its private key, both
/// PEM, made fresh at run time.
pub fn self_signed_pem() -> Result<(String, String), rcgen::Error> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}
