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
    // A path of ours: one slash, then no backslash, space or control character (browsers
    // drop tabs and newlines from URLs, so `/\t/evil.example` would be `//evil.example`).
    let ours = |n: &str| {
        n.starts_with('/')
            && !n.starts_with("//")
            && n.bytes().all(|b| b > 0x20 && b != 0x7f && b != b'\\')
    };
    match next {
        Some(n) if ours(n) => n.to_owned(),
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

/// A redirect to `target` on the page host.
fn on_page_host(s: &AppState, target: &str) -> Response {
    Redirect::to(&format!("http://{}{target}", s.access.page_host())).into_response()
}

/// `GET /login`: a sign-in link (`?code=`) begins a session; without one, the sign-in page.
/// Asked for under another name, a live link goes on to the page host (it names it only to
/// the holder of a live code).
async fn login_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(q): Query<SignIn>,
) -> Response {
    let next = local_target(q.next.as_deref());
    let now = config::now_ms();
    let used = || {
        super::error::login_required(
            Some(
                "That sign-in link was used already or has expired: get a new one with `node signin`.",
            ),
            &next,
        )
    };
    if !super::guard::on_page_host(&s, &headers) {
        return match q.code {
            Some(code) if s.access.code_is_live(&code, now) => {
                on_page_host(&s, uri.path_and_query().map_or("/login", |p| p.as_str()))
            }
            Some(_) => used(),
            None => (StatusCode::OK, Html(ui::login_page(None, &next))).into_response(),
        };
    }
    match q.code {
        Some(code) if s.access.take_code(&code, now) => signed_in(&s, &headers, Some(&next)).await,
        Some(_) => used(),
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
/// the token). Typed under another name (`127.0.0.1`), it goes on to the page host with a
/// fresh one-time code, where the session begins.
async fn login(State(s): State<AppState>, headers: HeaderMap, Form(f): Form<Login>) -> Response {
    let next = local_target(f.next.as_deref());
    if !s.access.token_matches(&f.token) {
        return super::error::login_required(Some("That is not this node's access token."), &next);
    }
    if !super::guard::on_page_host(&s, &headers) {
        let code = s.access.new_code(config::now_ms());
        return on_page_host(&s, &format!("/login?{}", sign_in_query(&code, &next)));
    }
    signed_in(&s, &headers, Some(&next)).await
}

/// `code=<code>&next=<next, percent-encoded>`.
fn sign_in_query(code: &str, next: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("code", code).append_pair("next", next);
    query.finish()
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
