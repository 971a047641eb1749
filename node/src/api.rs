//! The JSON API under `/api`: the automation contract. Thin adapters over [`Node`].

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::NodeError;
use crate::service::Node;
use crate::store::{ContactRecord, Entry, IdentityRecord, MessageRecord};

/// The `/api` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/identities", get(list_identities).post(create_identity))
        .route(
            "/identities/{id}",
            get(get_identity).delete(delete_identity),
        )
        .route("/identities/{id}/public-key", get(public_key))
        .route("/identities/{id}/invite", get(invite))
        .route("/identities/{id}/backup", post(backup))
        .route(
            "/identities/{id}/contacts",
            get(list_contacts).post(add_contact),
        )
        .route(
            "/identities/{id}/contacts/{contact}",
            get(get_contact).patch(patch_contact).delete(delete_contact),
        )
        .route(
            "/identities/{id}/contacts/{contact}/messages",
            get(list_messages).post(send_message),
        )
        .route("/identities/{id}/requests", get(list_requests))
        .route(
            "/identities/{id}/requests/{fingerprint}/accept",
            post(accept_request),
        )
        .route(
            "/identities/{id}/requests/{fingerprint}",
            axum::routing::delete(delete_request),
        )
        .route("/events", get(crate::events::stream))
        .route("/status", get(status))
        .route("/settings", get(get_settings).put(put_settings))
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

fn identity_json(r: &IdentityRecord) -> Value {
    json!({
        "id": r.id,
        "display_name": r.display_name,
        "fingerprint": r.fingerprint,
        "created_at": rfc3339(r.created_ms),
    })
}

fn contact_json(node: &Node, id: &str, c: &ContactRecord) -> Value {
    json!({
        "name": c.name,
        "fingerprint": c.fingerprint,
        "safety_number": node.safety_number(id, c).ok(),
        "verified": c.verified,
        "public_key": c.public_key,
        "added_at": rfc3339(c.added_ms),
        "mailbox": c.mailbox,
        "warning": node.mailbox_warning(c),
    })
}

/// A conversation entry as the API shows it: a message, or a gap marker.
pub fn entry_json(e: &Entry) -> Value {
    match e {
        Entry::Message(m) => message_json(m),
        Entry::Gap {
            missing,
            detected_ms,
        } => json!({ "kind": "gap", "missing": missing, "detected_at": rfc3339(*detected_ms) }),
    }
}

/// A message as the API shows it.
pub fn message_json(m: &MessageRecord) -> Value {
    let mut v = json!({
        "kind": "message",
        "id": m.id,
        "direction": m.direction,
        "text": m.text,
        "sent_at": rfc3339(m.sent_ms),
        "status": m.status.as_str(),
        "seq": m.seq,
    });
    if let (Some(e), Some(obj)) = (&m.error, v.as_object_mut()) {
        obj.insert("error".into(), json!(e));
    }
    v
}

async fn list_identities(State(s): State<AppState>) -> Result<Json<Value>, NodeError> {
    let ids: Vec<Value> = s.node.identities()?.iter().map(identity_json).collect();
    Ok(Json(json!({ "identities": ids })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewIdentity {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    /// Restore from this backup (encrypted PKCS#8 PEM) instead of making a new key.
    #[serde(default)]
    backup: Option<String>,
    /// The backup's passphrase.
    #[serde(default)]
    passphrase: Option<String>,
}

async fn create_identity(
    State(s): State<AppState>,
    body: Result<Json<NewIdentity>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, NodeError> {
    let Json(body) = body.map_err(json_error)?;
    let r = match (body.backup, body.passphrase) {
        (None, None) => s.node.create_identity(body.id, body.display_name).await?,
        (Some(backup), Some(passphrase)) => {
            s.node
                .restore_identity(body.id, body.display_name, backup, passphrase)
                .await?
        }
        _ => {
            return Err(NodeError::invalid(
                "missing_passphrase",
                "a restore needs both backup and passphrase",
            ));
        }
    };
    Ok((StatusCode::CREATED, Json(identity_json(&r))))
}

async fn get_identity(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, NodeError> {
    Ok(Json(identity_json(&s.node.identity_record(&id)?)))
}

#[derive(Deserialize)]
struct Confirm {
    confirm: Option<String>,
}

async fn delete_identity(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Confirm>,
) -> Result<StatusCode, NodeError> {
    s.node.identity_record(&id)?;
    if q.confirm.as_deref() != Some(id.as_str()) {
        return Err(NodeError::invalid(
            "confirmation_required",
            format!("deleting an identity destroys its key: repeat its id as ?confirm={id}"),
        ));
    }
    s.node.delete_identity(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn public_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, NodeError> {
    let key = s.node.identity(&id)?.public_key().to_pem();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        key,
    ))
}

async fn invite(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, NodeError> {
    Ok(Json(json!({ "invite": s.node.invite(&id)? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    passphrase: String,
}

async fn backup(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<BackupRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, NodeError> {
    let Json(body) = body.map_err(json_error)?;
    let pem = s.node.backup(id, body.passphrase).await?;
    Ok(Json(json!({ "backup": pem })))
}

async fn list_contacts(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, NodeError> {
    let contacts: Vec<Value> = s
        .node
        .contacts(&id)?
        .iter()
        .map(|c| contact_json(&s.node, &id, c))
        .collect();
    Ok(Json(json!({ "contacts": contacts })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewContact {
    name: String,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    invite: Option<String>,
}

async fn add_contact(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<NewContact>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, NodeError> {
    let Json(body) = body.map_err(json_error)?;
    let c = match (body.public_key, body.invite) {
        (Some(pem), None) => s.node.add_contact(id.clone(), body.name, pem).await?,
        (None, Some(code)) => {
            s.node
                .add_contact_from_invite(id.clone(), body.name, &code)
                .await?
        }
        _ => {
            return Err(NodeError::invalid(
                "missing_key",
                "give exactly one of public_key or invite",
            ));
        }
    };
    Ok((StatusCode::CREATED, Json(contact_json(&s.node, &id, &c))))
}

async fn get_contact(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
) -> Result<Json<Value>, NodeError> {
    let c = s.node.contact(&id, &contact)?;
    Ok(Json(contact_json(&s.node, &id, &c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactChange {
    verified: bool,
}

async fn patch_contact(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
    body: Result<Json<ContactChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, NodeError> {
    let Json(body) = body.map_err(json_error)?;
    let c = s
        .node
        .set_verified(id.clone(), contact, body.verified)
        .await?;
    Ok(Json(contact_json(&s.node, &id, &c)))
}

async fn delete_contact(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
) -> Result<StatusCode, NodeError> {
    s.node.delete_contact(id, contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    before: Option<String>,
}

async fn list_messages(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, NodeError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(NodeError::invalid(
            "invalid_limit",
            "limit: must be 1 to 1000",
        ));
    }
    let messages: Vec<Value> = s
        .node
        .messages(&id, &contact, page.before.as_deref(), limit)?
        .iter()
        .map(entry_json)
        .collect();
    Ok(Json(json!({ "messages": messages })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    text: String,
}

async fn send_message(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
    body: Result<Json<NewMessage>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, NodeError> {
    let Json(body) = body.map_err(json_error)?;
    let m = s.node.send_text(id, contact, body.text).await?;
    Ok((StatusCode::CREATED, Json(message_json(&m))))
}

async fn list_requests(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, NodeError> {
    let requests: Vec<Value> = s
        .node
        .requests(&id)?
        .iter()
        .map(|r| {
            json!({
                "fingerprint": r.fingerprint,
                "public_key": r.public_key,
                "messages": r.messages.iter().map(message_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "requests": requests })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Accept {
    name: String,
}

async fn accept_request(
    State(s): State<AppState>,
    Path((id, fingerprint)): Path<(String, String)>,
    body: Result<Json<Accept>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, NodeError> {
    let Json(body) = body.map_err(json_error)?;
    let c = s
        .node
        .accept_request(id.clone(), fingerprint, body.name)
        .await?;
    Ok((StatusCode::CREATED, Json(contact_json(&s.node, &id, &c))))
}

async fn delete_request(
    State(s): State<AppState>,
    Path((id, fingerprint)): Path<(String, String)>,
) -> Result<StatusCode, NodeError> {
    s.node.delete_request(id, fingerprint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The status JSON (also sent on the event stream later).
pub fn status_json(node: &Node) -> Value {
    let st = node.status();
    let outbox = node.outbox_len();
    json!({
        "mailbox": {
            "state": st.state,
            "address": st.mailbox,
            "last_error": st.last_error,
            "last_sync": st.last_sync_ms.map(rfc3339),
        },
        "outbox": outbox,
    })
}

async fn status(State(s): State<AppState>) -> Json<Value> {
    Json(status_json(&s.node))
}

async fn get_settings(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "mailbox": s.node.status().mailbox }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    mailbox: Option<String>,
    /// Take the mailbox from someone's invite code.
    #[serde(default)]
    invite: Option<String>,
}

async fn put_settings(
    State(s): State<AppState>,
    body: Result<Json<Settings>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, NodeError> {
    let Json(body) = body.map_err(json_error)?;
    let address: config::MailboxAddress = match (body.mailbox, body.invite) {
        (Some(m), None) => m
            .parse()
            .map_err(|e| NodeError::invalid("invalid_mailbox", format!("mailbox: {e}")))?,
        (None, Some(code)) => crate::invite::Invite::decode(&code)
            .map_err(|e| NodeError::invalid("invalid_invite", format!("invite: {e}")))?
            .mailbox
            .ok_or_else(|| NodeError::invalid("invalid_invite", "invite: it names no mailbox"))?,
        _ => {
            return Err(NodeError::invalid(
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
    Ok(Json(json!({ "mailbox": address.to_string() })))
}

/// A JSON body that did not parse: 400 naming what is wrong (413 when too large).
pub fn json_error(e: axum::extract::rejection::JsonRejection) -> NodeError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return NodeError::TooLarge("request body too large".into());
    }
    NodeError::invalid("invalid_json", e.body_text())
}
