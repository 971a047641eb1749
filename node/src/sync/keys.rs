//! Keys for forward secrecy, over a [`Link`]: publishing each identity's device keys on its
//! own mailbox, and claiming one key of each contact (at the mailbox their messages go to)
//! to start a session with them. What to publish and what a claim means is the node core's
//! (`core::service::ratchet`); this only carries it.

use std::sync::Arc;

use mailbox::core::{ClientSession, SessionError};
use mailbox::protocol::ErrorCode;
use rand::Rng;
use tracing::{debug, warn};

use super::SyncError;
use super::engine::Engine;
use super::round::Link;
use crate::core::service::{Destination, Node, blocking, no_keys_recheck_ms};

/// Publish each identity's keys on this link's mailbox (the node's own) when due.
pub async fn publish_keys<L: Link>(
    node: &Arc<Node>,
    link: &L,
    now_ms: u64,
) -> Result<(), SyncError> {
    for (id, _) in node.loaded_identities() {
        let (n, i) = (node.clone(), id.clone());
        let Some(todo) = blocking(move || n.keys_to_publish(&i, now_ms)).await? else {
            continue;
        };
        let request =
            ClientSession::publish_keys(&todo.owner_der, &todo.certificate, &todo.prekeys);
        let remaining = match ClientSession::keys_published(link.request(request).await?) {
            Ok(remaining) => remaining,
            Err(SessionError::Refused { code, message }) => {
                // Over a limit, or the mailbox is full: the keys stay unpublished and are
                // offered again next round.
                warn!(code = code.as_str(), "the mailbox refused our keys");
                debug!(%message, "the mailbox's words for it");
                continue;
            }
            Err(other) => return Err(SyncError::Mailbox(other.into())),
        };
        debug!(identity = %id, ?remaining, "keys published");
        let n = node.clone();
        blocking(move || n.keys_published(&id, remaining, now_ms)).await?;
    }
    Ok(())
}

/// Claim a key for each contact whose messages go to `to` and who has no session yet, as
/// the identity they are a contact of (when it is logged in on this link). When a claim
/// found no key, wake the node again when the next try is due (the contact may publish in
/// a moment: both sides often start together), rather than at the next pull interval.
pub async fn claim_keys<L: Link, R: Rng>(
    node: &Arc<Node>,
    link: &L,
    engine: &Engine<R>,
    to: &Destination,
    now_ms: u64,
) -> Result<(), SyncError> {
    let missed = claim_each(node, link, engine, to, now_ms).await?;
    if let Some(tries) = missed {
        let wait = std::time::Duration::from_millis(no_keys_recheck_ms(tries.saturating_sub(1)));
        let node = node.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            node.wake();
        });
    }
    Ok(())
}

/// The claims of [`claim_keys`]; the fewest misses in a row among contacts that had no
/// key, if any had none.
async fn claim_each<L: Link, R: Rng>(
    node: &Arc<Node>,
    link: &L,
    engine: &Engine<R>,
    to: &Destination,
    now_ms: u64,
) -> Result<Option<u32>, SyncError> {
    let mut missed: Option<u32> = None;
    let n = node.clone();
    let pending = blocking(move || n.claims_pending(now_ms)).await?;
    for (id, contact) in pending {
        if !node.destination_of(&id, &contact.name).is(to) {
            continue;
        }
        let Ok(identity) = node.identity(&id) else {
            continue;
        };
        if !engine.is_logged_in(identity.fingerprint()) {
            continue;
        }
        let request = ClientSession::claim_key(identity.fingerprint(), contact.fingerprint);
        let bundle = match ClientSession::key_claimed(link.request(request).await?) {
            Ok(bundle) => bundle,
            // They are not a member there (an invite's mailbox they left), or it served
            // garbage: no key from there for now.
            Err(SessionError::Refused {
                code: ErrorCode::NotAllowed,
                ..
            })
            | Err(SessionError::BadBundle(_)) => None,
            Err(SessionError::Refused { code, message }) => {
                warn!(code = code.as_str(), "a key claim was refused; will retry");
                debug!(%message, "the mailbox's words for it");
                continue;
            }
            Err(other) => return Err(SyncError::Mailbox(other.into())),
        };
        let n = node.clone();
        let tries = blocking(move || n.take_claimed(&id, &contact, bundle, now_ms)).await?;
        if let Some(tries) = tries {
            missed = Some(missed.map_or(tries, |m| m.min(tries)));
        }
    }
    Ok(missed)
}
