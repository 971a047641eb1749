//! The one mapping of errors to HTTP: [`ApiError`] is a [`NodeError`] or one of the guard's
//! refusals, answered as `{"error", "code"}` JSON with its status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::ErrorJson;
use crate::core::error::NodeError;

/// What an HTTP handler or the guard answers with when it does not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The core refused or failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A foreign Host or Origin (403).
    #[error("{0}")]
    Forbidden(String),
    /// The access token is missing or wrong (401, with a `WWW-Authenticate` challenge).
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not recently enough for this (a key export): 403 `reauth_required`.
    #[error("{0}")]
    Reauth(String),
    /// Only the access token may do this, not a browser session: 403 `token_required`.
    #[error("{0}")]
    TokenRequired(String),
}

impl From<crate::core::store::StoreError> for ApiError {
    fn from(e: crate::core::store::StoreError) -> Self {
        Self::Node(e.into())
    }
}

impl ApiError {
    /// Bad input with a code (400).
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Node(NodeError::invalid(code, message))
    }

    /// The HTTP status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Node(e) => match e {
                NodeError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
                NodeError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                NodeError::Conflict(_) => (StatusCode::CONFLICT, "already_exists"),
                NodeError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
                NodeError::Store(_)
                | NodeError::Crypto(_)
                | NodeError::Io(_)
                | NodeError::Task(_)
                | NodeError::IdentityKey { .. }
                | NodeError::Listen { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Reauth(_) => (StatusCode::FORBIDDEN, "reauth_required"),
            Self::TokenRequired(_) => (StatusCode::FORBIDDEN, "token_required"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorJson {
            error: self.to_string(),
            code: code.to_owned(),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, bearer_challenge());
        }
        response
    }
}

/// The page a browser gets instead of a 401's JSON: the login form, with `words` saying why
/// when a token was given and is wrong.
pub fn login_required(words: Option<&str>, next: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, bearer_challenge())],
        axum::response::Html(ui::login_page(words, next)),
    )
        .into_response()
}

/// The challenge a 401 carries: the API takes the access token as a bearer token.
pub fn bearer_challenge() -> HeaderValue {
    HeaderValue::from_static("Bearer realm=\"secure-messenger-node\"")
}
