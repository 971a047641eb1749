//! The node page's sidebar: the local identities (the active one with its
//! "Copy key"/"Copy invite" buttons and the deletion step), the active
//! identity's own fingerprint, its contacts (unread badges, verified marks,
//! previews, the add form) and the message requests from unknown senders.

use leptos::prelude::*;

use super::{contact_href, verified_mark};
use crate::{BlockedItem, ContactItem, IdentityItem, RequestItem, page_href};

fn identity_href(id: &str) -> String {
    page_href(Some(id), None, &[])
}

/// What the sidebar shows for the active identity only.
pub(super) struct ActiveIdentity {
    pub(super) confirm_delete: bool,
    /// The name typed into Add a profile, when the node refused it.
    pub(super) kept_name: Option<String>,
    /// The conversation open, so the invite dialog's "Close" returns to it.
    pub(super) contact: Option<String>,
}

pub(super) fn identities_section(
    identities: Vec<IdentityItem>,
    active: Option<String>,
    extra: ActiveIdentity,
) -> impl IntoView {
    let empty = identities.is_empty();
    let ActiveIdentity {
        confirm_delete,
        kept_name,
        contact,
    } = extra;
    let unfold = empty || kept_name.is_some();
    let mut confirm = None;
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
            let shown = identity.shown_name().to_owned();
            if is_active && confirm_delete {
                confirm = Some(delete_identity_form(identity.id.clone(), shown.clone()));
            }
            let actions = is_active.then(|| identity_actions(&identity.id, &shown, &contact));
            view! {
                <li>
                    <a class=class href=href aria-current=current data-identity=identity.id>
                        <span class="item-name">{shown}</span>
                    </a>
                    {actions}
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="panel identities" aria-labelledby="identities-heading">
            <h2 id="identities-heading">"Your profiles"</h2>
            {empty.then(|| view! { <p class="hint">"No profile yet."</p> })}
            <ul class="list">{items}</ul>
            {confirm}
            <details class="add" open=unfold>
                <summary>"Add a profile"</summary>
                <form class="stack" id="add-identity" method="post" action="/ui/identities">
                    <label for="new-name">"Your name"</label>
                    <input
                        id="new-name"
                        name="display_name"
                        type="text"
                        required
                        maxlength="100"
                        autocomplete="name"
                        aria-describedby="new-name-help"
                        value=kept_name
                    />
                    <p class="help" id="new-name-help">
                        "What people see when you write to them. Each profile has a key of its \
                         own."
                    </p>
                    <button type="submit">"Create profile"</button>
                </form>
            </details>
        </section>
    }
}

/// "Invite someone" and the link to the deletion step, under the active identity.
fn identity_actions(id: &str, shown: &str, contact: &Option<String>) -> impl IntoView + use<> {
    let invite_href = page_href(Some(id), contact.as_deref(), &[("invite", "1")]);
    let delete_href = page_href(Some(id), None, &[("confirm", "identity")]);
    let delete_title = format!("Delete profile {shown}");
    view! {
        <div class="item-actions">
            <a class="button-link small" id="open-invite" href=invite_href>
                "Invite someone"
            </a>
            <a class="danger-link" href=delete_href title=delete_title>
                "Delete…"
            </a>
        </div>
    }
}

/// The confirmation step for deleting identity `id`: its name must be typed.
fn delete_identity_form(id: String, shown: String) -> impl IntoView {
    let cancel = identity_href(&id);
    view! {
        <form
            class="confirm stack"
            id="delete-identity"
            method="post"
            action="/ui/identities/delete"
            aria-labelledby="delete-identity-heading"
        >
            <h3 id="delete-identity-heading">"Delete profile " {shown.clone()} "?"</h3>
            <p class="help">
                "Its key, contacts and messages are removed from this node. This cannot be \
                 undone: "
                <a href="#backup-key">"back up the key"</a>
                " first if you may need it again."
            </p>
            <input type="hidden" name="identity" value=id />
            <label for="confirm-identity">"Type " <code>{shown}</code> " to confirm"</label>
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
                <button type="submit" class="danger">"Delete profile"</button>
                <a href=cancel>"Cancel"</a>
            </div>
        </form>
    }
}

/// The details a newcomer does not need: the active profile's fingerprint and public key.
pub(super) fn advanced_section(
    identity: IdentityItem,
    public_key: Option<String>,
    blocked: Vec<BlockedItem>,
    backup: BackupView,
) -> impl IntoView {
    let blocked = blocked_list(&identity.id, blocked);
    let open = backup.open || backup.error.is_some();
    let backup_form = backup_form(&identity.id, backup.error);
    view! {
        <details class="panel advanced" id="advanced" open=open>
            <summary>"Advanced"</summary>
            {backup_form}
            <h2 id="own-fingerprint-heading">"Your fingerprint"</h2>
            <p class="help">
                "The short form of your key. Safety numbers are easier to compare; this is for \
                 experts."
            </p>
            <code class="fingerprint">{identity.fingerprint_grouped}</code>
            {public_key
                .map(|pem| {
                    view! {
                        <h2 id="public-key-heading">"Your public key"</h2>
                        <p class="item-actions">
                            <button
                                type="button"
                                class="small secondary js-only"
                                data-copy=pem.clone()
                                data-copy-fallback="public-key"
                            >
                                "Copy key"
                            </button>
                        </p>
                        <textarea
                            id="public-key"
                            class="invite-code"
                            rows="4"
                            readonly
                            spellcheck="false"
                            aria-labelledby="public-key-heading"
                            inner_html=crate::textarea_content(&pem)
                        ></textarea>
                    }
                })}
            {blocked}
        </details>
    }
}

pub(super) fn contacts_section(
    identity: Option<String>,
    contacts: Vec<ContactItem>,
    active: Option<String>,
    kept: (Option<String>, Option<String>),
) -> impl IntoView {
    let (kept_key, kept_name) = kept;
    let Some(identity) = identity else {
        return view! {
            <section class="panel contacts" aria-labelledby="contacts-heading">
                <h2 id="contacts-heading">"Contacts"</h2>
                <p class="hint">"Create or pick a profile first; contacts belong to it."</p>
            </section>
        }
        .into_any();
    };
    let empty = contacts.is_empty();
    let unfold = empty || kept_key.is_some() || kept_name.is_some();
    let kept_key = crate::textarea_content(kept_key.as_deref().unwrap_or_default());
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
            let key = contact.name.clone();
            let shown = contact.shown_name().to_owned();
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
                            <span class="item-name">{shown}</span>
                            {contact.verified.then(verified_mark)}
                            {badge}
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
            <details class="add" open=unfold>
                <summary>"Add a contact"</summary>
                <form class="stack" id="add-contact" method="post" action="/ui/contacts">
                    <input type="hidden" name="identity" value=identity />
                    <label for="contact-key">"Their invite code"</label>
                    <textarea
                        id="contact-key"
                        name="key_or_invite"
                        rows="4"
                        required
                        spellcheck="false"
                        placeholder="sm1-…"
                        aria-describedby="contact-key-help"
                        inner_html=kept_key
                    ></textarea>
                    <p class="help" id="contact-key-help">
                        "Paste the code they sent you (a public key in PEM works too)."
                    </p>
                    <label for="contact-name">"Name (optional)"</label>
                    <input
                        id="contact-name"
                        name="name"
                        type="text"
                        maxlength="100"
                        autocomplete="off"
                        aria-describedby="contact-name-help"
                        value=kept_name
                    />
                    <p class="help" id="contact-name-help">
                        "Leave it empty to use the name in their invite."
                    </p>
                    <button type="submit">"Add contact"</button>
                </form>
            </details>
        </section>
    }
    .into_any()
}

/// What the requests section needs besides the requests.
pub(super) struct RequestsView {
    pub(super) identity: Option<String>,
    /// The open conversation, which every action returns to.
    pub(super) contact: Option<String>,
    pub(super) requests: Vec<RequestItem>,
    /// The request whose deletion is being confirmed.
    pub(super) confirm_delete: Option<String>,
}

/// Messages from unknown senders, at the top of the list with their count: who they say
/// they are, their full fingerprint, Accept (under a name), Block, and Delete after a
/// confirmation. Not rendered when there are none.
pub(super) fn requests_section(view: RequestsView) -> Option<AnyView> {
    let RequestsView {
        identity,
        contact,
        requests,
        confirm_delete,
    } = view;
    let identity = identity?;
    if requests.is_empty() {
        return None;
    }
    let count = requests.len();
    let items = requests
        .into_iter()
        .enumerate()
        .map(|(index, request)| {
            let confirm = confirm_delete.as_deref() == Some(request.fingerprint.as_str());
            request_item(&identity, contact.as_deref(), index, request, confirm)
        })
        .collect_view();
    Some(
        view! {
            <section class="panel requests" id="requests" aria-labelledby="requests-heading">
                <h2 id="requests-heading">
                    "Requests " <span class="count" id="requests-count">{count}</span>
                </h2>
                <p class="help">
                    "People who are not your contacts wrote to you. Anyone can claim any \
                     name: if you know them, compare the fingerprint with them before you \
                     accept."
                </p>
                <ul class="list request-list">{items}</ul>
            </section>
        }
        .into_any(),
    )
}

/// Hidden fields that bring a request's action back to the page it came from.
fn return_fields(identity: &str, contact: Option<&str>) -> impl IntoView + use<> {
    let identity = identity.to_owned();
    let contact = contact.map(str::to_owned);
    view! {
        <input type="hidden" name="identity" value=identity />
        {contact.map(|c| view! { <input type="hidden" name="contact" value=c /> })}
    }
}

fn request_item(
    identity: &str,
    contact: Option<&str>,
    index: usize,
    request: RequestItem,
    confirm: bool,
) -> impl IntoView + use<> {
    let RequestItem {
        display_name,
        fingerprint,
        fingerprint_grouped,
        count,
        preview,
        same_name_as,
    } = request;
    let new_key = same_name_as.map(|(key, shown)| {
        view! {
            <div class="request-same-name warning" role="note">
                <p>
                    {format!(
                        "⚠ {shown} is already your contact, with another key. If they told you \
                         they changed their key, this is it; if not, someone may pose as them."
                    )}
                </p>
                <form class="inline-form" method="post" action="/ui/requests/accept">
                    <input type="hidden" name="identity" value=identity.to_owned() />
                    <input type="hidden" name="fingerprint" value=fingerprint.clone() />
                    <input type="hidden" name="replaces" value=key />
                    <button type="submit" class="small secondary">
                        {format!("It is {shown}'s new key")}
                    </button>
                </form>
            </div>
        }
    });
    let count_text = if count == 1 {
        "1 message".to_owned()
    } else {
        format!("{count} messages")
    };
    let who = display_name
        .clone()
        .unwrap_or_else(|| "Someone who gave no name".to_owned());
    let name_id = format!("request-name-{index}");
    let data_fingerprint = fingerprint.clone();
    let delete_href = page_href(
        Some(identity),
        contact,
        &[("confirm", "request"), ("request", fingerprint.as_str())],
    );
    let cancel_href = page_href(Some(identity), contact, &[]);
    let delete_step = if confirm {
        view! {
            <form
                class="confirm stack request-delete"
                method="post"
                action="/ui/requests/delete"
                aria-label="Confirm deleting this request"
            >
                {return_fields(identity, contact)}
                <input type="hidden" name="fingerprint" value=fingerprint.clone() />
                <p>{format!("Delete {count_text} from {who}? This cannot be undone.")}</p>
                <div class="confirm-actions">
                    <button type="submit" class="danger small" autofocus=true>
                        "Delete"
                    </button>
                    <a href=cancel_href>"Cancel"</a>
                </div>
            </form>
        }
        .into_any()
    } else {
        view! {
            <a class="danger-link request-delete-link" href=delete_href>
                "Delete…"
            </a>
        }
        .into_any()
    };
    view! {
        <li class="request" data-fingerprint=data_fingerprint>
            <p class="request-from">
                <strong class="request-name">{who}</strong>
                <span class="request-count">{count_text}</span>
            </p>
            <p class="help">"Fingerprint"</p>
            <code class="fingerprint request-fingerprint">{fingerprint_grouped}</code>
            <p class="preview">{preview}</p>
            {new_key}
            <form class="request-accept stack" method="post" action="/ui/requests/accept">
                <input type="hidden" name="identity" value=identity.to_owned() />
                <input type="hidden" name="fingerprint" value=fingerprint.clone() />
                <label for=name_id.clone()>"Save as"</label>
                <input
                    id=name_id
                    name="name"
                    type="text"
                    required
                    maxlength="100"
                    autocomplete="off"
                    value=display_name
                />
                <button type="submit" class="small">"Accept"</button>
            </form>
            <div class="request-actions">
                <form class="request-block inline-form" method="post" action="/ui/requests/block">
                    {return_fields(identity, contact)}
                    <input type="hidden" name="fingerprint" value=fingerprint />
                    <button type="submit" class="small secondary">"Block"</button>
                </form>
                {delete_step}
            </div>
        </li>
    }
}

/// What the key backup form shows.
pub(super) struct BackupView {
    /// Unfold the Advanced section (the deletion step points here).
    pub(super) open: bool,
    /// Why the last backup was refused.
    pub(super) error: Option<String>,
}

/// "Back up your key": the passphrase twice; the node answers with the encrypted file.
fn backup_form(identity: &str, error: Option<String>) -> impl IntoView + use<> {
    let invalid = error.is_some().then_some("true");
    view! {
        <h2 id="backup-heading">"Back up your key"</h2>
        <p class="help">
            "Without a backup, a lost computer or a deleted profile cannot be brought back. The \
             file is encrypted with the passphrase you choose here: keep both, apart."
        </p>
        <form
            class="stack"
            id="backup-key"
            method="post"
            action="/ui/identities/backup"
            aria-labelledby="backup-heading"
        >
            <input type="hidden" name="identity" value=identity.to_owned() />
            <label for="backup-passphrase">"Passphrase (at least 8 characters)"</label>
            <input
                id="backup-passphrase"
                name="passphrase"
                type="password"
                required
                minlength="8"
                autocomplete="new-password"
                aria-invalid=invalid
            />
            <label for="backup-repeat">"The same passphrase again"</label>
            <input
                id="backup-repeat"
                name="repeat"
                type="password"
                required
                minlength="8"
                autocomplete="new-password"
                aria-invalid=invalid
            />
            {error
                .map(|error| {
                    view! {
                        <p class="field-error" id="backup-error" role="alert">
                            {error}
                        </p>
                    }
                })}
            <button type="submit" class="small">"Download the backup"</button>
        </form>
    }
}

/// The senders the active identity blocked, each with Unblock (in the Advanced section).
pub(super) fn blocked_list(
    identity: &str,
    blocked: Vec<BlockedItem>,
) -> Option<impl IntoView + use<>> {
    if blocked.is_empty() {
        return None;
    }
    let identity = identity.to_owned();
    let rows = blocked
        .into_iter()
        .map(|b| {
            let who = b.display_name.unwrap_or_else(|| "No name".to_owned());
            let identity = identity.clone();
            view! {
                <li class="blocked">
                    <strong>{who}</strong>
                    <code class="fingerprint">{b.fingerprint_grouped}</code>
                    <form class="inline-form" method="post" action="/ui/blocked/unblock">
                        <input type="hidden" name="identity" value=identity />
                        <input type="hidden" name="fingerprint" value=b.fingerprint />
                        <button type="submit" class="small secondary">"Unblock"</button>
                    </form>
                </li>
            }
        })
        .collect_view();
    Some(view! {
        <h2 id="blocked-heading">"Blocked"</h2>
        <ul class="list blocked-list" aria-labelledby="blocked-heading">{rows}</ul>
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodePage;
    use crate::node::node_page;
    use crate::node::tests::{chat_page, contact, element_with, full_page, identity, tag_with};

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
        assert!(html.contains(">Your profiles</h2>"));
        let alice = tag_with(&html, r#"href="/?identity=alice""#);
        assert!(alice.contains(r#"aria-current="page""#), "{alice}");
        let work = tag_with(&html, r#"href="/?identity=work""#);
        assert!(!work.contains("aria-current"), "{work}");
        // The active identity's fingerprint is shown, grouped.
        assert!(html.contains("abab abab abab"));
    }

    #[test]
    fn contacts_link_by_name_without_fingerprints() {
        let html = node_page(&chat_page());
        let bob = tag_with(&html, r#"href="/?identity=alice&amp;contact=bob""#);
        assert!(bob.contains(r#"aria-current="page""#), "{bob}");
        let carol = tag_with(&html, r#"href="/?identity=alice&amp;contact=carol""#);
        assert!(!carol.contains("aria-current"), "{carol}");
        // Fingerprints are in the contact's details, not in the list.
        let list = element_with(&html, r#"id="contact-list""#, "ul");
        assert!(!list.contains("0123 4567"), "{list}");
    }

    #[test]
    fn the_active_identity_has_an_invite_link_a_delete_link_and_advanced_details() {
        let html = node_page(&NodePage {
            confirm_delete_identity: false,
            ..full_page()
        });
        let invite = element_with(&html, r#"id="open-invite""#, "a");
        assert!(
            invite.contains(r#"href="/?identity=alice&amp;contact=bob&amp;invite=1""#),
            "{invite}"
        );
        assert!(invite.ends_with(">Invite someone</a>"), "{invite}");
        assert!(html.contains(r#"href="/?identity=alice&amp;confirm=identity""#));
        assert!(html.contains(">Delete…</a>"));
        // Only under the active identity.
        assert_eq!(html.matches(">Invite someone</a>").count(), 1);
        assert_eq!(html.matches("confirm=identity").count(), 1);
        // The fingerprint and the key are behind "Advanced", folded.
        let advanced = element_with(&html, r#"id="advanced""#, "details");
        assert!(
            !tag_with(advanced, r#"id="advanced""#).contains(" open"),
            "{advanced}"
        );
        assert!(
            advanced.contains("<summary>Advanced</summary>"),
            "{advanced}"
        );
        assert!(advanced.contains("abab abab abab"), "{advanced}");
        let key = tag_with(advanced, "data-copy=\"-----BEGIN");
        assert!(key.contains("js-only"), "{key}");
        assert!(advanced.contains(">Copy key</button>"));
        assert!(advanced.contains(r#"id="public-key""#));
        assert!(
            !html.contains("Copy invite</button>"),
            "the invite is one screen"
        );
        // Without a key, no copy button.
        let html = node_page(&chat_page());
        assert!(!html.contains("data-copy"), "{html}");
        assert!(html.contains(">Delete…</a>"));
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
    fn requests_show_who_they_say_they_are_with_accept_block_and_delete() {
        let html = node_page(&full_page());
        // Counted in the header and at the top of the list (above the contacts).
        let link = element_with(&html, r#"id="requests-link""#, "a");
        assert!(link.contains(r##"href="#requests""##), "{link}");
        assert!(
            link.contains("Requests: <!>1") || link.contains("Requests: 1"),
            "{link}"
        );
        let requests_at = html.find(r#"id="requests""#).expect("requests");
        assert!(requests_at < html.find(r#"id="contacts-heading""#).expect("contacts"));
        let section = element_with(&html, r#"id="requests""#, "section");
        assert!(
            section.contains(r#"<span id="requests-count" class="count">1</span>"#),
            "{section}"
        );
        // The name they gave, and the whole fingerprint, grouped.
        assert!(section.contains(">Dave Müller</strong>"), "{section}");
        assert!(
            section.contains(&"fefe ".repeat(16).trim_end().to_owned()),
            "{section}"
        );
        assert!(section.contains("2 messages"));
        assert!(section.contains("hello, it&#39;s dave") || section.contains("hello, it's dave"));
        // Accept, with their name filled in.
        let accept = element_with(section, r#"action="/ui/requests/accept""#, "form");
        assert!(accept.contains(r#"method="post""#));
        let fingerprint = format!(
            r#"<input type="hidden" name="fingerprint" value="{}">"#,
            "fe".repeat(32)
        );
        assert!(accept.contains(&fingerprint), "{accept}");
        let name = tag_with(accept, r#"name="name""#);
        assert!(
            name.contains(r#"value="Dave Müller""#) && name.contains("required"),
            "{name}"
        );
        assert!(accept.contains(">Accept</button>"));
        // Block, which keeps the open chat.
        let block = element_with(section, r#"action="/ui/requests/block""#, "form");
        assert!(block.contains(&fingerprint), "{block}");
        assert!(
            block.contains(r#"<input type="hidden" name="contact" value="bob">"#),
            "{block}"
        );
        assert!(block.contains(">Block</button>"));
        // Delete is a step: first a link, then a confirmation.
        assert!(
            !section.contains(r#"action="/ui/requests/delete""#),
            "{section}"
        );
        let link = element_with(section, r#"class="danger-link request-delete-link""#, "a");
        assert!(
            link.contains(&format!(
                r#"href="/?identity=alice&amp;contact=bob&amp;confirm=request&amp;request={}""#,
                "fe".repeat(32)
            )),
            "{link}"
        );
        let mut page = full_page();
        page.confirm_delete_request = Some("fe".repeat(32));
        let html = node_page(&page);
        let delete = element_with(&html, r#"action="/ui/requests/delete""#, "form");
        assert!(delete.contains(&fingerprint), "{delete}");
        assert!(delete.contains(r#"<input type="hidden" name="contact" value="bob">"#));
        assert!(
            delete.contains("Delete 2 messages from Dave Müller?"),
            "{delete}"
        );
        assert!(delete.contains(r#"<a href="/?identity=alice&amp;contact=bob">Cancel</a>"#));
        // No name given: said so.
        let mut page = full_page();
        page.requests[0].display_name = None;
        let html = node_page(&page);
        assert!(html.contains("Someone who gave no name"));
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
    fn blocked_senders_are_listed_under_advanced_with_unblock() {
        let mut page = full_page();
        page.blocked = vec![BlockedItem {
            display_name: Some("Spammer".to_owned()),
            fingerprint: "ee".repeat(32),
            fingerprint_grouped: "eeee ".repeat(16).trim_end().to_owned(),
        }];
        let html = node_page(&page);
        let advanced = element_with(&html, r#"id="advanced""#, "details");
        assert!(advanced.contains(">Blocked</h2>"), "{advanced}");
        let unblock = element_with(advanced, r#"action="/ui/blocked/unblock""#, "form");
        assert!(unblock.contains(&format!(
            r#"name="fingerprint" value="{}""#,
            "ee".repeat(32)
        )));
        assert!(unblock.contains(">Unblock</button>"));
        assert!(!node_page(&full_page()).contains(">Blocked</h2>"));
    }

    #[test]
    fn no_requests_section_without_requests() {
        let html = node_page(&chat_page());
        assert!(!html.contains("Requests"), "{html}");
        assert!(!html.contains("/ui/requests/"));
    }
}
