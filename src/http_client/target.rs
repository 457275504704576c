//! Where a full `http[s]://host[:port]/path?query` URL sends a request: the TCP address
//! to dial, whether to speak TLS (and the name the certificate must carry), the `Host`
//! header and the request target, as Go's `http.NewRequest` reads it.

/// Why a URL cannot be requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL at all.
    #[error("invalid URL {url:?} - {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// A scheme other than `http` and `https` (Go's `unsupported protocol scheme` text).
    #[error("unsupported protocol scheme {0:?}")]
    UnsupportedScheme(String),
    /// No scheme or no host (Go's `http: no Host in request URL`).
    #[error("http: no Host in request URL")]
    NoHost,
}

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `host:port` to dial (port 80, or 443 for `https`, when the URL has none).
    pub address: String,
    /// For `https`: the host the server's certificate must name (no port, no brackets).
    pub tls_server_name: Option<String>,
    /// The `Host` header: the URL's host and port as written.
    pub host: String,
    /// The request target: the path (at least `/`) and the query.
    pub path_and_query: String,
}

impl HttpTarget {
    /// Reads `url`, which must be `http[s]://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<HttpTarget, TargetError> {
        let uri: hyper::Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| TargetError::Invalid {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
        let tls = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
            Some(other) => return Err(TargetError::UnsupportedScheme(other.to_lowercase())),
            None => return Err(TargetError::NoHost),
        };
        let authority = uri.authority().ok_or(TargetError::NoHost)?;
        if authority.host().is_empty() {
            return Err(TargetError::NoHost);
        }
        let host = authority.as_str();
        // Credentials (`user:pass@`) are not sent as a header here; they are not part of
        // the address either.
        let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
        let default_port = if tls { 443 } else { 80 };
        let address = match authority.port_u16() {
            Some(_) => host.to_string(),
            None => format!("{}:{default_port}", host.trim_end_matches(':')),
        };
        let tls_server_name = tls.then(|| {
            let name = authority.host();
            name.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        let path_and_query = uri
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .to_string();
        let path_and_query = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            format!("/{path_and_query}")
        };
        Ok(HttpTarget {
            address,
            tls_server_name,
            host: host.to_string(),
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_host_and_target() {
        let target = HttpTarget::parse("http://127.0.0.1:8080/post?a=1").unwrap();
        assert_eq!(target.address, "127.0.0.1:8080");
        assert_eq!(target.host, "127.0.0.1:8080");
        assert_eq!(target.path_and_query, "/post?a=1");
        let bare = HttpTarget::parse("HTTP://example.com").unwrap();
        assert_eq!(bare.address, "example.com:80");
        assert_eq!(bare.host, "example.com");
        assert_eq!(bare.path_and_query, "/");
    }

    #[test]
    fn https_urls_dial_443_and_name_their_host() {
        let target = HttpTarget::parse("https://example.com/x").unwrap();
        assert_eq!(target.address, "example.com:443");
        assert_eq!(target.tls_server_name.as_deref(), Some("example.com"));
        let plain = HttpTarget::parse("http://example.com:81/").unwrap();
        assert_eq!(plain.tls_server_name, None);
    }

    #[test]
    fn only_http_and_https_urls_with_a_host() {
        assert_eq!(
            HttpTarget::parse("ftp://h/x"),
            Err(TargetError::UnsupportedScheme("ftp".into()))
        );
        assert_eq!(HttpTarget::parse("/just/a/path"), Err(TargetError::NoHost));
        assert!(matches!(
            HttpTarget::parse("http://a b/"),
            Err(TargetError::Invalid { .. })
        ));
    }
}
