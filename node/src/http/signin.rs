//! Signing a browser in, and out: `GET /login` (a one-time sign-in link, or the sign-in
//! page), `POST /login` (the access token, typed once), and `POST /ui/sessions/revoke` (the
//! settings dialog's "Sign out"). Each sign-in begins a session (see [`super::auth`]); the
//! cookie carries its id only, and lives on the node's page host alone.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::AppState;
use super::auth::Access;
use super::error::ApiError;
use crate::core::service::blocking;

/// The sign-in routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/ui/sessions/revoke", post(revoke))
}

#[derive(Deserialize, Default)]
struct SignIn {
    code: Option<String>,
    next: Option<String>,
}

/// Where to go after signing in: a path of this node's, never another site.
fn local_target(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// Begin a session for this browser and send it on to `next`, with the session cookie
/// (host-only: it lives on the page host alone).
async fn signed_in(s: &AppState, headers: &HeaderMap, next: Option<&str>) -> Response {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("a browser")
        .to_owned();
    let (access, node) = (s.access.clone(), s.node.clone());
    let opened = blocking(move || access.open_session(&node, &agent, config::now_ms())).await;
    let id = match opened {
        Ok(id) => id,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let cookie = cookie::Cookie::build((super::auth::SESSION_COOKIE, id))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(super::auth::SESSION_IDLE.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    let mut response = Redirect::to(&local_target(next)).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// Sessions are made on the page host only: elsewhere, the same request goes there.
fn to_page_host(s: &AppState, uri: &axum::http::Uri) -> Response {
    let target = uri.path_and_query().map_or("/login", |p| p.as_str());
    Redirect::to(&format!("http://{}{target}", s.access.page_host())).into_response()
}

/// `GET /login`: a sign-in link (`?code=`) begins a session; without one, the sign-in page.
async fn login_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(q): Query<SignIn>,
) -> Response {
    if !super::guard::on_page_host(&s, &headers) {
        return to_page_host(&s, &uri);
    }
    let next = local_target(q.next.as_deref());
    match q.code {
        Some(code) if s.access.take_code(&code, config::now_ms()) => {
            signed_in(&s, &headers, Some(&next)).await
        }
        Some(_) => super::error::login_required(
            Some(
                "That sign-in link was used already or has expired: get a new one with `node signin`.",
            ),
            &next,
        ),
        None => (StatusCode::OK, Html(ui::login_page(None, &next))).into_response(),
    }
}

#[derive(Deserialize)]
struct Login {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: the access token, typed once, begins a session (the cookie never holds
/// the token).
async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Form(f): Form<Login>,
) -> Response {
    if !super::guard::on_page_host(&s, &headers) {
        return to_page_host(&s, &uri);
    }
    let next = local_target(f.next.as_deref());
    if !s.access.token_matches(&f.token) {
        return super::error::login_required(Some("That is not this node's access token."), &next);
    }
    signed_in(&s, &headers, Some(&next)).await
}

#[derive(Deserialize)]
struct Revoke {
    session: String,
    #[serde(default)]
    identity: Option<String>,
}

/// "Sign out" in the settings dialog: end a session. Ending this browser's own goes to the
/// sign-in page; another's, back to the settings.
async fn revoke(State(s): State<AppState>, headers: HeaderMap, Form(f): Form<Revoke>) -> Response {
    let own = super::guard::session_cookie(&headers)
        .is_some_and(|id| Access::handle_of(&id) == f.session);
    let (access, node) = (s.access.clone(), s.node.clone());
    let handle = f.session.clone();
    if let Err(e) = blocking(move || access.revoke(&node, &handle)).await {
        return ApiError::from(e).into_response();
    }
    if own {
        return Redirect::to("/login").into_response();
    }
    let back = f
        .identity
        .filter(|i| crate::core::service::check_name("a name", i).is_ok())
        .map_or_else(
            || "/?settings=1".to_owned(),
            |i| format!("/?identity={i}&settings=1"),
        );
    Redirect::to(&back).into_response()
}
