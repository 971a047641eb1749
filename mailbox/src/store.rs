//! The envelope queue store.
//!
//! [`QueueStore`] is the narrow interface the service uses. [`SledQueue`] implements it on
//! sled; [`MemoryQueue`] in memory, for tests (a second persistent engine implements the same
//! trait without touching the service).
//!
//! # Sled key layout (one tree, so a batch is atomic)
//!
//! ```text
//! q | recipient (32) | sequence (u64 BE)   ->  envelope bytes            (the queue, oldest first)
//! i | message id (16)                      ->  recipient (32) | sequence (u64 BE) | stored at (u64 BE ms)
//! t | stored at (u64 BE ms) | message id   ->  empty                     (retention index)
//! ```
//!
//! The `i` entry outlives the queue entry until retention removes it: a retried SEND of an
//! acknowledged envelope is still recognised as a duplicate.
//!
//! # Durability
//!
//! sled 0.34's `flush` survives a process crash but not a power loss (it uses
//! sync_file_range), and concurrent flushes can deadlock (sled issue 1308). So one committer
//! thread takes every write waiting, applies them as one batch, flushes, fdatasyncs the
//! database file, and only then answers them all (group commit).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

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
    /// This message id was stored before (within the retention period); nothing was stored
    /// twice.
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
    pub recipient: [u8; 32],
    /// Its message id.
    pub id: [u8; 16],
    /// The bytes.
    pub envelope: Vec<u8>,
    /// Arrival time, ms since the epoch (retention counts from here).
    pub now_ms: u64,
}

/// The queue operations the service needs.
pub trait QueueStore: Send + Sync + 'static {
    /// Store an envelope unless its id was seen or the recipient is over `quota`; resolves
    /// once it is durable.
    fn store(
        &self,
        incoming: Incoming,
        quota: Quota,
    ) -> impl Future<Output = Result<Stored, StoreError>> + Send;
    /// The oldest envelopes of `recipient`, bounded in count and bytes (at least one if any
    /// is queued), and whether more wait.
    fn pull(
        &self,
        recipient: &[u8; 32],
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError>;
    /// Delete acknowledged envelopes of `recipient`; ids of other recipients are ignored.
    /// Returns how many were deleted.
    fn ack(
        &self,
        recipient: [u8; 32],
        ids: Vec<[u8; 16]>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Delete everything stored before `cutoff_ms` (queued envelopes and remembered ids).
    /// Returns how many queued envelopes expired.
    fn expire(&self, cutoff_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Queue figures (cheap).
    fn stats(&self) -> QueueStats;
}

fn queue_key(recipient: &[u8; 32], seq: u64) -> Vec<u8> {
    [b"q".as_slice(), recipient, &seq.to_be_bytes()].concat()
}

fn id_key(id: &[u8; 16]) -> Vec<u8> {
    [b"i".as_slice(), id].concat()
}

fn time_key(stored_ms: u64, id: &[u8; 16]) -> Vec<u8> {
    [b"t".as_slice(), &stored_ms.to_be_bytes(), id].concat()
}

/// `i` values: recipient, sequence, stored-at.
fn id_meta(recipient: &[u8; 32], seq: u64, stored_ms: u64) -> Vec<u8> {
    [
        recipient.as_slice(),
        &seq.to_be_bytes(),
        &stored_ms.to_be_bytes(),
    ]
    .concat()
}

fn parse_id_meta(meta: &[u8]) -> Option<([u8; 32], u64, u64)> {
    let recipient: [u8; 32] = meta.get(..32)?.try_into().ok()?;
    let seq = u64::from_be_bytes(meta.get(32..40)?.try_into().ok()?);
    let stored = u64::from_be_bytes(meta.get(40..48)?.try_into().ok()?);
    Some((recipient, seq, stored))
}

enum Write {
    Store {
        incoming: Incoming,
        quota: Quota,
        done: oneshot::Sender<Result<Stored, StoreError>>,
    },
    Ack {
        recipient: [u8; 32],
        ids: Vec<[u8; 16]>,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
    Expire {
        cutoff_ms: u64,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
}

/// Totals shared between the committer and readers.
#[derive(Debug, Default)]
struct Totals {
    envelopes: AtomicU64,
    bytes: AtomicU64,
}

/// The sled implementation of [`QueueStore`].
#[derive(Debug, Clone)]
pub struct SledQueue {
    tree: sled::Db,
    writes: std_mpsc::Sender<Write>,
    totals: Arc<Totals>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Write")
    }
}

impl SledQueue {
    /// Open (or create) the store under `dir` and start its committer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir)?;
        let db_file = dir.join("db");
        let file = std::fs::File::open(&db_file).map_err(|source| StoreError::Io {
            path: db_file.clone(),
            source,
        })?;
        // Per-recipient usage, for quotas; only the committer changes it.
        let mut usage: HashMap<[u8; 32], (u64, u64)> = HashMap::new();
        let totals = Arc::new(Totals::default());
        for item in db.scan_prefix(b"q") {
            let (key, value) = item?;
            if let Some(recipient) = key.get(1..33).and_then(|r| <[u8; 32]>::try_from(r).ok()) {
                let u = usage.entry(recipient).or_default();
                u.0 += 1;
                u.1 += value.len() as u64;
                totals.envelopes.fetch_add(1, Ordering::Relaxed);
                totals
                    .bytes
                    .fetch_add(value.len() as u64, Ordering::Relaxed);
            }
        }
        let (writes, rx) = std_mpsc::channel();
        let committer = Committer {
            db: db.clone(),
            file,
            path: db_file,
            usage,
            totals: totals.clone(),
        };
        std::thread::Builder::new()
            .name("queue-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self {
            tree: db,
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

/// The one thread that writes: group commit.
struct Committer {
    db: sled::Db,
    file: std::fs::File,
    path: PathBuf,
    usage: HashMap<[u8; 32], (u64, u64)>,
    totals: Arc<Totals>,
}

/// How many retention deletions go in one batch.
const EXPIRE_CHUNK: usize = 10_000;

impl Committer {
    fn run(mut self, rx: std_mpsc::Receiver<Write>) {
        while let Ok(first) = rx.recv() {
            let mut pending = vec![first];
            while let Ok(more) = rx.try_recv() {
                pending.push(more);
            }
            self.commit(pending);
        }
    }

    fn commit(&mut self, pending: Vec<Write>) {
        let mut batch = sled::Batch::default();
        // Changes to usage are applied only if the batch becomes durable.
        let mut usage_delta: HashMap<[u8; 32], (i64, i64)> = HashMap::new();
        let mut outcomes: Vec<Result<u64, StoreError>> = Vec::with_capacity(pending.len());
        let mut new_ids: HashSet<[u8; 16]> = HashSet::new();
        let mut deleted: HashSet<Vec<u8>> = HashSet::new();
        for write in &pending {
            let outcome = match write {
                Write::Store {
                    incoming, quota, ..
                } => self.plan_store(incoming, *quota, &mut batch, &mut usage_delta, &mut new_ids),
                Write::Ack { recipient, ids, .. } => {
                    self.plan_ack(recipient, ids, &mut batch, &mut usage_delta, &mut deleted)
                }
                Write::Expire { cutoff_ms, .. } => {
                    self.plan_expire(*cutoff_ms, &mut batch, &mut usage_delta, &mut deleted)
                }
            };
            outcomes.push(outcome);
        }
        let durable = self
            .db
            .apply_batch(batch)
            .and_then(|()| self.db.flush().map(|_| ()))
            .map_err(|e| e.to_string())
            .and_then(|()| self.file.sync_data().map_err(|e| e.to_string()));
        if let Err(e) = &durable {
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
        if durable.is_ok() {
            for (recipient, (dn, db)) in usage_delta {
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
        for (write, outcome) in pending.into_iter().zip(outcomes) {
            let outcome = match &durable {
                Err(e) => Err(StoreError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(e.clone()),
                }),
                Ok(()) => outcome,
            };
            // A requester that went away does not need its answer.
            match write {
                Write::Store { done, .. } => {
                    let _ = done.send(outcome.map(|n| match n {
                        1 => Stored::New,
                        2 => Stored::OverQuota,
                        _ => Stored::Duplicate,
                    }));
                }
                Write::Ack { done, .. } | Write::Expire { done, .. } => {
                    let _ = done.send(outcome);
                }
            }
        }
    }

    /// 0 duplicate, 1 new, 2 over quota.
    fn plan_store(
        &self,
        incoming: &Incoming,
        quota: Quota,
        batch: &mut sled::Batch,
        usage_delta: &mut HashMap<[u8; 32], (i64, i64)>,
        new_ids: &mut HashSet<[u8; 16]>,
    ) -> Result<u64, StoreError> {
        if new_ids.contains(&incoming.id) || self.db.contains_key(id_key(&incoming.id))? {
            return Ok(0);
        }
        let (n, b) = self
            .usage
            .get(&incoming.recipient)
            .copied()
            .unwrap_or_default();
        let (dn, db) = usage_delta
            .get(&incoming.recipient)
            .copied()
            .unwrap_or_default();
        let len = incoming.envelope.len() as u64;
        let count_after = n.saturating_add_signed(dn) + 1;
        let bytes_after = b.saturating_add_signed(db) + len;
        if count_after > quota.envelopes || bytes_after > quota.bytes {
            return Ok(2);
        }
        let seq = self.db.generate_id()?;
        new_ids.insert(incoming.id);
        batch.insert(
            queue_key(&incoming.recipient, seq),
            incoming.envelope.as_slice(),
        );
        batch.insert(
            id_key(&incoming.id),
            id_meta(&incoming.recipient, seq, incoming.now_ms),
        );
        batch.insert(time_key(incoming.now_ms, &incoming.id), &[][..]);
        let d = usage_delta.entry(incoming.recipient).or_default();
        d.0 += 1;
        d.1 += i64::try_from(len).unwrap_or(i64::MAX);
        Ok(1)
    }

    fn plan_ack(
        &self,
        recipient: &[u8; 32],
        ids: &[[u8; 16]],
        batch: &mut sled::Batch,
        usage_delta: &mut HashMap<[u8; 32], (i64, i64)>,
        deleted: &mut HashSet<Vec<u8>>,
    ) -> Result<u64, StoreError> {
        let mut count = 0;
        for id in ids {
            let Some(meta) = self.db.get(id_key(id))? else {
                continue;
            };
            let Some((owner, seq, _)) = parse_id_meta(&meta) else {
                continue;
            };
            if owner != *recipient {
                continue;
            }
            let key = queue_key(recipient, seq);
            if deleted.contains(&key) {
                continue;
            }
            if let Some(value) = self.db.get(&key)? {
                batch.remove(key.clone());
                deleted.insert(key);
                let d = usage_delta.entry(*recipient).or_default();
                d.0 -= 1;
                d.1 -= i64::try_from(value.len()).unwrap_or(i64::MAX);
                count += 1;
            }
        }
        Ok(count)
    }

    fn plan_expire(
        &self,
        cutoff_ms: u64,
        batch: &mut sled::Batch,
        usage_delta: &mut HashMap<[u8; 32], (i64, i64)>,
        deleted: &mut HashSet<Vec<u8>>,
    ) -> Result<u64, StoreError> {
        let mut expired = 0;
        let end = time_key(cutoff_ms, &[0; 16]);
        for item in self.db.range(b"t".to_vec()..end).take(EXPIRE_CHUNK) {
            let (tkey, _) = item?;
            batch.remove(tkey.clone());
            let Some(id) = tkey.get(9..25).and_then(|i| <[u8; 16]>::try_from(i).ok()) else {
                continue;
            };
            let Some(meta) = self.db.get(id_key(&id))? else {
                continue;
            };
            batch.remove(id_key(&id));
            let Some((recipient, seq, _)) = parse_id_meta(&meta) else {
                continue;
            };
            let key = queue_key(&recipient, seq);
            if deleted.contains(&key) {
                continue;
            }
            if let Some(value) = self.db.get(&key)? {
                batch.remove(key.clone());
                deleted.insert(key);
                let d = usage_delta.entry(recipient).or_default();
                d.0 -= 1;
                d.1 -= i64::try_from(value.len()).unwrap_or(i64::MAX);
                expired += 1;
            }
        }
        Ok(expired)
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
        recipient: &[u8; 32],
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let prefix = [b"q".as_slice(), recipient].concat();
        let values = self
            .tree
            .scan_prefix(prefix)
            .map(|item| item.map(|(_, v)| v.to_vec()).map_err(StoreError::from));
        pull_from(values, max_count, max_bytes)
    }

    async fn ack(&self, recipient: [u8; 32], ids: Vec<[u8; 16]>) -> Result<u64, StoreError> {
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
            let more = self
                .tree
                .range(b"t".to_vec()..time_key(cutoff_ms, &[0; 16]))
                .next()
                .is_some();
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
    queues: HashMap<[u8; 32], BTreeMap<u64, Vec<u8>>>,
    ids: HashMap<[u8; 16], ([u8; 32], u64, u64)>,
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
        recipient: &[u8; 32],
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

    async fn ack(&self, recipient: [u8; 32], ids: Vec<[u8; 16]>) -> Result<u64, StoreError> {
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
                count += 1;
            }
        }
        Ok(count)
    }

    async fn expire(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let mut m = self.lock();
        let old: Vec<([u8; 16], [u8; 32], u64)> = m
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
        let key = queue_key(&[0xaa; 32], 0x0102);
        assert_eq!(key.len(), 41);
        assert_eq!(key[0], b'q');
        assert_eq!(&key[1..33], &[0xaa; 32]);
        assert_eq!(&key[33..], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(id_key(&[0xbb; 16]), [b"i".as_slice(), &[0xbb; 16]].concat());
        let t = time_key(0x0a0b, &[0xcc; 16]);
        assert_eq!(t.len(), 25);
        assert_eq!(&t[..9], &[b't', 0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        assert_eq!(&t[9..], &[0xcc; 16]);
        let meta = id_meta(&[1; 32], 5, 7);
        assert_eq!(meta.len(), 48);
        assert_eq!(parse_id_meta(&meta), Some(([1; 32], 5, 7)));
        assert_eq!(parse_id_meta(&meta[..47]), None);
    }

    fn env(recipient: [u8; 32], id: u8, now_ms: u64, body: &[u8]) -> Incoming {
        Incoming {
            recipient,
            id: [id; 16],
            envelope: body.to_vec(),
            now_ms,
        }
    }

    /// The contract every engine keeps.
    async fn semantics<S: QueueStore>(q: S) {
        let bob = [2u8; 32];
        let carol = [3u8; 32];
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
        assert_eq!(q.ack(carol, vec![[1; 16]]).await.unwrap(), 0);
        assert_eq!(q.ack(bob, vec![[1; 16], [1; 16]]).await.unwrap(), 1);
        assert_eq!(q.ack(bob, vec![[1; 16]]).await.unwrap(), 0, "idempotent");
        assert_eq!(
            q.pull(&bob, 10, 1 << 20).unwrap(),
            (vec![b"two".to_vec()], false)
        );
        // still a duplicate after the ack
        assert_eq!(
            q.store(env(bob, 1, 400, b"one"), open).await.unwrap(),
            Stored::Duplicate
        );
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
            q.store(env([1; 32], 1, 1, b"abc"), Quota::UNLIMITED)
                .await
                .unwrap();
            q.store(env([1; 32], 2, 1, b"de"), Quota::UNLIMITED)
                .await
                .unwrap();
        }
        // The committer thread holds the db until its channel closes.
        std::thread::sleep(std::time::Duration::from_millis(100));
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
            q.store(env([1; 32], 3, 1, b"f"), quota).await.unwrap(),
            Stored::OverQuota
        );
    }

    #[tokio::test]
    async fn many_concurrent_writers_are_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(SledQueue::open(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..64u8 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                q.store(env([i; 32], i, 1, &[i; 100]), Quota::UNLIMITED)
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
