//! `/identities/{id}/contacts/{contact}/messages`: pages of a conversation, sending, one
//! message, read marks.

#[allow(clippy::wildcard_imports)]
use super::*;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Page {
    /// How many entries, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Page back: only entries older than this message id, or than the cursor a page gave
    /// as `next_before`.
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
pub(super) async fn list_messages(
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
    let before = page
        .before
        .as_deref()
        .map(str::parse::<Cursor>)
        .transpose()?;
    let page = s.node.page(&id, &contact, before.as_ref(), limit)?;
    Ok(Json(MessagesJson {
        messages: page.entries.iter().map(EntryJson::from).collect(),
        next_before: page.next.map(|c| c.to_string()),
    }))
}

/// A message to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewMessage {
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
pub(super) async fn send_message(
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
pub(super) async fn get_message(
    State(s): State<AppState>,
    Path((id, contact, message_id)): Path<(String, String, String)>,
) -> Result<Json<MessageJson>, ApiError> {
    let mid: crypto::MessageId = message_id.parse().map_err(|_| {
        NodeError::NotFound(format!("no message {message_id} in this conversation"))
    })?;
    Ok(Json(MessageJson::from(
        &s.node.message(&id, &contact, &mid)?,
    )))
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
pub(super) async fn mark_read(
    State(s): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.node.contact(&id, &contact)?;
    let node = s.node.clone();
    blocking(move || node.mark_read(&id, &contact)).await?;
    Ok(StatusCode::NO_CONTENT)
}
