//! The one thread that writes (the committer: plan, apply, flush) and the one that makes
//! it durable (the syncer: fdatasync, then answer).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};

use crypto::{Fingerprint, MessageId};

use super::super::keys::{
    IdMeta, bucket_name, id_key, queue_key, time_key, usage_bytes, usage_key,
};
use super::super::{Incoming, Quota, StoreError, Stored};
use super::{Bucket, Buckets, Poison, Totals, Write, read_lock, write_lock};

/// The one thread that writes: group commit.
pub(super) struct Committer {
    pub(super) db: sled::Db,
    pub(super) file: std::fs::File,
    pub(super) path: PathBuf,
    pub(super) bucket_ms: u64,
    pub(super) buckets: Buckets,
    /// Per recipient, over all buckets (for quotas).
    pub(super) usage: HashMap<Fingerprint, (u64, u64)>,
    /// Per bucket (by start) and recipient: what its `u` records say.
    pub(super) bucket_usage: HashMap<u64, HashMap<Fingerprint, (u64, u64)>>,
    /// See [`SledOptions::segment_envelopes`].
    pub(super) segment_envelopes: u64,
    /// Envelopes stored in each bucket (queued at open, plus stored since).
    pub(super) filled: HashMap<u64, u64>,
    /// The latest stored-at time given to an envelope.
    pub(super) last_ms: u64,
    pub(super) totals: Arc<Totals>,
    /// Set when a write fails; shared with the syncer and the store's handles.
    pub(super) poison: Arc<Poison>,
}

/// A group applied and flushed by the committer, waiting for an fdatasync to be answered.
pub(super) struct Applied {
    pub(super) pending: Vec<Write>,
    pub(super) outcomes: Vec<Result<Outcome, StoreError>>,
    /// Envelopes that went with dropped buckets (added to the retention answer).
    pub(super) dropped: u64,
}

/// What a planned write comes to.
#[derive(Debug)]
pub(super) enum Outcome {
    /// A store's.
    Stored(Stored),
    /// An ack's or an expiry's count.
    Count(u64),
}

/// Answer every write of a group with [`StoreError::Fatal`].
fn fail(pending: Vec<Write>, reason: &str) {
    let fatal = || StoreError::Fatal(reason.to_owned());
    for write in pending {
        // A requester that went away does not need its answer.
        match write {
            Write::Store { done, .. } => {
                let _ = done.send(Err(fatal()));
            }
            Write::Ack { done, .. } | Write::Expire { done, .. } => {
                let _ = done.send(Err(fatal()));
            }
        }
    }
}

/// The second stage of the group commit: one fdatasync for every group applied since the
/// last, then their answers. Runs beside the committer, so applying the next group and
/// syncing this one overlap.
///
/// If the sync fails, the store is poisoned: these groups and every later one are answered
/// with [`StoreError::Fatal`] (a later group may hold what this one applied).
pub(super) fn syncer(
    file: std::fs::File,
    path: PathBuf,
    rx: std_mpsc::Receiver<Applied>,
    poison: Arc<Poison>,
) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        while let Ok(more) = rx.try_recv() {
            groups.push(more);
        }
        let synced = poison.check().and_then(|()| {
            file.sync_data().map_err(|e| {
                let reason = format!("fdatasync of {}: {e}", path.display());
                poison.set(reason.clone());
                StoreError::Fatal(reason)
            })
        });
        if let Err(e) = synced {
            for group in groups {
                fail(group.pending, &e.to_string());
            }
            continue;
        }
        for Applied {
            pending,
            outcomes,
            dropped,
        } in groups
        {
            for (write, outcome) in pending.into_iter().zip(outcomes) {
                // A requester that went away does not need its answer.
                let mismatch = || StoreError::Fatal("a write's outcome does not fit it".into());
                match write {
                    Write::Store { done, .. } => {
                        let _ = done.send(outcome.and_then(|o| match o {
                            Outcome::Stored(stored) => Ok(stored),
                            Outcome::Count(_) => Err(mismatch()),
                        }));
                    }
                    Write::Expire { done, .. } => {
                        let _ = done.send(outcome.and_then(|o| match o {
                            Outcome::Count(n) => Ok(n + dropped),
                            Outcome::Stored(_) => Err(mismatch()),
                        }));
                    }
                    Write::Ack { done, .. } => {
                        let _ = done.send(outcome.and_then(|o| match o {
                            Outcome::Count(n) => Ok(n),
                            Outcome::Stored(_) => Err(mismatch()),
                        }));
                    }
                }
            }
        }
    }
}

/// sled frees what it replaces or drops through epoch-based reclamation (crossbeam-epoch,
/// whose global collector this crate shares with sled), and a collection runs only a few
/// hundred deferred frees. Left to sled's own pace, the garbage in flight follows the write
/// rate: every insert clones a leaf, and the soak's RSS swung by up to 14% at ~13,000
/// SENDs/s.
/// Dropping a tree defers one free per page at once; left alone on an idle mailbox they stay
/// allocated (1.7 GB after dropping 1,000,000 envelopes). So the committer collects after
/// every group and after every drop. Each collection runs up to 8 bags of 64 deferred frees;
/// an idle one costs well under a microsecond.
pub(super) fn reclaim(collections: usize) {
    for _ in 0..collections {
        crossbeam_epoch::pin().flush();
    }
}

/// Collections after each group commit: up to ~8,000 deferred frees, more than a group
/// makes. With them three 5-minute soaks ended within 5% of their RSS at minute 1.
pub(super) const GROUP_COLLECTIONS: usize = 16;

/// Collections after a dropped tree: ~2,000,000 deferred frees (a tree of
/// [`SledOptions::segment_envelopes`] envelopes defers far fewer).
pub(super) const DROP_COLLECTIONS: usize = 4_000;

/// How many retention deletions (in a bucket only partly expired) go in one batch.
pub(super) const EXPIRE_CHUNK: usize = 10_000;

/// Changes planned in one group commit.
#[derive(Default)]
pub(super) struct Plan {
    /// One batch per bucket (by start): each is atomic, with its own usage records.
    pub(super) batches: BTreeMap<u64, sled::Batch>,
    /// Usage change per bucket and recipient.
    pub(super) usage: HashMap<u64, HashMap<Fingerprint, (i64, i64)>>,
    pub(super) new_ids: HashSet<MessageId>,
    pub(super) deleted: HashSet<(u64, Vec<u8>)>,
    /// Buckets wholly expired: dropped after the batches are durable.
    pub(super) drop: Vec<u64>,
}

impl Plan {
    pub(super) fn batch(&mut self, bucket: u64) -> &mut sled::Batch {
        self.batches.entry(bucket).or_default()
    }

    pub(super) fn change(&mut self, bucket: u64, recipient: Fingerprint, count: i64, bytes: u64) {
        let d = self
            .usage
            .entry(bucket)
            .or_default()
            .entry(recipient)
            .or_default();
        d.0 += count;
        d.1 += count.signum() * i64::try_from(bytes).unwrap_or(i64::MAX);
    }
}

impl Committer {
    pub(super) fn run(mut self, rx: std_mpsc::Receiver<Write>, synced: std_mpsc::Sender<Applied>) {
        while let Ok(first) = rx.recv() {
            let mut pending = vec![first];
            while let Ok(more) = rx.try_recv() {
                pending.push(more);
            }
            self.commit(pending, &synced);
            reclaim(GROUP_COLLECTIONS);
        }
    }

    /// Add (`sign` 1) or remove (-1) a bucket's usage from the totals.
    pub(super) fn add_usage(&mut self, usage: &HashMap<Fingerprint, (u64, u64)>, sign: i64) {
        for (recipient, &(n, b)) in usage {
            let (dn, db) = (
                sign * i64::try_from(n).unwrap_or(i64::MAX),
                sign * i64::try_from(b).unwrap_or(i64::MAX),
            );
            let u = self.usage.entry(*recipient).or_default();
            u.0 = u.0.saturating_add_signed(dn);
            u.1 = u.1.saturating_add_signed(db);
            if u.0 == 0 {
                self.usage.remove(recipient);
            }
            add_signed(&self.totals.envelopes, dn);
            add_signed(&self.totals.bytes, db);
        }
    }

    /// The bucket for envelopes stored at `ms`, opened (and created) if need be.
    pub(super) fn bucket_for(&mut self, ms: u64) -> Result<(u64, sled::Tree), StoreError> {
        let found = read_lock(&self.buckets)
            .range(..=ms)
            .next_back()
            .map(|(&start, b)| (start, b.clone()));
        if let Some((start, bucket)) = found
            && ms < bucket.end
        {
            let full = self.filled.get(&start).copied().unwrap_or(0) >= self.segment_envelopes;
            // A new segment starts at `ms`, so that later envelopes of the same millisecond
            // find it (and keep their order). If the full one started at this very
            // millisecond, it takes the rest of it.
            let next_start = ms;
            let taken = read_lock(&self.buckets).contains_key(&next_start);
            if !full || taken || next_start >= bucket.end {
                return Ok((start, bucket.tree));
            }
            // Full: the same time range goes on in a new segment.
            let end = read_lock(&self.buckets)
                .range(next_start..)
                .next()
                .map_or(bucket.end, |(&s, _)| s.min(bucket.end));
            return Ok((next_start, self.open_bucket(next_start, end)?));
        }
        // Never overlap another bucket (made when buckets had another width).
        let previous_end = read_lock(&self.buckets)
            .range(..=ms)
            .next_back()
            .map_or(0, |(_, b)| b.end);
        let start = (ms - ms % self.bucket_ms).max(previous_end);
        let next = read_lock(&self.buckets)
            .range(ms..)
            .next()
            .map_or(u64::MAX, |(&s, _)| s);
        let end = start.saturating_add(self.bucket_ms).min(next);
        Ok((start, self.open_bucket(start, end)?))
    }

    /// Open (and create) the bucket `[start, end)` and list it.
    pub(super) fn open_bucket(&self, start: u64, end: u64) -> Result<sled::Tree, StoreError> {
        let tree = self.db.open_tree(bucket_name(start, end))?;
        write_lock(&self.buckets).insert(
            start,
            Bucket {
                end,
                tree: tree.clone(),
            },
        );
        Ok(tree)
    }

    pub(super) fn commit(&mut self, pending: Vec<Write>, synced: &std_mpsc::Sender<Applied>) {
        if let Err(e) = self.poison.check() {
            fail(pending, &e.to_string());
            return;
        }
        let mut plan = Plan::default();
        let mut outcomes: Vec<Result<Outcome, StoreError>> = Vec::with_capacity(pending.len());
        for write in &pending {
            let outcome = match write {
                Write::Store {
                    incoming, quota, ..
                } => self
                    .plan_store(incoming, *quota, &mut plan)
                    .map(Outcome::Stored),
                Write::Ack { recipient, ids, .. } => {
                    self.plan_ack(recipient, ids, &mut plan).map(Outcome::Count)
                }
                Write::Expire { cutoff_ms, .. } => {
                    self.plan_expire(*cutoff_ms, &mut plan).map(Outcome::Count)
                }
            };
            outcomes.push(outcome);
        }
        // Each bucket's usage records change in the same batch as its envelopes.
        for (bucket, changes) in &plan.usage {
            let current = self.bucket_usage.get(bucket);
            let mut records = Vec::new();
            for (recipient, (dn, db)) in changes {
                let (n, b) = current
                    .and_then(|u| u.get(recipient))
                    .copied()
                    .unwrap_or_default();
                records.push((
                    usage_key(recipient),
                    (n.saturating_add_signed(*dn), b.saturating_add_signed(*db)),
                ));
            }
            let batch = plan.batches.entry(*bucket).or_default();
            for (key, u) in records {
                if u.0 == 0 {
                    batch.remove(key);
                } else {
                    batch.insert(key, usage_bytes(u));
                }
            }
        }
        if let Err(e) = self.apply_and_flush(std::mem::take(&mut plan.batches)) {
            // The batch may be visible in the tree without being on disk, and the quota
            // figures no longer match it: answering on would promise what is not kept. The
            // store poisons itself and the binary stops; a restart reopens the store from
            // what is durable.
            let reason = e.to_string();
            self.poison.set(reason.clone());
            fail(pending, &reason);
            return;
        }
        for (bucket, changes) in std::mem::take(&mut plan.usage) {
            let per_bucket = self.bucket_usage.entry(bucket).or_default();
            let mut total = HashMap::new();
            for (recipient, (dn, db)) in changes {
                let u = per_bucket.entry(recipient).or_default();
                u.0 = u.0.saturating_add_signed(dn);
                u.1 = u.1.saturating_add_signed(db);
                if u.0 == 0 {
                    per_bucket.remove(&recipient);
                }
                total.insert(recipient, (dn, db));
            }
            for (recipient, (dn, db)) in total {
                let u = self.usage.entry(recipient).or_default();
                u.0 = u.0.saturating_add_signed(dn);
                u.1 = u.1.saturating_add_signed(db);
                if u.0 == 0 {
                    self.usage.remove(&recipient);
                }
                add_signed(&self.totals.envelopes, dn);
                add_signed(&self.totals.bytes, db);
            }
        }
        let mut dropped = 0;
        for start in std::mem::take(&mut plan.drop) {
            match self.drop_bucket(start) {
                Ok(n) => dropped += n,
                // Left in place; the next retention pass tries again.
                Err(e) => tracing::warn!(error = %e, "cannot drop an expired bucket"),
            }
        }
        // The syncer answers once an fdatasync covers this group; meanwhile this thread
        // goes on with the next one (the next group reads what this one applied: if the
        // sync fails, the store is poisoned and the syncer answers neither).
        let _ = synced.send(Applied {
            pending,
            outcomes,
            dropped,
        });
    }

    /// Apply the batches and flush sled (which survives a process crash, not a power loss:
    /// the fdatasync that makes it durable is the syncer's).
    pub(super) fn apply_and_flush(
        &self,
        batches: BTreeMap<u64, sled::Batch>,
    ) -> Result<(), StoreError> {
        let buckets = read_lock(&self.buckets);
        for (start, batch) in batches {
            let bucket = buckets
                .get(&start)
                .ok_or_else(|| StoreError::Fatal(format!("bucket {start} vanished")))?;
            bucket.tree.apply_batch(batch)?;
        }
        drop(buckets);
        self.db.flush()?;
        Ok(())
    }

    /// Drop a wholly expired bucket: one tree, whatever it holds. Returns how many queued
    /// envelopes went with it.
    pub(super) fn drop_bucket(&mut self, start: u64) -> Result<u64, StoreError> {
        let Some(bucket) = write_lock(&self.buckets).remove(&start) else {
            return Ok(0);
        };
        let name = bucket_name(start, bucket.end);
        drop(bucket);
        // sled frees the tree page by page (reading each) and only a flush makes the drop
        // durable: the figures change once it is.
        self.db.drop_tree(name)?;
        self.db.flush()?;
        reclaim(DROP_COLLECTIONS);
        self.filled.remove(&start);
        let usage = self.bucket_usage.remove(&start).unwrap_or_default();
        let expired = usage.values().map(|u| u.0).sum();
        self.add_usage(&usage, -1);
        Ok(expired)
    }

    /// Where the id is remembered: its bucket, tree and metadata.
    pub(super) fn find_id(
        &self,
        id: &MessageId,
    ) -> Result<Option<(u64, sled::Tree, IdMeta)>, StoreError> {
        let key = id_key(id);
        for (&start, bucket) in read_lock(&self.buckets).iter().rev() {
            if let Some(meta) = bucket.tree.get(&key)? {
                return Ok(IdMeta::parse(&meta).map(|m| (start, bucket.tree.clone(), m)));
            }
        }
        Ok(None)
    }

    pub(super) fn plan_store(
        &mut self,
        incoming: &Incoming,
        quota: Quota,
        plan: &mut Plan,
    ) -> Result<Stored, StoreError> {
        if plan.new_ids.contains(&incoming.id) || self.find_id(&incoming.id)?.is_some() {
            return Ok(Stored::Duplicate);
        }
        let (n, b) = self
            .usage
            .get(&incoming.recipient)
            .copied()
            .unwrap_or_default();
        let (dn, db) = plan
            .usage
            .values()
            .filter_map(|u| u.get(&incoming.recipient))
            .fold((0i64, 0i64), |acc, d| (acc.0 + d.0, acc.1 + d.1));
        let len = incoming.envelope.len() as u64;
        let count_after = n.saturating_add_signed(dn) + 1;
        let bytes_after = b.saturating_add_signed(db) + len;
        if count_after > quota.envelopes || bytes_after > quota.bytes {
            return Ok(Stored::OverQuota);
        }
        // Stored times never go back (a clock step back would otherwise put an envelope
        // into an older bucket, ahead of envelopes stored before it).
        let now_ms = incoming.now_ms.max(self.last_ms);
        self.last_ms = now_ms;
        let (bucket, _) = self.bucket_for(now_ms)?;
        *self.filled.entry(bucket).or_default() += 1;
        let seq = self.db.generate_id()?;
        plan.new_ids.insert(incoming.id);
        let meta = IdMeta {
            recipient: incoming.recipient,
            seq,
            stored_ms: now_ms,
            len,
        };
        let batch = plan.batch(bucket);
        batch.insert(
            queue_key(&incoming.recipient, seq),
            incoming.envelope.as_slice(),
        );
        batch.insert(id_key(&incoming.id), meta.to_bytes());
        batch.insert(time_key(now_ms, &incoming.id), &[][..]);
        plan.change(bucket, incoming.recipient, 1, len);
        Ok(Stored::New)
    }

    pub(super) fn plan_ack(
        &self,
        recipient: &Fingerprint,
        ids: &[MessageId],
        plan: &mut Plan,
    ) -> Result<u64, StoreError> {
        let mut count = 0;
        for id in ids {
            let Some((bucket, tree, meta)) = self.find_id(id)? else {
                continue;
            };
            if meta.recipient != *recipient {
                continue;
            }
            let key = queue_key(recipient, meta.seq);
            if plan.deleted.contains(&(bucket, key.clone())) || !tree.contains_key(&key)? {
                continue;
            }
            // Nothing of a delivered envelope stays (see the module docs).
            plan.batch(bucket).remove(key.clone());
            plan.batch(bucket).remove(id_key(id));
            plan.batch(bucket).remove(time_key(meta.stored_ms, id));
            plan.deleted.insert((bucket, key));
            plan.change(bucket, *recipient, -1, meta.len);
            count += 1;
        }
        Ok(count)
    }

    /// Whole buckets older than the cutoff are dropped (after the commit); in the bucket
    /// the cutoff falls in, up to [`EXPIRE_CHUNK`] envelopes are deleted one by one.
    pub(super) fn plan_expire(&self, cutoff_ms: u64, plan: &mut Plan) -> Result<u64, StoreError> {
        let buckets: Vec<(u64, Bucket)> = read_lock(&self.buckets)
            .range(..cutoff_ms)
            .map(|(s, b)| (*s, b.clone()))
            .collect();
        let mut expired = 0;
        for (start, bucket) in buckets {
            if bucket.end <= cutoff_ms {
                if !plan.drop.contains(&start) {
                    plan.drop.push(start);
                }
                continue;
            }
            let end = time_key(cutoff_ms, &MessageId([0; 16]));
            for item in bucket.tree.range(b"t".to_vec()..end).take(EXPIRE_CHUNK) {
                let (tkey, _) = item?;
                plan.batch(start).remove(tkey.clone());
                let Some(id) = tkey.get(9..25).and_then(|i| <MessageId>::try_from(i).ok()) else {
                    continue;
                };
                let Some(meta) = bucket
                    .tree
                    .get(id_key(&id))?
                    .and_then(|m| IdMeta::parse(&m))
                else {
                    continue;
                };
                plan.batch(start).remove(id_key(&id));
                let key = queue_key(&meta.recipient, meta.seq);
                if plan.deleted.contains(&(start, key.clone()))
                    || !bucket.tree.contains_key(&key)?
                {
                    continue;
                }
                plan.batch(start).remove(key.clone());
                plan.deleted.insert((start, key));
                plan.change(start, meta.recipient, -1, meta.len);
                expired += 1;
            }
        }
        Ok(expired)
    }
}

pub(super) fn add_signed(counter: &AtomicU64, delta: i64) {
    if delta >= 0 {
        counter.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
    } else {
        counter.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}
