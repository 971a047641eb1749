//! Migrations of the local store's format, one step per version, each in one atomic batch
//! that also bumps `meta/format` (called by [`Store::with_engine`]).

use crypto::MessageId;

use super::*;

impl Store {
    /// Format 2 keeps an outbox envelope as raw bytes under `envelope/<seq>` instead of hex
    /// inside the JSON record. An envelope whose hex is damaged is left out: the sync driver
    /// then marks its message as not sendable, as it did before.
    pub(super) fn migrate_1_to_2(&self) -> Result<(), StoreError> {
        #[derive(serde::Deserialize)]
        struct OutboxV1 {
            #[serde(flatten)]
            record: OutboxRecord,
            envelope: String,
        }
        let mut c = Changes::default();
        let mut moved = 0usize;
        for (key, value) in self.kv.scan(b"outbox/")? {
            // A record that does not read is left as it is: the sync driver reports it, as
            // it did before, instead of the node refusing to open.
            let Ok(old) = serde_json::from_slice::<OutboxV1>(&value) else {
                tracing::warn!("an outbox record does not read; left as it is");
                continue;
            };
            c.put(key.clone(), &old.record);
            if let Ok(bytes) = hex::decode(&old.envelope) {
                c.put_raw(keys::envelope_of(&key), bytes);
            }
            moved += 1;
        }
        c.put(b"meta/format".to_vec(), &2u32);
        self.apply(c)?;
        tracing::info!(
            moved,
            "local store moved to format 2 (outbox envelopes as bytes)"
        );
        Ok(())
    }

    /// Format 3 keeps one message-id index per identity (`msgid/<identity>\0<id>`), so two
    /// identities of one node can write to each other. Each entry moves under the identity
    /// whose conversation or requests it points into; the ids of receipts taken in (a
    /// replay guard for something idempotent) are dropped.
    pub(super) fn migrate_2_to_3(&self) -> Result<(), StoreError> {
        let mut c = Changes::default();
        let (mut moved, mut dropped) = (0usize, 0usize);
        for (key, value) in self.kv.scan(b"msgid/")? {
            let Some(Ok(mid)) = key
                .strip_prefix(b"msgid/".as_slice())
                .map(<[u8; 16]>::try_from)
            else {
                continue;
            };
            c.delete(key.clone());
            match owner(&value) {
                Some(identity) => {
                    c.put_raw(keys::message_id(&identity, &MessageId(mid)), value);
                    moved += 1;
                }
                None => dropped += 1,
            }
        }
        c.put(b"meta/format".to_vec(), &3u32);
        self.apply(c)?;
        tracing::info!(
            moved,
            dropped,
            "local store moved to format 3 (a message-id index per identity)"
        );
        Ok(())
    }
}

/// The identity a format-2 index value belongs to: the `<identity>` of the `msg/` or
/// `request/` key it holds.
fn owner(value: &[u8]) -> Option<String> {
    let rest = value
        .strip_prefix(b"msg/".as_slice())
        .or_else(|| value.strip_prefix(b"request/".as_slice()))?;
    let end = rest.iter().position(|b| *b == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A store of format 1 (outbox envelopes as hex inside the JSON) opens as format 2: the
    /// records keep everything but the envelope, which sits beside them as bytes; a damaged
    /// envelope is left out rather than stopping the node.
    #[test]
    fn a_format_1_store_is_migrated_to_the_current_format() {
        let kv = MemoryKv::default();
        kv.apply(vec![
            (b"meta/format".to_vec(), Some(b"1".to_vec())),
            (
                keys::outbox(5),
                Some(br#"{"identity":"alice","contact":"bob","message_id":"01010101010101010101010101010101","envelope":"00ff10","kind":"text"}"#.to_vec()),
            ),
            (
                keys::outbox(6),
                Some(br#"{"identity":"alice","contact":"bob","message_id":"02020202020202020202020202020202","envelope":"not hex"}"#.to_vec()),
            ),
            (keys::outbox(7), Some(b"not json".to_vec())),
            (keys::setting("mailbox"), Some(br#""h:1""#.to_vec())),
        ])
        .unwrap();
        let store = Store::with_engine(Box::new(kv)).unwrap();
        assert_eq!(
            store.get::<u32>(b"meta/format".to_vec()).unwrap(),
            Some(FORMAT_VERSION)
        );
        for (seq, id) in [(5, MessageId([1; 16])), (6, MessageId([2; 16]))] {
            assert_eq!(
                store.get::<OutboxRecord>(keys::outbox(seq)).unwrap(),
                Some(OutboxRecord {
                    identity: "alice".into(),
                    contact: "bob".into(),
                    message_id: id,
                    kind: OutboxKind::Text,
                })
            );
        }
        // A record that did not read is left as it was, and the store opens all the same.
        assert_eq!(
            store.get_raw(&keys::outbox(7)).unwrap(),
            Some(b"not json".to_vec())
        );
        assert_eq!(
            store.get_raw(&keys::envelope_of(&keys::outbox(5))).unwrap(),
            Some(vec![0x00, 0xff, 0x10])
        );
        assert_eq!(
            store.get_raw(&keys::envelope_of(&keys::outbox(6))).unwrap(),
            None
        );
        assert_eq!(
            store.get::<String>(keys::setting("mailbox")).unwrap(),
            Some("h:1".into())
        );
        // A store newer than this build is refused, not misread.
        let newer = MemoryKv::default();
        newer
            .apply(vec![(b"meta/format".to_vec(), Some(b"4".to_vec()))])
            .unwrap();
        assert!(matches!(
            Store::with_engine(Box::new(newer)),
            Err(StoreError::TooNew { found: 4 })
        ));
    }

    /// A store of format 2 (one message-id index for the whole node) opens as format 3: each
    /// entry under the identity whose conversation or request it points to.
    #[test]
    fn a_format_2_store_is_migrated_to_3() {
        let kv = MemoryKv::default();
        let old = |mid: u8| [b"msgid/".as_slice(), &[mid; 16]].concat();
        let sent = keys::message("alice", "bob", 1);
        let asked = keys::request("bob", "ff", 2);
        kv.apply(vec![
            (b"meta/format".to_vec(), Some(b"2".to_vec())),
            (old(1), Some(sent.clone())),
            (old(2), Some(asked.clone())),
            (old(3), Some(b"receipt".to_vec())),
        ])
        .unwrap();
        let store = Store::with_engine(Box::new(kv)).unwrap();
        assert_eq!(store.get::<u32>(b"meta/format".to_vec()).unwrap(), Some(3));
        assert_eq!(
            store
                .get_raw(&keys::message_id("alice", &MessageId([1; 16])))
                .unwrap(),
            Some(sent)
        );
        assert_eq!(
            store
                .get_raw(&keys::message_id("bob", &MessageId([2; 16])))
                .unwrap(),
            Some(asked)
        );
        let left: Vec<_> = store.keys(b"msgid/").unwrap();
        assert_eq!(
            left.len(),
            2,
            "the old keys and the receipt's are gone: {left:?}"
        );
    }
}
