//! "Back up your key": the passphrase twice, then the encrypted key as a file to keep. A key
//! export needs a recent sign-in, as in the API; a refusal comes back next to the form.

use axum::Form;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Selection, back_with};
use crate::http::AppState;
use crate::http::auth::Auth;
use crate::http::error::ApiError;
use crate::http::flash::Flash;

#[derive(Deserialize)]
pub(super) struct Backup {
    identity: String,
    passphrase: String,
    repeat: String,
}

pub(super) async fn backup(
    State(s): State<AppState>,
    auth: Option<Extension<Auth>>,
    Form(f): Form<Backup>,
) -> Response {
    let Backup {
        identity,
        passphrase,
        repeat,
    } = f;
    // Wiped when dropped (the one handed to the node is its own copy, wiped there).
    let (passphrase, repeat) = (Zeroizing::new(passphrase), Zeroizing::new(repeat));
    let sel = Selection::of(&identity, None);
    let refused = |why: String| {
        let flash = Flash {
            kept: ui::Kept {
                backup_error: Some(why),
                ..ui::Kept::default()
            },
            ..Flash::default()
        };
        back_with(&s, &sel, flash)
    };
    if passphrase.as_str() != repeat.as_str() {
        return refused("The two passphrases differ: type the same one twice.".into());
    }
    if let Err(e) = crate::http::api::may_export_keys(auth) {
        return refused(e.to_string());
    }
    match s
        .node
        .backup(identity.clone(), passphrase.as_str().to_owned())
        .await
    {
        Ok(pem) => {
            // The id is [A-Za-z0-9._-]: nothing to quote in the file name.
            let disposition = format!("attachment; filename=\"{}-key-backup.pem\"", identity);
            (
                [
                    (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                ],
                pem,
            )
                .into_response()
        }
        Err(e) => refused(ApiError::from(e).to_string()),
    }
}
