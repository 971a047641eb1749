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
use crate::settings::{SettingsDialog, settings_dialog};
use crate::{NodePage, page_href};
use chat::{ChatPanel, chat_panel};
use sidebar::{
    ActiveIdentity, contacts_section, identities_section, own_fingerprint, requests_section,
};

/// Renders the node's web page as a complete HTML document.
pub fn node_page(page: &NodePage) -> String {
    let page = page.clone();
    let title = match &page.active_contact {
        Some(contact) => format!("Chat with {contact} · Secure Messenger"),
        None => "Secure Messenger".to_owned(),
    };
    let shell = Shell {
        title,
        body_class: "node",
        script: true,
        previews: Some(page.settings.previews),
        ..Shell::default()
    };
    render_document(shell, move || node_body(page))
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
        requests,
        invite,
        public_key,
        older,
        show_settings,
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
    let dialog = show_settings.then(|| {
        settings_dialog(SettingsDialog {
            identity: active.clone(),
            contact: active_contact.clone(),
            invite: invite.clone(),
            settings,
        })
    });
    let chat = chat_panel(ChatPanel {
        has_identities: !identities.is_empty(),
        identity: active_identity.clone(),
        contact: active_contact.clone(),
        contacts: &contacts,
        messages,
        older,
        draft,
        confirm_delete: confirm_delete_contact,
    });
    let identities = identities_section(
        identities,
        active_identity.clone(),
        ActiveIdentity {
            public_key,
            invite,
            confirm_delete: confirm_delete_identity,
        },
    );
    view! {
        {dialog}
        <a class="skip-link" href="#chat">"Skip to chat"</a>
        <div class="app">
            {topbar(connection, outbox, last_error, settings_href)}
            {flash_error
                .map(|error| {
                    view! {
                        <div class="flash" role="alert">
                            <strong>"Error: "</strong>
                            {error}
                        </div>
                    }
                })}
            <div class="layout">
                <aside class="sidebar" aria-label="Identities and contacts">
                    {identities}
                    {active.map(own_fingerprint)}
                    {contacts_section(active_identity.clone(), contacts, active_contact)}
                    {requests_section(active_identity, requests)}
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
) -> impl IntoView {
    let (label, class) = connection_label(&connection);
    let outbox_text = match outbox {
        0 => "Outbox empty".to_owned(),
        1 => "1 message waiting to send".to_owned(),
        n => format!("{n} messages waiting to send"),
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
                {last_error
                    .map(|error| {
                        view! {
                            <span class="last-error">
                                "Last error: "
                                {error}
                            </span>
                        }
                    })}
            </div>
            <a class="topbar-link" id="open-settings" href=settings_href>
                "Settings"
            </a>
        </header>
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
