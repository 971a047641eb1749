//! Moving a store of the first layout (everything in the default tree) into buckets.

use std::collections::HashMap;

use crypto::{Fingerprint, MessageId};

use super::super::StoreError;
use super::super::keys::{IdMeta, id_key, queue_key, time_key, usage_bytes, usage_key};
use super::commit::{Committer, EXPIRE_CHUNK, Plan};

impl Committer {
    /// Move entries of the first layout (everything in the default tree) into buckets.
    pub(super) fn migrate_unbucketed(&mut self) -> Result<(), StoreError> {
        if self.db.scan_prefix(b"i").next().is_none() {
            return Ok(());
        }
        let mut moved = 0u64;
        loop {
            let chunk: Vec<(sled::IVec, sled::IVec)> = self
                .db
                .scan_prefix(b"i")
                .take(EXPIRE_CHUNK)
                .collect::<Result<_, _>>()?;
            if chunk.is_empty() {
                break;
            }
            let mut plan = Plan::default();
            let mut old = sled::Batch::default();
            for (key, value) in chunk {
                old.remove(key.clone());
                let Some(id) = key.get(1..17).and_then(|i| <MessageId>::try_from(i).ok()) else {
                    continue;
                };
                // First layout: recipient | seq | stored at.
                let (Some(recipient), Some(seq), Some(stored_ms)) = (
                    value
                        .get(..32)
                        .and_then(|r| <Fingerprint>::try_from(r).ok()),
                    value
                        .get(32..40)
                        .and_then(|s| s.try_into().ok())
                        .map(u64::from_be_bytes),
                    value
                        .get(40..48)
                        .and_then(|s| s.try_into().ok())
                        .map(u64::from_be_bytes),
                ) else {
                    continue;
                };
                old.remove(time_key(stored_ms, &id));
                let qkey = queue_key(&recipient, seq);
                let envelope = self.db.get(&qkey)?;
                old.remove(qkey.clone());
                // What was acknowledged is forgotten, as an ACK does now.
                let Some(envelope) = envelope else {
                    continue;
                };
                let (bucket, _) = self.bucket_for(stored_ms)?;
                let len = envelope.len() as u64;
                let batch = plan.batch(bucket);
                batch.insert(
                    id_key(&id),
                    IdMeta {
                        recipient,
                        seq,
                        stored_ms,
                        len,
                    }
                    .to_bytes(),
                );
                batch.insert(time_key(stored_ms, &id), &[][..]);
                batch.insert(qkey, envelope);
                plan.change(bucket, recipient, 1, len);
                moved += 1;
            }
            for (bucket, changes) in std::mem::take(&mut plan.usage) {
                let per_bucket = self.bucket_usage.entry(bucket).or_default();
                for (recipient, (dn, db)) in &changes {
                    let u = per_bucket.entry(*recipient).or_default();
                    u.0 = u.0.saturating_add_signed(*dn);
                    u.1 = u.1.saturating_add_signed(*db);
                }
                let records: Vec<_> = changes
                    .keys()
                    .map(|r| (usage_key(r), per_bucket[r]))
                    .collect();
                for (key, u) in records {
                    plan.batch(bucket).insert(key, usage_bytes(u));
                }
                let positive: HashMap<Fingerprint, (u64, u64)> = changes
                    .into_iter()
                    .map(|(r, (n, b))| (r, (n.unsigned_abs(), b.unsigned_abs())))
                    .collect();
                self.add_usage(&positive, 1);
            }
            // New copies first, then the old entries go: a crash in between leaves
            // duplicates that the next open moves again (same keys, same values).
            self.apply_and_flush(std::mem::take(&mut plan.batches))?;
            self.file.sync_data().map_err(|source| StoreError::Io {
                path: self.path.clone(),
                source,
            })?;
            self.db.apply_batch(old)?;
            self.db.flush()?;
        }
        tracing::info!(moved, "moved queued envelopes into time buckets");
        Ok(())
    }
}
