//! What a front-end knows of the shared queue: every queued envelope's recipient, id, time,
//! length and origin by stream sequence (never its bytes), and the figures quotas count. It
//! does no I/O: the engine feeds it the stream's tail, its own writes and other
//! front-ends' deletions, and asks it what a SEND may store and which sequences a PULL,
//! an ACK or retention touches.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crypto::{Fingerprint, MessageId};

use crate::store::{Incoming, Origin, QueueStats, Quota, Stored};

/// One queued envelope, as the index keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) recipient: Fingerprint,
    pub(crate) id: MessageId,
    /// When it was stored (ms since the epoch, the SEND's time): retention counts from here.
    pub(crate) at: u64,
    pub(crate) len: u64,
    pub(crate) origin: Origin,
}

/// The length of an [`Entry`] and its sequence as [`Entry::encode`] writes them.
pub(crate) const ENCODED_ENTRY: usize = 8 + 16 + 8 + 8 + 16;

impl Entry {
    /// `seq` and this entry without its recipient (an arrival notice's payload; the
    /// recipient is in its subject): sequence, id, time, length, origin.
    pub(crate) fn encode(&self, seq: u64) -> [u8; ENCODED_ENTRY] {
        let mut out = [0u8; ENCODED_ENTRY];
        out[..8].copy_from_slice(&seq.to_be_bytes());
        out[8..24].copy_from_slice(&self.id.0);
        out[24..32].copy_from_slice(&self.at.to_be_bytes());
        out[32..40].copy_from_slice(&self.len.to_be_bytes());
        out[40..].copy_from_slice(&self.origin.0);
        out
    }

    /// What [`Self::encode`] wrote, for `recipient`.
    pub(crate) fn decode(recipient: Fingerprint, bytes: &[u8]) -> Option<(u64, Self)> {
        let bytes: &[u8; ENCODED_ENTRY] = bytes.try_into().ok()?;
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[8..24]);
        let mut origin = [0u8; 16];
        origin.copy_from_slice(&bytes[40..]);
        Some((
            u64_at(0),
            Self {
                recipient,
                id: MessageId(id),
                at: u64_at(24),
                len: u64_at(32),
                origin: Origin(origin),
            },
        ))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Usage {
    count: u64,
    bytes: u64,
}

impl Usage {
    fn add(&mut self, len: u64) {
        self.count += 1;
        self.bytes += len;
    }
    fn sub(&mut self, len: u64) {
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(len);
    }
    fn is_empty(&self) -> bool {
        self.count == 0 && self.bytes == 0
    }
}

/// What inserting an entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// It is queued now.
    New,
    /// It was known already (the tail delivering what this front-end stored), or deleted.
    Known,
    /// Another sequence of the same recipient holds the same id (stored through two
    /// front-ends at once, past JetStream's duplicate window): the lower sequence is kept
    /// and this one, the higher, is to be deleted from the stream (every front-end picks
    /// the same).
    Copy(u64),
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    entries: BTreeMap<u64, Entry>,
    ids: HashMap<MessageId, u64>,
    queues: HashMap<Fingerprint, (Usage, BTreeSet<u64>)>,
    origins: HashMap<Origin, Usage>,
    by_time: BTreeSet<(u64, u64)>,
    totals: Usage,
    /// SENDs between their check and their answer, so that concurrent ones are counted.
    reserved: HashMap<Fingerprint, Usage>,
    reserved_origins: HashMap<Origin, Usage>,
    /// The highest sequence the stream's tail has delivered.
    tail: u64,
    /// Sequences above `tail` deleted already: the tail must not add them back.
    deleted_ahead: BTreeSet<u64>,
}

impl Index {
    /// Why `incoming` may not be stored, if it may not: its id is queued, or its recipient
    /// or origin would go past `quota` (counting SENDs in flight). Otherwise it is reserved
    /// until [`Self::release`].
    pub(crate) fn admit(&mut self, incoming: &Incoming, quota: Quota) -> Option<Stored> {
        if self.ids.contains_key(&incoming.id) {
            return Some(Stored::Duplicate);
        }
        let len = incoming.envelope.len() as u64;
        let queue = self
            .queues
            .get(&incoming.recipient)
            .map(|q| q.0)
            .unwrap_or_default();
        let pending = self
            .reserved
            .get(&incoming.recipient)
            .copied()
            .unwrap_or_default();
        if queue.count + pending.count >= quota.envelopes
            || queue.bytes + pending.bytes + len > quota.bytes
        {
            return Some(Stored::OverQuota);
        }
        let origin = self
            .origins
            .get(&incoming.origin)
            .copied()
            .unwrap_or_default();
        let pending = self
            .reserved_origins
            .get(&incoming.origin)
            .copied()
            .unwrap_or_default();
        if origin.count + pending.count >= quota.origin_envelopes
            || origin.bytes + pending.bytes + len > quota.origin_bytes
        {
            return Some(Stored::OriginFull);
        }
        self.reserved
            .entry(incoming.recipient)
            .or_default()
            .add(len);
        self.reserved_origins
            .entry(incoming.origin)
            .or_default()
            .add(len);
        None
    }

    /// The SEND reserved by [`Self::admit`] is answered.
    pub(crate) fn release(&mut self, recipient: &Fingerprint, origin: &Origin, len: u64) {
        release(&mut self.reserved, recipient, len);
        release(&mut self.reserved_origins, origin, len);
    }

    /// `entry` is queued at `seq` (this front-end stored it, or the tail delivered it).
    pub(crate) fn insert(&mut self, seq: u64, entry: Entry) -> Inserted {
        if self.entries.contains_key(&seq) || self.deleted_ahead.contains(&seq) {
            return Inserted::Known;
        }
        let mut copy = None;
        if let Some(&other) = self.ids.get(&entry.id)
            && other != seq
        {
            let same_recipient = self
                .entries
                .get(&other)
                .is_some_and(|e| e.recipient == entry.recipient);
            if same_recipient {
                if other < seq {
                    return Inserted::Copy(seq);
                }
                self.remove(other);
                copy = Some(other);
            }
            // Another recipient's id: both stay queued; the id finds the first.
        }
        self.ids.entry(entry.id).or_insert(seq);
        let queue = self.queues.entry(entry.recipient).or_default();
        queue.0.add(entry.len);
        queue.1.insert(seq);
        self.origins.entry(entry.origin).or_default().add(entry.len);
        self.by_time.insert((entry.at, seq));
        self.totals.add(entry.len);
        self.entries.insert(seq, entry);
        copy.map_or(Inserted::New, Inserted::Copy)
    }

    /// The tail delivered everything up to `seq`.
    pub(crate) fn advance(&mut self, seq: u64) {
        if seq > self.tail {
            self.tail = seq;
            self.deleted_ahead = self.deleted_ahead.split_off(&(seq + 1));
        }
    }

    /// The highest sequence the tail has delivered.
    pub(crate) fn tail(&self) -> u64 {
        self.tail
    }

    /// Whether `seq` is queued, as far as this front-end knows.
    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.entries.contains_key(&seq)
    }

    /// `seq` is deleted (here or by another front-end).
    pub(crate) fn remove(&mut self, seq: u64) -> Option<Entry> {
        if seq > self.tail {
            self.deleted_ahead.insert(seq);
        }
        let entry = self.entries.remove(&seq)?;
        if self.ids.get(&entry.id) == Some(&seq) {
            self.ids.remove(&entry.id);
        }
        if let Some(queue) = self.queues.get_mut(&entry.recipient) {
            queue.0.sub(entry.len);
            queue.1.remove(&seq);
            if queue.1.is_empty() {
                self.queues.remove(&entry.recipient);
            }
        }
        release(&mut self.origins, &entry.origin, entry.len);
        self.by_time.remove(&(entry.at, seq));
        self.totals.sub(entry.len);
        Some(entry)
    }

    /// The oldest of `recipient`'s sequences, at most `max_count` and `max_bytes` (but at
    /// least one), and whether more are queued.
    pub(crate) fn select(
        &self,
        recipient: &Fingerprint,
        max_count: usize,
        max_bytes: usize,
    ) -> (Vec<u64>, bool) {
        let Some((_, seqs)) = self.queues.get(recipient) else {
            return (Vec::new(), false);
        };
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for &seq in seqs {
            let len = self.entries.get(&seq).map_or(0, |e| e.len);
            if out.len() >= max_count || (bytes + len > max_bytes as u64 && !out.is_empty()) {
                return (out, true);
            }
            bytes += len;
            out.push(seq);
        }
        (out, false)
    }

    /// The sequences of `recipient`'s envelopes among `ids` (each once; others' ignored).
    pub(crate) fn find(&self, recipient: &Fingerprint, ids: &[MessageId]) -> Vec<u64> {
        let mut seqs: Vec<u64> = ids
            .iter()
            .filter_map(|id| self.ids.get(id))
            .filter(|seq| {
                self.entries
                    .get(seq)
                    .is_some_and(|e| e.recipient == *recipient)
            })
            .copied()
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    }

    /// The longest run of `recipient`'s oldest queued envelopes that `acked` (sorted) covers,
    /// as its last sequence, when the tail has passed it (so no envelope below it is
    /// unknown here): everything of `recipient` up to it can go in one purge.
    pub(crate) fn acked_prefix(&self, recipient: &Fingerprint, acked: &[u64]) -> Option<u64> {
        let (_, queue) = self.queues.get(recipient)?;
        let mut end = None;
        for (queued, acked) in queue.iter().zip(acked) {
            if queued != acked || *queued > self.tail {
                break;
            }
            end = Some(*queued);
        }
        end
    }

    /// The sequences stored before `cutoff_ms`, oldest first, at most `max`.
    pub(crate) fn expired(&self, cutoff_ms: u64, max: usize) -> Vec<u64> {
        self.by_time
            .range(..(cutoff_ms, 0))
            .take(max)
            .map(|&(_, seq)| seq)
            .collect()
    }

    /// Queue figures.
    pub(crate) fn stats(&self) -> QueueStats {
        QueueStats {
            envelopes: self.totals.count,
            bytes: self.totals.bytes,
        }
    }
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Usage>, key: &K, len: u64) {
    if let Some(usage) = map.get_mut(key) {
        usage.sub(len);
        if usage.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(recipient: u8, id: u8, at: u64, len: u64) -> Entry {
        Entry {
            recipient: Fingerprint([recipient; 32]),
            id: MessageId([id; 16]),
            at,
            len,
            origin: Origin([recipient; 16]),
        }
    }

    fn incoming(recipient: u8, id: u8, len: usize) -> Incoming {
        Incoming {
            recipient: Fingerprint([recipient; 32]),
            id: MessageId([id; 16]),
            origin: Origin([recipient; 16]),
            envelope: vec![0; len],
            now_ms: 0,
        }
    }

    #[test]
    fn the_tail_does_not_bring_back_what_was_deleted() {
        let mut index = Index::default();
        // Stored here (sequence 3), acknowledged, and only then delivered by the tail.
        assert_eq!(index.insert(3, entry(1, 1, 10, 5)), Inserted::New);
        assert!(index.remove(3).is_some());
        assert_eq!(index.insert(3, entry(1, 1, 10, 5)), Inserted::Known);
        assert_eq!(index.stats(), QueueStats::default());
        // Once the tail is past it, the note is dropped.
        index.advance(3);
        assert!(index.deleted_ahead.is_empty());
    }

    #[test]
    fn an_entry_survives_its_encoding() {
        let e = entry(3, 4, 1_234, 56);
        let bytes = e.encode(789);
        assert_eq!(Entry::decode(e.recipient, &bytes), Some((789, e)));
        assert_eq!(Entry::decode(e.recipient, &bytes[1..]), None);
    }

    #[test]
    fn a_second_copy_of_an_id_is_reported() {
        let mut index = Index::default();
        assert_eq!(index.insert(1, entry(1, 7, 10, 5)), Inserted::New);
        assert_eq!(index.insert(2, entry(1, 7, 11, 5)), Inserted::Copy(2));
        assert_eq!(index.stats().envelopes, 1);
        // The other order gives the same choice: the lower sequence stays.
        let mut other = Index::default();
        assert_eq!(other.insert(2, entry(1, 7, 11, 5)), Inserted::New);
        assert_eq!(other.insert(1, entry(1, 7, 10, 5)), Inserted::Copy(2));
        assert_eq!(
            other.select(&Fingerprint([1; 32]), 10, 1 << 20),
            (vec![1], false)
        );
        // The same id for another recipient is not a copy: both stay.
        assert_eq!(other.insert(3, entry(2, 7, 12, 5)), Inserted::New);
        assert_eq!(other.stats().envelopes, 2);
    }

    #[test]
    fn reservations_count_against_the_quota_until_released() {
        let mut index = Index::default();
        let quota = Quota {
            envelopes: 1,
            ..Quota::UNLIMITED
        };
        assert_eq!(index.admit(&incoming(1, 1, 3), quota), None);
        assert_eq!(
            index.admit(&incoming(1, 2, 3), quota),
            Some(Stored::OverQuota),
            "the first is in flight"
        );
        index.release(&Fingerprint([1; 32]), &Origin([1; 16]), 3);
        assert_eq!(index.admit(&incoming(1, 2, 3), quota), None);
    }

    #[test]
    fn selection_expiry_and_acks_see_only_what_they_should() {
        let mut index = Index::default();
        index.insert(1, entry(1, 1, 100, 4));
        index.insert(2, entry(2, 2, 150, 4));
        index.insert(5, entry(1, 3, 200, 4));
        assert_eq!(
            index.select(&Fingerprint([1; 32]), 10, 1 << 20),
            (vec![1, 5], false)
        );
        assert_eq!(index.select(&Fingerprint([1; 32]), 10, 5), (vec![1], true));
        assert_eq!(
            index.find(
                &Fingerprint([1; 32]),
                &[MessageId([2; 16]), MessageId([3; 16])]
            ),
            vec![5],
            "another recipient's id is not found"
        );
        assert_eq!(
            index.acked_prefix(&Fingerprint([1; 32]), &[1, 5]),
            None,
            "tail at 0"
        );
        index.advance(5);
        assert_eq!(index.acked_prefix(&Fingerprint([1; 32]), &[1, 5]), Some(5));
        assert_eq!(
            index.acked_prefix(&Fingerprint([1; 32]), &[5]),
            None,
            "1 is not acked"
        );
        assert_eq!(index.acked_prefix(&Fingerprint([1; 32]), &[1]), Some(1));
        assert_eq!(index.expired(160, 10), vec![1, 2]);
        assert_eq!(index.expired(160, 1), vec![1]);
    }
}
