//! Publishing an identity's device keys: what to put on its own mailbox now (unpublished
//! keys, a top-up below half, a new fallback key weekly, an hourly count), and what the
//! mailbox said. The device itself is `ratchet.rs`'s.

use super::ratchet::{FALLBACK_ROTATION_MS, KEYS_RECHECK_MS, ONE_TIME_KEYS};
use super::*;

/// What an identity knows of its keys on its own mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeysRecord {
    /// One-time keys left there, as it last said.
    pub remaining: Option<u32>,
    /// When it last said so (or said it keeps no keys), ms since the epoch.
    pub checked_ms: Option<u64>,
    /// It keeps no keys (an older mailbox).
    #[serde(default)]
    pub unsupported: bool,
    /// When the fallback key was last replaced.
    pub fallback_ms: u64,
    /// When one-time keys were last made to top up (at most hourly: a mailbox that keeps
    /// fewer than half is not sent a batch every round).
    #[serde(default)]
    pub topped_ms: Option<u64>,
    /// The current fallback key, signed (hex of its wire form): sent with every
    /// publication, since a mailbox replaces it with the same key harmlessly.
    #[serde(default)]
    pub fallback: Option<String>,
}

/// A publication to make on the identity's mailbox: its key, certificate and new keys.
#[derive(Clone, Debug)]
pub struct KeysToPublish {
    /// The owner's SPKI DER.
    pub owner_der: Vec<u8>,
    /// The device certificate.
    pub certificate: crypto::DeviceCertificate,
    /// New one-time keys and perhaps a new fallback key (none: only ask how many are left).
    pub prekeys: Vec<crypto::SignedPrekey>,
}

impl Node {
    /// What identity `id` should publish on its mailbox now, if anything: its unpublished
    /// keys, new one-time keys when fewer than half are left, a new fallback key weekly, or
    /// (hourly) nothing but the question how many are left. Blocking.
    pub fn keys_to_publish(&self, id: &str, now: u64) -> Result<Option<KeysToPublish>, NodeError> {
        let identity = self.identity(id)?;
        let mut olm = self.olm(id)?;
        let record: KeysRecord = self.store.get(keys::olm_keys(id))?.unwrap_or_default();
        let stale = record
            .checked_ms
            .is_none_or(|t| now.saturating_sub(t) >= KEYS_RECHECK_MS);
        if record.unsupported && !stale {
            return Ok(None);
        }
        let mut changed = false;
        let mut record = record;
        let topped_lately = record
            .topped_ms
            .is_some_and(|t| now.saturating_sub(t) < KEYS_RECHECK_MS);
        let all_published = olm
            .device()?
            .unpublished_prekeys()
            .iter()
            .all(|k| k.is_fallback());
        if let Some(remaining) = record.remaining
            && (remaining as usize) < ONE_TIME_KEYS / 2
            && !topped_lately
            && all_published
        {
            olm.device_mut()?
                .generate_one_time_keys(ONE_TIME_KEYS - remaining as usize);
            record.topped_ms = Some(now);
            changed = true;
        }
        if now.saturating_sub(record.fallback_ms) >= FALLBACK_ROTATION_MS {
            // The one before the last goes; the last stays for sessions started on it.
            olm.device_mut()?.forget_previous_fallback();
            olm.device_mut()?.rotate_fallback_key();
            record.fallback_ms = now;
            changed = true;
        }
        // New keys count as published from now on, before they are sent: if the answer is
        // lost they are never sent again, so a mailbox can never hold (and serve) a
        // one-time key twice. At worst a lost batch leaves fewer keys, which the next
        // top-up makes good. The fallback key is kept and sent with every publication.
        let new = olm.device()?.unpublished_prekeys();
        if !new.is_empty() {
            if let Some(fallback) = new.iter().find(|k| k.is_fallback()) {
                record.fallback = Some(hex::encode(fallback.to_bytes()));
            }
            olm.device_mut()?.mark_published();
            changed = true;
        }
        if changed {
            olm.device_dirty = true;
            let mut c = Changes::default();
            olm.write(&mut c);
            c.put(keys::olm_keys(id), &record);
            self.store.apply(c)?;
        }
        if new.is_empty() && !stale {
            return Ok(None);
        }
        let mut prekeys: Vec<crypto::SignedPrekey> =
            new.into_iter().filter(|k| !k.is_fallback()).collect();
        if let Some(fallback) = record
            .fallback
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| crypto::SignedPrekey::from_bytes(&b).ok())
        {
            prekeys.push(fallback);
        }
        let Some(certificate) = self
            .store
            .get_raw(&keys::olm_certificate(id))?
            .and_then(|b| crypto::DeviceCertificate::from_bytes(&b).ok())
        else {
            return Ok(None);
        };
        Ok(Some(KeysToPublish {
            owner_der: identity.public_key().der().to_vec(),
            certificate,
            prekeys,
        }))
    }

    /// The mailbox stored a publication (`remaining` one-time keys there now; `None`: it
    /// keeps no keys). Blocking.
    pub fn keys_published(
        &self,
        id: &str,
        remaining: Option<u32>,
        now: u64,
    ) -> Result<(), NodeError> {
        let _olm = self.olm(id)?;
        let mut record: KeysRecord = self.store.get(keys::olm_keys(id))?.unwrap_or_default();
        record.checked_ms = Some(now);
        record.unsupported = remaining.is_none();
        record.remaining = remaining;
        let mut c = Changes::default();
        c.put(keys::olm_keys(id), &record);
        self.store.apply(c)?;
        Ok(())
    }
}
