//! A request's Delete and Block, and Unblock: each returns to the conversation that was open.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Selection, failed, location};
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

pub(super) async fn delete_request(
    State(s): State<AppState>,
    Form(f): Form<RequestAction>,
) -> Response {
    let sel = Selection::of(&f.identity, f.contact.as_deref());
    match s
        .node
        .delete_request(f.identity.clone(), f.fingerprint.clone())
        .await
    {
        Ok(()) => Redirect::to(&f.back(&s.node)).into_response(),
        Err(e) => failed(&s, &sel, e, Flash::default()),
    }
}

pub(super) async fn block_request(
    State(s): State<AppState>,
    Form(f): Form<RequestAction>,
) -> Response {
    let sel = Selection::of(&f.identity, f.contact.as_deref());
    match s
        .node
        .block_request(f.identity.clone(), f.fingerprint.clone())
        .await
    {
        Ok(_) => Redirect::to(&f.back(&s.node)).into_response(),
        Err(e) => failed(&s, &sel, e, Flash::default()),
    }
}

pub(super) async fn unblock(State(s): State<AppState>, Form(f): Form<RequestAction>) -> Response {
    let sel = Selection::of(&f.identity, f.contact.as_deref());
    match s
        .node
        .unblock(f.identity.clone(), f.fingerprint.clone())
        .await
    {
        Ok(()) => Redirect::to(&f.back(&s.node)).into_response(),
        Err(e) => failed(&s, &sel, e, Flash::default()),
    }
}
