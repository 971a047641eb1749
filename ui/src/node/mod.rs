//! The node's chat page: header, sidebar (identities, contacts, requests),
//! chat panel and the settings dialog.
//!
//! Every action is a plain form POST, so the page works without JavaScript.
//! The script ([`crate::SCRIPT`]) relies on the ids, classes and `data-*`
//! attributes rendered here: `#connection`, `#messages` (`data-identity`,
//! `data-contact`), `li[data-message-id]`, `#compose`, `#compose-text`,
//! `#compose-error`, `a[data-contact]` with `.unread` and `.preview`,
//! `[data-copy]`, `#enable-notifications`, `dialog#settings`, `time[datetime]`
//! and `body[data-previews]`.
//!
//! This module holds the entry point [`node_page`], the page layout, the
//! topbar and the small helpers both columns use. The submodules:
//!
//! - `sidebar`: the left column: local identities (with their copy buttons and
//!   deletion step), the own fingerprint, contacts and message requests.
//! - `chat`: the right column: the empty states, the open conversation with
//!   its header (contact details, safety number, deletion step), the message
//!   list and the compose form.
//! - `tests` (tests only): tests of the page as a whole and the fixtures the
//!   submodules' tests share.
//!
//! The data the node passes in ([`NodePage`] and its items) is defined at the
//! crate root, and the settings dialog in `crate::settings`.

mod chat;
mod sidebar;
#[cfg(test)]
mod tests;

use leptos::prelude::*;

use crate::document::{Shell, render_document};
use crate::invite::invite_dialog;
use crate::settings::{SettingsDialog, settings_dialog};
use crate::{IdentityItem, NodePage, page_href};
use chat::{ChatPanel, chat_panel};
use sidebar::{
    ActiveIdentity, BackupView, RequestsView, advanced_section, contacts_section,
    identities_section, requests_section,
};

/// Renders the node's web page as a complete HTML document.
pub fn node_page(page: &NodePage) -> String {
    let page = page.clone();
    let title = page_title(&page);
    let shell = Shell {
        title,
        body_class: "node",
        script: true,
        previews: Some(page.settings.previews),
        theme: match page.settings.theme.as_str() {
            "light" => Some("light"),
            "dark" => Some("dark"),
            _ => None,
        },
        ..Shell::default()
    };
    render_document(shell, move || node_body(page))
}

/// The tab's title: the open conversation's contact and the profile.
fn page_title(page: &NodePage) -> String {
    let profile = page
        .active_identity
        .as_ref()
        .and_then(|id| page.identities.iter().find(|i| &i.id == id))
        .map(IdentityItem::shown_name);
    let contact = page.active_contact.as_ref().map(|c| {
        match page.contacts.iter().find(|item| &item.name == c) {
            Some(item) => item.shown_name(),
            None => c.as_str(),
        }
    });
    let title = match (contact, profile) {
        (Some(contact), Some(profile)) => {
            format!("{contact} · {profile} · Secure Messenger")
        }
        (None, Some(profile)) => format!("{profile} · Secure Messenger"),
        _ => "Secure Messenger".to_owned(),
    };
    // What waits unseen: unread messages of the other conversations, and requests.
    let unread: usize = page
        .contacts
        .iter()
        .filter(|c| page.active_contact.as_deref() != Some(c.name.as_str()))
        .map(|c| c.unread)
        .sum::<usize>()
        + page.requests.len();
    if unread > 0 {
        format!("({unread}) {title}")
    } else {
        title
    }
}

fn node_body(page: NodePage) -> impl IntoView {
    let NodePage {
        identities,
        active_identity,
        contacts,
        active_contact,
        messages,
        connection,
        outbox,
        last_error,
        flash_error,
        draft,
        max_message_bytes,
        kept,
        requests,
        confirm_delete_request,
        blocked,
        invite,
        public_key,
        older,
        show_settings,
        show_invite,
        settings,
        confirm_delete_identity,
        confirm_delete_contact,
    } = page;
    let active = active_identity
        .as_ref()
        .and_then(|id| identities.iter().find(|item| &item.id == id).cloned());
    let settings_href = page_href(
        active_identity.as_deref(),
        active_contact.as_deref(),
        &[("settings", "1")],
    );
    let dialog = if show_settings {
        Some(
            settings_dialog(SettingsDialog {
                identity: active.clone(),
                contact: active_contact.clone(),
                settings,
            })
            .into_any(),
        )
    } else {
        active
            .clone()
            .filter(|_| show_invite)
            .map(|identity| invite_dialog(identity, active_contact.clone(), invite).into_any())
    };
    let invite_href = active_identity
        .as_deref()
        .map(|id| page_href(Some(id), active_contact.as_deref(), &[("invite", "1")]));
    let chat = chat_panel(ChatPanel {
        has_identities: !identities.is_empty(),
        identity: active_identity.clone(),
        contact: active_contact.clone(),
        contacts: &contacts,
        messages,
        older,
        draft,
        confirm_delete: confirm_delete_contact,
        invite_href,
        max_message_bytes,
        requests: requests.len(),
        in_dialog: dialog.is_some() || confirm_delete_identity || confirm_delete_request.is_some(),
    });
    let request_count = requests.len();
    // On a phone the list and the open chat are two screens (see the stylesheet).
    let layout_class = if active_contact.is_some() {
        "layout chat-open"
    } else {
        "layout"
    };
    let identities = identities_section(
        identities,
        active_identity.clone(),
        ActiveIdentity {
            confirm_delete: confirm_delete_identity,
            kept_name: kept.profile_name,
            contact: active_contact.clone(),
        },
    );
    view! {
        {dialog}
        <a class="skip-link" href="#chat">"Skip to chat"</a>
        <div class="app">
            {topbar(connection, outbox, last_error, settings_href, request_count)}
            {flash_error
                .map(|error| {
                    view! {
                        <div class="flash" role="alert">
                            <strong>"Error: "</strong>
                            {error}
                        </div>
                    }
                })}
            <div class=layout_class>
                <aside class="sidebar" aria-label="Identities and contacts">
                    {identities}
                    {requests_section(RequestsView {
                        identity: active_identity.clone(),
                        contact: active_contact.clone(),
                        requests,
                        confirm_delete: confirm_delete_request,
                    })}
                    {contacts_section(
                        active_identity,
                        contacts,
                        active_contact,
                        (kept.contact_key, kept.contact_name),
                    )}
                    {active
                        .map(|identity| {
                            let backup = BackupView {
                                open: confirm_delete_identity,
                                error: kept.backup_error,
                            };
                            advanced_section(identity, public_key, blocked, backup)
                        })}
                </aside>
                {chat}
            </div>
        </div>
    }
}

/// The label and class of a connection state, as the script renders them too.
fn connection_label(connection: &str) -> (String, &'static str) {
    match connection {
        "online" => ("Online".to_owned(), "conn conn-online"),
        "connecting" => ("Connecting…".to_owned(), "conn conn-connecting"),
        "offline" => ("Offline".to_owned(), "conn conn-offline"),
        other => (other.to_owned(), "conn conn-unknown"),
    }
}

fn topbar(
    connection: String,
    outbox: usize,
    last_error: Option<String>,
    settings_href: String,
    requests: usize,
) -> impl IntoView {
    let requests_link = (requests > 0).then(|| {
        view! {
            <a class="topbar-link requests-link" id="requests-link" href="#requests">
                "Requests: " {requests}
            </a>
        }
    });
    let (label, class) = connection_label(&connection);
    let outbox_text = match outbox {
        0 => "All sent".to_owned(),
        n => format!("Waiting to send: {n}"),
    };
    view! {
        <header class="topbar">
            <h1 class="brand">"Secure Messenger"</h1>
            <div class="connection" id="connection" role="status">
                <span class=class>
                    <span class="dot" aria-hidden="true"></span>
                    {label}
                </span>
                <span class="outbox">{outbox_text}</span>
                {last_error.map(last_error_view)}
            </div>
            {requests_link}
            <a class="topbar-link" id="open-settings" href=settings_href>
                "Settings"
            </a>
        </header>
    }
}

/// The longest error line the header shows; longer errors are cut at their first clause.
const SHORT_ERROR: usize = 80;

/// An error as one short line, and the whole text when that is longer (the script cuts
/// live errors the same way).
fn error_summary(text: &str) -> (String, Option<String>) {
    if text.chars().count() <= SHORT_ERROR {
        return (text.to_owned(), None);
    }
    let cut = [": ", ". ", "; "]
        .iter()
        .filter_map(|sep| text.find(sep))
        .min()
        .filter(|&at| text[..at].chars().count() <= SHORT_ERROR);
    let short = match cut {
        Some(at) => format!("{}.", &text[..at]),
        None => format!(
            "{}…",
            text.chars().take(SHORT_ERROR - 1).collect::<String>()
        ),
    };
    (short, Some(text.to_owned()))
}

/// The last connection error in the header: one short line, the rest behind "Details".
fn last_error_view(error: String) -> impl IntoView {
    let (short, details) = error_summary(&error);
    view! {
        <span class="last-error">
            <span class="last-error-text">{short}</span>
            {details
                .map(|full| {
                    view! {
                        <details class="error-details">
                            <summary>"Details"</summary>
                            <p>{full}</p>
                        </details>
                    }
                })}
        </span>
    }
}

fn contact_href(identity: &str, contact: &str) -> String {
    page_href(Some(identity), Some(contact), &[])
}

/// A check mark for a verified contact (its word for screen readers).
fn verified_mark() -> impl IntoView {
    view! {
        <span class="verified" title="Verified">
            <span aria-hidden="true">"✓"</span>
            <span class="visually-hidden">" (verified)"</span>
        </span>
    }
}
