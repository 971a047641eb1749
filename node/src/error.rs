//! The node's error type, and its one mapping to HTTP statuses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Everything a node operation can refuse or fail with. Display texts are for users: they
/// name the field at fault and never contain message text or keys.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad input (400).
    #[error("{message}")]
    Invalid {
        /// Stable machine code.
        code: &'static str,
        /// Words.
        message: String,
    },
    /// Unknown identity, contact or message (404).
    #[error("{0}")]
    NotFound(String),
    /// Already exists (409).
    #[error("{0}")]
    Conflict(String),
    /// Too large (413).
    #[error("{0}")]
    TooLarge(String),
    /// Foreign Host or Origin (403).
    #[error("{0}")]
    Forbidden(String),
    /// The access token is missing or wrong (401, with a `WWW-Authenticate` challenge).
    #[error("{0}")]
    Unauthorized(String),
    /// Storage failed (500).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

impl NodeError {
    /// A 400 with a code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "already_exists"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Store(_) | Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.to_string(), "code": code })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, bearer_challenge());
        }
        response
    }
}

/// The challenge a 401 carries: the API takes the access token as a bearer token.
pub fn bearer_challenge() -> HeaderValue {
    HeaderValue::from_static("Bearer realm=\"secure-messenger-node\"")
}
