//! TLS for the bench: a client that trusts any certificate, and a throwaway self-signed
//! certificate for the nsqd the suite starts.
//!
//! **Bench only.** The client accepts whatever certificate the server shows (it still
//! checks the handshake signatures, so the connection is encrypted, but not
//! authenticated): the bench measures the cost of TLS against its own nsqd on loopback,
//! it does not protect anything. Never reuse it for real traffic.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::DigitallySignedStruct;

use super::BenchError;
use crate::client::TlsClient;

/// The bench's TLS client: rustls with graviola's provider, TLS 1.2 and 1.3, trusting
/// any server certificate (see the module doc), SNI `localhost`.
pub fn insecure_client() -> Result<TlsClient, BenchError> {
    let provider = Arc::new(rustls_graviola::default_provider());
    let verifier = Arc::new(AcceptAnyCertificate {
        provider: provider.clone(),
    });
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

/// Trusts every certificate, but checks the handshake signatures with the provider's
/// algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
