//! What can go wrong talking to nsqd.

use crate::protocol::frame::FrameError;
use crate::protocol::message::MessageError;

/// A client-side failure. After `Io`, `Frame`, `Message` and `Closed` the connection is
/// unusable; after `Server` it depends on the code (only `E_FIN_FAILED`, `E_REQ_FAILED`
/// and `E_TOUCH_FAILED` leave it open); `UnexpectedFrame` means the caller and the server
/// disagree about the conversation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent a frame that cannot be decoded (bad size or type).
    #[error("bad frame from server: {0}")]
    Frame(#[from] FrameError),
    /// A message frame too short to hold a message header.
    #[error("bad message from server: {0}")]
    Message(#[from] MessageError),
    /// The server answered with an error frame, e.g. `E_BAD_TOPIC PUB topic name "a!" is not valid`.
    #[error("server error: {code_and_text}")]
    Server {
        /// The error frame's text: the code, a space and the description.
        code_and_text: String,
    },
    /// The server closed the connection (possibly in the middle of a frame).
    #[error("connection closed by server")]
    Closed,
    /// The IDENTIFY answer turned on something this client cannot speak, or is not JSON.
    #[error("IDENTIFY negotiation failed: {0}")]
    Negotiation(String),
    /// No nsqlookupd could be asked which nsqds hold a topic.
    #[error("lookup failed: {0}")]
    Lookup(#[source] crate::http_client::HttpGetError),
    /// A frame arrived that the current request cannot explain.
    #[error("unexpected frame: expected {expected}, got {got}")]
    UnexpectedFrame {
        /// What the request was waiting for.
        expected: &'static str,
        /// A short description of what came instead.
        got: String,
    },
}

impl ClientError {
    /// The NSQ error code of a `Server` error (`"E_BAD_TOPIC"`), None for any other kind.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code_and_text } => code_and_text.split(' ').next(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClientError;

    #[test]
    fn server_code_is_the_first_word_of_the_error_text() {
        let err = ClientError::Server {
            code_and_text: "E_FIN_FAILED FIN 0000000000000000 failed ID not in flight".into(),
        };
        assert_eq!(err.server_code(), Some("E_FIN_FAILED"));
        let bare = ClientError::Server {
            code_and_text: "E_BAD_PROTOCOL".into(),
        };
        assert_eq!(bare.server_code(), Some("E_BAD_PROTOCOL"));
        assert_eq!(ClientError::Closed.server_code(), None);
    }
}
