//! `/identities/{id}/requests`: messages from senders who are not contacts; accept or drop.

#[allow(clippy::wildcard_imports)]
use super::*;

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
pub(super) async fn list_requests(
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
pub(super) struct Accept {
    /// The contact's name: any display name (see adding a contact). Optional when the
    /// sender gave one (`display_name` of their request).
    #[serde(default)]
    name: Option<String>,
    /// Instead of a new contact: the key of an existing contact whose key this is now (they
    /// changed it). The contact is then not verified, and the conversation says so.
    #[serde(default)]
    contact: Option<String>,
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
        (status = 200, description = "The existing contact, with the new key (`contact`)",
            body = ContactJson),
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
pub(super) async fn accept_request(
    State(s): State<AppState>,
    Path((id, fingerprint)): Path<(String, String)>,
    body: Result<Json<Accept>, JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    if let Some(contact) = body.contact {
        let c = s
            .node
            .replace_contact_key(id.clone(), contact, fingerprint)
            .await?;
        return Ok(Json(contact_json_of(&s.node, &id, c).await?).into_response());
    }
    let c = s
        .node
        .accept_request(id.clone(), fingerprint, body.name.unwrap_or_default())
        .await?;
    let url = contact_url(&id, &c.name);
    Ok(Created(url, contact_json_of(&s.node, &id, c).await?).into_response())
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
pub(super) async fn delete_request(
    State(s): State<AppState>,
    Path((id, fingerprint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.node.delete_request(id, fingerprint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Block a sender: their requests go, and what they send later is dropped unread.
#[utoipa::path(
    post,
    path = "/identities/{id}/requests/{fingerprint}/block",
    tag = "requests",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("fingerprint" = String, Path, description = "The sender's fingerprint, hex"),
    ),
    responses(
        (status = 201, description = "Blocked", body = BlockedJson,
            headers(("Location" = String, description = "The new resource's URL"))),
        (status = 404, description = "No such identity or request (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
pub(super) async fn block_request(
    State(s): State<AppState>,
    Path((id, fingerprint)): Path<(String, String)>,
) -> Result<Created<BlockedJson>, ApiError> {
    let b = s.node.block_request(id.clone(), fingerprint).await?;
    Ok(Created(
        format!("{PREFIX}/identities/{id}/blocked/{}", b.fingerprint),
        BlockedJson::from(&b),
    ))
}

/// The senders an identity blocked.
#[utoipa::path(
    get,
    path = "/identities/{id}/blocked",
    tag = "requests",
    params(("id" = String, Path, description = "The identity's id")),
    responses(
        (status = 200, description = "The blocked senders", body = BlockedListJson),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
pub(super) async fn list_blocked(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BlockedListJson>, ApiError> {
    let blocked = s.node.blocked(&id)?.iter().map(BlockedJson::from).collect();
    Ok(Json(BlockedListJson { blocked }))
}

/// Let a blocked sender write again.
#[utoipa::path(
    delete,
    path = "/identities/{id}/blocked/{fingerprint}",
    tag = "requests",
    params(
        ("id" = String, Path, description = "The identity's id"),
        ("fingerprint" = String, Path, description = "The sender's fingerprint, hex"),
    ),
    responses(
        (status = 204, description = "Unblocked"),
        (status = 404, description = "No such identity, or not blocked (`not_found`)",
            body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
pub(super) async fn unblock(
    State(s): State<AppState>,
    Path((id, fingerprint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.node.unblock(id, fingerprint).await?;
    Ok(StatusCode::NO_CONTENT)
}
