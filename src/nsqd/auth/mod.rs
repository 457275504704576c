//! AUTH as Go nsqd v1.3.0 does it: with `--auth-http-address` set, a client sends its
//! secret with AUTH, nsqd asks an auth server what that secret may do, keeps the answer
//! until its ttl runs out, and checks SUB, PUB, MPUB and DPUB against it.
//!
//! - `state`: the server's answer, checked and compiled, and the permission test.
//! - `query`: the HTTP request to the servers, tried from a random one round.
//!
//! Errors from the auth servers go to the log only; the client gets Go's terse
//! `E_AUTH_FAILED AUTH failed` and the connection closes.

mod query;
mod state;

use std::sync::Arc;

use crate::http_client::HttpTimeouts;
use crate::protocol::names::go_quote;
use crate::protocol::{is_valid_topic_name, ErrorCode, ProtocolError, MAX_LINE_LENGTH};

use super::client::ClientShared;
use super::NsqdInner;

pub(crate) use query::is_https;
use query::{query_any, AuthRequest, QueryError};
use state::AuthState;

/// A connection's standing with the auth servers (Go's `AuthSecret` and `AuthState`).
#[derive(Debug, Default)]
pub(crate) struct AuthSession {
    /// The secret of the last AUTH, sent again whenever the answer expires.
    secret: Vec<u8>,
    /// The last valid answer (kept, even without grants, until a new one replaces it).
    state: Option<Arc<AuthState>>,
}

impl AuthSession {
    /// Go's `HasAuthorizations`: an answer with at least one grant.
    fn has_authorizations(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| !s.authorizations.is_empty())
    }

    /// `(identity, identity_url)` once an auth server answered, for `/stats`.
    pub(crate) fn identity(&self) -> Option<(String, String)> {
        self.state
            .as_ref()
            .map(|s| (s.identity.clone(), s.identity_url.clone()))
    }
}

impl NsqdInner {
    /// Go's `IsAuthEnabled`: any auth server configured.
    pub(crate) fn auth_enabled(&self) -> bool {
        !self.opts.auth_http_addresses.is_empty()
    }
}

/// AUTH after its body is read: asks the servers and answers Go's
/// `{"identity":..,"identity_url":..,"permission_count":N}`. Every error is fatal.
pub(crate) async fn authenticate(
    nsqd: &NsqdInner,
    client: &ClientShared,
    secret: &[u8],
) -> Result<Vec<u8>, ProtocolError> {
    if client.auth.lock().has_authorizations() {
        return Err(ProtocolError::new(ErrorCode::Invalid, "AUTH already set"));
    }
    if !nsqd.auth_enabled() {
        return Err(ProtocolError::new(ErrorCode::AuthDisabled, "AUTH disabled"));
    }
    client.auth.lock().secret = secret.to_vec();
    let state = ask(nsqd, client, secret)
        .await
        .map_err(|why| failed(client, &why))?;
    let state = Arc::new(state);
    client.auth.lock().state = Some(state.clone());
    if state.authorizations.is_empty() {
        return Err(ProtocolError::new(
            ErrorCode::Unauthorized,
            "AUTH no authorizations found",
        ));
    }
    tracing::info!(client = client.id, identity = %state.identity, "AUTH");
    Ok(answer(&state))
}

/// Go's `CheckAuth` for `cmd` on `topic` / `channel` (empty for a publish): nothing when
/// auth is off; else the client must have authenticated, an expired answer is renewed
/// first, and a grant must allow the operation. Every error is fatal.
pub(crate) async fn check(
    nsqd: &NsqdInner,
    client: &ClientShared,
    cmd: &str,
    topic: &str,
    channel: &str,
) -> Result<(), ProtocolError> {
    if !nsqd.auth_enabled() {
        return Ok(());
    }
    let (state, secret) = {
        let session = client.auth.lock();
        match &session.state {
            Some(state) if session.has_authorizations() => (state.clone(), session.secret.clone()),
            _ => {
                return Err(ProtocolError::new(
                    ErrorCode::AuthFirst,
                    format!("AUTH required before {cmd}"),
                ))
            }
        }
    };
    let state = if state.is_expired(nsqd.now_ns()) {
        let renewed = ask(nsqd, client, &secret)
            .await
            .map_err(|why| failed(client, &why))?;
        let renewed = Arc::new(renewed);
        client.auth.lock().state = Some(renewed.clone());
        renewed
    } else {
        state
    };
    if !state.is_allowed(topic, channel) {
        return Err(ProtocolError::new(
            ErrorCode::Unauthorized,
            format!(
                "AUTH failed for {cmd} on {} {}",
                go_quote(topic.as_bytes()),
                go_quote(channel.as_bytes())
            ),
        ));
    }
    Ok(())
}

/// Runs Go's MPUB auth check as soon as the command line is buffered, before the body:
/// Go checks auth before it reads an MPUB body (and before it creates the topic), while
/// the parser here takes the whole command at once. Remembers a pass so the check runs
/// once per command while the body arrives.
#[derive(Debug, Default)]
pub(crate) struct MpubGate {
    passed: bool,
}

impl MpubGate {
    /// Checks the MPUB at the front of `buf`, if that is what is there and it would pass
    /// the parser's earlier checks (TLS, parameter count, topic name).
    pub(crate) async fn check(
        &mut self,
        nsqd: &NsqdInner,
        client: &ClientShared,
        buf: &[u8],
        tls_pending: bool,
    ) -> Result<(), ProtocolError> {
        if self.passed || tls_pending || !nsqd.auth_enabled() {
            return Ok(());
        }
        let Some(topic) = mpub_topic(buf) else {
            return Ok(());
        };
        check(nsqd, client, "MPUB", topic, "").await?;
        self.passed = true;
        Ok(())
    }

    /// Whether the command being executed already passed [`MpubGate::check`].
    pub(crate) fn passed(&self) -> bool {
        self.passed
    }

    /// The command at the front was consumed: the next one starts unchecked.
    pub(crate) fn reset(&mut self) {
        self.passed = false;
    }
}

/// The topic of a complete `MPUB <topic>` line at the front of `buf`, when the topic is
/// valid (otherwise the parser reports the line's error first).
fn mpub_topic(buf: &[u8]) -> Option<&str> {
    let window = &buf[..buf.len().min(MAX_LINE_LENGTH)];
    let newline = window.iter().position(|&b| b == b'\n')?;
    let line = &window[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut params = line.split(|&b| b == b' ');
    if params.next()? != b"MPUB" {
        return None;
    }
    let topic = std::str::from_utf8(params.next()?).ok()?;
    is_valid_topic_name(topic).then_some(topic)
}

/// One round of the auth servers for `client` with `secret`.
async fn ask(
    nsqd: &NsqdInner,
    client: &ClientShared,
    secret: &[u8],
) -> Result<AuthState, QueryError> {
    let addresses = &nsqd.opts.auth_http_addresses;
    let start = nsqd.env.rng.below(addresses.len() as u64) as usize;
    let remote_ip = client.remote_addr.ip().to_string();
    let common_name = client
        .transport
        .lock()
        .tls
        .as_ref()
        .map(|tls| tls.common_name.clone());
    let request = AuthRequest {
        remote_ip: &remote_ip,
        tls: common_name.is_some(),
        common_name: common_name.as_deref().unwrap_or_default(),
        secret,
    };
    let timeouts = HttpTimeouts {
        connect: nsqd.opts.http_client_connect_timeout,
        request: nsqd.opts.http_client_request_timeout,
    };
    let tls = nsqd.auth_tls.as_ref();
    query_any(
        &*nsqd.env.net,
        addresses,
        start,
        request,
        timeouts,
        tls,
        || nsqd.now_ns(),
    )
    .await
}

/// Logs why the servers failed and answers the client Go's terse error.
fn failed(client: &ClientShared, why: &QueryError) -> ProtocolError {
    tracing::warn!(client = client.id, error = %why, "AUTH failed");
    ProtocolError::new(ErrorCode::AuthFailed, "AUTH failed")
}

/// AUTH's answer, keys in Go's order, strings escaped as Go's `encoding/json` does.
fn answer(state: &AuthState) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + state.identity.len() + state.identity_url.len());
    out.extend_from_slice(b"{\"identity\":");
    crate::go_json::push_string(&mut out, &state.identity);
    out.extend_from_slice(b",\"identity_url\":");
    crate::go_json::push_string(&mut out, &state.identity_url);
    out.extend_from_slice(b",\"permission_count\":");
    out.extend_from_slice(state.authorizations.len().to_string().as_bytes());
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_sees_only_a_complete_mpub_line_with_a_valid_topic() {
        assert_eq!(mpub_topic(b"MPUB orders\n\x00\x00"), Some("orders"));
        assert_eq!(
            mpub_topic(b"MPUB orders#ephemeral\r\n"),
            Some("orders#ephemeral")
        );
        assert_eq!(mpub_topic(b"MPUB orders extra\n"), Some("orders"));
        assert_eq!(mpub_topic(b"MPUB orders"), None, "line not complete");
        assert_eq!(
            mpub_topic(b"MPUB\n"),
            None,
            "parser: insufficient parameters"
        );
        assert_eq!(mpub_topic(b"MPUB bad/name\n"), None, "parser: bad topic");
        assert_eq!(mpub_topic(b"PUB orders\n"), None);
        assert_eq!(
            mpub_topic(b"MPUB  orders\n"),
            None,
            "empty parameter, as Go splits"
        );
    }

    #[test]
    fn the_answer_is_go_json() {
        let response = serde_json::from_str(
            r#"{"ttl":1,"identity":"a<b>","identity_url":"http://x/?a&b","authorizations":[
                {"topic":".*","channels":[".*"],"permissions":["publish"]},
                {"topic":".*","channels":[".*"],"permissions":["subscribe"]}]}"#,
        )
        .unwrap();
        let state = AuthState::from_response(response, 0).unwrap();
        assert_eq!(
            String::from_utf8(answer(&state)).unwrap(),
            r#"{"identity":"a\u003cb\u003e","identity_url":"http://x/?a\u0026b","permission_count":2}"#
        );
    }
}
