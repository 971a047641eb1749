//! The "Invite someone" dialog: the active profile's invite code, its QR code, a copy button
//! and, when the clipboard is refused, the code selected for copying by hand.
//!
//! Like the settings dialog it is a `<dialog open>` rendered by the server (the page loaded
//! with `invite=1`), so it works without JavaScript; the script makes it modal.

use leptos::prelude::*;

use crate::qr::qr_svg;
use crate::{IdentityItem, page_href, textarea_content};

/// The accessible name of the invite's QR code.
const QR_LABEL: &str = "QR code of your invite";

/// Renders the invite dialog of `identity`, whose invite is `invite`; "Close" returns to
/// `contact`'s conversation when one is open.
pub(crate) fn invite_dialog(
    identity: IdentityItem,
    contact: Option<String>,
    invite: Option<String>,
) -> impl IntoView {
    // "#open-invite": the page focuses the opener again (app.js).
    let close_href = format!(
        "{}#open-invite",
        page_href(Some(&identity.id), contact.as_deref(), &[])
    );
    let body = match invite {
        Some(code) => {
            let qr = match qr_svg(&code, QR_LABEL) {
                Some(svg) => svg.into_any(),
                None => view! {
                    <p class="hint">"The code is too long for a QR code; copy it instead."</p>
                }
                .into_any(),
            };
            view! {
                <ol class="steps">
                    <li>"Send this code to the person, by mail or in a chat you already use."</li>
                    <li>"They paste it under " <strong>"Add a contact"</strong> " in their app."</li>
                    <li>
                        "Paste theirs under " <strong>"Add a contact"</strong>
                        " here, or wait for their first message under Requests."
                    </li>
                </ol>
                <label for="invite-code">"Your invite code"</label>
                <textarea
                    id="invite-code"
                    class="invite-code"
                    rows="4"
                    readonly
                    spellcheck="false"
                    aria-describedby="invite-copy-status"
                    inner_html=textarea_content(&code)
                ></textarea>
                <p class="invite-actions">
                    <button
                        type="button"
                        class="js-only"
                        id="copy-invite"
                        data-copy=code
                        data-copy-fallback="invite-code"
                    >
                        "Copy invite code"
                    </button>
                    <span class="copy-status" id="invite-copy-status" role="status">
                        <span class="no-js-only">"Select the code above and copy it."</span>
                    </span>
                </p>
                <div class="qr-box">{qr}</div>
                <p class="help">
                    "They can also scan the QR code with a phone. The code holds your name, \
                     your public key and your mailbox; it is not secret, but compare safety \
                     numbers once you are connected to rule out impostors."
                </p>
            }
            .into_any()
        }
        None => view! {
            <p class="hint">"No invite code is available for this profile yet."</p>
        }
        .into_any(),
    };
    view! {
        <div class="modal-layer">
            <dialog open class="modal" id="invite" aria-labelledby="invite-heading">
                <header class="modal-header">
                    <h2 id="invite-heading">"Invite someone"</h2>
                    <a class="modal-close" id="close-invite" href=close_href>
                        "Close"
                    </a>
                </header>
                <section class="modal-section">
                    <p class="invite-as">
                        "You are inviting them to talk to "
                        <strong>{identity.shown_name().to_owned()}</strong> "."
                    </p>
                    {body}
                </section>
            </dialog>
        </div>
    }
}
