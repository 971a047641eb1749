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
    /// A key or envelope operation failed (RSA, a key file's encoding).
    #[error(transparent)]
    Crypto(#[from] crypto::Error),
    /// A file of the node's (a key file, the data directory) could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A background task did not finish: it panicked, or the runtime is stopping.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// An identity's key file could not be read at start.
    #[error("identity {identity}: {source}")]
    IdentityKey {
        /// The identity's id.
        identity: String,
        /// Why.
        source: crypto::Error,
    },
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl From<crypto::KeyError> for NodeError {
    fn from(e: crypto::KeyError) -> Self {
        Self::Crypto(e.into())
    }
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
