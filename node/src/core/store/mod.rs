//! The node's local store.
//!
//! [`Kv`] is the narrow engine interface (ordered keys, atomic durable batches); [`SledKv`]
//! implements it on sled and [`MemoryKv`] in memory for tests. [`Store`] adds typed JSON
//! records on top. Values are JSON (self-describing, so records can gain fields).
//!
//! ```text
//! meta/format                                   -> u32 format version
//! setting/<name>                                -> string
//! id/<identity>                                 -> IdentityRecord
//! contact/<identity>\0<name>                    -> ContactRecord
//! msg/<identity>\0<contact>\0<local seq u64 BE> -> Entry (a message or a gap marker)
//! msg/<identity>\0<contact>\0<local seq BE><sender seq BE>
//!                                               -> Entry in a gap (its marker, late messages)
//! gap/<identity>\0<contact>\0<first missing seq BE>
//!                                               -> the local seq of the gap's place
//! msgid/<message id, 16 bytes>                  -> the key of the entry holding it (dedupe, status)
//! chain/<identity>\0<contact>                   -> ChainRecord (our last seq and hash to them)
//! inchain/<identity>\0<contact>                 -> ChainRecord (their last seq and hash to us)
//! outbox/<local seq u64 BE>                     -> OutboxRecord
//! request/<identity>\0<fingerprint>\0<seq BE>   -> RequestRecord (from unknown senders)
//! envelope/<local seq u64 BE>                   -> the outbox entry's sealed envelope, raw
//! read/<identity>\0<contact>                    -> the msg/ key of the newest entry seen
//! late/<identity>\0<contact>                    -> u64: late messages placed below that
//! session/<SHA-256 of a session id, hex>        -> a browser session (node::http::auth)
//! ```
//!
//! Ids and names are `[A-Za-z0-9._-]`, so the `\0` separators cannot occur inside them.

mod kv;
mod layout;
mod migrate;
mod records;

pub use kv::{Batch, Kv, MemoryKv, Pairs, SledKv};
pub use layout::keys;
pub use records::*;

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format version this build writes.
pub const FORMAT_VERSION: u32 = 3;

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
    /// The database file could not be synced to the disk.
    #[error("local store: cannot sync {path} to the disk: {source}")]
    Sync {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store was written by a newer build.
    #[error("local store format {found} is newer than this build understands ({FORMAT_VERSION})")]
    TooNew {
        /// The version found.
        found: u32,
    },
}
/// Typed records over a [`Kv`] engine.
#[derive(Debug)]
pub struct Store {
    kv: Box<dyn Kv>,
}

/// A set of changes applied atomically by [`Store::apply`].
#[derive(Debug, Default)]
pub struct Changes {
    batch: Batch,
}

impl Changes {
    /// Put a JSON record.
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        // Serializing our own record types to JSON cannot fail (no maps with non-string keys).
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.batch.push((key, Some(bytes)));
    }
    /// Put raw bytes.
    pub fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.batch.push((key, Some(value)));
    }
    /// Delete a key.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.batch.push((key, None));
    }
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

impl Store {
    /// Open (or create) the sled store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::with_engine(Box::new(SledKv::open(dir)?))
    }

    /// A store in memory (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with_engine(Box::new(MemoryKv::default()))
    }

    /// A store on any engine, checking (and if needed migrating) its format version.
    pub fn with_engine(kv: Box<dyn Kv>) -> Result<Self, StoreError> {
        let store = Self { kv };
        match store.get::<u32>(b"meta/format".to_vec())? {
            None => {
                let mut c = Changes::default();
                c.put(b"meta/format".to_vec(), &FORMAT_VERSION);
                store.apply(c)?;
            }
            Some(v) if v > FORMAT_VERSION => return Err(StoreError::TooNew { found: v }),
            // One step per version, each in one atomic batch that also bumps meta/format.
            Some(1) => {
                store.migrate_1_to_2()?;
                store.migrate_2_to_3()?;
            }
            Some(2) => store.migrate_2_to_3()?,
            Some(_) => {}
        }
        Ok(store)
    }

    /// Apply changes atomically and make them durable. Blocking.
    pub fn apply(&self, changes: Changes) -> Result<(), StoreError> {
        self.kv.apply(changes.batch)
    }

    /// Apply changes atomically without waiting for them to be durable (see
    /// [`Kv::apply_lazily`]). Blocking.
    pub fn apply_lazily(&self, changes: Changes) -> Result<(), StoreError> {
        self.kv.apply_lazily(changes.batch)
    }

    /// A fresh, increasing number (for message and outbox keys).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        self.kv.next_seq()
    }

    /// Read one JSON record.
    pub fn get<T: DeserializeOwned>(&self, key: Vec<u8>) -> Result<Option<T>, StoreError> {
        match self.kv.get(&key)? {
            None => Ok(None),
            Some(bytes) => decode(&key, &bytes).map(Some),
        }
    }

    /// Read raw bytes.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(key)
    }

    /// All records under a prefix, in key order.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.kv
            .scan(prefix)?
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), decode(&k, &v)?)))
            .collect()
    }

    /// All keys under a prefix.
    pub fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.kv.scan(prefix)?.into_iter().map(|(k, _)| k).collect())
    }

    /// Records under a prefix, newest (highest key) first, before `before` if given.
    pub fn scan_rev<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.kv
            .scan_rev(prefix, before, limit)?
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), decode(&k, &v)?)))
            .collect()
    }

    /// Whether a key exists.
    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.kv.get(key)?.is_some())
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
    use crypto::{Fingerprint, MessageHash, MessageId};

    #[test]
    fn key_layout_is_pinned() {
        assert_eq!(keys::identity("alice"), b"id/alice");
        assert_eq!(keys::contact("alice", "bob"), b"contact/alice\0bob");
        assert_eq!(keys::contacts_of("alice"), b"contact/alice\0");
        assert_eq!(
            keys::message("a", "b", 258),
            b"msg/a\0b\0\0\0\0\0\0\0\x01\x02".to_vec()
        );
        assert_eq!(
            keys::in_gap("a", "b", 258, 3),
            b"msg/a\0b\0\0\0\0\0\0\0\x01\x02\0\0\0\0\0\0\0\x03".to_vec()
        );
        assert_eq!(
            keys::gap("a", "b", 3),
            b"gap/a\0b\0\0\0\0\0\0\0\0\x03".to_vec()
        );
        assert_eq!(keys::gaps_of("a", "b"), b"gap/a\0b\0");
        assert_eq!(keys::conversation("a", "b"), b"msg/a\0b\0");
        assert_eq!(keys::conversations_of("a"), b"msg/a\0");
        assert_eq!(
            keys::message_id("a", &MessageId([7; 16])),
            [b"msgid/a\0".as_slice(), &[7; 16]].concat()
        );
        assert_eq!(keys::chain("a", "b"), b"chain/a\0b");
        assert_eq!(keys::inchain("a", "b"), b"inchain/a\0b");
        assert_eq!(keys::outbox(1), b"outbox/\0\0\0\0\0\0\0\x01");
        assert_eq!(
            keys::envelope_of(&keys::outbox(1)),
            b"envelope/\0\0\0\0\0\0\0\x01"
        );
        assert_eq!(
            keys::request("a", "ff", 1),
            b"request/a\0ff\0\0\0\0\0\0\0\0\x01".to_vec()
        );
        assert_eq!(keys::requests_from("a", "ff"), b"request/a\0ff\0");
        assert_eq!(keys::setting("mailbox"), b"setting/mailbox");
        assert_eq!(keys::read_mark("a", "b"), b"read/a\0b");
        assert_eq!(keys::late_unread("a", "b"), b"late/a\0b");
        assert_eq!(
            keys::receipt_due("a", "b", 258),
            b"receipt-due/a\0b\0\0\0\0\0\0\0\x01\x02".to_vec()
        );
        assert_eq!(keys::receipts_due_to("a", "b"), b"receipt-due/a\0b\0");
        assert_eq!(keys::receipts_due_of("a"), b"receipt-due/a\0");
    }

    #[test]
    fn a_receipt_due_key_reads_back_and_a_malformed_one_is_refused() {
        // A sequence number with separator bytes in it, and a contact name with a slash.
        let key = keys::receipt_due("alice", "bob/x", 1 << 40);
        assert_eq!(
            keys::parse_receipt_due(&key),
            Some(("alice".into(), "bob/x".into()))
        );
        assert_eq!(keys::parse_receipt_due(&key[..key.len() - 1]), None);
        assert_eq!(keys::parse_receipt_due(b"receipt-due/"), None);
        assert_eq!(keys::parse_receipt_due(&key[1..]), None);
        let no_contact = [b"receipt-due/alice".as_slice(), &[0], &[1; 8]].concat();
        assert_eq!(keys::parse_receipt_due(&no_contact), None);
    }

    /// Snapshots of every record format: a change here is a change to users' data on disk.
    #[test]
    fn record_formats_are_pinned() {
        let m = MessageRecord {
            id: MessageId([0; 16]),
            direction: Direction::Out,
            text: "hi".into(),
            sent_ms: 1,
            stored_ms: 2,
            status: Status::Pending,
            seq: 1,
            error: None,
            forward_secret: false,
        };
        let cases: Vec<(String, &str)> = vec![
            (
                serde_json::to_string(&Entry::Message(m.clone())).unwrap(),
                r#"{"kind":"message","id":"00000000000000000000000000000000","direction":"out","text":"hi","sent_ms":1,"stored_ms":2,"status":"pending","seq":1,"error":null}"#,
            ),
            (
                serde_json::to_string(&Entry::Message(MessageRecord {
                    forward_secret: true,
                    ..m.clone()
                }))
                .unwrap(),
                r#"{"kind":"message","id":"00000000000000000000000000000000","direction":"out","text":"hi","sent_ms":1,"stored_ms":2,"status":"pending","seq":1,"error":null,"forward_secret":true}"#,
            ),
            (
                serde_json::to_string(&Entry::Gap {
                    missing: 2,
                    detected_ms: 5,
                    first: None,
                })
                .unwrap(),
                r#"{"kind":"gap","missing":2,"detected_ms":5}"#,
            ),
            (
                serde_json::to_string(&Entry::Gap {
                    missing: 2,
                    detected_ms: 5,
                    first: Some(4),
                })
                .unwrap(),
                r#"{"kind":"gap","missing":2,"detected_ms":5,"first":4}"#,
            ),
            (
                serde_json::to_string(&IdentityRecord {
                    id: "alice".into(),
                    display_name: Some("Alice".into()),
                    fingerprint: Fingerprint([0xab; 32]),
                    created_ms: 3,
                })
                .unwrap(),
                r#"{"id":"alice","display_name":"Alice","fingerprint":"abababababababababababababababababababababababababababababababab","created_ms":3}"#,
            ),
            (
                serde_json::to_string(&ContactRecord {
                    name: "bob".into(),
                    display_name: None,
                    public_key: "PEM".into(),
                    fingerprint: Fingerprint([0xcd; 32]),
                    verified: true,
                    added_ms: 4,
                    mailbox: Some("h:1".into()),
                    mailbox_ms: None,
                })
                .unwrap(),
                r#"{"name":"bob","public_key":"PEM","fingerprint":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","verified":true,"added_ms":4,"mailbox":"h:1"}"#,
            ),
            (
                serde_json::to_string(&ChainRecord {
                    last_seq: 7,
                    last_hash: Some(MessageHash([0xee; 32])),
                })
                .unwrap(),
                r#"{"last_seq":7,"last_hash":"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"}"#,
            ),
            (
                serde_json::to_string(&OutboxRecord {
                    identity: "alice".into(),
                    contact: "bob".into(),
                    message_id: MessageId([1; 16]),
                    kind: OutboxKind::Receipt,
                })
                .unwrap(),
                r#"{"identity":"alice","contact":"bob","message_id":"01010101010101010101010101010101","kind":"receipt"}"#,
            ),
            (
                serde_json::to_string(&RequestRecord {
                    public_key: "PEM".into(),
                    hash: None,
                    prev: None,
                    message: m,
                })
                .unwrap(),
                r#"{"public_key":"PEM","hash":null,"message":{"id":"00000000000000000000000000000000","direction":"out","text":"hi","sent_ms":1,"stored_ms":2,"status":"pending","seq":1,"error":null}}"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        // A message record written before entries were tagged still reads as a message.
        let legacy: Entry = serde_json::from_str(
            r#"{"id":"00000000000000000000000000000000","direction":"in","text":"old","sent_ms":1,"stored_ms":2,"status":"received"}"#,
        )
        .unwrap();
        assert!(matches!(legacy, Entry::Message(m) if m.text == "old"));
        // Older records without the newer optional fields still read.
        let old: ContactRecord = serde_json::from_str(
            r#"{"name":"bob","public_key":"P","fingerprint":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","added_ms":4}"#,
        )
        .unwrap();
        assert!(!old.verified);
        assert_eq!(old.mailbox, None);
    }

    fn engine_contract(store: Store) {
        let mut c = Changes::default();
        for seq in [3u64, 1, 2] {
            c.put(keys::message("a", "b", seq), &seq);
        }
        c.put(keys::message("a", "bb", 9), &9u64);
        store.apply(c).unwrap();
        let values = |v: Vec<(Vec<u8>, u64)>| v.into_iter().map(|(_, v)| v).collect::<Vec<_>>();
        assert_eq!(
            values(store.scan(&keys::conversation("a", "b")).unwrap()),
            [1, 2, 3]
        );
        assert_eq!(
            values(
                store
                    .scan_rev(&keys::conversation("a", "b"), None, 2)
                    .unwrap()
            ),
            [3, 2]
        );
        let before = keys::message("a", "b", 3);
        assert_eq!(
            values(
                store
                    .scan_rev(&keys::conversation("a", "b"), Some(&before), 10)
                    .unwrap()
            ),
            [2, 1]
        );
        let mut c = Changes::default();
        c.delete(keys::message("a", "b", 2));
        store.apply(c).unwrap();
        assert_eq!(
            values(store.scan(&keys::conversation("a", "b")).unwrap()),
            [1, 3]
        );
        let (s1, s2) = (store.next_seq().unwrap(), store.next_seq().unwrap());
        assert!(s2 > s1);
        assert!(store.contains(&keys::message("a", "bb", 9)).unwrap());
        assert_eq!(
            store.get::<u32>(b"meta/format".to_vec()).unwrap(),
            Some(FORMAT_VERSION)
        );
    }

    #[test]
    fn memory_engine_keeps_the_contract() {
        engine_contract(Store::in_memory().unwrap());
    }

    #[test]
    fn sled_engine_keeps_the_contract() {
        // Persistence across restarts is tested end to end (the node's data dir reopened).
        let dir = tempfile::tempdir().unwrap();
        engine_contract(Store::open(dir.path()).unwrap());
    }

    #[test]
    fn a_newer_format_is_refused() {
        let store = Store::in_memory().unwrap();
        let mut c = Changes::default();
        c.put(b"meta/format".to_vec(), &(FORMAT_VERSION + 1));
        store.apply(c).unwrap();
        let Store { kv } = store;
        assert!(matches!(
            Store::with_engine(kv),
            Err(StoreError::TooNew { .. })
        ));
    }
}
