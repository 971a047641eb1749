//! The engine interface ([`Kv`]: ordered keys, atomic durable batches) and its two engines:
//! [`SledKv`] on disk and [`MemoryKv`] for tests. A second persistent engine implements the
//! same trait without touching the service.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

/// A change set: puts (`Some`) and deletes (`None`), applied atomically.
pub type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Key-value pairs, as scans return them.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// An ordered key-value engine with atomic, durable batches.
pub trait Kv: Send + Sync + std::fmt::Debug + 'static {
    /// One value.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries under `prefix`, keys ascending.
    fn scan(&self, prefix: &[u8]) -> Result<Pairs, StoreError>;
    /// Up to `limit` entries under `prefix` with keys below `before` (all if `None`), keys
    /// descending.
    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError>;
    /// Apply a batch atomically; durable when this returns. Blocking.
    fn apply(&self, batch: Batch) -> Result<(), StoreError>;
    /// Apply a batch atomically, without waiting for it to be durable: a crash (of the
    /// process or the machine) may lose it, whole, but never a later durable batch without
    /// it. Only for changes whose loss redoes work (a resend) and loses nothing. Blocking.
    fn apply_lazily(&self, batch: Batch) -> Result<(), StoreError> {
        self.apply(batch)
    }
    /// A fresh number, greater than every earlier one.
    fn next_seq(&self) -> Result<u64, StoreError>;
}

/// [`Kv`] on sled. Writes are serialized (sled 0.34 deadlocks on concurrent flushes),
/// flushed, and then made safe against a power loss before they return: sled's flush on Linux
/// is `sync_file_range`, which survives a crash of the process but not of the machine, so the
/// database file is fdatasynced too. Syncs are grouped: one fdatasync covers every write
/// flushed before it started, so writers waiting together pay for one.
#[derive(Debug)]
pub struct SledKv {
    db: sled::Db,
    tree: sled::Tree,
    write: Mutex<()>,
    /// The database file (`<dir>/db`), to fdatasync.
    file: std::fs::File,
    path: std::path::PathBuf,
    /// Writes flushed so far (a generation number).
    flushed: AtomicU64,
    /// The last generation an fdatasync covered; held while syncing.
    synced: Mutex<u64>,
    /// fdatasyncs done (for tests and figures).
    syncs: AtomicU64,
}

impl SledKv {
    /// Open or create under `dir`. sled's I/O threads can keep a database that was just
    /// closed (and its file lock) alive for a moment, so a node reopened in the same
    /// process is given up to 2 s; another process holding the store still gets the error.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match sled::open(dir) {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => break other?,
            }
        };
        let tree = db.open_tree("node")?;
        let path = dir.join("db");
        let file = std::fs::File::open(&path).map_err(|source| StoreError::Sync {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            db,
            tree,
            write: Mutex::new(()),
            file,
            path,
            flushed: AtomicU64::new(0),
            synced: Mutex::new(0),
            syncs: AtomicU64::new(0),
        })
    }

    /// How many fdatasyncs this store has done.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Make every write flushed up to `generation` durable: one fdatasync, unless another
    /// writer's covered it meanwhile.
    fn sync(&self, generation: u64) -> Result<(), StoreError> {
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= generation {
            return Ok(());
        }
        let covered = self.flushed.load(Ordering::SeqCst);
        self.file.sync_data().map_err(|source| StoreError::Sync {
            path: self.path.clone(),
            source,
        })?;
        *synced = covered;
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The keys under `prefix` and below `before`: `prefix` up to the first key past every key
/// that starts with it (the prefix with its last byte below 0xff incremented, or no bound
/// if it is all 0xff), or `before` if that comes first.
fn prefix_range(prefix: &[u8], before: Option<&[u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let past_prefix = prefix.iter().rposition(|&b| b != 0xff).map(|i| {
        let mut end = prefix[..=i].to_vec();
        end[i] += 1;
        end
    });
    let end = match (past_prefix, before) {
        (Some(p), Some(b)) => Some(p.min(b.to_vec())),
        (Some(p), None) => Some(p),
        (None, b) => b.map(<[u8]>::to_vec),
    };
    let lower = Bound::Included(prefix.to_vec());
    match end {
        Some(end) if end.as_slice() <= prefix => (lower, Bound::Excluded(prefix.to_vec())),
        Some(end) => (lower, Bound::Excluded(end)),
        None => (lower, Bound::Unbounded),
    }
}

/// A sled batch of `batch`'s changes.
fn sled_batch(batch: Batch) -> sled::Batch {
    let mut b = sled::Batch::default();
    for (k, v) in batch {
        match v {
            Some(v) => b.insert(k, v),
            None => b.remove(k),
        }
    }
    b
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, prefix: &[u8]) -> Result<Pairs, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|item| Ok(item.map(|(k, v)| (k.to_vec(), v.to_vec()))?))
            .collect()
    }

    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError> {
        self.tree
            .range(prefix_range(prefix, before))
            .rev()
            .take(limit)
            .map(|item| Ok(item.map(|(k, v)| (k.to_vec(), v.to_vec()))?))
            .collect()
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let b = sled_batch(batch);
        let generation = {
            // A poisoned lock only means another writer panicked; sled itself is consistent.
            let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
            self.tree.apply_batch(b)?;
            self.db.flush()?;
            self.flushed.fetch_add(1, Ordering::SeqCst) + 1
        };
        self.sync(generation)
    }

    /// sled's log is written in order, so the next durable batch's flush carries this one
    /// too; otherwise sled's own flush (every 500 ms) writes it.
    fn apply_lazily(&self, batch: Batch) -> Result<(), StoreError> {
        let b = sled_batch(batch);
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        self.tree.apply_batch(b)?;
        Ok(())
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }
}

/// [`Kv`] in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    seq: AtomicU64,
}

impl MemoryKv {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Kv for MemoryKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map().get(key).cloned())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Pairs, StoreError> {
        Ok(self
            .map()
            .range(prefix_range(prefix, None))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError> {
        Ok(self
            .map()
            .range(prefix_range(prefix, before))
            .rev()
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let mut map = self.map();
        for (k, v) in batch {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }
}
