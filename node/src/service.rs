//! The node's service: identities, contacts, conversations and status, over the store and
//! the key files. The HTTP API and the web UI are thin adapters over this.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crypto::{Draft, Fingerprint, Identity, MessageKind, PublicKey};
use tokio::sync::Notify;

use crate::error::NodeError;
use crate::store::{
    self, ChainRecord, Changes, ContactRecord, Direction, IdentityRecord, MessageRecord,
    OutboxRecord, RequestRecord, Status, Store, keys,
};

/// Connection state shown to the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// "online", "connecting" or "offline".
    pub state: &'static str,
    /// The last error in words.
    pub last_error: Option<String>,
    /// When the last successful sync ended, ms since the epoch.
    pub last_sync_ms: Option<u64>,
    /// The mailbox address in use.
    pub mailbox: String,
}

/// The node.
#[derive(Debug)]
pub struct Node {
    store: Store,
    keys_dir: PathBuf,
    identities: RwLock<HashMap<String, Arc<Identity>>>,
    /// The largest text a user may send, in bytes.
    pub max_body_bytes: usize,
    status: RwLock<SyncStatus>,
    /// Wakes the sync loop: something to send, or a new identity to log in.
    pub wake: Notify,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::Internal(format!("background task failed: {e}")))?
}

impl Node {
    /// Open the node's store and load every identity's private key once.
    pub fn open(data_dir: &std::path::Path, max_body_bytes: usize) -> Result<Self, NodeError> {
        let store = Store::open(&data_dir.join("store"))?;
        let keys_dir = data_dir.join("keys");
        crate::ensure_private_dir(&keys_dir)?;
        let mut identities = HashMap::new();
        for (_, record) in store.scan::<IdentityRecord>(b"id/")? {
            let path = keys_dir.join(format!("{}.pem", record.fingerprint));
            let identity = Identity::read_pkcs8_pem_file(&path)
                .map_err(|e| NodeError::Internal(format!("identity {}: {e}", record.id)))?;
            identities.insert(record.id.clone(), Arc::new(identity));
        }
        Ok(Self {
            store,
            keys_dir,
            identities: RwLock::new(identities),
            max_body_bytes,
            status: RwLock::new(SyncStatus {
                state: "connecting",
                ..SyncStatus::default()
            }),
            wake: Notify::new(),
        })
    }

    /// The store (for the sync loop).
    pub fn store(&self) -> &Store {
        &self.store
    }

    // ---- identities ----

    /// Create an identity with a fresh RSA-2048 key.
    pub async fn create_identity(
        self: &Arc<Self>,
        id: String,
        display_name: Option<String>,
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
            let identity = Identity::generate().map_err(|e| NodeError::Internal(e.to_string()))?;
            let fingerprint = identity.fingerprint().to_string();
            let path = node.keys_dir.join(format!("{fingerprint}.pem"));
            identity
                .write_pkcs8_pem_file(&path)
                .map_err(|e| NodeError::Internal(e.to_string()))?;
            let record = IdentityRecord {
                id: id.clone(),
                display_name,
                fingerprint,
                created_ms: now_ms(),
            };
            let mut ids = node.identities.write().unwrap_or_else(|p| p.into_inner());
            if ids.contains_key(&id) {
                let _ = std::fs::remove_file(&path);
                return Err(NodeError::Conflict(format!("identity {id} already exists")));
            }
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

    /// Delete an identity: its record, contacts and conversations; its key file is removed.
    pub async fn delete_identity(self: &Arc<Self>, id: String) -> Result<(), NodeError> {
        let record = self.identity_record(&id)?;
        let node = self.clone();
        blocking(move || {
            let mut c = Changes::default();
            c.delete(keys::identity(&id));
            for prefix in [
                keys::contacts_of(&id),
                keys::requests_of(&id),
                [b"msg/".as_slice(), id.as_bytes(), b"\0"].concat(),
                [b"chain/".as_slice(), id.as_bytes(), b"\0"].concat(),
            ] {
                for (k, _) in node.store.scan::<serde_json::Value>(&prefix)? {
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

    // ---- contacts ----

    /// Add a contact to an identity from a public key PEM.
    pub async fn add_contact(
        self: &Arc<Self>,
        id: String,
        name: String,
        public_key_pem: String,
    ) -> Result<ContactRecord, NodeError> {
        self.identity(&id)?;
        check_name("a contact name", &name)?;
        let key = PublicKey::from_pem(&public_key_pem)
            .map_err(|e| NodeError::invalid("invalid_public_key", format!("public_key: {e}")))?;
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

    /// Delete a contact (its conversation stays readable until the identity is deleted).
    pub async fn delete_contact(
        self: &Arc<Self>,
        id: String,
        name: String,
    ) -> Result<(), NodeError> {
        self.contact(&id, &name)?;
        let node = self.clone();
        blocking(move || {
            let mut c = Changes::default();
            c.delete(keys::contact(&id, &name));
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
        let recipient = PublicKey::from_pem(&record.public_key)
            .map_err(|e| NodeError::Internal(format!("stored contact key: {e}")))?;
        let node = self.clone();
        let message = blocking(move || {
            // One sender at a time per node keeps each chain's sequence gapless.
            static CHAIN: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _chain = CHAIN.lock().unwrap_or_else(|p| p.into_inner());
            let chain: ChainRecord = node
                .store
                .get(keys::chain(&id, &contact))?
                .unwrap_or_default();
            let prev = match &chain.last_hash {
                Some(h) => {
                    let mut b = [0u8; 32];
                    hex::decode_to_slice(h, &mut b)
                        .map_err(|_| NodeError::Internal("stored chain hash unreadable".into()))?;
                    Some(crypto::MessageHash(b))
                }
                None => None,
            };
            let sent_at = SystemTime::now();
            let draft = Draft {
                kind: MessageKind::Text,
                seq: chain.last_seq + 1,
                prev,
                sent_at,
                body: text.clone().into_bytes(),
            };
            let sealed = identity
                .seal(&recipient, &draft)
                .map_err(|e| NodeError::Internal(e.to_string()))?;
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
            let local = node.store.next_seq()?;
            let msg_key = keys::message(&id, &contact, local);
            let mut c = Changes::default();
            c.put(msg_key.clone(), &message);
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
                    identity: id,
                    contact,
                    message_id: message.id.clone(),
                    envelope: hex::encode(&sealed.bytes),
                },
            );
            node.store.apply(c)?;
            Ok(message)
        })
        .await?;
        self.wake.notify_one();
        Ok(message)
    }

    /// A conversation page: newest first, at most `limit`, older than the message `before`.
    pub fn messages(
        &self,
        id: &str,
        contact: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, NodeError> {
        self.contact(id, contact)?;
        let before_key = match before {
            None => None,
            Some(mid) => {
                let mut b = [0u8; 16];
                hex::decode_to_slice(mid, &mut b).map_err(|_| {
                    NodeError::invalid("invalid_before", "before: not a message id")
                })?;
                let key = self
                    .store
                    .get_raw(&keys::message_id(&b))?
                    .ok_or_else(|| NodeError::NotFound(format!("no message {mid}")))?;
                Some(key)
            }
        };
        Ok(self
            .store
            .scan_rev::<MessageRecord>(
                &keys::conversation(id, contact),
                before_key.as_deref(),
                limit,
            )?
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    }

    /// Messages from senders who are not contacts of `id`, oldest first.
    pub fn requests(&self, id: &str) -> Result<Vec<(String, RequestRecord)>, NodeError> {
        self.identity(id)?;
        Ok(self
            .store
            .scan::<RequestRecord>(&keys::requests_of(id))?
            .into_iter()
            .map(|(k, r)| {
                let fp = PublicKey::from_pem(&r.public_key)
                    .map(|k| k.fingerprint().to_string())
                    .unwrap_or_else(|_| String::from_utf8_lossy(&k).into_owned());
                (fp, r)
            })
            .collect())
    }

    /// Store a verified incoming message exactly once. Blocking. Returns false for a
    /// duplicate (already stored: only the ACK is left to do).
    pub fn store_incoming(
        &self,
        id: &str,
        message: &crypto::VerifiedMessage,
    ) -> Result<bool, NodeError> {
        let mid = message.id();
        if self.store.contains(&keys::message_id(&mid.0))? {
            return Ok(false);
        }
        let sender_fp = message.sender().fingerprint().to_string();
        let now = now_ms();
        let record = MessageRecord {
            id: mid.to_string(),
            direction: Direction::In,
            // Text bodies are UTF-8 by the format's contract; a sender who breaks it gets
            // replacement characters, not a lost message.
            text: String::from_utf8_lossy(message.body()).into_owned(),
            sent_ms: message.sent_at_ms(),
            stored_ms: now,
            status: Status::Received,
            seq: message.seq(),
            error: None,
        };
        let contact = self
            .store
            .scan::<ContactRecord>(&keys::contacts_of(id))?
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.fingerprint == sender_fp);
        let local = self.store.next_seq()?;
        let mut c = Changes::default();
        match contact {
            Some(contact) => {
                let key = keys::message(id, &contact.name, local);
                c.put(key.clone(), &record);
                c.put_raw(keys::message_id(&mid.0), key);
            }
            None => {
                let key = keys::request(id, &sender_fp, local);
                c.put(
                    key.clone(),
                    &RequestRecord {
                        public_key: message.sender().to_pem(),
                        message: record,
                    },
                );
                c.put_raw(keys::message_id(&mid.0), key);
            }
        }
        self.store.apply(c)?;
        Ok(true)
    }

    /// Mark an outgoing message's status. Blocking.
    pub fn set_status(
        &self,
        message_id: &str,
        status: Status,
        error: Option<String>,
    ) -> Result<(), NodeError> {
        let mut b = [0u8; 16];
        if hex::decode_to_slice(message_id, &mut b).is_err() {
            return Ok(());
        }
        let Some(key) = self.store.get_raw(&keys::message_id(&b))? else {
            return Ok(());
        };
        if let Some(mut m) = self.store.get::<MessageRecord>(key.clone())? {
            m.status = status;
            m.error = error;
            let mut c = Changes::default();
            c.put(key, &m);
            self.store.apply(c)?;
        }
        Ok(())
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<(Vec<u8>, OutboxRecord)>, NodeError> {
        Ok(self.store.scan::<OutboxRecord>(b"outbox/")?)
    }

    /// Remove a sent envelope from the outbox and mark its message sent. Blocking.
    pub fn outbox_done(&self, key: Vec<u8>, message_id: &str) -> Result<(), NodeError> {
        self.set_status(message_id, Status::Sent, None)?;
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

    /// Update the sync status.
    pub fn update_status(&self, f: impl FnOnce(&mut SyncStatus)) {
        f(&mut self.status.write().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Used by `store` snapshot tests and the API.
pub use store::Status as MessageStatus;
