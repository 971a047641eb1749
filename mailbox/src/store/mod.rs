//! The envelope queue store.
//!
//! [`QueueStore`] is the narrow interface the service uses. [`SledQueue`] implements it on
//! sled; [`MemoryQueue`] in memory, for tests (a second persistent engine implements the same
//! trait without touching the service).
//!
//! # Sled layout: time partitions
//!
//! Envelopes live in partitions under `<dir>/partitions/`, one sled database each, named
//! `<start>-<end>` (16 hex digits each, ms), holding what was stored in `[start, end)` (a
//! partition is a seventh of the retention period: a day by default). Retention deletes a
//! wholly expired partition as a directory (no page of it is read, so it costs the same
//! for a million envelopes as for one) and deletes one by one only in the partition the
//! cutoff falls in. In each partition:
//!
//! ```text
//! q | recipient (32) | sequence (u64 BE)   ->  envelope bytes   (the queue, oldest first)
//! t | stored at (u64 BE ms) | message id   ->  recipient | sequence | stored at | length | origin (16)
//! u | recipient (32)                       ->  count (u64 BE) | bytes (u64 BE) in this partition
//! o | origin (16)                          ->  count | bytes    (per sending address)
//! i | message id (16)                      ->  the `t` value    (earlier layout; migrated envelopes)
//! ```
//!
//! A write touches each partition with one atomic batch, usage records included. A
//! sequence is `stored at << 16 | n` (stored times never go back), so a recipient's queue
//! is its `q` entries partition by partition, and retention finds what is due in time
//! order (`t`). When each queued id was stored is kept in memory (one map entry per queued
//! envelope), so a new id's duplicate check costs no lookup and an ACK one read per id it
//! finds (its `t` entry, which names its `q` key), whatever the store ever held and however
//! many partitions there are. No new envelope gets an entry keyed by its id alone (only a
//! migrated one does): such keys are random, so each lands in another sled leaf that sled
//! then rewrites, and writing one cost a fifth of the SEND rate (docs/benchmarks.md). The map is read from the `t` keys after the store
//! opens, a chunk at a time while no write waits, so PULLs are served at once; the first
//! group with a SEND or an ACK loads the rest first (~1.4 s for a million queued
//! envelopes: ~14 s at the default cap of 10 million, within a client's 30 s request
//! timeout). Partitions written before keep the metadata in an `i` entry and leave the
//! `t` value empty; both are read. The change is one way: a binary from before this
//! layout, which loads its map from `i` keys, does not know the envelopes stored since
//! (its ACKs miss them, its retention leaves their `q` entries until the partition
//! expires), so a mailbox is not moved back to one.
//!
//! An ACK deletes every entry of the envelope: the mailbox keeps no record of what was
//! delivered, neither its bytes nor who received it when (sled's log keeps the bytes on
//! disk until it reuses the space, at the latest until the partition expires; the data
//! directory is 0700). So a SEND retried while the envelope is queued is a duplicate, and
//! one retried after the recipient acknowledged it is stored again; the recipient's node
//! knows the message id and only acknowledges it (a node must deduplicate anyway: an
//! untrusted mailbox can replay). Memory and disk follow what is queued, not what passed
//! through (docs/security.md, soak). A store of an earlier layout (one sled database in
//! `<dir>` itself: the first layout's default tree, or the time-bucket trees that followed)
//! is moved into partitions when opened.
//!
//! # Durability
//!
//! sled 0.34's `flush` survives a process crash but not a power loss (it uses
//! sync_file_range), and concurrent flushes can deadlock (sled issue 1308). So one committer
//! thread takes every write waiting, applies them as one batch per partition and flushes; a
//! syncer thread then fdatasyncs the database file of every partition touched, once for
//! every group flushed meanwhile, and only then answers them (group commit in two stages,
//! so applying one group overlaps syncing the last). If a write or a sync fails, the store
//! poisons itself: it answers that write, and every later one, with [`StoreError::Fatal`],
//! and [`SledQueue::failed`] resolves, so the binary stops (exit code 70). Nobody is told of
//! writes that might not be on disk.
//!
//! # Files
//!
//! - `keys.rs`: the key layout above, pinned by a test.
//! - `sled_queue/`: [`SledQueue`] (`mod.rs`), its partitions (`partition.rs`), the id map
//!   (`ids.rs`), its group commit (`commit.rs`, `syncer.rs`), retention (`expire.rs`) and
//!   the move from the earlier layouts (`migrate.rs`).
//! - `memory.rs`: [`MemoryQueue`].
//! - `device_keys/`: the other store, [`KeyStore`]: device certificates and prekeys for
//!   forward-secret sessions ([`MemoryKeys`], and `SledKeys` in `<data dir>/keys`).

#[cfg(feature = "server")]
mod any;
#[cfg(test)]
pub(crate) mod contract;
pub mod device_keys;
#[cfg(feature = "server")]
pub mod jetstream;
#[cfg(feature = "server")]
mod keys;
mod memory;
#[cfg(feature = "server")]
mod sled_queue;

#[cfg(feature = "server")]
pub use any::{AnyKeys, AnyQueue};
#[cfg(feature = "server")]
pub use device_keys::SledKeys;
pub use device_keys::{
    Claimed, KeyLimits, KeyStore, MemoryKeys, OwnerKeys, Publication, Published,
};
#[cfg(feature = "server")]
pub use jetstream::{JetStreamKeys, JetStreamQueue, NatsOptions};
pub use memory::MemoryQueue;
#[cfg(feature = "server")]
pub(crate) use sled_queue::open_when_unlocked;
#[cfg(feature = "server")]
pub use sled_queue::{Export, SledOptions, SledQueue};

use std::path::PathBuf;

use crypto::{Fingerprint, MessageId};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[cfg(feature = "server")]
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
    /// NATS JetStream failed or could not be reached (the clustered engines): the request
    /// can be retried.
    #[error("NATS: {0}")]
    Nats(String),
    /// The engine has no room for more (JetStream's storage limits, which stand for the
    /// disk of a cluster): the SEND is refused for now as `mailbox_full`.
    #[error("the store is full: {0}")]
    Full(String),
    /// The committer thread is gone (the store is shutting down).
    #[error("storage is shutting down")]
    Closed,
    /// A write or a sync failed: the store refuses everything from now on, because what it
    /// holds may not be what is on disk. The binary stops (exit code 70); a restart reopens
    /// the store from what is durable.
    #[error("storage failed and refuses further work until a restart: {0}")]
    Fatal(String),
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
    /// What the sending address has stored (live) is at its bound; nothing was stored.
    OriginFull,
}

/// Limits on one recipient's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Most envelopes.
    pub envelopes: u64,
    /// Most bytes.
    pub bytes: u64,
    /// Most live bytes stored from one sending address ([`Origin`]), to all recipients.
    pub origin_bytes: u64,
    /// Most envelopes stored from one sending address.
    pub origin_envelopes: u64,
}

impl Quota {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        envelopes: u64::MAX,
        bytes: u64::MAX,
        origin_bytes: u64::MAX,
        origin_envelopes: u64::MAX,
    };
}

/// Where an envelope came from, for the bound on what one sending address may store: an
/// IPv4 address (as its IPv4-mapped IPv6 form) or an IPv6 /64, as 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(pub [u8; 16]);

impl Origin {
    /// Envelopes of unknown origin (moved from a layout that did not record it).
    pub const UNKNOWN: Self = Self([0; 16]);
}

impl From<std::net::IpAddr> for Origin {
    /// The origin of an address key (`core::address_key`: an IPv4 address, or an IPv6
    /// address with its last 64 bits cleared); only the encoding is done here.
    fn from(key: std::net::IpAddr) -> Self {
        match key {
            std::net::IpAddr::V4(v4) => Self(v4.to_ipv6_mapped().octets()),
            std::net::IpAddr::V6(v6) => Self(v6.octets()),
        }
    }
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
    /// The sending address.
    pub origin: Origin,
    /// The bytes.
    pub envelope: Vec<u8>,
    /// Arrival time, ms since the epoch (retention counts from here).
    pub now_ms: u64,
}

/// The queue operations the service needs.
pub trait QueueStore: Send + Sync + 'static {
    /// Store an envelope unless an envelope with its id is queued, the recipient is over
    /// `quota` or its origin over `quota.origin_bytes` or `quota.origin_envelopes`;
    /// resolves once it is durable.
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
    ) -> impl Future<Output = Result<(Vec<Vec<u8>>, bool), StoreError>> + Send;
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

/// The oldest of `values`, at most `max_count` and `max_bytes` (but at least one), and
/// whether more are left.
pub(crate) fn pull_from<'a>(
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
