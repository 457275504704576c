//! IDENTIFY: the client's JSON, Go's validation of it, and the feature-negotiation answer.

use serde::{Deserialize, Deserializer, Serialize};

use super::error::{ErrorCode, ProtocolError};

/// The IDENTIFY body as a client sends it. Missing keys and JSON `null` keep the zero
/// value and unknown keys (e.g. the legacy `short_id`/`long_id`) are ignored, as in Go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IdentifyRequest {
    pub client_id: Option<String>,
    pub hostname: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub feature_negotiation: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub heartbeat_interval: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub output_buffer_size: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub output_buffer_timeout: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub tls_v1: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub snappy: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub deflate: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub deflate_level: i64,
    /// An int32 in Go: a value outside i32 fails to decode there, and in [`negotiate`].
    #[serde(deserialize_with = "null_as_default")]
    pub sample_rate: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub user_agent: String,
    #[serde(deserialize_with = "null_as_default")]
    pub msg_timeout: i64,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The daemon's settings IDENTIFY is checked against (nsqd flags, in ms where timed).
#[derive(Debug, Clone)]
pub struct IdentifyLimits {
    pub default_heartbeat_interval_ms: i64,
    pub max_heartbeat_interval_ms: i64,
    pub default_output_buffer_size: i64,
    pub max_output_buffer_size: i64,
    pub default_output_buffer_timeout_ms: i64,
    pub min_output_buffer_timeout_ms: i64,
    pub max_output_buffer_timeout_ms: i64,
    pub default_msg_timeout_ms: i64,
    pub max_msg_timeout_ms: i64,
    pub max_rdy_count: i64,
    pub tls_available: bool,
    pub snappy_enabled: bool,
    pub deflate_enabled: bool,
    pub max_deflate_level: i64,
    pub auth_required: bool,
}

/// What the connection ends up with after IDENTIFY.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    /// Always Some: Go replaces the remote-IP default with what IDENTIFY sent, "" if absent.
    pub client_id: Option<String>,
    /// Always Some, like `client_id`.
    pub hostname: Option<String>,
    pub user_agent: String,
    pub feature_negotiation: bool,
    /// <= 0 means disabled.
    pub heartbeat_interval_ms: i64,
    pub output_buffer_size: i64,
    pub output_buffer_timeout_ms: i64,
    pub sample_rate: i64,
    pub msg_timeout_ms: i64,
    /// Upgrades to perform after the JSON answer; all false without feature negotiation,
    /// because Go answers a plain `OK` then and upgrades nothing.
    pub tls_v1: bool,
    pub snappy: bool,
    pub deflate: bool,
    /// The level reported in the answer (and used when `deflate`).
    pub deflate_level: i64,
}

/// Parses the IDENTIFY body and applies Go's validation in Go's order; errors are the exact
/// E_BAD_BODY / E_IDENTIFY_FAILED texts ("IDENTIFY failed to decode JSON body",
/// "IDENTIFY heartbeat interval (500) is invalid", "cannot enable both deflate and snappy compression", ...).
/// snappy/deflate/tls_v1 in Negotiated are what was turned on (enabled && asked); the "both" error uses
/// (snappy_enabled && asked) && (deflate_enabled && asked) as Go does.
pub fn negotiate(body: &[u8], limits: &IdentifyLimits) -> Result<Negotiated, ProtocolError> {
    let req = decode_request(body)?;
    let heartbeat_interval_ms = heartbeat_interval(req.heartbeat_interval, limits)?;
    let (output_buffer_size, output_buffer_timeout_ms) =
        output_buffer(req.output_buffer_size, req.output_buffer_timeout, limits)?;
    if !(0..=99).contains(&req.sample_rate) {
        return Err(bad_identify(format!(
            "sample rate ({}) is invalid",
            req.sample_rate
        )));
    }
    let msg_timeout_ms = msg_timeout(req.msg_timeout, limits)?;

    let negotiating = req.feature_negotiation;
    let tls_v1 = negotiating && limits.tls_available && req.tls_v1;
    let deflate = negotiating && limits.deflate_enabled && req.deflate;
    let snappy = negotiating && limits.snappy_enabled && req.snappy;
    if deflate && snappy {
        return Err(ProtocolError::new(
            ErrorCode::IdentifyFailed,
            "cannot enable both deflate and snappy compression",
        ));
    }
    let mut deflate_level = 6;
    if deflate && req.deflate_level > 0 {
        deflate_level = req.deflate_level;
    }
    deflate_level = deflate_level.min(limits.max_deflate_level);

    Ok(Negotiated {
        client_id: Some(req.client_id.unwrap_or_default()),
        hostname: Some(req.hostname.unwrap_or_default()),
        user_agent: req.user_agent,
        feature_negotiation: negotiating,
        heartbeat_interval_ms,
        output_buffer_size,
        output_buffer_timeout_ms,
        sample_rate: req.sample_rate,
        msg_timeout_ms,
        tls_v1,
        snappy,
        deflate,
        deflate_level,
    })
}

/// JSON `null` decodes to all defaults, as Go's json.Unmarshal into a struct does; an
/// array is an error there (serde would fill a struct from one).
fn decode_request(body: &[u8]) -> Result<IdentifyRequest, ProtocolError> {
    let decode_failed =
        || ProtocolError::new(ErrorCode::BadBody, "IDENTIFY failed to decode JSON body");
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first == Some(&b'[') {
        return Err(decode_failed());
    }
    let req = serde_json::from_slice::<Option<IdentifyRequest>>(body)
        .map_err(|_| decode_failed())?
        .unwrap_or_default();
    if i32::try_from(req.sample_rate).is_err() {
        return Err(decode_failed());
    }
    Ok(req)
}

fn bad_identify(reason: String) -> ProtocolError {
    ProtocolError::new(ErrorCode::BadBody, format!("IDENTIFY {reason}"))
}

fn heartbeat_interval(desired: i64, limits: &IdentifyLimits) -> Result<i64, ProtocolError> {
    match desired {
        -1 => Ok(0),
        0 => Ok(limits.default_heartbeat_interval_ms),
        v if v >= 1000 && v <= limits.max_heartbeat_interval_ms => Ok(v),
        v => Err(bad_identify(format!("heartbeat interval ({v}) is invalid"))),
    }
}

/// Go checks the timeout before the size, and size -1 also turns the timeout off.
fn output_buffer(
    size: i64,
    timeout: i64,
    limits: &IdentifyLimits,
) -> Result<(i64, i64), ProtocolError> {
    let mut timeout_ms = match timeout {
        -1 => 0,
        0 => limits.default_output_buffer_timeout_ms,
        v if v >= limits.min_output_buffer_timeout_ms
            && v <= limits.max_output_buffer_timeout_ms =>
        {
            v
        }
        v => {
            return Err(bad_identify(format!(
                "output buffer timeout ({v}) is invalid"
            )))
        }
    };
    let size_bytes = match size {
        -1 => {
            timeout_ms = 0;
            1
        }
        0 => limits.default_output_buffer_size,
        v if v >= 64 && v <= limits.max_output_buffer_size => v,
        v => return Err(bad_identify(format!("output buffer size ({v}) is invalid"))),
    };
    Ok((size_bytes, timeout_ms))
}

fn msg_timeout(desired: i64, limits: &IdentifyLimits) -> Result<i64, ProtocolError> {
    match desired {
        0 => Ok(limits.default_msg_timeout_ms),
        v if v >= 1000 && v <= limits.max_msg_timeout_ms => Ok(v),
        v => Err(bad_identify(format!("msg timeout ({v}) is invalid"))),
    }
}

/// The feature-negotiation answer; field order is Go's and is part of the wire format.
#[derive(Debug, Clone, Serialize)]
pub struct IdentifyResponse<'a> {
    pub max_rdy_count: i64,
    pub version: &'a str,
    pub max_msg_timeout: i64,
    pub msg_timeout: i64,
    pub tls_v1: bool,
    pub deflate: bool,
    pub deflate_level: i64,
    pub max_deflate_level: i64,
    pub snappy: bool,
    pub sample_rate: i64,
    pub auth_required: bool,
    pub output_buffer_size: i64,
    pub output_buffer_timeout: i64,
}

impl<'a> IdentifyResponse<'a> {
    /// The answer for a negotiated connection.
    pub fn new(n: &Negotiated, limits: &IdentifyLimits, version: &'a str) -> Self {
        IdentifyResponse {
            max_rdy_count: limits.max_rdy_count,
            version,
            max_msg_timeout: limits.max_msg_timeout_ms,
            msg_timeout: n.msg_timeout_ms,
            tls_v1: n.tls_v1,
            deflate: n.deflate,
            deflate_level: n.deflate_level,
            max_deflate_level: limits.max_deflate_level,
            snappy: n.snappy,
            sample_rate: n.sample_rate,
            auth_required: limits.auth_required,
            output_buffer_size: n.output_buffer_size,
            output_buffer_timeout: n.output_buffer_timeout_ms,
        }
    }
}

/// The feature-negotiation JSON answer, byte-for-byte in Go's field order:
/// max_rdy_count, version, max_msg_timeout, msg_timeout, tls_v1, deflate, deflate_level, max_deflate_level,
/// snappy, sample_rate, auth_required, output_buffer_size, output_buffer_timeout
pub fn response_json(n: &Negotiated, limits: &IdentifyLimits, version: &str) -> Vec<u8> {
    // Serializing integers, booleans and one string cannot fail.
    serde_json::to_vec(&IdentifyResponse::new(n, limits, version)).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// nsqd's defaults, as in the golden transcripts.
    pub(crate) fn go_defaults() -> IdentifyLimits {
        IdentifyLimits {
            default_heartbeat_interval_ms: 30_000,
            max_heartbeat_interval_ms: 60_000,
            default_output_buffer_size: 16_384,
            max_output_buffer_size: 65_536,
            default_output_buffer_timeout_ms: 250,
            min_output_buffer_timeout_ms: 25,
            max_output_buffer_timeout_ms: 30_000,
            default_msg_timeout_ms: 60_000,
            max_msg_timeout_ms: 900_000,
            max_rdy_count: 2500,
            tls_available: false,
            snappy_enabled: true,
            deflate_enabled: true,
            max_deflate_level: 6,
            auth_required: false,
        }
    }

    fn answer(body: &str) -> String {
        let limits = go_defaults();
        let n = negotiate(body.as_bytes(), &limits).unwrap();
        assert!(n.feature_negotiation);
        String::from_utf8(response_json(&n, &limits, "1.3.0")).unwrap()
    }

    fn error_text(body: &str) -> String {
        let err = negotiate(body.as_bytes(), &go_defaults()).unwrap_err();
        assert!(err.is_fatal());
        err.text()
    }

    const DEFAULT_ANSWER: &str = r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250}"#;

    #[test]
    fn plain_identify_ignores_unknown_keys() {
        let body = r#"{"client_id":"golden","hostname":"golden-host","user_agent":"golden/1.0","short_id":"legacy","long_id":"legacy"}"#;
        let n = negotiate(body.as_bytes(), &go_defaults()).unwrap();
        assert!(!n.feature_negotiation);
        assert_eq!(n.client_id.as_deref(), Some("golden"));
        assert_eq!(n.hostname.as_deref(), Some("golden-host"));
        assert_eq!(n.user_agent, "golden/1.0");
        assert_eq!(n.heartbeat_interval_ms, 30_000);
        assert_eq!(
            (n.output_buffer_size, n.output_buffer_timeout_ms),
            (16_384, 250)
        );
        assert_eq!(n.msg_timeout_ms, 60_000);
    }

    #[test]
    fn golden_bare_feature_negotiation() {
        assert_eq!(answer(r#"{"feature_negotiation":true}"#), DEFAULT_ANSWER);
    }

    #[test]
    fn golden_go_nsq_body() {
        let body = r#"{"client_id":"golden","deflate":false,"deflate_level":6,"feature_negotiation":true,"heartbeat_interval":30000,"hostname":"golden-host","long_id":"golden","msg_timeout":0,"output_buffer_size":16384,"output_buffer_timeout":250,"sample_rate":0,"short_id":"golden","snappy":false,"tls_v1":false,"user_agent":"go-nsq/1.1.0"}"#;
        assert_eq!(answer(body), DEFAULT_ANSWER);
    }

    #[test]
    fn golden_non_default_values() {
        let body = r#"{"feature_negotiation":true,"msg_timeout":30000,"sample_rate":50,"output_buffer_size":8192,"output_buffer_timeout":100,"deflate_level":3,"heartbeat_interval":10000}"#;
        assert_eq!(
            answer(body),
            r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":30000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":50,"auth_required":false,"output_buffer_size":8192,"output_buffer_timeout":100}"#
        );
        let n = negotiate(body.as_bytes(), &go_defaults()).unwrap();
        assert_eq!(n.heartbeat_interval_ms, 10_000);
    }

    #[test]
    fn golden_unbuffered_output() {
        let body =
            r#"{"feature_negotiation":true,"output_buffer_size":-1,"output_buffer_timeout":-1}"#;
        assert_eq!(
            answer(body),
            r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":1,"output_buffer_timeout":0}"#
        );
    }

    #[test]
    fn golden_invalid_values() {
        let cases = [
            (
                r#"{"heartbeat_interval":500}"#,
                "E_BAD_BODY IDENTIFY heartbeat interval (500) is invalid",
            ),
            (
                r#"{"heartbeat_interval":60001}"#,
                "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid",
            ),
            (
                r#"{"output_buffer_size":10}"#,
                "E_BAD_BODY IDENTIFY output buffer size (10) is invalid",
            ),
            (
                r#"{"output_buffer_timeout":10}"#,
                "E_BAD_BODY IDENTIFY output buffer timeout (10) is invalid",
            ),
            (
                r#"{"msg_timeout":10}"#,
                "E_BAD_BODY IDENTIFY msg timeout (10) is invalid",
            ),
            (
                r#"{"sample_rate":100}"#,
                "E_BAD_BODY IDENTIFY sample rate (100) is invalid",
            ),
            (
                r#"{"sample_rate":-1}"#,
                "E_BAD_BODY IDENTIFY sample rate (-1) is invalid",
            ),
            (
                "{bad json",
                "E_BAD_BODY IDENTIFY failed to decode JSON body",
            ),
            (
                r#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#,
                "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression",
            ),
        ];
        for (body, text) in cases {
            assert_eq!(error_text(body), text, "{body}");
        }
    }

    #[test]
    fn checks_run_in_go_order() {
        // heartbeat before output buffer, timeout before size, sample rate before msg timeout.
        assert_eq!(
            error_text(r#"{"output_buffer_size":10,"heartbeat_interval":1}"#),
            "E_BAD_BODY IDENTIFY heartbeat interval (1) is invalid"
        );
        assert_eq!(
            error_text(r#"{"output_buffer_size":10,"output_buffer_timeout":1}"#),
            "E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid"
        );
        assert_eq!(
            error_text(r#"{"msg_timeout":1,"sample_rate":100}"#),
            "E_BAD_BODY IDENTIFY sample rate (100) is invalid"
        );
    }

    #[test]
    fn heartbeats_can_be_disabled() {
        let n = negotiate(br#"{"heartbeat_interval":-1}"#, &go_defaults()).unwrap();
        assert_eq!(n.heartbeat_interval_ms, 0);
        let n = negotiate(br#"{"heartbeat_interval":1000}"#, &go_defaults()).unwrap();
        assert_eq!(n.heartbeat_interval_ms, 1000);
    }

    #[test]
    fn json_decoding_follows_go() {
        let limits = go_defaults();
        let null = negotiate(b"null", &limits).unwrap();
        assert_eq!(null.client_id.as_deref(), Some(""));
        let nulls = negotiate(
            br#"{"client_id":null,"heartbeat_interval":null,"snappy":null}"#,
            &limits,
        )
        .unwrap();
        assert_eq!(nulls.heartbeat_interval_ms, 30_000);
        for bad in [
            &br#"{"heartbeat_interval":1.5}"#[..],
            br#"{"heartbeat_interval":"1000"}"#,
            br#"{"sample_rate":4294967296}"#,
            br#"[]"#,
            br#"{} x"#,
            b"",
        ] {
            assert_eq!(
                negotiate(bad, &limits).unwrap_err().text(),
                "E_BAD_BODY IDENTIFY failed to decode JSON body"
            );
        }
    }

    #[test]
    fn compression_needs_negotiation_and_server_support() {
        let mut limits = go_defaults();
        let plain = negotiate(br#"{"snappy":true,"deflate":true}"#, &limits).unwrap();
        assert!(
            !plain.snappy && !plain.deflate,
            "no upgrade without feature negotiation"
        );
        let n = negotiate(
            br#"{"feature_negotiation":true,"deflate":true,"deflate_level":9}"#,
            &limits,
        )
        .unwrap();
        assert!(n.deflate);
        assert_eq!(n.deflate_level, 6, "clamped to max_deflate_level");
        let n = negotiate(
            br#"{"feature_negotiation":true,"deflate":true,"deflate_level":2}"#,
            &limits,
        )
        .unwrap();
        assert_eq!(n.deflate_level, 2);
        limits.snappy_enabled = false;
        let n = negotiate(
            br#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#,
            &limits,
        )
        .unwrap();
        assert!(n.deflate && !n.snappy);
        let n = negotiate(br#"{"feature_negotiation":true,"tls_v1":true}"#, &limits).unwrap();
        assert!(!n.tls_v1);
        limits.tls_available = true;
        let n = negotiate(br#"{"feature_negotiation":true,"tls_v1":true}"#, &limits).unwrap();
        assert!(n.tls_v1);
    }
}
