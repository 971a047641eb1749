//! Retention in the sled store: whole partitions deleted as directories, and the
//! partition the cutoff falls in emptied a chunk at a time.

use crypto::MessageId;

use super::super::StoreError;
use super::super::keys::time_key;
use super::commit::{Committer, EXPIRE_CHUNK, Plan};
use super::partition::{TRASH, read_lock, remove_trash, sync_dir, write_lock};

impl Committer {
    /// Delete a wholly expired partition: rename its directory (so it is never found half
    /// deleted: sled may still write to the database as it closes, its last references
    /// going with the epoch collector), forget its ids and usage, close its database and
    /// delete the directory (no page of it is read). Returns the queued envelopes and bytes
    /// that went with it. If the rename fails, nothing changes and the next pass tries
    /// again; what is left of a renamed directory goes at the next start.
    pub(super) fn drop_partition(&mut self, start: u64) -> (i64, i64) {
        let Some((dir, end)) = read_lock(&self.partitions)
            .get(&start)
            .map(|p| (p.dir.clone(), p.end))
        else {
            return (0, 0);
        };
        let trash = dir.with_extension(TRASH);
        if let Err(e) = std::fs::rename(&dir, &trash) {
            tracing::warn!(path = %dir.display(), error = %e, "cannot delete an expired partition; will retry");
            return (0, 0);
        }
        sync_dir(&self.root);
        drop(write_lock(&self.partitions).remove(&start));
        let usage = self.partition_usage.remove(&start).unwrap_or_default();
        let gone = self.add_partition_usage(&usage, -1);
        self.ids.forget(start, end);
        // Unlinking a day's files can take a second: not on the committer's time.
        let deleting = std::thread::Builder::new()
            .name("queue-trash".into())
            .spawn({
                let trash = trash.clone();
                move || remove_trash(&trash)
            });
        if deleting.is_err() {
            remove_trash(&trash);
        }
        gone
    }

    /// Whole partitions older than the cutoff are deleted (after the commit); in the
    /// partition the cutoff falls in, up to [`EXPIRE_CHUNK`] envelopes are deleted one by
    /// one.
    pub(super) fn plan_expire(
        &mut self,
        cutoff_ms: u64,
        plan: &mut Plan,
    ) -> Result<u64, StoreError> {
        let partitions: Vec<(u64, u64, sled::Db)> = read_lock(&self.partitions)
            .range(..cutoff_ms)
            .map(|(s, p)| (*s, p.end, p.db.clone()))
            .collect();
        let mut expired = 0;
        for (start, end, db) in partitions {
            if end <= cutoff_ms {
                if !plan.drop.contains(&start) {
                    plan.drop.push(start);
                }
                continue;
            }
            let until = time_key(cutoff_ms, &MessageId([0; 16]));
            let due: Vec<sled::IVec> = db
                .range(b"t".to_vec()..until)
                .keys()
                .take(EXPIRE_CHUNK)
                .collect::<Result<_, _>>()?;
            for tkey in due {
                let parsed = (
                    tkey.get(1..9)
                        .and_then(|m| m.try_into().ok())
                        .map(u64::from_be_bytes),
                    tkey.get(9..25).and_then(|i| <MessageId>::try_from(i).ok()),
                );
                let (Some(ms), Some(id)) = parsed else {
                    plan.batch(start).remove(tkey);
                    continue;
                };
                // Deleted earlier in this group (acknowledged meanwhile).
                if plan.removed.contains(&(ms, id)) {
                    continue;
                }
                match self.entry(start, ms, &id)? {
                    // Every entry found goes, so every pass makes progress.
                    Some(found) => {
                        self.remove(plan, &id, &found);
                        expired += 1;
                    }
                    // A time entry without its envelope: nothing to count, only to delete.
                    None => {
                        plan.batch(start).remove(tkey);
                    }
                }
            }
        }
        Ok(expired)
    }
}
