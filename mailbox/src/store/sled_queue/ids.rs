//! When each queued id was stored, in memory: one entry per queued envelope, so a new
//! id's duplicate check and an unknown ACK id cost no index read, whatever the store ever
//! held, and a known id's `t` entry (stored time, id: its metadata), so its partition and
//! its queue entry, is found with one read.
//!
//! At open the map is empty and every partition is *loading*: the committer reads its `t`
//! keys (stored time, id: no value is read) a chunk at a time, whenever no write waits, so
//! the mailbox serves PULLs at once. No index on disk finds an id by itself (a random-keyed
//! one cost a fifth of the SEND rate: docs/benchmarks.md), so the first group with a SEND
//! or an ACK loads what is left before it is planned.

use std::collections::{BTreeMap, HashMap};

use crypto::MessageId;

use super::super::StoreError;
use super::PartitionMap;

/// How many ids one loading step reads.
pub(super) const LOAD_CHUNK: usize = 10_000;

/// Where an id may be ([`IdIndex::place`]).
pub(super) enum Place {
    /// Stored at this time (ms).
    Known(u64),
    /// Not known: in none, or in one of the partitions still loading.
    Unknown,
}

/// The map from queued ids to their stored times.
#[derive(Debug, Default)]
pub(super) struct IdIndex {
    map: HashMap<MessageId, u64>,
    /// Partitions whose ids are not all in `map` yet, with the key to read on from.
    loading: BTreeMap<u64, Vec<u8>>,
    /// Second copies found while loading (by stored time and id): the committer deletes
    /// them. A group writes each partition in a batch of its own, so a power loss can keep
    /// one partition's half of a group (a resent id stored) without the other's (its first
    /// copy acknowledged).
    pub(super) strays: Vec<(u64, MessageId)>,
}

impl IdIndex {
    /// `start`'s ids are to be read from its database.
    pub(super) fn load(&mut self, start: u64) {
        self.loading.insert(start, b"t".to_vec());
    }

    pub(super) fn is_loading(&self) -> bool {
        !self.loading.is_empty()
    }

    pub(super) fn place(&self, id: &MessageId) -> Place {
        match self.map.get(id) {
            Some(&start) => Place::Known(start),
            None => Place::Unknown,
        }
    }

    pub(super) fn insert(&mut self, id: MessageId, stored_ms: u64) {
        self.map.insert(id, stored_ms);
    }

    pub(super) fn remove(&mut self, id: &MessageId) {
        self.map.remove(id);
    }

    /// Forget the ids of a deleted partition, `[start, end)`.
    pub(super) fn forget(&mut self, start: u64, end: u64) {
        self.loading.remove(&start);
        self.map.retain(|_, ms| !(start..end).contains(ms));
        if self.map.capacity() > 4 * self.map.len().max(1024) {
            self.map.shrink_to_fit();
        }
    }

    /// Read up to [`LOAD_CHUNK`] ids of the first partition still loading. Runs between
    /// group commits, so what it reads is what the batches applied so far left.
    pub(super) fn load_chunk(&mut self, partitions: &PartitionMap) -> Result<(), StoreError> {
        let Some((&start, from)) = self.loading.iter().next() else {
            return Ok(());
        };
        let Some(partition) = partitions.get(&start) else {
            self.loading.remove(&start);
            return Ok(());
        };
        let keys: Vec<sled::IVec> = partition
            .db
            .range(from.clone()..)
            .keys()
            .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(b"t")))
            .take(LOAD_CHUNK)
            .collect::<Result<_, _>>()?;
        for key in &keys {
            let (Some(ms), Some(id)) = (
                key.get(1..9)
                    .and_then(|m| m.try_into().ok())
                    .map(u64::from_be_bytes),
                key.get(9..25).and_then(|i| <MessageId>::try_from(i).ok()),
            ) else {
                continue;
            };
            match self.map.get(&id) {
                Some(&at) if at != ms => self.strays.push((ms, id)),
                Some(_) => {}
                None => {
                    self.map.insert(id, ms);
                }
            }
        }
        match keys.last() {
            Some(last) if keys.len() == LOAD_CHUNK => {
                self.loading.insert(start, [last.as_ref(), &[0]].concat());
            }
            _ => {
                self.loading.remove(&start);
                if self.loading.is_empty() {
                    tracing::info!(queued = self.map.len(), "the id index is loaded");
                }
            }
        }
        Ok(())
    }
}
