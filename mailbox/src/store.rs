//! The envelope queue store.
//!
//! [`QueueStore`] is the narrow interface the service uses. [`SledQueue`] implements it on
//! sled; [`MemoryQueue`] in memory, for tests (a second persistent engine implements the same
//! trait without touching the service).
//!
//! # Sled layout: time buckets
//!
//! Envelopes live in buckets, one sled tree each, named `b | start (u64 BE ms) | end`, holding
//! what was stored in `[start, end)` (a bucket is a seventh of the retention period: a day by
//! default). Retention drops whole buckets (one `drop_tree`, whatever they hold) and deletes
//! one by one only in the bucket the cutoff falls in. In each bucket:
//!
//! ```text
//! q | recipient (32) | sequence (u64 BE)   ->  envelope bytes   (the queue, oldest first)
//! i | message id (16)                      ->  recipient (32) | sequence | stored at (ms) | length
//! t | stored at (u64 BE ms) | message id   ->  empty            (retention index)
//! u | recipient (32)                       ->  count (u64 BE) | bytes (u64 BE) in this bucket
//! ```
//!
//! A write touches each bucket with one atomic batch, usage records included, so opening
//! reads the `u` records only, never the envelopes. Sequences come from sled's
//! `generate_id` (increasing), so a recipient's queue is its `q` entries bucket by bucket.
//! An ACK deletes all three entries of the envelope (`q`, `i`, `t`): the mailbox keeps no
//! record of what was delivered, neither its bytes nor who received it when (sled's log
//! keeps the bytes on disk until it reuses the space; the data directory is 0700). So a
//! SEND retried while the envelope is queued is a duplicate, and one retried after the
//! recipient acknowledged it is stored again; the recipient's node knows the message id and
//! only acknowledges it (a node must deduplicate anyway: an untrusted mailbox can replay).
//! Memory and disk follow what is queued, not what passed through (docs/security.md, soak). A store of the first layout
//! (everything in the default tree) is moved into buckets when opened.
//!
//! # Durability
//!
//! sled 0.34's `flush` survives a process crash but not a power loss (it uses
//! sync_file_range), and concurrent flushes can deadlock (sled issue 1308). So one committer
//! thread takes every write waiting, applies them as one batch and flushes; a syncer thread
//! then fdatasyncs the database file once for every group flushed meanwhile, and only then
//! answers them (group commit in two stages, so applying one group overlaps syncing the
//! last). If a write or a sync fails the process stops (exit code 70): nobody has been told
//! of the writes that might not be on disk.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc as std_mpsc};
use std::time::Duration;

use crypto::{Fingerprint, MessageId};
use tokio::sync::oneshot;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    /// The file system failed.
    #[error("storage file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The committer thread is gone (the store is shutting down).
    #[error("storage is shutting down")]
    Closed,
}

/// The outcome of storing one envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, and durable.
    New,
    /// An envelope with this message id is queued (stored, and not acknowledged before this
    /// write's group commit); nothing was stored twice.
    Duplicate,
    /// The recipient's queue is full; nothing was stored.
    OverQuota,
}

/// Limits on one recipient's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Most envelopes.
    pub envelopes: u64,
    /// Most bytes.
    pub bytes: u64,
}

impl Quota {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        envelopes: u64::MAX,
        bytes: u64::MAX,
    };
}

/// Queue figures for the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Envelopes queued.
    pub envelopes: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// One envelope offered for storage.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// Whose queue.
    pub recipient: Fingerprint,
    /// Its message id.
    pub id: MessageId,
    /// The bytes.
    pub envelope: Vec<u8>,
    /// Arrival time, ms since the epoch (retention counts from here).
    pub now_ms: u64,
}

/// The queue operations the service needs.
pub trait QueueStore: Send + Sync + 'static {
    /// Store an envelope unless an envelope with its id is queued or the recipient is over
    /// `quota`; resolves once it is durable.
    fn store(
        &self,
        incoming: Incoming,
        quota: Quota,
    ) -> impl Future<Output = Result<Stored, StoreError>> + Send;
    /// The oldest envelopes of `recipient`, bounded in count and bytes (at least one if any
    /// is queued), and whether more wait.
    fn pull(
        &self,
        recipient: &Fingerprint,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError>;
    /// Delete acknowledged envelopes of `recipient` and forget their ids; ids of other
    /// recipients are ignored. Returns how many were deleted.
    fn ack(
        &self,
        recipient: Fingerprint,
        ids: Vec<MessageId>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Delete everything stored before `cutoff_ms` (queued envelopes and remembered ids).
    /// Returns how many queued envelopes expired.
    fn expire(&self, cutoff_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Queue figures (cheap).
    fn stats(&self) -> QueueStats;
}

fn queue_key(recipient: &Fingerprint, seq: u64) -> Vec<u8> {
    [b"q".as_slice(), recipient.as_ref(), &seq.to_be_bytes()].concat()
}

fn id_key(id: &MessageId) -> Vec<u8> {
    [b"i".as_slice(), id.as_ref()].concat()
}

fn time_key(stored_ms: u64, id: &MessageId) -> Vec<u8> {
    [b"t".as_slice(), &stored_ms.to_be_bytes(), id.as_ref()].concat()
}

fn usage_key(recipient: &Fingerprint) -> Vec<u8> {
    [b"u".as_slice(), recipient.as_ref()].concat()
}

/// What an `i` entry says of a stored envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IdMeta {
    recipient: Fingerprint,
    seq: u64,
    stored_ms: u64,
    len: u64,
}

impl IdMeta {
    fn to_bytes(self) -> Vec<u8> {
        [
            self.recipient.as_ref(),
            &self.seq.to_be_bytes(),
            &self.stored_ms.to_be_bytes(),
            &self.len.to_be_bytes(),
        ]
        .concat()
    }

    fn parse(meta: &[u8]) -> Option<Self> {
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(meta.get(at..at + 8)?.try_into().ok()?))
        };
        Some(Self {
            recipient: meta.get(..32)?.try_into().ok()?,
            seq: u64_at(32)?,
            stored_ms: u64_at(40)?,
            len: u64_at(48)?,
        })
    }
}

fn usage_bytes((count, bytes): (u64, u64)) -> Vec<u8> {
    [count.to_be_bytes(), bytes.to_be_bytes()].concat()
}

fn parse_usage(value: &[u8]) -> Option<(u64, u64)> {
    Some((
        u64::from_be_bytes(value.get(..8)?.try_into().ok()?),
        u64::from_be_bytes(value.get(8..16)?.try_into().ok()?),
    ))
}

/// Tree name of the bucket of envelopes stored in `[start, end)` ms.
fn bucket_name(start: u64, end: u64) -> Vec<u8> {
    [b"b".as_slice(), &start.to_be_bytes(), &end.to_be_bytes()].concat()
}

fn parse_bucket_name(name: &[u8]) -> Option<(u64, u64)> {
    if name.len() != 17 || name[0] != b'b' {
        return None;
    }
    Some((
        u64::from_be_bytes(name[1..9].try_into().ok()?),
        u64::from_be_bytes(name[9..17].try_into().ok()?),
    ))
}

enum Write {
    Store {
        incoming: Incoming,
        quota: Quota,
        done: oneshot::Sender<Result<Stored, StoreError>>,
    },
    Ack {
        recipient: Fingerprint,
        ids: Vec<MessageId>,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
    Expire {
        cutoff_ms: u64,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Write")
    }
}

/// Totals shared between the committer and readers.
#[derive(Debug, Default)]
struct Totals {
    envelopes: AtomicU64,
    bytes: AtomicU64,
}

/// One bucket: a sled tree holding what was stored in `[start, end)`.
#[derive(Clone, Debug)]
struct Bucket {
    end: u64,
    tree: sled::Tree,
}

/// The open buckets by start time, shared by the committer (which adds and drops them) and
/// readers.
type Buckets = Arc<RwLock<BTreeMap<u64, Bucket>>>;

/// How the sled store is tuned.
#[derive(Clone, Copy, Debug)]
pub struct SledOptions {
    /// Width of a time bucket (one sled tree each); retention drops whole buckets, so it
    /// should be a fraction of the retention period.
    pub bucket: Duration,
    /// sled's page cache, bytes (sled's default is 1 GiB).
    pub cache_bytes: u64,
    /// Envelopes per tree: a full bucket continues in a new tree (a segment of the same
    /// time range). sled holds every page of a tree it drops in memory until the drop ends,
    /// so this bounds the memory a retention pass takes (~1.8 KiB per 1 KiB envelope).
    pub segment_envelopes: u64,
}

impl SledOptions {
    /// Buckets of a seventh of `retention` (a day at the default week), at least a second
    /// and at most a day; a 64 MiB cache.
    pub fn for_retention(retention: Duration) -> Self {
        Self {
            bucket: (retention / 7).clamp(Duration::from_secs(1), Duration::from_secs(86_400)),
            cache_bytes: 64 * 1024 * 1024,
            segment_envelopes: 100_000,
        }
    }
}

impl Default for SledOptions {
    fn default() -> Self {
        Self::for_retention(Duration::from_secs(7 * 86_400))
    }
}

/// The sled implementation of [`QueueStore`].
#[derive(Debug, Clone)]
pub struct SledQueue {
    buckets: Buckets,
    writes: std_mpsc::Sender<Write>,
    totals: Arc<Totals>,
}

impl SledQueue {
    /// Open (or create) the store under `dir` with default options and start its committer
    /// thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, SledOptions::default())
    }

    /// Open (or create) the store under `dir` and start its committer thread. Reads only
    /// the per-bucket usage records, not the envelopes: opening costs the same with a
    /// million envelopes queued as with none (sled's own recovery aside).
    pub fn open_with(dir: &Path, options: SledOptions) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_bytes)
            .open()?;
        let db_file = dir.join("db");
        let file = std::fs::File::open(&db_file).map_err(|source| StoreError::Io {
            path: db_file.clone(),
            source,
        })?;
        let bucket_ms = u64::try_from(options.bucket.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut committer = Committer {
            db: db.clone(),
            file,
            path: db_file,
            bucket_ms,
            buckets: Arc::default(),
            usage: HashMap::new(),
            bucket_usage: HashMap::new(),
            segment_envelopes: options.segment_envelopes.max(1),
            filled: HashMap::new(),
            last_ms: 0,
            totals: Arc::default(),
        };
        for name in db.tree_names() {
            let Some((start, end)) = parse_bucket_name(&name) else {
                continue;
            };
            let tree = db.open_tree(&name)?;
            let mut usage = HashMap::new();
            for item in tree.scan_prefix(b"u") {
                let (key, value) = item?;
                if let (Some(recipient), Some(u)) = (
                    key.get(1..33).and_then(|r| <Fingerprint>::try_from(r).ok()),
                    parse_usage(&value),
                ) {
                    usage.insert(recipient, u);
                }
            }
            committer.add_usage(&usage, 1);
            committer
                .filled
                .insert(start, usage.values().map(|u| u.0).sum());
            committer.bucket_usage.insert(start, usage);
            committer.last_ms = committer.last_ms.max(start);
            write_lock(&committer.buckets).insert(start, Bucket { end, tree });
        }
        committer.migrate_unbucketed()?;
        let (writes, rx) = std_mpsc::channel();
        let (synced, applied) = std_mpsc::channel();
        let (buckets, totals) = (committer.buckets.clone(), committer.totals.clone());
        let io_error = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        let file = committer.file.try_clone().map_err(io_error)?;
        let path = committer.path.clone();
        std::thread::Builder::new()
            .name("queue-syncer".into())
            .spawn(move || syncer(file, path, applied))
            .map_err(io_error)?;
        std::thread::Builder::new()
            .name("queue-committer".into())
            .spawn(move || committer.run(rx, synced))
            .map_err(io_error)?;
        Ok(Self {
            buckets,
            writes,
            totals,
        })
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let (done, answer) = oneshot::channel();
        self.writes
            .send(make(done))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn read_lock(buckets: &Buckets) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Bucket>> {
    buckets.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock(buckets: &Buckets) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, Bucket>> {
    buckets.write().unwrap_or_else(|p| p.into_inner())
}

/// The one thread that writes: group commit.
struct Committer {
    db: sled::Db,
    file: std::fs::File,
    path: PathBuf,
    bucket_ms: u64,
    buckets: Buckets,
    /// Per recipient, over all buckets (for quotas).
    usage: HashMap<Fingerprint, (u64, u64)>,
    /// Per bucket (by start) and recipient: what its `u` records say.
    bucket_usage: HashMap<u64, HashMap<Fingerprint, (u64, u64)>>,
    /// See [`SledOptions::segment_envelopes`].
    segment_envelopes: u64,
    /// Envelopes stored in each bucket (queued at open, plus stored since).
    filled: HashMap<u64, u64>,
    /// The latest stored-at time given to an envelope.
    last_ms: u64,
    totals: Arc<Totals>,
}

/// A group applied and flushed by the committer, waiting for an fdatasync to be answered.
struct Applied {
    pending: Vec<Write>,
    outcomes: Vec<Result<u64, StoreError>>,
    /// Envelopes that went with dropped buckets (added to the retention answer).
    dropped: u64,
}

/// The second stage of the group commit: one fdatasync for every group applied since the
/// last, then their answers. Runs beside the committer, so applying the next group and
/// syncing this one overlap.
fn syncer(file: std::fs::File, path: PathBuf, rx: std_mpsc::Receiver<Applied>) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        while let Ok(more) = rx.try_recv() {
            groups.push(more);
        }
        if let Err(e) = file.sync_data() {
            tracing::error!(path = %path.display(), error = %e, "the queue store cannot make writes durable; stopping the mailbox");
            std::process::exit(70);
        }
        for Applied {
            pending,
            outcomes,
            dropped,
        } in groups
        {
            for (write, outcome) in pending.into_iter().zip(outcomes) {
                // A requester that went away does not need its answer.
                match write {
                    Write::Store { done, .. } => {
                        let _ = done.send(outcome.map(|n| match n {
                            1 => Stored::New,
                            2 => Stored::OverQuota,
                            _ => Stored::Duplicate,
                        }));
                    }
                    Write::Expire { done, .. } => {
                        let _ = done.send(outcome.map(|n| n + dropped));
                    }
                    Write::Ack { done, .. } => {
                        let _ = done.send(outcome);
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
fn reclaim(collections: usize) {
    for _ in 0..collections {
        crossbeam_epoch::pin().flush();
    }
}

/// Collections after each group commit: up to ~8,000 deferred frees, more than a group
/// makes. With them three 5-minute soaks ended within 5% of their RSS at minute 1.
const GROUP_COLLECTIONS: usize = 16;

/// Collections after a dropped tree: ~2,000,000 deferred frees (a tree of
/// [`SledOptions::segment_envelopes`] envelopes defers far fewer).
const DROP_COLLECTIONS: usize = 4_000;

/// How many retention deletions (in a bucket only partly expired) go in one batch.
const EXPIRE_CHUNK: usize = 10_000;

/// Changes planned in one group commit.
#[derive(Default)]
struct Plan {
    /// One batch per bucket (by start): each is atomic, with its own usage records.
    batches: BTreeMap<u64, sled::Batch>,
    /// Usage change per bucket and recipient.
    usage: HashMap<u64, HashMap<Fingerprint, (i64, i64)>>,
    new_ids: HashSet<MessageId>,
    deleted: HashSet<(u64, Vec<u8>)>,
    /// Buckets wholly expired: dropped after the batches are durable.
    drop: Vec<u64>,
}

impl Plan {
    fn batch(&mut self, bucket: u64) -> &mut sled::Batch {
        self.batches.entry(bucket).or_default()
    }

    fn change(&mut self, bucket: u64, recipient: Fingerprint, count: i64, bytes: u64) {
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
    fn run(mut self, rx: std_mpsc::Receiver<Write>, synced: std_mpsc::Sender<Applied>) {
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
    fn add_usage(&mut self, usage: &HashMap<Fingerprint, (u64, u64)>, sign: i64) {
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
    fn bucket_for(&mut self, ms: u64) -> Result<(u64, sled::Tree), StoreError> {
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
    fn open_bucket(&self, start: u64, end: u64) -> Result<sled::Tree, StoreError> {
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

    fn commit(&mut self, pending: Vec<Write>, synced: &std_mpsc::Sender<Applied>) {
        let mut plan = Plan::default();
        let mut outcomes: Vec<Result<u64, StoreError>> = Vec::with_capacity(pending.len());
        for write in &pending {
            let outcome = match write {
                Write::Store {
                    incoming, quota, ..
                } => self.plan_store(incoming, *quota, &mut plan),
                Write::Ack { recipient, ids, .. } => self.plan_ack(recipient, ids, &mut plan),
                Write::Expire { cutoff_ms, .. } => self.plan_expire(*cutoff_ms, &mut plan),
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
        let applied = self.apply_and_flush(std::mem::take(&mut plan.batches));
        if let Err(e) = &applied {
            // The batch may be visible in the tree without being on disk, and the quota
            // figures no longer match it: answering on would promise what is not kept. Stop;
            // a restart reopens the store from what is durable.
            tracing::error!(error = %e, "the queue store cannot make writes durable; stopping the mailbox");
            for write in pending {
                match write {
                    Write::Store { done, .. } => {
                        let _ = done.send(Err(StoreError::Closed));
                    }
                    Write::Ack { done, .. } | Write::Expire { done, .. } => {
                        let _ = done.send(Err(StoreError::Closed));
                    }
                }
            }
            std::process::exit(70);
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
        // sync fails, the process stops before anyone hears of either).
        let _ = synced.send(Applied {
            pending,
            outcomes,
            dropped,
        });
    }

    /// Apply the batches and flush sled (which survives a process crash, not a power loss:
    /// the fdatasync that makes it durable is the syncer's).
    fn apply_and_flush(&self, batches: BTreeMap<u64, sled::Batch>) -> Result<(), String> {
        let buckets = read_lock(&self.buckets);
        for (start, batch) in batches {
            let bucket = buckets
                .get(&start)
                .ok_or_else(|| format!("bucket {start} vanished"))?;
            bucket.tree.apply_batch(batch).map_err(|e| e.to_string())?;
        }
        drop(buckets);
        self.db.flush().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Drop a wholly expired bucket: one tree, whatever it holds. Returns how many queued
    /// envelopes went with it.
    fn drop_bucket(&mut self, start: u64) -> Result<u64, StoreError> {
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
    fn find_id(&self, id: &MessageId) -> Result<Option<(u64, sled::Tree, IdMeta)>, StoreError> {
        let key = id_key(id);
        for (&start, bucket) in read_lock(&self.buckets).iter().rev() {
            if let Some(meta) = bucket.tree.get(&key)? {
                return Ok(IdMeta::parse(&meta).map(|m| (start, bucket.tree.clone(), m)));
            }
        }
        Ok(None)
    }

    /// 0 duplicate, 1 new, 2 over quota.
    fn plan_store(
        &mut self,
        incoming: &Incoming,
        quota: Quota,
        plan: &mut Plan,
    ) -> Result<u64, StoreError> {
        if plan.new_ids.contains(&incoming.id) || self.find_id(&incoming.id)?.is_some() {
            return Ok(0);
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
            return Ok(2);
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
        Ok(1)
    }

    fn plan_ack(
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
    fn plan_expire(&self, cutoff_ms: u64, plan: &mut Plan) -> Result<u64, StoreError> {
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

    /// Move entries of the first layout (everything in the default tree) into buckets.
    fn migrate_unbucketed(&mut self) -> Result<(), StoreError> {
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
            self.apply_and_flush(std::mem::take(&mut plan.batches))
                .and_then(|()| self.file.sync_data().map_err(|e| e.to_string()))
                .map_err(|e| StoreError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(e),
                })?;
            self.db.apply_batch(old)?;
            self.db.flush()?;
        }
        tracing::info!(moved, "moved queued envelopes into time buckets");
        Ok(())
    }
}

fn add_signed(counter: &AtomicU64, delta: i64) {
    if delta >= 0 {
        counter.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
    } else {
        counter.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

fn pull_from<'a>(
    values: impl Iterator<Item = Result<Vec<u8>, StoreError>> + 'a,
    max_count: usize,
    max_bytes: usize,
) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for value in values {
        let value = value?;
        if out.len() >= max_count || (bytes + value.len() > max_bytes && !out.is_empty()) {
            return Ok((out, true));
        }
        bytes += value.len();
        out.push(value);
    }
    Ok((out, false))
}

impl QueueStore for SledQueue {
    async fn store(&self, incoming: Incoming, quota: Quota) -> Result<Stored, StoreError> {
        self.submit(|done| Write::Store {
            incoming,
            quota,
            done,
        })
        .await
    }

    fn pull(
        &self,
        recipient: &Fingerprint,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let prefix = [b"q".as_slice(), recipient.as_ref()].concat();
        // Held while reading: the committer drops a bucket only under the write lock.
        let buckets = read_lock(&self.buckets);
        let values = buckets.values().flat_map(|bucket| {
            bucket
                .tree
                .scan_prefix(&prefix)
                .map(|item| item.map(|(_, v)| v.to_vec()).map_err(StoreError::from))
        });
        pull_from(values, max_count, max_bytes)
    }

    async fn ack(&self, recipient: Fingerprint, ids: Vec<MessageId>) -> Result<u64, StoreError> {
        self.submit(|done| Write::Ack {
            recipient,
            ids,
            done,
        })
        .await
    }

    async fn expire(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = self
                .submit(|done| Write::Expire { cutoff_ms, done })
                .await?;
            total += n;
            // A full chunk may have left more behind.
            let end = time_key(cutoff_ms, &MessageId([0; 16]));
            let more = read_lock(&self.buckets)
                .range(..cutoff_ms)
                .any(|(_, b)| b.tree.range(b"t".to_vec()..end.clone()).next().is_some());
            if !more {
                return Ok(total);
            }
        }
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            envelopes: self.totals.envelopes.load(Ordering::Relaxed),
            bytes: self.totals.bytes.load(Ordering::Relaxed),
        }
    }
}

/// An in-memory [`QueueStore`] with the same semantics, for tests.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    queues: HashMap<Fingerprint, BTreeMap<u64, Vec<u8>>>,
    ids: HashMap<MessageId, (Fingerprint, u64, u64)>,
    next_seq: u64,
}

impl MemoryQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl QueueStore for MemoryQueue {
    async fn store(&self, incoming: Incoming, quota: Quota) -> Result<Stored, StoreError> {
        let mut m = self.lock();
        if m.ids.contains_key(&incoming.id) {
            return Ok(Stored::Duplicate);
        }
        let queue = m.queues.entry(incoming.recipient).or_default();
        let count = queue.len() as u64 + 1;
        let bytes: u64 =
            queue.values().map(|v| v.len() as u64).sum::<u64>() + incoming.envelope.len() as u64;
        if count > quota.envelopes || bytes > quota.bytes {
            return Ok(Stored::OverQuota);
        }
        m.next_seq += 1;
        let seq = m.next_seq;
        m.queues
            .entry(incoming.recipient)
            .or_default()
            .insert(seq, incoming.envelope);
        m.ids
            .insert(incoming.id, (incoming.recipient, seq, incoming.now_ms));
        Ok(Stored::New)
    }

    fn pull(
        &self,
        recipient: &Fingerprint,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let m = self.lock();
        let values: Vec<Vec<u8>> = m
            .queues
            .get(recipient)
            .map(|q| q.values().cloned().collect())
            .unwrap_or_default();
        pull_from(values.into_iter().map(Ok), max_count, max_bytes)
    }

    async fn ack(&self, recipient: Fingerprint, ids: Vec<MessageId>) -> Result<u64, StoreError> {
        let mut m = self.lock();
        let mut count = 0;
        for id in ids {
            if let Some(&(owner, seq, _)) = m.ids.get(&id)
                && owner == recipient
                && m.queues
                    .get_mut(&recipient)
                    .and_then(|q| q.remove(&seq))
                    .is_some()
            {
                m.ids.remove(&id);
                count += 1;
            }
        }
        Ok(count)
    }

    async fn expire(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let mut m = self.lock();
        let old: Vec<(MessageId, Fingerprint, u64)> = m
            .ids
            .iter()
            .filter(|(_, (_, _, stored))| *stored < cutoff_ms)
            .map(|(id, (r, seq, _))| (*id, *r, *seq))
            .collect();
        let mut expired = 0;
        for (id, recipient, seq) in old {
            m.ids.remove(&id);
            if m.queues
                .get_mut(&recipient)
                .and_then(|q| q.remove(&seq))
                .is_some()
            {
                expired += 1;
            }
        }
        Ok(expired)
    }

    fn stats(&self) -> QueueStats {
        let m = self.lock();
        let mut stats = QueueStats::default();
        for q in m.queues.values() {
            stats.envelopes += q.len() as u64;
            stats.bytes += q.values().map(|v| v.len() as u64).sum::<u64>();
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_layout_is_pinned() {
        let key = queue_key(&Fingerprint([0xaa; 32]), 0x0102);
        assert_eq!(key.len(), 41);
        assert_eq!(key[0], b'q');
        assert_eq!(&key[1..33], &[0xaa; 32]);
        assert_eq!(&key[33..], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            id_key(&MessageId([0xbb; 16])),
            [b"i".as_slice(), &[0xbb; 16]].concat()
        );
        let t = time_key(0x0a0b, &MessageId([0xcc; 16]));
        assert_eq!(t.len(), 25);
        assert_eq!(&t[..9], &[b't', 0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        assert_eq!(&t[9..], &[0xcc; 16]);
        let meta = IdMeta {
            recipient: Fingerprint([1; 32]),
            seq: 5,
            stored_ms: 7,
            len: 9,
        };
        let bytes = meta.to_bytes();
        assert_eq!(bytes.len(), 56);
        assert_eq!(IdMeta::parse(&bytes), Some(meta));
        assert_eq!(IdMeta::parse(&bytes[..55]), None);
        assert_eq!(
            usage_key(&Fingerprint([2; 32])),
            [b"u".as_slice(), &[2; 32]].concat()
        );
        assert_eq!(parse_usage(&usage_bytes((3, 4))), Some((3, 4)));
        let name = bucket_name(0x10, 0x20);
        assert_eq!(name.len(), 17);
        assert_eq!(parse_bucket_name(&name), Some((0x10, 0x20)));
        assert_eq!(parse_bucket_name(b"__sled__default"), None);
    }

    fn env(recipient: Fingerprint, id: u8, now_ms: u64, body: &[u8]) -> Incoming {
        Incoming {
            recipient,
            id: MessageId([id; 16]),
            envelope: body.to_vec(),
            now_ms,
        }
    }

    /// The contract every engine keeps.
    async fn semantics<S: QueueStore>(q: S) {
        let bob = Fingerprint([2u8; 32]);
        let carol = Fingerprint([3u8; 32]);
        let open = Quota::UNLIMITED;
        assert_eq!(
            q.store(env(bob, 1, 100, b"one"), open).await.unwrap(),
            Stored::New
        );
        assert_eq!(
            q.store(env(bob, 2, 200, b"two"), open).await.unwrap(),
            Stored::New
        );
        assert_eq!(
            q.store(env(bob, 1, 300, b"one"), open).await.unwrap(),
            Stored::Duplicate
        );
        assert_eq!(
            q.stats(),
            QueueStats {
                envelopes: 2,
                bytes: 6
            }
        );
        assert_eq!(
            q.pull(&bob, 10, 1 << 20).unwrap(),
            (vec![b"one".to_vec(), b"two".to_vec()], false)
        );
        assert_eq!(
            q.pull(&bob, 1, 1 << 20).unwrap(),
            (vec![b"one".to_vec()], true)
        );
        assert_eq!(
            q.pull(&bob, 10, 4).unwrap(),
            (vec![b"one".to_vec()], true),
            "byte bound"
        );
        assert_eq!(
            q.pull(&bob, 10, 1).unwrap(),
            (vec![b"one".to_vec()], true),
            "at least one"
        );
        assert_eq!(q.pull(&carol, 10, 1 << 20).unwrap(), (vec![], false));
        // carol cannot ack bob's envelopes
        assert_eq!(q.ack(carol, vec![MessageId([1; 16])]).await.unwrap(), 0);
        assert_eq!(
            q.ack(bob, vec![MessageId([1; 16]), MessageId([1; 16])])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            q.ack(bob, vec![MessageId([1; 16])]).await.unwrap(),
            0,
            "idempotent"
        );
        assert_eq!(
            q.pull(&bob, 10, 1 << 20).unwrap(),
            (vec![b"two".to_vec()], false)
        );
        // forgotten once acknowledged: a late retry is stored again (and acknowledged again)
        assert_eq!(
            q.store(env(bob, 1, 400, b"one"), open).await.unwrap(),
            Stored::New
        );
        assert_eq!(q.ack(bob, vec![MessageId([1; 16])]).await.unwrap(), 1);
        // quota: two envelopes at most, counting what is queued (one now)
        let quota = Quota {
            envelopes: 2,
            bytes: 1 << 20,
        };
        assert_eq!(
            q.store(env(bob, 3, 500, b"three"), quota).await.unwrap(),
            Stored::New
        );
        assert_eq!(
            q.store(env(bob, 4, 500, b"four"), quota).await.unwrap(),
            Stored::OverQuota
        );
        let tight = Quota {
            envelopes: 100,
            bytes: 10,
        };
        assert_eq!(
            q.store(env(carol, 5, 500, b"0123456789x"), tight)
                .await
                .unwrap(),
            Stored::OverQuota
        );
        assert_eq!(
            q.store(env(carol, 5, 500, b"0123456789"), tight)
                .await
                .unwrap(),
            Stored::New
        );
        // retention: everything stored before 250 goes, and its id is forgotten
        assert_eq!(
            q.expire(250).await.unwrap(),
            1,
            "only 'two' was still queued"
        );
        assert_eq!(
            q.pull(&bob, 10, 1 << 20).unwrap(),
            (vec![b"three".to_vec()], false)
        );
        assert_eq!(
            q.store(env(bob, 1, 600, b"one"), open).await.unwrap(),
            Stored::New
        );
        assert_eq!(
            q.stats(),
            QueueStats {
                envelopes: 3,
                bytes: 18
            }
        );
    }

    #[tokio::test]
    async fn sled_queue_semantics() {
        let dir = tempfile::tempdir().unwrap();
        semantics(SledQueue::open(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn memory_queue_semantics() {
        semantics(MemoryQueue::default()).await;
    }

    #[tokio::test]
    async fn sled_queue_reopens_with_its_usage() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = SledQueue::open(dir.path()).unwrap();
            q.store(env(Fingerprint([1; 32]), 1, 1, b"abc"), Quota::UNLIMITED)
                .await
                .unwrap();
            q.store(env(Fingerprint([1; 32]), 2, 1, b"de"), Quota::UNLIMITED)
                .await
                .unwrap();
        }
        // The committer thread holds the db until its channel closes.
        std::thread::sleep(Duration::from_millis(100));
        let q = SledQueue::open(dir.path()).unwrap();
        assert_eq!(
            q.stats(),
            QueueStats {
                envelopes: 2,
                bytes: 5
            }
        );
        let quota = Quota {
            envelopes: 2,
            bytes: 100,
        };
        assert_eq!(
            q.store(env(Fingerprint([1; 32]), 3, 1, b"f"), quota)
                .await
                .unwrap(),
            Stored::OverQuota
        );
    }

    fn one_second_buckets() -> SledOptions {
        SledOptions {
            bucket: Duration::from_secs(1),
            cache_bytes: 1 << 20,
            segment_envelopes: 100_000,
        }
    }

    #[tokio::test]
    async fn retention_drops_whole_buckets_and_trims_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let q = SledQueue::open_with(dir.path(), one_second_buckets()).unwrap();
        let bob = Fingerprint([2u8; 32]);
        // Buckets [0, 1000), [1000, 2000), [5000, 6000).
        for (id, at) in [(1u8, 10u64), (2, 900), (3, 1100), (4, 1900), (5, 5500)] {
            assert_eq!(
                q.store(env(bob, id, at, &[id; 10]), Quota::UNLIMITED)
                    .await
                    .unwrap(),
                Stored::New
            );
        }
        assert_eq!(read_lock(&q.buckets).len(), 3);
        assert_eq!(q.ack(bob, vec![MessageId([2; 16])]).await.unwrap(), 1);
        // [0, 1000) goes whole (one envelope still queued in it); 1100 is trimmed from
        // [1000, 2000).
        assert_eq!(q.expire(1500).await.unwrap(), 2);
        assert_eq!(read_lock(&q.buckets).len(), 2);
        assert_eq!(
            q.pull(&bob, 10, 1 << 20).unwrap(),
            (vec![vec![4; 10], vec![5; 10]], false)
        );
        assert_eq!(
            q.stats(),
            QueueStats {
                envelopes: 2,
                bytes: 20
            }
        );
        // Expired ids are forgotten; kept ones are still duplicates.
        assert_eq!(
            q.store(env(bob, 1, 5600, b"again"), Quota::UNLIMITED)
                .await
                .unwrap(),
            Stored::New
        );
        assert_eq!(
            q.store(env(bob, 4, 5600, b"again"), Quota::UNLIMITED)
                .await
                .unwrap(),
            Stored::Duplicate
        );
        drop(q);
        std::thread::sleep(Duration::from_millis(100));
        let q = SledQueue::open_with(dir.path(), one_second_buckets()).unwrap();
        assert_eq!(
            q.stats(),
            QueueStats {
                envelopes: 3,
                bytes: 25
            },
            "usage records survive a reopen"
        );
        assert_eq!(q.expire(10_000).await.unwrap(), 3);
        assert_eq!(q.stats(), QueueStats::default());
        assert!(read_lock(&q.buckets).is_empty());
    }

    #[tokio::test]
    async fn a_full_bucket_goes_on_in_segments_that_retention_drops() {
        let dir = tempfile::tempdir().unwrap();
        let options = SledOptions {
            bucket: Duration::from_secs(1),
            cache_bytes: 1 << 20,
            segment_envelopes: 3,
        };
        let q = SledQueue::open_with(dir.path(), options).unwrap();
        let bob = Fingerprint([2u8; 32]);
        for id in 1..=7u8 {
            q.store(
                env(bob, id, 100 + u64::from(id), &[id; 4]),
                Quota::UNLIMITED,
            )
            .await
            .unwrap();
        }
        assert_eq!(read_lock(&q.buckets).len(), 3, "3 + 3 + 1");
        // Within one millisecond a full segment takes the rest, so order holds.
        for id in 8..=9u8 {
            q.store(env(bob, id, 107, &[id; 4]), Quota::UNLIMITED)
                .await
                .unwrap();
        }
        assert_eq!(read_lock(&q.buckets).len(), 3);
        let (all, more) = q.pull(&bob, 100, 1 << 20).unwrap();
        assert!(!more);
        assert_eq!(all, (1..=9u8).map(|i| vec![i; 4]).collect::<Vec<_>>());
        assert_eq!(
            q.store(env(bob, 2, 200, b"x"), Quota::UNLIMITED)
                .await
                .unwrap(),
            Stored::Duplicate,
            "ids are found in older segments"
        );
        assert_eq!(
            q.ack(bob, vec![MessageId([1; 16]), MessageId([7; 16])])
                .await
                .unwrap(),
            2
        );
        drop(q);
        std::thread::sleep(Duration::from_millis(100));
        let q = SledQueue::open_with(dir.path(), options).unwrap();
        assert_eq!(q.stats().envelopes, 7);
        assert_eq!(q.expire(2000).await.unwrap(), 7);
        assert!(read_lock(&q.buckets).is_empty());
        drop(q);
        std::thread::sleep(Duration::from_millis(100));
        let q = SledQueue::open_with(dir.path(), options).unwrap();
        assert_eq!(q.stats(), QueueStats::default(), "the drops are durable");
        assert!(read_lock(&q.buckets).is_empty());
    }

    #[tokio::test]
    async fn the_first_layout_is_moved_into_buckets() {
        let dir = tempfile::tempdir().unwrap();
        {
            // What the first version wrote: everything in the default tree.
            let db = sled::open(dir.path()).unwrap();
            let (bob, carol) = (Fingerprint([2u8; 32]), Fingerprint([3u8; 32]));
            for (recipient, id, seq, at, body, queued) in [
                (bob, 1u8, 1u64, 100u64, b"one".as_slice(), true),
                (bob, 2, 2, 200, b"two", false),
                (carol, 3, 3, 300, b"three", true),
            ] {
                let meta = [recipient.as_ref(), &seq.to_be_bytes(), &at.to_be_bytes()].concat();
                db.insert(id_key(&MessageId([id; 16])), meta).unwrap();
                db.insert(time_key(at, &MessageId([id; 16])), &[][..])
                    .unwrap();
                if queued {
                    db.insert(queue_key(&recipient, seq), body).unwrap();
                }
            }
            db.flush().unwrap();
        }
        let q = SledQueue::open_with(dir.path(), one_second_buckets()).unwrap();
        assert_eq!(
            q.stats(),
            QueueStats {
                envelopes: 2,
                bytes: 8
            }
        );
        assert_eq!(
            q.pull(&Fingerprint([2; 32]), 10, 1 << 20).unwrap(),
            (vec![b"one".to_vec()], false)
        );
        assert_eq!(
            q.store(env(Fingerprint([2; 32]), 2, 400, b"two"), Quota::UNLIMITED)
                .await
                .unwrap(),
            Stored::New,
            "acknowledged ids are not carried over"
        );
        assert_eq!(
            q.store(env(Fingerprint([2; 32]), 1, 400, b"one"), Quota::UNLIMITED)
                .await
                .unwrap(),
            Stored::Duplicate,
            "queued ids are carried over"
        );
        assert_eq!(
            q.ack(Fingerprint([3; 32]), vec![MessageId([3; 16])])
                .await
                .unwrap(),
            1
        );
        // "one" and the new "two".
        assert_eq!(q.expire(1000).await.unwrap(), 2);
        assert_eq!(q.stats(), QueueStats::default());
    }

    #[tokio::test]
    async fn many_concurrent_writers_are_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(SledQueue::open(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..64u8 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                q.store(env(Fingerprint([i; 32]), i, 1, &[i; 100]), Quota::UNLIMITED)
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Stored::New);
        }
        assert_eq!(q.stats().envelopes, 64);
    }
}
