//! [`SledKeys`]: the key store in a sled database of its own (layout in [`super`]). Writes
//! are rare (a publication now and then, a claim per new conversation), so each one is its
//! own batch, flushed and fdatasynced on a blocking thread before it answers; one lock
//! orders them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crypto::{DeviceId, Fingerprint, PREKEY_LEN};

use super::{Claimed, KeyLimits, KeyStore, OwnerKeys, Publication, Published};
use crate::store::StoreError;

/// The sled implementation of [`KeyStore`].
#[derive(Clone, Debug)]
pub struct SledKeys {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    file: std::fs::File,
    path: PathBuf,
    /// Held by each write, from reading the owner's keys to the fdatasync: writes do not
    /// interleave, so a one-time key is served once.
    writing: Mutex<()>,
    owners: AtomicU64,
    /// Set once a write could not be made durable: every later write is refused.
    failed: Mutex<Option<String>>,
}

fn cert_key(owner: &Fingerprint) -> Vec<u8> {
    [b"c".as_slice(), &owner.0].concat()
}
fn one_time_prefix(owner: &Fingerprint) -> Vec<u8> {
    [b"k".as_slice(), &owner.0].concat()
}
fn one_time_key(owner: &Fingerprint, seq: u64) -> Vec<u8> {
    [b"k".as_slice(), &owner.0, &seq.to_be_bytes()].concat()
}
fn fallback_key(owner: &Fingerprint) -> Vec<u8> {
    [b"f".as_slice(), &owner.0].concat()
}

impl SledKeys {
    /// Open (or create) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(8 * 1024 * 1024)
            .flush_every_ms(None);
        let db = crate::store::open_when_unlocked(&config)?;
        let path = dir.join("db");
        let file = std::fs::File::open(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let owners = db.scan_prefix(b"c").count() as u64;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                file,
                path,
                writing: Mutex::new(()),
                owners: AtomicU64::new(owners),
                failed: Mutex::new(None),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _writing = inner.writing.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(reason) = &*inner.failed.lock().unwrap_or_else(|p| p.into_inner()) {
                return Err(StoreError::Fatal(reason.clone()));
            }
            work(&inner)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

impl SledKeys {
    /// Every identity's keys (for `mailbox migrate`).
    pub fn export(&self) -> Result<Vec<(Fingerprint, OwnerKeys)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.db.scan_prefix(b"c") {
            let (key, _) = entry?;
            let Ok(owner) = <[u8; 32]>::try_from(&key[1..]) else {
                continue;
            };
            let owner = Fingerprint(owner);
            out.push((owner, self.inner.load(&owner)?.0));
        }
        Ok(out)
    }
}

impl Inner {
    /// An owner's keys, and the sled keys of their one-time keys (oldest first).
    fn load(&self, owner: &Fingerprint) -> Result<(OwnerKeys, Vec<sled::IVec>), StoreError> {
        let mut keys = OwnerKeys::default();
        if let Some(value) = self.db.get(cert_key(owner))? {
            let (device, certificate) = value.split_at(16.min(value.len()));
            keys.device = <[u8; 16]>::try_from(device).ok().map(DeviceId);
            keys.certificate = certificate.to_vec();
        }
        let mut slots = Vec::new();
        for entry in self.db.scan_prefix(one_time_prefix(owner)) {
            let (slot, value) = entry?;
            if let Ok(prekey) = <[u8; PREKEY_LEN]>::try_from(value.as_ref()) {
                keys.one_time.push(prekey);
                slots.push(slot);
            }
        }
        keys.fallback = self
            .db
            .get(fallback_key(owner))?
            .and_then(|v| <[u8; PREKEY_LEN]>::try_from(v.as_ref()).ok());
        Ok((keys, slots))
    }

    /// Apply `batch`, flush and fdatasync; a failure refuses every later write.
    fn commit(&self, batch: sled::Batch) -> Result<(), StoreError> {
        let result = self
            .db
            .apply_batch(batch)
            .and_then(|()| self.db.flush().map(drop))
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.file
                    .sync_data()
                    .map_err(|e| format!("fdatasync of {}: {e}", self.path.display()))
            });
        result.map_err(|reason| {
            tracing::error!(%reason, "the key store cannot make writes durable");
            *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
            StoreError::Fatal(reason)
        })
    }
}

impl KeyStore for SledKeys {
    async fn publish(
        &self,
        owner: Fingerprint,
        publication: Publication,
        limits: KeyLimits,
    ) -> Result<Published, StoreError> {
        self.blocking(move |inner| {
            let (mut keys, slots) = inner.load(&owner)?;
            let new_owner = keys.device.is_none();
            if new_owner && inner.owners.load(Ordering::SeqCst) >= limits.max_owners {
                return Ok(Published::Full);
            }
            keys.apply(publication, limits.max_one_time);
            // Rewrite the owner whole: at most `max_one_time` small entries.
            let mut batch = sled::Batch::default();
            for slot in slots {
                batch.remove(slot);
            }
            let device = keys.device.map(|d| d.0).unwrap_or_default();
            batch.insert(cert_key(&owner), [&device[..], &keys.certificate].concat());
            for (seq, prekey) in keys.one_time.iter().enumerate() {
                batch.insert(one_time_key(&owner, seq as u64), &prekey[..]);
            }
            match &keys.fallback {
                Some(prekey) => batch.insert(fallback_key(&owner), &prekey[..]),
                None => batch.remove(fallback_key(&owner)),
            }
            inner.commit(batch)?;
            if new_owner {
                inner.owners.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Published::Stored {
                one_time: keys.one_time.len() as u64,
            })
        })
        .await
    }

    async fn claim(
        &self,
        owner: Fingerprint,
        one_time: bool,
    ) -> Result<Option<Claimed>, StoreError> {
        self.blocking(move |inner| {
            let (keys, slots) = inner.load(&owner)?;
            if keys.device.is_none() {
                return Ok(None);
            }
            let prekey = match (one_time, keys.one_time.first(), slots.first()) {
                (true, Some(prekey), Some(slot)) => {
                    let mut batch = sled::Batch::default();
                    batch.remove(slot.clone());
                    inner.commit(batch)?;
                    Some(*prekey)
                }
                _ => keys.fallback,
            };
            Ok(prekey.map(|prekey| Claimed {
                certificate: keys.certificate,
                prekey,
            }))
        })
        .await
    }

    fn owners(&self) -> u64 {
        self.inner.owners.load(Ordering::SeqCst)
    }
}
