//! The node page's settings dialog: mailbox address, connection test,
//! notification preferences and signed-in browsers. The invite has its own
//! dialog (`crate::invite`).
//!
//! It is a `<dialog open>` rendered by the server when the page is loaded with
//! `settings=1`, so it works without JavaScript; "Close" is a link back to the
//! page without it. The script upgrades it to a modal dialog (`showModal`, so
//! the page behind is inert and Escape closes it).

use leptos::prelude::*;

use crate::{IdentityItem, SessionItem, SettingsView, page_href};

/// What the settings dialog needs from the page.
#[derive(Debug)]
pub(crate) struct SettingsDialog {
    /// The active identity, whose invite is shown.
    pub identity: Option<IdentityItem>,
    /// The active contact, so saving returns to the same conversation.
    pub contact: Option<String>,
    /// The settings themselves.
    pub settings: SettingsView,
}

/// Hidden `identity` and `contact` fields, so the node can redirect back to
/// the same view after the form's action.
fn selection_fields(identity: Option<String>, contact: Option<String>) -> impl IntoView {
    view! {
        {identity.map(|id| view! { <input type="hidden" name="identity" value=id /> })}
        {contact.map(|c| view! { <input type="hidden" name="contact" value=c /> })}
    }
}

/// Renders the settings dialog (with its backdrop).
pub(crate) fn settings_dialog(dialog: SettingsDialog) -> impl IntoView {
    let SettingsDialog {
        identity,
        contact,
        settings,
    } = dialog;
    let SettingsView {
        mailbox,
        test_result,
        previews,
        sessions,
        typed_mailbox,
        mailbox_error,
        saved,
        theme,
    } = settings;
    let themes = [
        ("system", "As the system"),
        ("light", "Light"),
        ("dark", "Dark"),
    ]
    .into_iter()
    .map(|(value, label)| {
        let checked = value == theme || (value == "system" && theme.is_empty());
        let id = format!("theme-{value}");
        view! {
            <label class="check">
                <input type="radio" id=id name="theme" value=value checked=checked />
                {format!(" {label}")}
            </label>
        }
    })
    .collect_view();
    let identity_id = identity.as_ref().map(|item| item.id.clone());
    // "#open-settings": the page focuses the opener again (app.js).
    let close_href = format!(
        "{}#open-settings",
        page_href(identity_id.as_deref(), contact.as_deref(), &[])
    );
    let save_fields = selection_fields(identity_id.clone(), contact);
    let sessions_view = (!sessions.is_empty()).then(|| sessions_section(sessions, identity_id));
    let invalid = mailbox_error.is_some().then_some("true");
    let described = if mailbox_error.is_some() {
        "settings-mailbox-error settings-mailbox-help"
    } else {
        "settings-mailbox-help"
    };
    let shown_mailbox = typed_mailbox.unwrap_or_else(|| mailbox.clone());
    view! {
        <div class="modal-layer">
            <dialog open class="modal" id="settings" aria-labelledby="settings-heading">
                <header class="modal-header">
                    <h2 id="settings-heading">"Settings"</h2>
                    <a class="modal-close" id="close-settings" href=close_href>
                        "Close"
                    </a>
                </header>
                <section class="modal-section" aria-labelledby="mailbox-heading">
                    <h3 id="mailbox-heading">"Mailbox"</h3>
                    <p class="help">
                        "In use: " <code class="in-use" id="settings-in-use">{mailbox}</code>
                    </p>
                    <form class="stack" id="settings-form" method="post" action="/ui/settings">
                        {save_fields}
                        <label for="settings-mailbox">"Mailbox address"</label>
                        <input
                            id="settings-mailbox"
                            name="mailbox"
                            type="text"
                            value=shown_mailbox
                            required
                            autocomplete="off"
                            autocapitalize="off"
                            spellcheck="false"
                            aria-invalid=invalid
                            aria-describedby=described
                        />
                        {mailbox_error
                            .map(|error| {
                                view! {
                                    <p class="field-error" id="settings-mailbox-error">
                                        {error}
                                    </p>
                                }
                            })}
                        <p class="help" id="settings-mailbox-help">
                            "host:port, optionally followed by # and the 64 hex digits of the \
                             mailbox certificate's fingerprint (otherwise it is pinned on first use)."
                        </p>
                        <label class="check">
                            <input type="checkbox" name="previews" value="true" checked=previews />
                            " Show message text in notifications"
                        </label>
                        <fieldset class="themes">
                            <legend>"Colours"</legend>
                            {themes}
                        </fieldset>
                        <div class="form-actions">
                            <button type="submit" id="save-settings">"Save"</button>
                            <button
                                type="submit"
                                class="secondary"
                                id="test-connection"
                                formaction="/ui/settings/test"
                            >
                                "Test connection"
                            </button>
                        </div>
                    </form>
                    {saved
                        .map(|words| {
                            view! {
                                <p class="saved" id="settings-saved" role="status">
                                    <span aria-hidden="true">"✓ "</span>
                                    {words}
                                </p>
                            }
                        })}
                    {test_result
                        .map(|result| {
                            view! {
                                <p class="test-result" id="test-result" role="status">
                                    {result}
                                </p>
                            }
                        })}
                </section>
                {sessions_view}
                <section
                    class="modal-section js-only"
                    aria-labelledby="notifications-heading"
                >
                    <h3 id="notifications-heading">"Notifications"</h3>
                    <p class="help">
                        "Get a desktop notification for new messages while this tab is in the \
                         background."
                    </p>
                    <button type="button" class="secondary js-only" id="enable-notifications">
                        "Enable desktop notifications"
                    </button>
                </section>
            </dialog>
        </div>
    }
}

/// The browsers signed in to the node, each with "Sign out".
fn sessions_section(sessions: Vec<SessionItem>, identity: Option<String>) -> impl IntoView {
    let rows = sessions
        .into_iter()
        .map(|session| {
            let SessionItem {
                id,
                agent,
                signed_in,
                last_seen,
                current,
            } = session;
            let identity = identity.clone();
            let data_session = id.clone();
            let button = if current {
                "Sign out this browser"
            } else {
                "Sign out"
            };
            view! {
                <li class="session" data-session=data_session>
                    <p class="session-agent">
                        {agent}
                        {current.then(|| view! { <strong>" (this browser)"</strong> })}
                    </p>
                    <p class="help">
                        "Signed in " {signed_in} ", last used " {last_seen}
                    </p>
                    <form class="inline-form" method="post" action="/ui/sessions/revoke">
                        <input type="hidden" name="session" value=id />
                        {identity.map(|i| view! { <input type="hidden" name="identity" value=i /> })}
                        <button type="submit" class="secondary">{button}</button>
                    </form>
                </li>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <section class="modal-section" aria-labelledby="sessions-heading">
            <h3 id="sessions-heading">"Signed-in browsers"</h3>
            <p class="help">
                "Browsers that opened a sign-in link of this node. Sign out any you do not \
                 recognise."
            </p>
            <ul class="sessions">{rows}</ul>
        </section>
    }
}
