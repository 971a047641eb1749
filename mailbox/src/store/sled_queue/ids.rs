//! Which partition holds each queued id, in memory: one entry per queued envelope, so a
//! new id's duplicate check and an unknown ACK id cost no index read, whatever the store
//! ever held.
//!
//! At open the map is empty and every partition is *loading*: the committer reads its `i`
//! keys a chunk at a time, whenever no write waits and after each group commit, so the
//! mailbox serves at once. Until a partition is loaded, an id the map does not know is
//! looked up in it (one read per loading partition).

use std::collections::{BTreeMap, HashMap};

use crypto::MessageId;

use super::super::StoreError;
use super::PartitionMap;

/// How many ids one loading step reads.
pub(super) const LOAD_CHUNK: usize = 10_000;

/// Where an id may be ([`IdIndex::place`]).
pub(super) enum Place {
    /// In this partition.
    Known(u64),
    /// Not known: in none, or in one of the partitions still loading.
    Unknown,
}

/// The map from queued ids to partitions.
#[derive(Debug, Default)]
pub(super) struct IdIndex {
    map: HashMap<MessageId, u64>,
    /// Partitions whose ids are not all in `map` yet, with the key to read on from.
    loading: BTreeMap<u64, Vec<u8>>,
    /// Ids found in a second partition while loading (by partition): copies the committer
    /// deletes. A group writes each partition in a batch of its own, so a power loss can
    /// keep one partition's half of a group (a resent id stored) without the other's (its
    /// first copy acknowledged).
    pub(super) strays: Vec<(u64, MessageId)>,
}

impl IdIndex {
    /// `start`'s ids are to be read from its database.
    pub(super) fn load(&mut self, start: u64) {
        self.loading.insert(start, b"i".to_vec());
    }

    pub(super) fn is_loading(&self) -> bool {
        !self.loading.is_empty()
    }

    /// The partitions still loading, by start.
    pub(super) fn loading(&self) -> impl Iterator<Item = u64> + '_ {
        self.loading.keys().copied()
    }

    pub(super) fn place(&self, id: &MessageId) -> Place {
        match self.map.get(id) {
            Some(&start) => Place::Known(start),
            None => Place::Unknown,
        }
    }

    pub(super) fn insert(&mut self, id: MessageId, start: u64) {
        self.map.insert(id, start);
    }

    pub(super) fn remove(&mut self, id: &MessageId) {
        self.map.remove(id);
    }

    /// Forget a deleted partition's ids.
    pub(super) fn forget(&mut self, start: u64) {
        self.loading.remove(&start);
        self.map.retain(|_, p| *p != start);
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
            .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(b"i")))
            .take(LOAD_CHUNK)
            .collect::<Result<_, _>>()?;
        for key in &keys {
            if let Some(id) = key.get(1..17).and_then(|i| <MessageId>::try_from(i).ok()) {
                match self.map.get(&id) {
                    Some(&at) if at != start => self.strays.push((start, id)),
                    Some(_) => {}
                    None => {
                        self.map.insert(id, start);
                    }
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
