//! The JSON API under `/api`: the automation contract. Thin adapters over [`Node`].
//!
//! Each handler carries a `#[utoipa::path]` annotation and is registered with
//! `utoipa_axum::routes!`, so the served router and the OpenAPI document ([`openapi`], served
//! at `GET /api/openapi.json`) come from the same list and cannot drift apart. Responses are
//! typed structs deriving [`ToSchema`], so the document shows their real shape.
//!
//! The response structs list their fields in alphabetical order: that is the order in which
//! the API has always written its keys (it used to build them as `serde_json` maps).

use std::sync::LazyLock;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::error::NodeError;
use crate::core::service::{BlockedRecord, Cursor, MessageRequest, Node, blocking};
use crate::core::store::{ContactRecord, Entry, IdentityRecord, MessageRecord};
use crate::http::AppState;
use crate::http::error::ApiError;

mod access;
mod contacts;
mod dto;
mod identities;
mod messages;
mod node;
mod openapi;
mod requests;
#[cfg(test)]
mod tests;

pub(crate) use access::may_export_keys;
use access::*;
pub use access::{SessionJson, SessionsJson, SignInJson};
use contacts::*;
pub use dto::*;
use identities::*;
use messages::*;
use node::*;
use openapi::*;
use requests::*;

/// An API path that names no operation: 404 with the usual error body.
async fn no_such_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::Node(NodeError::NotFound(format!(
        "there is no API operation {method} {PREFIX}{} (see {PREFIX}/openapi.json)",
        uri.path()
    )))
}

/// Where [`router`] is nested in the node's HTTP server.
pub const PREFIX: &str = "/api";

/// The annotated handlers: one `routes!` per path, each listing that path's methods.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_identities, create_identity))
        .routes(routes!(get_identity, delete_identity))
        .routes(routes!(public_key))
        .routes(routes!(invite))
        .routes(routes!(backup))
        .routes(routes!(list_contacts, add_contact))
        .routes(routes!(get_contact, patch_contact, delete_contact))
        .routes(routes!(list_messages, send_message))
        .routes(routes!(get_message))
        .routes(routes!(mark_read))
        .routes(routes!(list_requests))
        .routes(routes!(accept_request))
        .routes(routes!(delete_request))
        .routes(routes!(block_request))
        .routes(routes!(list_blocked))
        .routes(routes!(unblock))
        .routes(routes!(events))
        .routes(routes!(status))
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(sign_in))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(openapi_json))
}

/// The `/api` routes.
pub fn router() -> Router<AppState> {
    api_routes()
        .split_for_parts()
        .0
        .fallback(no_such_route)
        .layer(axum::middleware::map_response(json_rejections))
}

/// axum's own refusals of a path or query it cannot parse (`?limit=abc`, say) are plain
/// text; under /api every error is `{"error", "code"}`, so rewrite them, keeping status and
/// words.
async fn json_rejections(response: axum::response::Response) -> axum::response::Response {
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let status = response.status();
    if !(plain && status.is_client_error()) {
        return response;
    }
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let words = String::from_utf8_lossy(&bytes).trim().to_owned();
    (
        status,
        Json(ErrorJson {
            error: words,
            code: "invalid_request".to_owned(),
        }),
    )
        .into_response()
}

/// The OpenAPI document of every route of [`router`], with paths as served (under `/api`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, paths) = api_routes().split_for_parts();
    with_guard_responses(ApiDoc::openapi().nest(PREFIX, paths))
}

/// A `201 Created` with the new resource's URL in `Location` and its JSON.
struct Created<T>(String, T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> axum::response::Response {
        // Ids and names are `[A-Za-z0-9._-]` and message ids hex: nothing in a path built
        // from them needs escaping.
        (
            StatusCode::CREATED,
            [(axum::http::header::LOCATION, self.0)],
            Json(self.1),
        )
            .into_response()
    }
}

fn identity_url(id: &str) -> String {
    format!("{PREFIX}/identities/{id}")
}

fn contact_url(id: &str, contact: &str) -> String {
    format!("{PREFIX}/identities/{id}/contacts/{contact}")
}

/// A JSON body that did not parse: 400 naming what is wrong (413 when too large).
pub fn json_error(e: JsonRejection) -> NodeError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return NodeError::TooLarge("request body too large".into());
    }
    NodeError::invalid("invalid_json", e.body_text())
}
