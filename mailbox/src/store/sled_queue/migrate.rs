//! Moving a store of an earlier layout into partitions: one sled database in the store's
//! directory itself, holding the first layout (everything in the default tree) or time
//! buckets (one tree each). Both keep `i | id -> recipient | sequence | stored at | ...`
//! and `q | recipient | sequence -> envelope`, which is all the move reads.

use std::path::Path;

use crypto::{Fingerprint, MessageId};

use super::super::keys::{IdMeta, parse_bucket_name, queue_key};
use super::super::{Origin, StoreError};
use super::commit::{Committer, EXPIRE_CHUNK, Plan, add_signed};
use super::partition::{open_when_unlocked, read_lock};

/// The files sled keeps in its directory (besides `blobs/`).
fn is_sled_file(name: &str) -> bool {
    name == "conf" || name == "db" || name.starts_with("snap.")
}

impl Committer {
    /// Move what an earlier layout in `dir` holds into partitions, then delete it. Queued
    /// envelopes keep their sequence numbers (small counters, below every sequence this
    /// layout gives), so every queue keeps its order; acknowledged ones are not carried
    /// over. A crash meanwhile leaves the old database in place, and the next start moves
    /// again what is not moved yet (ids already in a partition are skipped).
    pub(super) fn migrate_earlier_layout(&mut self, dir: &Path) -> Result<(), StoreError> {
        if !dir.join("conf").exists() {
            // What an interrupted clean-up left (everything in it was moved).
            return delete_earlier_layout(dir);
        }
        // Which ids a partition holds already (a move interrupted before): the whole map,
        // now, and the second copies it finds deleted.
        while self.ids.is_loading() {
            self.ids.load_chunk(&read_lock(&self.partitions))?;
        }
        let strays = std::mem::take(&mut self.ids.strays);
        let mut plan = Plan::default();
        self.plan_strays(&strays, &mut plan)?;
        self.apply_durably(&mut plan)?;
        let old = open_when_unlocked(
            &sled::Config::new()
                .path(dir)
                .cache_capacity(self.cache_bytes),
        )?;
        let mut trees: Vec<sled::Tree> = vec![(*old).clone()];
        for name in old.tree_names() {
            if parse_bucket_name(&name).is_some() {
                trees.push(old.open_tree(&name)?);
            }
        }
        let mut moved = 0u64;
        for tree in &trees {
            moved += self.migrate_tree(tree)?;
        }
        drop(trees);
        drop(old);
        // Everything is moved and durable: `conf` goes first, and from then on what is left
        // of the old database is only deleted, never opened again half deleted.
        let conf = dir.join("conf");
        std::fs::remove_file(&conf).map_err(|source| StoreError::Io { path: conf, source })?;
        super::partition::sync_dir(dir);
        delete_earlier_layout(dir)?;
        tracing::info!(moved, "moved queued envelopes into time partitions");
        Ok(())
    }

    fn migrate_tree(&mut self, tree: &sled::Tree) -> Result<u64, StoreError> {
        let mut moved = 0;
        let mut from = b"i".to_vec();
        loop {
            let chunk: Vec<(sled::IVec, sled::IVec)> = tree
                .range(from.clone()..)
                .take_while(|item| item.as_ref().map_or(true, |(k, _)| k.starts_with(b"i")))
                .take(EXPIRE_CHUNK)
                .collect::<Result<_, _>>()?;
            let Some((last, _)) = chunk.last() else {
                return Ok(moved);
            };
            from = [last.as_ref(), &[0]].concat();
            let mut plan = Plan::default();
            for (key, value) in chunk {
                let Some(id) = key.get(1..17).and_then(|i| <MessageId>::try_from(i).ok()) else {
                    continue;
                };
                let u64_at = |at: usize| {
                    value
                        .get(at..at + 8)
                        .and_then(|s| s.try_into().ok())
                        .map(u64::from_be_bytes)
                };
                let (Some(recipient), Some(seq), Some(stored_ms)) = (
                    value
                        .get(..32)
                        .and_then(|r| <Fingerprint>::try_from(r).ok()),
                    u64_at(32),
                    u64_at(40),
                ) else {
                    continue;
                };
                if self.queued(&id) {
                    continue;
                }
                // What was acknowledged is forgotten, as an ACK does now.
                let Some(envelope) = tree.get(queue_key(&recipient, seq))? else {
                    continue;
                };
                self.last_ms = self.last_ms.max(stored_ms + 1);
                let partition = self.partition_for(stored_ms)?;
                let meta = IdMeta {
                    recipient,
                    seq,
                    stored_ms,
                    len: envelope.len() as u64,
                    origin: Origin::UNKNOWN,
                };
                self.insert(&mut plan, partition, &id, &meta, &envelope, true);
                moved += 1;
            }
            self.apply_durably(&mut plan)?;
        }
    }

    /// Apply `plan` and fdatasync what it wrote, on this thread (before the syncer runs).
    fn apply_durably(&mut self, plan: &mut Plan) -> Result<(), StoreError> {
        for file in self.apply_and_flush(plan)?.values() {
            file.sync().map_err(StoreError::Fatal)?;
        }
        add_signed(&self.totals.envelopes, plan.envelopes);
        add_signed(&self.totals.bytes, plan.bytes);
        Ok(())
    }
}

/// Delete the files of an old database in `dir` (`conf` is already gone).
fn delete_earlier_layout(dir: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == "blobs" {
            std::fs::remove_dir_all(entry.path()).map_err(io)?;
        } else if is_sled_file(name) {
            std::fs::remove_file(entry.path()).map_err(io)?;
        }
    }
    Ok(())
}
