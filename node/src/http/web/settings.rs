//! The settings dialog's forms: Save (confirmed with what was saved) and Test connection
//! (of the address as typed); a refused address comes back next to its field.

use axum::Form;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::{Selection, back_with};
use crate::core::service::blocking;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::flash::Flash;

#[derive(Deserialize)]
pub(super) struct SaveSettings {
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    contact: Option<String>,
    mailbox: String,
    #[serde(default)]
    previews: Option<String>,
    #[serde(default)]
    theme: Option<String>,
}

impl SaveSettings {
    /// The page with the settings dialog open, as the form was posted from.
    fn selection(&self) -> Selection {
        Selection {
            identity: self.identity.clone(),
            contact: self.contact.clone(),
            settings: Some("1".into()),
            ..Selection::default()
        }
    }

    /// The typed address, or why it is refused.
    fn address(&self) -> Result<config::MailboxAddress, String> {
        self.mailbox
            .trim()
            .parse()
            .map_err(|e| format!("This address is not valid: {e}."))
    }

    /// The dialog again: why the address is refused, next to it, and the typing kept.
    fn refused(&self, why: String) -> Flash {
        Flash {
            typed_mailbox: Some(self.mailbox.clone()),
            mailbox_error: Some(why),
            ..Flash::default()
        }
    }
}

pub(super) async fn save_settings(
    State(s): State<AppState>,
    Form(f): Form<SaveSettings>,
) -> Response {
    let sel = f.selection();
    let address = match f.address() {
        Ok(a) => a,
        Err(why) => return back_with(&s, &sel, f.refused(why)),
    };
    let node = s.node.clone();
    let previews = f.previews.is_some();
    let theme = f
        .theme
        .as_deref()
        .and_then(crate::core::settings::Theme::from_name);
    let saved = blocking(move || {
        node.move_mailbox(address)?;
        node.set_previews(previews)?;
        if let Some(theme) = theme {
            node.set_theme(theme)?;
        }
        // What was saved, not what the sync loop has reconnected to yet.
        Ok(node.mailbox_in_use().to_string())
    })
    .await;
    match saved {
        Ok(in_use) => {
            let notifications = if previews {
                "notifications show message text"
            } else {
                "notifications do not show message text"
            };
            let flash = Flash {
                saved: Some(format!(
                    "Saved: the node now uses the mailbox {in_use}; {notifications}."
                )),
                ..Flash::default()
            };
            back_with(&s, &sel, flash)
        }
        Err(e) => back_with(&s, &sel, f.refused(ApiError::from(e).to_string())),
    }
}

/// "Test connection": tries the address as typed (not saved), and says which it tried.
pub(super) async fn test_settings(
    State(s): State<AppState>,
    Form(f): Form<SaveSettings>,
) -> Response {
    let sel = f.selection();
    let address = match f.address() {
        Ok(a) => a,
        Err(why) => return back_with(&s, &sel, f.refused(why)),
    };
    let result = crate::sync::test_connection(&s.node, &address).await;
    let saved = address == s.node.mailbox();
    let what = if saved {
        format!("Tested {address} (the mailbox in use)")
    } else {
        format!("Tested {address} (as typed; not saved)")
    };
    let flash = Flash {
        typed_mailbox: (!saved).then_some(f.mailbox),
        test_result: Some(format!("{what}. {result}")),
        ..Flash::default()
    };
    back_with(&s, &sel, flash)
}
