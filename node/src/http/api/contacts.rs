//! `/identities/{id}/contacts`: add, list, read, verify, delete contacts.

#[allow(clippy::wildcard_imports)]
use super::*;

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
pub(super) async fn list_contacts(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ContactsJson>, ApiError> {
    // Each contact's unread count and preview read its conversation: off the executor.
    let node = s.node.clone();
    let contacts = blocking(move || {
        Ok(node
            .contacts(&id)?
            .iter()
            .map(|c| contact_json(&node, &id, c))
            .collect())
    })
    .await?;
    Ok(Json(ContactsJson { contacts }))
}

/// A new contact: a name, and exactly one of a public key or an invite code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewContact {
    /// The name people see: any 1 to 100 characters (spaces, any script). A name that is a
    /// key already (`[A-Za-z0-9._-]{1,64}`) is also the contact's `key`; another gets a key
    /// derived from it. Optional with an invite that carries a name.
    #[schema(example = "Bob Smith")]
    #[serde(default)]
    name: Option<String>,
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
pub(super) async fn add_contact(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<NewContact>, JsonRejection>,
) -> Result<Created<ContactJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let c = match (body.public_key, body.invite) {
        (Some(pem), None) => {
            let name = body.name.unwrap_or_default();
            s.node.add_contact(id.clone(), name, pem).await?
        }
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
        contact_json_of(&s.node, &id, c).await?,
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
pub(super) async fn get_contact(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
) -> Result<Json<ContactJson>, ApiError> {
    let c = s.node.contact(&id, &contact)?;
    Ok(Json(contact_json_of(&s.node, &id, c).await?))
}

/// A change to a contact: any of its fields.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ContactChange {
    /// Whether the safety numbers were compared and matched.
    #[serde(default)]
    verified: Option<bool>,
    /// Another display name (the key stays).
    #[serde(default)]
    #[schema(example = "Bobby")]
    name: Option<String>,
}

/// Rename a contact, or mark it verified or not.
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
        (status = 400, description = "Bad input (`invalid_json`, `invalid_name`)", body = ErrorJson),
        (status = 404, description = "No such identity or contact (`not_found`)", body = ErrorJson),
        (status = 413, description = "The body is too large (`too_large`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
pub(super) async fn patch_contact(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
    body: Result<Json<ContactChange>, JsonRejection>,
) -> Result<Json<ContactJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    if body.verified.is_none() && body.name.is_none() {
        return Err(ApiError::invalid(
            "invalid_json",
            "give verified or name (or both)",
        ));
    }
    let mut c = s.node.contact(&id, &contact)?;
    if let Some(name) = body.name {
        c = s
            .node
            .rename_contact(id.clone(), contact.clone(), name)
            .await?;
    }
    if let Some(verified) = body.verified {
        c = s.node.set_verified(id.clone(), contact, verified).await?;
    }
    Ok(Json(contact_json_of(&s.node, &id, c).await?))
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
pub(super) async fn delete_contact(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.node.delete_contact(id, contact).await?;
    Ok(StatusCode::NO_CONTENT)
}
