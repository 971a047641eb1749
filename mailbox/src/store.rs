//! The envelope queue store.
//!
//! [`QueueStore`] is the narrow interface the service uses; [`SledQueue`] implements it on
//! sled. Key layout, all in one sled tree so a batch is atomic:
//!
//! ```text
//! q | recipient fingerprint (32) | arrival sequence (u64 BE)  ->  envelope bytes
//! i | message id (16)                                           ->  recipient (32) | sequence (u64 BE) | stored at (u64 BE ms)
//! ```
//!
//! The `i` entry outlives the queue entry: it makes SEND idempotent by message id after the
//! recipient has acknowledged the envelope.
//!
//! Durability: sled 0.34's `flush` survives a process crash but not a power loss (it uses
//! sync_file_range), and concurrent flushes can deadlock (sled issue 1308). So one committer
//! thread takes every write waiting, applies them as one batch, flushes, fdatasyncs the
//! database file, and only then answers them all (group commit).

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
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
    /// The committer thread is gone (the store is shutting down).
    #[error("storage is shutting down")]
    Closed,
}

/// The outcome of storing one envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, and durable.
    New,
    /// This message id was stored before; nothing was stored twice.
    Duplicate,
}

/// Queue figures for the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Envelopes queued.
    pub envelopes: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The queue operations the service needs.
pub trait QueueStore: Send + Sync + 'static {
    /// Store an envelope for `recipient`; resolves once it is durable.
    fn store(
        &self,
        recipient: [u8; 32],
        id: [u8; 16],
        envelope: Vec<u8>,
    ) -> impl Future<Output = Result<Stored, StoreError>> + Send;
    /// The oldest envelopes of `recipient`, bounded in count and bytes, and whether more wait.
    fn pull(
        &self,
        recipient: &[u8; 32],
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError>;
    /// Delete acknowledged envelopes of `recipient`; ids of other recipients are ignored.
    fn ack(
        &self,
        recipient: [u8; 32],
        ids: Vec<[u8; 16]>,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// Queue figures.
    fn stats(&self) -> QueueStats;
}

enum Write {
    Store {
        recipient: [u8; 32],
        id: [u8; 16],
        envelope: Vec<u8>,
        done: oneshot::Sender<Result<Stored, StoreError>>,
    },
    Ack {
        recipient: [u8; 32],
        ids: Vec<[u8; 16]>,
        done: oneshot::Sender<Result<u32, StoreError>>,
    },
}

/// The sled implementation of [`QueueStore`].
#[derive(Debug, Clone)]
pub struct SledQueue {
    db: sled::Db,
    writes: std_mpsc::Sender<Write>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Write")
    }
}

fn queue_key(recipient: &[u8; 32], seq: u64) -> Vec<u8> {
    [b"q".as_slice(), recipient, &seq.to_be_bytes()].concat()
}

fn id_key(id: &[u8; 16]) -> Vec<u8> {
    [b"i".as_slice(), id].concat()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl SledQueue {
    /// Open (or create) the store under `dir` and start its committer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir)?;
        let db_file = dir.join("db");
        let file = std::fs::File::open(&db_file).map_err(|source| StoreError::Io {
            path: db_file.clone(),
            source,
        })?;
        let (writes, rx) = std_mpsc::channel();
        let committer_db = db.clone();
        std::thread::Builder::new()
            .name("queue-committer".into())
            .spawn(move || committer(committer_db, file, db_file, rx))
            .map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self { db, writes })
    }
}

/// The one thread that writes: group commit.
fn committer(db: sled::Db, file: std::fs::File, path: PathBuf, rx: std_mpsc::Receiver<Write>) {
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        while let Ok(more) = rx.try_recv() {
            pending.push(more);
        }
        let mut batch = sled::Batch::default();
        // Outcomes decided while building the batch; answered once it is durable.
        let mut outcomes: Vec<Result<u64, StoreError>> = Vec::with_capacity(pending.len());
        let mut seen_in_batch: std::collections::HashSet<[u8; 16]> = Default::default();
        let mut deleted_in_batch: std::collections::HashSet<Vec<u8>> = Default::default();
        for write in &pending {
            let outcome = match write {
                Write::Store {
                    recipient,
                    id,
                    envelope,
                    ..
                } => match db.get(id_key(id)) {
                    Ok(Some(_)) => Ok(0),
                    Ok(None) if seen_in_batch.contains(id) => Ok(0),
                    Ok(None) => db.generate_id().map_err(StoreError::from).map(|seq| {
                        seen_in_batch.insert(*id);
                        let meta = [
                            recipient.as_slice(),
                            &seq.to_be_bytes(),
                            &now_ms().to_be_bytes(),
                        ]
                        .concat();
                        batch.insert(queue_key(recipient, seq), envelope.as_slice());
                        batch.insert(id_key(id), meta);
                        1
                    }),
                    Err(e) => Err(e.into()),
                },
                Write::Ack { recipient, ids, .. } => {
                    let mut deleted = 0u64;
                    let mut failure = None;
                    for id in ids {
                        match db.get(id_key(id)) {
                            Ok(Some(meta)) if meta.len() >= 40 && meta[..32] == recipient[..] => {
                                let mut seq = [0u8; 8];
                                seq.copy_from_slice(&meta[32..40]);
                                let key = queue_key(recipient, u64::from_be_bytes(seq));
                                if matches!(db.contains_key(&key), Ok(true))
                                    && deleted_in_batch.insert(key.clone())
                                {
                                    batch.remove(key);
                                    deleted += 1;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => failure = Some(StoreError::from(e)),
                        }
                    }
                    failure.map_or(Ok(deleted), Err)
                }
            };
            outcomes.push(outcome);
        }
        let durable = db
            .apply_batch(batch)
            .and_then(|()| db.flush().map(|_| ()))
            .map_err(StoreError::from)
            .and_then(|()| {
                file.sync_data().map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })
            });
        for (write, outcome) in pending.into_iter().zip(outcomes) {
            let outcome = match (&durable, outcome) {
                (Err(e), _) => Err(StoreError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                }),
                (Ok(()), o) => o,
            };
            // A requester that went away does not need its answer.
            match write {
                Write::Store { done, .. } => {
                    let _ = done.send(outcome.map(|n| {
                        if n == 1 {
                            Stored::New
                        } else {
                            Stored::Duplicate
                        }
                    }));
                }
                Write::Ack { done, .. } => {
                    let _ = done.send(outcome.map(|n| u32::try_from(n).unwrap_or(u32::MAX)));
                }
            }
        }
    }
}

impl QueueStore for SledQueue {
    async fn store(
        &self,
        recipient: [u8; 32],
        id: [u8; 16],
        envelope: Vec<u8>,
    ) -> Result<Stored, StoreError> {
        let (done, answer) = oneshot::channel();
        self.writes
            .send(Write::Store {
                recipient,
                id,
                envelope,
                done,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn pull(
        &self,
        recipient: &[u8; 32],
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let prefix = [b"q".as_slice(), recipient].concat();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in self.db.scan_prefix(prefix) {
            let (_, value) = item?;
            if out.len() >= max_count || (bytes + value.len() > max_bytes && !out.is_empty()) {
                return Ok((out, true));
            }
            bytes += value.len();
            out.push(value.to_vec());
        }
        Ok((out, false))
    }

    async fn ack(&self, recipient: [u8; 32], ids: Vec<[u8; 16]>) -> Result<u32, StoreError> {
        let (done, answer) = oneshot::channel();
        self.writes
            .send(Write::Ack {
                recipient,
                ids,
                done,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn stats(&self) -> QueueStats {
        let mut stats = QueueStats::default();
        for (_, value) in self.db.scan_prefix(b"q").flatten() {
            stats.envelopes += 1;
            stats.bytes += value.len() as u64;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_layout_is_pinned() {
        let key = queue_key(&[0xaa; 32], 0x0102);
        assert_eq!(key.len(), 41);
        assert_eq!(key[0], b'q');
        assert_eq!(&key[33..], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(id_key(&[0xbb; 16]), [b"i".as_slice(), &[0xbb; 16]].concat());
    }

    #[tokio::test]
    async fn store_pull_ack_and_idempotence() {
        let dir = tempfile::tempdir().unwrap();
        let q = SledQueue::open(dir.path()).unwrap();
        let bob = [2u8; 32];
        let carol = [3u8; 32];
        assert_eq!(
            q.store(bob, [1; 16], b"one".to_vec()).await.unwrap(),
            Stored::New
        );
        assert_eq!(
            q.store(bob, [2; 16], b"two".to_vec()).await.unwrap(),
            Stored::New
        );
        assert_eq!(
            q.store(bob, [1; 16], b"one".to_vec()).await.unwrap(),
            Stored::Duplicate
        );
        assert_eq!(
            q.pull(&bob, 10, 1 << 20).unwrap(),
            (vec![b"one".to_vec(), b"two".to_vec()], false)
        );
        assert_eq!(
            q.pull(&bob, 1, 1 << 20).unwrap(),
            (vec![b"one".to_vec()], true)
        );
        assert_eq!(q.pull(&carol, 10, 1 << 20).unwrap(), (vec![], false));
        // carol cannot ack bob's envelopes
        assert_eq!(q.ack(carol, vec![[1; 16]]).await.unwrap(), 0);
        assert_eq!(q.ack(bob, vec![[1; 16], [1; 16]]).await.unwrap(), 1);
        assert_eq!(q.ack(bob, vec![[1; 16]]).await.unwrap(), 0);
        assert_eq!(
            q.pull(&bob, 10, 1 << 20).unwrap(),
            (vec![b"two".to_vec()], false)
        );
        // still a duplicate after the ack
        assert_eq!(
            q.store(bob, [1; 16], b"one".to_vec()).await.unwrap(),
            Stored::Duplicate
        );
        assert_eq!(
            q.stats(),
            QueueStats {
                envelopes: 1,
                bytes: 3
            }
        );
    }
}
