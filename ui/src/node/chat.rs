//! The node page's chat panel: the empty states that say what to do next,
//! and the open conversation: its header (fingerprint, contact details with
//! the safety number, verification, warning and the deletion step), the
//! message list with gap markers and status marks, and the compose form.

use leptos::prelude::*;

use super::{contact_href, verified_mark};
use crate::{ContactItem, MessageItem, page_href, textarea_content};

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

/// What the chat panel shows.
pub(super) struct ChatPanel<'a> {
    pub(super) has_identities: bool,
    pub(super) identity: Option<String>,
    pub(super) contact: Option<String>,
    pub(super) contacts: &'a [ContactItem],
    pub(super) messages: Vec<MessageItem>,
    pub(super) older: Option<String>,
    pub(super) draft: String,
    pub(super) confirm_delete: bool,
    /// The link that opens the "Invite someone" dialog.
    pub(super) invite_href: Option<String>,
    /// The longest message the node sends, in UTF-8 bytes (0: not said).
    pub(super) max_message_bytes: usize,
    /// Message requests waiting for an answer.
    pub(super) requests: usize,
    /// A dialog (or another step) has the focus.
    pub(super) in_dialog: bool,
}

pub(super) fn chat_panel(panel: ChatPanel<'_>) -> impl IntoView + use<> {
    let ChatPanel {
        has_identities,
        identity,
        contact,
        contacts,
        messages,
        older,
        draft,
        confirm_delete,
        invite_href,
        max_message_bytes,
        requests,
        in_dialog,
    } = panel;
    let body = match (identity, contact) {
        (None, _) if !has_identities => empty_state(
            "Create your first profile",
            "A profile is you as others see you: your name and a key of its own. Type your \
             name under Add a profile to start.",
            vec![("#new-name".to_owned(), "Go to Add a profile")],
        )
        .into_any(),
        (None, _) => empty_state(
            "Pick a profile",
            "Choose one of your profiles to see its contacts and conversations.",
            vec![("#identities-heading".to_owned(), "Go to your profiles")],
        )
        .into_any(),
        (Some(_), _) if contacts.is_empty() && requests > 0 => {
            let mut links = vec![("#requests".to_owned(), "See the requests")];
            if let Some(href) = invite_href {
                links.push((href, "Invite someone"));
            }
            links.push(("#contact-key".to_owned(), "Add a contact"));
            let (title, text) = if requests == 1 {
                (
                    "Someone wants to talk to you",
                    "A message request is waiting under Requests. If you know who sent it, \
                     accept it: they become a contact and you can answer. You can also invite \
                     someone yourself.",
                )
            } else {
                (
                    "People want to talk to you",
                    "Message requests are waiting under Requests. Accept those from people \
                     you know: they become contacts and you can answer. You can also invite \
                     someone yourself.",
                )
            };
            empty_state(title, text, links).into_any()
        }
        (Some(_), _) if contacts.is_empty() => {
            let mut links = Vec::new();
            if let Some(href) = invite_href {
                links.push((href, "Invite someone"));
            }
            links.push(("#contact-key".to_owned(), "Add a contact"));
            empty_state(
                "Add your first contact",
                "Send your invite code to the person you want to talk to (Invite someone), \
                 or paste the code they sent you under Add a contact.",
                links,
            )
            .into_any()
        }
        (Some(_), None) => empty_state(
            "Pick a contact",
            "Choose a contact on the left to see your conversation and write to them.",
            vec![("#contacts-heading".to_owned(), "Go to Contacts")],
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
                max_message_bytes,
                confirm_delete,
                in_dialog,
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
    links: Vec<(String, &'static str)>,
) -> impl IntoView {
    let links = links
        .into_iter()
        .map(|(href, label)| view! { <a class="button-link" href=href>{label}</a> " " })
        .collect_view();
    view! {
        <div class="empty-state">
            <h2>{title}</h2>
            <p>{text}</p>
            <p class="empty-actions">{links}</p>
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
    max_message_bytes: usize,
    confirm_delete: bool,
    /// A dialog is open over the chat (it has the focus).
    in_dialog: bool,
}

fn conversation(conversation: Conversation) -> impl IntoView {
    let Conversation {
        identity,
        contact,
        messages,
        older,
        draft,
        max_message_bytes,
        confirm_delete,
        in_dialog,
    } = conversation;
    let max_bytes = (max_message_bytes > 0).then(|| max_message_bytes.to_string());
    let name = contact.name.clone();
    let shown = contact.shown_name().to_owned();
    let empty = messages.is_empty();
    // The composer has focus when a chat opens, unless a step of its own wants it.
    let focus_compose = !confirm_delete && !in_dialog;
    let bubbles = messages
        .into_iter()
        .map(|message| message_bubble(message, &shown))
        .collect_view();
    let older_href = older.map(|id| page_href(Some(&identity), Some(&name), &[("before", &id)]));
    view! {
        {chat_header(&identity, contact, confirm_delete)}
        <div class="scroller" tabindex="0" role="region" aria-label="Messages">
            <div class="scroller-inner" id="message-log" role="log" aria-live="polite">
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
        <form
            class="compose"
            id="compose"
            method="post"
            action="/ui/send"
            data-max-bytes=max_bytes
        >
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
                    autofocus=focus_compose
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
    let shown = contact.shown_name().to_owned();
    let ContactItem {
        name,
        fingerprint_grouped,
        verified,
        safety_number,
        warning,
        mailbox,
        ..
    } = contact;
    let fingerprint = (!fingerprint_grouped.is_empty()).then_some(fingerprint_grouped);
    let groups = safety_groups(&safety_number);
    let safety = if groups.is_empty() {
        view! { <p class="hint">"The safety number is not available."</p> }.into_any()
    } else {
        // The spaces between the groups keep them apart when copied or read
        // aloud; the stylesheet lays the groups out in a grid.
        let digits: String = groups.concat();
        let qr = crate::qr::qr_svg(&digits, "QR code of the safety number");
        let groups = groups
            .into_iter()
            .map(|group| view! { <span>{group}</span> " " })
            .collect_view();
        view! {
            <p class="safety-number" id="safety-number">{groups}</p>
            {qr.map(|svg| view! { <div class="qr-box safety-qr">{svg}</div> })}
        }
        .into_any()
    };
    let (verify_value, verify_label, verify_class) = if verified {
        ("false", "Mark as not verified", "small secondary")
    } else {
        ("true", "Mark as verified", "small")
    };
    let delete_href = page_href(Some(identity), Some(&name), &[("confirm", "contact")]);
    let open = warning.is_some() || confirm_delete;
    let confirm = confirm_delete.then(|| delete_contact_form(identity, &name, &shown));
    let back_href = page_href(Some(identity), None, &[]);
    view! {
        <header class="chat-header">
            <a class="back-link" id="back-to-list" href=back_href>
                <span aria-hidden="true">"← "</span>
                "All conversations"
            </a>
            <h2 id="chat-title">"Chat with " {shown.clone()} {verified.then(verified_mark)}</h2>
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
                    {mailbox
                        .map(|words| {
                            view! { <p class="contact-mailbox" id="contact-mailbox">{words}</p> }
                        })}
                    <h3 id="safety-heading">"Safety number"</h3>
                    {safety}
                    <p class="help">
                        "This is the one thing to compare. Read it out to " {shown.clone()}
                        " in person or on a call (or scan each other's code); when every digit \
                         matches, mark them as verified."
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
                    {fingerprint
                        .map(|fp| {
                            view! {
                                <details class="advanced">
                                    <summary>"Advanced"</summary>
                                    <p class="chat-sub">
                                        "Fingerprint: " <code class="fingerprint">{fp}</code>
                                    </p>
                                </details>
                            }
                        })}
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
fn delete_contact_form(identity: &str, name: &str, shown: &str) -> impl IntoView + use<> {
    let cancel = contact_href(identity, name);
    view! {
        <form
            class="confirm stack"
            id="delete-contact"
            method="post"
            action="/ui/contacts/delete"
            aria-labelledby="delete-contact-heading"
        >
            <h3 id="delete-contact-heading">"Delete contact " {shown.to_owned()} "?"</h3>
            <p class="help">
                "Their key and your conversation are removed from this node. This cannot be \
                 undone."
            </p>
            <input type="hidden" name="identity" value=identity.to_owned() />
            <input type="hidden" name="contact" value=name.to_owned() />
            <label for="confirm-contact">"Type " <code>{shown.to_owned()}</code> " to confirm"</label>
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

/// What the "not forward-secret" mark says when pointed at (the script uses the same words).
pub const NOT_FORWARD_SECRET: &str = "Sent before a forward-secret session with this contact \
    existed: whoever steals this key later could read it from a recording.";

fn message_bubble(message: MessageItem, contact: &str) -> AnyView {
    let MessageItem {
        id,
        outgoing,
        text,
        time,
        time_iso,
        status,
        gap,
        warning,
        note,
        forward_secret,
    } = message;
    if let Some(level) = note {
        let (class, mark) = match level {
            crate::NoteLevel::Info => ("note", "ℹ "),
            crate::NoteLevel::Warning => ("note note-warning", "⚠ "),
        };
        let datetime = (!time_iso.is_empty()).then_some(time_iso);
        return view! {
            <li class=class data-message-id=id role="note">
                <p class="note-text">
                    <span aria-hidden="true">{mark}</span>
                    {text}
                </p>
                <p class="msg-meta">
                    <time class="time" datetime=datetime>{time}</time>
                </p>
            </li>
        }
        .into_any();
    }
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
    let not_forward_secret = (!forward_secret).then(|| {
        view! {
            <span class="not-fs" title=NOT_FORWARD_SECRET>
                "not forward-secret"
            </span>
        }
    });
    view! {
        <li class=class data-message-id=id>
            <span class="visually-hidden">{who} ": "</span>
            <p class="msg-text">{text}</p>
            {warning.map(|w| view! { <p class="msg-warning" role="note">"⚠ " {w}</p> })}
            <p class="msg-meta">
                <time class="time" datetime=datetime>{time}</time>
                {status_view}
                {not_forward_secret}
            </p>
        </li>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodePage;
    use crate::node::node_page;
    use crate::node::tests::{
        XSS, chat_page, contact, element_with, full_page, identity, message, tag_with,
    };

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
    fn a_warning_about_a_message_is_shown_under_its_text() {
        let mut page = chat_page();
        let mut warned = message("m2", false, "two", "received");
        warned.warning = Some(format!("it does not follow {XSS}"));
        page.messages = vec![message("m1", false, "one", "received"), warned];
        let html = node_page(&page);
        let bubble = element_with(&html, r#"data-message-id="m2""#, "li");
        let note = element_with(bubble, r#"class="msg-warning""#, "p");
        assert!(note.contains(r#"role="note""#), "{note}");
        assert!(note.contains("it does not follow"), "{note}");
        assert!(!note.contains("<script"), "escaped: {note}");
        let first = element_with(&html, r#"data-message-id="m1""#, "li");
        assert!(!first.contains("msg-warning"), "{first}");
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
    fn draft_cannot_break_out_of_the_textarea() {
        let mut page = chat_page();
        page.draft = format!("</textarea>{XSS}");
        let html = node_page(&page);
        assert!(!html.contains("<script>"), "{html}");
        assert_eq!(html.matches("</textarea>").count(), 2, "{html}");
        assert!(html.contains("&lt;/textarea&gt;&lt;script&gt;"));
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
    fn messages_that_did_not_go_forward_secret_say_so() {
        let mut page = chat_page();
        let mut old = message("m1", false, "sealed to the RSA key", "received");
        old.forward_secret = false;
        page.messages = vec![old, message("m2", true, "in a session", "sent")];
        let html = node_page(&page);
        assert_eq!(html.matches(r#"class="not-fs""#).count(), 1, "{html}");
        let mark = element_with(&html, r#"class="not-fs""#, "span");
        assert!(mark.contains("not forward-secret"), "{mark}");
        assert!(
            mark.contains("title=\"Sent before a forward-secret session"),
            "{mark}"
        );
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
        assert!(html.contains("Create your first profile"), "{html}");
        assert!(html.contains(r##"href="#new-name""##));
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
        assert!(html.contains("No contacts yet."));
        // The empty state says where the invite is, and where theirs goes.
        let actions = element_with(&html, r#"class="empty-actions""#, "p");
        assert!(
            actions.contains(r#"href="/?identity=alice&amp;invite=1""#),
            "{actions}"
        );
        assert!(actions.contains(">Invite someone</a>"), "{actions}");
        assert!(actions.contains(r##"href="#contact-key""##), "{actions}");
        assert!(html.contains(r#"action="/ui/contacts""#));
        assert!(!html.contains(r#"action="/ui/send""#));
    }

    #[test]
    fn the_compose_form_carries_the_nodes_message_limit_for_the_script() {
        let mut page = chat_page();
        let html = node_page(&page);
        let form = tag_with(&html, r#"id="compose""#);
        assert!(!form.contains("data-max-bytes"), "{form}");
        page.max_message_bytes = 65_536;
        let html = node_page(&page);
        let form = tag_with(&html, r#"id="compose""#);
        assert!(form.contains(r#"data-max-bytes="65536""#), "{form}");
    }

    #[test]
    fn empty_state_without_contacts_points_to_waiting_requests() {
        let mut page = full_page();
        page.contacts.clear();
        page.active_contact = None;
        page.messages.clear();
        let html = node_page(&page);
        assert!(html.contains("Someone wants to talk to you"), "{html}");
        assert!(!html.contains("Add your first contact"), "{html}");
        let actions = element_with(&html, r#"class="empty-actions""#, "p");
        assert!(actions.contains(r##"href="#requests""##), "{actions}");
        assert!(actions.contains(">See the requests</a>"), "{actions}");
        assert!(actions.contains(">Invite someone</a>"), "{actions}");
        assert!(actions.contains(r##"href="#contact-key""##), "{actions}");
        // Two waiting: said in the plural.
        page.requests.push(page.requests[0].clone());
        let html = node_page(&page);
        assert!(html.contains("People want to talk to you"), "{html}");
        assert!(html.contains("Message requests are waiting"), "{html}");
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
}
