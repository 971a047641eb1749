//! Moving house: a person changes mailbox; each contact gets a signed "my mailbox is now X"
//! notice, the old mailbox is still pulled for a grace period (a contact who has not seen
//! the notice yet still sends there), and a contact's notice moves where we deliver to them.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use config::MailboxAddress;
use crypto::{Draft, MessageKind, PublicKey, VerifiedMessage};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::*;

/// How long the old mailbox is pulled after a move unless configured: 7 days, a mailbox's
/// default retention.
pub(super) const DEFAULT_MOVE_GRACE_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// The setting holding the mailbox moved away from, and until when it is pulled.
pub const OLD_MAILBOX: &str = "old_mailbox";

/// The mailbox moved away from (JSON in [`OLD_MAILBOX`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldMailbox {
    /// Its address, with its pin.
    pub address: String,
    /// Pulled until then, ms since the epoch.
    pub until_ms: u64,
}

impl Node {
    /// After a move, pull the old mailbox for `grace` (the `move_grace` setting).
    pub fn set_move_grace(&self, grace: Duration) {
        let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        self.move_grace_ms.store(ms, Ordering::Relaxed);
    }

    /// The mailbox moved away from, while it is still to be pulled.
    pub fn old_mailbox(&self) -> Option<(MailboxAddress, u64)> {
        let old: OldMailbox =
            serde_json::from_str(&self.setting(OLD_MAILBOX).ok().flatten()?).ok()?;
        let address = old.address.parse().ok()?;
        (old.until_ms > now_ms()).then_some((address, old.until_ms))
    }

    /// Use `address` from now on; when it is another mailbox than the one in use, tell
    /// every contact (a signed notice each, in the outbox) and keep pulling the old one for
    /// the grace period. Blocking (RSA).
    pub fn move_mailbox(&self, address: MailboxAddress) -> Result<(), NodeError> {
        let old = self.mailbox_in_use();
        if old.same_endpoint(&address) {
            return self.set_mailbox(address);
        }
        // Contacts with no mailbox of their own on record were reached through ours: they
        // stay on the old one (which is theirs too), or our move would cut them off.
        let mut c = Changes::default();
        for identity in self.identities()? {
            for mut contact in self.contacts(&identity.id)? {
                if contact.mailbox.is_none() {
                    contact.mailbox = Some(old.to_string());
                    c.put(keys::contact(&identity.id, &contact.name), &contact);
                }
            }
        }
        self.store.apply(c)?;
        self.set_mailbox(address.clone())?;
        let grace = self.move_grace_ms.load(Ordering::Relaxed);
        let record = OldMailbox {
            address: old.to_string(),
            until_ms: now_ms().saturating_add(grace),
        };
        let json = serde_json::to_string(&record).unwrap_or_default();
        self.save_setting(OLD_MAILBOX, &json)?;
        let notices = self.announce(&address)?;
        info!(
            notices,
            "moved to another mailbox; the old one is pulled a while longer"
        );
        self.wake();
        Ok(())
    }

    /// Queue a signed notice of `address` to every contact of every identity. Blocking.
    fn announce(&self, address: &MailboxAddress) -> Result<usize, NodeError> {
        let body = address.to_string().into_bytes();
        let mut notices = 0;
        for record in self.identities()? {
            let identity = self.identity(&record.id)?;
            for contact in self.contacts(&record.id)? {
                let to = PublicKey::from_pem(&contact.public_key)?;
                let mut olm = self.olm(&record.id)?;
                let sealed = olm.seal(
                    &identity,
                    &to,
                    &Draft {
                        kind: MessageKind::MailboxMoved,
                        seq: 0,
                        prev: None,
                        sent_at: SystemTime::now(),
                        body: body.clone(),
                    },
                )?;
                let mut c = Changes::default();
                self.queue_envelope(
                    &mut c,
                    OutboxRecord {
                        identity: record.id.clone(),
                        contact: contact.name.clone(),
                        message_id: sealed.message_id,
                        kind: OutboxKind::Notice,
                    },
                    sealed.bytes,
                )?;
                olm.write(&mut c);
                self.store.apply(c)?;
                notices += 1;
            }
        }
        Ok(notices)
    }

    /// A contact's notice that their mailbox moved: deliver to them there from now on,
    /// unless a newer notice of theirs came first (a replay of an older one changes
    /// nothing). Blocking; the caller holds the inbox lock.
    pub(super) fn take_move(
        &self,
        id: &str,
        contact: &ContactRecord,
        message: &VerifiedMessage,
    ) -> Result<(), NodeError> {
        let Some(address) = std::str::from_utf8(message.body())
            .ok()
            .and_then(|text| text.parse::<MailboxAddress>().ok())
        else {
            debug!("a move notice names no valid mailbox; ignored");
            return Ok(());
        };
        let sent_ms = message.sent_at_ms();
        if contact.mailbox_ms.is_some_and(|known| known >= sent_ms) {
            debug!("an older move notice; ignored");
            return Ok(());
        }
        let mut record = contact.clone();
        record.mailbox = Some(address.to_string());
        record.mailbox_ms = Some(sent_ms);
        let mut c = Changes::default();
        c.put(keys::contact(id, &contact.name), &record);
        let (note_key, note) = self.put_note_at(
            &mut c,
            id,
            &contact.name,
            format!(
                "{} moved to another mailbox ({}); your messages go there now.",
                contact.shown_name(),
                address.without_fingerprint()
            ),
            false,
        )?;
        // Known by its id from now on: the same notice, replayed (after the contact was
        // deleted and added again, say), is a duplicate.
        c.put_raw(keys::message_id(id, &message.id()), note_key);
        self.store.apply(c)?;
        self.emit_entry(id, &contact.name, note);
        self.wake();
        Ok(())
    }

    /// A contact added by key alone (no mailbox known) whose profile names their mailbox:
    /// deliver to them there. An invite's or a notice's mailbox is not overridden. Blocking;
    /// the caller holds the inbox lock.
    pub(super) fn take_profile_mailbox(
        &self,
        id: &str,
        contact: &ContactRecord,
        message: &VerifiedMessage,
    ) -> Result<(), NodeError> {
        if contact.mailbox.is_some() {
            return Ok(());
        }
        let Some(address) = crypto::envelope::parse_profile_body(message.body())
            .and_then(|p| p.mailbox)
            .and_then(|m| m.parse::<MailboxAddress>().ok())
        else {
            return Ok(());
        };
        let mut record = contact.clone();
        record.mailbox = Some(address.to_string());
        record.mailbox_ms = Some(message.sent_at_ms());
        let mut c = Changes::default();
        c.put(keys::contact(id, &contact.name), &record);
        self.store.apply(c)?;
        self.wake();
        Ok(())
    }
}
