//! go-nsq's `tls_*` pseudo-options (its `tlsConfig` handler) and the rustls client built
//! from them.
//!
//! Like Go, the files are read when the option is set, so a bad path fails the flag; the
//! client reads them again when [`super::NsqConfig::tls_client`] builds it.
//!
//! rustls speaks TLS 1.2 and 1.3 only. Go's own `tls.Config` (made as soon as any `tls_*`
//! option is set) allows TLS 1.0 to 1.2, and `tls_min_version` picks its floor among
//! `ssl3.0`, `tls1.0`, `tls1.1`, `tls1.2`; with rustls every floor is TLS 1.2 and the
//! ceiling stays Go's TLS 1.2. `tls1.3` is refused, as go-nsq v1.1.0 refuses it. With no
//! `tls_*` option Go uses its defaults, TLS 1.2 and 1.3, and so do we.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

use super::coerce::Raw;
use super::ConfigError;
use crate::client::{AcceptAnyServerCert, TlsClient};
use crate::env::read_startup_file;
use crate::go_fmt::go_path_error;
use crate::nsqd::tls::SYSTEM_ROOT_FILES;

/// What go-nsq keeps in `Config.TlsConfig` (and its handler's file names) once a `tls_*`
/// option is set. These options do not turn TLS on: `tls_v1` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Whether any `tls_*` option was set (even one that failed, as in Go): the client
    /// is then capped at TLS 1.2, as Go's handler caps its `tls.Config`.
    pub custom: bool,
    /// `tls_root_ca_file`: the PEM file of the roots to trust instead of the system's.
    pub root_ca_file: Option<String>,
    /// `tls_insecure_skip_verify`: trust any server certificate.
    pub insecure_skip_verify: bool,
    /// The last `tls_cert` given (Go's `certFile`).
    pub cert_file: String,
    /// The last `tls_key` given (Go's `keyFile`).
    pub key_file: String,
    /// The client certificate and key files, set once both were given and loaded. Go
    /// loads only the first complete pair; later `tls_cert`/`tls_key` do not replace it.
    pub client_cert: Option<(String, String)>,
    /// `tls_min_version` (see the module doc for what rustls makes of it).
    pub min_version: TlsVersion,
}

/// The versions `tls_min_version` accepts, Go's names in brackets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// `ssl3.0`.
    Ssl30,
    /// `tls1.0`, Go's floor when it builds its own `tls.Config`.
    #[default]
    Tls10,
    /// `tls1.1`.
    Tls11,
    /// `tls1.2`.
    Tls12,
}

impl TlsOptions {
    /// go-nsq's `tlsConfig.Set` for one of the five `tls_*` options.
    pub(super) fn set(&mut self, raw: &Raw<'_>) -> Result<(), ConfigError> {
        self.custom = true;
        match raw.option {
            "tls_root_ca_file" => {
                let path = raw.go_string()?;
                load_roots(path)?;
                self.root_ca_file = Some(path.to_owned());
            }
            "tls_insecure_skip_verify" => self.insecure_skip_verify = raw.bool()?,
            "tls_cert" | "tls_key" => {
                // Go panics on a value-less tls_cert/tls_key; we refuse as for the CA file.
                let file = raw.go_string()?.to_owned();
                if raw.option == "tls_cert" {
                    self.cert_file = file;
                } else {
                    self.key_file = file;
                }
                let both = !self.cert_file.is_empty() && !self.key_file.is_empty();
                if both && self.client_cert.is_none() {
                    load_key_pair(&self.cert_file, &self.key_file, &provider())?;
                    self.client_cert = Some((self.cert_file.clone(), self.key_file.clone()));
                }
            }
            "tls_min_version" => {
                self.min_version = match raw.go_string()? {
                    "ssl3.0" => TlsVersion::Ssl30,
                    "tls1.0" => TlsVersion::Tls10,
                    "tls1.1" => TlsVersion::Tls11,
                    "tls1.2" => TlsVersion::Tls12,
                    other => return Err(ConfigError::NotATlsVersion(other.to_owned())),
                }
            }
            other => return Err(ConfigError::InvalidOption(other.to_owned())),
        }
        Ok(())
    }

    /// The rustls client go-nsq's `upgradeTLS` would use, checking the certificate
    /// against `host` (also sent as SNI when it is a name).
    pub(super) fn client(&self, host: &str) -> Result<TlsClient, ConfigError> {
        let provider = provider();
        let versions: &[&SupportedProtocolVersion] = if self.custom {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS12, &rustls::version::TLS13]
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(rustls_error)?;
        let builder = if self.insecure_skip_verify {
            let verifier = AcceptAnyServerCert::new(provider.clone());
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        } else {
            let roots = match &self.root_ca_file {
                Some(path) => load_roots(path)?,
                None => system_roots()?,
            };
            builder.with_root_certificates(roots)
        };
        let config = match &self.client_cert {
            Some((cert, key)) => {
                let (certs, key) = load_key_pair(cert, key, &provider)?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(rustls_error)?
            }
            None => builder.with_no_client_auth(),
        };
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| ConfigError::ServerName(host.to_owned()))?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// The crypto provider every TLS client of ours uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls_graviola::default_provider())
}

fn rustls_error(error: rustls::Error) -> ConfigError {
    ConfigError::Tls(error.to_string())
}

/// The certificates of a PEM bundle, stopping at the first malformed block.
fn pem_certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .map_while(Result::ok)
        .collect()
}

/// `tls_root_ca_file`: Go's `AppendCertsFromPEM`, which skips what it cannot parse and
/// fails only when nothing was added.
fn load_roots(path: &str) -> Result<RootCertStore, ConfigError> {
    let pem = read_startup_file(Path::new(path))
        .map_err(|e| ConfigError::ReadRootCa(go_path_error(path, &e)))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(pem_certificates(&pem));
    if added == 0 {
        return Err(ConfigError::NoRootCaCerts);
    }
    Ok(roots)
}

/// A plain HTTPS client trusting the system's roots, as Go's default `http.Client` does
/// (nsq_to_http's `https://` addresses).
pub fn system_https_config() -> Result<Arc<ClientConfig>, ConfigError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_root_certificates(system_roots()?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The system's roots (Go's nil `RootCAs`): the file `SSL_CERT_FILE` names when it is
/// set (Go's override), else the first of Go's Linux bundle files that can be read.
fn system_roots() -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    let chosen = std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|path| !path.is_empty());
    let bundle = match chosen {
        Some(path) => read_startup_file(Path::new(&path)).ok(),
        None => SYSTEM_ROOT_FILES
            .iter()
            .find_map(|path| read_startup_file(Path::new(path)).ok()),
    };
    if let Some(pem) = bundle {
        roots.add_parsable_certificates(pem_certificates(&pem));
    }
    if roots.is_empty() {
        return Err(ConfigError::NoSystemRoots);
    }
    Ok(roots)
}

/// Go's `tls.LoadX509KeyPair` (its main error texts), plus the check that the key
/// belongs to the certificate.
fn load_key_pair(
    cert_file: &str,
    key_file: &str,
    provider: &CryptoProvider,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ConfigError> {
    let read = |path: &str| {
        read_startup_file(Path::new(path))
            .map_err(|e| ConfigError::KeyPair(go_path_error(path, &e)))
    };
    let (cert_pem, key_pem) = (read(cert_file)?, read(key_file)?);
    let certs = pem_certificates(&cert_pem);
    if certs.is_empty() {
        let text = "tls: failed to find any PEM data in certificate input";
        return Err(ConfigError::KeyPair(text.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        ConfigError::KeyPair("tls: failed to find any PEM data in key input".to_owned())
    })?;
    match CertifiedKey::from_der(certs.clone(), key.clone_key(), provider) {
        Ok(_) => Ok((certs, key)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(ConfigError::KeyPair(
            "tls: private key does not match public key".to_owned(),
        )),
        Err(other) => Err(ConfigError::KeyPair(format!("tls: {other}"))),
    }
}
