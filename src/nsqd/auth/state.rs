//! What an auth server granted one connection: the answer to `GET /auth`, checked as Go's
//! `auth.QueryAuthd` checks it, and the permission test Go's `State.IsAllowed` makes.

use regex::Regex;
use serde::Deserialize;

/// Nanoseconds in a second, for the ttl.
const NS_PER_SECOND: i64 = 1_000_000_000;

/// The auth server's JSON answer as it arrives. Missing or null fields take Go's zero values.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthResponse {
    #[serde(default)]
    ttl: Option<i64>,
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    identity_url: Option<String>,
    #[serde(default)]
    authorizations: Option<Vec<RawAuthorization>>,
}

/// One entry of `authorizations` as it arrives.
#[derive(Debug, Deserialize)]
struct RawAuthorization {
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

/// Why an answer is refused, with Go's texts (they only reach the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResponseError {
    /// A permission other than `subscribe` or `publish`.
    #[error("unknown permission {0}")]
    UnknownPermission(String),
    /// A topic pattern that is not a regular expression.
    #[error("unable to compile topic {pattern:?} {reason}")]
    TopicPattern { pattern: String, reason: String },
    /// A channel pattern that is not a regular expression.
    #[error("unable to compile channel {pattern:?} {reason}")]
    ChannelPattern { pattern: String, reason: String },
    /// A ttl of zero or less (Go would cache nothing and re-ask on every check).
    #[error("invalid TTL {0} (must be >0)")]
    Ttl(i64),
}

/// One grant: a topic pattern, channel patterns and what the client may do there.
#[derive(Debug)]
pub(crate) struct Authorization {
    topic: Regex,
    channels: Vec<Regex>,
    subscribe: bool,
    publish: bool,
}

impl Authorization {
    /// Go's `Authorization.IsAllowed`: a non-empty channel asks for `subscribe`, an empty
    /// one for `publish`; the topic pattern must match, then any channel pattern must match
    /// the channel (for a publish, the empty string). Patterns match anywhere in the name,
    /// as Go's `MatchString` does: anchoring is up to the auth server.
    fn allows(&self, topic: &str, channel: &str) -> bool {
        let permitted = if channel.is_empty() {
            self.publish
        } else {
            self.subscribe
        };
        permitted && self.topic.is_match(topic) && self.channels.iter().any(|c| c.is_match(channel))
    }
}

/// A checked answer and when it stops being good.
#[derive(Debug)]
pub(crate) struct AuthState {
    /// Who the server says the client is (`identity`).
    pub(crate) identity: String,
    /// Where to read about that identity (`identity_url`).
    pub(crate) identity_url: String,
    /// The grants, in the server's order.
    pub(crate) authorizations: Vec<Authorization>,
    /// Wall time (ns since the epoch) after which the server must be asked again.
    pub(crate) expires_ns: i64,
}

impl AuthState {
    /// Checks `response` in Go's order (each grant's permissions, topic, channels; then
    /// the ttl) and compiles its patterns. `now_ns` starts the ttl.
    pub(crate) fn from_response(
        response: AuthResponse,
        now_ns: i64,
    ) -> Result<Self, ResponseError> {
        let raw = response.authorizations.unwrap_or_default();
        let mut authorizations = Vec::with_capacity(raw.len());
        for grant in raw {
            authorizations.push(compile(grant)?);
        }
        let ttl = response.ttl.unwrap_or(0);
        if ttl <= 0 {
            return Err(ResponseError::Ttl(ttl));
        }
        Ok(AuthState {
            identity: response.identity.unwrap_or_default(),
            identity_url: response.identity_url.unwrap_or_default(),
            authorizations,
            expires_ns: now_ns.saturating_add(ttl.saturating_mul(NS_PER_SECOND)),
        })
    }

    /// Whether any grant allows `topic` / `channel` (empty channel: publishing).
    pub(crate) fn is_allowed(&self, topic: &str, channel: &str) -> bool {
        self.authorizations.iter().any(|a| a.allows(topic, channel))
    }

    /// Whether the ttl has run out at `now_ns` (Go: `Expires.Before(now)`).
    pub(crate) fn is_expired(&self, now_ns: i64) -> bool {
        self.expires_ns < now_ns
    }
}

fn compile(grant: RawAuthorization) -> Result<Authorization, ResponseError> {
    let mut subscribe = false;
    let mut publish = false;
    for permission in grant.permissions.unwrap_or_default() {
        match permission.as_str() {
            "subscribe" => subscribe = true,
            "publish" => publish = true,
            _ => return Err(ResponseError::UnknownPermission(permission)),
        }
    }
    let pattern = grant.topic.unwrap_or_default();
    let topic = Regex::new(&pattern).map_err(|e| ResponseError::TopicPattern {
        pattern: pattern.clone(),
        reason: e.to_string(),
    })?;
    let mut channels = Vec::new();
    for pattern in grant.channels.unwrap_or_default() {
        let channel = Regex::new(&pattern).map_err(|e| ResponseError::ChannelPattern {
            pattern: pattern.clone(),
            reason: e.to_string(),
        })?;
        channels.push(channel);
    }
    Ok(Authorization {
        topic,
        channels,
        subscribe,
        publish,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> Result<AuthState, ResponseError> {
        let response: AuthResponse = serde_json::from_str(json).unwrap();
        AuthState::from_response(response, 1_000)
    }

    fn allowed(json: &str) -> AuthState {
        state(json).unwrap()
    }

    #[test]
    fn a_subscribe_needs_the_permission_and_both_patterns() {
        let s = allowed(
            r#"{"ttl":1,"authorizations":[{"topic":"^orders$","channels":["^billing$"],"permissions":["subscribe"]}]}"#,
        );
        assert!(s.is_allowed("orders", "billing"));
        assert!(!s.is_allowed("orders", "shipping"));
        assert!(!s.is_allowed("orders2", "billing"));
        assert!(!s.is_allowed("orders", ""), "no publish permission");
    }

    #[test]
    fn a_publish_matches_the_channel_patterns_against_the_empty_string() {
        let only_named = allowed(
            r#"{"ttl":1,"authorizations":[{"topic":".*","channels":["^x$"],"permissions":["publish"]}]}"#,
        );
        assert!(
            !only_named.is_allowed("t", ""),
            "no channel pattern matches \"\""
        );
        let any = allowed(
            r#"{"ttl":1,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["publish"]}]}"#,
        );
        assert!(any.is_allowed("t", ""));
        assert!(!any.is_allowed("t", "c"), "no subscribe permission");
        let no_channels =
            allowed(r#"{"ttl":1,"authorizations":[{"topic":".*","permissions":["publish"]}]}"#);
        assert!(!no_channels.is_allowed("t", ""));
    }

    #[test]
    fn patterns_match_anywhere_unless_anchored() {
        let s = allowed(
            r#"{"ttl":1,"authorizations":[{"topic":"ord","channels":["bill"],"permissions":["subscribe","publish"]}]}"#,
        );
        assert!(s.is_allowed("big.orders.eu", "ops-billing"));
        assert!(!s.is_allowed("returns", "billing"));
    }

    #[test]
    fn any_grant_may_allow() {
        let s = allowed(
            r#"{"ttl":1,"authorizations":[
                {"topic":"^a$","channels":[".*"],"permissions":["publish"]},
                {"topic":"^b$","channels":["^c$"],"permissions":["subscribe"]}]}"#,
        );
        assert!(s.is_allowed("a", ""));
        assert!(s.is_allowed("b", "c"));
        assert!(!s.is_allowed("a", "c"));
        assert!(!s.is_allowed("b", ""));
    }

    #[test]
    fn a_missing_topic_pattern_matches_every_topic() {
        let s = allowed(
            r#"{"ttl":1,"authorizations":[{"channels":[""],"permissions":["subscribe"]}]}"#,
        );
        assert!(s.is_allowed("anything", "at-all"));
    }

    #[test]
    fn identity_and_missing_fields_take_go_zero_values() {
        let s =
            allowed(r#"{"ttl":5,"identity":"alice","identity_url":"http://x/alice","extra":1}"#);
        assert_eq!(s.identity, "alice");
        assert_eq!(s.identity_url, "http://x/alice");
        assert!(s.authorizations.is_empty());
        assert_eq!(s.expires_ns, 1_000 + 5 * NS_PER_SECOND);
        let nulls = allowed(r#"{"ttl":5,"identity":null,"authorizations":null}"#);
        assert_eq!(nulls.identity, "");
    }

    #[test]
    fn expiry_is_strictly_after_the_ttl() {
        let s = allowed(r#"{"ttl":2}"#);
        assert!(!s.is_expired(1_000 + 2 * NS_PER_SECOND));
        assert!(s.is_expired(1_000 + 2 * NS_PER_SECOND + 1));
    }

    #[test]
    fn bad_answers_are_refused_with_go_texts() {
        assert_eq!(
            state(r#"{"ttl":0}"#).unwrap_err().to_string(),
            "invalid TTL 0 (must be >0)"
        );
        assert_eq!(state(r#"{}"#).unwrap_err(), ResponseError::Ttl(0));
        assert_eq!(
            state(r#"{"ttl":1,"authorizations":[{"topic":".*","permissions":["admin"]}]}"#)
                .unwrap_err()
                .to_string(),
            "unknown permission admin"
        );
        assert!(
            state(r#"{"ttl":1,"authorizations":[{"topic":"(","permissions":[]}]}"#)
                .unwrap_err()
                .to_string()
                .starts_with("unable to compile topic \"(\" ")
        );
        assert!(matches!(
            state(r#"{"ttl":1,"authorizations":[{"topic":"a","channels":["[z-a]"]}]}"#),
            Err(ResponseError::ChannelPattern { .. })
        ));
        // Go checks the grants before the ttl.
        assert!(matches!(
            state(r#"{"ttl":-1,"authorizations":[{"permissions":["x"]}]}"#),
            Err(ResponseError::UnknownPermission(_))
        ));
    }
}
