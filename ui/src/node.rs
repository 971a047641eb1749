//! The node's chat page: header, sidebar (identities, contacts) and chat panel.

use leptos::prelude::*;

use crate::document::render_document;
use crate::{
    ContactItem, IdentityItem, MessageItem, NodePage, encode_query_value, escape_text,
    group_fingerprint,
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
    render_document(title, "node", None, move || node_body(page))
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
    } = page;
    let active = active_identity
        .as_ref()
        .and_then(|id| identities.iter().find(|item| &item.id == id).cloned());
    let chat = chat_panel(
        &identities,
        active_identity.clone(),
        &contacts,
        active_contact.clone(),
        messages,
        draft,
    );
    view! {
        <a class="skip-link" href="#chat">"Skip to chat"</a>
        <div class="app">
            {topbar(connection, outbox, last_error)}
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
                    {identities_section(identities, active_identity.clone())}
                    {active.map(own_fingerprint)}
                    {contacts_section(active_identity, contacts, active_contact)}
                </aside>
                {chat}
            </div>
        </div>
    }
}

fn topbar(connection: String, outbox: usize, last_error: Option<String>) -> impl IntoView {
    let (label, class) = match connection.as_str() {
        "online" => ("Online".to_owned(), "conn conn-online"),
        "connecting" => ("Connecting…".to_owned(), "conn conn-connecting"),
        "offline" => ("Offline".to_owned(), "conn conn-offline"),
        other => (other.to_owned(), "conn conn-unknown"),
    };
    let outbox_text = match outbox {
        0 => "Outbox empty".to_owned(),
        1 => "1 message waiting to send".to_owned(),
        n => format!("{n} messages waiting to send"),
    };
    view! {
        <header class="topbar">
            <h1 class="brand">"Secure Messenger"</h1>
            <div class="connection" role="status">
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
        </header>
    }
}

fn identity_href(id: &str) -> String {
    format!("/?identity={}", encode_query_value(id))
}

fn contact_href(identity: &str, contact: &str) -> String {
    format!(
        "/?identity={}&contact={}",
        encode_query_value(identity),
        encode_query_value(contact)
    )
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

fn identities_section(identities: Vec<IdentityItem>, active: Option<String>) -> impl IntoView {
    let empty = identities.is_empty();
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
            let secondary = identity.display_name.is_some().then(|| identity.id.clone());
            let primary = identity.display_name.unwrap_or(identity.id);
            view! {
                <li>
                    <a class=class href=href aria-current=current>
                        <span class="item-name">{primary}</span>
                        {secondary.map(|id| view! { <span class="item-sub">{id}</span> })}
                    </a>
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="panel identities" aria-labelledby="identities-heading">
            <h2 id="identities-heading">"Local IDs"</h2>
            {empty.then(|| view! { <p class="hint">"No identities yet."</p> })}
            <ul class="list">{items}</ul>
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
            view! {
                <li>
                    <a class=class href=href aria-current=current>
                        <span class="item-name">{contact.name}</span>
                        <span class="item-sub fingerprint" title=contact.fingerprint>
                            {short}
                        </span>
                    </a>
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="panel contacts" aria-labelledby="contacts-heading">
            <h2 id="contacts-heading">"Contacts"</h2>
            {empty.then(|| view! { <p class="hint">"No contacts yet."</p> })}
            <ul class="list">{items}</ul>
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
                    <label for="contact-key">"Public key (PEM)"</label>
                    <textarea
                        id="contact-key"
                        name="public_key"
                        rows="5"
                        required
                        spellcheck="false"
                        placeholder="-----BEGIN PUBLIC KEY-----"
                    ></textarea>
                    <button type="submit">"Add contact"</button>
                </form>
            </details>
        </section>
    }
    .into_any()
}

fn chat_panel(
    identities: &[IdentityItem],
    identity: Option<String>,
    contacts: &[ContactItem],
    contact: Option<String>,
    messages: Vec<MessageItem>,
    draft: String,
) -> impl IntoView + use<> {
    let body = match (identity, contact) {
        (None, _) if identities.is_empty() => empty_state(
            "Create your first identity",
            "An identity is your own key pair. Give it an ID in the Add form under Local IDs; \
             you can then share its public key with the people you want to talk to.",
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
            "Ask the person for their public key (PEM), then paste it into the Add contact \
             form under Contacts, together with a name for them.",
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
            let fingerprint = contacts
                .iter()
                .find(|item| item.name == contact)
                .map(|item| group_fingerprint(&item.fingerprint));
            conversation(identity, contact, fingerprint, messages, draft).into_any()
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

fn conversation(
    identity: String,
    contact: String,
    fingerprint: Option<String>,
    messages: Vec<MessageItem>,
    draft: String,
) -> impl IntoView {
    let empty = messages.is_empty();
    let bubbles = messages
        .into_iter()
        .map(|message| message_bubble(message, &contact))
        .collect_view();
    view! {
        <header class="chat-header">
            <h2 id="chat-title">"Chat with " {contact.clone()}</h2>
            {fingerprint
                .map(|fp| {
                    view! {
                        <p class="chat-sub">
                            "Fingerprint: " <code class="fingerprint">{fp}</code>
                        </p>
                    }
                })}
        </header>
        <div class="scroller">
            <div class="scroller-inner">
                {empty
                    .then(|| {
                        view! {
                            <p class="hint no-messages">
                                "No messages yet. Write the first one below."
                            </p>
                        }
                    })}
                <ol class="messages" aria-labelledby="chat-title">{bubbles}</ol>
            </div>
        </div>
        <form class="compose" method="post" action="/ui/send">
            <input type="hidden" name="identity" value=identity />
            <input type="hidden" name="contact" value=contact />
            <label class="visually-hidden" for="compose-text">"Message"</label>
            <textarea
                id="compose-text"
                name="text"
                rows="3"
                required
                placeholder="Write a message"
                inner_html=textarea_content(&draft)
            ></textarea>
            <button type="submit">"Send"</button>
        </form>
    }
}

/// The escaped content of a `<textarea>` showing `text`: a newline (which the
/// HTML parser drops, so a leading newline of `text` survives) followed by
/// `text` with `&`, `<` and `>` escaped. Leptos treats `<textarea>` children
/// as raw text and does not escape them, so user text must go through here
/// and `inner_html`, never be a child.
fn textarea_content(text: &str) -> String {
    format!("\n{}", escape_text(text))
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
    view! {
        <li class=class data-message-id=id>
            <span class="visually-hidden">{who} ": "</span>
            <p class="msg-text">{text}</p>
            <p class="msg-meta">
                <span class="time">{time}</span>
                {status_view}
            </p>
        </li>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    fn message(id: &str, outgoing: bool, text: &str, status: &str) -> MessageItem {
        MessageItem {
            id: id.to_owned(),
            outgoing,
            text: text.to_owned(),
            time: "2026-11-25 21:40 UTC".to_owned(),
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
        assert!(!html.contains("<script"));
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
        assert!(!html.contains("<script"), "{html}");
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
        assert!(!html.contains("<script"), "{html}");
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
        assert_eq!(html.matches(r#"method="post""#).count(), 3);
        let id = tag_with(&html, r#"name="id""#);
        assert!(id.contains("required") && id.contains("pattern="), "{id}");
        assert!(html.contains(r#"name="display_name""#));
        assert!(html.contains(r#"<input type="hidden" name="identity" value="alice">"#));
        assert!(html.contains(r#"<input type="hidden" name="contact" value="bob">"#));
        assert!(html.contains(r#"name="public_key""#));
        assert!(html.contains(">Public key (PEM)</label>"));
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
        assert!(!html.contains(r#"role="alert""#));
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
        assert!(
            !html.to_ascii_lowercase().contains("<script"),
            "script in {html}"
        );
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
}
