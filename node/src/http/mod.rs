//! The node's HTTP side, the only part that knows HTTP, axum and the API's JSON: the
//! guard every request passes, the one mapping of errors to statuses ([`error`]), the JSON
//! API ([`api`], with its OpenAPI document), the HTML pages and forms ([`web`], rendered by
//! `ui`) and the event stream ([`events`]). Handlers gather plain data from
//! [`crate::core`] and hand it on; they decide nothing.

pub mod api;
pub mod error;
pub mod events;
mod guard;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use tokio::sync::watch;

use crate::core::service::Node;

/// The largest request body accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Shared state of the HTTP handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The node.
    pub node: Arc<Node>,
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

/// The whole HTTP surface: the API under `/api`, the pages, the guard, the body limit.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest(api::PREFIX, api::router())
        .merge(web::router())
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

impl AppState {
    /// The state for a node serving on `addr`, with an optional access token; `closing`
    /// turns true when the node stops.
    pub fn new(
        node: Arc<Node>,
        addr: SocketAddr,
        token: Option<&str>,
        closing: watch::Receiver<bool>,
    ) -> Self {
        Self {
            node,
            allowed_hosts: Arc::new(ui::serve::allowed_hosts(addr)),
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
            token_cookie: Arc::from(format!("sm_token_{}", addr.port())),
            closing,
        }
    }
}
