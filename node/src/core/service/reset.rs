//! Sending again what a contact never confirmed, after their session with us broke or they
//! came back on a new device (a restored identity): every outgoing forward-secret text
//! without a receipt is sealed again in the session they just started, with the same
//! message id, sequence number and hash, and a fresh envelope id. They show each once
//! (deduplicated on the message id) and their chain stays whole.

use std::time::{Duration, UNIX_EPOCH};

use crypto::{Draft, MessageId, MessageKind, PublicKey};

use super::ratchet::Olm;
use super::*;
use crate::core::store::ResendRecord;

impl Node {
    /// Remember how to seal a forward-secret text again (part of `c`), until its receipt.
    pub(super) fn keep_for_resend(
        c: &mut Changes,
        id: &str,
        message_id: &MessageId,
        contact: &str,
        to: Fingerprint,
        draft: &Draft,
    ) {
        let sent_at_ms = draft
            .sent_at
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        c.put(
            keys::resend(id, message_id),
            &ResendRecord {
                contact: contact.to_owned(),
                to,
                seq: draft.seq,
                prev: draft.prev,
                sent_at_ms,
            },
        );
    }

    /// Seal every text to `contact` that has no receipt yet again, in the session to use
    /// with them, into the outbox (with `olm`'s state, in one batch). Texts that were
    /// confirmed meanwhile are forgotten. Returns how many go again. Blocking; the caller
    /// holds the inbox lock.
    pub(super) fn resend_unconfirmed(
        &self,
        id: &str,
        contact: &ContactRecord,
        olm: &mut Olm<'_>,
    ) -> Result<usize, NodeError> {
        if !olm.has_session(&contact.fingerprint.to_string())? {
            // Sealed in version 1 their hash would change: nothing to do without a session.
            return Ok(0);
        }
        // At most once a minute per contact: a contact who sends resets in a loop does
        // not make this node sign every unconfirmed text again each time.
        if !olm.may_resend(&contact.fingerprint.to_string(), now_ms())? {
            return Ok(0);
        }
        let identity = self.identity(id)?;
        let to = PublicKey::from_pem(&contact.public_key)?;
        let mut c = Changes::default();
        let mut again = 0;
        for (key, record) in self.store.scan::<ResendRecord>(&keys::resends_of(id))? {
            if record.contact != contact.name {
                continue;
            }
            if record.to != contact.fingerprint {
                // Sealed to a key the contact no longer has.
                c.delete(key);
                continue;
            }
            let mid = key
                .len()
                .checked_sub(16)
                .and_then(|at| <[u8; 16]>::try_from(&key[at..]).ok())
                .map(MessageId);
            let message = mid.and_then(|mid| self.message(id, &contact.name, &mid).ok());
            let (Some(mid), Some(message)) = (mid, message) else {
                c.delete(key);
                continue;
            };
            if message.status == Status::Delivered {
                c.delete(key);
                continue;
            }
            let draft = Draft {
                kind: MessageKind::Text,
                seq: record.seq,
                prev: record.prev,
                sent_at: UNIX_EPOCH + Duration::from_millis(record.sent_at_ms),
                body: message.text.into_bytes(),
            };
            let sealed = olm.seal_as(&identity, &to, &draft, Some(mid))?;
            self.queue_envelope(
                &mut c,
                OutboxRecord {
                    identity: id.to_owned(),
                    contact: contact.name.clone(),
                    message_id: mid,
                    kind: OutboxKind::Resend,
                },
                sealed.bytes,
            )?;
            again += 1;
        }
        if again > 0 {
            olm.resent(&contact.fingerprint.to_string(), now_ms())?;
        }
        olm.write(&mut c);
        self.store.apply(c)?;
        if again > 0 {
            self.wake();
        }
        Ok(again)
    }
}
