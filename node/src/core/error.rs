//! The node's domain error: what an operation of the core can refuse or fail with. It knows
//! nothing of HTTP; `crate::http::error` maps it to statuses, in one place.

/// Everything a node operation can refuse or fail with. Display texts are for users: they
/// name the field at fault and never contain message text or keys.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad input, with a stable machine code naming what is wrong.
    #[error("{message}")]
    Invalid {
        /// Stable machine code.
        code: &'static str,
        /// Words.
        message: String,
    },
    /// Unknown identity, contact or message.
    #[error("{0}")]
    NotFound(String),
    /// Already exists.
    #[error("{0}")]
    Conflict(String),
    /// Too large.
    #[error("{0}")]
    TooLarge(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] crate::core::store::StoreError),
    /// Anything else the node itself failed at.
    #[error("{0}")]
    Internal(String),
}

impl NodeError {
    /// Bad input with a code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(e.to_string())
    }
}
