//! What nsq_to_http sends for one message to one address: Go's `--header` parsing, the
//! GET URL (`fmt.Sprintf(addr, url.QueryEscape(body))`), the headers Go sets, and Go's
//! success rule (POST: any 2xx; GET: exactly 200).

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, StatusCode};

use crate::go_fmt::sprintf_string;
use crate::http_client::{HttpClient, HttpGetError, HttpTarget, TargetError};

/// Why a message could not be sent to one address (the handler's error: requeue).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Connecting, the exchange or a timeout failed.
    #[error(transparent)]
    Http(#[from] HttpGetError),
    /// The GET URL made from the message is not a URL.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The answer's status is not a success (Go's text).
    #[error("got status code {0}")]
    Status(u16),
}

/// A `--header` Go refuses: no `:`, or an empty key or value after trimming (Go's
/// `invalid header: %q`), or one HTTP cannot carry.
#[derive(Debug, thiserror::Error)]
#[error("invalid header: {}", crate::go_fmt::go_quote(.0))]
pub struct HeaderError(pub String);

/// Go's `parseCustomHeaders`: each `key: value` split at the first `:`, both trimmed.
/// Later keys replace earlier ones (Go's map has no order; we keep the last given).
pub fn parse_headers(list: &[String]) -> Result<HeaderMap, HeaderError> {
    let mut headers = HeaderMap::new();
    for header in list {
        let invalid = || HeaderError(header.clone());
        let (key, value) = header.split_once(':').ok_or_else(invalid)?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(invalid());
        }
        let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space becomes `+`, every
/// other byte becomes `%XX` (upper-case hex).
pub fn query_escape(body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(body.len() * 3);
    for &b in body {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
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

/// The GET URL for `body`: Go's `fmt.Sprintf(addr, url.QueryEscape(body))`.
pub fn get_url(address: &str, body: &[u8]) -> String {
    sprintf_string(address, &query_escape(body))
}

/// How messages are sent: the method, the addresses and the headers.
#[derive(Debug)]
pub struct Requests {
    client: HttpClient,
    method: Method,
    addresses: Vec<String>,
    /// The parsed POST addresses (GET URLs are made per message).
    posts: Vec<HttpTarget>,
    headers: HeaderMap,
}

impl Requests {
    /// POSTs of the body to each of `addresses` (already parsed), with
    /// `Content-Type: content_type`.
    pub fn post(
        client: HttpClient,
        addresses: Vec<HttpTarget>,
        content_type: HeaderValue,
        custom: HeaderMap,
    ) -> Self {
        let mut headers = base_headers();
        headers.insert(CONTENT_TYPE, content_type);
        Requests {
            client,
            method: Method::POST,
            addresses: Vec::new(),
            posts: addresses,
            headers: with_custom(headers, custom),
        }
    }

    /// GETs of each of `addresses` with the escaped body in place of its `%s`.
    pub fn get(client: HttpClient, addresses: Vec<String>, custom: HeaderMap) -> Self {
        Requests {
            client,
            method: Method::GET,
            addresses,
            posts: Vec::new(),
            headers: with_custom(base_headers(), custom),
        }
    }

    /// Sends `body` to the address at `index`; `Ok` only for Go's success statuses.
    pub async fn send(&self, index: usize, body: &Bytes) -> Result<(), SendError> {
        let status = if self.method == Method::POST {
            let Some(target) = self.posts.get(index) else {
                return Err(TargetError::NoHost.into());
            };
            self.client
                .send(Method::POST, target, &self.headers, body.clone())
                .await?
        } else {
            let address = self.addresses.get(index).map_or("", String::as_str);
            let target = HttpTarget::parse(&get_url(address, body))?;
            self.client
                .send(Method::GET, &target, &self.headers, Bytes::new())
                .await?
        };
        let ok = if self.method == Method::POST {
            status.is_success()
        } else {
            status == StatusCode::OK
        };
        if ok {
            Ok(())
        } else {
            Err(SendError::Status(status.as_u16()))
        }
    }
}

/// Go's `User-Agent: nsq_to_http v1.3.0` (its HTTP one, unlike its IDENTIFY one).
fn base_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let agent = format!("nsq_to_http v{}", super::super::app::VERSION);
    if let Ok(agent) = HeaderValue::from_str(&agent) {
        headers.insert(USER_AGENT, agent);
    }
    headers
}

/// The custom headers over Go's own (`Header.Set`: a custom `User-Agent` or
/// `Content-Type` wins).
fn with_custom(mut headers: HeaderMap, custom: HeaderMap) -> HeaderMap {
    for (name, value) in &custom {
        headers.insert(name.clone(), value.clone());
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_escape_matches_gos() {
        assert_eq!(query_escape(b"a b+c~d*e/f"), "a+b%2Bc~d%2Ae%2Ff");
        assert_eq!(query_escape("é\n".as_bytes()), "%C3%A9%0A");
        assert_eq!(
            get_url("http://h:1/get?data=%s&x=1", b"{\"k\": 1}"),
            "http://h:1/get?data=%7B%22k%22%3A+1%7D&x=1"
        );
    }

    #[test]
    fn headers_parse_as_go_parses_them() {
        let list = vec![
            " X-Token : a:b ".to_string(),
            "user-agent: mine".to_string(),
        ];
        let headers = parse_headers(&list).unwrap();
        assert_eq!(headers["x-token"], "a:b");
        assert_eq!(headers["user-agent"], "mine");
        for bad in ["novalue", "key:", " : value", "bad key: v"] {
            let error = parse_headers(&[bad.to_string()]).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("invalid header: {}", crate::go_fmt::go_quote(bad))
            );
        }
    }
}
