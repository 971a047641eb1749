//! A request's Delete and Block, and Unblock: each returns to the conversation that was open.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Selection, failed, location};
use crate::core::error::NodeError;
use crate::core::service::Node;
use crate::http::AppState;
use crate::http::flash::Flash;

/// A request's action: whose, and the conversation open when it was taken (kept).
#[derive(Deserialize)]
pub(super) struct RequestAction {
    identity: String,
    fingerprint: String,
    #[serde(default)]
    contact: Option<String>,
}

impl RequestAction {
    /// The page to return to: the open conversation, if it still is one.
    fn back(&self, node: &Node) -> String {
        let contact = self
            .contact
            .as_deref()
            .filter(|c| node.contact(&self.identity, c).is_ok());
        location(&self.identity, contact)
    }
}

impl RequestAction {
    /// After the node's answer to this action: back to the page it came from, or the
    /// error with it.
    fn answer<T>(&self, s: &AppState, done: Result<T, NodeError>) -> Response {
        match done {
            Ok(_) => Redirect::to(&self.back(&s.node)).into_response(),
            Err(e) => {
                let sel = Selection::of(&self.identity, self.contact.as_deref());
                failed(s, &sel, e, Flash::default())
            }
        }
    }
}

pub(super) async fn delete_request(
    State(s): State<AppState>,
    Form(f): Form<RequestAction>,
) -> Response {
    let done = s
        .node
        .delete_request(f.identity.clone(), f.fingerprint.clone())
        .await;
    f.answer(&s, done)
}

pub(super) async fn block_request(
    State(s): State<AppState>,
    Form(f): Form<RequestAction>,
) -> Response {
    let done = s
        .node
        .block_request(f.identity.clone(), f.fingerprint.clone())
        .await;
    f.answer(&s, done)
}

pub(super) async fn unblock(State(s): State<AppState>, Form(f): Form<RequestAction>) -> Response {
    let done = s
        .node
        .unblock(f.identity.clone(), f.fingerprint.clone())
        .await;
    f.answer(&s, done)
}
