//! [`MemoryQueue`]: the queue store in memory, for tests; it passes the same contract test
//! as the sled engine.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crypto::{Fingerprint, MessageId};

use super::{Incoming, Origin, QueueStats, QueueStore, Quota, StoreError, Stored, pull_from};

/// An in-memory [`QueueStore`] with the same semantics, for tests.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    queues: HashMap<Fingerprint, BTreeMap<u64, (Origin, Vec<u8>)>>,
    /// Recipient, sequence, stored at.
    ids: HashMap<MessageId, (Fingerprint, u64, u64)>,
    next_seq: u64,
    /// Every id ever stored, when ids are remembered past their acknowledgement.
    ever: Option<std::collections::HashSet<MessageId>>,
}

impl MemoryQueue {
    /// A queue that, like an engine with a duplicate window longer than a test (JetStream),
    /// answers a SEND of an id it stored before as a duplicate even once that envelope is
    /// acknowledged or expired (after the checks of what is queued and of the quotas).
    pub fn remembering_ids() -> Self {
        let queue = Self::default();
        queue.lock().ever = Some(Default::default());
        queue
    }

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
        let len = incoming.envelope.len() as u64;
        let bytes: u64 = queue.values().map(|v| v.1.len() as u64).sum::<u64>() + len;
        if count > quota.envelopes || bytes > quota.bytes {
            return Ok(Stored::OverQuota);
        }
        let from_origin: Vec<u64> = m
            .queues
            .values()
            .flat_map(|q| q.values())
            .filter(|(origin, _)| *origin == incoming.origin)
            .map(|(_, v)| v.len() as u64)
            .collect();
        if from_origin.len() as u64 + 1 > quota.origin_envelopes
            || from_origin.iter().sum::<u64>() + len > quota.origin_bytes
        {
            return Ok(Stored::OriginFull);
        }
        if let Some(ever) = &mut m.ever
            && !ever.insert(incoming.id)
        {
            return Ok(Stored::Duplicate);
        }
        m.next_seq += 1;
        let seq = m.next_seq;
        m.queues
            .entry(incoming.recipient)
            .or_default()
            .insert(seq, (incoming.origin, incoming.envelope));
        m.ids
            .insert(incoming.id, (incoming.recipient, seq, incoming.now_ms));
        Ok(Stored::New)
    }

    async fn pull(
        &self,
        recipient: &Fingerprint,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let m = self.lock();
        let values: Vec<Vec<u8>> = m
            .queues
            .get(recipient)
            .map(|q| q.values().map(|(_, v)| v.clone()).collect())
            .unwrap_or_default();
        pull_from(values.into_iter().map(Ok), max_count, max_bytes)
    }

    async fn ack(&self, recipient: Fingerprint, ids: Vec<MessageId>) -> Result<u64, StoreError> {
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
                m.ids.remove(&id);
                count += 1;
            }
        }
        Ok(count)
    }

    async fn expire(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let mut m = self.lock();
        let old: Vec<(MessageId, Fingerprint, u64)> = m
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
            stats.bytes += q.values().map(|v| v.1.len() as u64).sum::<u64>();
        }
        stats
    }
}
