//! The guard every HTTP request passes: the node's own Host (against DNS rebinding), no
//! state change from another origin (against CSRF), the access token when one is set; and
//! the security headers every response carries.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;

use super::AppState;
use super::error::ApiError;

/// Whether `headers` carry the access token (or none is required).
pub(super) fn token_matches(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.token else {
        return true;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .flatten()
        .find(|c| c.name() == &*state.token_cookie)
        .map(|c| c.value().to_owned());
    // Compare digests, so the time taken says nothing about how much of the token matched.
    let digest = |t: &str| sha2::Sha256::digest(t.as_bytes());
    let want = digest(expected);
    bearer.is_some_and(|b| digest(b) == want) || from_cookie.is_some_and(|c| digest(&c) == want)
}

/// Refuse foreign Host (DNS rebinding) and foreign Origin/Referer on state changes (CSRF).
pub(super) async fn guard(State(s): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(e) = check_request(&s.allowed_hosts, request.method(), request.headers()) {
        return e.into_response();
    }
    let path = request.uri().path();
    let open_path = path == "/login" || path == ui::STYLESHEET_PATH || path == ui::SCRIPT_PATH;
    if !open_path && !token_matches(&s, request.headers()) {
        let refusal = if path.starts_with("/api/") {
            ApiError::Unauthorized(
                "this node requires its access token (Authorization: Bearer <token>)".into(),
            )
            .into_response()
        } else {
            super::error::login_required(None)
        };
        return with_security_headers(refusal);
    }
    with_security_headers(next.run(request).await)
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
