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

use leptos::prelude::*;

use crate::document::{Shell, render_document};
use crate::settings::{SettingsDialog, settings_dialog};
use crate::{
    ContactItem, IdentityItem, MessageItem, NodePage, RequestItem, group_fingerprint, page_href,
    textarea_content,
};

/// The HTML `pattern` for identity ids and contact names, equivalent to
/// `[A-Za-z0-9._-]{1,64}`. The `-` is escaped because browsers compile
/// `pattern` with the `v` flag, where an unescaped `-` in a class is a syntax
/// error (and an invalid pattern is silently ignored).
const NAME_PATTERN: &str = r"[A-Za-z0-9._\-]{1,64}";
const NAME_TITLE: &str = "1 to 64 letters, digits, dots, underscores or dashes";

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

fn identity_href(id: &str) -> String {
    page_href(Some(id), None, &[])
}

fn contact_href(identity: &str, contact: &str) -> String {
    page_href(Some(identity), Some(contact), &[])
}

/// The first 16 hex digits of a fingerprint, grouped by four.
fn short_fingerprint(fingerprint: &str) -> String {
    let short: String = fingerprint
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(16)
        .collect();
    group_fingerprint(&short)
}

/// A safety number in groups of five digits (whitespace already in it is
/// ignored), one element per group so the stylesheet can lay them out.
fn safety_groups(safety_number: &str) -> Vec<String> {
    let digits: Vec<char> = safety_number
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    digits
        .chunks(5)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

/// What the sidebar shows for the active identity only.
struct ActiveIdentity {
    public_key: Option<String>,
    invite: Option<String>,
    confirm_delete: bool,
}

fn identities_section(
    identities: Vec<IdentityItem>,
    active: Option<String>,
    extra: ActiveIdentity,
) -> impl IntoView {
    let empty = identities.is_empty();
    let ActiveIdentity {
        public_key,
        invite,
        confirm_delete,
    } = extra;
    let mut actions = Some((public_key, invite));
    let items = identities
        .into_iter()
        .map(|identity| {
            let is_active = active.as_deref() == Some(identity.id.as_str());
            let href = identity_href(&identity.id);
            let (class, current) = if is_active {
                ("item active", Some("page"))
            } else {
                ("item", None)
            };
            let actions = if is_active { actions.take() } else { None }
                .map(|(pem, code)| identity_actions(&identity.id, pem, code));
            let secondary = identity.display_name.is_some().then(|| identity.id.clone());
            let primary = identity.display_name.unwrap_or(identity.id);
            view! {
                <li>
                    <a class=class href=href aria-current=current>
                        <span class="item-name">{primary}</span>
                        {secondary.map(|id| view! { <span class="item-sub">{id}</span> })}
                    </a>
                    {actions}
                </li>
            }
        })
        .collect_view();
    let confirm = active
        .clone()
        .filter(|_| confirm_delete)
        .map(delete_identity_form);
    view! {
        <section class="panel identities" aria-labelledby="identities-heading">
            <h2 id="identities-heading">"Local IDs"</h2>
            {empty.then(|| view! { <p class="hint">"No identities yet."</p> })}
            <ul class="list">{items}</ul>
            {confirm}
            <details class="add" open=empty>
                <summary>"Add an identity"</summary>
                <form class="stack" id="add-identity" method="post" action="/ui/identities">
                    <label for="new-id">"ID"</label>
                    <input
                        id="new-id"
                        name="id"
                        type="text"
                        required
                        maxlength="64"
                        pattern=NAME_PATTERN
                        title=NAME_TITLE
                        autocomplete="off"
                        autocapitalize="off"
                        spellcheck="false"
                        aria-describedby="new-id-help"
                    />
                    <p class="help" id="new-id-help">
                        "Letters, digits, dots, underscores and dashes, up to 64."
                    </p>
                    <label for="new-display-name">"Display name (optional)"</label>
                    <input id="new-display-name" name="display_name" type="text" autocomplete="off" />
                    <button type="submit">"Add"</button>
                </form>
            </details>
        </section>
    }
}

/// "Copy key" and "Copy invite" (script-enhanced, hidden without it) and the
/// link to the deletion step, under the active identity.
fn identity_actions(
    id: &str,
    public_key: Option<String>,
    invite: Option<String>,
) -> impl IntoView + use<> {
    let delete_href = page_href(Some(id), None, &[("confirm", "identity")]);
    let delete_title = format!("Delete identity {id}");
    view! {
        <div class="item-actions">
            {public_key
                .map(|pem| {
                    view! {
                        <button type="button" class="small secondary js-only" data-copy=pem>
                            "Copy key"
                        </button>
                    }
                })}
            {invite
                .map(|code| {
                    view! {
                        <button type="button" class="small secondary js-only" data-copy=code>
                            "Copy invite"
                        </button>
                    }
                })}
            <a class="danger-link" href=delete_href title=delete_title>
                "Delete…"
            </a>
        </div>
    }
}

/// The confirmation step for deleting identity `id`: its id must be typed.
fn delete_identity_form(id: String) -> impl IntoView {
    let cancel = identity_href(&id);
    view! {
        <form
            class="confirm stack"
            id="delete-identity"
            method="post"
            action="/ui/identities/delete"
            aria-labelledby="delete-identity-heading"
        >
            <h3 id="delete-identity-heading">"Delete identity " {id.clone()} "?"</h3>
            <p class="help">
                "Its key, contacts and messages are removed from this node. This cannot be \
                 undone: back up the key first if you may need it again."
            </p>
            <input type="hidden" name="identity" value=id.clone() />
            <label for="confirm-identity">"Type " <code>{id}</code> " to confirm"</label>
            <input
                id="confirm-identity"
                name="confirm"
                type="text"
                required
                autocomplete="off"
                autocapitalize="off"
                spellcheck="false"
                autofocus=true
            />
            <div class="confirm-actions">
                <button type="submit" class="danger">"Delete identity"</button>
                <a href=cancel>"Cancel"</a>
            </div>
        </form>
    }
}

fn own_fingerprint(identity: IdentityItem) -> impl IntoView {
    view! {
        <section class="panel own-fingerprint" aria-labelledby="own-fingerprint-heading">
            <h2 id="own-fingerprint-heading">"Your fingerprint"</h2>
            <p class="help">
                "Compare it with your contact over another channel to rule out impostors."
            </p>
            <code class="fingerprint">{identity.fingerprint_grouped}</code>
        </section>
    }
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

fn contacts_section(
    identity: Option<String>,
    contacts: Vec<ContactItem>,
    active: Option<String>,
) -> impl IntoView {
    let Some(identity) = identity else {
        return view! {
            <section class="panel contacts" aria-labelledby="contacts-heading">
                <h2 id="contacts-heading">"Contacts"</h2>
                <p class="hint">"Create or pick an identity first; contacts belong to it."</p>
            </section>
        }
        .into_any();
    };
    let empty = contacts.is_empty();
    let items = contacts
        .into_iter()
        .map(|contact| {
            let is_active = active.as_deref() == Some(contact.name.as_str());
            let href = contact_href(&identity, &contact.name);
            let (class, current) = if is_active {
                ("item active", Some("page"))
            } else {
                ("item", None)
            };
            let short = short_fingerprint(&contact.fingerprint);
            let key = contact.name.clone();
            let unread = contact.unread;
            let badge = (unread > 0).then(|| {
                view! {
                    <span class="unread" aria-label=format!("{unread} unread")>
                        {unread}
                    </span>
                }
            });
            view! {
                <li>
                    <a class=class href=href aria-current=current data-contact=key>
                        <span class="item-row">
                            <span class="item-name">{contact.name}</span>
                            {contact.verified.then(verified_mark)}
                            {badge}
                        </span>
                        <span class="item-sub fingerprint" title=contact.fingerprint>
                            {short}
                        </span>
                        {contact
                            .preview
                            .map(|preview| view! { <span class="preview">{preview}</span> })}
                    </a>
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="panel contacts" aria-labelledby="contacts-heading">
            <h2 id="contacts-heading">"Contacts"</h2>
            {empty.then(|| view! { <p class="hint">"No contacts yet."</p> })}
            <ul class="list" id="contact-list" data-identity=identity.clone()>
                {items}
            </ul>
            <details class="add" open=empty>
                <summary>"Add a contact"</summary>
                <form class="stack" id="add-contact" method="post" action="/ui/contacts">
                    <input type="hidden" name="identity" value=identity />
                    <label for="contact-name">"Name"</label>
                    <input
                        id="contact-name"
                        name="name"
                        type="text"
                        required
                        maxlength="64"
                        pattern=NAME_PATTERN
                        title=NAME_TITLE
                        autocomplete="off"
                        autocapitalize="off"
                        spellcheck="false"
                    />
                    <label for="contact-key">"Public key (PEM) or invite code"</label>
                    <textarea
                        id="contact-key"
                        name="key_or_invite"
                        rows="5"
                        required
                        spellcheck="false"
                        placeholder="sm1-… or -----BEGIN PUBLIC KEY-----"
                        aria-describedby="contact-key-help"
                    ></textarea>
                    <p class="help" id="contact-key-help">
                        "Paste the invite code or public key they sent you."
                    </p>
                    <button type="submit">"Add contact"</button>
                </form>
            </details>
        </section>
    }
    .into_any()
}

/// Messages from unknown senders: accept (as a named contact) or delete. Not
/// rendered when there are none.
fn requests_section(identity: Option<String>, requests: Vec<RequestItem>) -> Option<AnyView> {
    let identity = identity?;
    if requests.is_empty() {
        return None;
    }
    let items = requests
        .into_iter()
        .enumerate()
        .map(|(index, request)| request_item(&identity, index, request))
        .collect_view();
    Some(
        view! {
            <section class="panel requests" id="requests" aria-labelledby="requests-heading">
                <h2 id="requests-heading">"Requests"</h2>
                <p class="help">
                    "Messages from people who are not your contacts. Compare the fingerprint \
                     before you accept."
                </p>
                <ul class="list request-list">{items}</ul>
            </section>
        }
        .into_any(),
    )
}

fn request_item(identity: &str, index: usize, request: RequestItem) -> impl IntoView + use<> {
    let RequestItem {
        fingerprint,
        count,
        preview,
    } = request;
    let short = short_fingerprint(&fingerprint);
    let count_text = if count == 1 {
        "1 message".to_owned()
    } else {
        format!("{count} messages")
    };
    let name_id = format!("request-name-{index}");
    let (data_fingerprint, title) = (fingerprint.clone(), fingerprint.clone());
    let accept_fingerprint = fingerprint.clone();
    view! {
        <li class="request" data-fingerprint=data_fingerprint>
            <p class="request-from">
                <code class="fingerprint" title=title>{short}</code>
                <span class="request-count">{count_text}</span>
            </p>
            <p class="preview">{preview}</p>
            <form class="request-accept" method="post" action="/ui/requests/accept">
                <input type="hidden" name="identity" value=identity.to_owned() />
                <input type="hidden" name="fingerprint" value=accept_fingerprint />
                <label for=name_id.clone()>"Name"</label>
                <input
                    id=name_id
                    name="name"
                    type="text"
                    required
                    maxlength="64"
                    pattern=NAME_PATTERN
                    title=NAME_TITLE
                    autocomplete="off"
                    autocapitalize="off"
                    spellcheck="false"
                />
                <button type="submit" class="small">"Accept"</button>
            </form>
            <form class="request-delete" method="post" action="/ui/requests/delete">
                <input type="hidden" name="identity" value=identity.to_owned() />
                <input type="hidden" name="fingerprint" value=fingerprint />
                <button type="submit" class="small danger">"Delete"</button>
            </form>
        </li>
    }
}

/// What the chat panel shows.
struct ChatPanel<'a> {
    has_identities: bool,
    identity: Option<String>,
    contact: Option<String>,
    contacts: &'a [ContactItem],
    messages: Vec<MessageItem>,
    older: Option<String>,
    draft: String,
    confirm_delete: bool,
}

fn chat_panel(panel: ChatPanel<'_>) -> impl IntoView + use<> {
    let ChatPanel {
        has_identities,
        identity,
        contact,
        contacts,
        messages,
        older,
        draft,
        confirm_delete,
    } = panel;
    let body = match (identity, contact) {
        (None, _) if !has_identities => empty_state(
            "Create your first identity",
            "An identity is your own key pair. Give it an ID in the Add form under Local IDs; \
             you can then share its invite code with the people you want to talk to.",
            "#new-id",
            "Go to the Add form",
        )
        .into_any(),
        (None, _) => empty_state(
            "Pick an identity",
            "Choose one of your Local IDs to see its contacts and conversations.",
            "#identities-heading",
            "Go to Local IDs",
        )
        .into_any(),
        (Some(_), _) if contacts.is_empty() => empty_state(
            "Add your first contact",
            "Ask the person for their invite code or public key (PEM), then paste it into the \
             Add contact form under Contacts, together with a name for them.",
            "#contact-name",
            "Go to the Add contact form",
        )
        .into_any(),
        (Some(_), None) => empty_state(
            "Pick a contact",
            "Choose a contact on the left to see your conversation and write to them.",
            "#contacts-heading",
            "Go to Contacts",
        )
        .into_any(),
        (Some(identity), Some(contact)) => {
            let item = contacts
                .iter()
                .find(|item| item.name == contact)
                .cloned()
                .unwrap_or_else(|| ContactItem {
                    name: contact,
                    ..ContactItem::default()
                });
            conversation(Conversation {
                identity,
                contact: item,
                messages,
                older,
                draft,
                confirm_delete,
            })
            .into_any()
        }
    };
    view! {
        <main class="chat" id="chat" tabindex="-1">
            {body}
        </main>
    }
}

fn empty_state(
    title: &'static str,
    text: &'static str,
    target: &'static str,
    link: &'static str,
) -> impl IntoView {
    view! {
        <div class="empty-state">
            <h2>{title}</h2>
            <p>{text}</p>
            <p>
                <a class="button-link" href=target>{link}</a>
            </p>
        </div>
    }
}

/// The open conversation.
struct Conversation {
    identity: String,
    contact: ContactItem,
    messages: Vec<MessageItem>,
    older: Option<String>,
    draft: String,
    confirm_delete: bool,
}

fn conversation(conversation: Conversation) -> impl IntoView {
    let Conversation {
        identity,
        contact,
        messages,
        older,
        draft,
        confirm_delete,
    } = conversation;
    let name = contact.name.clone();
    let empty = messages.is_empty();
    let bubbles = messages
        .into_iter()
        .map(|message| message_bubble(message, &name))
        .collect_view();
    let older_href = older.map(|id| page_href(Some(&identity), Some(&name), &[("before", &id)]));
    view! {
        {chat_header(&identity, contact, confirm_delete)}
        <div class="scroller">
            <div class="scroller-inner">
                {older_href
                    .map(|href| {
                        view! {
                            <p class="older">
                                <a id="show-older" href=href>"Show older messages"</a>
                            </p>
                        }
                    })}
                {empty
                    .then(|| {
                        view! {
                            <p class="hint no-messages">
                                "No messages yet. Write the first one below."
                            </p>
                        }
                    })}
                <ol
                    class="messages"
                    id="messages"
                    data-identity=identity.clone()
                    data-contact=name.clone()
                    aria-labelledby="chat-title"
                >
                    {bubbles}
                </ol>
            </div>
        </div>
        <form class="compose" id="compose" method="post" action="/ui/send">
            <input type="hidden" name="identity" value=identity />
            <input type="hidden" name="contact" value=name />
            <label class="visually-hidden" for="compose-text">"Message"</label>
            <div class="compose-field">
                <textarea
                    id="compose-text"
                    name="text"
                    rows="3"
                    required
                    placeholder="Write a message"
                    aria-describedby="compose-hint compose-error"
                    inner_html=textarea_content(&draft)
                ></textarea>
                <p class="compose-hint js-only" id="compose-hint">
                    "Enter sends, Shift+Enter adds a line"
                </p>
                <p id="compose-error" role="alert" class="compose-error" hidden></p>
            </div>
            <button type="submit">"Send"</button>
        </form>
    }
}

/// "Chat with NAME", its fingerprint, and the contact's details: safety
/// number, verification, warning and deletion.
fn chat_header(
    identity: &str,
    contact: ContactItem,
    confirm_delete: bool,
) -> impl IntoView + use<> {
    let ContactItem {
        name,
        fingerprint,
        verified,
        safety_number,
        warning,
        ..
    } = contact;
    let fingerprint = (!fingerprint.is_empty()).then(|| group_fingerprint(&fingerprint));
    let groups = safety_groups(&safety_number);
    let safety = if groups.is_empty() {
        view! { <p class="hint">"The safety number is not available."</p> }.into_any()
    } else {
        // The spaces between the groups keep them apart when copied or read
        // aloud; the stylesheet lays the groups out in a grid.
        let groups = groups
            .into_iter()
            .map(|group| view! { <span>{group}</span> " " })
            .collect_view();
        view! { <p class="safety-number">{groups}</p> }.into_any()
    };
    let (verify_value, verify_label, verify_class) = if verified {
        ("false", "Mark as not verified", "small secondary")
    } else {
        ("true", "Mark as verified", "small")
    };
    let delete_href = page_href(Some(identity), Some(&name), &[("confirm", "contact")]);
    let open = warning.is_some() || confirm_delete;
    let confirm = confirm_delete.then(|| delete_contact_form(identity, &name));
    view! {
        <header class="chat-header">
            <h2 id="chat-title">"Chat with " {name.clone()} {verified.then(verified_mark)}</h2>
            {fingerprint
                .map(|fp| {
                    view! {
                        <p class="chat-sub">
                            "Fingerprint: " <code class="fingerprint">{fp}</code>
                        </p>
                    }
                })}
            <details class="contact-details" id="contact-details" open=open>
                <summary>"Contact details"</summary>
                <div class="details-body">
                    {warning
                        .map(|warning| {
                            view! {
                                <p class="warning" role="note">
                                    <span aria-hidden="true">"⚠ "</span>
                                    {warning}
                                </p>
                            }
                        })}
                    <h3 id="safety-heading">"Safety number"</h3>
                    {safety}
                    <p class="help">
                        "Compare it with " {name.clone()}
                        " in person or on a call. When every digit matches, mark the contact \
                         as verified."
                    </p>
                    <form
                        class="inline-form"
                        id="verify-contact"
                        method="post"
                        action="/ui/contacts/verify"
                    >
                        <input type="hidden" name="identity" value=identity.to_owned() />
                        <input type="hidden" name="contact" value=name.clone() />
                        <input type="hidden" name="verified" value=verify_value />
                        <button type="submit" class=verify_class>{verify_label}</button>
                    </form>
                    {(!confirm_delete)
                        .then(|| {
                            view! {
                                <p>
                                    <a class="danger-link" href=delete_href>
                                        "Delete contact…"
                                    </a>
                                </p>
                            }
                        })}
                </div>
            </details>
            {confirm}
        </header>
    }
}

/// The confirmation step for deleting a contact: its name must be typed.
fn delete_contact_form(identity: &str, name: &str) -> impl IntoView + use<> {
    let cancel = contact_href(identity, name);
    view! {
        <form
            class="confirm stack"
            id="delete-contact"
            method="post"
            action="/ui/contacts/delete"
            aria-labelledby="delete-contact-heading"
        >
            <h3 id="delete-contact-heading">"Delete contact " {name.to_owned()} "?"</h3>
            <p class="help">
                "Their key and your conversation are removed from this node. This cannot be \
                 undone."
            </p>
            <input type="hidden" name="identity" value=identity.to_owned() />
            <input type="hidden" name="contact" value=name.to_owned() />
            <label for="confirm-contact">"Type " <code>{name.to_owned()}</code> " to confirm"</label>
            <input
                id="confirm-contact"
                name="confirm"
                type="text"
                required
                autocomplete="off"
                autocapitalize="off"
                spellcheck="false"
                autofocus=true
            />
            <div class="confirm-actions">
                <button type="submit" class="danger">"Delete contact"</button>
                <a href=cancel>"Cancel"</a>
            </div>
        </form>
    }
}

/// The class-safe form of a status: lowercase ASCII letters, digits and dashes.
fn status_class(status: &str) -> String {
    let clean: String = status
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if clean.is_empty() {
        "status status-unknown".to_owned()
    } else {
        format!("status status-{clean}")
    }
}

/// A short visual mark for an outgoing message's status (the word follows it).
fn status_mark(status: &str) -> &'static str {
    match status {
        "pending" => "🕓",
        "sent" => "✓",
        "delivered" => "✓✓",
        "failed" => "⚠",
        _ => "•",
    }
}

fn message_bubble(message: MessageItem, contact: &str) -> AnyView {
    let MessageItem {
        id,
        outgoing,
        text,
        time,
        time_iso,
        status,
        gap,
    } = message;
    if let Some(missing) = gap {
        let words = if missing == 1 {
            "1 message is missing here".to_owned()
        } else {
            format!("{missing} messages are missing here")
        };
        return view! {
            <li class="gap" data-message-id=id role="note">
                <p class="gap-text">"⚠ " {words} " (expired or lost on the way)"</p>
            </li>
        }
        .into_any();
    }
    let class = if outgoing { "msg out" } else { "msg in" };
    let who = if outgoing {
        "You".to_owned()
    } else {
        contact.to_owned()
    };
    let status_view = outgoing.then(|| {
        let class = status_class(&status);
        let mark = status_mark(&status);
        view! {
            <span class=class>
                <span class="status-mark" aria-hidden="true">{mark}</span>
                " "
                {status}
            </span>
        }
    });
    let datetime = (!time_iso.is_empty()).then_some(time_iso);
    view! {
        <li class=class data-message-id=id>
            <span class="visually-hidden">{who} ": "</span>
            <p class="msg-text">{text}</p>
            <p class="msg-meta">
                <time class="time" datetime=datetime>{time}</time>
                {status_view}
            </p>
        </li>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DashboardPage, SettingsView, dashboard_page, login_page};

    const XSS: &str = "<script>alert(1)</script>";

    fn identity(id: &str) -> IdentityItem {
        IdentityItem {
            id: id.to_owned(),
            display_name: None,
            fingerprint: "ab".repeat(32),
            fingerprint_grouped: "abab ".repeat(16).trim_end().to_owned(),
        }
    }

    fn contact(name: &str) -> ContactItem {
        ContactItem {
            name: name.to_owned(),
            fingerprint: "0123456789abcdef".repeat(4),
            ..ContactItem::default()
        }
    }

    fn message(id: &str, outgoing: bool, text: &str, status: &str) -> MessageItem {
        MessageItem {
            id: id.to_owned(),
            outgoing,
            text: text.to_owned(),
            time: "2026-11-25 21:40 UTC".to_owned(),
            time_iso: "2026-11-25T21:40:00.123Z".to_owned(),
            status: status.to_owned(),
            gap: None,
        }
    }

    /// A page with alice active, talking to bob.
    fn chat_page() -> NodePage {
        NodePage {
            identities: vec![identity("alice"), identity("work")],
            active_identity: Some("alice".to_owned()),
            contacts: vec![contact("bob"), contact("carol")],
            active_contact: Some("bob".to_owned()),
            messages: vec![
                message("m1", false, "first from bob", "received"),
                message("m2", true, "second from me", "delivered"),
                message("m3", true, "third from me", "pending"),
            ],
            connection: "online".to_owned(),
            ..NodePage::default()
        }
    }

    /// The opening tag of the element carrying `needle` (an attribute).
    fn tag_with<'a>(html: &'a str, needle: &str) -> &'a str {
        let at = html
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {html}"));
        let start = html[..at].rfind('<').expect("tag start");
        let end = at + html[at..].find('>').expect("tag end");
        &html[start..=end]
    }

    #[test]
    fn a_gap_marker_says_how_many_are_missing() {
        let page = NodePage {
            identities: vec![identity("alice")],
            active_identity: Some("alice".into()),
            contacts: vec![contact("bob")],
            active_contact: Some("bob".into()),
            messages: vec![
                message("m1", false, "one", "received"),
                MessageItem {
                    id: "gap-1".into(),
                    gap: Some(2),
                    ..MessageItem::default()
                },
                message("m4", false, "four", "received"),
            ],
            ..NodePage::default()
        };
        let html = node_page(&page);
        assert!(html.contains("2 messages are missing here"), "{html}");
        assert!(html.find("one").unwrap_or(0) < html.find("missing here").unwrap_or(0));
        assert!(html.find("missing here").unwrap_or(0) < html.find("four").unwrap_or(0));
    }

    #[test]
    fn is_a_full_document() {
        let html = node_page(&chat_page());
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains(r#"<html lang="en">"#));
        assert!(
            html.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            )
        );
        assert!(html.contains(r#"<link rel="stylesheet" href="/assets/app.css">"#));
        assert!(html.contains("<title>Chat with bob · Secure Messenger</title>"));
        assert!(html.contains("Secure Messenger"));
        assert!(html.ends_with("</html>"));
        // Only the dashboard refreshes itself; here it would lose typed text.
        assert!(!html.contains("http-equiv"), "{html}");
    }

    #[test]
    fn message_text_is_escaped() {
        let mut page = chat_page();
        page.messages = vec![message("x", false, XSS, "received")];
        let html = node_page(&page);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn identity_and_contact_names_are_escaped() {
        let mut page = chat_page();
        page.identities[0].display_name = Some(XSS.to_owned());
        page.identities.push(identity(XSS));
        page.contacts.push(contact(XSS));
        page.active_contact = Some(XSS.to_owned());
        page.last_error = Some(XSS.to_owned());
        page.flash_error = Some(XSS.to_owned());
        let html = node_page(&page);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            html.contains("Chat with <!>&lt;script&gt;")
                || html.contains("Chat with &lt;script&gt;")
        );
    }

    #[test]
    fn draft_cannot_break_out_of_the_textarea() {
        let mut page = chat_page();
        page.draft = format!("</textarea>{XSS}");
        let html = node_page(&page);
        assert!(!html.contains("<script>"), "{html}");
        assert_eq!(html.matches("</textarea>").count(), 2, "{html}");
        assert!(html.contains("&lt;/textarea&gt;&lt;script&gt;"));
    }

    #[test]
    fn query_values_in_links_are_encoded() {
        let mut page = chat_page();
        page.active_identity = Some("a&b c".to_owned());
        page.identities.push(identity("a&b c"));
        page.contacts.push(contact("x=y#z"));
        let html = node_page(&page);
        assert!(html.contains(r#"href="/?identity=a%26b%20c""#), "{html}");
        assert!(html.contains(r#"href="/?identity=a%26b%20c&amp;contact=x%3Dy%23z""#));
        assert!(html.contains(r#"href="/?identity=a%26b%20c&amp;contact=bob""#));
    }

    #[test]
    fn identities_link_and_mark_the_active_one() {
        let html = node_page(&chat_page());
        assert!(html.contains("Local IDs"));
        let alice = tag_with(&html, r#"href="/?identity=alice""#);
        assert!(alice.contains(r#"aria-current="page""#), "{alice}");
        let work = tag_with(&html, r#"href="/?identity=work""#);
        assert!(!work.contains("aria-current"), "{work}");
        // The active identity's fingerprint is shown, grouped.
        assert!(html.contains("abab abab abab"));
    }

    #[test]
    fn contacts_link_with_short_fingerprints() {
        let html = node_page(&chat_page());
        let bob = tag_with(&html, r#"href="/?identity=alice&amp;contact=bob""#);
        assert!(bob.contains(r#"aria-current="page""#), "{bob}");
        let carol = tag_with(&html, r#"href="/?identity=alice&amp;contact=carol""#);
        assert!(!carol.contains("aria-current"), "{carol}");
        assert!(html.contains("0123 4567 89ab cdef<"));
    }

    #[test]
    fn forms_post_to_the_node_with_labelled_fields() {
        let html = node_page(&chat_page());
        assert!(html.contains(r#"action="/ui/identities""#));
        assert!(html.contains(r#"action="/ui/contacts""#));
        assert!(html.contains(r#"action="/ui/send""#));
        assert!(html.contains(r#"action="/ui/contacts/verify""#));
        assert_eq!(html.matches(r#"method="post""#).count(), 4);
        let id = tag_with(&html, r#"name="id""#);
        assert!(id.contains("required") && id.contains("pattern="), "{id}");
        assert!(html.contains(r#"name="display_name""#));
        assert!(html.contains(r#"<input type="hidden" name="identity" value="alice">"#));
        assert!(html.contains(r#"<input type="hidden" name="contact" value="bob">"#));
        let key = tag_with(&html, r#"name="key_or_invite""#);
        assert!(key.starts_with("<textarea"), "{key}");
        assert!(!html.contains(r#"name="public_key""#));
        assert!(html.contains(">Public key (PEM) or invite code</label>"));
        assert!(html.contains(">Add</button>"));
        assert!(html.contains(">Add contact</button>"));
        assert!(html.contains(">Send</button>"));
        // Every visible field has a label pointing at it.
        for field_id in [
            "new-id",
            "new-display-name",
            "contact-name",
            "contact-key",
            "compose-text",
        ] {
            assert!(
                html.contains(&format!(r#"for="{field_id}""#)),
                "label for {field_id}"
            );
            assert!(
                html.contains(&format!(r#"id="{field_id}""#)),
                "field {field_id}"
            );
        }
        assert!(html.contains(">Message</label>"));
        assert!(html.contains(">ID</label>"));
    }

    #[test]
    fn own_and_their_messages_have_classes_and_status() {
        let html = node_page(&chat_page());
        assert!(html.contains("Chat with <!>bob") || html.contains("Chat with bob"));
        let m1 = tag_with(&html, r#"data-message-id="m1""#);
        assert!(m1.contains(r#"class="msg in""#), "{m1}");
        let m2 = tag_with(&html, r#"data-message-id="m2""#);
        assert!(m2.contains(r#"class="msg out""#), "{m2}");
        assert!(html.contains(r#"class="status status-delivered""#));
        assert!(html.contains(r#"class="status status-pending""#));
        assert!(html.contains("✓✓</span> <!>delivered") || html.contains("✓✓</span> delivered"));
        // Incoming messages carry no status mark.
        assert!(!html.contains("status-received"));
        assert!(html.contains("2026-11-25 21:40 UTC"));
    }

    #[test]
    fn messages_keep_their_order_newest_last() {
        let html = node_page(&chat_page());
        let positions: Vec<usize> = ["m1", "m2", "m3"]
            .iter()
            .map(|id| {
                html.find(&format!(r#"data-message-id="{id}""#))
                    .expect("message rendered")
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }

    #[test]
    fn multi_line_text_keeps_its_lines() {
        let mut page = chat_page();
        page.messages = vec![message("x", true, "line one\n  line two", "sent")];
        let html = node_page(&page);
        assert!(html.contains(">line one\n  line two<"), "{html}");
    }

    #[test]
    fn unknown_status_is_class_safe() {
        let mut page = chat_page();
        page.messages = vec![message("x", true, "hi", "we ird\"><b")];
        let html = node_page(&page);
        assert!(html.contains(r#"class="status status-weirdb""#), "{html}");
        assert_eq!(status_class(""), "status status-unknown");
    }

    #[test]
    fn empty_state_without_identities() {
        let html = node_page(&NodePage {
            connection: "connecting".to_owned(),
            ..NodePage::default()
        });
        assert!(html.contains("Create your first identity"), "{html}");
        assert!(html.contains(r##"href="#new-id""##));
        assert!(html.contains(r#"action="/ui/identities""#));
        // The Add form is unfolded when there is nothing else to do.
        assert!(html.contains("<details open"), "{html}");
        // No contact form without an identity to attach contacts to.
        assert!(!html.contains(r#"action="/ui/contacts""#));
        assert!(!html.contains(r#"action="/ui/send""#));
        assert!(html.contains("Connecting"));
    }

    #[test]
    fn empty_state_without_contacts() {
        let mut page = chat_page();
        page.contacts.clear();
        page.active_contact = None;
        page.messages.clear();
        let html = node_page(&page);
        assert!(html.contains("Add your first contact"), "{html}");
        assert!(html.contains("public key"));
        assert!(html.contains("No contacts yet."));
        assert!(html.contains(r##"href="#contact-name""##));
        assert!(html.contains(r#"action="/ui/contacts""#));
        assert!(!html.contains(r#"action="/ui/send""#));
    }

    #[test]
    fn empty_state_without_a_selected_contact() {
        let mut page = chat_page();
        page.active_contact = None;
        page.messages.clear();
        let html = node_page(&page);
        assert!(html.contains("Pick a contact"), "{html}");
        assert!(!html.contains(r#"action="/ui/send""#));
        let bob = tag_with(&html, r#"href="/?identity=alice&amp;contact=bob""#);
        assert!(!bob.contains("aria-current"), "{bob}");
    }

    #[test]
    fn empty_conversation_invites_the_first_message() {
        let mut page = chat_page();
        page.messages.clear();
        let html = node_page(&page);
        assert!(html.contains("No messages yet"), "{html}");
        assert!(html.contains(r#"action="/ui/send""#));
    }

    #[test]
    fn flash_error_is_an_alert_and_the_draft_is_kept() {
        let mut page = chat_page();
        page.flash_error = Some("contact bob has no valid key".to_owned());
        page.draft = "\nhalf-typed\nmessage & more".to_owned();
        let html = node_page(&page);
        let alert = html.find(r#"role="alert""#).expect("alert box");
        assert!(html[alert..].contains("contact bob has no valid key"));
        let textarea = tag_with(&html, r#"id="compose-text""#);
        assert!(textarea.contains(r#"name="text""#), "{textarea}");
        // The parser drops the first newline after <textarea>, so the draft's
        // own leading newline survives.
        assert!(
            html.contains("\n\nhalf-typed\nmessage &amp; more</textarea>"),
            "{html}"
        );
    }

    #[test]
    fn no_flash_no_alert_and_empty_draft_is_empty() {
        let html = node_page(&chat_page());
        assert!(!html.contains(r#"class="flash""#));
        // The only alert is the script's (empty, hidden) compose error.
        assert_eq!(html.matches(r#"role="alert""#).count(), 1);
        let error = tag_with(&html, r#"id="compose-error""#);
        assert!(error.contains("hidden"), "{error}");
        // An empty draft leaves the box empty (not even a space).
        let textarea = tag_with(&html, r#"id="compose-text""#);
        let after = &html[html.find(textarea).expect("textarea") + textarea.len()..];
        assert!(after.starts_with("\n</textarea>"), "{after}");
    }

    #[test]
    fn connection_state_outbox_and_last_error_are_in_the_header() {
        let mut page = chat_page();
        page.connection = "offline".to_owned();
        page.outbox = 3;
        page.last_error = Some("mailbox unreachable".to_owned());
        let html = node_page(&page);
        assert!(html.contains("conn-offline"));
        assert!(html.contains("Offline"));
        assert!(html.contains("3 messages waiting to send"));
        assert!(
            html.contains("Last error: <!>mailbox unreachable")
                || html.contains("Last error: mailbox unreachable")
        );
    }

    fn assert_self_contained(html: &str) {
        assert!(!html.contains("style="), "inline style in {html}");
        // The one script is the node's own file; nothing inline.
        let lower = html.to_ascii_lowercase();
        for (at, _) in lower.match_indices("<script") {
            assert!(
                lower[at..].starts_with(r#"<script src="/assets/app.js" defer></script>"#),
                "inline or foreign script in {html}"
            );
        }
        assert!(lower.matches("<script").count() <= 1, "{html}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "external URL in {html}"
        );
        assert!(!html.contains("<style"), "style element in {html}");
        // No event-handler attributes (` onclick=` and the like).
        let handler = html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!handler, "event handler attribute in {html}");
    }

    #[test]
    fn pages_are_self_contained_without_inline_styles_or_scripts() {
        assert_self_contained(&node_page(&chat_page()));
        assert_self_contained(&node_page(&NodePage::default()));
        let mut page = chat_page();
        page.contacts.clear();
        page.flash_error = Some("x".to_owned());
        page.last_error = Some("y".to_owned());
        assert_self_contained(&node_page(&page));
    }

    /// A page with every part filled: settings open, requests, both
    /// confirmation steps, an older-messages link.
    fn full_page() -> NodePage {
        let mut page = chat_page();
        page.contacts[0].unread = 3;
        page.contacts[0].preview = Some("see you at 8".to_owned());
        page.contacts[0].verified = true;
        page.contacts[0].safety_number = "12345".repeat(12);
        page.contacts[0].warning = Some("bob uses another mailbox".to_owned());
        page.requests = vec![RequestItem {
            fingerprint: "fe".repeat(32),
            count: 2,
            preview: "hello, it's dave".to_owned(),
        }];
        page.invite = Some("sm1-eyJuYW1lIjoiYWxpY2UifQ".to_owned());
        page.public_key =
            Some("-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----\n".to_owned());
        page.older = Some("m0".to_owned());
        page.show_settings = true;
        page.settings = SettingsView {
            mailbox: format!("127.0.0.1:7000#{}", "ab".repeat(32)),
            test_result: Some("Connected: the mailbox answered".to_owned()),
            previews: true,
        };
        page.confirm_delete_identity = true;
        page.confirm_delete_contact = true;
        page
    }

    /// The element starting at the tag carrying `needle`, up to its end tag
    /// `</name>` (no nesting of the same element assumed).
    fn element_with<'a>(html: &'a str, needle: &str, name: &str) -> &'a str {
        let start = if needle.starts_with('<') {
            html.find(needle)
                .unwrap_or_else(|| panic!("{needle} not in {html}"))
        } else {
            html.find(tag_with(html, needle)).expect("tag")
        };
        let end = start + html[start..].find(&format!("</{name}>")).expect("end tag");
        &html[start..end + name.len() + 3]
    }

    #[test]
    fn a_full_page_is_self_contained() {
        let html = node_page(&full_page());
        assert_self_contained(&html);
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn the_script_is_loaded_by_the_node_page_only() {
        let html = node_page(&chat_page());
        assert!(
            html.contains(r#"<script src="/assets/app.js" defer></script></head>"#),
            "{html}"
        );
        assert_eq!(html.matches("<script").count(), 1);
        for page in [node_page(&NodePage::default()), node_page(&full_page())] {
            assert_eq!(page.matches("<script").count(), 1, "{page}");
        }
        assert!(!login_page(None).contains("<script"));
        assert!(!dashboard_page(&DashboardPage::default()).contains("<script"));
        assert!(!login_page(None).contains("data-previews"));
    }

    #[test]
    fn body_tells_the_script_whether_to_show_previews() {
        let mut page = chat_page();
        assert!(node_page(&page).contains(r#"<body data-previews="false" class="node">"#));
        page.settings.previews = true;
        assert!(node_page(&page).contains(r#"<body data-previews="true" class="node">"#));
    }

    #[test]
    fn header_has_the_connection_status_and_a_settings_link() {
        let html = node_page(&chat_page());
        let status = tag_with(&html, r#"id="connection""#);
        assert!(status.contains(r#"role="status""#), "{status}");
        let link = element_with(&html, r#"id="open-settings""#, "a");
        assert!(
            link.contains(r#"href="/?identity=alice&amp;contact=bob&amp;settings=1""#),
            "{link}"
        );
        assert!(link.ends_with(">Settings</a>"), "{link}");
        let html = node_page(&NodePage::default());
        let link = tag_with(&html, r#"id="open-settings""#);
        assert!(link.contains(r#"href="/?settings=1""#), "{link}");
    }

    #[test]
    fn the_active_identity_has_copy_buttons_and_a_delete_link() {
        let html = node_page(&full_page());
        let key = tag_with(&html, "data-copy=\"-----BEGIN");
        assert!(key.starts_with(r#"<button type="button""#), "{key}");
        assert!(key.contains("js-only"), "{key}");
        assert!(html.contains(">Copy key</button>"));
        let invite = tag_with(
            &html,
            r#"data-copy="sm1-eyJuYW1lIjoiYWxpY2UifQ" class="small"#,
        );
        assert!(invite.contains("js-only"), "{invite}");
        assert!(html.contains(">Copy invite</button>"));
        assert!(html.contains(r#"href="/?identity=alice&amp;confirm=identity""#));
        assert!(html.contains(">Delete…</a>"));
        // Only under the active identity.
        assert_eq!(html.matches(">Copy key</button>").count(), 1);
        assert_eq!(html.matches(">Delete…</a>").count(), 1);
        // Without a key or an invite, no buttons (the delete link stays).
        let html = node_page(&chat_page());
        assert!(!html.contains("data-copy"), "{html}");
        assert!(html.contains(">Delete…</a>"));
    }

    #[test]
    fn confirmation_steps_render_only_when_flagged() {
        let html = node_page(&chat_page());
        assert!(!html.contains("/ui/identities/delete"), "{html}");
        assert!(!html.contains("/ui/contacts/delete"));
        assert!(!html.contains(r#"name="confirm""#));
        assert!(html.contains(r#"href="/?identity=alice&amp;contact=bob&amp;confirm=contact""#));
        assert!(html.contains(">Delete contact…</a>"));

        let mut page = chat_page();
        page.confirm_delete_identity = true;
        let html = node_page(&page);
        let form = element_with(&html, r#"action="/ui/identities/delete""#, "form");
        assert!(form.contains(r#"method="post""#), "{form}");
        assert!(form.contains(r#"<input type="hidden" name="identity" value="alice">"#));
        let field = tag_with(form, r#"name="confirm""#);
        assert!(
            field.contains(r#"type="text""#) && field.contains("required"),
            "{field}"
        );
        assert!(form.contains(r#"for="confirm-identity""#));
        assert!(
            form.contains(r#"<a href="/?identity=alice">Cancel</a>"#),
            "{form}"
        );
        assert!(!html.contains("/ui/contacts/delete"));

        let mut page = chat_page();
        page.confirm_delete_contact = true;
        let html = node_page(&page);
        let form = element_with(&html, r#"action="/ui/contacts/delete""#, "form");
        assert!(form.contains(r#"<input type="hidden" name="identity" value="alice">"#));
        assert!(form.contains(r#"<input type="hidden" name="contact" value="bob">"#));
        assert!(tag_with(form, r#"name="confirm""#).contains("required"));
        assert!(form.contains("<code>bob</code>"), "{form}");
        assert!(form.contains(r#"<a href="/?identity=alice&amp;contact=bob">Cancel</a>"#));
        assert!(!html.contains("/ui/identities/delete"));
        // The link to the step is replaced by the step itself.
        assert!(!html.contains(">Delete contact…</a>"));
    }

    #[test]
    fn contacts_show_unread_badges_verified_marks_and_previews() {
        let html = node_page(&full_page());
        let bob = element_with(&html, r#"data-contact="bob""#, "a");
        assert!(
            bob.contains(r#"<span aria-label="3 unread" class="unread">3</span>"#),
            "{bob}"
        );
        assert!(bob.contains(r#"class="verified""#), "{bob}");
        assert!(
            bob.contains(r#"<span class="preview">see you at 8</span>"#),
            "{bob}"
        );
        // carol: nothing unread, no badge; not verified; no preview.
        let carol = element_with(&html, r#"data-contact="carol""#, "a");
        assert!(!carol.contains("unread"), "{carol}");
        assert!(!carol.contains("verified"), "{carol}");
        assert!(!carol.contains("preview"), "{carol}");
        assert_eq!(html.matches(r#"class="unread""#).count(), 1);
        // The list names its identity for the script.
        let list = tag_with(&html, r#"id="contact-list""#);
        assert!(list.contains(r#"data-identity="alice""#), "{list}");
    }

    #[test]
    fn requests_list_with_accept_and_delete_forms() {
        let html = node_page(&full_page());
        let section = element_with(&html, r#"id="requests""#, "section");
        assert!(section.contains(">Requests</h2>"), "{section}");
        assert!(section.contains("fefe fefe fefe fefe"), "{section}");
        assert!(section.contains("2 messages"));
        assert!(section.contains("hello, it&#39;s dave") || section.contains("hello, it's dave"));
        let accept = element_with(section, r#"action="/ui/requests/accept""#, "form");
        assert!(accept.contains(r#"method="post""#));
        assert!(accept.contains(r#"<input type="hidden" name="identity" value="alice">"#));
        let fingerprint = format!(
            r#"<input type="hidden" name="fingerprint" value="{}">"#,
            "fe".repeat(32)
        );
        assert!(accept.contains(&fingerprint), "{accept}");
        assert!(tag_with(accept, r#"name="name""#).contains("required"));
        assert!(accept.contains(r#"for="request-name-0""#));
        assert!(accept.contains(">Accept</button>"));
        let delete = element_with(section, r#"action="/ui/requests/delete""#, "form");
        assert!(delete.contains(r#"<input type="hidden" name="identity" value="alice">"#));
        assert!(delete.contains(&fingerprint));
        assert!(delete.contains(">Delete</button>"));
        let one = NodePage {
            requests: vec![RequestItem {
                count: 1,
                ..full_page().requests[0].clone()
            }],
            ..chat_page()
        };
        assert!(node_page(&one).contains(">1 message<"));
    }

    #[test]
    fn no_requests_section_without_requests() {
        let html = node_page(&chat_page());
        assert!(!html.contains("Requests"), "{html}");
        assert!(!html.contains("/ui/requests/"));
    }

    #[test]
    fn contact_details_have_the_safety_number_verification_and_warning() {
        let html = node_page(&full_page());
        let details = element_with(&html, r#"id="contact-details""#, "details");
        // Opened because there is a warning.
        assert!(
            details.starts_with("<details id=\"contact-details\" open"),
            "{details}"
        );
        assert!(details.contains("<summary>Contact details</summary>"));
        assert!(
            details.contains(&"<span>12345</span> ".repeat(12)),
            "{details}"
        );
        let warning = element_with(details, r#"role="note""#, "p");
        assert!(warning.contains("bob uses another mailbox"), "{warning}");
        let verify = element_with(details, r#"action="/ui/contacts/verify""#, "form");
        assert!(verify.contains(r#"<input type="hidden" name="identity" value="alice">"#));
        assert!(verify.contains(r#"<input type="hidden" name="contact" value="bob">"#));
        assert!(
            verify.contains(r#"name="verified" value="false""#),
            "{verify}"
        );
        assert!(verify.contains(">Mark as not verified</button>"));

        let mut page = chat_page();
        page.contacts[0].safety_number = "1234512345 12345".to_owned();
        let html = node_page(&page);
        let details = element_with(&html, r#"id="contact-details""#, "details");
        assert!(!details.contains(" open"), "{details}");
        assert!(!details.contains(r#"role="note""#));
        assert!(details.contains(r#"name="verified" value="true""#));
        assert!(details.contains(">Mark as verified</button>"));
        assert!(details.contains("<span>12345</span> <span>12345</span> <span>12345</span>"));
    }

    #[test]
    fn messages_carry_what_the_script_needs() {
        let html = node_page(&chat_page());
        let list = tag_with(&html, r#"id="messages""#);
        assert!(list.starts_with("<ol"), "{list}");
        assert!(list.contains(r#"data-identity="alice""#), "{list}");
        assert!(list.contains(r#"data-contact="bob""#), "{list}");
        assert!(list.contains(r#"class="messages""#), "{list}");
        assert!(html.contains(
            r#"<time datetime="2026-11-25T21:40:00.123Z" class="time">2026-11-25 21:40 UTC</time>"#
        ));
        let compose = tag_with(&html, r#"id="compose""#);
        assert!(compose.starts_with("<form"), "{compose}");
        assert!(compose.contains(r#"action="/ui/send""#));
        assert!(html.contains("Enter sends, Shift+Enter adds a line"));
        let error = tag_with(&html, r#"id="compose-error""#);
        assert!(error.starts_with("<p"), "{error}");
        assert!(error.contains(r#"role="alert""#) && error.contains("hidden"));
        // No "older" link unless there are older messages.
        assert!(!html.contains("Show older messages"));
    }

    #[test]
    fn a_link_shows_older_messages_at_the_top() {
        let mut page = chat_page();
        page.older = Some("m 0".to_owned());
        let html = node_page(&page);
        let link = element_with(&html, r#"id="show-older""#, "a");
        assert!(
            link.contains(r#"href="/?identity=alice&amp;contact=bob&amp;before=m%200""#),
            "{link}"
        );
        assert!(link.ends_with(">Show older messages</a>"));
        assert!(
            html.find("Show older").unwrap_or(usize::MAX)
                < html.find("data-message-id").unwrap_or(0)
        );
    }

    #[test]
    fn the_settings_dialog_renders_only_when_asked() {
        let html = node_page(&chat_page());
        assert!(!html.contains("<dialog"), "{html}");
        assert!(!html.contains("<svg"));
        assert!(!html.contains("/ui/settings"));

        let html = node_page(&full_page());
        let dialog = element_with(&html, "<dialog", "dialog");
        assert!(dialog.starts_with("<dialog open"), "{dialog}");
        assert!(dialog.contains(r#"class="modal""#));
        assert!(dialog.contains(r#"aria-labelledby="settings-heading""#));
        assert!(dialog.contains(r#"<h2 id="settings-heading">Settings</h2>"#));
        let close = element_with(dialog, r#"id="close-settings""#, "a");
        assert!(
            close.contains(r#"href="/?identity=alice&amp;contact=bob""#),
            "{close}"
        );
        assert!(close.ends_with(">Close</a>"));
        // Save: the mailbox prefilled, the previews checkbox, the way back.
        let save = element_with(dialog, r#"action="/ui/settings""#, "form");
        assert!(save.contains(r#"method="post""#));
        assert!(save.contains(r#"<input type="hidden" name="identity" value="alice">"#));
        assert!(save.contains(r#"<input type="hidden" name="contact" value="bob">"#));
        let mailbox = tag_with(save, r#"name="mailbox""#);
        assert!(mailbox.contains(&format!(r#"value="127.0.0.1:7000#{}""#, "ab".repeat(32))));
        let previews = tag_with(save, r#"name="previews""#);
        assert!(previews.contains(r#"type="checkbox""#) && previews.contains("checked"));
        assert!(save.contains("Show message text in notifications"));
        assert!(save.contains(">Save</button>"));
        // Test connection, and its result in words.
        let test = element_with(dialog, r#"action="/ui/settings/test""#, "form");
        assert!(test.contains(r#"<input type="hidden" name="identity" value="alice">"#));
        assert!(test.contains(">Test connection</button>"));
        let result = element_with(dialog, r#"id="test-result""#, "p");
        assert!(result.contains(r#"role="status""#));
        assert!(result.contains("Connected: the mailbox answered"));
        // The invite: fingerprint, code, copy button, QR code.
        assert!(dialog.contains("abab abab abab"));
        assert!(
            dialog.contains("\nsm1-eyJuYW1lIjoiYWxpY2UifQ</textarea>"),
            "{dialog}"
        );
        assert!(tag_with(dialog, r#"id="settings-invite""#).contains("readonly"));
        assert!(dialog.contains(r#"data-copy="sm1-eyJuYW1lIjoiYWxpY2UifQ""#));
        let svg = element_with(dialog, "<svg", "svg");
        assert!(svg.contains(r#"role="img""#), "{svg}");
        assert!(svg.contains(r#"aria-label="QR code of your invite""#));
        assert!(svg.contains("<path d=\"M4,4h7v1h-7z"));
        assert!(!svg.contains("style") && !svg.contains("xmlns"));
        // Notifications: only with the script.
        let enable = tag_with(dialog, r#"id="enable-notifications""#);
        assert!(enable.contains("js-only") && enable.contains(r#"type="button""#));
        assert!(!html.contains("style="));
        // Not checked when previews are off; no result before a test.
        let mut page = full_page();
        page.settings.previews = false;
        page.settings.test_result = None;
        let html = node_page(&page);
        assert!(!tag_with(&html, r#"name="previews""#).contains("checked"));
        assert!(!html.contains(r#"id="test-result""#));
    }

    #[test]
    fn the_settings_dialog_works_without_an_identity() {
        let page = NodePage {
            show_settings: true,
            settings: SettingsView {
                mailbox: "mb.example:7000".to_owned(),
                ..SettingsView::default()
            },
            ..NodePage::default()
        };
        let html = node_page(&page);
        let dialog = element_with(&html, "<dialog", "dialog");
        assert!(dialog.contains(r#"action="/ui/settings""#));
        assert!(!dialog.contains(r#"name="identity""#), "{dialog}");
        assert!(!dialog.contains("<svg"));
        assert!(tag_with(dialog, r#"id="close-settings""#).contains(r#"href="/""#));
        assert_self_contained(&html);
    }

    #[test]
    fn new_user_text_is_escaped() {
        let mut page = full_page();
        page.contacts[0].preview = Some(XSS.to_owned());
        page.contacts[0].warning = Some(XSS.to_owned());
        page.contacts[0].safety_number = XSS.to_owned();
        page.requests[0].preview = XSS.to_owned();
        page.requests[0].fingerprint = format!("\"><b>{XSS}");
        page.invite = Some(format!("</textarea>{XSS}"));
        page.public_key = Some(format!("\"><b>{XSS}"));
        page.settings.test_result = Some(XSS.to_owned());
        page.settings.mailbox = format!("\"><b>{XSS}");
        page.older = Some(XSS.to_owned());
        let html = node_page(&page);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        // The invite cannot end its textarea early: only the two real ones end.
        assert_eq!(html.matches("</textarea>").count(), 3, "{html}");
        assert!(html.contains("&lt;/textarea&gt;&lt;script&gt;"));
        // Each text shows as text: preview, warning, request preview, result,
        // invite (textarea and copy button), key, mailbox and fingerprint.
        assert!(
            html.matches("&lt;script&gt;alert(1)&lt;/script&gt;")
                .count()
                >= 8,
            "{html}"
        );
        let bob = element_with(&html, r#"data-contact="bob""#, "a");
        assert!(
            bob.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{bob}"
        );
        assert!(html.contains(r#"before=%3Cscript%3Ealert%281%29%3C%2Fscript%3E""#));
        assert_self_contained(&html);
    }
}
