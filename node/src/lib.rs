//! The Secure Messenger node: a user's own program.
//!
//! It holds the user's identities (RSA private keys, loaded once) and contacts in a local
//! sled store, seals outgoing messages into an outbox that a sync loop delivers to the
//! mailbox, opens and stores incoming ones exactly once, and serves a web UI and a JSON API
//! on 127.0.0.1.
//!
//! - [`service`]: the node's operations; [`store`]: its records on sled.
//! - [`engine`]: the sync decisions, free of I/O; [`sync`]: the QUIC loop that carries them out.
//! - [`invite`]: invite codes.
//! - [`api`] and [`web`]: HTTP adapters (JSON, and HTML forms rendered by `ui`).
//!
//! Browser safety: every request must carry the node's own Host (DNS rebinding), and a
//! state-changing request with a foreign Origin or Referer is refused (CSRF). Every response
//! carries a strict Content-Security-Policy and `frame-ancestors 'none'`.

pub mod api;
pub mod engine;
pub mod error;
pub mod events;
pub mod invite;
pub mod service;
pub mod store;
pub mod sync;
pub mod web;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use config::{MailboxAddress, NodeConfig, ensure_private_dir};
use sha2::Digest as _;
use tokio::sync::watch;
use tracing::info;

use crate::error::NodeError;
use crate::service::Node;

/// The setting holding a mailbox address saved from the UI or API.
pub const MAILBOX_SETTING: &str = "mailbox";

/// The largest request body accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Shared state of the HTTP handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The node.
    pub node: Arc<Node>,
    /// The mailbox address in use; the sync loop follows it.
    pub mailbox: Arc<watch::Sender<MailboxAddress>>,
    allowed_hosts: Arc<Vec<String>>,
    /// The access token, when the node requires one.
    token: Option<Arc<str>>,
    /// The name of the cookie holding the token in browsers (it includes the port: cookies
    /// ignore ports, and two nodes on one host must not overwrite each other's).
    token_cookie: Arc<str>,
    /// Becomes true when the node is stopping: long-lived responses (the event stream) end.
    pub closing: watch::Receiver<bool>,
}

impl AppState {
    /// The name of the token cookie.
    pub fn token_cookie(&self) -> &str {
        &self.token_cookie
    }
}

/// Whether `headers` carry the access token (or none is required).
pub fn token_matches(state: &AppState, headers: &HeaderMap) -> bool {
    token_given(state, headers)
}

/// What a request may do, given the access token.
fn token_given(state: &AppState, headers: &HeaderMap) -> bool {
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

fn allowed_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut hosts = vec![
        addr.to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    hosts.dedup();
    hosts
}

/// Refuse foreign Host (DNS rebinding) and foreign Origin/Referer on state changes (CSRF).
async fn guard(State(s): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(e) = check_request(&s.allowed_hosts, request.method(), request.headers()) {
        return e.into_response();
    }
    let path = request.uri().path();
    let open_path = path == "/login" || path == ui::STYLESHEET_PATH || path == ui::SCRIPT_PATH;
    if !open_path && !token_given(&s, request.headers()) {
        let refusal = if path.starts_with("/api/") {
            NodeError::Unauthorized(
                "this node requires its access token (Authorization: Bearer <token>)".into(),
            )
            .into_response()
        } else {
            (
                axum::http::StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, error::bearer_challenge())],
                axum::response::Html(ui::login_page(None)),
            )
                .into_response()
        };
        return with_security_headers(refusal);
    }
    with_security_headers(next.run(request).await)
}

fn with_security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn check_request(
    allowed: &[String],
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), NodeError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| NodeError::Forbidden("a Host header is required".into()))?;
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        return Err(NodeError::Forbidden(format!(
            "foreign Host {host:?} refused"
        )));
    }
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
            return Err(NodeError::Forbidden("cross-origin request refused".into()));
        }
    }
    Ok(())
}

/// The key passphrase the configuration names (environment variable or file), if any.
pub fn configured_passphrase(
    config: &NodeConfig,
) -> Result<Option<service::Passphrase>, NodeError> {
    if let Some(path) = &config.passphrase_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            NodeError::invalid(
                "passphrase_file",
                format!("passphrase_file {}: {e}", path.display()),
            )
        })?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        return Ok(Some(service::Passphrase::new(line)));
    }
    if let Some(var) = &config.passphrase_env {
        let value = std::env::var(var).map_err(|_| {
            NodeError::invalid(
                "passphrase_env",
                format!("passphrase_env names {var}, which is not set"),
            )
        })?;
        return Ok(Some(service::Passphrase::new(value)));
    }
    Ok(None)
}

/// Whether any key file in the data directory is encrypted (and so needs a passphrase).
pub fn keys_are_encrypted(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("keys"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            std::fs::read_to_string(entry.path())
                .is_ok_and(|t| t.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        })
}

/// A running node.
#[derive(Debug)]
pub struct Running {
    /// The HTTP address (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// The node.
    pub node: Arc<Node>,
    http: tokio::task::JoinHandle<()>,
    sync: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    closing: watch::Sender<bool>,
}

impl Running {
    /// Stop serving.
    pub async fn shutdown(mut self) {
        // End open event streams first: graceful shutdown waits for every response.
        let _ = self.closing.send(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.sync.abort();
        // A client that keeps a request open cannot hold the node up for long.
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.http)
            .await
            .is_err()
        {
            self.http.abort();
        }
    }
}

/// Start a node: open the store and keys, start syncing, serve HTTP.
///
/// `overridden` lists the config keys given by environment or flags for this run: a
/// mailbox address saved from the UI is used unless `mailbox` is among them.
pub async fn start(
    config: &NodeConfig,
    overridden: &[String],
    passphrase: Option<service::Passphrase>,
) -> Result<Running, NodeError> {
    ensure_private_dir(&config.data_dir)?;
    let node = Arc::new(Node::open(
        &config.data_dir,
        config.max_body_bytes,
        passphrase,
    )?);
    let saved: Option<MailboxAddress> = node.setting(MAILBOX_SETTING)?.and_then(|s| s.parse().ok());
    let mailbox = match saved {
        Some(saved) if overridden.iter().any(|k| k == "mailbox") => {
            info!(saved = %saved, using = %config.mailbox, "the mailbox given at start overrides the saved setting for this run");
            config.mailbox.clone()
        }
        Some(saved) => saved,
        None => config.mailbox.clone(),
    };
    let (tx, rx) = watch::channel(mailbox);
    let (closing, closing_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| NodeError::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr()?;
    let state = AppState {
        node: node.clone(),
        mailbox: Arc::new(tx),
        allowed_hosts: Arc::new(allowed_hosts(addr)),
        token: config
            .access_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Arc::from),
        token_cookie: Arc::from(format!("sm_token_{}", addr.port())),
        closing: closing_rx,
    };
    let app = Router::new()
        .nest("/api", api::router())
        .merge(web::router())
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state);
    let sync = tokio::spawn(sync::run(node.clone(), rx, config.pull_interval));
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    info!(%addr, "node serving");
    Ok(Running {
        addr,
        node,
        http,
        sync,
        shutdown: Some(shutdown),
        closing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_origin_checks() {
        let allowed = allowed_hosts("127.0.0.1:8000".parse().expect("addr"));
        let h = |pairs: &[(header::HeaderName, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(k.clone(), HeaderValue::from_str(v).expect("header"));
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
