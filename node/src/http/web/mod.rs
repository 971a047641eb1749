//! The web UI's routes: the page and its HTML forms (POST → 303 on success; on failure the
//! page comes back with the error shown and the typed text still in place). The HTML itself
//! is rendered by the `ui` crate from plain data gathered here; `ui::SCRIPT` enhances it
//! (live updates over `/api/events`, sending without reload, copy buttons).

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::core::error::NodeError;
use crate::core::service::{Node, blocking};
use crate::core::store::{Direction, Entry};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::flash::Flash;

mod backup;
mod requests;
mod settings;

use requests::{block_request, delete_request, unblock};
use settings::{save_settings, test_settings};

/// How many messages a page shows; "Show older" pages back from there.
const PAGE: usize = 100;

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/ui/identities", post(create_identity))
        .route("/ui/identities/delete", post(delete_identity))
        .route("/ui/identities/backup", post(backup::backup))
        .route("/ui/contacts", post(add_contact))
        .route("/ui/contacts/delete", post(delete_contact))
        .route("/ui/contacts/verify", post(verify_contact))
        .route("/ui/requests/accept", post(accept_request))
        .route("/ui/requests/delete", post(delete_request))
        .route("/ui/requests/block", post(block_request))
        .route("/ui/blocked/unblock", post(unblock))
        .route("/ui/settings", post(save_settings))
        .route("/ui/settings/test", post(test_settings))
        .route("/ui/send", post(send))
        .merge(ui::serve::assets(true))
}

/// What the page shows, from its query string.
#[derive(Deserialize, Default, Clone)]
struct Selection {
    identity: Option<String>,
    contact: Option<String>,
    before: Option<String>,
    settings: Option<String>,
    invite: Option<String>,
    confirm: Option<String>,
    /// The request (a fingerprint) whose deletion `confirm=request` asks to confirm.
    request: Option<String>,
    /// What a refused form left (see [`super::flash`]).
    flash: Option<String>,
}

impl Selection {
    fn of(identity: &str, contact: Option<&str>) -> Self {
        Self {
            identity: Some(identity.to_owned()),
            contact: contact.map(str::to_owned),
            ..Self::default()
        }
    }
}

/// A conversation entry as the page shows it.
pub fn message_item(entry: &Entry) -> ui::MessageItem {
    match entry {
        Entry::Message(m) => ui::MessageItem {
            id: m.id.to_string(),
            outgoing: m.direction == Direction::Out,
            text: m.text.clone(),
            time: config::time::short_utc(m.sent_ms),
            time_iso: config::time::rfc3339(m.sent_ms),
            status: m.status.as_str().to_owned(),
            gap: None,
            warning: (m.direction == Direction::In)
                .then(|| m.error.clone())
                .flatten(),
            note: None,
            forward_secret: m.forward_secret,
        },
        Entry::Gap {
            missing,
            detected_ms,
            first,
        } => ui::MessageItem {
            // A gap that late messages split keeps its time: the first seq tells the parts
            // apart.
            id: match first {
                Some(first) => format!("gap-{detected_ms}-{first}"),
                None => format!("gap-{detected_ms}"),
            },
            gap: Some(*missing),
            time: config::time::short_utc(*detected_ms),
            time_iso: config::time::rfc3339(*detected_ms),
            ..ui::MessageItem::default()
        },
        Entry::Note {
            text,
            at_ms,
            warning,
        } => ui::MessageItem {
            id: format!("note-{at_ms}"),
            text: text.clone(),
            time: config::time::short_utc(*at_ms),
            time_iso: config::time::rfc3339(*at_ms),
            note: Some(if *warning {
                ui::NoteLevel::Warning
            } else {
                ui::NoteLevel::Info
            }),
            ..ui::MessageItem::default()
        },
    }
}

/// Where messages to contact `c` go, in words: their own mailbox and how it answers, or
/// ours.
fn mailbox_words(
    node: &Node,
    c: &crate::core::store::ContactRecord,
    status: &crate::core::service::SyncStatus,
) -> String {
    let Some(theirs) = node.contact_mailbox(c) else {
        return "Messages to them go through your mailbox.".to_owned();
    };
    let shown = theirs.without_fingerprint();
    let remote = status.remote.iter().find(|r| {
        r.address
            .parse::<config::MailboxAddress>()
            .is_ok_and(|a| a.same_endpoint(&theirs))
    });
    match remote {
        Some(r) if r.last_error.is_some() => {
            format!("Their own mailbox, {shown}: cannot be reached now; messages wait.")
        }
        Some(r) if r.state == crate::core::service::ConnectionState::Online => {
            format!("Their own mailbox, {shown}: reachable.")
        }
        _ => format!("Their own mailbox, {shown}: messages go there when you write."),
    }
}

impl Selection {
    /// The page's URL for this selection, with `flash` when given. Every value is encoded.
    fn url(&self, flash: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        let pairs = [
            ("identity", self.identity.as_deref()),
            ("contact", self.contact.as_deref()),
            ("settings", self.settings.as_deref()),
            ("confirm", self.confirm.as_deref()),
            ("request", self.request.as_deref()),
            ("flash", flash),
        ];
        for (key, value) in pairs {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        match query.finish() {
            q if q.is_empty() => "/".to_owned(),
            q => format!("/?{q}"),
        }
    }
}

fn location(identity: &str, contact: Option<&str>) -> String {
    // Ids and names are [A-Za-z0-9._-]: nothing to escape in a query.
    match contact {
        Some(c) => format!("/?identity={identity}&contact={c}"),
        None => format!("/?identity={identity}"),
    }
}

fn build_page(node: &Node, sel: &Selection) -> Result<ui::NodePage, NodeError> {
    let records = node.identities()?;
    let identities: Vec<ui::IdentityItem> = records
        .iter()
        .map(|r| ui::IdentityItem {
            id: r.id.clone(),
            display_name: r.display_name.clone(),
            fingerprint: r.fingerprint.to_string(),
            fingerprint_grouped: r.fingerprint.grouped(),
        })
        .collect();
    let active_identity = sel
        .identity
        .clone()
        .filter(|id| records.iter().any(|r| &r.id == id))
        .or_else(|| records.first().map(|r| r.id.clone()));
    let status = node.status();
    let mut page = ui::NodePage {
        identities,
        active_identity: active_identity.clone(),
        connection: status.state.as_str().to_owned(),
        last_error: status.last_error.clone(),
        outbox: node.outbox_len(),
        max_message_bytes: node.max_body_bytes(),
        show_settings: sel.settings.is_some(),
        show_invite: sel.invite.is_some(),
        settings: ui::SettingsView {
            mailbox: node.mailbox_in_use().to_string(),
            test_result: None,
            previews: node.previews(),
            theme: node.theme().as_str().to_owned(),
            ..ui::SettingsView::default()
        },
        ..ui::NodePage::default()
    };
    let Some(id) = &active_identity else {
        return Ok(page);
    };
    page.invite = node.invite(id).ok();
    page.public_key = node.identity(id).ok().map(|i| i.public_key().to_pem());
    page.confirm_delete_identity = sel.confirm.as_deref() == Some("identity");
    let contacts = node.contacts(id)?;
    page.active_contact = sel
        .contact
        .clone()
        .filter(|c| contacts.iter().any(|r| &r.name == c));
    page.contacts = contacts
        .iter()
        .map(|c| {
            let (unread, preview) = node.summary(id, &c.name).unwrap_or_default();
            ui::ContactItem {
                name: c.name.clone(),
                display_name: c.display_name.clone(),
                fingerprint: c.fingerprint.to_string(),
                fingerprint_grouped: c.fingerprint.grouped(),
                unread: if page.active_contact.as_deref() == Some(c.name.as_str()) {
                    0
                } else {
                    unread
                },
                preview,
                verified: c.verified,
                safety_number: node.safety_number(id, c).unwrap_or_default(),
                warning: node.mailbox_warning(c),
                mailbox: Some(mailbox_words(node, c, &status)),
            }
        })
        .collect();
    page.confirm_delete_request = sel
        .request
        .clone()
        .filter(|_| sel.confirm.as_deref() == Some("request"));
    page.blocked = node
        .blocked(id)?
        .into_iter()
        .map(|b| ui::BlockedItem {
            display_name: b.display_name,
            fingerprint: b.fingerprint.to_string(),
            fingerprint_grouped: b.fingerprint.grouped(),
        })
        .collect();
    page.requests = node
        .requests(id)?
        .into_iter()
        .map(|r| ui::RequestItem {
            same_name_as: r.display_name.as_deref().and_then(|theirs| {
                contacts
                    .iter()
                    .find(|c| c.shown_name().to_lowercase() == theirs.to_lowercase())
                    .map(|c| (c.name.clone(), c.shown_name().to_owned()))
            }),
            display_name: r.display_name.clone(),
            preview: r
                .messages
                .last()
                .map(|m| crate::core::service::preview(&m.text))
                .unwrap_or_default(),
            count: r.messages.len(),
            fingerprint: r.fingerprint.to_string(),
            fingerprint_grouped: r.fingerprint.grouped(),
        })
        .collect();
    if let Some(contact) = page.active_contact.clone() {
        page.confirm_delete_contact = sel.confirm.as_deref() == Some("contact");
        let mut entries = node.messages(id, &contact, sel.before.as_deref(), PAGE + 1)?;
        if entries.len() > PAGE {
            entries.truncate(PAGE);
            page.older = entries.iter().rev().find_map(|e| match e {
                Entry::Message(m) => Some(m.id.to_string()),
                Entry::Gap { .. } | Entry::Note { .. } => None,
            });
        }
        entries.reverse();
        page.messages = entries.iter().map(message_item).collect();
    }
    Ok(page)
}

async fn page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(sel): Query<Selection>,
) -> Result<Html<String>, ApiError> {
    let node = s.node.clone();
    // Only a navigation of the user's own (typed, bookmarked or from our pages) marks a
    // conversation read: another site embedding this URL must not change anything.
    let own = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == "same-origin" || v == "none");
    let current =
        super::guard::session_cookie(&headers).map(|id| super::auth::Access::handle_of(&id));
    let access = s.access.clone();
    let flash = sel.flash.as_deref().and_then(|id| s.flashes.take(id));
    let page = blocking(move || {
        let mut page = build_page(&node, &sel)?;
        if let Some(flash) = flash {
            page.flash_error = flash.error;
            page.draft = flash.draft;
            page.kept = flash.kept;
            page.settings.typed_mailbox = flash.typed_mailbox;
            page.settings.mailbox_error = flash.mailbox_error;
            page.settings.test_result = flash.test_result;
            page.settings.saved = flash.saved;
        }
        if page.show_settings && access.required() {
            page.settings.sessions = access
                .sessions(&node)?
                .into_iter()
                .map(|info| ui::SessionItem {
                    current: current.as_deref() == Some(info.handle.as_str()),
                    id: info.handle,
                    agent: info.record.agent,
                    signed_in: config::time::short_utc(info.record.signed_in_ms),
                    last_seen: config::time::short_utc(info.record.seen_ms),
                })
                .collect();
        }
        // Looking at a conversation's newest page reads it.
        if let (true, Some(id), Some(contact), None) = (
            own,
            &page.active_identity,
            &page.active_contact,
            &sel.before,
        ) {
            node.mark_read(id, contact)?;
        }
        Ok(page)
    })
    .await?;
    Ok(Html(ui::node_page(&page)))
}

/// A refused form: back to the page (303, so no POST URL stays in the address bar and a
/// reload does not post again) with the error and what was typed.
fn failed(s: &AppState, sel: &Selection, error: impl Into<ApiError>, mut flash: Flash) -> Response {
    flash.error = Some(error.into().to_string());
    back_with(s, sel, flash)
}

/// Back to the page of `sel`, leaving `flash` for it.
fn back_with(s: &AppState, sel: &Selection, flash: Flash) -> Response {
    let id = s.flashes.put(flash);
    Redirect::to(&sel.url(Some(&id))).into_response()
}

/// A flash keeping the compose box's text.
fn with_draft(draft: String) -> Flash {
    Flash {
        draft,
        ..Flash::default()
    }
}

#[derive(Deserialize)]
struct NewIdentity {
    #[serde(default)]
    id: String,
    #[serde(default)]
    display_name: String,
}

async fn create_identity(State(s): State<AppState>, Form(f): Form<NewIdentity>) -> Response {
    match s
        .node
        .create_identity(f.id.clone(), Some(f.display_name.clone()))
        .await
    {
        Ok(r) => Redirect::to(&location(&r.id, None)).into_response(),
        Err(e) => {
            let kept = ui::Kept {
                profile_name: Some(f.display_name),
                ..ui::Kept::default()
            };
            let flash = Flash {
                kept,
                ..Flash::default()
            };
            failed(&s, &Selection::default(), e, flash)
        }
    }
}

#[derive(Deserialize)]
struct DeleteIdentity {
    identity: String,
    #[serde(default)]
    confirm: String,
}

async fn delete_identity(State(s): State<AppState>, Form(f): Form<DeleteIdentity>) -> Response {
    let sel = Selection {
        confirm: Some("identity".into()),
        ..Selection::of(&f.identity, None)
    };
    let shown = s
        .node
        .identity_record(&f.identity)
        .ok()
        .and_then(|r| r.display_name)
        .unwrap_or_else(|| f.identity.clone());
    if f.confirm.trim() != f.identity && f.confirm.trim() != shown {
        let e = ApiError::invalid(
            "confirmation_required",
            format!("Type {shown} to confirm: deleting a profile destroys its key"),
        );
        return failed(&s, &sel, e, Flash::default());
    }
    match s.node.delete_identity(f.identity).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => failed(&s, &sel, e, Flash::default()),
    }
}

#[derive(Deserialize)]
struct NewContact {
    identity: String,
    #[serde(default)]
    name: String,
    key_or_invite: String,
}

async fn add_contact(State(s): State<AppState>, Form(f): Form<NewContact>) -> Response {
    let sel = Selection::of(&f.identity, None);
    let pasted = f.key_or_invite.trim();
    let added = if pasted.starts_with("-----BEGIN") {
        s.node
            .add_contact(f.identity.clone(), f.name.clone(), pasted.to_owned())
            .await
    } else {
        s.node
            .add_contact_from_invite(f.identity.clone(), Some(f.name.clone()), pasted)
            .await
    };
    match added {
        Ok(c) => Redirect::to(&location(&f.identity, Some(&c.name))).into_response(),
        Err(e) => {
            let kept = ui::Kept {
                contact_key: Some(f.key_or_invite),
                contact_name: Some(f.name),
                ..ui::Kept::default()
            };
            let flash = Flash {
                kept,
                ..Flash::default()
            };
            failed(&s, &sel, e, flash)
        }
    }
}

#[derive(Deserialize)]
struct DeleteContact {
    identity: String,
    contact: String,
    #[serde(default)]
    confirm: String,
}

async fn delete_contact(State(s): State<AppState>, Form(f): Form<DeleteContact>) -> Response {
    let sel = Selection {
        confirm: Some("contact".into()),
        ..Selection::of(&f.identity, Some(&f.contact))
    };
    let shown = s
        .node
        .contact(&f.identity, &f.contact)
        .map(|c| c.shown_name().to_owned())
        .unwrap_or_else(|_| f.contact.clone());
    if f.confirm.trim() != f.contact && f.confirm.trim() != shown {
        let e = ApiError::invalid(
            "confirmation_required",
            format!("Type {shown} to confirm deleting this contact"),
        );
        return failed(&s, &sel, e, Flash::default());
    }
    match s.node.delete_contact(f.identity.clone(), f.contact).await {
        Ok(()) => Redirect::to(&location(&f.identity, None)).into_response(),
        Err(e) => failed(&s, &sel, e, Flash::default()),
    }
}

#[derive(Deserialize)]
struct Verify {
    identity: String,
    contact: String,
    verified: String,
}

async fn verify_contact(State(s): State<AppState>, Form(f): Form<Verify>) -> Response {
    let sel = Selection::of(&f.identity, Some(&f.contact));
    match s
        .node
        .set_verified(f.identity.clone(), f.contact.clone(), f.verified == "true")
        .await
    {
        Ok(_) => Redirect::to(&location(&f.identity, Some(&f.contact))).into_response(),
        Err(e) => failed(&s, &sel, e, Flash::default()),
    }
}

#[derive(Deserialize)]
struct AcceptRequest {
    identity: String,
    fingerprint: String,
    #[serde(default)]
    name: String,
    /// The contact whose new key this is (they changed it), instead of a new contact.
    #[serde(default)]
    replaces: Option<String>,
}

async fn accept_request(State(s): State<AppState>, Form(f): Form<AcceptRequest>) -> Response {
    let sel = Selection::of(&f.identity, None);
    let accepted = match f.replaces {
        Some(contact) => {
            s.node
                .replace_contact_key(f.identity.clone(), contact, f.fingerprint)
                .await
        }
        None => {
            s.node
                .accept_request(f.identity.clone(), f.fingerprint, f.name)
                .await
        }
    };
    match accepted {
        Ok(c) => Redirect::to(&location(&f.identity, Some(&c.name))).into_response(),
        Err(e) => failed(&s, &sel, e, Flash::default()),
    }
}

#[derive(Deserialize)]
struct Send {
    identity: String,
    contact: String,
    text: String,
}

async fn send(State(s): State<AppState>, Form(f): Form<Send>) -> Response {
    let sel = Selection::of(&f.identity, Some(&f.contact));
    match s
        .node
        .send_text(f.identity.clone(), f.contact.clone(), f.text.clone())
        .await
    {
        Ok(_) => Redirect::to(&location(&f.identity, Some(&f.contact))).into_response(),
        Err(e) => failed(&s, &sel, e, with_draft(f.text)),
    }
}
