//! NSQ's client-visible error codes and the error a command answers with.

/// The code at the front of every error frame; clients branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Invalid,
    BadBody,
    BadTopic,
    BadChannel,
    BadMessage,
    PubFailed,
    MpubFailed,
    DpubFailed,
    FinFailed,
    ReqFailed,
    TouchFailed,
    SubFailed,
    IdentifyFailed,
    AuthDisabled,
    AuthFailed,
    AuthFirst,
    AuthError,
    Unauthorized,
    BadProtocol,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `"E_INVALID"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Invalid => "E_INVALID",
            ErrorCode::BadBody => "E_BAD_BODY",
            ErrorCode::BadTopic => "E_BAD_TOPIC",
            ErrorCode::BadChannel => "E_BAD_CHANNEL",
            ErrorCode::BadMessage => "E_BAD_MESSAGE",
            ErrorCode::PubFailed => "E_PUB_FAILED",
            ErrorCode::MpubFailed => "E_MPUB_FAILED",
            ErrorCode::DpubFailed => "E_DPUB_FAILED",
            ErrorCode::FinFailed => "E_FIN_FAILED",
            ErrorCode::ReqFailed => "E_REQ_FAILED",
            ErrorCode::TouchFailed => "E_TOUCH_FAILED",
            ErrorCode::SubFailed => "E_SUB_FAILED",
            ErrorCode::IdentifyFailed => "E_IDENTIFY_FAILED",
            ErrorCode::AuthDisabled => "E_AUTH_DISABLED",
            ErrorCode::AuthFailed => "E_AUTH_FAILED",
            ErrorCode::AuthFirst => "E_AUTH_FIRST",
            ErrorCode::AuthError => "E_AUTH_ERROR",
            ErrorCode::Unauthorized => "E_UNAUTHORIZED",
            ErrorCode::BadProtocol => "E_BAD_PROTOCOL",
        }
    }

    /// Whether nsqd closes the connection after sending this error. Only the three
    /// "message not in flight" failures leave the connection usable.
    pub fn is_fatal(self) -> bool {
        !matches!(
            self,
            ErrorCode::FinFailed | ErrorCode::ReqFailed | ErrorCode::TouchFailed
        )
    }
}

/// An error answered to a client: one error frame with [`ProtocolError::text`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.text())]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub description: String,
}

impl ProtocolError {
    /// An error with `code` and a human-readable `description` (Go's exact text).
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        ProtocolError {
            code,
            description: description.into(),
        }
    }

    /// Whether the connection must close after this error is sent.
    pub fn is_fatal(&self) -> bool {
        self.code.is_fatal()
    }

    /// "<CODE> <description>", or just "<CODE>" when the description is empty (E_BAD_PROTOCOL).
    pub fn text(&self) -> String {
        let code = self.code.as_str();
        if self.description.is_empty() {
            return code.to_owned();
        }
        let mut text = String::with_capacity(code.len() + 1 + self.description.len());
        text.push_str(code);
        text.push(' ');
        text.push_str(&self.description);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_joins_code_and_description() {
        let err = ProtocolError::new(ErrorCode::Invalid, "invalid command FOO");
        assert_eq!(err.text(), "E_INVALID invalid command FOO");
        assert_eq!(err.to_string(), "E_INVALID invalid command FOO");
    }

    #[test]
    fn empty_description_is_just_the_code() {
        assert_eq!(
            ProtocolError::new(ErrorCode::BadProtocol, "").text(),
            "E_BAD_PROTOCOL"
        );
    }

    #[test]
    fn only_message_failures_are_non_fatal() {
        let all = [
            ErrorCode::Invalid,
            ErrorCode::BadBody,
            ErrorCode::BadTopic,
            ErrorCode::BadChannel,
            ErrorCode::BadMessage,
            ErrorCode::PubFailed,
            ErrorCode::MpubFailed,
            ErrorCode::DpubFailed,
            ErrorCode::FinFailed,
            ErrorCode::ReqFailed,
            ErrorCode::TouchFailed,
            ErrorCode::SubFailed,
            ErrorCode::IdentifyFailed,
            ErrorCode::AuthDisabled,
            ErrorCode::AuthFailed,
            ErrorCode::AuthFirst,
            ErrorCode::AuthError,
            ErrorCode::Unauthorized,
            ErrorCode::BadProtocol,
        ];
        let non_fatal: Vec<_> = all.iter().filter(|c| !c.is_fatal()).collect();
        assert_eq!(
            non_fatal,
            [
                &ErrorCode::FinFailed,
                &ErrorCode::ReqFailed,
                &ErrorCode::TouchFailed
            ]
        );
        assert!(all.iter().all(|c| c.as_str().starts_with("E_")));
    }
}
