//! The device key store: what identities publish so that others can start forward-secret
//! sessions with them (Matrix's model: a device certificate, one-time keys, a fallback key).
//!
//! [`KeyStore`] is the interface the core uses; [`MemoryKeys`] keeps it in memory (tests)
//! and `SledKeys` (feature `server`) in a sled database of its own, `<data dir>/keys`, apart
//! from the time-partitioned queue: keys do not expire with retention. The store keeps the
//! bytes it is given; the core checks every signature before publishing (a mailbox that
//! serves altered keys is caught by the claimer anyway, who checks them again).
//!
//! # Contract (both engines, `tests.rs`)
//!
//! - A publication for another device than the one stored replaces everything of that
//!   owner (a restored identity is a new device: its old keys are useless).
//! - One-time keys are added without duplicates (a retried publication adds nothing) up to
//!   [`KeyLimits::max_one_time`]; the answer is how many the owner has now.
//! - A new owner past [`KeyLimits::max_owners`] is refused ([`Published::Full`]).
//! - A claim takes the owner's oldest one-time key and deletes it durably before it
//!   answers; with none left (or when the claimer may not have one), it serves the
//!   fallback key, which stays.
//!
//! # Sled layout
//!
//! ```text
//! c | owner (32)                    ->  device id (16) | certificate
//! k | owner (32) | sequence (u64 BE) ->  signed one-time key (crypto::PREKEY_LEN bytes)
//! f | owner (32)                    ->  signed fallback key
//! ```
//!
//! Every write is one batch, flushed and fdatasynced before it answers.

mod memory;
#[cfg(feature = "server")]
mod sled_keys;
#[cfg(test)]
pub(crate) mod tests;

pub use memory::MemoryKeys;
#[cfg(feature = "server")]
pub use sled_keys::SledKeys;

use crypto::{DeviceId, Fingerprint, PREKEY_LEN};

use super::StoreError;

/// What an identity publishes about its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// The device's id (from its certificate).
    pub device: DeviceId,
    /// The device certificate, as `crypto` encodes it.
    pub certificate: Vec<u8>,
    /// New one-time keys, each a signed prekey as `crypto` encodes it.
    pub one_time: Vec<[u8; PREKEY_LEN]>,
    /// A new fallback key, replacing the one stored.
    pub fallback: Option<[u8; PREKEY_LEN]>,
}

/// The bounds a publication is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLimits {
    /// Identities whose keys are kept, at most.
    pub max_owners: u64,
    /// One-time keys kept per identity, at most.
    pub max_one_time: usize,
}

/// The outcome of a publication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Durable; the owner now has this many one-time keys here.
    Stored {
        /// One-time keys left for claimers.
        one_time: u64,
    },
    /// A new owner, and the store keeps as many owners as it may: nothing was stored.
    Full,
}

/// What a claim takes: the owner's certificate and one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The device certificate.
    pub certificate: Vec<u8>,
    /// A one-time key (now deleted here) or the fallback key.
    pub prekey: [u8; PREKEY_LEN],
}

/// The key operations the core needs.
pub trait KeyStore: Send + Sync + 'static {
    /// Store `owner`'s publication (see the contract); resolves once durable.
    fn publish(
        &self,
        owner: Fingerprint,
        publication: Publication,
        limits: KeyLimits,
    ) -> impl Future<Output = Result<Published, StoreError>> + Send;
    /// Take one of `owner`'s keys: the oldest one-time key if `one_time` allows and one is
    /// left (deleted durably before this resolves), else the fallback key. `None` when the
    /// owner has published nothing, or nothing that may be served.
    fn claim(
        &self,
        owner: Fingerprint,
        one_time: bool,
    ) -> impl Future<Output = Result<Option<Claimed>, StoreError>> + Send;
    /// How many identities have keys here (cheap).
    fn owners(&self) -> u64;
}

/// One owner's keys, as every engine reasons about them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerKeys {
    /// The device, once it published.
    pub device: Option<DeviceId>,
    /// Its certificate.
    pub certificate: Vec<u8>,
    /// One-time keys, oldest first.
    pub one_time: Vec<[u8; PREKEY_LEN]>,
    /// The fallback key.
    pub fallback: Option<[u8; PREKEY_LEN]>,
}

impl OwnerKeys {
    /// Apply a publication; returns the one-time keys added (for the engine's writes).
    pub(crate) fn apply(
        &mut self,
        publication: Publication,
        max_one_time: usize,
    ) -> Vec<[u8; PREKEY_LEN]> {
        if self.device != Some(publication.device) {
            *self = Self {
                device: Some(publication.device),
                ..Self::default()
            };
        }
        self.certificate = publication.certificate;
        if publication.fallback.is_some() {
            self.fallback = publication.fallback;
        }
        let mut added = Vec::new();
        for key in publication.one_time {
            if self.one_time.len() >= max_one_time {
                break;
            }
            if !self.one_time.contains(&key) {
                self.one_time.push(key);
                added.push(key);
            }
        }
        added
    }
}
