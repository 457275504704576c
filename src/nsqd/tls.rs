//! TLS for nsqd: the server configuration built from `--tls-cert`, `--tls-key`,
//! `--tls-root-ca-file`, `--tls-client-auth-policy` and `--tls-min-version` (Go's
//! `buildTLSConfig`), and the server-side handshake used by the TCP upgrade (IDENTIFY
//! `tls_v1`) and the HTTPS listener.
//!
//! rustls with graviola's pure-Rust crypto provider: nothing outside the Rust toolchain
//! is needed to build. rustls speaks TLS 1.2 and 1.3 only, so `--tls-min-version` below
//! `tls1.2` behaves as `tls1.2`.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};

use crate::env::{BoxStream, Env};
use crate::nsqd::Options;

/// Go's deadline for the server-side handshake of the TCP upgrade.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the TLS configuration could not be built (nsqd refuses to start).
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A certificate, key or CA file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// A file held no usable PEM block of the expected kind.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: String,
        /// What is missing or wrong.
        what: &'static str,
    },
    /// rustls refused the certificate, key or verifier.
    #[error("{0}")]
    Rustls(String),
}

/// The server configuration, or `None` when no certificate and key are set (TLS is then
/// not offered: IDENTIFY answers `tls_v1: false` and there is no HTTPS listener).
pub async fn server_config(
    opts: &Options,
    env: &Env,
) -> Result<Option<Arc<ServerConfig>>, TlsConfigError> {
    if opts.tls_cert.is_empty() || opts.tls_key.is_empty() {
        return Ok(None);
    }
    let provider = Arc::new(rustls_graviola::default_provider());
    let certs = CertificateDer::pem_slice_iter(&read(env, &opts.tls_cert).await?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| pem_error(&opts.tls_cert, "not a PEM certificate"))?;
    if certs.is_empty() {
        return Err(pem_error(&opts.tls_cert, "no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(env, &opts.tls_key).await?)
        .map_err(|_| pem_error(&opts.tls_key, "no private key found"))?;
    let versions: &[&rustls::SupportedProtocolVersion] = if opts.tls_min_version == "tls1.3" {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(rustls_error)?;
    let builder = match opts.tls_client_auth_policy.as_str() {
        "require" => builder.with_client_cert_verifier(Arc::new(AnyClientCert { provider })),
        "require-verify" => {
            let roots = client_roots(opts, env).await?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(rustls_error)?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key).map_err(rustls_error)?;
    Ok(Some(Arc::new(config)))
}

/// The roots client certificates are verified against: `--tls-root-ca-file`, or the
/// system's roots without one (Go's nil `ClientCAs`).
async fn client_roots(opts: &Options, env: &Env) -> Result<RootCertStore, TlsConfigError> {
    if opts.tls_root_ca_file.is_empty() {
        return system_roots(env).await;
    }
    let mut roots = RootCertStore::empty();
    let pem = read(env, &opts.tls_root_ca_file).await?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|_| pem_error(&opts.tls_root_ca_file, "not a PEM certificate"))?;
        roots.add(cert).map_err(rustls_error)?;
    }
    if roots.is_empty() {
        return Err(pem_error(
            &opts.tls_root_ca_file,
            "failed to append certificate to pool",
        ));
    }
    Ok(roots)
}

async fn read(env: &Env, path: &str) -> Result<Vec<u8>, TlsConfigError> {
    env.fs
        .read(Path::new(path))
        .await
        .map_err(|source| TlsConfigError::Read {
            path: path.to_string(),
            source,
        })
}

fn pem_error(path: &str, what: &'static str) -> TlsConfigError {
    TlsConfigError::Pem {
        path: path.to_string(),
        what,
    }
}

fn rustls_error(error: impl std::fmt::Display) -> TlsConfigError {
    TlsConfigError::Rustls(error.to_string())
}

/// Where Go looks for the system's trusted roots on Linux, in its order; the first file
/// that exists is used (by nsqd's auth client and the tools' TLS client alike).
pub const SYSTEM_ROOT_FILES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The client configuration nsqd asks `https://` auth servers with: the system's roots,
/// as Go's default HTTP client trusts them. No roots found is an error.
pub async fn system_client_config(env: &Env) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let roots = system_roots(env).await?;
    let provider = Arc::new(rustls_graviola::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The client configuration an owner opens TLS to its replica peers with: it trusts
/// `--tls-root-ca-file` (the system's roots without one) and presents `--tls-cert` and
/// `--tls-key` when set, so a peer's `--tls-client-auth-policy` holds for it too.
pub async fn peer_client_config(
    opts: &Options,
    env: &Env,
) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let roots = client_roots(opts, env).await?;
    let provider = Arc::new(rustls_graviola::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_root_certificates(roots);
    let config = if opts.tls_cert.is_empty() || opts.tls_key.is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs = CertificateDer::pem_slice_iter(&read(env, &opts.tls_cert).await?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| pem_error(&opts.tls_cert, "not a PEM certificate"))?;
        let key = PrivateKeyDer::from_pem_slice(&read(env, &opts.tls_key).await?)
            .map_err(|_| pem_error(&opts.tls_key, "no private key found"))?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(rustls_error)?
    };
    Ok(Arc::new(config))
}

/// The client side of a handshake over `stream` with the server `host` (a DNS name or
/// an IP address), within [`HANDSHAKE_TIMEOUT`].
pub async fn connect(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    stream: BoxStream,
) -> io::Result<BoxStream> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    Ok(Box::new(tls))
}

/// The system's trusted roots, read (through `env.fs`) from the first of Go's Linux
/// bundle files that exists. None found is an error.
async fn system_roots(env: &Env) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for path in SYSTEM_ROOT_FILES {
        let Ok(pem) = env.fs.read(Path::new(path)).await else {
            continue;
        };
        for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
            // Go skips certificates it cannot parse; so do we.
            let _ = roots.add(cert);
        }
        break;
    }
    if roots.is_empty() {
        return Err(pem_error(
            SYSTEM_ROOT_FILES[0],
            "no system root certificates found",
        ));
    }
    Ok(roots)
}

/// What a finished handshake agreed, for `/stats` and the auth server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Go's name of the version: `TLS1.2`, `TLS1.3`.
    pub version: String,
    /// Go's name of the cipher suite, e.g. `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`.
    pub cipher_suite: String,
    /// The ALPN protocol agreed (none is offered, so normally empty).
    pub negotiated_protocol: String,
    /// The common name of the client certificate's subject, when one was sent.
    pub common_name: String,
}

/// The server side of a handshake over `stream`, within [`HANDSHAKE_TIMEOUT`].
pub async fn accept(
    config: Arc<ServerConfig>,
    stream: BoxStream,
) -> io::Result<(BoxStream, TlsInfo)> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let info = info(tls.get_ref().1);
    Ok((Box::new(tls), info))
}

fn info(connection: &rustls::ServerConnection) -> TlsInfo {
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3".to_string(),
        Some(other) => format!("Unknown {}", u16::from(other)),
        None => String::new(),
    };
    let cipher_suite = connection
        .negotiated_cipher_suite()
        .map(|suite| go_suite_name(&format!("{:?}", suite.suite())))
        .unwrap_or_default();
    let negotiated_protocol = connection
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let common_name = connection
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| subject_common_name(cert))
        .unwrap_or_default();
    TlsInfo {
        version,
        cipher_suite,
        negotiated_protocol,
        common_name,
    }
}

/// rustls names TLS 1.3 suites `TLS13_...`; Go (and IANA) name them `TLS_...`.
fn go_suite_name(rustls_name: &str) -> String {
    match rustls_name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => rustls_name.to_string(),
    }
}

/// The first common name of a certificate's subject.
fn subject_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let name = parsed.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_string)
}

/// Go's `tls.RequireAnyClientCert`: a client certificate must be sent, and the handshake
/// signature made with its key must verify, but the certificate itself is not checked
/// against any root.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

#[cfg(test)]
mod tests {
    use super::go_suite_name;

    #[test]
    fn suite_names_are_go_s() {
        assert_eq!(
            go_suite_name("TLS13_AES_128_GCM_SHA256"),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            go_suite_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
    }
}
