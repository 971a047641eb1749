//! `/identities`: make, restore, list, read, delete identities; public keys, invites, backups.

#[allow(clippy::wildcard_imports)]
use super::*;

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
pub(super) async fn list_identities(
    State(s): State<AppState>,
) -> Result<Json<IdentitiesJson>, ApiError> {
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
pub(super) struct NewIdentity {
    /// The id, `[A-Za-z0-9._-]{1,64}`. Optional with a `display_name`: a free id is then
    /// derived from it ("Zoë Müller" → `zoe-muller`).
    #[schema(example = "alice")]
    #[serde(default)]
    id: Option<String>,
    /// The name people see (any script, spaces; at most 100 characters).
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
pub(super) async fn create_identity(
    State(s): State<AppState>,
    body: Result<Json<NewIdentity>, JsonRejection>,
) -> Result<Created<IdentityJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    // An id given empty is a bad id, not a request to derive one.
    if let Some(id) = body.id.as_deref().filter(|id| id.is_empty()) {
        crate::core::service::check_name("an identity id", id)?;
    }
    let id = body.id.unwrap_or_default();
    let r = match (body.backup, body.passphrase) {
        (None, None) => s.node.create_identity(id, body.display_name).await?,
        (Some(backup), Some(passphrase)) => {
            s.node
                .restore_identity(id, body.display_name, backup, passphrase)
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
pub(super) async fn get_identity(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<IdentityJson>, ApiError> {
    Ok(Json(IdentityJson::from(&s.node.identity_record(&id)?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Confirm {
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
pub(super) async fn delete_identity(
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
pub(super) async fn public_key(
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
pub(super) async fn invite(
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
pub(super) struct BackupRequest {
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
        (status = 403, description = "A browser session older than 5 minutes: sign in again \
            (`reauth_required`)", body = ErrorJson),
        (status = 404, description = "No such identity (`not_found`)", body = ErrorJson),
        (status = 413, description = "The body is too large (`too_large`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
pub(super) async fn backup(
    State(s): State<AppState>,
    auth: Option<axum::Extension<crate::http::auth::Auth>>,
    Path(id): Path<String>,
    body: Result<Json<BackupRequest>, JsonRejection>,
) -> Result<Json<BackupJson>, ApiError> {
    may_export_keys(auth)?;
    let Json(body) = body.map_err(json_error)?;
    let pem = s.node.backup(id, body.passphrase).await?;
    Ok(Json(BackupJson { backup: pem }))
}
