//! Executes parsed V2 commands against the daemon, with Go's results and errors.

use bytes::Bytes;

use super::{millis, Reader, ToPump};
use crate::nsqd::auth;
use crate::nsqd::channel::Requeued;
use crate::protocol::{identify, ClientState, Command, ErrorCode, MessageId, ProtocolError};

type Outcome = Result<Option<Bytes>, ProtocolError>;

/// Runs `command` for the connection; `Ok(Some)` is a response frame to send.
pub(super) async fn handle(reader: &mut Reader, command: Command) -> Outcome {
    match command {
        Command::Nop => Ok(None),
        Command::Identify { body } => identify(reader, &body).await,
        Command::Auth { secret } => {
            let answer = auth::authenticate(&reader.nsqd, &reader.client, &secret).await?;
            Ok(Some(Reader::response(&answer)))
        }
        Command::Sub { topic, channel } => subscribe(reader, &topic, &channel).await,
        Command::Rdy { count } => {
            // RDY after CLS is ignored, as Go does.
            if reader.client.state() != ClientState::Closing {
                reader.client.set_ready_count(count);
            }
            Ok(None)
        }
        Command::Fin { id } => finish(reader, &id),
        Command::Req { id, timeout_ms } => requeue(reader, &id, timeout_ms).await,
        Command::Touch { id } => touch(reader, &id),
        Command::Cls => {
            reader.client.set_ready_count(0);
            reader.client.set_state(ClientState::Closing);
            Ok(Some(Reader::response(crate::protocol::frame::CLOSE_WAIT)))
        }
        Command::Pub { topic, body } => publish(reader, "PUB", &topic, vec![body], 0).await,
        Command::Mpub { topic, bodies } => publish(reader, "MPUB", &topic, bodies, 0).await,
        Command::Dpub {
            topic,
            defer_ms,
            body,
        } => publish(reader, "DPUB", &topic, vec![body], defer_ms).await,
    }
}

async fn identify(reader: &mut Reader, body: &[u8]) -> Outcome {
    let limits = reader.nsqd.identify_limits();
    let negotiated = identify::negotiate(body, &limits)?;
    {
        let mut settings = reader.client.settings.lock();
        settings.client_id = negotiated.client_id.clone().unwrap_or_default();
        settings.hostname = negotiated.hostname.clone().unwrap_or_default();
        settings.user_agent = negotiated.user_agent.clone();
        settings.heartbeat_interval_ms = negotiated.heartbeat_interval_ms;
        settings.output_buffer_size = negotiated.output_buffer_size;
        settings.output_buffer_timeout_ms = negotiated.output_buffer_timeout_ms;
        settings.sample_rate = negotiated.sample_rate;
        settings.msg_timeout_ms = negotiated.msg_timeout_ms;
    }
    tracing::info!(client = reader.client.id, user_agent = %negotiated.user_agent, "IDENTIFY");
    if !reader.send(ToPump::SettingsChanged).await {
        return Ok(None);
    }
    if !negotiated.feature_negotiation {
        return Ok(Some(Reader::ok()));
    }
    let upgrades = super::upgrade::Upgrades {
        tls: negotiated.tls_v1,
        snappy: negotiated.snappy,
        deflate: negotiated
            .deflate
            .then(|| u32::try_from(negotiated.deflate_level).unwrap_or(6)),
    };
    if upgrades.any() {
        reader.pending_upgrade = Some(upgrades);
    }
    let json = identify::response_json(&negotiated, &limits, super::super::options::VERSION);
    Ok(Some(Reader::response(&json)))
}

async fn subscribe(reader: &mut Reader, topic_name: &str, channel_name: &str) -> Outcome {
    auth::check(
        &reader.nsqd,
        &reader.client,
        "SUB",
        topic_name,
        channel_name,
    )
    .await?;
    // An ephemeral topic or channel may be deleting itself right now: retry once, as Go does.
    for attempt in 1.. {
        let topic = reader.nsqd.topic(topic_name).await;
        let channel = match topic.get_or_create_channel(channel_name, reader.nsqd.now_ns()) {
            Ok(channel) => channel,
            Err(_) if attempt < 2 => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => return Err(sub_failed("failed to deleted topic/channel")),
        };
        channel
            .add_client(reader.client.clone())
            .map_err(|e| sub_failed(&e.to_string()))?;
        if channel.is_exiting() || topic.is_exiting() {
            channel.remove_client(reader.client.id);
            if attempt < 2 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            return Err(sub_failed("failed to deleted topic/channel"));
        }
        reader.client.set_state(ClientState::Subscribed);
        reader.subscription = Some((topic.clone(), channel.clone()));
        // The OK travels with the subscription so that no message can overtake it.
        reader.send(ToPump::Subscribed(topic, channel)).await;
        return Ok(None);
    }
    Err(sub_failed("failed to deleted topic/channel"))
}

fn sub_failed(why: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::SubFailed, format!("SUB failed {why}"))
}

fn finish(reader: &mut Reader, id: &MessageId) -> Outcome {
    match finish_many(reader, std::slice::from_ref(id)).pop() {
        Some(error) => Err(error),
        None => Ok(None),
    }
}

/// Runs a batch of FINs, in order, as one: the errors to send, in order.
pub(super) fn finish_many(reader: &mut Reader, ids: &[MessageId]) -> Vec<ProtocolError> {
    let mut errors = Vec::new();
    let Some((_, channel)) = &reader.subscription else {
        return ids
            .iter()
            .map(|id| not_in_flight(ErrorCode::FinFailed, "FIN", id))
            .collect();
    };
    let nsqd = &reader.nsqd;
    let mut failed = Vec::new();
    let finished = channel.finish_many(
        reader.client.id,
        ids,
        || nsqd.now_ns(),
        |i, e| {
            failed.push(i);
            let id = &ids[i];
            errors.push(ProtocolError::new(
                ErrorCode::FinFailed,
                format!("FIN {id} failed {e}"),
            ));
        },
    );
    if let (Some(replication), Some((topic, _))) = (&nsqd.replication, &reader.subscription) {
        replication.finished(topic, channel, ids, &failed);
    }
    if nsqd.opts.buggify.fin_loses_next_message {
        for _ in 0..finished {
            channel.buggify_drop_next();
        }
    }
    reader.client.finished(finished as u64);
    errors
}

/// REQ. A delayed message held on disk has its new due time journaled (synced) before
/// the next command is read, so what the client sees next proves it survives a crash.
async fn requeue(reader: &mut Reader, id: &MessageId, timeout_ms: i64) -> Outcome {
    let Some((topic, channel)) = &reader.subscription else {
        return Err(not_in_flight(ErrorCode::ReqFailed, "REQ", id));
    };
    let now = reader.nsqd.now_ns();
    let requeued = channel
        .requeue(
            reader.client.id,
            id,
            now,
            timeout_ms.saturating_mul(1_000_000),
        )
        .map_err(|e| ProtocolError::new(ErrorCode::ReqFailed, format!("REQ {id} failed {e}")))?;
    if let (Some(replication), true) = (&reader.nsqd.replication, timeout_ms > 0) {
        let due_ns = now.saturating_add(timeout_ms.saturating_mul(1_000_000));
        replication.requeued(topic, channel, *id, due_ns);
    }
    match requeued {
        Requeued::Done => {}
        Requeued::JournalDue(due_ns) => {
            let journaled = channel.journal_due_time(*id, due_ns).await;
            if let Err(error) = &journaled {
                tracing::error!(%error, "the due time of a requeued message may not survive a crash");
            }
            reader.nsqd.note_disk_write(&journaled);
        }
        Requeued::Spill(message, due_ns) => channel.spill_deferred(vec![(message, due_ns)]).await,
        Requeued::JournalDueAndSpill(message, due_ns) => {
            let journaled = channel.journal_and_spill_held(message, due_ns).await;
            if let Err(error) = &journaled {
                tracing::error!(%error, "the due time of a requeued message may not survive a crash");
            }
            reader.nsqd.note_disk_write(&journaled);
        }
    }
    reader
        .client
        .requeue_count
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    reader.client.in_flight_done();
    Ok(None)
}

fn touch(reader: &mut Reader, id: &MessageId) -> Outcome {
    let Some((_, channel)) = &reader.subscription else {
        return Err(not_in_flight(ErrorCode::TouchFailed, "TOUCH", id));
    };
    let msg_timeout_ns = reader
        .client
        .settings
        .lock()
        .msg_timeout_ms
        .saturating_mul(1_000_000);
    let max_ns = millis(reader.nsqd.opts.max_msg_timeout).saturating_mul(1_000_000);
    channel
        .touch(
            reader.client.id,
            id,
            reader.nsqd.now_ns(),
            msg_timeout_ns,
            max_ns,
        )
        .map_err(|e| {
            ProtocolError::new(ErrorCode::TouchFailed, format!("TOUCH {id} failed {e}"))
        })?;
    Ok(None)
}

fn not_in_flight(code: ErrorCode, name: &str, id: &MessageId) -> ProtocolError {
    ProtocolError::new(code, format!("{name} {id} failed ID not in flight"))
}

async fn publish(
    reader: &mut Reader,
    name: &str,
    topic_name: &str,
    bodies: Vec<Bytes>,
    defer_ms: i64,
) -> Outcome {
    // An MPUB was checked before its body was read, as Go does (see `MpubGate`).
    if !(name == "MPUB" && reader.auth_gate.passed()) {
        auth::check(&reader.nsqd, &reader.client, name, topic_name, "").await?;
    }
    let topic = reader.nsqd.topic(topic_name).await;
    let count = bodies.len() as u64;
    let published = reader
        .nsqd
        .publish(&topic, bodies, defer_ms.saturating_mul(1_000_000))
        .await;
    published.map_err(|e| {
        let code = match name {
            "MPUB" => ErrorCode::MpubFailed,
            "DPUB" => ErrorCode::DpubFailed,
            _ => ErrorCode::PubFailed,
        };
        ProtocolError::new(code, format!("{name} failed {e}"))
    })?;
    reader.client.published(topic_name, count);
    Ok(Some(Reader::ok()))
}
