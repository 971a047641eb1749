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
