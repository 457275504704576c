//! Where a full `http://host[:port]/path?query` URL sends a request: the TCP address to
//! dial, the `Host` header and the request target, as Go's `http.NewRequest` reads it.

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
    /// A scheme other than `http` (Go's `unsupported protocol scheme` text; `https` is
    /// refused too: this client speaks plain HTTP only).
    #[error("unsupported protocol scheme {0:?}")]
    UnsupportedScheme(String),
    /// No scheme or no host (Go's `http: no Host in request URL`).
    #[error("http: no Host in request URL")]
    NoHost,
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `host:port` to dial (port 80 when the URL has none).
    pub address: String,
    /// The `Host` header: the URL's host and port as written.
    pub host: String,
    /// The request target: the path (at least `/`) and the query.
    pub path_and_query: String,
}

impl HttpTarget {
    /// Reads `url`, which must be `http://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<HttpTarget, TargetError> {
        let uri: hyper::Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| TargetError::Invalid {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
        match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => {}
            Some(other) => return Err(TargetError::UnsupportedScheme(other.to_lowercase())),
            None => return Err(TargetError::NoHost),
        }
        let authority = uri.authority().ok_or(TargetError::NoHost)?;
        if authority.host().is_empty() {
            return Err(TargetError::NoHost);
        }
        let host = authority.as_str();
        // Credentials (`user:pass@`) are not sent as a header here; they are not part of
        // the address either.
        let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
        let address = match authority.port_u16() {
            Some(_) => host.to_string(),
            None => format!("{}:80", host.trim_end_matches(':')),
        };
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
    fn only_http_urls_with_a_host() {
        assert_eq!(
            HttpTarget::parse("https://h/x"),
            Err(TargetError::UnsupportedScheme("https".into()))
        );
        assert_eq!(HttpTarget::parse("/just/a/path"), Err(TargetError::NoHost));
        assert!(matches!(
            HttpTarget::parse("http://a b/"),
            Err(TargetError::Invalid { .. })
        ));
    }
}
