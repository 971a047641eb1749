//! Access: `/sign-in` (a new one-time sign-in link for a browser) and `/sessions` (the
//! browsers signed in, and ending one). See [`crate::http::auth`].

#[allow(clippy::wildcard_imports)]
use super::*;

use axum::Extension;

use crate::http::auth::{Access, Auth, SIGN_IN_TTL};

/// A one-time sign-in link.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignInJson {
    /// Open it in a browser: it signs that browser in once.
    pub url: String,
    /// When it stops working, RFC 3339 UTC.
    pub expires_at: String,
}

/// A browser signed in to this node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionJson {
    /// What revokes it (16 hex digits; it cannot be turned back into the session's cookie).
    pub id: String,
    /// The browser, as it named itself.
    pub agent: String,
    /// When it signed in, RFC 3339 UTC.
    pub signed_in_at: String,
    /// When it was last used (to within minutes), RFC 3339 UTC.
    pub last_seen_at: String,
    /// Whether it is the session this request came with.
    pub current: bool,
}

/// The sessions, newest sign-in first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionsJson {
    /// Each one.
    pub sessions: Vec<SessionJson>,
}

/// Make a one-time sign-in link (valid for 15 minutes) for a browser. With the access token
/// only: a browser session cannot mint sessions (it would renew its own sign-in, outlive
/// its revocation, and crowd out the user's).
#[utoipa::path(
    post,
    path = "/sign-in",
    tag = "access",
    responses(
        (status = 200, description = "The link", body = SignInJson),
        (status = 403, description = "Asked with a browser session, not the token \
            (`token_required`)", body = ErrorJson),
        (status = 400, description = "This node requires no token: there is nothing to sign in to \
            (`no_token`)", body = ErrorJson),
    )
)]
pub(super) async fn sign_in(
    State(s): State<AppState>,
    auth: Option<Extension<Auth>>,
) -> Result<Json<SignInJson>, ApiError> {
    if !matches!(auth, Some(Extension(Auth::Token))) && s.access.required() {
        return Err(ApiError::TokenRequired(
            "a sign-in link is made with the access token (`node signin`), not from a browser \
             session"
                .into(),
        ));
    }
    if !s.access.required() {
        return Err(ApiError::invalid(
            "no_token",
            "this node requires no access token: open its page directly",
        ));
    }
    let now = config::now_ms();
    let code = s.access.new_code(now);
    let expires = now.saturating_add(u64::try_from(SIGN_IN_TTL.as_millis()).unwrap_or(0));
    Ok(Json(SignInJson {
        url: s.access.sign_in_url(&code),
        expires_at: rfc3339(expires),
    }))
}

/// The browsers signed in to this node.
#[utoipa::path(
    get,
    path = "/sessions",
    tag = "access",
    responses(
        (status = 200, description = "The sessions", body = SessionsJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
pub(super) async fn list_sessions(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<SessionsJson>, ApiError> {
    let current = crate::http::guard::session_cookie(&headers).map(|id| Access::handle_of(&id));
    let (access, node) = (s.access.clone(), s.node.clone());
    let list = blocking(move || access.sessions(&node)).await?;
    Ok(Json(SessionsJson {
        sessions: list
            .into_iter()
            .map(|info| SessionJson {
                current: current.as_deref() == Some(info.handle.as_str()),
                id: info.handle,
                agent: info.record.agent,
                signed_in_at: rfc3339(info.record.signed_in_ms),
                last_seen_at: rfc3339(info.record.seen_ms),
            })
            .collect(),
    }))
}

/// End a session: its browser is signed out.
#[utoipa::path(
    delete,
    path = "/sessions/{session}",
    tag = "access",
    params(("session" = String, Path, description = "The session's id (16 hex digits)")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No such session (`not_found`)", body = ErrorJson),
    )
)]
pub(super) async fn revoke_session(
    State(s): State<AppState>,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (access, node) = (s.access.clone(), s.node.clone());
    blocking(move || access.revoke(&node, &session)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether this request may export a key (with the token, or a sign-in of the last
/// minutes).
pub(crate) fn may_export_keys(auth: Option<Extension<Auth>>) -> Result<(), ApiError> {
    match auth {
        Some(Extension(auth)) if auth.may_export_keys(config::now_ms()) => Ok(()),
        _ => Err(crate::http::guard::reauth_required()),
    }
}
