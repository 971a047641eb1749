//! Tests of the node page as a whole: the document shell, the topbar, the
//! settings dialog, escaping and self-containment across all parts, plus the
//! fixtures (sample pages and HTML probes) that the sidebar and chat tests
//! share.

use super::node_page;
use crate::{
    ContactItem, DashboardPage, IdentityItem, MessageItem, NodePage, RequestItem, SettingsView,
    dashboard_page, login_page,
};

pub(super) const XSS: &str = "<script>alert(1)</script>";

pub(super) fn identity(id: &str) -> IdentityItem {
    IdentityItem {
        id: id.to_owned(),
        display_name: None,
        fingerprint: "ab".repeat(32),
        fingerprint_grouped: "abab ".repeat(16).trim_end().to_owned(),
    }
}

pub(super) fn contact(name: &str) -> ContactItem {
    ContactItem {
        name: name.to_owned(),
        fingerprint: "0123456789abcdef".repeat(4),
        fingerprint_grouped: "0123 4567 89ab cdef ".repeat(4).trim_end().to_owned(),
        ..ContactItem::default()
    }
}

pub(super) fn message(id: &str, outgoing: bool, text: &str, status: &str) -> MessageItem {
    MessageItem {
        id: id.to_owned(),
        outgoing,
        text: text.to_owned(),
        time: "2026-11-25 21:40 UTC".to_owned(),
        time_iso: "2026-11-25T21:40:00.123Z".to_owned(),
        status: status.to_owned(),
        gap: None,
        warning: None,
        note: None,
        forward_secret: true,
    }
}

/// A page with alice active, talking to bob.
pub(super) fn chat_page() -> NodePage {
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
pub(super) fn tag_with<'a>(html: &'a str, needle: &str) -> &'a str {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in {html}"));
    let start = html[..at].rfind('<').expect("tag start");
    let end = at + html[at..].find('>').expect("tag end");
    &html[start..=end]
}

pub(super) fn assert_self_contained(html: &str) {
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

/// A page with every part filled: settings open, requests, both
/// confirmation steps, an older-messages link.
pub(super) fn full_page() -> NodePage {
    let mut page = chat_page();
    page.contacts[0].unread = 3;
    page.contacts[0].preview = Some("see you at 8".to_owned());
    page.contacts[0].verified = true;
    page.contacts[0].safety_number = "12345".repeat(12);
    page.contacts[0].warning = Some("bob uses another mailbox".to_owned());
    page.requests = vec![RequestItem {
        display_name: Some("Dave Müller".to_owned()),
        fingerprint: "fe".repeat(32),
        fingerprint_grouped: "fefe ".repeat(16).trim_end().to_owned(),
        count: 2,
        preview: "hello, it's dave".to_owned(),
        same_name_as: None,
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
        sessions: vec![
            crate::SessionItem {
                id: "0123456789abcdef".to_owned(),
                agent: "Firefox on Linux".to_owned(),
                signed_in: "2026-11-25 21:40 UTC".to_owned(),
                last_seen: "2026-11-26 08:00 UTC".to_owned(),
                current: true,
            },
            crate::SessionItem {
                id: "fedcba9876543210".to_owned(),
                agent: XSS.to_owned(),
                signed_in: "2026-11-20 10:00 UTC".to_owned(),
                last_seen: "2026-11-21 10:00 UTC".to_owned(),
                current: false,
            },
        ],
        ..SettingsView::default()
    };
    page.confirm_delete_identity = true;
    page.confirm_delete_contact = true;
    page
}

/// The element starting at the tag carrying `needle`, up to its end tag
/// `</name>` (no nesting of the same element assumed).
pub(super) fn element_with<'a>(html: &'a str, needle: &str, name: &str) -> &'a str {
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
fn is_a_full_document() {
    let html = node_page(&chat_page());
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(
        html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    assert!(html.contains(r#"<link rel="stylesheet" href="/assets/app.css">"#));
    // The tab names the contact and the profile.
    assert!(
        html.contains("<title>bob · alice · Secure Messenger</title>"),
        "{html}"
    );
    let mut page = chat_page();
    page.identities[0].display_name = Some("Alice Smith".to_owned());
    page.contacts[0].display_name = Some("Bob Jones".to_owned());
    let html = node_page(&page);
    assert!(html.contains("<title>Bob Jones · Alice Smith · Secure Messenger</title>"));
    assert!(
        html.contains(r#"<h2 id="chat-title">Chat with <!>Bob Jones"#),
        "{html}"
    );
    page.active_contact = None;
    assert!(node_page(&page).contains("<title>Alice Smith · Secure Messenger</title>"));
    let html = node_page(&chat_page());
    assert!(html.contains("Secure Messenger"));
    assert!(html.ends_with("</html>"));
    // Only the dashboard refreshes itself; here it would lose typed text.
    assert!(!html.contains("http-equiv"), "{html}");
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
        html.contains("Chat with <!>&lt;script&gt;") || html.contains("Chat with &lt;script&gt;")
    );
}

#[test]
fn forms_post_to_the_node_with_labelled_fields() {
    let html = node_page(&chat_page());
    assert!(html.contains(r#"action="/ui/identities""#));
    assert!(html.contains(r#"action="/ui/contacts""#));
    assert!(html.contains(r#"action="/ui/send""#));
    assert!(html.contains(r#"action="/ui/contacts/verify""#));
    assert_eq!(html.matches(r#"method="post""#).count(), 5);
    // A profile needs only a name; a contact only their invite (the name is optional).
    assert!(!html.contains(r#"name="id""#), "{html}");
    let name = tag_with(&html, r#"name="display_name""#);
    assert!(
        name.contains("required") && !name.contains("pattern="),
        "{name}"
    );
    let contact_name = tag_with(&html, r#"id="contact-name""#);
    assert!(
        !contact_name.contains("required") && !contact_name.contains("pattern="),
        "{contact_name}"
    );
    assert!(html.contains(r#"<input type="hidden" name="identity" value="alice">"#));
    assert!(html.contains(r#"<input type="hidden" name="contact" value="bob">"#));
    let key = tag_with(&html, r#"name="key_or_invite""#);
    assert!(
        key.starts_with("<textarea") && key.contains("required"),
        "{key}"
    );
    assert!(!html.contains(r#"name="public_key""#));
    assert!(html.contains(">Their invite code</label>"));
    assert!(html.contains(">Create profile</button>"));
    assert!(html.contains(">Add contact</button>"));
    assert!(html.contains(">Send</button>"));
    // Every visible field has a label pointing at it.
    for field_id in ["new-name", "contact-name", "contact-key", "compose-text"] {
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
    assert!(html.contains(">Your name</label>"));
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
    assert!(html.contains("Waiting to send: 3"), "{html}");
    page.outbox = 0;
    assert!(node_page(&page).contains(">All sent<"));
    assert!(
        html.contains(r#"<span class="last-error-text">mailbox unreachable</span>"#),
        "{html}"
    );
    assert!(
        !html.contains("error-details"),
        "a short error has no details"
    );
    // A long one (a certificate mismatch) is one short line, the rest behind Details.
    page.last_error = Some(format!(
        "The mailbox's certificate has changed, so the node does not connect: it presents \
         {}, which does not match the pinned fingerprint {}",
        "ab".repeat(32),
        "cd".repeat(32)
    ));
    let html = node_page(&page);
    let error = element_with(&html, r#"class="last-error""#, "span");
    assert!(
        error.contains(
            r#"<span class="last-error-text">The mailbox's certificate has changed, so the node does not connect.</span>"#
        ) || error.contains("The mailbox&#39;s certificate has changed, so the node does not connect.</span>"),
        "{error}"
    );
    assert!(html.contains("<summary>Details</summary>"), "{html}");
    assert!(
        html.contains(&"cd".repeat(32)),
        "the whole text is behind Details"
    );
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
    assert!(!login_page(None, "/").contains("<script"));
    assert!(!dashboard_page(&DashboardPage::default()).contains("<script"));
    assert!(!login_page(None, "/").contains("data-previews"));
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
        close.contains(r#"href="/?identity=alice&amp;contact=bob#open-settings""#),
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
    // Test connection tests what is typed: a button of the same form.
    let test = element_with(save, r#"id="test-connection""#, "button");
    assert!(test.contains(r#"formaction="/ui/settings/test""#), "{test}");
    assert!(test.contains(">Test connection</button>"));
    let result = element_with(dialog, r#"id="test-result""#, "p");
    assert!(result.contains(r#"role="status""#));
    assert!(result.contains("Connected: the mailbox answered"));
    // The invite has a dialog of its own.
    assert!(!dialog.contains("sm1-"), "{dialog}");
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
fn the_invite_dialog_has_the_code_its_qr_code_and_a_copy_fallback() {
    let mut page = full_page();
    page.show_settings = false;
    assert!(!node_page(&page).contains("<dialog"));
    page.show_invite = true;
    let html = node_page(&page);
    let dialog = element_with(&html, "<dialog", "dialog");
    assert!(dialog.starts_with("<dialog open"), "{dialog}");
    assert!(dialog.contains(r#"id="invite""#));
    assert!(dialog.contains(r#"<h2 id="invite-heading">Invite someone</h2>"#));
    assert!(
        dialog.contains("Add a contact"),
        "what they do with it: {dialog}"
    );
    assert!(
        dialog.contains("\nsm1-eyJuYW1lIjoiYWxpY2UifQ</textarea>"),
        "{dialog}"
    );
    assert!(tag_with(dialog, r#"id="invite-code""#).contains("readonly"));
    let copy = tag_with(dialog, r#"id="copy-invite""#);
    assert!(
        copy.contains(r#"data-copy="sm1-eyJuYW1lIjoiYWxpY2UifQ""#),
        "{copy}"
    );
    assert!(
        copy.contains(r#"data-copy-fallback="invite-code""#),
        "{copy}"
    );
    // Without the script, the words to copy it by hand.
    let status = element_with(dialog, r#"id="invite-copy-status""#, "span");
    assert!(status.contains(r#"role="status""#), "{status}");
    assert!(
        status.contains("Select the code above and copy it."),
        "{status}"
    );
    let svg = element_with(dialog, "<svg", "svg");
    assert!(svg.contains(r#"role="img""#), "{svg}");
    assert!(svg.contains(r#"aria-label="QR code of your invite""#));
    assert!(svg.contains("<path d=\"M4,4h7v1h-7z"));
    assert!(!svg.contains("style") && !svg.contains("xmlns"));
    // Closing returns to the chat, and the focus to the opener.
    let close = element_with(dialog, r#"id="close-invite""#, "a");
    assert!(
        close.contains(r#"href="/?identity=alice&amp;contact=bob#open-invite""#),
        "{close}"
    );
    assert_self_contained(&html);
    // Without an identity there is nothing to invite to.
    let page = NodePage {
        show_invite: true,
        ..NodePage::default()
    };
    assert!(!node_page(&page).contains("<dialog"));
}

#[test]
fn the_settings_dialog_confirms_a_save_and_shows_a_refusal_next_to_the_field() {
    let mut page = full_page();
    page.settings.saved = Some("Saved: the node now uses the mailbox mb:1.".to_owned());
    let html = node_page(&page);
    let saved = element_with(&html, r#"id="settings-saved""#, "p");
    assert!(saved.contains(r#"role="status""#), "{saved}");
    assert!(saved.contains("Saved: the node now uses the mailbox mb:1."));
    assert!(!html.contains("aria-invalid"));
    let in_use = element_with(&html, r#"id="settings-in-use""#, "code");
    assert!(in_use.contains(&format!("127.0.0.1:7000#{}", "ab".repeat(32))));

    page.settings.saved = None;
    page.settings.typed_mailbox = Some("not a mailbox".to_owned());
    page.settings.mailbox_error = Some("This address is not valid: no port.".to_owned());
    let html = node_page(&page);
    let field = tag_with(&html, r#"id="settings-mailbox""#);
    assert!(
        field.contains(r#"value="not a mailbox""#),
        "the typing is kept: {field}"
    );
    assert!(field.contains(r#"aria-invalid="true""#), "{field}");
    assert!(
        field.contains(r#"aria-describedby="settings-mailbox-error settings-mailbox-help""#),
        "{field}"
    );
    let error = element_with(&html, r#"id="settings-mailbox-error""#, "p");
    assert!(
        error.contains("This address is not valid: no port."),
        "{error}"
    );
    // Inline, in the dialog: not the page's alert.
    let dialog = element_with(&html, "<dialog", "dialog");
    assert!(dialog.contains(r#"id="settings-mailbox-error""#));
    assert!(!html.contains(r#"class="flash""#));
}

#[test]
fn refused_forms_get_their_typing_back() {
    let mut page = chat_page();
    page.kept = crate::Kept {
        profile_name: Some("Zoë".to_owned()),
        contact_key: Some("sm1-broken</textarea>".to_owned()),
        contact_name: Some("Bob B".to_owned()),
        backup_error: None,
    };
    let html = node_page(&page);
    assert!(tag_with(&html, r#"id="new-name""#).contains(r#"value="Zoë""#));
    assert!(tag_with(&html, r#"id="contact-name""#).contains(r#"value="Bob B""#));
    assert!(
        html.contains("\nsm1-broken&lt;/textarea&gt;</textarea>"),
        "{html}"
    );
    // Their forms are unfolded.
    assert_eq!(
        html.matches(r#"<details open class="add">"#).count(),
        2,
        "{html}"
    );
}

#[test]
fn the_settings_dialog_lists_signed_in_browsers_to_sign_out() {
    let html = node_page(&full_page());
    let dialog = element_with(&html, "<dialog", "dialog");
    let list = element_with(dialog, r#"class="sessions""#, "ul");
    let mine = element_with(list, r#"data-session="0123456789abcdef""#, "li");
    assert!(
        mine.contains("Firefox on Linux") && mine.contains("(this browser)"),
        "{mine}"
    );
    assert!(mine.contains(r#"action="/ui/sessions/revoke""#), "{mine}");
    assert!(
        mine.contains(r#"name="session" value="0123456789abcdef""#),
        "{mine}"
    );
    assert!(mine.contains("Sign out this browser"), "{mine}");
    let other = element_with(list, r#"data-session="fedcba9876543210""#, "li");
    assert!(
        !other.contains("(this browser)") && other.contains(">Sign out<"),
        "{other}"
    );
    assert!(!other.contains("<script"), "the agent is escaped: {other}");
    // None listed: no section.
    let mut page = full_page();
    page.settings.sessions.clear();
    assert!(!node_page(&page).contains("Signed-in browsers"));
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
    assert!(tag_with(dialog, r#"id="close-settings""#).contains(r##"href="/#open-settings""##));
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
    page.requests[0].fingerprint_grouped = format!("\"><b>{XSS}");
    page.invite = Some(format!("</textarea>{XSS}"));
    page.public_key = Some(format!("</textarea>\"><b>{XSS}"));
    page.settings.test_result = Some(XSS.to_owned());
    page.settings.mailbox = format!("\"><b>{XSS}");
    page.older = Some(XSS.to_owned());
    let html = node_page(&page);
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    // The key cannot end its textarea early: only the three real ones end.
    assert_eq!(html.matches("</textarea>").count(), 3, "{html}");
    assert!(
        html.contains("&lt;/textarea&gt;&quot;&gt;&lt;b&gt;")
            || html.contains("&lt;/textarea&gt;\"&gt;&lt;b&gt;"),
        "{html}"
    );
    // Nor the invite, in its dialog.
    let invite_page = NodePage {
        show_settings: false,
        show_invite: true,
        ..page.clone()
    };
    let invite_html = node_page(&invite_page);
    assert!(
        invite_html.contains("&lt;/textarea&gt;&lt;script&gt;"),
        "{invite_html}"
    );
    assert_eq!(invite_html.matches("</textarea>").count(), 4);
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

#[test]
fn notes_safety_codes_new_keys_and_the_backup_form() {
    // A note in the conversation: news, and a warning.
    let mut page = chat_page();
    page.messages.push(MessageItem {
        id: "note-5".to_owned(),
        text: "You marked bob as verified: your safety numbers matched.".to_owned(),
        time: "2026-11-25 21:41 UTC".to_owned(),
        time_iso: "2026-11-25T21:41:00.000Z".to_owned(),
        note: Some(crate::NoteLevel::Info),
        ..MessageItem::default()
    });
    page.messages.push(MessageItem {
        id: "note-6".to_owned(),
        text: "bob's key changed.".to_owned(),
        note: Some(crate::NoteLevel::Warning),
        ..MessageItem::default()
    });
    page.contacts[0].safety_number = "12345".repeat(12);
    let html = node_page(&page);
    let info = element_with(&html, r#"data-message-id="note-5""#, "li");
    assert!(
        info.contains(r#"class="note""#) && info.contains(r#"role="note""#),
        "{info}"
    );
    assert!(info.contains("You marked bob as verified"), "{info}");
    let warning = element_with(&html, r#"data-message-id="note-6""#, "li");
    assert!(
        warning.contains(r#"class="note note-warning""#),
        "{warning}"
    );
    // The safety number, grouped, and as a QR code.
    let number = element_with(&html, r#"id="safety-number""#, "p");
    assert!(number.contains("<span>12345</span>"), "{number}");
    assert!(html.contains(r#"aria-label="QR code of the safety number""#));
    assert!(html.contains("the one thing to compare"));

    // A request whose name is a contact's: it may be their new key.
    let mut page = full_page();
    page.requests[0].same_name_as = Some(("bob".to_owned(), "Bob".to_owned()));
    let html = node_page(&page);
    let same = element_with(&html, r#"class="request-same-name warning""#, "div");
    assert!(
        same.contains("Bob is already your contact, with another key"),
        "{same}"
    );
    assert!(same.contains(r#"<input type="hidden" name="replaces" value="bob">"#));
    assert!(same.contains("It is Bob&#39;s new key") || same.contains("It is Bob's new key"));

    // The key backup: the passphrase twice, folded under Advanced unless needed.
    let html = node_page(&chat_page());
    let advanced = element_with(&html, r#"id="advanced""#, "details");
    assert!(
        !tag_with(advanced, r#"id="advanced""#).contains(" open"),
        "{advanced}"
    );
    let form = element_with(advanced, r#"id="backup-key""#, "form");
    assert!(form.contains(r#"action="/ui/identities/backup""#), "{form}");
    for field in ["backup-passphrase", "backup-repeat"] {
        let input = tag_with(form, &format!(r#"id="{field}""#));
        assert!(
            input.contains(r#"type="password""#) && input.contains("required"),
            "{input}"
        );
        assert!(form.contains(&format!(r#"for="{field}""#)));
    }
    // The deletion step points to it and unfolds it; a refusal shows next to it.
    let mut page = chat_page();
    page.confirm_delete_identity = true;
    let html = node_page(&page);
    assert!(tag_with(&html, r#"id="advanced""#).contains(" open "));
    assert!(
        html.contains(r##"<a href="#backup-key">back up the key</a>"##),
        "{html}"
    );
    let mut page = chat_page();
    page.kept.backup_error = Some("The two passphrases differ.".to_owned());
    let html = node_page(&page);
    let error = element_with(&html, r#"id="backup-error""#, "p");
    assert!(error.contains("The two passphrases differ."), "{error}");
    assert!(tag_with(&html, r#"id="advanced""#).contains(" open "));
}

#[test]
fn announced_focused_counted_and_themed() {
    let mut page = chat_page();
    page.contacts[1].unread = 2;
    page.requests = full_page().requests;
    page.settings.theme = "dark".to_owned();
    let html = node_page(&page);
    // Arriving messages are announced; the composer has the focus.
    let log = tag_with(&html, r#"id="message-log""#);
    assert!(
        log.contains(r#"role="log""#) && log.contains(r#"aria-live="polite""#),
        "{log}"
    );
    assert!(tag_with(&html, r#"id="compose-text""#).contains("autofocus"));
    // The title counts carol's two and the request (not the open chat).
    assert!(
        html.contains("<title>(3) bob · alice · Secure Messenger</title>"),
        "{html}"
    );
    // The chosen theme, and its radio.
    assert!(
        html.contains(r#"<html lang="en" data-theme="dark">"#),
        "{html}"
    );
    assert!(html.contains(r#"<meta name="color-scheme" content="dark">"#));
    // With a dialog open, the dialog has the focus, not the composer.
    page.show_settings = true;
    let html = node_page(&page);
    assert!(!tag_with(&html, r#"id="compose-text""#).contains("autofocus"));
    assert!(tag_with(&html, r#"id="theme-dark""#).contains("checked"));
    assert!(!tag_with(&html, r#"id="theme-system""#).contains("checked"));
    // The system's theme: no data-theme.
    let html = node_page(&chat_page());
    assert!(html.contains(r#"<html lang="en">"#), "{html}");
    assert!(html.contains(r#"<meta name="color-scheme" content="light dark">"#));
}

#[test]
fn contact_details_say_where_messages_go() {
    let mut page = chat_page();
    page.contacts[0].mailbox = Some("Their own mailbox, mb.example:4433: reachable.".to_owned());
    let html = node_page(&page);
    let line = element_with(&html, r#"id="contact-mailbox""#, "p");
    assert!(
        line.contains("Their own mailbox, mb.example:4433: reachable."),
        "{line}"
    );
    let details = element_with(&html, r#"id="contact-details""#, "details");
    assert!(
        details.contains(r#"id="contact-mailbox""#),
        "in the contact's details"
    );
}
