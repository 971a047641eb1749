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
use crate::core::service::{Node, Request};
use crate::core::store::{ContactRecord, Entry, IdentityRecord, MessageRecord};
use crate::http::AppState;
use crate::http::error::ApiError;

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
        .routes(routes!(events))
        .routes(routes!(status))
        .routes(routes!(get_settings, put_settings))
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

// ---------------------------------------------------------------------------------------
// The document's frame: info, tags, security, and the responses every operation can give.
// ---------------------------------------------------------------------------------------

const API_DESCRIPTION: &str = "\
The JSON API of a Secure Messenger node, the automation contract. The node serves it on \
127.0.0.1 only.

**Errors** come with a 4xx or 5xx status and a JSON body `{\"error\": \"...\", \"code\": \"...\"}`: \
`error` is words for people, `code` a stable machine code to branch on (`not_found`, \
`already_exists`, `too_large`, `forbidden`, `internal`, or a specific one for bad input such as \
`invalid_json` or `invalid_name`). A `201 Created` carries the new resource's URL in \
`Location`.

**Host and Origin**: every request must carry the node's own `Host` (`127.0.0.1:PORT`, \
`localhost:PORT` or `[::1]:PORT`), against DNS rebinding; a request that changes state (POST, PUT, \
PATCH, DELETE) with an `Origin` or `Referer` of another origin is refused, against cross-site \
requests. Both refusals are 403 `forbidden`.

**Access token**: a node configured with an access token wants it on every request as \
`Authorization: Bearer <token>` (browsers keep it in a cookie set by `/login`) and answers 401 \
`unauthorized` with `WWW-Authenticate: Bearer` without it. A node without a token needs none.

Request bodies are JSON objects of at most 1 MiB; unknown fields are refused. Times are RFC 3339 \
UTC with milliseconds.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Secure Messenger node API",
        version = env!("CARGO_PKG_VERSION"),
        description = API_DESCRIPTION,
    ),
    components(schemas(ErrorJson)),
    modifiers(&Guard),
    tags(
        (name = "identities", description = "The user's identities: keys, invites, backups."),
        (name = "contacts", description = "Contacts of an identity."),
        (name = "messages", description = "Conversations with a contact."),
        (name = "requests", description = "Messages from senders who are not contacts."),
        (name = "node", description = "The node itself: status, settings, live events, this document."),
    )
)]
struct ApiDoc;

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";
/// The name of the shared 403 response.
const FORBIDDEN: &str = "Forbidden";
/// The name of the shared 401 response.
const UNAUTHORIZED: &str = "Unauthorized";

/// What the node's request guard adds to every operation: the optional bearer token, its
/// 401 refusal (missing or wrong token), and the 403 refusal (foreign Host, cross-origin
/// change).
struct Guard;

impl Modify for Guard {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            BEARER.into(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The node's access token, when it is configured with one.",
                    ))
                    .build(),
            ),
        );
        let refusal = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorJson")))
                            .build(),
                    )
                    .build(),
            )
        };
        components.responses.insert(
            FORBIDDEN.into(),
            refusal(
                "Refused (`forbidden`): a foreign Host, or a cross-origin request that changes \
                 state.",
            ),
        );
        components.responses.insert(
            UNAUTHORIZED.into(),
            refusal(
                "Refused (`unauthorized`, with `WWW-Authenticate: Bearer`): the node wants its \
                 access token and the request has none, or a wrong one.",
            ),
        );
        // The token is optional: no requirement at all, or the bearer token.
        openapi.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
        ]);
    }
}

/// Add the guard's 401 and 403 to every operation of `openapi` (after the paths are in).
fn with_guard_responses(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, name) in [("401", UNAUTHORIZED), ("403", FORBIDDEN)] {
                operation
                    .responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
            }
        }
    }
    openapi
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

/// The document as served: built once.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(openapi);

// ---------------------------------------------------------------------------------------
// Response bodies.
// ---------------------------------------------------------------------------------------

/// An error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorJson {
    /// What went wrong, in words for people.
    #[schema(example = "no identity alice")]
    pub error: String,
    /// A stable machine code.
    #[schema(example = "not_found")]
    pub code: String,
}

/// An identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct IdentityJson {
    /// When it was made (RFC 3339).
    #[schema(format = DateTime, example = "2026-11-25T21:40:00.000Z")]
    pub created_at: String,
    /// An optional name for people.
    pub display_name: Option<String>,
    /// The key's fingerprint, hex.
    pub fingerprint: String,
    /// The id, `[A-Za-z0-9._-]{1,64}`.
    #[schema(example = "alice")]
    pub id: String,
}

impl From<&IdentityRecord> for IdentityJson {
    fn from(r: &IdentityRecord) -> Self {
        Self {
            created_at: rfc3339(r.created_ms),
            display_name: r.display_name.clone(),
            fingerprint: r.fingerprint.clone(),
            id: r.id.clone(),
        }
    }
}

/// The identities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct IdentitiesJson {
    /// All identities of this node.
    pub identities: Vec<IdentityJson>,
}

/// A contact of an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContactJson {
    /// When it was added (RFC 3339).
    #[schema(format = DateTime)]
    pub added_at: String,
    /// Their key's fingerprint, hex.
    pub fingerprint: String,
    /// The mailbox their invite named, if they were added by invite.
    pub mailbox: Option<String>,
    /// The name, `[A-Za-z0-9._-]{1,64}`.
    #[schema(example = "bob")]
    pub name: String,
    /// Their public key, SPKI PEM.
    pub public_key: String,
    /// The number both sides compare to verify each other's keys.
    pub safety_number: Option<String>,
    /// Marked verified after comparing safety numbers.
    pub verified: bool,
    /// Words when their invite named another mailbox than the one in use.
    pub warning: Option<String>,
}

/// The contacts of an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContactsJson {
    /// All contacts, by name.
    pub contacts: Vec<ContactJson>,
}

/// The `kind` of a message entry: always `message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// A message.
    Message,
}

/// The `kind` of a gap entry: always `gap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GapKind {
    /// A gap marker.
    Gap,
}

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageDirection {
    /// Received.
    In,
    /// Sent by this identity.
    Out,
}

impl From<crate::core::store::Direction> for MessageDirection {
    fn from(d: crate::core::store::Direction) -> Self {
        match d {
            crate::core::store::Direction::In => Self::In,
            crate::core::store::Direction::Out => Self::Out,
        }
    }
}

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Sealed and in the outbox.
    Pending,
    /// Stored by the mailbox.
    Sent,
    /// The recipient's node confirmed it.
    Delivered,
    /// Received from a contact.
    Received,
    /// Could not be sent.
    Failed,
}

impl From<crate::core::store::Status> for MessageStatus {
    fn from(s: crate::core::store::Status) -> Self {
        use crate::core::store::Status;
        match s {
            Status::Pending => Self::Pending,
            Status::Sent => Self::Sent,
            Status::Delivered => Self::Delivered,
            Status::Received => Self::Received,
            Status::Failed => Self::Failed,
        }
    }
}

/// A message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MessageJson {
    /// In or out.
    pub direction: MessageDirection,
    /// Why sending failed, in words (only when it did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The message id, hex.
    pub id: String,
    #[schema(inline)]
    pub kind: MessageKind,
    /// When it was sent, as signed by the sender (RFC 3339).
    #[schema(format = DateTime)]
    pub sent_at: String,
    /// The sender's sequence number in this conversation.
    pub seq: u64,
    /// Delivery state.
    pub status: MessageStatus,
    /// The text.
    pub text: String,
}

impl From<&MessageRecord> for MessageJson {
    fn from(m: &MessageRecord) -> Self {
        Self {
            direction: m.direction.into(),
            error: m.error.clone(),
            id: m.id.clone(),
            kind: MessageKind::Message,
            sent_at: rfc3339(m.sent_ms),
            seq: m.seq,
            status: m.status.into(),
            text: m.text.clone(),
        }
    }
}

/// A gap marker: messages the chain says are missing here (expired or lost on the way).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct GapJson {
    /// When the gap was noticed (RFC 3339).
    #[schema(format = DateTime)]
    pub detected_at: String,
    #[schema(inline)]
    pub kind: GapKind,
    /// How many messages are missing.
    pub missing: u64,
}

/// A conversation entry: a message, or a gap marker; `kind` tells which.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "kind", mapping(
    ("message" = "#/components/schemas/MessageJson"),
    ("gap" = "#/components/schemas/GapJson"),
)))]
pub enum EntryJson {
    /// A message.
    Message(MessageJson),
    /// A gap marker.
    Gap(GapJson),
}

impl From<&Entry> for EntryJson {
    fn from(e: &Entry) -> Self {
        match e {
            Entry::Message(m) => Self::Message(m.into()),
            Entry::Gap {
                missing,
                detected_ms,
            } => Self::Gap(GapJson {
                detected_at: rfc3339(*detected_ms),
                kind: GapKind::Gap,
                missing: *missing,
            }),
        }
    }
}

/// A page of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MessagesJson {
    /// Newest first.
    pub messages: Vec<EntryJson>,
}

/// An identity's invite code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct InviteJson {
    /// The code: display name, public key and this node's mailbox. Give it to someone who
    /// adds you as a contact.
    pub invite: String,
}

/// A backup of an identity's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct BackupJson {
    /// The private key, encrypted PKCS#8 PEM under the passphrase given.
    pub backup: String,
}

/// Messages from a sender who is not a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RequestJson {
    /// The sender's fingerprint, hex.
    pub fingerprint: String,
    /// Their messages, oldest first.
    pub messages: Vec<MessageJson>,
    /// The sender's public key, SPKI PEM.
    pub public_key: String,
}

impl From<&Request> for RequestJson {
    fn from(r: &Request) -> Self {
        Self {
            fingerprint: r.fingerprint.clone(),
            messages: r.messages.iter().map(MessageJson::from).collect(),
            public_key: r.public_key.clone(),
        }
    }
}

/// The pending requests of an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RequestsJson {
    /// One per sender.
    pub requests: Vec<RequestJson>,
}

/// The connection to the mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MailboxStatusJson {
    /// The mailbox address in use, with the certificate fingerprint once known.
    pub address: String,
    /// The last error, in words.
    pub last_error: Option<String>,
    /// When the last successful sync ended (RFC 3339).
    #[schema(format = DateTime)]
    pub last_sync: Option<String>,
    /// `online`, `connecting` or `offline`.
    #[schema(example = "online")]
    pub state: String,
}

/// The node's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusJson {
    /// The connection to the mailbox.
    pub mailbox: MailboxStatusJson,
    /// How many written messages wait to be sent.
    pub outbox: usize,
}

/// The node's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SettingsJson {
    /// The mailbox address in use.
    pub mailbox: String,
}

// ---------------------------------------------------------------------------------------
// The JSON shapes as `Value`s, for the event stream.
// ---------------------------------------------------------------------------------------

pub use config::time::rfc3339;

fn contact_json(node: &Node, id: &str, c: &ContactRecord) -> ContactJson {
    ContactJson {
        added_at: rfc3339(c.added_ms),
        fingerprint: c.fingerprint.clone(),
        mailbox: c.mailbox.clone(),
        name: c.name.clone(),
        public_key: c.public_key.clone(),
        safety_number: node.safety_number(id, c).ok(),
        verified: c.verified,
        warning: node.mailbox_warning(c),
    }
}

/// A value as JSON (these types always serialize).
fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// A conversation entry as the API shows it: a message, or a gap marker.
pub fn entry_json(e: &Entry) -> Value {
    to_value(EntryJson::from(e))
}

/// A message as the API shows it.
pub fn message_json(m: &MessageRecord) -> Value {
    to_value(MessageJson::from(m))
}

fn status_body(node: &Node) -> StatusJson {
    let st = node.status();
    StatusJson {
        mailbox: MailboxStatusJson {
            address: st.mailbox,
            last_error: st.last_error,
            last_sync: st.last_sync_ms.map(rfc3339),
            state: st.state.to_owned(),
        },
        outbox: node.outbox_len(),
    }
}

/// The status JSON (also sent on the event stream).
pub fn status_json(node: &Node) -> Value {
    to_value(status_body(node))
}

// ---------------------------------------------------------------------------------------
// Handlers.
// ---------------------------------------------------------------------------------------

/// List the identities.
#[utoipa::path(
    get,
    path = "/identities",
    tag = "identities",
    responses(
        (status = 200, description = "The identities", body = IdentitiesJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn list_identities(State(s): State<AppState>) -> Result<Json<IdentitiesJson>, ApiError> {
    let identities = s
        .node
        .identities()?
        .iter()
        .map(IdentityJson::from)
        .collect();
    Ok(Json(IdentitiesJson { identities }))
}

/// A new identity: a new key, or one restored from a backup.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewIdentity {
    /// The id, `[A-Za-z0-9._-]{1,64}`.
    #[schema(example = "alice")]
    id: String,
    /// An optional name for people (at most 100 characters).
    #[serde(default)]
    display_name: Option<String>,
    /// Restore from this backup (encrypted PKCS#8 PEM) instead of making a new key.
    #[serde(default)]
    backup: Option<String>,
    /// The backup's passphrase (with `backup` only).
    #[serde(default)]
    passphrase: Option<String>,
}

/// Make an identity, or restore one from a backup.
#[utoipa::path(
    post,
    path = "/identities",
    tag = "identities",
    request_body = NewIdentity,
    responses(
        (status = 201, description = "Made (or restored)", body = IdentityJson,
            headers(("Location" = String, description = "The new resource's URL"))),
        (status = 400, description = "Bad input: `invalid_json`, `invalid_name`, \
            `invalid_display_name`, `missing_passphrase`, `invalid_backup`", body = ErrorJson),
        (status = 409, description = "The id, or the restored key, exists already (`already_exists`)",
            body = ErrorJson),
        (status = 413, description = "The body is too large (`too_large`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn create_identity(
    State(s): State<AppState>,
    body: Result<Json<NewIdentity>, JsonRejection>,
) -> Result<Created<IdentityJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let r = match (body.backup, body.passphrase) {
        (None, None) => s.node.create_identity(body.id, body.display_name).await?,
        (Some(backup), Some(passphrase)) => {
            s.node
                .restore_identity(body.id, body.display_name, backup, passphrase)
                .await?
        }
        _ => {
            return Err(ApiError::invalid(
                "missing_passphrase",
                "a restore needs both backup and passphrase",
            ));
        }
    };
    Ok(Created(identity_url(&r.id), IdentityJson::from(&r)))
}

/// One identity.
#[utoipa::path(
    get,
    path = "/identities/{id}",
    tag = "identities",
    params(("id" = String, Path, description = "The identity's id")),
    responses(
        (status = 200, description = "The identity", body = IdentityJson),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn get_identity(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<IdentityJson>, ApiError> {
    Ok(Json(IdentityJson::from(&s.node.identity_record(&id)?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Confirm {
    /// The identity's id again: deleting an identity destroys its key.
    confirm: Option<String>,
}

/// Delete an identity, its key, contacts and messages.
#[utoipa::path(
    delete,
    path = "/identities/{id}",
    tag = "identities",
    params(("id" = String, Path, description = "The identity's id"), Confirm),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`?confirm=<id>` missing or different (`confirmation_required`)",
            body = ErrorJson),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn delete_identity(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Confirm>,
) -> Result<StatusCode, ApiError> {
    s.node.identity_record(&id)?;
    if q.confirm.as_deref() != Some(id.as_str()) {
        return Err(ApiError::invalid(
            "confirmation_required",
            format!("deleting an identity destroys its key: repeat its id as ?confirm={id}"),
        ));
    }
    s.node.delete_identity(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An identity's public key.
#[utoipa::path(
    get,
    path = "/identities/{id}/public-key",
    tag = "identities",
    params(("id" = String, Path, description = "The identity's id")),
    responses(
        (status = 200, description = "The public key, SPKI PEM", body = String,
            content_type = "application/x-pem-file"),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
    )
)]
async fn public_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let key = s.node.identity(&id)?.public_key().to_pem();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        key,
    ))
}

/// An identity's invite code.
#[utoipa::path(
    get,
    path = "/identities/{id}/invite",
    tag = "identities",
    params(("id" = String, Path, description = "The identity's id")),
    responses(
        (status = 200, description = "The invite code", body = InviteJson),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn invite(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<InviteJson>, ApiError> {
    Ok(Json(InviteJson {
        invite: s.node.invite(&id)?,
    }))
}

/// The passphrase to encrypt a backup with.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    /// At least 8 characters.
    passphrase: String,
}

/// Back up an identity's key, encrypted under a passphrase.
#[utoipa::path(
    post,
    path = "/identities/{id}/backup",
    tag = "identities",
    params(("id" = String, Path, description = "The identity's id")),
    request_body = BackupRequest,
    responses(
        (status = 200, description = "The encrypted key", body = BackupJson),
        (status = 400, description = "Bad input: `invalid_json`, `weak_passphrase`", body = ErrorJson),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
        (status = 413, description = "The body is too large (`too_large`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn backup(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<BackupRequest>, JsonRejection>,
) -> Result<Json<BackupJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let pem = s.node.backup(id, body.passphrase).await?;
    Ok(Json(BackupJson { backup: pem }))
}

/// List an identity's contacts.
#[utoipa::path(
    get,
    path = "/identities/{id}/contacts",
    tag = "contacts",
    params(("id" = String, Path, description = "The identity's id")),
    responses(
        (status = 200, description = "The contacts", body = ContactsJson),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn list_contacts(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ContactsJson>, ApiError> {
    let contacts = s
        .node
        .contacts(&id)?
        .iter()
        .map(|c| contact_json(&s.node, &id, c))
        .collect();
    Ok(Json(ContactsJson { contacts }))
}

/// A new contact: a name, and exactly one of a public key or an invite code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewContact {
    /// The name, `[A-Za-z0-9._-]{1,64}`.
    #[schema(example = "bob")]
    name: String,
    /// Their public key, SPKI PEM.
    #[serde(default)]
    public_key: Option<String>,
    /// Their invite code.
    #[serde(default)]
    invite: Option<String>,
}

/// Add a contact, by public key or invite code.
#[utoipa::path(
    post,
    path = "/identities/{id}/contacts",
    tag = "contacts",
    params(("id" = String, Path, description = "The identity's id")),
    request_body = NewContact,
    responses(
        (status = 201, description = "Added", body = ContactJson,
            headers(("Location" = String, description = "The new resource's URL"))),
        (status = 400, description = "Bad input: `invalid_json`, `invalid_name`, `missing_key`, \
            `invalid_public_key`, `invalid_invite`", body = ErrorJson),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
        (status = 409, description = "The name or the key is a contact already (`already_exists`)",
            body = ErrorJson),
        (status = 413, description = "The body is too large (`too_large`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn add_contact(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<NewContact>, JsonRejection>,
) -> Result<Created<ContactJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let c = match (body.public_key, body.invite) {
        (Some(pem), None) => s.node.add_contact(id.clone(), body.name, pem).await?,
        (None, Some(code)) => {
            s.node
                .add_contact_from_invite(id.clone(), body.name, &code)
                .await?
        }
        _ => {
            return Err(ApiError::invalid(
                "missing_key",
                "give exactly one of public_key or invite",
            ));
        }
    };
    Ok(Created(
        contact_url(&id, &c.name),
        contact_json(&s.node, &id, &c),
    ))
}

/// One contact.
#[utoipa::path(
    get,
    path = "/identities/{id}/contacts/{contact}",
    tag = "contacts",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("contact" = String, Path, description = "The contact's name"),
    ),
    responses(
        (status = 200, description = "The contact", body = ContactJson),
        (status = 404, description = "No such identity or contact (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn get_contact(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
) -> Result<Json<ContactJson>, ApiError> {
    let c = s.node.contact(&id, &contact)?;
    Ok(Json(contact_json(&s.node, &id, &c)))
}

/// A change to a contact.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ContactChange {
    /// Whether the safety numbers were compared and matched.
    verified: bool,
}

/// Mark a contact verified, or not.
#[utoipa::path(
    patch,
    path = "/identities/{id}/contacts/{contact}",
    tag = "contacts",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("contact" = String, Path, description = "The contact's name"),
    ),
    request_body = ContactChange,
    responses(
        (status = 200, description = "The contact as changed", body = ContactJson),
        (status = 400, description = "Bad input (`invalid_json`)", body = ErrorJson),
        (status = 404, description = "No such identity or contact (`not_found`)", body = ErrorJson),
        (status = 413, description = "The body is too large (`too_large`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn patch_contact(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
    body: Result<Json<ContactChange>, JsonRejection>,
) -> Result<Json<ContactJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let c = s
        .node
        .set_verified(id.clone(), contact, body.verified)
        .await?;
    Ok(Json(contact_json(&s.node, &id, &c)))
}

/// Delete a contact and the conversation with it.
#[utoipa::path(
    delete,
    path = "/identities/{id}/contacts/{contact}",
    tag = "contacts",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("contact" = String, Path, description = "The contact's name"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such identity or contact (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn delete_contact(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.node.delete_contact(id, contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// How many entries, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Page back: only entries older than the message with this id.
    before: Option<String>,
}

/// A page of the conversation with a contact, newest first.
#[utoipa::path(
    get,
    path = "/identities/{id}/contacts/{contact}/messages",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("contact" = String, Path, description = "The contact's name"),
        Page,
    ),
    responses(
        (status = 200, description = "Messages and gap markers, newest first", body = MessagesJson),
        (status = 400, description = "Bad input: `invalid_limit`, `invalid_before`", body = ErrorJson),
        (status = 404, description = "No such identity, contact, or `before` message (`not_found`)",
            body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn list_messages(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Result<Json<MessagesJson>, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_limit",
            "limit: must be 1 to 1000",
        ));
    }
    let messages = s
        .node
        .messages(&id, &contact, page.before.as_deref(), limit)?
        .iter()
        .map(EntryJson::from)
        .collect();
    Ok(Json(MessagesJson { messages }))
}

/// A message to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    /// The text.
    text: String,
}

/// Send a message: it is sealed and queued, and goes out with the next sync.
#[utoipa::path(
    post,
    path = "/identities/{id}/contacts/{contact}/messages",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("contact" = String, Path, description = "The contact's name"),
    ),
    request_body = NewMessage,
    responses(
        (status = 201, description = "Queued (status `pending`)", body = MessageJson,
            headers(("Location" = String, description = "The new resource's URL"))),
        (status = 400, description = "Bad input: `invalid_json`, an empty text", body = ErrorJson),
        (status = 404, description = "No such identity or contact (`not_found`)", body = ErrorJson),
        (status = 413, description = "The body or the text is too large (`too_large`)",
            body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn send_message(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
    body: Result<Json<NewMessage>, JsonRejection>,
) -> Result<Created<MessageJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let m = s
        .node
        .send_text(id.clone(), contact.clone(), body.text)
        .await?;
    let url = format!("{}/messages/{}", contact_url(&id, &contact), m.id);
    Ok(Created(url, MessageJson::from(&m)))
}

/// One message, by its id.
#[utoipa::path(
    get,
    path = "/identities/{id}/contacts/{contact}/messages/{message_id}",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("contact" = String, Path, description = "The contact's name"),
        ("message_id" = String, Path, description = "The message id, hex"),
    ),
    responses(
        (status = 200, description = "The message", body = MessageJson),
        (status = 404, description = "No such identity, contact or message in this conversation \
            (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn get_message(
    State(s): State<AppState>,
    Path((id, contact, message_id)): Path<(String, String, String)>,
) -> Result<Json<MessageJson>, ApiError> {
    Ok(Json(MessageJson::from(&s.node.message(
        &id,
        &contact,
        &message_id,
    )?)))
}

/// Mark a conversation read up to its newest message (the page calls this when it shows a
/// message live).
#[utoipa::path(
    post,
    path = "/identities/{id}/contacts/{contact}/read",
    tag = "messages",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("contact" = String, Path, description = "The contact's name"),
    ),
    responses(
        (status = 204, description = "Marked read"),
        (status = 404, description = "No such identity or contact (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn mark_read(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.node.contact(&id, &contact)?;
    let node = s.node.clone();
    crate::core::service::blocking(move || node.mark_read(&id, &contact)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the messages from senders who are not contacts.
#[utoipa::path(
    get,
    path = "/identities/{id}/requests",
    tag = "requests",
    params(("id" = String, Path, description = "The identity's id")),
    responses(
        (status = 200, description = "One entry per sender", body = RequestsJson),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn list_requests(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RequestsJson>, ApiError> {
    let requests = s
        .node
        .requests(&id)?
        .iter()
        .map(RequestJson::from)
        .collect();
    Ok(Json(RequestsJson { requests }))
}

/// The name to accept a sender under.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Accept {
    /// The contact's name, `[A-Za-z0-9._-]{1,64}`.
    name: String,
}

/// Accept a sender as a contact; their messages move into the conversation.
#[utoipa::path(
    post,
    path = "/identities/{id}/requests/{fingerprint}/accept",
    tag = "requests",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("fingerprint" = String, Path, description = "The sender's fingerprint, hex"),
    ),
    request_body = Accept,
    responses(
        (status = 201, description = "The new contact", body = ContactJson,
            headers(("Location" = String, description = "The new resource's URL"))),
        (status = 400, description = "Bad input: `invalid_json`, `invalid_name`", body = ErrorJson),
        (status = 404, description = "No such identity or request (`not_found`)", body = ErrorJson),
        (status = 409, description = "The name is a contact already (`already_exists`)",
            body = ErrorJson),
        (status = 413, description = "The body is too large (`too_large`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn accept_request(
    State(s): State<AppState>,
    Path((id, fingerprint)): Path<(String, String)>,
    body: Result<Json<Accept>, JsonRejection>,
) -> Result<Created<ContactJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let c = s
        .node
        .accept_request(id.clone(), fingerprint, body.name)
        .await?;
    Ok(Created(
        contact_url(&id, &c.name),
        contact_json(&s.node, &id, &c),
    ))
}

/// Drop a sender's messages.
#[utoipa::path(
    delete,
    path = "/identities/{id}/requests/{fingerprint}",
    tag = "requests",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("fingerprint" = String, Path, description = "The sender's fingerprint, hex"),
    ),
    responses(
        (status = 204, description = "Dropped"),
        (status = 404, description = "No such identity or request (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn delete_request(
    State(s): State<AppState>,
    Path((id, fingerprint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.node.delete_request(id, fingerprint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Live events (Server-Sent Events).
///
/// Events, each with a JSON `data` line: `connection` (the status, as `GET /api/status`; also
/// sent first), `message` (a stored message or gap marker as in a conversation page, with
/// `identity` and `contact` added), `status` (an outgoing message's new status: `identity`,
/// `contact`, `id`, `status`, `error`), `request` (a message from an unknown sender: `identity`,
/// `fingerprint`). A listener that falls behind gets `resync` and should reload what it shows.
#[utoipa::path(
    get,
    path = "/events",
    tag = "node",
    responses(
        (status = 200, description = "The event stream; it starts with a `connection` event",
            body = String, content_type = "text/event-stream"),
    )
)]
async fn events(state: State<AppState>) -> impl IntoResponse {
    crate::http::events::stream(state).await
}

/// The node's status: the connection to the mailbox, and the outbox.
#[utoipa::path(
    get,
    path = "/status",
    tag = "node",
    responses((status = 200, description = "The status", body = StatusJson))
)]
async fn status(State(s): State<AppState>) -> Json<StatusJson> {
    Json(status_body(&s.node))
}

/// The node's settings.
#[utoipa::path(
    get,
    path = "/settings",
    tag = "node",
    responses((status = 200, description = "The settings", body = SettingsJson))
)]
async fn get_settings(State(s): State<AppState>) -> Json<SettingsJson> {
    Json(SettingsJson {
        mailbox: s.node.status().mailbox,
    })
}

/// New settings: exactly one of a mailbox address or an invite code naming one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The mailbox address, `host:port` with an optional `#` and certificate fingerprint.
    #[serde(default)]
    mailbox: Option<String>,
    /// Take the mailbox from someone's invite code.
    #[serde(default)]
    invite: Option<String>,
}

/// Change the mailbox; it is saved, and the node syncs with it from now on.
#[utoipa::path(
    put,
    path = "/settings",
    tag = "node",
    request_body = Settings,
    responses(
        (status = 200, description = "The settings as changed", body = SettingsJson),
        (status = 400, description = "Bad input: `invalid_json`, `missing_mailbox`, \
            `invalid_mailbox`, `invalid_invite`", body = ErrorJson),
        (status = 413, description = "The body is too large (`too_large`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
async fn put_settings(
    State(s): State<AppState>,
    body: Result<Json<Settings>, JsonRejection>,
) -> Result<Json<SettingsJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let address: config::MailboxAddress = match (body.mailbox, body.invite) {
        (Some(m), None) => m
            .parse()
            .map_err(|e| ApiError::invalid("invalid_mailbox", format!("mailbox: {e}")))?,
        (None, Some(code)) => crate::core::invite::Invite::decode(&code)
            .map_err(|e| ApiError::invalid("invalid_invite", format!("invite: {e}")))?
            .mailbox
            .ok_or_else(|| ApiError::invalid("invalid_invite", "invite: it names no mailbox"))?,
        _ => {
            return Err(ApiError::invalid(
                "missing_mailbox",
                "give exactly one of mailbox or invite",
            ));
        }
    };
    let node = s.node.clone();
    let value = address.to_string();
    tokio::task::spawn_blocking(move || node.save_setting(crate::MAILBOX_SETTING, &value))
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))??;
    s.mailbox.send_replace(address.clone());
    Ok(Json(SettingsJson {
        mailbox: address.to_string(),
    }))
}

/// This document: the OpenAPI description of the node's JSON API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "node",
    responses((status = 200, description = "An OpenAPI 3.1 document", body = Object))
)]
async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(LazyLock::force(&DOCUMENT))
}

/// A JSON body that did not parse: 400 naming what is wrong (413 when too large).
pub fn json_error(e: JsonRejection) -> NodeError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return NodeError::TooLarge("request body too large".into());
    }
    NodeError::invalid("invalid_json", e.body_text())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::core::store::{Direction, Status};

    fn document() -> Value {
        serde_json::to_value(openapi()).expect("the document serializes")
    }

    /// Every operation of the document: (method, path, operation).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
        out
    }

    /// The routes of this module, written out once.
    const ROUTES: &[(&str, &str)] = &[
        ("get", "/identities"),
        ("post", "/identities"),
        ("get", "/identities/{id}"),
        ("delete", "/identities/{id}"),
        ("get", "/identities/{id}/public-key"),
        ("get", "/identities/{id}/invite"),
        ("post", "/identities/{id}/backup"),
        ("get", "/identities/{id}/contacts"),
        ("post", "/identities/{id}/contacts"),
        ("get", "/identities/{id}/contacts/{contact}"),
        ("patch", "/identities/{id}/contacts/{contact}"),
        ("delete", "/identities/{id}/contacts/{contact}"),
        ("get", "/identities/{id}/contacts/{contact}/messages"),
        ("post", "/identities/{id}/contacts/{contact}/messages"),
        (
            "get",
            "/identities/{id}/contacts/{contact}/messages/{message_id}",
        ),
        ("post", "/identities/{id}/contacts/{contact}/read"),
        ("get", "/identities/{id}/requests"),
        ("post", "/identities/{id}/requests/{fingerprint}/accept"),
        ("delete", "/identities/{id}/requests/{fingerprint}"),
        ("get", "/events"),
        ("get", "/status"),
        ("get", "/settings"),
        ("put", "/settings"),
        ("get", "/openapi.json"),
    ];

    #[test]
    fn the_document_is_openapi_3_with_its_info_and_security() {
        let text = serde_json::to_string(&*DOCUMENT).expect("serializes");
        let doc: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(doc, document(), "the served document is openapi()");
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "{}",
            doc["openapi"]
        );
        assert_eq!(doc["info"]["title"], "Secure Messenger node API");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let description = doc["info"]["description"].as_str().expect("description");
        for words in [r#"{"error""#, r#""code""#, "Host", "Origin", "Bearer"] {
            assert!(description.contains(words), "{words:?} in {description}");
        }
        let bearer = &doc["components"]["securitySchemes"][BEARER];
        assert_eq!(bearer["type"], "http");
        assert_eq!(bearer["scheme"], "bearer");
        assert_eq!(
            doc["security"],
            json!([{}, { BEARER: [] }]),
            "the token is optional"
        );
    }

    #[test]
    fn the_document_lists_every_route_and_only_those() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        let expected: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), format!("{PREFIX}{p}")))
            .collect();
        assert_eq!(documented, expected);

        // And the served router has exactly the documented routes. Its Debug output is the
        // only public view of its table: `RouteId(n): "/path"` for the paths, and each route's
        // `allow_header` for its methods (HEAD comes with GET).
        let table = format!("{:?}", router());
        let routes = table.split("fallback_router").next().unwrap_or_default();
        let mut paths = std::collections::BTreeMap::new();
        let mut methods = std::collections::BTreeMap::new();
        for entry in routes.split("RouteId(").skip(1) {
            let Some((id, rest)) = entry.split_once("): ") else {
                continue;
            };
            if let Some(path) = rest.strip_prefix('"') {
                paths.insert(id, path.split('"').next().unwrap_or_default());
            } else if let Some((_, allow)) = rest.split_once("allow_header: Bytes(b\"") {
                methods.insert(id, allow.split('"').next().unwrap_or_default());
            }
        }
        let served: BTreeSet<(String, String)> = paths
            .iter()
            .flat_map(|(id, path)| {
                methods
                    .get(id)
                    .copied()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|m| *m != "HEAD")
                    .map(move |m| (m.to_ascii_lowercase(), format!("{PREFIX}{path}")))
            })
            .collect();
        assert_eq!(served, expected, "router table: {table}");
    }

    #[test]
    fn every_operation_has_a_success_and_a_client_error() {
        for (method, path, op) in operations(&document()) {
            let codes: Vec<&String> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .collect();
            assert!(
                codes.iter().any(|c| c.starts_with('2')),
                "{method} {path}: {codes:?}"
            );
            assert!(
                codes.iter().any(|c| c.starts_with('4')),
                "{method} {path}: {codes:?}"
            );
            assert!(
                codes.contains(&&"403".to_owned()) && codes.contains(&&"401".to_owned()),
                "{method} {path}: the guard's 401 and 403"
            );
            for (code, response) in op["responses"].as_object().expect("responses") {
                if code.starts_with('4') || code.starts_with('5') {
                    let schema = if response["$ref"].is_string() {
                        let name = response["$ref"]
                            .as_str()
                            .and_then(|r| r.strip_prefix("#/components/responses/"))
                            .expect("a response reference");
                        document()["components"]["responses"][name]["content"]
                            ["application/json"]["schema"]
                            .clone()
                    } else {
                        response["content"]["application/json"]["schema"].clone()
                    };
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorJson",
                        "{method} {path} {code}"
                    );
                }
            }
        }
    }

    #[test]
    fn path_and_query_parameters_are_described() {
        for (method, path, op) in operations(&document()) {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path: BTreeSet<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let in_template: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(in_path, in_template, "{method} {path}: {params:?}");
            for p in &params {
                assert!(p["description"].is_string(), "{method} {path}: {p}");
            }
        }
        let doc = document();
        let query = |method: &str, path: &str| -> BTreeSet<String> {
            doc["paths"][format!("{PREFIX}{path}")][method]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(
            query("get", "/identities/{id}/contacts/{contact}/messages"),
            BTreeSet::from(["before".to_owned(), "limit".to_owned()])
        );
        assert_eq!(
            query("delete", "/identities/{id}"),
            BTreeSet::from(["confirm".to_owned()])
        );
    }

    #[test]
    fn bodies_streams_and_references_are_in_the_document() {
        let doc = document();
        let paths = &doc["paths"];
        let events = &paths["/api/events"]["get"]["responses"]["200"]["content"];
        assert!(events["text/event-stream"].is_object(), "{events}");
        let pem = &paths["/api/identities/{id}/public-key"]["get"]["responses"]["200"]["content"];
        assert!(pem["application/x-pem-file"].is_object(), "{pem}");
        for (method, path, body) in [
            ("post", "/identities", "NewIdentity"),
            ("post", "/identities/{id}/backup", "BackupRequest"),
            ("post", "/identities/{id}/contacts", "NewContact"),
            (
                "patch",
                "/identities/{id}/contacts/{contact}",
                "ContactChange",
            ),
            (
                "post",
                "/identities/{id}/contacts/{contact}/messages",
                "NewMessage",
            ),
            (
                "post",
                "/identities/{id}/requests/{fingerprint}/accept",
                "Accept",
            ),
            ("put", "/settings", "Settings"),
        ] {
            let content = &paths[format!("{PREFIX}{path}")][method]["requestBody"]["content"]["application/json"];
            assert_eq!(
                content["schema"]["$ref"],
                format!("#/components/schemas/{body}"),
                "{method} {path}"
            );
            let schema = &doc["components"]["schemas"][body];
            assert_eq!(
                schema["additionalProperties"], false,
                "{body}: unknown fields are refused"
            );
        }
        // Every reference resolves.
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        match (k.as_str(), v.as_str()) {
                            ("$ref", Some(r)) => out.push(r.to_owned()),
                            _ => refs(v, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn the_message_schema_has_the_message_fields() {
        let doc = document();
        let message = &doc["components"]["schemas"]["MessageJson"];
        let properties: BTreeSet<&str> = message["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        for field in [
            "kind",
            "id",
            "direction",
            "text",
            "sent_at",
            "status",
            "seq",
            "error",
        ] {
            assert!(properties.contains(field), "{field} in {properties:?}");
        }
        let required: BTreeSet<&str> = message["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            !required.contains("error"),
            "error is only there on failure"
        );
        assert!(required.contains("kind") && required.contains("sent_at"));
        assert_eq!(message["properties"]["kind"]["enum"], json!(["message"]));
        assert_eq!(
            doc["components"]["schemas"]["MessageStatus"]["enum"],
            json!(["pending", "sent", "delivered", "received", "failed"])
        );
        let entry = &doc["components"]["schemas"]["EntryJson"];
        assert_eq!(entry["discriminator"]["propertyName"], "kind", "{entry}");
        assert_eq!(
            doc["components"]["schemas"]["GapJson"]["properties"]["kind"]["enum"],
            json!(["gap"])
        );
    }

    fn message(error: Option<&str>) -> MessageRecord {
        MessageRecord {
            id: "00112233445566778899aabbccddeeff".into(),
            direction: Direction::Out,
            text: "hello \"there\"".into(),
            sent_ms: 1_764_106_800_123,
            stored_ms: 1_764_106_800_456,
            status: Status::Failed,
            seq: 7,
            error: error.map(str::to_owned),
        }
    }

    /// The JSON the API wrote before it had typed responses, byte for byte.
    #[test]
    fn the_json_output_is_unchanged() {
        for error in [None, Some("the mailbox refused it")] {
            let m = message(error);
            let mut old = json!({
                "kind": "message",
                "id": m.id,
                "direction": m.direction,
                "text": m.text,
                "sent_at": rfc3339(m.sent_ms),
                "status": m.status.as_str(),
                "seq": m.seq,
            });
            if let (Some(e), Some(obj)) = (&m.error, old.as_object_mut()) {
                obj.insert("error".into(), json!(e));
            }
            let old = old.to_string();
            assert_eq!(message_json(&m).to_string(), old);
            assert_eq!(entry_json(&Entry::Message(m.clone())).to_string(), old);
            let typed = serde_json::to_string(&MessageJson::from(&m)).expect("serializes");
            assert_eq!(typed, old, "as the handlers write it");
        }
        assert_eq!(
            message_json(&message(None))["sent_at"],
            "2025-11-25T21:40:00.123Z"
        );

        let gap = Entry::Gap {
            missing: 3,
            detected_ms: 5,
        };
        let old = json!({ "kind": "gap", "missing": 3, "detected_at": rfc3339(5) }).to_string();
        assert_eq!(entry_json(&gap).to_string(), old);
        assert_eq!(
            serde_json::to_string(&EntryJson::from(&gap)).expect("serializes"),
            old
        );

        for display_name in [None, Some("Alice".to_owned())] {
            let r = IdentityRecord {
                id: "alice".into(),
                display_name,
                fingerprint: "ab".repeat(32),
                created_ms: 9,
            };
            let old = json!({
                "id": r.id,
                "display_name": r.display_name,
                "fingerprint": r.fingerprint,
                "created_at": rfc3339(r.created_ms),
            })
            .to_string();
            let typed = serde_json::to_string(&IdentityJson::from(&r)).expect("serializes");
            assert_eq!(typed, old);
        }

        let request = Request {
            fingerprint: "cd".repeat(32),
            public_key: "-----BEGIN PUBLIC KEY-----".into(),
            messages: vec![message(None)],
        };
        let old = json!({
            "fingerprint": request.fingerprint,
            "public_key": request.public_key,
            "messages": request.messages.iter().map(message_json).collect::<Vec<_>>(),
        })
        .to_string();
        let typed = serde_json::to_string(&RequestJson::from(&request)).expect("serializes");
        assert_eq!(typed, old);
    }

    #[test]
    fn the_status_json_is_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = Node::with_store(
            crate::core::store::Store::in_memory().expect("store"),
            dir.path().join("keys"),
            1 << 20,
            None,
        )
        .expect("node");
        for last_sync_ms in [None, Some(1_764_106_800_000)] {
            node.update_status(|s| {
                s.mailbox = "127.0.0.1:7000".into();
                s.last_error = Some("refused".into());
                s.last_sync_ms = last_sync_ms;
            });
            let st = node.status();
            let old = json!({
                "mailbox": {
                    "state": st.state,
                    "address": st.mailbox,
                    "last_error": st.last_error,
                    "last_sync": st.last_sync_ms.map(rfc3339),
                },
                "outbox": node.outbox_len(),
            })
            .to_string();
            assert_eq!(status_json(&node).to_string(), old);
            let typed = serde_json::to_string(&status_body(&node)).expect("serializes");
            assert_eq!(typed, old);
        }
    }

    #[tokio::test]
    async fn the_contact_json_is_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = std::sync::Arc::new(
            Node::with_store(
                crate::core::store::Store::in_memory().expect("store"),
                dir.path().join("keys"),
                1 << 20,
                None,
            )
            .expect("node"),
        );
        node.create_identity("alice".into(), None)
            .await
            .expect("alice");
        node.create_identity("bob".into(), Some("Bob".into()))
            .await
            .expect("bob");
        let bob_key = node.identity("bob").expect("bob").public_key().to_pem();
        let c = node
            .add_contact("alice".into(), "bob".into(), bob_key)
            .await
            .expect("contact");
        let old = json!({
            "name": c.name,
            "fingerprint": c.fingerprint,
            "safety_number": node.safety_number("alice", &c).ok(),
            "verified": c.verified,
            "public_key": c.public_key,
            "added_at": rfc3339(c.added_ms),
            "mailbox": c.mailbox,
            "warning": node.mailbox_warning(&c),
        })
        .to_string();
        let typed = serde_json::to_string(&contact_json(&node, "alice", &c)).expect("serializes");
        assert_eq!(typed, old);
        assert!(old.contains(r#""safety_number":""#), "{old}");
    }

    #[tokio::test]
    async fn errors_have_the_error_schema() {
        for e in [
            ApiError::invalid("invalid_json", "expected value"),
            NodeError::NotFound("no identity alice".into()).into(),
            NodeError::Conflict("identity alice already exists".into()).into(),
            NodeError::TooLarge("request body too large".into()).into(),
            ApiError::Forbidden("cross-origin request refused".into()),
            ApiError::Unauthorized("this node requires its access token".into()),
            NodeError::Internal("disk".into()).into(),
        ] {
            let (status, code) = e.status_and_code();
            let words = e.to_string();
            let response = e.into_response();
            assert_eq!(response.status(), status);
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .expect("body");
            let parsed: ErrorJson = serde_json::from_slice(&body).expect("an ErrorJson");
            assert_eq!(
                parsed,
                ErrorJson {
                    error: words,
                    code: code.into()
                }
            );
        }
    }
}
