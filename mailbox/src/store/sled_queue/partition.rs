//! One time partition: a sled database in a directory of its own, and its database file
//! for fdatasync.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::super::StoreError;
use super::PartitionMap;

/// The partitions by start time, shared by the committer (which adds and deletes them) and
/// readers.
pub(super) type Partitions = Arc<RwLock<PartitionMap>>;

/// The database file of a partition, which the syncer fdatasyncs.
#[derive(Debug)]
pub(super) struct DbFile {
    pub(super) file: std::fs::File,
    pub(super) path: PathBuf,
}

impl DbFile {
    /// fdatasync, naming the file if it fails.
    pub(super) fn sync(&self) -> Result<(), String> {
        self.file
            .sync_data()
            .map_err(|e| format!("fdatasync of {}: {e}", self.path.display()))
    }
}

/// One partition: what was stored in `[start, end)`.
#[derive(Clone, Debug)]
pub(super) struct Partition {
    pub(super) end: u64,
    pub(super) db: sled::Db,
    pub(super) file: Arc<DbFile>,
    pub(super) dir: PathBuf,
}

impl Partition {
    /// Open (or create) the partition database in `dir`.
    pub(super) fn open(dir: &Path, end: u64, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // The committer flushes after each group; no background flusher thread.
            .flush_every_ms(None);
        let db = open_when_unlocked(&config)?;
        let path = dir.join("db");
        let file = std::fs::File::open(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            end,
            db,
            file: Arc::new(DbFile { file, path }),
            dir: dir.to_owned(),
        })
    }
}

/// How long an open waits for a file lock that the same process still holds.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Open `config`'s database, waiting up to [`LOCK_WAIT`] while its file lock is held.
///
/// sled's I/O pool can keep a just-dropped database (and its file lock) alive for a moment
/// after the last handle goes, so a store reopened in the same process (tests, a restart in
/// place) could be refused. Another process holding the store still gets the error, late.
pub(crate) fn open_when_unlocked(config: &sled::Config) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

pub(super) fn read_lock(partitions: &Partitions) -> std::sync::RwLockReadGuard<'_, PartitionMap> {
    partitions.read().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn write_lock(partitions: &Partitions) -> std::sync::RwLockWriteGuard<'_, PartitionMap> {
    partitions.write().unwrap_or_else(|p| p.into_inner())
}

/// sled frees what it replaces through epoch-based reclamation (crossbeam-epoch, whose
/// global collector this crate shares with sled), and a collection runs only a few hundred
/// deferred frees. Left to sled's own pace, the garbage in flight follows the write rate:
/// every insert clones a leaf, and the soak's RSS swung by up to 14% at ~13,000 SENDs/s. So
/// the committer collects after every group. Each collection runs up to 8 bags of 64
/// deferred frees; an idle one costs well under a microsecond.
pub(super) fn reclaim(collections: usize) {
    for _ in 0..collections {
        crossbeam_epoch::pin().flush();
    }
}

/// Collections after each group commit: up to ~8,000 deferred frees, more than a group
/// makes. With them three 5-minute soaks ended within 5% of their RSS at minute 1.
pub(super) const GROUP_COLLECTIONS: usize = 16;

/// The extension of a partition directory being deleted.
pub(super) const TRASH: &str = "deleted";

/// Delete a partition directory renamed for deletion (what is left of it is deleted at
/// the next start).
pub(super) fn remove_trash(trash: &Path) {
    if let Err(e) = std::fs::remove_dir_all(trash) {
        tracing::warn!(path = %trash.display(), error = %e, "cannot delete an expired partition yet");
    }
}

/// fsync a directory, so that the names in it are durable; a failure is logged (the file
/// systems this runs on journal their directories: this is belt and braces).
pub(super) fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(path = %dir.display(), error = %e, "cannot sync a directory");
    }
}
