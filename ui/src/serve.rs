//! What both HTTP servers (the node and the mailbox dashboard) mount to serve these pages
//! safely, kept in one place (feature `axum`): the assets' routes, the Content Security
//! Policy each page set needs, the security headers every response carries, and the Host
//! allow-list that keeps a page on another origin from reading a loopback server through DNS
//! rebinding.

use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::routing::get;

use crate::{SCRIPT, SCRIPT_PATH, STYLESHEET, STYLESHEET_PATH};

/// The node's pages: their own script and stylesheet, inline `data:` images (the QR code),
/// their own event stream; forms post only to the node; no framing.
pub const NODE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard: the stylesheet only (no script, no images, no forms).
pub const DASHBOARD_CSP: &str =
    "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The routes of the stylesheet and, `with_script`, the node page's script.
pub fn assets<S: Clone + Send + Sync + 'static>(with_script: bool) -> Router<S> {
    let router = Router::new().route(
        STYLESHEET_PATH,
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                STYLESHEET,
            )
        }),
    );
    if !with_script {
        return router;
    }
    router.route(
        SCRIPT_PATH,
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                SCRIPT,
            )
        }),
    )
}

/// Add the headers every response carries: `csp`, no MIME sniffing, no framing, no referrer
/// to other origins, no caching (pages show private data).
pub fn add_security_headers(headers: &mut HeaderMap, csp: &'static str) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The `Host` values a server bound to `bound` answers to: its own address, and the
/// loopback names with its port.
pub fn allowed_hosts(bound: SocketAddr) -> Vec<String> {
    let port = bound.port();
    let mut hosts: Vec<String> = Vec::with_capacity(4);
    for host in [
        bound.to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// Why a request's `Host` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRefusal {
    /// There is none.
    Missing,
    /// It names another server (as a DNS-rebinding page would).
    Foreign(String),
}

impl std::fmt::Display for HostRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("a Host header is required"),
            Self::Foreign(host) => write!(f, "foreign Host {host:?} refused"),
        }
    }
}

/// Check a request's `Host` against `allowed` (from [`allowed_hosts`]).
pub fn check_host(allowed: &[String], headers: &HeaderMap) -> Result<(), HostRefusal> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or(HostRefusal::Missing)?;
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        Ok(())
    } else {
        Err(HostRefusal::Foreign(host.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(header::HOST, v);
        }
        headers
    }

    #[test]
    fn only_the_servers_own_names_are_answered() {
        let allowed = allowed_hosts(SocketAddr::from(([127, 0, 0, 1], 8000)));
        assert_eq!(allowed, ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"]);
        assert_eq!(check_host(&allowed, &host("LOCALHOST:8000")), Ok(()));
        assert_eq!(
            check_host(&allowed, &host("evil.example:8000")),
            Err(HostRefusal::Foreign("evil.example:8000".into()))
        );
        assert_eq!(
            check_host(&allowed, &HeaderMap::new()),
            Err(HostRefusal::Missing)
        );
        assert_eq!(
            check_host(&allowed, &host("127.0.0.1:8001")).map_err(|e| e.to_string()),
            Err("foreign Host \"127.0.0.1:8001\" refused".to_owned())
        );
    }

    #[test]
    fn every_response_gets_the_security_headers() {
        let mut headers = HeaderMap::new();
        add_security_headers(&mut headers, DASHBOARD_CSP);
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], DASHBOARD_CSP);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(NODE_CSP.contains("frame-ancestors 'none'"));
        assert!(!NODE_CSP.contains("unsafe-inline"));
    }
}
