//! The node's local store on sled.
//!
//! One sled tree, keys prefixed by record type, so that one [`sled::Batch`] updates several
//! records atomically. Values are JSON (self-describing, so records can gain fields).
//!
//! ```text
//! meta/format                                   -> u32 format version (JSON)
//! setting/<name>                                -> string
//! id/<identity>                                 -> IdentityRecord
//! contact/<identity>\0<name>                    -> ContactRecord
//! msg/<identity>\0<contact>\0<local seq u64 BE> -> MessageRecord
//! msgid/<message id 16 bytes>                   -> the msg/ key (dedupe and status updates)
//! chain/<identity>\0<contact>                   -> ChainRecord (our last seq and hash to them)
//! outbox/<local seq u64 BE>                     -> OutboxRecord
//! request/<identity>\0<fingerprint hex>\0<seq>  -> RequestRecord (from unknown senders)
//! ```
//!
//! Writes are serialized and each is flushed before it returns (sled 0.34 deadlocks on
//! concurrent flushes); callers run them off the async executor.

use std::path::Path;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The format version this build writes.
pub const FORMAT_VERSION: u32 = 1;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("local store: {0}")]
    Sled(#[from] sled::Error),
    /// A record did not decode.
    #[error("local store record {key} is corrupt: {message}")]
    Corrupt {
        /// Its key, printable.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The store was written by a newer build.
    #[error("local store format {found} is newer than this build understands ({FORMAT_VERSION})")]
    TooNew {
        /// The version found.
        found: u32,
    },
}

/// An identity's metadata (the private key is in a file named by its fingerprint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The id, `[A-Za-z0-9._-]{1,64}`.
    pub id: String,
    /// An optional name for people.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Fingerprint, hex.
    pub fingerprint: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

/// A contact of one identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRecord {
    /// The name, `[A-Za-z0-9._-]{1,64}`.
    pub name: String,
    /// The public key, SPKI PEM.
    pub public_key: String,
    /// Fingerprint, hex.
    pub fingerprint: String,
    /// Marked verified by the user after comparing safety numbers.
    #[serde(default)]
    pub verified: bool,
    /// When added, ms since the epoch.
    pub added_ms: u64,
}

/// Direction of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received.
    In,
    /// Sent by this identity.
    Out,
}

/// Delivery state of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Sealed and in the outbox.
    Pending,
    /// Stored by the mailbox.
    Sent,
    /// The recipient's node confirmed it.
    Delivered,
    /// Received from a contact.
    Received,
    /// Could not be sent.
    Failed,
}

impl Status {
    /// The word used in the API and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Received => "received",
            Self::Failed => "failed",
        }
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Message id, hex.
    pub id: String,
    /// In or out.
    pub direction: Direction,
    /// The text.
    pub text: String,
    /// When sent (as signed by the sender), ms since the epoch.
    pub sent_ms: u64,
    /// When stored here, ms since the epoch.
    pub stored_ms: u64,
    /// Delivery state.
    pub status: Status,
    /// The sender's sequence number in this conversation.
    #[serde(default)]
    pub seq: u64,
    /// The last error in words, if sending failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// Our side of a conversation's chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRecord {
    /// Our last sequence number to them.
    pub last_seq: u64,
    /// The hash of our last message to them, hex.
    pub last_hash: Option<String>,
}

/// A sealed envelope waiting for the mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The sending identity.
    pub identity: String,
    /// The contact's name.
    pub contact: String,
    /// Message id, hex.
    pub message_id: String,
    /// The envelope bytes, hex.
    pub envelope: String,
}

/// A message from a sender who is not a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The sender's public key, SPKI PEM.
    pub public_key: String,
    /// The message.
    pub message: MessageRecord,
}

/// Separator inside keys; ids and names cannot contain it.
const SEP: u8 = 0;

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 1 {
            out.push(SEP);
        }
        out.extend_from_slice(p);
    }
    out
}

/// Key helpers, public so the layout test pins them.
pub mod keys {
    use super::key;

    /// `id/<identity>`
    pub fn identity(id: &str) -> Vec<u8> {
        key(&[b"id/", id.as_bytes()])
    }
    /// `contact/<identity>\0<name>`
    pub fn contact(id: &str, name: &str) -> Vec<u8> {
        key(&[b"contact/", id.as_bytes(), name.as_bytes()])
    }
    /// `contact/<identity>\0`
    pub fn contacts_of(id: &str) -> Vec<u8> {
        key(&[b"contact/", id.as_bytes(), b""])
    }
    /// `msg/<identity>\0<contact>\0<seq BE>`
    pub fn message(id: &str, contact: &str, seq: u64) -> Vec<u8> {
        key(&[
            b"msg/",
            id.as_bytes(),
            contact.as_bytes(),
            &seq.to_be_bytes(),
        ])
    }
    /// `msg/<identity>\0<contact>\0`
    pub fn conversation(id: &str, contact: &str) -> Vec<u8> {
        key(&[b"msg/", id.as_bytes(), contact.as_bytes(), b""])
    }
    /// `msgid/<16 bytes>`
    pub fn message_id(mid: &[u8; 16]) -> Vec<u8> {
        key(&[b"msgid/", mid])
    }
    /// `chain/<identity>\0<contact>`
    pub fn chain(id: &str, contact: &str) -> Vec<u8> {
        key(&[b"chain/", id.as_bytes(), contact.as_bytes()])
    }
    /// `outbox/<seq BE>`
    pub fn outbox(seq: u64) -> Vec<u8> {
        key(&[b"outbox/", &seq.to_be_bytes()])
    }
    /// `request/<identity>\0<fingerprint>\0<seq BE>`
    pub fn request(id: &str, fingerprint: &str, seq: u64) -> Vec<u8> {
        key(&[
            b"request/",
            id.as_bytes(),
            fingerprint.as_bytes(),
            &seq.to_be_bytes(),
        ])
    }
    /// `request/<identity>\0`
    pub fn requests_of(id: &str) -> Vec<u8> {
        key(&[b"request/", id.as_bytes(), b""])
    }
    /// `setting/<name>`
    pub fn setting(name: &str) -> Vec<u8> {
        key(&[b"setting/", name.as_bytes()])
    }
}

/// The node's store.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    write: Mutex<()>,
}

/// A set of changes applied atomically by [`Store::apply`].
#[derive(Debug, Default)]
pub struct Changes {
    batch: sled::Batch,
}

impl Changes {
    /// Put a JSON record.
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        // Serializing our own record types to JSON cannot fail (no maps with non-string keys).
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.batch.insert(key, bytes);
    }
    /// Put raw bytes.
    pub fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.batch.insert(key, value);
    }
    /// Delete a key.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.batch.remove(key);
    }
}

impl Store {
    /// Open (or create) the store in `dir`, checking its format version.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir)?;
        let tree = db.open_tree("node")?;
        let store = Self {
            db,
            tree,
            write: Mutex::new(()),
        };
        match store.get::<u32>(b"meta/format".to_vec())? {
            None => {
                let mut c = Changes::default();
                c.put(b"meta/format".to_vec(), &FORMAT_VERSION);
                store.apply(c)?;
            }
            Some(v) if v > FORMAT_VERSION => return Err(StoreError::TooNew { found: v }),
            // Migrations from older versions go here, one step per version.
            Some(_) => {}
        }
        Ok(store)
    }

    /// Apply changes atomically and make them durable. Blocking.
    pub fn apply(&self, changes: Changes) -> Result<(), StoreError> {
        // A poisoned lock only means another writer panicked; sled itself is consistent.
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        self.tree.apply_batch(changes.batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// A fresh, increasing number (for message and outbox keys).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Read one JSON record.
    pub fn get<T: DeserializeOwned>(&self, key: Vec<u8>) -> Result<Option<T>, StoreError> {
        match self.tree.get(&key)? {
            None => Ok(None),
            Some(bytes) => decode(&key, &bytes).map(Some),
        }
    }

    /// Read raw bytes.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// All records under a prefix, in key order.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), decode(&k, &v)?))
            })
            .collect()
    }

    /// Records under a prefix, newest (highest key) first, before `before` if given.
    pub fn scan_rev<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        let mut end = prefix.to_vec();
        end.push(0xff);
        let upper = before.map(|b| b.to_vec()).unwrap_or(end);
        self.tree
            .range(prefix.to_vec()..upper)
            .rev()
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), decode(&k, &v)?))
            })
            .collect()
    }

    /// Whether a key exists.
    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(key)?)
    }
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_layout_is_pinned() {
        assert_eq!(keys::identity("alice"), b"id/alice");
        assert_eq!(keys::contact("alice", "bob"), b"contact/alice\0bob");
        assert_eq!(keys::contacts_of("alice"), b"contact/alice\0");
        assert_eq!(
            keys::message("a", "b", 258),
            b"msg/a\0b\0\0\0\0\0\0\0\x01\x02".to_vec()
        );
        assert_eq!(keys::conversation("a", "b"), b"msg/a\0b\0");
        assert_eq!(keys::outbox(1), b"outbox/\0\0\0\0\0\0\0\x01");
        assert_eq!(keys::setting("mailbox"), b"setting/mailbox");
    }

    #[test]
    fn record_formats_are_pinned() {
        let m = MessageRecord {
            id: "00".repeat(16),
            direction: Direction::Out,
            text: "hi".into(),
            sent_ms: 1,
            stored_ms: 2,
            status: Status::Pending,
            seq: 1,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"id":"00000000000000000000000000000000","direction":"out","text":"hi","sent_ms":1,"stored_ms":2,"status":"pending","seq":1,"error":null}"#
        );
    }

    #[test]
    fn changes_are_atomic_and_scans_are_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut c = Changes::default();
        for seq in [3u64, 1, 2] {
            c.put(keys::message("a", "b", seq), &seq);
        }
        c.put(keys::message("a", "bb", 9), &9u64);
        store.apply(c).unwrap();
        let all: Vec<u64> = store
            .scan::<u64>(&keys::conversation("a", "b"))
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(all, [1, 2, 3]);
        let newest: Vec<u64> = store
            .scan_rev::<u64>(&keys::conversation("a", "b"), None, 2)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(newest, [3, 2]);
        let before: Vec<u64> = store
            .scan_rev::<u64>(
                &keys::conversation("a", "b"),
                Some(&keys::message("a", "b", 3)),
                10,
            )
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(before, [2, 1]);
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(
            again
                .scan::<u64>(&keys::conversation("a", "b"))
                .unwrap()
                .len(),
            3
        );
    }
}
