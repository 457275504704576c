//! Channel pre-creation (nsq-reference §4.1): when a topic is new, every lookupd is asked
//! over HTTP for the channels it knows of that topic (`GET /channels?topic=`), so that
//! messages published here also reach channels whose consumers live on other nodes.

use serde::Deserialize;

use crate::env::Net;
pub use crate::http_client::{HttpGetError as ChannelsError, HttpTimeouts};

/// The largest `/channels` answer read.
const CHANNELS_BODY_MAX: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
struct ChannelsAnswer {
    #[serde(default)]
    channels: Option<Vec<String>>,
}

/// Go's `GetLookupdTopicChannels`: the sorted union of every lookupd's channels of
/// `topic`. Lookupds that fail are logged and skipped; an error only when all failed.
pub async fn lookupd_topic_channels(
    net: &dyn Net,
    http_addresses: &[String],
    topic: &str,
    timeouts: HttpTimeouts,
) -> Result<Vec<String>, ChannelsError> {
    let queries = http_addresses
        .iter()
        .map(|addr| query(net, addr, topic, timeouts));
    let answers = futures_util::future::join_all(queries).await;
    let mut all = std::collections::BTreeSet::new();
    let mut last_error = None;
    let mut any_ok = false;
    for (addr, answer) in http_addresses.iter().zip(answers) {
        match answer {
            Ok(channels) => {
                any_ok = true;
                all.extend(channels);
            }
            Err(error) => {
                tracing::warn!(lookupd = %addr, topic = %topic, %error, "lookupd /channels failed");
                last_error = Some(error);
            }
        }
    }
    match (any_ok, last_error) {
        (false, Some(error)) => Err(error),
        _ => Ok(all.into_iter().collect()),
    }
}

/// One `GET /channels?topic=` to the lookupd at `addr`.
async fn query(
    net: &dyn Net,
    addr: &str,
    topic: &str,
    timeouts: HttpTimeouts,
) -> Result<Vec<String>, ChannelsError> {
    let escaped: String = form_urlencoded::byte_serialize(topic.as_bytes()).collect();
    let path = format!("/channels?topic={escaped}");
    let answer: ChannelsAnswer =
        crate::http_client::get_json(net, addr, &path, timeouts, CHANNELS_BODY_MAX).await?;
    Ok(answer.channels.unwrap_or_default())
}
