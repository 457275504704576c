//! IDENTIFY with feature negotiation, followed by the TLS and compression upgrades nsqd
//! turned on (TLS first, then snappy or deflate inside it, as go-nsq does).

use bytes::Bytes;

use super::connection::Connection;
use super::error::ClientError;
use super::tls::TlsClient;
use crate::protocol::frame::OK;

/// nsqd's default deflate level, used when its answer omits one.
const DEFLATE_LEVEL_DEFAULT: u32 = 6;
/// The deflate levels nsqd accepts.
const DEFLATE_LEVELS: std::ops::RangeInclusive<u32> = 1..=9;

/// The stream compression a connection runs after IDENTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain V2.
    None,
    /// Snappy's framing format.
    Snappy,
    /// Raw deflate; `level` is the one nsqd reported for its side.
    Deflate {
        /// 1..=9.
        level: u32,
    },
}

/// What IDENTIFY settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The server's answer: `OK`, or the negotiation JSON.
    pub answer: Bytes,
    /// What the connection now runs; callers compare it with what they asked for, since
    /// nsqd turns compression off without an error when it is disabled.
    pub compression: Compression,
    /// The connection now runs TLS.
    pub tls: bool,
}

impl Connection {
    /// Sends IDENTIFY with `json`, then switches to whatever compression the answer turned
    /// on and reads the compressed `OK`, in go-nsq's way. An answer turning on TLS, or
    /// both compressions, is [`ClientError::Negotiation`]: without a [`TlsClient`] this
    /// client speaks no TLS (see [`identify_and_upgrade_tls`](Self::identify_and_upgrade_tls)).
    pub async fn identify_and_upgrade(
        &mut self,
        json: serde_json::Value,
    ) -> Result<Negotiated, ClientError> {
        self.identify_and_upgrade_tls(json, None).await
    }

    /// Like [`identify_and_upgrade`](Self::identify_and_upgrade), but an answer turning on
    /// TLS is followed, when `tls` is given, by the handshake and the `OK` nsqd sends over
    /// TLS, before any compression upgrade. Put `"tls_v1": true` in `json` to ask for it.
    pub async fn identify_and_upgrade_tls(
        &mut self,
        json: serde_json::Value,
        tls: Option<&TlsClient>,
    ) -> Result<Negotiated, ClientError> {
        let answer = self.identify(json).await?;
        let (tls_on, compression) = negotiated_features(&answer)?;
        if tls_on {
            let Some(tls) = tls else {
                return Err(ClientError::Negotiation(
                    "nsqd turned on TLS, which this client was not set up to speak".into(),
                ));
            };
            self.upgrade_tls(tls).await?;
        }
        match compression {
            Compression::None => {}
            Compression::Snappy => self.upgrade_snappy().await?,
            Compression::Deflate { level } => self.upgrade_deflate(level).await?,
        }
        Ok(Negotiated {
            answer,
            compression,
            tls: tls_on,
        })
    }
}

/// Reads the compression out of an IDENTIFY answer (`OK` means none); an answer turning
/// on TLS is an error here.
#[cfg(test)]
fn negotiated_compression(answer: &[u8]) -> Result<Compression, ClientError> {
    match negotiated_features(answer)? {
        (true, _) => Err(ClientError::Negotiation(
            "nsqd turned on TLS, which this client was not set up to speak".into(),
        )),
        (false, compression) => Ok(compression),
    }
}

/// Reads whether TLS is on, and the compression, out of an IDENTIFY answer (`OK` means
/// neither).
fn negotiated_features(answer: &[u8]) -> Result<(bool, Compression), ClientError> {
    if answer == OK {
        return Ok((false, Compression::None));
    }
    let json: serde_json::Value = serde_json::from_slice(answer).map_err(|err| {
        ClientError::Negotiation(format!(
            "answer {:?} is not JSON: {err}",
            String::from_utf8_lossy(answer)
        ))
    })?;
    let on = |field: &str| json.get(field).and_then(|v| v.as_bool()) == Some(true);
    let compression = match (on("snappy"), on("deflate")) {
        (true, true) => Err(ClientError::Negotiation(
            "nsqd turned on both snappy and deflate".into(),
        )),
        (true, false) => Ok(Compression::Snappy),
        (false, true) => {
            let level = json
                .get("deflate_level")
                .and_then(|v| v.as_u64())
                .and_then(|level| u32::try_from(level).ok())
                .filter(|level| DEFLATE_LEVELS.contains(level))
                .unwrap_or(DEFLATE_LEVEL_DEFAULT);
            Ok(Compression::Deflate { level })
        }
        (false, false) => Ok(Compression::None),
    }?;
    Ok((on("tls_v1"), compression))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use bytes::BytesMut;
    use serde_json::json;

    use super::{negotiated_compression, Compression};
    use crate::client::test_server::pair;
    use crate::client::ClientError;
    use crate::compress;
    use crate::env::BoxStream;
    use crate::protocol::commands::Command;
    use crate::protocol::frame::{write_frame, FrameType};

    fn frame(kind: FrameType, data: &[u8]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        write_frame(&mut buf, kind, data);
        buf.to_vec()
    }

    fn identify_bytes(body: &serde_json::Value) -> Vec<u8> {
        let body = body.to_string();
        let mut bytes = b"  V2IDENTIFY\n".to_vec();
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(body.as_bytes());
        bytes
    }

    fn snappy_encoded(data: &[u8]) -> Vec<u8> {
        let mut encoder = snap::write::FrameEncoder::new(Vec::new());
        encoder.write_all(data).unwrap();
        encoder.into_inner().unwrap()
    }

    fn deflate_encoded(data: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        encoder.write_all(data).unwrap();
        encoder.flush().unwrap();
        encoder.get_ref().clone()
    }

    /// The JSON answer and the compressed `OK` arrive in one write, so the client's read
    /// buffer holds the start of the compressed stream when it upgrades; then a PUB goes
    /// both ways compressed.
    async fn upgrade_with_carry_over(
        ask: serde_json::Value,
        answer: serde_json::Value,
        encode: fn(&[u8]) -> Vec<u8>,
        wrap: fn(BoxStream) -> BoxStream,
        expected: Compression,
    ) {
        let (mut conn, mut server) = pair();
        let script = tokio::spawn({
            let ask = ask.clone();
            async move {
                server.expect(&identify_bytes(&ask)).await;
                let mut reply = frame(FrameType::Response, answer.to_string().as_bytes());
                reply.extend_from_slice(&encode(&frame(FrameType::Response, b"OK")));
                server.send_raw(&reply).await;
                server.upgrade(wrap);
                server.expect(b"PUB t\n\x00\x00\x00\x02hi").await;
                server.send_response(b"OK").await;
            }
        });
        let negotiated = conn.identify_and_upgrade(ask).await.unwrap();
        assert_eq!(negotiated.compression, expected);
        conn.request_ok(&Command::Pub {
            topic: "t".into(),
            body: bytes::Bytes::from_static(b"hi"),
        })
        .await
        .unwrap();
        script.await.unwrap();
    }

    #[tokio::test]
    async fn snappy_upgrade_decodes_bytes_read_with_the_answer() {
        upgrade_with_carry_over(
            json!({"feature_negotiation": true, "snappy": true}),
            json!({"max_rdy_count": 2500, "tls_v1": false, "deflate": false, "snappy": true}),
            snappy_encoded,
            compress::snappy,
            Compression::Snappy,
        )
        .await;
    }

    #[tokio::test]
    async fn deflate_upgrade_decodes_bytes_read_with_the_answer() {
        upgrade_with_carry_over(
            json!({"feature_negotiation": true, "deflate": true, "deflate_level": 3}),
            json!({"deflate": true, "deflate_level": 3, "snappy": false}),
            deflate_encoded,
            |stream| compress::deflate(stream, 3),
            Compression::Deflate { level: 3 },
        )
        .await;
    }

    #[tokio::test]
    async fn a_refused_compression_leaves_the_connection_plain() {
        let (mut conn, mut server) = pair();
        let ask = json!({"feature_negotiation": true, "snappy": true});
        let script = tokio::spawn({
            let ask = ask.clone();
            async move {
                server.expect(&identify_bytes(&ask)).await;
                server
                    .send_response(br#"{"deflate":false,"snappy":false}"#)
                    .await;
                server.expect(b"NOP\n").await;
            }
        });
        let negotiated = conn.identify_and_upgrade(ask).await.unwrap();
        assert_eq!(negotiated.compression, Compression::None);
        conn.send(&Command::Nop);
        conn.flush().await.unwrap();
        script.await.unwrap();
    }

    #[tokio::test]
    async fn an_error_instead_of_the_compressed_ok_is_a_server_error() {
        let (mut conn, mut server) = pair();
        let ask = json!({"feature_negotiation": true, "snappy": true});
        let script = tokio::spawn({
            let ask = ask.clone();
            async move {
                server.expect(&identify_bytes(&ask)).await;
                server.send_response(br#"{"snappy":true}"#).await;
                server.upgrade(compress::snappy);
                server
                    .send_error(b"E_IDENTIFY_FAILED IDENTIFY failed")
                    .await;
            }
        });
        let err = conn.identify_and_upgrade(ask).await.unwrap_err();
        assert_eq!(err.server_code(), Some("E_IDENTIFY_FAILED"));
        script.await.unwrap();
    }

    #[test]
    fn the_answer_decides_the_compression() {
        let cases: [(&[u8], Compression); 5] = [
            (b"OK", Compression::None),
            (br#"{"snappy":false,"deflate":false}"#, Compression::None),
            (br#"{"snappy":true,"deflate":false}"#, Compression::Snappy),
            (
                br#"{"deflate":true,"deflate_level":9}"#,
                Compression::Deflate { level: 9 },
            ),
            (
                br#"{"deflate":true,"deflate_level":0}"#,
                Compression::Deflate { level: 6 },
            ),
        ];
        for (answer, expected) in cases {
            assert_eq!(negotiated_compression(answer).unwrap(), expected);
        }
        for bad in [
            &br#"{"snappy":true,"deflate":true}"#[..],
            br#"{"tls_v1":true}"#,
            b"nope",
        ] {
            assert!(matches!(
                negotiated_compression(bad),
                Err(ClientError::Negotiation(_))
            ));
        }
    }
}
