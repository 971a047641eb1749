//! Forward secrecy: each identity's Olm device, its sessions with correspondents, and the
//! choice between envelope versions.
//!
//! Every seal and open goes through an [`Olm`]: one batch's worth of ratchet work for one
//! identity, under the node's ratchet lock (taken after the chain or inbox lock, never
//! before). It loads the device and sessions it needs from the store, changes them in
//! memory, and [`Olm::write`] puts what changed into the caller's batch, so the state that
//! made an envelope is stored with it (no ciphertext leaves before its state is durable)
//! and the state that opened one is stored with the message (and its receipt).
//!
//! A correspondent is sealed to with the session that last decrypted one of their messages
//! (Matrix's rule: crossed first messages converge), or the newest one this side started;
//! with none, in envelope version 1. Up to [`MAX_SESSIONS`] sessions are kept per
//! correspondent.

use std::collections::{HashMap, HashSet};
use std::sync::MutexGuard;

use crypto::{
    Device, Draft, EnvelopeV2, Identity, MessageId, OpenError, PickleKey, PublicKey, Sealed,
    Session, SessionId, VerifiedBundle, VerifiedMessage,
};
use tracing::warn;

use super::*;

/// Sessions kept per correspondent (the newest used first).
pub const MAX_SESSIONS: usize = 5;
/// One-time keys a device keeps published on its mailbox; it tops up below half.
pub const ONE_TIME_KEYS: usize = 50;
/// How often the fallback key is replaced.
pub const FALLBACK_ROTATION_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// How long before the node asks its mailbox again how many one-time keys are left.
pub const KEYS_RECHECK_MS: u64 = 60 * 60 * 1000;
/// How often a broken session may be reset, per correspondent.
pub const RESET_INTERVAL_MS: u64 = 60 * 60 * 1000;
/// How long before the node asks a contact's mailbox again for a key after it had none:
/// 5 s after the first miss (both sides often start together, and the contact may not have
/// published yet), doubling with each miss in a row, at most an hour (a contact whose
/// mailbox keeps no keys).
pub fn no_keys_recheck_ms(tries: u32) -> u64 {
    (5_000u64 << tries.min(20)).min(KEYS_RECHECK_MS)
}

/// What the node knows of one correspondent's sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerRecord {
    /// Session ids, the one to seal with first.
    pub sessions: Vec<SessionId>,
    /// They have sent a version 2 envelope: they will never be sent version 1 again.
    #[serde(default)]
    pub sent_v2: bool,
    /// When their mailbox last had no key to claim, ms since the epoch.
    #[serde(default)]
    pub no_keys_ms: Option<u64>,
    /// How many claims in a row found no key (the next one waits longer).
    #[serde(default)]
    pub no_keys_tries: u32,
    /// A session with them broke (an envelope in it did not open): claim a fresh key,
    /// start a new session and ask them to send again what has no receipt.
    #[serde(default)]
    pub reset_wanted: bool,
    /// When the last such reset was made (at most one an hour).
    #[serde(default)]
    pub reset_ms: Option<u64>,
    /// When their unconfirmed texts were last sealed again for them.
    #[serde(default)]
    pub resent_ms: Option<u64>,
    /// The envelope ids that did not open since the last reset (at most
    /// 64), named in the next `SessionReset`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<MessageId>,
}

/// How many envelope ids that did not open a `SessionReset` names at most.
pub const MAX_FAILED_IDS: usize = 64;

/// One batch's worth of ratchet work for one identity (see the module docs).
pub(crate) struct Olm<'a> {
    node: &'a Node,
    /// The ratchet lock, and under it the devices of the last work (see [`DeviceCache`]).
    cache: MutexGuard<'a, DeviceCache>,
    id: String,
    key: PickleKey,
    /// The identity's device: `None` only once this is dropped (it goes back to the cache).
    device: Option<Device>,
    /// The stored pickle `device` is the state of, if it is (not when it was just made or
    /// changed and not yet written).
    pickle: Option<Vec<u8>>,
    pub(super) device_dirty: bool,
    sessions: HashMap<SessionId, Session>,
    dirty: HashSet<SessionId>,
    removed: Vec<SessionId>,
    peers: HashMap<String, PeerRecord>,
    dirty_peers: HashSet<String>,
    seen: Vec<MessageId>,
    /// The last open started a session with another device of a correspondent than the
    /// one they used before.
    new_device: bool,
    /// Correspondents whose sessions and record go.
    forgotten: Vec<String>,
}

/// Each identity's device as its last ratchet work left it, with the pickle it was read
/// from or written as. Unpickling a device derives the public half of each of its one-time
/// keys (milliseconds with 50 of them), so work on the same identity takes the device from
/// here as long as the store still holds that very pickle; anything else (a failed write,
/// a deleted identity, a device changed and not written) is read from the store again.
pub(crate) type DeviceCache = HashMap<String, (Vec<u8>, Device)>;

impl Drop for Olm<'_> {
    fn drop(&mut self) {
        if self.device_dirty {
            return;
        }
        if let (Some(device), Some(pickle)) = (self.device.take(), self.pickle.take()) {
            self.cache.insert(self.id.clone(), (pickle, device));
        }
    }
}

impl std::fmt::Debug for Olm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Olm")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Start ratchet work for identity `id`. Blocking (it may make the identity's device:
    /// an RSA signature). Callers holding the chain or inbox lock take it after those.
    pub(crate) fn olm(&self, id: &str) -> Result<Olm<'_>, NodeError> {
        let identity = self.identity(id)?;
        let mut cache = self.olm_lock.lock().unwrap_or_else(|p| p.into_inner());
        let key = self.pickle_key(id, &identity)?;
        let stored = self.store.get_raw(&keys::olm_device(id))?;
        let had_one = stored.is_some();
        let cached = cache
            .remove(id)
            .filter(|(pickle, _)| stored.as_ref() == Some(pickle));
        let loaded = match cached {
            Some(hit) => Some(hit),
            None => stored.and_then(|bytes| match Device::from_pickle(&bytes, &key) {
                Ok(device) => Some((bytes, device)),
                Err(e) => {
                    warn!(error = %e, "an identity's device does not load: it gets a new one");
                    None
                }
            }),
        };
        let (device, pickle, device_dirty) = match loaded {
            Some((pickle, device)) => (device, Some(pickle), false),
            None => {
                if had_one {
                    // Its sessions were pickled under the same key: none of them loads
                    // either. They go, so that contacts' keys are claimed afresh.
                    let mut c = Changes::default();
                    for prefix in &keys::olm_prefixes_of(id)[..2] {
                        for key in self.store.keys(prefix)? {
                            c.delete(key);
                        }
                    }
                    self.store.apply(c)?;
                }
                (self.new_device(id, &identity)?, None, true)
            }
        };
        let mut olm = Olm {
            node: self,
            cache,
            id: id.to_owned(),
            key,
            device: Some(device),
            pickle,
            device_dirty,
            sessions: HashMap::new(),
            dirty: HashSet::new(),
            removed: Vec::new(),
            peers: HashMap::new(),
            dirty_peers: HashSet::new(),
            seen: Vec::new(),
            new_device: false,
            forgotten: Vec::new(),
        };
        if olm.device_dirty {
            // A new device is stored at once with its certificate: whatever comes next
            // (a publication, a seal) builds on it.
            let mut c = Changes::default();
            olm.write(&mut c);
            self.store.apply(c)?;
        }
        Ok(olm)
    }

    /// The identity's pickle key: from its file beside the identity's key file, made the
    /// first time.
    fn pickle_key(&self, id: &str, identity: &Identity) -> Result<PickleKey, NodeError> {
        let mut keys = self.pickle_keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = keys.get(id) {
            return Ok(key.clone());
        }
        let path = self.pickle_key_path(identity);
        // Encrypted with the identity keys' passphrase when there is one.
        let passphrase = self.passphrase.as_ref().map(Passphrase::expose);
        let key = match PickleKey::read_file(&path, passphrase) {
            Ok(key) => key,
            Err(_) if !path.exists() => {
                let key = PickleKey::generate();
                key.write_new_file(&path, passphrase)?;
                key
            }
            Err(e) => return Err(e.into()),
        };
        keys.insert(id.to_owned(), key.clone());
        Ok(key)
    }

    pub(super) fn pickle_key_path(&self, identity: &Identity) -> PathBuf {
        self.keys_dir
            .join(format!("{}.olm-key", identity.fingerprint()))
    }

    /// A new device for `id`: keys to publish, its certificate stored beside it.
    fn new_device(&self, id: &str, identity: &Identity) -> Result<Device, NodeError> {
        let mut device = Device::new(identity.fingerprint(), SystemTime::now());
        device.generate_one_time_keys(ONE_TIME_KEYS);
        device.rotate_fallback_key();
        let certificate = device.certify(identity)?;
        let mut c = Changes::default();
        c.put_raw(keys::olm_certificate(id), certificate.to_bytes());
        c.put(
            keys::olm_keys(id),
            &KeysRecord {
                fallback_ms: now_ms(),
                ..KeysRecord::default()
            },
        );
        self.store.apply(c)?;
        Ok(device)
    }

    /// Whether `id` has a session with `contact` (its messages to them go forward-secret).
    pub fn has_session(&self, id: &str, contact: &ContactRecord) -> Result<bool, NodeError> {
        let peer: PeerRecord = self
            .store
            .get(keys::olm_peer(id, &contact.fingerprint.to_string()))?
            .unwrap_or_default();
        Ok(!peer.sessions.is_empty())
    }

    /// The contacts of `id` that have no session yet and whose mailbox has not said lately
    /// that it has no key for them: the node claims one for each. Blocking.
    pub fn contacts_without_session(
        &self,
        id: &str,
        now: u64,
    ) -> Result<Vec<ContactRecord>, NodeError> {
        let mut out = Vec::new();
        for (_, contact) in self.store.scan::<ContactRecord>(&keys::contacts_of(id))? {
            let peer: PeerRecord = self
                .store
                .get(keys::olm_peer(id, &contact.fingerprint.to_string()))?
                .unwrap_or_default();
            let wait = no_keys_recheck_ms(peer.no_keys_tries.saturating_sub(1));
            let asked_lately = peer
                .no_keys_ms
                .is_some_and(|t| now.saturating_sub(t) < wait);
            if (peer.sessions.is_empty() || peer.reset_wanted) && !asked_lately {
                out.push(contact);
            }
        }
        Ok(out)
    }

    /// A claim at `contact`'s mailbox answered: with a bundle, start a session with them
    /// (after checking it against their key); without, remember they have none for now
    /// and say how many claims in a row found none. Blocking.
    pub fn take_claimed(
        &self,
        id: &str,
        contact: &ContactRecord,
        bundle: Option<crypto::Bundle>,
        now: u64,
    ) -> Result<Option<u32>, NodeError> {
        let key = PublicKey::from_pem(&contact.public_key)?;
        let identity = self.identity(id)?;
        let mut olm = self.olm(id)?;
        let mut c = Changes::default();
        let mut missed = None;
        match bundle.map(|b| b.verify(&key)) {
            Some(Ok(verified)) => {
                olm.start(&verified)?;
                let peer = olm.peer_mut(&contact.fingerprint.to_string())?;
                if std::mem::take(&mut peer.reset_wanted) {
                    peer.reset_ms = Some(now);
                }
                let failed = std::mem::take(&mut peer.failed);
                // The new session's first message: it tells them which device to seal to
                // (a restored identity's is new) and asks again for what has no receipt.
                let sealed = olm.seal(
                    &identity,
                    &key,
                    &Draft {
                        kind: crypto::MessageKind::SessionReset,
                        seq: 0,
                        prev: None,
                        sent_at: SystemTime::now(),
                        body: crypto::envelope::receipt_body(&failed),
                    },
                )?;
                self.queue_envelope(
                    &mut c,
                    OutboxRecord {
                        identity: id.to_owned(),
                        contact: contact.name.clone(),
                        message_id: sealed.message_id,
                        kind: OutboxKind::Notice,
                    },
                    sealed.bytes,
                )?;
            }
            Some(Err(e)) => {
                warn!(error = %e, "a contact's mailbox served a key that does not verify");
                missed = Some(olm.missed(&contact.fingerprint.to_string(), now)?);
            }
            None => missed = Some(olm.missed(&contact.fingerprint.to_string(), now)?),
        }
        olm.write(&mut c);
        self.store.apply(c)?;
        drop(olm);
        if missed.is_none() {
            // A session's first message waits in the outbox.
            self.wake();
        }
        Ok(missed)
    }
}

impl Olm<'_> {
    /// A correspondent's record, read once per batch.
    fn peer(&mut self, fingerprint: &str) -> Result<&mut PeerRecord, NodeError> {
        if !self.peers.contains_key(fingerprint) {
            let peer: PeerRecord = self
                .node
                .store
                .get(keys::olm_peer(&self.id, fingerprint))?
                .unwrap_or_default();
            self.peers.insert(fingerprint.to_owned(), peer);
        }
        Ok(self.peers.entry(fingerprint.to_owned()).or_default())
    }

    /// A correspondent's record, to change (it is written with the batch).
    fn peer_mut(&mut self, fingerprint: &str) -> Result<&mut PeerRecord, NodeError> {
        self.dirty_peers.insert(fingerprint.to_owned());
        self.peer(fingerprint)
    }

    /// A session, from memory or the store (`None` if unknown or unreadable).
    fn session(&mut self, id: SessionId) -> Result<Option<&mut Session>, NodeError> {
        if !self.sessions.contains_key(&id) {
            let Some(bytes) = self.node.store.get_raw(&keys::olm_session(&self.id, &id))? else {
                return Ok(None);
            };
            match Session::from_pickle(&bytes, &self.key) {
                Ok(session) => {
                    self.sessions.insert(id, session);
                }
                Err(e) => {
                    warn!(error = %e, "a stored session does not load");
                    return Ok(None);
                }
            }
        }
        Ok(self.sessions.get_mut(&id))
    }

    /// Put `session` first for its peer (the one to seal with), keeping at most
    /// [`MAX_SESSIONS`].
    fn put_first(&mut self, session: SessionId, peer: &str) -> Result<(), NodeError> {
        let record = self.peer_mut(peer)?;
        record.sessions.retain(|s| *s != session);
        record.sessions.insert(0, session);
        let dropped = record
            .sessions
            .split_off(record.sessions.len().min(MAX_SESSIONS));
        self.removed.extend(dropped);
        Ok(())
    }

    /// Start a session from a verified bundle: the one to seal with from now on.
    fn start(&mut self, bundle: &VerifiedBundle) -> Result<(), NodeError> {
        let session = self.device()?.outbound(bundle)?;
        let (id, peer) = (session.id(), session.peer().to_string());
        self.sessions.insert(id, session);
        self.dirty.insert(id);
        let record = self.peer_mut(&peer)?;
        record.no_keys_ms = None;
        record.no_keys_tries = 0;
        self.put_first(id, &peer)
    }

    /// A claim of `peer`'s key found none (or one that does not verify): how many in a
    /// row now.
    fn missed(&mut self, peer: &str, now: u64) -> Result<u32, NodeError> {
        let record = self.peer_mut(peer)?;
        record.no_keys_ms = Some(now);
        record.no_keys_tries = record.no_keys_tries.saturating_add(1);
        Ok(record.no_keys_tries)
    }

    /// Seal `draft` for `to`: in the session to use with them if there is one (envelope
    /// version 2), otherwise in version 1. CPU: one RSA signature, and an RSA wrap for
    /// version 1.
    pub(crate) fn seal(
        &mut self,
        identity: &Identity,
        to: &PublicKey,
        draft: &Draft,
    ) -> Result<Sealed, NodeError> {
        self.seal_as(identity, to, draft, None)
    }

    /// Whether there is a session to seal to `fingerprint` with.
    pub(crate) fn has_session(&mut self, fingerprint: &str) -> Result<bool, NodeError> {
        let first = self.peer(fingerprint)?.sessions.first().copied();
        Ok(match first {
            Some(id) => self.session(id)?.is_some(),
            None => false,
        })
    }

    /// A session with its peer broke: an envelope that names it did not open. Unless one
    /// was made within the hour, a reset is wanted (the sync loop claims a fresh key and
    /// asks them to send again). Returns whether it is. Envelopes of sessions this node
    /// does not know name nobody it could ask.
    pub(crate) fn broken(&mut self, envelope: &[u8], now: u64) -> Result<bool, NodeError> {
        let Ok(parsed) = EnvelopeV2::parse(envelope) else {
            return Ok(false);
        };
        let Some(peer) = self
            .session(parsed.session_id())?
            .map(|s| s.peer().to_string())
        else {
            return Ok(false);
        };
        let record = self.peer_mut(&peer)?;
        if record.failed.len() < MAX_FAILED_IDS && !record.failed.contains(&parsed.header().id) {
            record.failed.push(parsed.header().id);
        }
        let recent = record
            .reset_ms
            .is_some_and(|t| now.saturating_sub(t) < RESET_INTERVAL_MS);
        if recent || record.reset_wanted {
            return Ok(false);
        }
        record.reset_wanted = true;
        Ok(true)
    }

    /// Whether unconfirmed texts may be sealed again for `fingerprint` now: at most once
    /// a minute ([`Olm::resent`] says when they were).
    pub(crate) fn may_resend(&mut self, fingerprint: &str, now: u64) -> Result<bool, NodeError> {
        let last = self.peer(fingerprint)?.resent_ms;
        Ok(last.is_none_or(|t| now.saturating_sub(t) >= 60_000))
    }

    /// Unconfirmed texts were sealed again for `fingerprint` at `now`.
    pub(crate) fn resent(&mut self, fingerprint: &str, now: u64) -> Result<(), NodeError> {
        self.peer_mut(fingerprint)?.resent_ms = Some(now);
        Ok(())
    }

    /// Whether the last open started a session with another device of its sender than
    /// the one they used before (and forget it).
    pub(crate) fn take_new_device(&mut self) -> bool {
        std::mem::take(&mut self.new_device)
    }

    /// [`Olm::seal`] with a given message id in version 2 (a message sealed again keeps its
    /// id); a fresh random one when `None`.
    pub(crate) fn seal_as(
        &mut self,
        identity: &Identity,
        to: &PublicKey,
        draft: &Draft,
        message_id: Option<MessageId>,
    ) -> Result<Sealed, NodeError> {
        let peer = to.fingerprint().to_string();
        let device = self.device()?.id();
        // The first session that loads; those that do not are dropped from the list (so
        // that, with none left, a fresh key is claimed).
        let listed = self.peer(&peer)?.sessions.clone();
        let mut usable = None;
        for id in &listed {
            if self.session(*id)?.is_some() {
                usable = Some(*id);
                break;
            }
        }
        let unusable: Vec<SessionId> = listed
            .iter()
            .take_while(|id| Some(**id) != usable)
            .copied()
            .collect();
        if !unusable.is_empty() {
            self.peer_mut(&peer)?
                .sessions
                .retain(|id| !unusable.contains(id));
            self.removed.extend(unusable);
        }
        if let Some(id) = usable
            && let Some(session) = self.session(id)?
        {
            let mut random = [0u8; 16];
            rand::Rng::fill_bytes(&mut rand::rng(), &mut random);
            let id_inside = message_id.unwrap_or(MessageId(random));
            let sealed = identity.seal_v2(device, session, to, draft, id_inside)?;
            self.dirty.insert(id);
            return Ok(sealed);
        }
        Ok(identity.seal(to, draft)?)
    }

    /// Whether a version 2 envelope with this envelope id was taken in already.
    pub(crate) fn seen(&self, envelope: &MessageId) -> Result<bool, NodeError> {
        Ok(self
            .node
            .store
            .contains(&keys::olm_seen(&self.id, envelope))?)
    }

    /// Open a version 2 envelope: in the session it names, or, for a pre-key message of a
    /// new session, with the device. Marks the envelope seen. Nothing changes on an error.
    pub(crate) fn open(
        &mut self,
        envelope: &[u8],
    ) -> Result<Result<VerifiedMessage, OpenError>, NodeError> {
        let parsed = match EnvelopeV2::parse(envelope) {
            Ok(parsed) => parsed,
            Err(e) => return Ok(Err(e)),
        };
        // A store that cannot be read is the node's failure, not the envelope's: the
        // caller keeps it queued.
        let known = self.session(parsed.session_id())?.is_some();
        let opened = if known {
            match (
                self.device.as_ref(),
                self.sessions.get_mut(&parsed.session_id()),
            ) {
                (Some(device), Some(session)) => device.open(&parsed, session),
                _ => Err(OpenError::Undecryptable),
            }
        } else {
            // Accepting takes a one-time key out of the device: from here on it is not the
            // stored one, and must not go back to the cache unwritten (even if what follows
            // fails).
            self.device_dirty = true;
            self.device_mut()?
                .accept(&parsed)
                .map(|(session, message)| {
                    self.sessions.insert(session.id(), session);
                    message
                })
        };
        let message = match opened {
            Ok(message) => message,
            Err(e) => return Ok(Err(e)),
        };
        let peer = message.sender().fingerprint().to_string();
        if !known {
            // The device they used until now, if any: another one means a new device.
            let before = self.peer(&peer)?.sessions.first().copied();
            if let Some(before) = before
                && let Some(old) = self.session(before)?
                && Some(old.peer_device()) != message.sender_device()
            {
                self.new_device = true;
            }
        }
        let session = parsed.session_id();
        self.dirty.insert(session);
        self.put_first(session, &peer)?;
        self.peer_mut(&peer)?.sent_v2 = true;
        self.seen.push(parsed.header().id);
        Ok(Ok(message))
    }

    /// Drop everything kept for a correspondent (a stranger whose request was deleted or
    /// blocked): their sessions and record go with the next write.
    pub(crate) fn forget(&mut self, fingerprint: &str) -> Result<(), NodeError> {
        let sessions = self.peer(fingerprint)?.sessions.clone();
        self.removed.extend(sessions);
        self.peers.remove(fingerprint);
        self.dirty_peers.remove(fingerprint);
        self.forgotten.push(fingerprint.to_owned());
        Ok(())
    }

    /// The identity's device.
    pub(super) fn device(&self) -> Result<&Device, NodeError> {
        self.device.as_ref().ok_or_else(device_gone)
    }

    /// The identity's device, to change (set `device_dirty` after).
    pub(super) fn device_mut(&mut self) -> Result<&mut Device, NodeError> {
        self.device.as_mut().ok_or_else(device_gone)
    }

    /// Put what changed into `c` (and forget it was changed).
    pub(crate) fn write(&mut self, c: &mut Changes) {
        if std::mem::take(&mut self.device_dirty)
            && let Some(device) = &self.device
        {
            let pickle = device.pickle(&self.key);
            c.put_raw(keys::olm_device(&self.id), pickle.clone());
            self.pickle = Some(pickle);
        }
        for id in std::mem::take(&mut self.dirty) {
            if let Some(session) = self.sessions.get(&id) {
                c.put_raw(keys::olm_session(&self.id, &id), session.pickle(&self.key));
            }
        }
        for id in std::mem::take(&mut self.removed) {
            c.delete(keys::olm_session(&self.id, &id));
        }
        for peer in std::mem::take(&mut self.dirty_peers) {
            if let Some(record) = self.peers.get(&peer) {
                c.put(keys::olm_peer(&self.id, &peer), record);
            }
        }
        for envelope in std::mem::take(&mut self.seen) {
            c.put_raw(keys::olm_seen(&self.id, &envelope), Vec::new());
        }
        for peer in std::mem::take(&mut self.forgotten) {
            c.delete(keys::olm_peer(&self.id, &peer));
        }
    }
}

/// Only a dropped [`Olm`] has no device, and nothing can use one then.
fn device_gone() -> NodeError {
    NodeError::Io(std::io::Error::other(
        "the identity's device is no longer held",
    ))
}
