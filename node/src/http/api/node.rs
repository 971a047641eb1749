//! The node itself: `/events` (live), `/status`, `/settings`.

#[allow(clippy::wildcard_imports)]
use super::*;

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
pub(super) async fn events(state: State<AppState>) -> impl IntoResponse {
    crate::http::events::stream(state).await
}

/// The node's status: the connection to the mailbox, and the outbox.
#[utoipa::path(
    get,
    path = "/status",
    tag = "node",
    responses((status = 200, description = "The status", body = StatusJson))
)]
pub(super) async fn status(State(s): State<AppState>) -> Json<StatusJson> {
    Json(status_body(&s.node))
}

/// The node's settings.
#[utoipa::path(
    get,
    path = "/settings",
    tag = "node",
    responses(
        (status = 200, description = "The settings", body = SettingsJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
pub(super) async fn get_settings(
    State(s): State<AppState>,
) -> Result<Json<SettingsJson>, ApiError> {
    let node = s.node.clone();
    Ok(Json(blocking(move || Ok(settings_json(&node))).await?))
}

/// New settings: a mailbox address or an invite code naming one (not both), and whether
/// notifications show previews; what is left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    /// The mailbox address, `host:port` with an optional `#` and certificate fingerprint.
    #[serde(default)]
    mailbox: Option<String>,
    /// Take the mailbox from someone's invite code.
    #[serde(default)]
    invite: Option<String>,
    /// Whether notifications show a message's first line.
    #[serde(default)]
    previews: Option<bool>,
    /// The page's colour theme: `system`, `light` or `dark`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "dark")]
    theme: Option<crate::core::settings::Theme>,
}

/// Change settings; the mailbox is saved, and the node syncs with it from now on.
#[utoipa::path(
    put,
    path = "/settings",
    tag = "node",
    request_body = Settings,
    responses(
        (status = 200, description = "The settings as changed", body = SettingsJson),
        (status = 400, description = "Bad input: `invalid_json`, `missing_mailbox` (nothing to \
            change, or both mailbox and invite), `invalid_mailbox`, `invalid_invite`",
            body = ErrorJson),
        (status = 413, description = "The body is too large (`too_large`)", body = ErrorJson),
        (status = 500, description = "Storage failed (`internal`)", body = ErrorJson),
    )
)]
pub(super) async fn put_settings(
    State(s): State<AppState>,
    body: Result<Json<Settings>, JsonRejection>,
) -> Result<Json<SettingsJson>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let address: Option<config::MailboxAddress> = match (body.mailbox, body.invite) {
        (Some(m), None) => Some(
            m.parse()
                .map_err(|e| ApiError::invalid("invalid_mailbox", format!("mailbox: {e}")))?,
        ),
        (None, Some(code)) => Some(
            crate::core::invite::Invite::decode(&code)
                .map_err(|e| {
                    ApiError::invalid(
                        "invalid_invite",
                        crate::core::service::sentence(&e.to_string()),
                    )
                })?
                .mailbox
                .ok_or_else(|| {
                    ApiError::invalid("invalid_invite", "This invite names no mailbox.")
                })?,
        ),
        (None, None) if body.previews.is_some() || body.theme.is_some() => None,
        _ => {
            return Err(ApiError::invalid(
                "missing_mailbox",
                "give one of mailbox or invite, or previews or theme",
            ));
        }
    };
    let node = s.node.clone();
    let (previews, theme) = (body.previews, body.theme);
    let settings = blocking(move || {
        if let Some(address) = address {
            node.move_mailbox(address)?;
        }
        if let Some(on) = previews {
            node.set_previews(on)?;
        }
        if let Some(theme) = theme {
            node.set_theme(theme)?;
        }
        Ok(settings_json(&node))
    })
    .await?;
    Ok(Json(settings))
}
