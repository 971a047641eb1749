//! The web UI's routes: the page and its HTML forms (POST → 303 on success; on failure the
//! page comes back with the error shown and the typed text still in place). The HTML itself
//! is rendered by the `ui` crate from plain data gathered here.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::AppState;
use crate::error::NodeError;
use crate::service::Node;

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/ui/identities", post(create_identity))
        .route("/ui/contacts", post(add_contact))
        .route("/ui/send", post(send))
        .route("/login", get(login_form).post(login))
        .route(
            ui::STYLESHEET_PATH,
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    ui::STYLESHEET,
                )
            }),
        )
}

#[derive(Deserialize, Default)]
struct Selection {
    identity: Option<String>,
    contact: Option<String>,
}

/// "2026-11-25 21:40 UTC"
fn short_time(ms: u64) -> String {
    let full = crate::api::rfc3339(ms);
    match (full.get(..10), full.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => full,
    }
}

/// A conversation entry as the page shows it.
pub fn message_item(entry: &crate::store::Entry) -> ui::MessageItem {
    match entry {
        crate::store::Entry::Message(m) => ui::MessageItem {
            id: m.id.clone(),
            outgoing: m.direction == crate::store::Direction::Out,
            text: m.text.clone(),
            time: short_time(m.sent_ms),
            status: m.status.as_str().to_owned(),
            ..ui::MessageItem::default()
        },
        crate::store::Entry::Gap {
            missing,
            detected_ms,
        } => ui::MessageItem {
            id: format!("gap-{detected_ms}"),
            gap: Some(*missing),
            time: short_time(*detected_ms),
            ..ui::MessageItem::default()
        },
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
            fingerprint: r.fingerprint.clone(),
            fingerprint_grouped: r
                .fingerprint
                .parse::<crypto::Fingerprint>()
                .map(|f| f.grouped())
                .unwrap_or_default(),
        })
        .collect();
    let active_identity = sel
        .identity
        .clone()
        .filter(|id| records.iter().any(|r| &r.id == id))
        .or_else(|| records.first().map(|r| r.id.clone()));
    let mut page = ui::NodePage {
        identities,
        active_identity: active_identity.clone(),
        ..ui::NodePage::default()
    };
    if let Some(id) = &active_identity {
        let contacts = node.contacts(id)?;
        page.active_contact = sel
            .contact
            .clone()
            .filter(|c| contacts.iter().any(|r| &r.name == c));
        page.contacts = contacts
            .iter()
            .map(|c| ui::ContactItem {
                name: c.name.clone(),
                fingerprint: c.fingerprint.clone(),
            })
            .collect();
        if let Some(contact) = &page.active_contact {
            let mut messages = node.messages(id, contact, None, 200)?;
            messages.reverse();
            page.messages = messages.iter().map(message_item).collect();
        }
    }
    let status = node.status();
    page.connection = status.state.to_owned();
    page.last_error = status.last_error;
    page.outbox = node.outbox_len();
    Ok(page)
}

async fn page(
    State(s): State<AppState>,
    Query(sel): Query<Selection>,
) -> Result<Html<String>, NodeError> {
    Ok(Html(ui::node_page(&build_page(&s.node, &sel)?)))
}

/// The page again with an error and the user's text kept.
fn failed(node: &Node, sel: &Selection, error: &NodeError, draft: String) -> Response {
    let (status, _) = error.status_and_code();
    match build_page(node, sel) {
        Ok(mut page) => {
            page.flash_error = Some(error.to_string());
            page.draft = draft;
            (status, Html(ui::node_page(&page))).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn login_form() -> Html<String> {
    Html(ui::login_page(None))
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// Check the access token and keep it in a cookie for this node's port.
async fn login(State(s): State<AppState>, Form(f): Form<Login>) -> Response {
    let mut headers = axum::http::HeaderMap::new();
    let cookie_header = format!("{}={}", s.token_cookie(), f.token);
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie_header) {
        headers.insert(header::COOKIE, v);
    }
    if !crate::token_matches(&s, &headers) {
        return (
            axum::http::StatusCode::FORBIDDEN,
            Html(ui::login_page(Some(
                "That is not this node's access token.",
            ))),
        )
            .into_response();
    }
    let cookie = cookie::Cookie::build((s.token_cookie().to_owned(), f.token))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .build();
    let mut response = Redirect::to("/").into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct NewIdentity {
    id: String,
    #[serde(default)]
    display_name: String,
}

async fn create_identity(State(s): State<AppState>, Form(f): Form<NewIdentity>) -> Response {
    match s
        .node
        .create_identity(f.id.clone(), Some(f.display_name))
        .await
    {
        Ok(r) => Redirect::to(&location(&r.id, None)).into_response(),
        Err(e) => failed(&s.node, &Selection::default(), &e, String::new()),
    }
}

#[derive(Deserialize)]
struct NewContact {
    identity: String,
    name: String,
    public_key: String,
}

async fn add_contact(State(s): State<AppState>, Form(f): Form<NewContact>) -> Response {
    let sel = Selection {
        identity: Some(f.identity.clone()),
        contact: None,
    };
    match s
        .node
        .add_contact(f.identity.clone(), f.name.clone(), f.public_key)
        .await
    {
        Ok(c) => Redirect::to(&location(&f.identity, Some(&c.name))).into_response(),
        Err(e) => failed(&s.node, &sel, &e, String::new()),
    }
}

#[derive(Deserialize)]
struct Send {
    identity: String,
    contact: String,
    text: String,
}

async fn send(State(s): State<AppState>, Form(f): Form<Send>) -> Response {
    let sel = Selection {
        identity: Some(f.identity.clone()),
        contact: Some(f.contact.clone()),
    };
    match s
        .node
        .send_text(f.identity.clone(), f.contact.clone(), f.text.clone())
        .await
    {
        Ok(_) => Redirect::to(&location(&f.identity, Some(&f.contact))).into_response(),
        Err(e) => failed(&s.node, &sel, &e, f.text),
    }
}
