//! The guard every HTTP request passes: the node's own Host (against DNS rebinding), no
//! state change from another origin (against CSRF), and who may drive the node (see
//! [`super::auth`]): the access token as a bearer token, or a session cookie on the node's
//! own page host. What let a request in is put in its extensions ([`Auth`]). Every response
//! carries the security headers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::{Auth, SESSION_COOKIE};
use super::error::ApiError;
use crate::core::service::blocking;

/// The bearer token a request carries, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Every cookie a request carries.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = cookie::Cookie<'_>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .flatten()
}

/// The session cookie a request carries, if any.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookies(headers)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// Whether the request was made to the node's page host (where sessions live).
pub(super) fn on_page_host(state: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.eq_ignore_ascii_case(state.access.page_host()))
}

/// How `headers` let a request in, if they do.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Option<Auth> {
    if !state.access.required() {
        return Some(Auth::Open);
    }
    if bearer(headers).is_some_and(|t| state.access.token_matches(t)) {
        return Some(Auth::Token);
    }
    // A session counts only on the page host: a cookie for another name is not ours.
    let id = session_cookie(headers).filter(|_| on_page_host(state, headers))?;
    let (access, node) = (state.access.clone(), state.node.clone());
    let record = blocking(move || access.session(&node, &id, config::now_ms()))
        .await
        .ok()
        .flatten()?;
    Some(Auth::Session {
        signed_in_ms: record.signed_in_ms,
    })
}

/// Refuse foreign Host (DNS rebinding) and foreign Origin/Referer on state changes (CSRF);
/// let in what the token or a session allows; otherwise the API answers 401 and pages the
/// sign-in page. The page host's name is never told to a request that is not let in: a
/// local program that learnt it could serve pages under it and receive the cookie.
pub(super) async fn guard(State(s): State<AppState>, mut request: Request, next: Next) -> Response {
    if let Err(e) = check_request(&s.allowed_hosts, request.method(), request.headers()) {
        return e.into_response();
    }
    let stale = stale_token_cookies(request.headers());
    let path = request.uri().path();
    let open_path = path == "/login" || path == ui::STYLESHEET_PATH || path == ui::SCRIPT_PATH;
    if let Some(auth) = authenticate(&s, request.headers()).await {
        request.extensions_mut().insert(auth);
        return clear_cookies(with_security_headers(next.run(request).await), &stale);
    }
    if open_path {
        return clear_cookies(with_security_headers(next.run(request).await), &stale);
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let refusal = if path.starts_with("/api/") {
        ApiError::Unauthorized(
            "this node requires its access token (Authorization: Bearer <token>)".into(),
        )
        .into_response()
    } else {
        super::error::login_required(None, &target)
    };
    clear_cookies(with_security_headers(refusal), &stale)
}

/// The names of cookies that older nodes set holding the access token itself
/// (`sm_token_<port>`, on 127.0.0.1 and localhost): a browser still sends them to every
/// local server, so they are cleared wherever they come back.
fn stale_token_cookies(headers: &HeaderMap) -> Vec<String> {
    cookies(headers)
        .filter(|c| c.name().starts_with("sm_token_"))
        .map(|c| c.name().to_owned())
        .collect()
}

/// Add a `Set-Cookie` that deletes each of `names`.
fn clear_cookies(mut response: Response, names: &[String]) -> Response {
    for name in names {
        let gone = cookie::Cookie::build((name.clone(), ""))
            .path("/")
            .max_age(cookie::time::Duration::ZERO)
            .build();
        if let Ok(v) = axum::http::HeaderValue::from_str(&gone.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The answer to a request that needs a fresh sign-in (a key export with an old session).
pub(super) fn reauth_required() -> ApiError {
    ApiError::Reauth(
        "exporting a key needs a sign-in of the last 5 minutes: open a new sign-in link \
         (`node signin`) or sign in with the access token, then try again"
            .into(),
    )
}

fn with_security_headers(mut response: Response) -> Response {
    ui::serve::add_security_headers(response.headers_mut(), ui::serve::NODE_CSP);
    response
}

fn check_request(allowed: &[String], method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    ui::serve::check_host(allowed, headers).map_err(|e| ApiError::Forbidden(e.to_string()))?;
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .map(|v| v.to_str().unwrap_or("invalid"));
    if let Some(origin) = origin {
        let ok = allowed.iter().any(|a| {
            let base = format!("http://{a}");
            origin.eq_ignore_ascii_case(&base)
                || origin
                    .get(..base.len() + 1)
                    .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{base}/")))
        });
        if !ok {
            return Err(ApiError::Forbidden("cross-origin request refused".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_origin_checks() {
        let allowed = ui::serve::allowed_hosts("127.0.0.1:8000".parse().expect("addr"));
        let h = |pairs: &[(header::HeaderName, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(
                    k.clone(),
                    axum::http::HeaderValue::from_str(v).expect("header"),
                );
            }
            m
        };
        let ok_host = (header::HOST, "127.0.0.1:8000");
        assert!(check_request(&allowed, &Method::GET, &h(std::slice::from_ref(&ok_host))).is_ok());
        assert!(
            check_request(
                &allowed,
                &Method::GET,
                &h(&[(header::HOST, "localhost:8000")])
            )
            .is_ok()
        );
        assert!(
            check_request(
                &allowed,
                &Method::GET,
                &h(&[(header::HOST, "evil.example:8000")])
            )
            .is_err()
        );
        assert!(check_request(&allowed, &Method::GET, &h(&[])).is_err());
        assert!(check_request(&allowed, &Method::POST, &h(std::slice::from_ref(&ok_host))).is_ok());
        assert!(
            check_request(
                &allowed,
                &Method::POST,
                &h(&[ok_host.clone(), (header::ORIGIN, "http://127.0.0.1:8000")])
            )
            .is_ok()
        );
        assert!(
            check_request(
                &allowed,
                &Method::POST,
                &h(&[ok_host.clone(), (header::ORIGIN, "http://evil.example")])
            )
            .is_err()
        );
        assert!(
            check_request(
                &allowed,
                &Method::POST,
                &h(&[ok_host.clone(), (header::ORIGIN, "http://127.0.0.1:80001")])
            )
            .is_err()
        );
        assert!(
            check_request(
                &allowed,
                &Method::POST,
                &h(&[
                    ok_host.clone(),
                    (header::REFERER, "http://localhost:8000/?identity=a")
                ])
            )
            .is_ok()
        );
        assert!(
            check_request(
                &allowed,
                &Method::DELETE,
                &h(&[ok_host, (header::ORIGIN, "null")])
            )
            .is_err()
        );
    }
}
