//! What the client needs to speak TLS after IDENTIFY `tls_v1`: the rustls configuration
//! and the name the server's certificate is checked against, and the verifier for
//! callers that were asked not to check that certificate at all.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::DigitallySignedStruct;

/// How a connection upgrades to TLS when nsqd's IDENTIFY answer turns it on.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// The rustls client configuration (roots, verifier, client certificate).
    pub config: Arc<rustls::ClientConfig>,
    /// The name sent in SNI and checked against the certificate (go-nsq uses the host
    /// part of the address it dialled).
    pub server_name: ServerName<'static>,
}

/// Trusts every server certificate, but still checks the handshake signatures with the
/// provider's algorithms: the connection is encrypted, not authenticated.
///
/// It exists for the two callers that ask for exactly that: Go's `InsecureSkipVerify`
/// (the tools' `tls_insecure_skip_verify` option, which the user turns on explicitly) and
/// the bench, which measures TLS against its own throwaway nsqd. Use it for nothing else.
#[derive(Debug)]
pub struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl AcceptAnyServerCert {
    /// A verifier checking handshake signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyServerCert { provider }
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
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
