//! Reading every queued envelope out, for `mailbox migrate` (sled to a cluster): partition
//! by partition in time order, each recipient's envelopes in queue order, with the id,
//! stored time and origin they were stored with.

use super::super::keys::{IdMeta, id_key, time_key};
use super::super::{Incoming, StoreError};
use super::SledQueue;
use super::partition::read_lock;

/// An iterator over what a [`SledQueue`] holds (see [`SledQueue::export`]).
pub struct Export {
    partitions: std::vec::IntoIter<sled::Db>,
    current: Option<(sled::Db, sled::Iter)>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("partitions_left", &self.partitions.len())
            .finish_non_exhaustive()
    }
}

impl SledQueue {
    /// Every queued envelope, partition by partition in time order and each recipient's in
    /// queue order. Nothing else may write meanwhile (the mailbox is stopped).
    pub fn export(&self) -> Export {
        let partitions: Vec<sled::Db> = read_lock(&self.partitions)
            .values()
            .map(|p| p.db.clone())
            .collect();
        Export {
            partitions: partitions.into_iter(),
            current: None,
        }
    }
}

impl Iterator for Export {
    type Item = Result<Incoming, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let db = self.partitions.next()?;
                let iter = db.scan_prefix(b"q");
                self.current = Some((db, iter));
            }
            let (db, iter) = self.current.as_mut()?;
            let Some(item) = iter.next() else {
                self.current = None;
                continue;
            };
            return Some(one(db, item));
        }
    }
}

fn one(
    db: &sled::Db,
    item: sled::Result<(sled::IVec, sled::IVec)>,
) -> Result<Incoming, StoreError> {
    let (key, envelope) = item?;
    let header = crypto::EnvelopeHeader::parse(&envelope)
        .map_err(|e| StoreError::Fatal(format!("a queued envelope has no header: {e}")))?;
    // Its `t` entry, found by the stored time its sequence begins with; a migrated
    // envelope (whose sequence is a small counter) and one of the earlier layout have an
    // `i` entry.
    let seq = key
        .get(33..41)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes);
    let timed = match seq {
        Some(seq) => db
            .get(time_key(seq >> 16, &header.id))?
            .and_then(|m| IdMeta::parse(&m)),
        None => None,
    };
    let meta = match timed {
        Some(meta) => meta,
        None => db
            .get(id_key(&header.id))?
            .and_then(|m| IdMeta::parse(&m))
            .ok_or_else(|| StoreError::Fatal(format!("no record of {}", header.id)))?,
    };
    Ok(Incoming {
        recipient: meta.recipient,
        id: header.id,
        origin: meta.origin,
        envelope: envelope.to_vec(),
        now_ms: meta.stored_ms,
    })
}
