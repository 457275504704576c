//! Pure, IO-free NSQ V2 wire code: commands, frames, messages, names, GUIDs and IDENTIFY.
//!
//! Nothing here touches a socket, a clock or a random source, so the nsqd connection, our
//! client, the benches and the property tests all share exactly this code.
//!
//! - [`commands`]: client commands, [`decode`] (server side) and [`Command::encode`] (client side).
//! - [`frame`]: server frames (response, error, message) and the client-side frame decoder.
//! - [`message`]: message ids and the 26-byte message header.
//! - [`identify`]: the IDENTIFY JSON, its validation and the negotiation answer.
//! - [`names`]: topic and channel name rules.
//! - [`guid`]: message ids in NSQ's snowflake layout.
//! - [`lookup`]: nsqlookupd's V1 protocol (magic, commands, framing, errors).
//! - [`error`]: NSQ's error codes and the text of an error frame.

pub mod commands;
pub mod error;
pub mod frame;
pub mod guid;
pub mod identify;
pub mod lookup;
pub mod message;
pub mod names;

#[cfg(test)]
mod proptests;

pub use commands::{
    decode, ClientState, Command, Decoded, Limits, ParseContext, ParseError, MAX_LINE_LENGTH,
};
pub use error::{ErrorCode, ProtocolError};
pub use frame::{
    decode_frame, write_error, write_frame, write_message_frame, FrameError, FrameType, CLOSE_WAIT,
    HEARTBEAT, MAGIC_V2, OK,
};
pub use guid::GuidFactory;
pub use identify::{negotiate, response_json, IdentifyLimits, IdentifyRequest, Negotiated};
pub use message::{Message, MessageError, MessageId, MESSAGE_HEADER_LENGTH, MSG_ID_LENGTH};
pub use names::{is_ephemeral, is_valid_channel_name, is_valid_topic_name, MAX_NAME_LENGTH};
