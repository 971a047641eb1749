//! The one thread that writes (the committer: plan, apply, flush) and the one that makes
//! it durable (the syncer: fdatasync, then answer).
//!
//! The committer owns the in-memory figures (usage per recipient and per origin, when
//! each queued id was stored) and changes them while it plans a group: if applying the
//! group fails, the store is poisoned and nothing it holds in memory is used again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};

use crypto::{Fingerprint, MessageId};

use super::super::keys::{
    IdMeta, id_key, origin_key, parse_partition_name, parse_usage, partition_name, queue_key,
    sequence, time_key, usage_bytes, usage_key,
};
use super::super::{Incoming, Origin, Quota, StoreError, Stored};
use super::ids::{IdIndex, Place};
use super::partition::{
    DbFile, GROUP_COLLECTIONS, Partition, Partitions, TRASH, read_lock, reclaim, remove_trash,
    sync_dir, write_lock,
};
use super::syncer::{Applied, Outcome, fail};
use super::{Poison, Totals, UsageMap, Write};

/// What one partition holds, by recipient and by origin (what its `u` and `o` records say).
#[derive(Debug, Default)]
pub(super) struct PartitionUsage {
    pub(super) recipients: UsageMap<Fingerprint>,
    pub(super) origins: UsageMap<Origin>,
}

/// The byte after the metadata in a `t` value whose envelope has an `i` entry too.
pub(super) const INDEXED: u8 = 1;

/// A queued envelope found by its id.
#[derive(Clone, Copy, Debug)]
pub(super) struct Queued {
    pub(super) partition: u64,
    pub(super) meta: IdMeta,
    /// It has an `i` entry (a partition of the earlier layout, or a migrated envelope).
    pub(super) indexed: bool,
}

/// The one thread that writes: group commit.
pub(super) struct Committer {
    /// `<dir>/partitions`.
    pub(super) root: PathBuf,
    pub(super) bucket_ms: u64,
    pub(super) cache_bytes: u64,
    pub(super) partitions: Partitions,
    /// When each queued id was stored (so its partition and `t` key).
    pub(super) ids: IdIndex,
    /// Per recipient and per origin, over all partitions (for quotas).
    pub(super) usage: UsageMap<Fingerprint>,
    pub(super) origins: UsageMap<Origin>,
    /// Per partition (by start).
    pub(super) partition_usage: HashMap<u64, PartitionUsage>,
    /// The latest stored-at time given to an envelope, and how many had it.
    pub(super) last_ms: u64,
    pub(super) in_last_ms: u32,
    pub(super) totals: Arc<Totals>,
    /// Set when a write fails; shared with the syncer and the store's handles.
    pub(super) poison: Arc<Poison>,
}

/// How many retention deletions (in a partition only partly expired) go in one batch.
pub(super) const EXPIRE_CHUNK: usize = 10_000;

/// Changes planned in one group commit.
#[derive(Default)]
pub(super) struct Plan {
    /// One batch per partition (by start): each is atomic, with its own usage records.
    pub(super) batches: BTreeMap<u64, sled::Batch>,
    /// Usage records to rewrite, by partition.
    pub(super) recipients: BTreeSet<(u64, Fingerprint)>,
    pub(super) origins: BTreeSet<(u64, Origin)>,
    /// Partitions wholly expired: deleted after the batches are applied.
    pub(super) drop: Vec<u64>,
    /// Envelopes deleted in this group, by stored time and id (their entries are still in
    /// the database until it is applied; the id may be stored again meanwhile).
    pub(super) removed: HashSet<(u64, MessageId)>,
    /// The change to the queue figures, made once the batches are applied.
    pub(super) envelopes: i64,
    pub(super) bytes: i64,
}

impl Plan {
    pub(super) fn batch(&mut self, partition: u64) -> &mut sled::Batch {
        self.batches.entry(partition).or_default()
    }
}

/// Add `count` envelopes of `bytes` in all (negative: remove) to `map[key]`; an entry
/// goes at zero.
fn change<K: std::hash::Hash + Eq + Copy>(map: &mut UsageMap<K>, key: K, count: i64, bytes: u64) {
    let u = map.entry(key).or_default();
    let bytes = count.signum() * i64::try_from(bytes).unwrap_or(i64::MAX);
    u.0 = u.0.saturating_add_signed(count);
    u.1 = u.1.saturating_add_signed(bytes);
    if u.0 == 0 {
        map.remove(&key);
    }
}

pub(super) fn add_signed(counter: &AtomicU64, delta: i64) {
    if delta >= 0 {
        counter.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
    } else {
        counter.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

impl Committer {
    pub(super) fn new(root: PathBuf, bucket_ms: u64, cache_bytes: u64) -> Self {
        Self {
            root,
            bucket_ms,
            cache_bytes,
            partitions: Partitions::default(),
            ids: IdIndex::default(),
            usage: HashMap::new(),
            origins: HashMap::new(),
            partition_usage: HashMap::new(),
            last_ms: 0,
            in_last_ms: 0,
            totals: Arc::default(),
            poison: Poison::new(),
        }
    }

    /// Open every partition under the root: its usage records and its latest stored-at
    /// time (its ids are loaded later, [`IdIndex`]).
    pub(super) fn open_partitions(&mut self) -> Result<(), StoreError> {
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| StoreError::Io { path, source }
        };
        for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let entry = entry.map_err(io(&self.root))?;
            if entry.path().extension().is_some_and(|e| e == TRASH) {
                remove_trash(&entry.path());
                continue;
            }
            let Some((start, end)) = entry.file_name().to_str().and_then(parse_partition_name)
            else {
                continue;
            };
            let started = std::time::Instant::now();
            let partition = Partition::open(&entry.path(), end, self.cache_bytes)?;
            let opened = started.elapsed();
            let mut usage = PartitionUsage::default();
            for item in partition.db.scan_prefix(b"u") {
                let (key, value) = item?;
                if let (Some(recipient), Some(u)) = (
                    key.get(1..33).and_then(|r| <Fingerprint>::try_from(r).ok()),
                    parse_usage(&value),
                ) {
                    usage.recipients.insert(recipient, u);
                }
            }
            for item in partition.db.scan_prefix(b"o") {
                let (key, value) = item?;
                if let (Some(origin), Some(u)) = (
                    key.get(1..17).and_then(|o| <[u8; 16]>::try_from(o).ok()),
                    parse_usage(&value),
                ) {
                    usage.origins.insert(Origin(origin), u);
                }
            }
            self.ids.load(start);
            if let Some(item) = partition.db.scan_prefix(b"t").next_back() {
                let (key, _) = item?;
                if let Some(ms) = key.get(1..9).and_then(|m| m.try_into().ok()) {
                    self.last_ms = self.last_ms.max(u64::from_be_bytes(ms));
                }
            }
            tracing::debug!(
                partition = start,
                open_ms = opened.as_millis(),
                read_ms = started.elapsed().as_millis(),
                "opened a partition"
            );
            let (envelopes, bytes) = self.add_partition_usage(&usage, 1);
            add_signed(&self.totals.envelopes, envelopes);
            add_signed(&self.totals.bytes, bytes);
            self.partition_usage.insert(start, usage);
            write_lock(&self.partitions).insert(start, partition);
        }
        // Sequences given from now on sort after every one given before.
        if self.last_ms > 0 {
            self.last_ms += 1;
        }
        Ok(())
    }

    pub(super) fn run(mut self, rx: std_mpsc::Receiver<Write>, synced: std_mpsc::Sender<Applied>) {
        loop {
            let first = if self.ids.is_loading() {
                match rx.try_recv() {
                    Ok(write) => write,
                    Err(std_mpsc::TryRecvError::Empty) => {
                        self.load_ids(&synced);
                        continue;
                    }
                    Err(std_mpsc::TryRecvError::Disconnected) => return,
                }
            } else {
                match rx.recv() {
                    Ok(write) => write,
                    Err(_) => return,
                }
            };
            let mut pending = vec![first];
            while let Ok(more) = rx.try_recv() {
                pending.push(more);
            }
            self.commit(pending, &synced);
            reclaim(GROUP_COLLECTIONS);
            // Loading goes on under load too, a chunk per group.
            if self.ids.is_loading() {
                self.load_ids(&synced);
            }
        }
    }

    /// One loading step of the id index, then the deletion of second copies it found; a
    /// read that fails poisons the store.
    pub(super) fn load_ids(&mut self, synced: &std_mpsc::Sender<Applied>) {
        if self.poison.check().is_err() {
            // Nothing more is answered: stop loading.
            self.ids = IdIndex::default();
            return;
        }
        let loaded = self.ids.load_chunk(&read_lock(&self.partitions));
        if let Err(e) = loaded {
            self.poison.set(format!("reading the id index: {e}"));
            return;
        }
        let strays = std::mem::take(&mut self.ids.strays);
        if !strays.is_empty() {
            tracing::warn!(
                copies = strays.len(),
                "deleting second copies of queued envelopes"
            );
            let mut plan = Plan::default();
            let found = self.plan_strays(&strays, &mut plan);
            match found.and_then(|()| self.apply_and_flush(&mut plan)) {
                Ok(files) => {
                    let _ = synced.send(Applied {
                        pending: Vec::new(),
                        outcomes: Vec::new(),
                        dropped: 0,
                        files,
                        figures: (plan.envelopes, plan.bytes),
                        totals: self.totals.clone(),
                    });
                }
                Err(e) => self.poison.set(e.to_string()),
            }
        }
    }

    /// Delete the second copies `strays` (stored time, id) (the id map keeps the first).
    pub(super) fn plan_strays(
        &mut self,
        strays: &[(u64, MessageId)],
        plan: &mut Plan,
    ) -> Result<(), StoreError> {
        for &(stored_ms, id) in strays {
            let Some(partition) = self.partition_of(stored_ms) else {
                continue;
            };
            if let Some(found) = self.entry(partition, stored_ms, &id)? {
                self.remove(plan, &id, &found);
            }
        }
        Ok(())
    }

    /// Add (`sign` 1) or remove (-1) a partition's usage to or from the quota maps.
    /// Returns its envelopes and bytes (for the queue figures).
    pub(super) fn add_partition_usage(&mut self, usage: &PartitionUsage, sign: i64) -> (i64, i64) {
        let (mut envelopes, mut bytes) = (0i64, 0i64);
        for (recipient, &(n, b)) in &usage.recipients {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            change(&mut self.usage, *recipient, sign * n, b);
            envelopes = envelopes.saturating_add(n);
            bytes = bytes.saturating_add(i64::try_from(b).unwrap_or(i64::MAX));
        }
        for (origin, &(n, b)) in &usage.origins {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            change(&mut self.origins, *origin, sign * n, b);
        }
        (envelopes, bytes)
    }

    /// Count one envelope in (`count` 1) or out (-1) of `partition`.
    fn count(&mut self, plan: &mut Plan, partition: u64, meta: &IdMeta, count: i64) {
        let usage = self.partition_usage.entry(partition).or_default();
        change(&mut usage.recipients, meta.recipient, count, meta.len);
        change(&mut usage.origins, meta.origin, count, meta.len);
        change(&mut self.usage, meta.recipient, count, meta.len);
        change(&mut self.origins, meta.origin, count, meta.len);
        plan.envelopes += count;
        plan.bytes += count * i64::try_from(meta.len).unwrap_or(i64::MAX);
        plan.recipients.insert((partition, meta.recipient));
        plan.origins.insert((partition, meta.origin));
    }

    /// The partition for envelopes stored at `ms`, opened (and created) if need be.
    pub(super) fn partition_for(&mut self, ms: u64) -> Result<u64, StoreError> {
        let partitions = read_lock(&self.partitions);
        if let Some((&start, p)) = partitions.range(..=ms).next_back()
            && ms < p.end
        {
            return Ok(start);
        }
        // Never overlap another partition (made when partitions had another width).
        let previous_end = partitions
            .range(..=ms)
            .next_back()
            .map_or(0, |(_, p)| p.end);
        let start = (ms - ms % self.bucket_ms).max(previous_end);
        let next = partitions.range(ms..).next().map_or(u64::MAX, |(&s, _)| s);
        drop(partitions);
        let end = start.saturating_add(self.bucket_ms).min(next);
        let dir = self.root.join(partition_name(start, end));
        let partition = Partition::open(&dir, end, self.cache_bytes)?;
        // The new files' and directory's names are durable before anything in them is
        // answered (an fdatasync of the database file does not cover them).
        sync_dir(&dir);
        sync_dir(&self.root);
        write_lock(&self.partitions).insert(start, partition);
        Ok(start)
    }

    /// The next stored-at time and sequence: times never go back (a clock step back would
    /// otherwise put an envelope ahead of envelopes stored before it), and a millisecond
    /// holds at most 65,536 sequences (then the time moves on by one).
    fn next_sequence(&mut self, now_ms: u64) -> (u64, u64) {
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.in_last_ms = 0;
        }
        if self.in_last_ms > u32::from(u16::MAX) {
            self.last_ms += 1;
            self.in_last_ms = 0;
        }
        let n = u16::try_from(self.in_last_ms).unwrap_or(u16::MAX);
        self.in_last_ms += 1;
        (self.last_ms, sequence(self.last_ms, n))
    }

    pub(super) fn commit(&mut self, pending: Vec<Write>, synced: &std_mpsc::Sender<Applied>) {
        if let Err(e) = self.poison.check() {
            fail(pending, &e.to_string());
            return;
        }
        // A SEND or an ACK needs every queued id known (no index on disk finds an id by
        // itself): what is left of the map loads first. PULLs never wait for it, and
        // retention finds what it deletes by time.
        let needs_ids = pending.iter().any(|w| !matches!(w, Write::Expire { .. }));
        if needs_ids && self.ids.is_loading() {
            let started = std::time::Instant::now();
            while self.ids.is_loading() {
                self.load_ids(synced);
            }
            tracing::info!(
                ms = started.elapsed().as_millis(),
                "a SEND or an ACK waited for the id index to load"
            );
            if let Err(e) = self.poison.check() {
                fail(pending, &e.to_string());
                return;
            }
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
        let files = match self.apply_and_flush(&mut plan) {
            Ok(files) => files,
            Err(e) => {
                // The batch may be visible without being on disk, and the figures in memory
                // no longer match it: answering on would promise what is not kept. The
                // store poisons itself and the binary stops; a restart reopens the store
                // from what is durable.
                let reason = e.to_string();
                self.poison.set(reason.clone());
                fail(pending, &reason);
                return;
            }
        };
        let mut dropped = 0;
        for start in std::mem::take(&mut plan.drop) {
            let (envelopes, bytes) = self.drop_partition(start);
            dropped += envelopes.unsigned_abs();
            plan.envelopes -= envelopes;
            plan.bytes -= bytes;
        }
        // The syncer answers once an fdatasync covers this group; meanwhile this thread
        // goes on with the next one (the next group reads what this one applied: if the
        // sync fails, the store is poisoned and the syncer answers neither).
        let _ = synced.send(Applied {
            pending,
            outcomes,
            dropped,
            files,
            figures: (plan.envelopes, plan.bytes),
            totals: self.totals.clone(),
        });
    }

    /// Write the usage records the plan touched into its batches, apply them and flush each
    /// partition written to (which survives a process crash, not a power loss: the
    /// fdatasync that makes it durable is the syncer's). Returns the files to sync.
    pub(super) fn apply_and_flush(
        &self,
        plan: &mut Plan,
    ) -> Result<BTreeMap<u64, Arc<DbFile>>, StoreError> {
        let recipients = std::mem::take(&mut plan.recipients);
        self.write_usage(plan, recipients, |u, r| u.recipients.get(r), usage_key);
        let origins = std::mem::take(&mut plan.origins);
        self.write_usage(plan, origins, |u, o| u.origins.get(o), origin_key);
        let partitions = read_lock(&self.partitions);
        let mut files = BTreeMap::new();
        for (start, batch) in std::mem::take(&mut plan.batches) {
            let partition = partitions
                .get(&start)
                .ok_or_else(|| StoreError::Fatal(format!("partition {start} vanished")))?;
            partition.db.apply_batch(batch)?;
            partition.db.flush()?;
            files.insert(start, partition.file.clone());
        }
        Ok(files)
    }

    /// Write the usage records of `touched` (partition, key) pairs as they stand now into
    /// the plan's batches (a record at zero is deleted).
    fn write_usage<K>(
        &self,
        plan: &mut Plan,
        touched: BTreeSet<(u64, K)>,
        usage: impl for<'a> Fn(&'a PartitionUsage, &K) -> Option<&'a (u64, u64)>,
        key: impl Fn(&K) -> Vec<u8>,
    ) {
        for (partition, k) in touched {
            let now = self
                .partition_usage
                .get(&partition)
                .and_then(|u| usage(u, &k).copied());
            let batch = plan.batch(partition);
            match now {
                Some(u) => batch.insert(key(&k), usage_bytes(u)),
                None => batch.remove(key(&k)),
            }
        }
    }

    /// The partition holding what was stored at `ms`, if there is one.
    pub(super) fn partition_of(&self, ms: u64) -> Option<u64> {
        read_lock(&self.partitions)
            .range(..=ms)
            .next_back()
            .and_then(|(&start, p)| (ms < p.end).then_some(start))
    }

    /// The metadata of the envelope `id` stored at `stored_ms` in `partition`: its `t`
    /// value, or (a partition of the earlier layout, whose `t` values are empty) its `i`
    /// value. One read, two in a partition of the earlier layout.
    pub(super) fn entry(
        &self,
        partition: u64,
        stored_ms: u64,
        id: &MessageId,
    ) -> Result<Option<Queued>, StoreError> {
        let partitions = read_lock(&self.partitions);
        let Some(p) = partitions.get(&partition) else {
            return Ok(None);
        };
        self.totals.lookups.fetch_add(1, Ordering::Relaxed);
        let Some(value) = p.db.get(time_key(stored_ms, id))? else {
            return Ok(None);
        };
        if !value.is_empty() {
            // A value that does not match its key (the disk garbled it) is no envelope:
            // retention then deletes the key as an orphan.
            return Ok(IdMeta::parse(&value)
                .filter(|meta| meta.stored_ms == stored_ms)
                .map(|meta| Queued {
                    partition,
                    meta,
                    indexed: value.get(IdMeta::LEN) == Some(&INDEXED),
                }));
        }
        self.totals.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(p.db
            .get(id_key(id))?
            .and_then(|m| IdMeta::parse(&m))
            .filter(|meta| meta.stored_ms == stored_ms)
            .map(|meta| Queued {
                partition,
                meta,
                indexed: true,
            }))
    }

    /// Where a queued id is: its partition and metadata (one index read, see
    /// [`Committer::entry`]). An id stored in this group is not found (its batch is not
    /// applied yet), nor one deleted in it. The map is whole: a group with a SEND or an
    /// ACK loads what is left of it first ([`Committer::commit`]).
    fn find(&self, id: &MessageId, plan: &Plan) -> Result<Option<Queued>, StoreError> {
        let Place::Known(stored_ms) = self.ids.place(id) else {
            return Ok(None);
        };
        if plan.removed.contains(&(stored_ms, *id)) {
            return Ok(None);
        }
        let Some(partition) = self.partition_of(stored_ms) else {
            return Ok(None);
        };
        self.entry(partition, stored_ms, id)
    }

    /// Whether `id` is queued (stored in this group included, deleted in it not).
    pub(super) fn queued(&self, id: &MessageId) -> bool {
        matches!(self.ids.place(id), Place::Known(_))
    }

    pub(super) fn plan_store(
        &mut self,
        incoming: &Incoming,
        quota: Quota,
        plan: &mut Plan,
    ) -> Result<Stored, StoreError> {
        if self.queued(&incoming.id) {
            return Ok(Stored::Duplicate);
        }
        let len = incoming.envelope.len() as u64;
        let (n, b) = self
            .usage
            .get(&incoming.recipient)
            .copied()
            .unwrap_or_default();
        if n + 1 > quota.envelopes || b + len > quota.bytes {
            return Ok(Stored::OverQuota);
        }
        let (count, bytes) = self
            .origins
            .get(&incoming.origin)
            .copied()
            .unwrap_or_default();
        if count + 1 > quota.origin_envelopes || bytes + len > quota.origin_bytes {
            return Ok(Stored::OriginFull);
        }
        let (stored_ms, seq) = self.next_sequence(incoming.now_ms);
        let partition = self.partition_for(stored_ms)?;
        let meta = IdMeta {
            recipient: incoming.recipient,
            seq,
            stored_ms,
            len,
            origin: incoming.origin,
        };
        self.insert(
            plan,
            partition,
            &incoming.id,
            &meta,
            &incoming.envelope,
            false,
        );
        Ok(Stored::New)
    }

    /// Queue an envelope in `partition` (store and migration): its `q` entry, and its `t`
    /// entry holding its metadata; an `i` entry too if `indexed` (a migrated envelope,
    /// whose sequence does not give its stored time: `mailbox migrate` finds it by id).
    pub(super) fn insert(
        &mut self,
        plan: &mut Plan,
        partition: u64,
        id: &MessageId,
        meta: &IdMeta,
        envelope: &[u8],
        indexed: bool,
    ) {
        let batch = plan.batch(partition);
        batch.insert(queue_key(&meta.recipient, meta.seq), envelope);
        let mut t = meta.to_bytes();
        if indexed {
            batch.insert(id_key(id), t.clone());
            t.push(INDEXED);
        }
        batch.insert(time_key(meta.stored_ms, id), t);
        self.ids.insert(*id, meta.stored_ms);
        self.count(plan, partition, meta, 1);
    }

    /// Delete a queued envelope: all of its entries, nothing left of it. The id map
    /// forgets it if it points to this copy.
    pub(super) fn remove(&mut self, plan: &mut Plan, id: &MessageId, found: &Queued) {
        let Queued {
            partition,
            ref meta,
            indexed,
        } = *found;
        let batch = plan.batch(partition);
        batch.remove(queue_key(&meta.recipient, meta.seq));
        batch.remove(time_key(meta.stored_ms, id));
        if indexed {
            batch.remove(id_key(id));
        }
        if matches!(self.ids.place(id), Place::Known(at) if at == meta.stored_ms) {
            self.ids.remove(id);
        }
        plan.removed.insert((meta.stored_ms, *id));
        self.count(plan, partition, meta, -1);
    }

    pub(super) fn plan_ack(
        &mut self,
        recipient: &Fingerprint,
        ids: &[MessageId],
        plan: &mut Plan,
    ) -> Result<u64, StoreError> {
        let mut count = 0;
        for id in ids {
            let Some(found) = self.find(id, plan)? else {
                continue;
            };
            if found.meta.recipient != *recipient {
                continue;
            }
            self.remove(plan, id, &found);
            count += 1;
        }
        Ok(count)
    }
}
