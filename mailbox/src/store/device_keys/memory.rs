//! [`MemoryKeys`]: the key store in memory, for tests; it keeps the same contract as the
//! sled engine.

use std::collections::HashMap;
use std::sync::Mutex;

use crypto::Fingerprint;

use super::{Claimed, KeyLimits, KeyStore, OwnerKeys, Publication, Published};
use crate::store::StoreError;

/// An in-memory [`KeyStore`].
#[derive(Debug, Default)]
pub struct MemoryKeys {
    owners: Mutex<HashMap<Fingerprint, OwnerKeys>>,
}

impl MemoryKeys {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Fingerprint, OwnerKeys>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyStore for MemoryKeys {
    async fn publish(
        &self,
        owner: Fingerprint,
        publication: Publication,
        limits: KeyLimits,
    ) -> Result<Published, StoreError> {
        let mut owners = self.lock();
        if !owners.contains_key(&owner) && owners.len() as u64 >= limits.max_owners {
            return Ok(Published::Full);
        }
        let keys = owners.entry(owner).or_default();
        keys.apply(publication, limits.max_one_time);
        Ok(Published::Stored {
            one_time: keys.one_time.len() as u64,
        })
    }

    async fn claim(
        &self,
        owner: Fingerprint,
        one_time: bool,
    ) -> Result<Option<Claimed>, StoreError> {
        let mut owners = self.lock();
        let Some(keys) = owners.get_mut(&owner) else {
            return Ok(None);
        };
        let prekey = if one_time && !keys.one_time.is_empty() {
            Some(keys.one_time.remove(0))
        } else {
            keys.fallback
        };
        Ok(prekey.map(|prekey| Claimed {
            certificate: keys.certificate.clone(),
            prekey,
        }))
    }

    fn owners(&self) -> u64 {
        self.lock().len() as u64
    }
}
