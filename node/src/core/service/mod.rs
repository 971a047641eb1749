//! The node's service: identities, contacts, conversations, receipts, requests and status,
//! over the [`Store`] and the key files. The HTTP API, the web UI and the sync loop are thin
//! adapters over this.
//!
//! Methods that touch RSA or the disk are either `async` (they move the work to a blocking
//! thread themselves) or documented as blocking (callers run them off the executor).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crypto::{Draft, Fingerprint, Identity, MessageHash, MessageKind, PublicKey, VerifiedMessage};
use tokio::sync::{Notify, broadcast};
use tracing::{debug, warn};

use crate::core::error::NodeError;
use crate::core::invite::Invite;
use crate::core::store::{
    ChainRecord, Changes, ContactRecord, Direction, Entry, IdentityRecord, MessageRecord,
    OutboxKind, OutboxRecord, RequestRecord, Status, Store, keys,
};

/// The most messages kept in requests from one unknown sender (per identity).
pub const MAX_REQUEST_MESSAGES_PER_SENDER: usize = 20;
/// The most messages kept in requests from all unknown senders together (per identity).
pub const MAX_REQUEST_MESSAGES: usize = 1_000;

/// Connection state shown to the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// "online", "connecting" or "offline".
    pub state: &'static str,
    /// The last error in words.
    pub last_error: Option<String>,
    /// When the last successful sync ended, ms since the epoch.
    pub last_sync_ms: Option<u64>,
    /// The mailbox address in use, with the certificate fingerprint once known.
    pub mailbox: String,
}

/// Something the UI should show without a reload.
#[derive(Clone, Debug)]
pub enum NodeEvent {
    /// A message was stored (sent or received) in a conversation.
    Message {
        /// Whose.
        identity: String,
        /// With whom.
        contact: String,
        /// The entry (a message or a gap marker).
        entry: Entry,
    },
    /// An outgoing message changed status.
    Status {
        /// Whose.
        identity: String,
        /// With whom.
        contact: String,
        /// Message id, hex.
        id: String,
        /// The new status.
        status: Status,
        /// The error in words, for failed ones.
        error: Option<String>,
    },
    /// A message from an unknown sender arrived.
    Request {
        /// Whose.
        identity: String,
        /// The sender's fingerprint, hex.
        fingerprint: String,
    },
    /// The connection state changed.
    Connection,
}

/// One unknown sender and their messages.
#[derive(Clone, Debug)]
pub struct Request {
    /// Fingerprint, hex.
    pub fingerprint: String,
    /// Public key, PEM.
    pub public_key: String,
    /// Their messages, oldest first.
    pub messages: Vec<MessageRecord>,
}

/// The node.
#[derive(Debug)]
pub struct Node {
    store: Store,
    keys_dir: PathBuf,
    /// Encrypts new key files, and decrypted the existing ones at start.
    passphrase: Option<Passphrase>,
    identities: RwLock<HashMap<String, Arc<Identity>>>,
    /// The largest text a user may send, in bytes.
    pub max_body_bytes: usize,
    status: RwLock<SyncStatus>,
    /// Wakes the sync loop: something to send, or a new identity to log in.
    pub wake: Notify,
    events: broadcast::Sender<NodeEvent>,
}

/// A key passphrase, wiped from memory when dropped; never printed.
#[derive(Clone)]
pub struct Passphrase(zeroize::Zeroizing<String>);

impl Passphrase {
    /// Wrap a passphrase.
    pub fn new(text: String) -> Self {
        Self(zeroize::Zeroizing::new(text))
    }

    /// The text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

pub use config::now_ms;

/// Check an identity id or contact name: `[A-Za-z0-9._-]{1,64}`, never `.` or `..`.
pub fn check_name(what: &'static str, name: &str) -> Result<(), NodeError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > 64 || !ok_chars || name == "." || name == ".." {
        return Err(NodeError::invalid(
            "invalid_name",
            format!("{what} must be 1 to 64 characters from A-Z a-z 0-9 . _ - (and not . or ..)"),
        ));
    }
    Ok(())
}

fn parse_hash(hex_hash: &str) -> Option<MessageHash> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut b).ok()?;
    Some(MessageHash(b))
}

fn parse_id(hex_id: &str) -> Option<[u8; 16]> {
    let mut b = [0u8; 16];
    hex::decode_to_slice(hex_id, &mut b).ok()?;
    Some(b)
}

fn internal(e: impl std::fmt::Display) -> NodeError {
    NodeError::Internal(e.to_string())
}

/// Run blocking work (RSA, disk) off the async executor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::Internal(format!("background task failed: {e}")))?
}

impl Node {
    /// Open the node's store and load every identity's private key once.
    pub fn open(
        data_dir: &std::path::Path,
        max_body_bytes: usize,
        passphrase: Option<Passphrase>,
    ) -> Result<Self, NodeError> {
        let store = Store::open(&data_dir.join("store"))?;
        Self::with_store(store, data_dir.join("keys"), max_body_bytes, passphrase)
    }

    /// A node over any store, with its keys in `keys_dir`.
    pub fn with_store(
        store: Store,
        keys_dir: PathBuf,
        max_body_bytes: usize,
        passphrase: Option<Passphrase>,
    ) -> Result<Self, NodeError> {
        crate::ensure_private_dir(&keys_dir)?;
        let mut identities = HashMap::new();
        for (_, record) in store.scan::<IdentityRecord>(b"id/")? {
            let path = keys_dir.join(format!("{}.pem", record.fingerprint));
            let identity =
                Identity::read_pem_file(&path, passphrase.as_ref().map(Passphrase::expose))
                    .map_err(|e| NodeError::Internal(format!("identity {}: {e}", record.id)))?;
            identities.insert(record.id.clone(), Arc::new(identity));
        }
        Ok(Self {
            store,
            keys_dir,
            passphrase,
            identities: RwLock::new(identities),
            max_body_bytes,
            status: RwLock::new(SyncStatus {
                state: "connecting",
                ..SyncStatus::default()
            }),
            wake: Notify::new(),
            events: broadcast::channel(1024).0,
        })
    }

    /// The store (for the sync loop).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Listen to what happens, for live pages.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: NodeEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    // ---- identities ----

    /// Create an identity with a fresh RSA-2048 key.
    pub async fn create_identity(
        self: &Arc<Self>,
        id: String,
        display_name: Option<String>,
    ) -> Result<IdentityRecord, NodeError> {
        self.add_identity(id, display_name, None).await
    }

    /// Restore an identity from a backup made by [`Node::backup`] (an encrypted PKCS#8 PEM,
    /// which OpenSSL can also make).
    pub async fn restore_identity(
        self: &Arc<Self>,
        id: String,
        display_name: Option<String>,
        backup: String,
        passphrase: String,
    ) -> Result<IdentityRecord, NodeError> {
        let identity = blocking(move || {
            Identity::from_encrypted_pem(&backup, &passphrase)
                .map_err(|e| NodeError::invalid("invalid_backup", format!("backup: {e}")))
        })
        .await?;
        let fingerprint = identity.fingerprint().to_string();
        if let Some(existing) = self
            .identities()?
            .into_iter()
            .find(|r| r.fingerprint == fingerprint)
        {
            return Err(NodeError::Conflict(format!(
                "this key is already the identity {}",
                existing.id
            )));
        }
        self.add_identity(id, display_name, Some(identity)).await
    }

    /// A backup of an identity's private key: PKCS#8 PEM encrypted with `passphrase`.
    pub async fn backup(
        self: &Arc<Self>,
        id: String,
        passphrase: String,
    ) -> Result<String, NodeError> {
        if passphrase.chars().count() < 8 {
            return Err(NodeError::invalid(
                "weak_passphrase",
                "passphrase: use at least 8 characters",
            ));
        }
        let identity = self.identity(&id)?;
        blocking(move || {
            Ok(identity
                .to_encrypted_pem(&passphrase)
                .map_err(internal)?
                .to_string())
        })
        .await
    }

    async fn add_identity(
        self: &Arc<Self>,
        id: String,
        display_name: Option<String>,
        restored: Option<Identity>,
    ) -> Result<IdentityRecord, NodeError> {
        check_name("an identity id", &id)?;
        let display_name = display_name
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if display_name
            .as_ref()
            .is_some_and(|d| d.chars().count() > 100)
        {
            return Err(NodeError::invalid(
                "invalid_display_name",
                "display_name is at most 100 characters",
            ));
        }
        if self.identity(&id).is_ok() {
            return Err(NodeError::Conflict(format!("identity {id} already exists")));
        }
        let node = self.clone();
        let record = blocking(move || {
            let identity = match restored {
                Some(identity) => identity,
                None => Identity::generate().map_err(internal)?,
            };
            let fingerprint = identity.fingerprint().to_string();
            // Checked and written under the lock: two concurrent requests for the same id,
            // or restoring the same key, must end in one identity and one 409.
            let mut ids = node.identities.write().unwrap_or_else(|p| p.into_inner());
            if ids.contains_key(&id) {
                return Err(NodeError::Conflict(format!("identity {id} already exists")));
            }
            if let Some((other, _)) = ids
                .iter()
                .find(|(_, i)| i.fingerprint() == identity.fingerprint())
            {
                return Err(NodeError::Conflict(format!(
                    "this key is already the identity {other}"
                )));
            }
            let path = node.keys_dir.join(format!("{fingerprint}.pem"));
            // A file left by a crash between writing it and recording the identity: no
            // identity uses it (checked above), and it holds this very key.
            if path.exists() {
                std::fs::remove_file(&path).map_err(internal)?;
            }
            match &node.passphrase {
                Some(p) => identity.write_encrypted_pem_file(&path, p.expose()),
                None => identity.write_pkcs8_pem_file(&path),
            }
            .map_err(internal)?;
            let record = IdentityRecord {
                id: id.clone(),
                display_name,
                fingerprint,
                created_ms: now_ms(),
            };
            let mut c = Changes::default();
            c.put(keys::identity(&id), &record);
            node.store.apply(c)?;
            ids.insert(id, Arc::new(identity));
            Ok(record)
        })
        .await?;
        self.wake.notify_one();
        Ok(record)
    }

    /// All identities, by id.
    pub fn identities(&self) -> Result<Vec<IdentityRecord>, NodeError> {
        Ok(self
            .store
            .scan::<IdentityRecord>(b"id/")?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// One identity's record.
    pub fn identity_record(&self, id: &str) -> Result<IdentityRecord, NodeError> {
        check_name("an identity id", id)?;
        self.store
            .get(keys::identity(id))?
            .ok_or_else(|| NodeError::NotFound(format!("no identity {id}")))
    }

    /// One identity's key.
    pub fn identity(&self, id: &str) -> Result<Arc<Identity>, NodeError> {
        self.identities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| NodeError::NotFound(format!("no identity {id}")))
    }

    /// Every loaded identity (for the sync loop).
    pub fn loaded_identities(&self) -> Vec<(String, Arc<Identity>)> {
        self.identities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Delete an identity: its record, contacts, conversations and requests; its key file
    /// is removed.
    pub async fn delete_identity(self: &Arc<Self>, id: String) -> Result<(), NodeError> {
        let record = self.identity_record(&id)?;
        let node = self.clone();
        blocking(move || {
            let mut c = Changes::default();
            c.delete(keys::identity(&id));
            let mut prefixes = vec![
                keys::contacts_of(&id),
                keys::requests_of(&id),
                keys::conversations_of(&id),
            ];
            prefixes.push([b"chain/".as_slice(), id.as_bytes(), b"\0"].concat());
            prefixes.push([b"read/".as_slice(), id.as_bytes(), b"\0"].concat());
            prefixes.push([b"inchain/".as_slice(), id.as_bytes(), b"\0"].concat());
            for prefix in prefixes {
                for k in node.store.keys(&prefix)? {
                    c.delete(k);
                }
            }
            for (k, item) in node.store.scan::<OutboxRecord>(b"outbox/")? {
                if item.identity == id {
                    c.delete(k);
                }
            }
            node.store.apply(c)?;
            node.identities
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = std::fs::remove_file(node.keys_dir.join(format!("{}.pem", record.fingerprint)));
            Ok(())
        })
        .await
    }

    /// The invite code of an identity: its display name, public key and our mailbox.
    pub fn invite(&self, id: &str) -> Result<String, NodeError> {
        let record = self.identity_record(id)?;
        let identity = self.identity(id)?;
        Ok(Invite {
            display_name: record.display_name.or(Some(record.id)),
            public_key: identity.public_key().clone(),
            mailbox: self.status().mailbox.parse().ok(),
        }
        .encode())
    }

    // ---- contacts ----

    /// Add a contact to an identity from a public key PEM.
    pub async fn add_contact(
        self: &Arc<Self>,
        id: String,
        name: String,
        public_key_pem: String,
    ) -> Result<ContactRecord, NodeError> {
        let key = PublicKey::from_pem(&public_key_pem)
            .map_err(|e| NodeError::invalid("invalid_public_key", format!("public_key: {e}")))?;
        self.add_contact_key(id, name, key, None).await
    }

    /// Add a contact to an identity from an invite code.
    pub async fn add_contact_from_invite(
        self: &Arc<Self>,
        id: String,
        name: String,
        code: &str,
    ) -> Result<ContactRecord, NodeError> {
        let invite = Invite::decode(code)
            .map_err(|e| NodeError::invalid("invalid_invite", format!("invite: {e}")))?;
        self.add_contact_key(
            id,
            name,
            invite.public_key,
            invite.mailbox.map(|m| m.to_string()),
        )
        .await
    }

    async fn add_contact_key(
        self: &Arc<Self>,
        id: String,
        name: String,
        key: PublicKey,
        mailbox: Option<String>,
    ) -> Result<ContactRecord, NodeError> {
        let me = self.identity(&id)?;
        check_name("a contact name", &name)?;
        if key.fingerprint() == me.fingerprint() {
            return Err(NodeError::invalid(
                "own_key",
                "public_key: that is this identity's own key",
            ));
        }
        let fingerprint = key.fingerprint().to_string();
        if self.store.contains(&keys::contact(&id, &name))? {
            return Err(NodeError::Conflict(format!(
                "contact {name} already exists"
            )));
        }
        if let Some(existing) = self
            .contacts(&id)?
            .into_iter()
            .find(|c| c.fingerprint == fingerprint)
        {
            return Err(NodeError::Conflict(format!(
                "this key is already the contact {}",
                existing.name
            )));
        }
        let record = ContactRecord {
            name: name.clone(),
            public_key: key.to_pem(),
            fingerprint,
            verified: false,
            added_ms: now_ms(),
            mailbox,
        };
        let node = self.clone();
        let r = record.clone();
        blocking(move || {
            let mut c = Changes::default();
            c.put(keys::contact(&id, &name), &r);
            node.store.apply(c)?;
            Ok(())
        })
        .await?;
        Ok(record)
    }

    /// An identity's contacts, by name.
    pub fn contacts(&self, id: &str) -> Result<Vec<ContactRecord>, NodeError> {
        self.identity(id)?;
        Ok(self
            .store
            .scan::<ContactRecord>(&keys::contacts_of(id))?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// One contact.
    pub fn contact(&self, id: &str, name: &str) -> Result<ContactRecord, NodeError> {
        self.identity(id)?;
        check_name("a contact name", name)?;
        self.store
            .get(keys::contact(id, name))?
            .ok_or_else(|| NodeError::NotFound(format!("no contact {name}")))
    }

    /// Mark a contact verified (or not) after comparing safety numbers.
    pub async fn set_verified(
        self: &Arc<Self>,
        id: String,
        name: String,
        verified: bool,
    ) -> Result<ContactRecord, NodeError> {
        let mut record = self.contact(&id, &name)?;
        record.verified = verified;
        let node = self.clone();
        let r = record.clone();
        blocking(move || {
            let mut c = Changes::default();
            c.put(keys::contact(&id, &name), &r);
            node.store.apply(c)?;
            Ok(())
        })
        .await?;
        Ok(record)
    }

    /// Delete a contact and its conversation.
    pub async fn delete_contact(
        self: &Arc<Self>,
        id: String,
        name: String,
    ) -> Result<(), NodeError> {
        self.contact(&id, &name)?;
        let node = self.clone();
        blocking(move || {
            // The conversation, both chains and the read mark go with the contact: a new key
            // added later under the same name starts afresh (no inherited history, and no
            // sequence numbers that would hide its first gaps).
            let mut c = Changes::default();
            c.delete(keys::contact(&id, &name));
            c.delete(keys::chain(&id, &name));
            c.delete(keys::inchain(&id, &name));
            c.delete(keys::read_mark(&id, &name));
            for key in node.store.keys(&keys::conversation(&id, &name))? {
                c.delete(key);
            }
            node.store.apply(c)?;
            Ok(())
        })
        .await
    }

    /// The safety number of an identity and a contact.
    pub fn safety_number(&self, id: &str, contact: &ContactRecord) -> Result<String, NodeError> {
        let me = self.identity(id)?.fingerprint();
        let them: Fingerprint = contact
            .fingerprint
            .parse()
            .map_err(|_| NodeError::Internal("stored fingerprint unreadable".into()))?;
        Ok(crypto::safety_number(&me, &them))
    }

    /// Words for a contact whose invite named another mailbox than the one in use.
    pub fn mailbox_warning(&self, contact: &ContactRecord) -> Option<String> {
        let theirs: config::MailboxAddress = contact.mailbox.as_deref()?.parse().ok()?;
        let ours: config::MailboxAddress = self.status().mailbox.parse().ok()?;
        let same = theirs.host.eq_ignore_ascii_case(&ours.host)
            && theirs.port == ours.port
            && (theirs.fingerprint.is_none()
                || ours.fingerprint.is_none()
                || theirs.fingerprint == ours.fingerprint);
        (!same).then(|| {
            format!(
                "{} uses another mailbox ({theirs}); messages will not reach them until you both use the same mailbox",
                contact.name
            )
        })
    }

    // ---- messages ----

    /// Seal a text for a contact, store it as pending and queue it for the mailbox.
    /// Never waits for the network.
    pub async fn send_text(
        self: &Arc<Self>,
        id: String,
        contact: String,
        text: String,
    ) -> Result<MessageRecord, NodeError> {
        let identity = self.identity(&id)?;
        let record = self.contact(&id, &contact)?;
        if text.trim().is_empty() {
            return Err(NodeError::invalid(
                "empty_text",
                "text: a message cannot be empty",
            ));
        }
        if text.len() > self.max_body_bytes {
            return Err(NodeError::TooLarge(format!(
                "text: {} bytes is over the limit of {} bytes",
                text.len(),
                self.max_body_bytes
            )));
        }
        let recipient = PublicKey::from_pem(&record.public_key).map_err(internal)?;
        let node = self.clone();
        let message = blocking(move || {
            // One sender at a time per node keeps each chain's sequence gapless.
            static CHAIN: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _chain = CHAIN.lock().unwrap_or_else(|p| p.into_inner());
            let chain: ChainRecord = node
                .store
                .get(keys::chain(&id, &contact))?
                .unwrap_or_default();
            let draft = Draft {
                kind: MessageKind::Text,
                seq: chain.last_seq.saturating_add(1),
                prev: chain.last_hash.as_deref().and_then(parse_hash),
                sent_at: SystemTime::now(),
                body: text.clone().into_bytes(),
            };
            let sealed = identity.seal(&recipient, &draft).map_err(internal)?;
            let now = now_ms();
            let message = MessageRecord {
                id: sealed.header.id.to_string(),
                direction: Direction::Out,
                text,
                sent_ms: now,
                stored_ms: now,
                status: Status::Pending,
                seq: draft.seq,
                error: None,
            };
            let msg_key = keys::message(&id, &contact, node.store.next_seq()?);
            let mut c = Changes::default();
            c.put(msg_key.clone(), &Entry::Message(message.clone()));
            c.put_raw(keys::message_id(&sealed.header.id.0), msg_key);
            c.put(
                keys::chain(&id, &contact),
                &ChainRecord {
                    last_seq: draft.seq,
                    last_hash: Some(sealed.hash.to_string()),
                },
            );
            c.put(
                keys::outbox(node.store.next_seq()?),
                &OutboxRecord {
                    identity: id.clone(),
                    contact: contact.clone(),
                    message_id: message.id.clone(),
                    envelope: hex::encode(&sealed.bytes),
                    kind: OutboxKind::Text,
                },
            );
            node.store.apply(c)?;
            node.emit(NodeEvent::Message {
                identity: id,
                contact,
                entry: Entry::Message(message.clone()),
            });
            Ok(message)
        })
        .await?;
        self.wake.notify_one();
        Ok(message)
    }

    /// A conversation page: newest first, at most `limit` entries, older than the message
    /// `before`.
    pub fn messages(
        &self,
        id: &str,
        contact: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>, NodeError> {
        self.contact(id, contact)?;
        let before_key = match before {
            None => None,
            Some(mid) => {
                let b = parse_id(mid).ok_or_else(|| {
                    NodeError::invalid("invalid_before", "before: not a message id")
                })?;
                let key = self
                    .store
                    .get_raw(&keys::message_id(&b))?
                    .filter(|k| k.starts_with(&keys::conversation(id, contact)))
                    .ok_or_else(|| {
                        NodeError::NotFound(format!("no message {mid} in this conversation"))
                    })?;
                Some(key)
            }
        };
        Ok(self
            .store
            .scan_rev::<Entry>(
                &keys::conversation(id, contact),
                before_key.as_deref(),
                limit,
            )?
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    }

    /// One message of a conversation, by its id.
    pub fn message(&self, id: &str, contact: &str, mid: &str) -> Result<MessageRecord, NodeError> {
        self.contact(id, contact)?;
        let missing = || NodeError::NotFound(format!("no message {mid} in this conversation"));
        let b = parse_id(mid).ok_or_else(missing)?;
        let key = self
            .store
            .get_raw(&keys::message_id(&b))?
            .filter(|k| k.starts_with(&keys::conversation(id, contact)))
            .ok_or_else(missing)?;
        match self.store.get::<Entry>(key)? {
            Some(Entry::Message(m)) => Ok(m),
            _ => Err(missing()),
        }
    }

    /// How many incoming messages of a conversation are unread, and the newest message's
    /// first line (at most 80 characters) as a preview.
    pub fn summary(&self, id: &str, contact: &str) -> Result<(usize, Option<String>), NodeError> {
        let mark = self.store.get_raw(&keys::read_mark(id, contact))?;
        let recent = self
            .store
            .scan_rev::<Entry>(&keys::conversation(id, contact), None, 500)?;
        let mut unread = 0;
        let mut preview = None;
        for (key, entry) in &recent {
            let Entry::Message(m) = entry else {
                continue;
            };
            if preview.is_none() {
                let line = m.text.lines().next().unwrap_or_default();
                let mut short: String = line.chars().take(80).collect();
                if line.chars().count() > 80 || m.text.lines().nth(1).is_some() {
                    short.push('…');
                }
                preview = Some(short);
            }
            if mark.as_deref().is_some_and(|mark| key.as_slice() <= mark) {
                break;
            }
            if m.direction == Direction::In {
                unread += 1;
            }
        }
        Ok((unread, preview))
    }

    /// Remember that the user has seen a conversation up to its newest entry. Blocking.
    pub fn mark_read(&self, id: &str, contact: &str) -> Result<(), NodeError> {
        let newest = self
            .store
            .scan_rev::<Entry>(&keys::conversation(id, contact), None, 1)?
            .into_iter()
            .next();
        if let Some((key, _)) = newest
            && self
                .store
                .get_raw(&keys::read_mark(id, contact))?
                .as_deref()
                != Some(key.as_slice())
        {
            let mut c = Changes::default();
            c.put_raw(keys::read_mark(id, contact), key);
            self.store.apply(c)?;
        }
        Ok(())
    }

    /// Senders who are not contacts of `id`, with their messages.
    pub fn requests(&self, id: &str) -> Result<Vec<Request>, NodeError> {
        self.identity(id)?;
        let mut by_sender: Vec<Request> = Vec::new();
        for (_, r) in self.store.scan::<RequestRecord>(&keys::requests_of(id))? {
            let Ok(key) = PublicKey::from_pem(&r.public_key) else {
                continue;
            };
            let fingerprint = key.fingerprint().to_string();
            match by_sender.iter_mut().find(|s| s.fingerprint == fingerprint) {
                Some(s) => s.messages.push(r.message),
                None => by_sender.push(Request {
                    fingerprint,
                    public_key: r.public_key,
                    messages: vec![r.message],
                }),
            }
        }
        Ok(by_sender)
    }

    /// Accept an unknown sender as contact `name`: their messages move into the
    /// conversation, and they get receipts.
    pub async fn accept_request(
        self: &Arc<Self>,
        id: String,
        fingerprint: String,
        name: String,
    ) -> Result<ContactRecord, NodeError> {
        check_name("a contact name", &name)?;
        let records = self
            .store
            .scan::<RequestRecord>(&keys::requests_from(&id, &fingerprint))?;
        let Some((_, first)) = records.first() else {
            return Err(NodeError::NotFound(format!(
                "no request from {fingerprint}"
            )));
        };
        let key = PublicKey::from_pem(&first.public_key).map_err(internal)?;
        let contact = self
            .add_contact_key(id.clone(), name.clone(), key.clone(), None)
            .await?;
        let node = self.clone();
        let identity = self.identity(&id)?;
        blocking(move || {
            let mut c = Changes::default();
            let mut chain = ChainRecord::default();
            let mut ids = Vec::new();
            for (old_key, record) in records {
                let new_key = keys::message(&id, &name, node.store.next_seq()?);
                c.delete(old_key);
                if let Some(mid) = parse_id(&record.message.id) {
                    c.put_raw(keys::message_id(&mid), new_key.clone());
                    ids.push(crypto::MessageId(mid));
                }
                if record.message.seq > chain.last_seq {
                    chain = ChainRecord {
                        last_seq: record.message.seq,
                        last_hash: record.hash.clone(),
                    };
                }
                c.put(new_key, &Entry::Message(record.message));
            }
            c.put(keys::inchain(&id, &name), &chain);
            if !ids.is_empty() {
                node.queue_receipt(&mut c, &identity, &key, &id, &name, &ids)?;
            }
            node.store.apply(c)?;
            Ok(())
        })
        .await?;
        self.wake.notify_one();
        Ok(contact)
    }

    /// Delete an unknown sender's messages.
    pub async fn delete_request(
        self: &Arc<Self>,
        id: String,
        fingerprint: String,
    ) -> Result<(), NodeError> {
        self.identity(&id)?;
        let node = self.clone();
        blocking(move || {
            let found = node.store.keys(&keys::requests_from(&id, &fingerprint))?;
            if found.is_empty() {
                return Err(NodeError::NotFound(format!(
                    "no request from {fingerprint}"
                )));
            }
            let mut c = Changes::default();
            for k in found {
                c.delete(k);
            }
            node.store.apply(c)?;
            Ok(())
        })
        .await
    }

    /// Seal a receipt for `ids` to `to` and put it in the outbox (part of `c`). Blocking.
    fn queue_receipt(
        &self,
        c: &mut Changes,
        identity: &Identity,
        to: &PublicKey,
        id: &str,
        contact: &str,
        ids: &[crypto::MessageId],
    ) -> Result<(), NodeError> {
        let sealed = identity
            .seal(
                to,
                &Draft {
                    kind: MessageKind::Receipt,
                    seq: 0,
                    prev: None,
                    sent_at: SystemTime::now(),
                    body: crypto::envelope::receipt_body(ids),
                },
            )
            .map_err(internal)?;
        c.put(
            keys::outbox(self.store.next_seq()?),
            &OutboxRecord {
                identity: id.to_owned(),
                contact: contact.to_owned(),
                message_id: sealed.header.id.to_string(),
                envelope: hex::encode(&sealed.bytes),
                kind: OutboxKind::Receipt,
            },
        );
        Ok(())
    }

    /// Whether a message with this id was taken in already (by any identity here).
    pub fn knows_message(&self, mid: &[u8; 16]) -> Result<bool, NodeError> {
        Ok(self.store.contains(&keys::message_id(mid))?)
    }

    /// Take in a verified message for identity `id`, exactly once. Blocking (it may seal a
    /// receipt). Returns false for a duplicate: only the ACK is left to do.
    pub fn receive(&self, id: &str, message: &VerifiedMessage) -> Result<bool, NodeError> {
        let mid = message.id();
        if self.store.contains(&keys::message_id(&mid.0))? {
            return Ok(false);
        }
        let sender_fp = message.sender().fingerprint().to_string();
        let contact = self
            .store
            .scan::<ContactRecord>(&keys::contacts_of(id))?
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.fingerprint == sender_fp);
        let mut c = Changes::default();
        match (message.kind(), contact) {
            (MessageKind::Receipt, contact) => {
                // Remember the id so a replay is a duplicate; the receipt itself is not shown.
                c.put_raw(keys::message_id(&mid.0), b"receipt".to_vec());
                let mut updates = Vec::new();
                if let (Some(contact), Some(ids)) = (
                    contact,
                    crypto::envelope::parse_receipt_body(message.body()),
                ) {
                    let conversation = keys::conversation(id, &contact.name);
                    for confirmed in ids {
                        let Some(key) = self.store.get_raw(&keys::message_id(&confirmed.0))? else {
                            continue;
                        };
                        if !key.starts_with(&conversation) {
                            continue;
                        }
                        if let Some(Entry::Message(mut m)) = self.store.get::<Entry>(key.clone())?
                            && m.direction == Direction::Out
                            && m.status != Status::Delivered
                        {
                            m.status = Status::Delivered;
                            m.error = None;
                            updates.push(m.id.clone());
                            c.put(key, &Entry::Message(m));
                        }
                    }
                    self.store.apply(c)?;
                    for mid in updates {
                        self.emit(NodeEvent::Status {
                            identity: id.to_owned(),
                            contact: contact.name.clone(),
                            id: mid,
                            status: Status::Delivered,
                            error: None,
                        });
                    }
                } else {
                    self.store.apply(c)?;
                }
                Ok(true)
            }
            (MessageKind::Text, Some(contact)) => {
                let now = now_ms();
                let record = incoming_record(message, now);
                let chain: ChainRecord = self
                    .store
                    .get(keys::inchain(id, &contact.name))?
                    .unwrap_or_default();
                let mut gap = None;
                let expected = chain.last_seq.saturating_add(1);
                if message.seq() > expected {
                    let missing = message.seq() - expected;
                    let entry = Entry::Gap {
                        missing,
                        detected_ms: now,
                    };
                    c.put(
                        keys::message(id, &contact.name, self.store.next_seq()?),
                        &entry,
                    );
                    gap = Some(entry);
                    warn!(missing, "messages missing in a conversation");
                } else if message.seq() == expected
                    && chain.last_hash.is_some()
                    && message.prev().map(|h| h.to_string()) != chain.last_hash
                {
                    warn!("a message does not follow the one before it in the chain");
                }
                if message.seq() > chain.last_seq {
                    c.put(
                        keys::inchain(id, &contact.name),
                        &ChainRecord {
                            last_seq: message.seq(),
                            last_hash: Some(message.hash().to_string()),
                        },
                    );
                }
                let key = keys::message(id, &contact.name, self.store.next_seq()?);
                c.put(key.clone(), &Entry::Message(record.clone()));
                c.put_raw(keys::message_id(&mid.0), key);
                let identity = self.identity(id)?;
                let to = PublicKey::from_pem(&contact.public_key).map_err(internal)?;
                self.queue_receipt(&mut c, &identity, &to, id, &contact.name, &[mid])?;
                self.store.apply(c)?;
                if let Some(entry) = gap {
                    self.emit(NodeEvent::Message {
                        identity: id.to_owned(),
                        contact: contact.name.clone(),
                        entry,
                    });
                }
                self.emit(NodeEvent::Message {
                    identity: id.to_owned(),
                    contact: contact.name,
                    entry: Entry::Message(record),
                });
                self.wake.notify_one();
                Ok(true)
            }
            (MessageKind::Text, None) => {
                // Anyone who knows a fingerprint can write to it: what strangers may leave
                // is bounded, or one could fill the disk through the mailbox (whose quota
                // bounds a queue, not what a node has already taken in). Beyond the caps a
                // message is acknowledged and not kept.
                let from_sender = self.store.keys(&keys::requests_from(id, &sender_fp))?.len();
                if from_sender >= MAX_REQUEST_MESSAGES_PER_SENDER
                    || self.store.keys(&keys::requests_of(id))?.len() >= MAX_REQUEST_MESSAGES
                {
                    // debug, not warn: a flood of these is what the cap is for.
                    debug!(
                        from_sender,
                        "requests are full (at most {MAX_REQUEST_MESSAGES_PER_SENDER} messages \
                         from one stranger, {MAX_REQUEST_MESSAGES} in all): a message from \
                         an unknown sender is dropped"
                    );
                    return Ok(true);
                }
                let key = keys::request(id, &sender_fp, self.store.next_seq()?);
                c.put(
                    key.clone(),
                    &RequestRecord {
                        public_key: message.sender().to_pem(),
                        hash: Some(message.hash().to_string()),
                        message: incoming_record(message, now_ms()),
                    },
                );
                c.put_raw(keys::message_id(&mid.0), key);
                self.store.apply(c)?;
                debug!("a message from an unknown sender went to requests");
                self.emit(NodeEvent::Request {
                    identity: id.to_owned(),
                    fingerprint: sender_fp,
                });
                Ok(true)
            }
        }
    }

    /// Set an outgoing message's status. Blocking. `Sent` never replaces `Delivered`.
    pub fn set_status(
        &self,
        message_id: &str,
        status: Status,
        error: Option<String>,
    ) -> Result<(), NodeError> {
        let Some(mid) = parse_id(message_id) else {
            return Ok(());
        };
        let Some(key) = self.store.get_raw(&keys::message_id(&mid))? else {
            return Ok(());
        };
        let Some(Entry::Message(mut m)) = self.store.get::<Entry>(key.clone())? else {
            return Ok(());
        };
        if m.status == Status::Delivered || (m.status == status && m.error == error) {
            return Ok(());
        }
        m.status = status;
        m.error = error.clone();
        let mut c = Changes::default();
        c.put(key.clone(), &Entry::Message(m));
        self.store.apply(c)?;
        if let Some((identity, contact)) = conversation_of(&key) {
            self.emit(NodeEvent::Status {
                identity,
                contact,
                id: message_id.to_owned(),
                status,
                error,
            });
        }
        Ok(())
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<(Vec<u8>, OutboxRecord)>, NodeError> {
        Ok(self.store.scan::<OutboxRecord>(b"outbox/")?)
    }

    /// How many messages wait in the outbox (receipts not counted).
    pub fn outbox_len(&self) -> usize {
        self.outbox()
            .map(|o| o.iter().filter(|(_, r)| r.kind == OutboxKind::Text).count())
            .unwrap_or(0)
    }

    /// Remove an envelope from the outbox once the mailbox holds it (or refused it for
    /// good, with `error`), updating its message. Blocking.
    pub fn outbox_done(
        &self,
        key: Vec<u8>,
        item: &OutboxRecord,
        error: Option<String>,
    ) -> Result<(), NodeError> {
        if item.kind == OutboxKind::Text {
            let status = if error.is_some() {
                Status::Failed
            } else {
                Status::Sent
            };
            self.set_status(&item.message_id, status, error)?;
        }
        let mut c = Changes::default();
        c.delete(key);
        self.store.apply(c)?;
        Ok(())
    }

    // ---- settings and status ----

    /// A saved setting.
    pub fn setting(&self, name: &str) -> Result<Option<String>, NodeError> {
        Ok(self.store.get::<String>(keys::setting(name))?)
    }

    /// Save a setting. Blocking.
    pub fn save_setting(&self, name: &str, value: &str) -> Result<(), NodeError> {
        let mut c = Changes::default();
        c.put(keys::setting(name), &value);
        self.store.apply(c)?;
        Ok(())
    }

    /// The sync status.
    pub fn status(&self) -> SyncStatus {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Update the sync status; tells listeners when it changed.
    pub fn update_status(&self, f: impl FnOnce(&mut SyncStatus)) {
        let changed = {
            let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
            let before = status.clone();
            f(&mut status);
            before.state != status.state || before.last_error != status.last_error
        };
        if changed {
            self.emit(NodeEvent::Connection);
        }
    }
}

fn incoming_record(message: &VerifiedMessage, now: u64) -> MessageRecord {
    MessageRecord {
        id: message.id().to_string(),
        direction: Direction::In,
        // Text bodies are UTF-8 by the format's contract; a sender who breaks it gets
        // replacement characters, not a lost message.
        text: String::from_utf8_lossy(message.body()).into_owned(),
        sent_ms: message.sent_at_ms(),
        stored_ms: now,
        status: Status::Received,
        seq: message.seq(),
        error: None,
    }
}

/// The identity and contact of a `msg/` key.
fn conversation_of(key: &[u8]) -> Option<(String, String)> {
    let rest = key.strip_prefix(b"msg/")?;
    let mut parts = rest.splitn(3, |b| *b == 0);
    let identity = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let contact = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some((identity, contact))
}
