//! Asking the auth servers: Go's `auth.QueryAnyAuthd` and `auth.QueryAuthd`. One
//! `GET /auth?common_name=..&remote_ip=..&secret=..&tls=..` per server, starting at a
//! random one and going round until one gives a valid answer.

use std::sync::Arc;

use crate::env::Net;
use crate::http_client::{get_json_via, HttpGetError, HttpTimeouts, TlsTarget};

use super::state::{AuthResponse, AuthState, ResponseError};

/// The most bytes an auth server's answer may have.
const AUTH_RESPONSE_BYTES_MAX: usize = 1024 * 1024;

/// What nsqd tells the auth server about the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthRequest<'a> {
    /// The client's IP address, without the port.
    pub(crate) remote_ip: &'a str,
    /// Whether the connection upgraded to TLS.
    pub(crate) tls: bool,
    /// The client certificate's common name (empty without one).
    pub(crate) common_name: &'a str,
    /// The AUTH body, as the client sent it.
    pub(crate) secret: &'a [u8],
}

/// Why asking one server, or all of them, failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryError {
    /// The HTTP exchange failed, timed out, answered non-200 or non-JSON.
    #[error(transparent)]
    Http(#[from] HttpGetError),
    /// The JSON was well formed but not a valid answer.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// An address that is not `host:port`, `http://...` or `https://...`.
    #[error("unsupported auth server url {0}")]
    Url(String),
    /// Every server failed, Go's message: each `failed to auth against <addr> - <why>`,
    /// joined by `; `.
    #[error("{}", all_failed(.0))]
    AllFailed(Vec<(String, QueryError)>),
}

fn all_failed(failures: &[(String, QueryError)]) -> String {
    failures
        .iter()
        .map(|(addr, why)| format!("failed to auth against {addr} - {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Asks `addresses` in turn, beginning at index `start`, and returns the first valid
/// answer; `now_ns` reads the wall clock when an answer arrives (the ttl starts then).
/// `https://` servers are asked with `tls` (the system's roots).
pub(crate) async fn query_any(
    net: &dyn Net,
    addresses: &[String],
    start: usize,
    request: AuthRequest<'_>,
    timeouts: HttpTimeouts,
    tls: Option<&Arc<rustls::ClientConfig>>,
    now_ns: impl Fn() -> i64,
) -> Result<AuthState, QueryError> {
    let mut failures = Vec::new();
    let n = addresses.len();
    for i in 0..n {
        let address = &addresses[(start + i) % n];
        match query_one(net, address, request, timeouts, tls, &now_ns).await {
            Ok(state) => return Ok(state),
            Err(why) => {
                tracing::debug!(auth_server = %address, error = %why, "auth server failed");
                failures.push((address.clone(), why));
            }
        }
    }
    Err(QueryError::AllFailed(failures))
}

async fn query_one(
    net: &dyn Net,
    address: &str,
    request: AuthRequest<'_>,
    timeouts: HttpTimeouts,
    tls: Option<&Arc<rustls::ClientConfig>>,
    now_ns: &impl Fn() -> i64,
) -> Result<AuthState, QueryError> {
    let endpoint = endpoint(address, &query_string(request))?;
    let target = match (&endpoint.https_host, tls) {
        (None, _) => None,
        (Some(host), Some(config)) => Some(TlsTarget {
            config: config.clone(),
            server_name: host.clone(),
        }),
        (Some(_), None) => return Err(QueryError::Url(address.to_string())),
    };
    let response: AuthResponse = get_json_via(
        net,
        &endpoint.host_port,
        target.as_ref(),
        &endpoint.path,
        timeouts,
        AUTH_RESPONSE_BYTES_MAX,
    )
    .await?;
    Ok(AuthState::from_response(response, now_ns())?)
}

/// Go's `url.Values.Encode()` of the four parameters: keys sorted, values escaped.
fn query_string(request: AuthRequest<'_>) -> String {
    let tls = if request.tls { "true" } else { "false" };
    format!(
        "common_name={}&remote_ip={}&secret={}&tls={tls}",
        go_query_escape(request.common_name.as_bytes()),
        go_query_escape(request.remote_ip.as_bytes()),
        go_query_escape(request.secret),
    )
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space becomes `+`, every
/// other byte `%XX` in upper-case hex.
fn go_query_escape(s: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out
}

/// Where one auth server is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    /// `host:port` to connect to.
    host_port: String,
    /// The path and query asked for.
    path: String,
    /// For `https://`: the host the certificate must name.
    https_host: Option<String>,
}

/// Where to connect and what to ask for: a plain `host:port` becomes
/// `http://host:port/auth?<query>`; a URL gets `?<query>` appended as Go does.
fn endpoint(address: &str, query: &str) -> Result<Endpoint, QueryError> {
    let Some((scheme, rest)) = address.split_once("://") else {
        return Ok(Endpoint {
            host_port: address.to_string(),
            path: format!("/auth?{query}"),
            https_host: None,
        });
    };
    let https = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return Err(QueryError::Url(address.to_string()));
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(QueryError::Url(address.to_string()));
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.contains(']'));
    let (host, host_port) = if has_port {
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host);
        (host, authority.to_string())
    } else {
        let port = if https { 443 } else { 80 };
        (authority, format!("{authority}:{port}"))
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let https_host = https.then(|| {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    });
    Ok(Endpoint {
        host_port,
        path: format!("{path}?{query}"),
        https_host,
    })
}

/// Whether `address` names an `https://` auth server (nsqd then loads the system's roots).
pub(crate) fn is_https(address: &str) -> bool {
    endpoint(address, "").is_ok_and(|e| e.https_host.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_go_url_values_encoding() {
        let request = AuthRequest {
            remote_ip: "127.0.0.1",
            tls: false,
            common_name: "",
            secret: b"s3cret token/+&=~*\xff",
        };
        assert_eq!(
            query_string(request),
            "common_name=&remote_ip=127.0.0.1&secret=s3cret+token%2F%2B%26%3D~%2A%FF&tls=false"
        );
        let tls = AuthRequest {
            tls: true,
            common_name: "client one",
            ..request
        };
        assert!(query_string(tls).starts_with("common_name=client+one&"));
        assert!(query_string(tls).ends_with("&tls=true"));
    }

    #[test]
    fn a_host_port_is_asked_at_slash_auth() {
        assert_eq!(
            endpoint("127.0.0.1:4181", "q=1").unwrap(),
            plain("127.0.0.1:4181", "/auth?q=1")
        );
    }

    #[test]
    fn a_url_keeps_its_path_and_gets_the_query_appended() {
        assert_eq!(
            endpoint("http://auth.local:8080/v1/check", "q=1").unwrap(),
            plain("auth.local:8080", "/v1/check?q=1")
        );
        assert_eq!(
            endpoint("http://auth.local", "q=1").unwrap(),
            plain("auth.local:80", "/?q=1")
        );
        assert_eq!(
            endpoint("http://[::1]:9/a", "q").unwrap(),
            plain("[::1]:9", "/a?q")
        );
        assert_eq!(
            endpoint("http://[::1]/a", "q").unwrap(),
            plain("[::1]:80", "/a?q")
        );
    }

    fn plain(host_port: &str, path: &str) -> Endpoint {
        Endpoint {
            host_port: host_port.into(),
            path: path.into(),
            https_host: None,
        }
    }

    #[test]
    fn https_urls_name_the_host_the_certificate_must_carry() {
        assert_eq!(
            endpoint("https://auth.local/check", "q").unwrap(),
            Endpoint {
                host_port: "auth.local:443".into(),
                path: "/check?q".into(),
                https_host: Some("auth.local".into()),
            }
        );
        assert_eq!(
            endpoint("https://[::1]:8443/a", "q").unwrap().https_host,
            Some("::1".into())
        );
        assert!(is_https("HTTPS://a:1/auth"));
        assert!(!is_https("http://a:1/auth"));
        assert!(!is_https("127.0.0.1:4181"));
        assert!(endpoint("http:///auth", "").is_err());
        assert!(endpoint("ftp://a/auth", "").is_err());
    }

    #[test]
    fn all_failed_reads_like_go() {
        let err = QueryError::AllFailed(vec![
            ("a:1".into(), QueryError::Url("x".into())),
            ("b:2".into(), ResponseError::Ttl(0).into()),
        ]);
        assert_eq!(
            err.to_string(),
            "failed to auth against a:1 - unsupported auth server url x; \
             failed to auth against b:2 - invalid TTL 0 (must be >0)"
        );
    }
}
