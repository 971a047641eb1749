//! The node's HTTP side, the only part that knows HTTP, axum and the API's JSON: the
//! guard every request passes, the one mapping of errors to statuses ([`error`]), the JSON
//! API ([`api`], with its OpenAPI document), the HTML pages and forms ([`web`], rendered by
//! `ui`) and the event stream ([`events`]). Handlers gather plain data from
//! [`crate::core`] and hand it on; they decide nothing.

pub mod api;
pub mod auth;
pub mod error;
pub mod events;
pub mod flash;
mod guard;
pub mod signin;
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
    /// The access rules: token, page host, sign-in links, sessions.
    pub access: Arc<auth::Access>,
    /// Becomes true when the node is stopping: long-lived responses (the event stream) end.
    pub closing: watch::Receiver<bool>,
    /// What refused forms leave for the page they redirect to.
    pub flashes: Arc<flash::Flashes>,
}

/// The whole HTTP surface: the API under `/api`, the pages, the guard, the body limit.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest(api::PREFIX, api::router())
        .merge(web::router())
        .merge(signin::router())
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

impl AppState {
    /// The state for a node serving on `addr` under `access`; `closing` turns true when
    /// the node stops.
    pub fn new(
        node: Arc<Node>,
        addr: SocketAddr,
        access: auth::Access,
        closing: watch::Receiver<bool>,
    ) -> Self {
        let mut allowed_hosts = ui::serve::allowed_hosts(addr);
        allowed_hosts.push(access.page_host().to_owned());
        Self {
            node,
            allowed_hosts: Arc::new(allowed_hosts),
            access: Arc::new(access),
            closing,
            flashes: Arc::default(),
        }
    }
}
