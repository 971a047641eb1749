//! The second stage of the group commit: the syncer thread makes what the committer
//! applied durable (fdatasync), then answers.

use std::collections::BTreeMap;
use std::sync::{Arc, mpsc as std_mpsc};

use super::super::{StoreError, Stored};
use super::commit::add_signed;
use super::partition::DbFile;
use super::{Poison, Totals, Write};

/// A group applied and flushed by the committer, waiting for an fdatasync to be answered.
pub(super) struct Applied {
    pub(super) pending: Vec<Write>,
    pub(super) outcomes: Vec<Result<Outcome, StoreError>>,
    /// Envelopes that went with deleted partitions (added to the retention answer).
    pub(super) dropped: u64,
    /// The database files the group wrote to, by partition start.
    pub(super) files: BTreeMap<u64, Arc<DbFile>>,
    /// The change to the queue figures (envelopes, bytes), made once it is durable.
    pub(super) figures: (i64, i64),
    pub(super) totals: Arc<Totals>,
}

/// What a planned write comes to.
#[derive(Debug)]
pub(super) enum Outcome {
    /// A store's.
    Stored(Stored),
    /// An ack's or an expiry's count.
    Count(u64),
}

/// Answer every write of a group with [`StoreError::Fatal`].
pub(super) fn fail(pending: Vec<Write>, reason: &str) {
    let fatal = || StoreError::Fatal(reason.to_owned());
    for write in pending {
        // A requester that went away does not need its answer.
        match write {
            Write::Store { done, .. } => {
                let _ = done.send(Err(fatal()));
            }
            Write::Ack { done, .. } | Write::Expire { done, .. } => {
                let _ = done.send(Err(fatal()));
            }
        }
    }
}

/// The second stage of the group commit: one fdatasync of each database file written to
/// by the groups applied since the last, then their answers. Runs beside the committer, so
/// applying the next group and syncing this one overlap.
///
/// If a sync fails, the store is poisoned: these groups and every later one are answered
/// with [`StoreError::Fatal`] (a later group may hold what this one applied).
pub(super) fn syncer(rx: std_mpsc::Receiver<Applied>, poison: Arc<Poison>) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        while let Ok(more) = rx.try_recv() {
            groups.push(more);
        }
        let files: BTreeMap<u64, Arc<DbFile>> = groups
            .iter()
            .flat_map(|g| g.files.iter().map(|(s, f)| (*s, f.clone())))
            .collect();
        let synced = poison.check().and_then(|()| {
            files.values().try_for_each(|file| {
                file.sync().map_err(|reason| {
                    poison.set(reason.clone());
                    StoreError::Fatal(reason)
                })
            })
        });
        if let Err(e) = synced {
            for group in groups {
                fail(group.pending, &e.to_string());
            }
            continue;
        }
        for group in groups {
            answer(group);
        }
    }
}

/// Change the queue figures by what a durable group did, and answer each of its writes
/// with its outcome.
fn answer(group: Applied) {
    let Applied {
        pending,
        outcomes,
        mut dropped,
        figures: (envelopes, bytes),
        totals,
        ..
    } = group;
    add_signed(&totals.envelopes, envelopes);
    add_signed(&totals.bytes, bytes);
    for (write, outcome) in pending.into_iter().zip(outcomes) {
        // A requester that went away does not need its answer.
        let mismatch = || StoreError::Fatal("a write's outcome does not fit it".into());
        match write {
            Write::Store { done, .. } => {
                let _ = done.send(outcome.and_then(|o| match o {
                    Outcome::Stored(stored) => Ok(stored),
                    Outcome::Count(_) => Err(mismatch()),
                }));
            }
            Write::Expire { done, .. } => {
                // What went with deleted partitions counts once, with the first expiry.
                let with_dropped = std::mem::take(&mut dropped);
                let _ = done.send(outcome.and_then(|o| match o {
                    Outcome::Count(n) => Ok(n + with_dropped),
                    Outcome::Stored(_) => Err(mismatch()),
                }));
            }
            Write::Ack { done, .. } => {
                let _ = done.send(outcome.and_then(|o| match o {
                    Outcome::Count(n) => Ok(n),
                    Outcome::Stored(_) => Err(mismatch()),
                }));
            }
        }
    }
}
