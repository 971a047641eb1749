//! [`SledQueue`]: the queue store on sled, in time partitions, with group commit (see
//! [`super`] for the layout and the durability rules).

mod commit;
mod expire;
mod export;
mod ids;
mod migrate;
mod partition;
mod syncer;
#[cfg(test)]
mod tests;

pub use export::Export;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::Duration;

use crypto::{Fingerprint, MessageId};
use tokio::sync::{oneshot, watch};

use super::keys::time_key;
use super::{Incoming, QueueStats, QueueStore, Quota, StoreError, Stored, pull_from};
use commit::Committer;
pub(crate) use partition::open_when_unlocked;
use partition::{Partition, Partitions, read_lock};
use syncer::syncer;

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

/// Figures shared between the committer and readers.
#[derive(Debug, Default)]
struct Totals {
    envelopes: AtomicU64,
    bytes: AtomicU64,
    /// Index reads (sled gets and scans) the store made to find envelopes (ACKs, PULLs,
    /// retention, second copies): the work per operation in the store-history figure.
    lookups: AtomicU64,
}

/// Set once a write or a sync failed: from then on the store answers everything with
/// [`StoreError::Fatal`], and [`SledQueue::failed`] resolves.
#[derive(Debug)]
struct Poison {
    reason: watch::Sender<Option<String>>,
}

impl Poison {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            reason: watch::Sender::new(None),
        })
    }

    /// Poison the store (the first reason is kept).
    fn set(&self, reason: String) {
        tracing::error!(%reason, "the queue store cannot make writes durable; stopping the mailbox");
        self.reason.send_if_modified(|r| {
            let first = r.is_none();
            if first {
                *r = Some(reason);
            }
            first
        });
    }

    /// `Err(Fatal)` once poisoned.
    fn check(&self) -> Result<(), StoreError> {
        match &*self.reason.borrow() {
            Some(reason) => Err(StoreError::Fatal(reason.clone())),
            None => Ok(()),
        }
    }
}

/// How the sled store is tuned.
#[derive(Clone, Copy, Debug)]
pub struct SledOptions {
    /// Width of a time partition (one sled database each); retention deletes whole
    /// partitions, so it should be a fraction of the retention period.
    pub bucket: Duration,
    /// sled's page cache per partition, bytes (sled's default is 1 GiB).
    pub cache_bytes: u64,
}

impl SledOptions {
    /// Partitions of a seventh of `retention` (a day at the default week), at least a
    /// second and at most a day; a 16 MiB cache each.
    pub fn for_retention(retention: Duration) -> Self {
        Self {
            bucket: (retention / 7).clamp(Duration::from_secs(1), Duration::from_secs(86_400)),
            cache_bytes: 16 * 1024 * 1024,
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
    partitions: Partitions,
    writes: std_mpsc::Sender<Write>,
    totals: Arc<Totals>,
    poison: Arc<Poison>,
}

impl SledQueue {
    /// Open (or create) the store under `dir` with default options and start its committer
    /// thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, SledOptions::default())
    }

    /// Open (or create) the store under `dir` and start its committer thread. Reads each
    /// partition's usage records, never an envelope (the id map loads afterwards, on the
    /// committer thread); moves a store of an earlier layout into partitions first.
    pub fn open_with(dir: &Path, options: SledOptions) -> Result<Self, StoreError> {
        let root = dir.join("partitions");
        std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            path: root.clone(),
            source,
        })?;
        let bucket_ms = u64::try_from(options.bucket.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut committer = Committer::new(root, bucket_ms, options.cache_bytes);
        committer.open_partitions()?;
        committer.migrate_earlier_layout(dir)?;
        let (writes, rx) = std_mpsc::channel();
        let (synced, applied) = std_mpsc::channel();
        let (partitions, totals) = (committer.partitions.clone(), committer.totals.clone());
        let io_error = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        let poison = committer.poison.clone();
        let syncer_poison = poison.clone();
        std::thread::Builder::new()
            .name("queue-syncer".into())
            .spawn(move || syncer(applied, syncer_poison))
            .map_err(io_error)?;
        std::thread::Builder::new()
            .name("queue-committer".into())
            .spawn(move || committer.run(rx, synced))
            .map_err(io_error)?;
        Ok(Self {
            partitions,
            writes,
            totals,
            poison,
        })
    }

    /// Resolves when the store is poisoned (a write or a sync failed), with the reason: the
    /// binary then stops with exit code 70.
    pub async fn failed(&self) -> String {
        let mut reason = self.poison.reason.subscribe();
        let seen = reason
            .wait_for(Option::is_some)
            .await
            .map(|r| r.clone().unwrap_or_default());
        match seen {
            Ok(reason) => reason,
            // The sender lives as long as `self`: unreachable, but never resolve falsely.
            Err(_) => std::future::pending().await,
        }
    }

    /// How many partitions (sled databases) the store holds: what a PULL walks (for the
    /// store-history figure; bounded by the retention period over the partition width).
    pub fn partitions(&self) -> usize {
        read_lock(&self.partitions).len()
    }

    /// Index reads (sled gets and scans) made so far to find envelopes (a SEND makes none).
    pub fn lookups(&self) -> u64 {
        self.totals.lookups.load(Ordering::Relaxed)
    }

    /// Poison the store as a failed write would (for tests of what follows).
    #[cfg(test)]
    fn poison_for_test(&self, reason: &str) {
        self.poison.set(reason.to_owned());
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        self.poison.check()?;
        let (done, answer) = oneshot::channel();
        self.writes
            .send(make(done))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
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

    async fn pull(
        &self,
        recipient: &Fingerprint,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        // What a poisoned store holds may not be what is on disk.
        self.poison.check()?;
        let prefix = [b"q".as_slice(), recipient.as_ref()].concat();
        // Held while reading: the committer deletes a partition only under the write lock.
        let partitions = read_lock(&self.partitions);
        let lookups = &self.totals.lookups;
        let values = partitions.values().flat_map(|partition| {
            lookups.fetch_add(1, Ordering::Relaxed);
            partition
                .db
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
            // A full chunk may have left more behind in the partition the cutoff falls in
            // (a partition wholly expired is gone, or left for the next pass if deleting
            // it failed).
            let end = time_key(cutoff_ms, &MessageId([0; 16]));
            let more = read_lock(&self.partitions)
                .range(..cutoff_ms)
                .filter(|(_, p)| p.end > cutoff_ms)
                .any(|(_, p)| p.db.range(b"t".to_vec()..end.clone()).next().is_some());
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

/// Usage (count, bytes) by key.
type UsageMap<K> = HashMap<K, (u64, u64)>;

/// The partitions by start time.
type PartitionMap = BTreeMap<u64, Partition>;
