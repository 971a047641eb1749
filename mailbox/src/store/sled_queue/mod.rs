//! [`SledQueue`]: the queue store on sled, with group commit (see [`super`] for the layout
//! and the durability rules).

mod commit;
mod migrate;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, mpsc as std_mpsc};
use std::time::Duration;

use crypto::{Fingerprint, MessageId};
use tokio::sync::{oneshot, watch};

use super::keys::{parse_bucket_name, parse_usage, time_key};
use super::{Incoming, QueueStats, QueueStore, Quota, StoreError, Stored, pull_from};
use commit::{Committer, syncer};

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
    poison: Arc<Poison>,
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
            poison: Poison::new(),
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
        let poison = committer.poison.clone();
        let syncer_poison = poison.clone();
        std::thread::Builder::new()
            .name("queue-syncer".into())
            .spawn(move || syncer(file, path, applied, syncer_poison))
            .map_err(io_error)?;
        std::thread::Builder::new()
            .name("queue-committer".into())
            .spawn(move || committer.run(rx, synced))
            .map_err(io_error)?;
        Ok(Self {
            buckets,
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

    /// How many sled trees (bucket segments) the store holds: what a SEND's duplicate
    /// check, an ACK's id lookups and a PULL walk today (for the store-history figure).
    pub fn trees(&self) -> usize {
        read_lock(&self.buckets).len()
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

fn read_lock(buckets: &Buckets) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Bucket>> {
    buckets.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock(buckets: &Buckets) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, Bucket>> {
    buckets.write().unwrap_or_else(|p| p.into_inner())
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
        // What a poisoned store holds may not be what is on disk.
        self.poison.check()?;
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
