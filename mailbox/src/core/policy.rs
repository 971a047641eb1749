//! What a mailbox allows ([`Policy`], from its configuration), and what it counts for an
//! [`Observer`] (the metrics).

use std::collections::HashSet;
use std::time::Duration;

use crypto::Fingerprint;

use crate::protocol::{ErrorCode, MAX_FRAME};
use crate::store::Quota;

/// The limits and admission rules the mailbox enforces.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Largest envelope, bytes.
    pub max_envelope_bytes: usize,
    /// Per-recipient quota, and the bound on what one sending address stores.
    pub quota: Quota,
    /// Per-identity SEND rate (per second) and burst.
    pub rate: (f64, f64),
    /// Per-address request rate (per second) and burst.
    pub address_rate: (f64, f64),
    /// Connections per source address (counted once their handshake is done: only peers
    /// that proved their address).
    pub max_connections_per_address: usize,
    /// Handshakes in progress per source address that QUIC has not validated; more get a
    /// Retry.
    pub max_handshakes_per_address: usize,
    /// Connections one identity may be logged in on at once.
    pub max_logins_per_identity: usize,
    /// When not empty, the only identities admitted.
    pub allowlist: HashSet<Fingerprint>,
    /// How long an envelope is kept when nobody acknowledges it.
    pub retention: Duration,
    /// Most live bytes in all, if capped.
    pub max_total_bytes: Option<u64>,
    /// Most envelopes queued in all.
    pub max_total_envelopes: u64,
    /// Free disk space below which SENDs are refused.
    pub min_free_disk_bytes: u64,
    /// Identities whose device keys are kept, at most.
    pub max_key_owners: u64,
    /// One-time keys kept per identity, at most.
    pub max_one_time_keys: usize,
    /// One-time keys served per claimer, and per owner, an hour (a burst of as many); past
    /// it claims get the fallback key, so nobody drains an identity's keys.
    pub key_claims_per_hour: f64,
    /// Key publications per identity an hour (a burst of as many).
    pub key_publishes_per_hour: f64,
}

/// Why a configuration does not make a [`Policy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// An allowlist entry is not a fingerprint.
    #[error("allowlist: {0:?} is not a fingerprint (64 hex characters)")]
    Allowlist(String),
}

impl Policy {
    /// The policy a configuration describes. Refuses an allowlist entry that is not a
    /// fingerprint, naming it.
    pub fn from_config(config: &config::MailboxConfig) -> Result<Self, PolicyError> {
        let allowlist = config
            .allowlist
            .iter()
            .map(|entry| {
                entry
                    .parse()
                    .map_err(|_| PolicyError::Allowlist(entry.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            max_envelope_bytes: config.max_envelope_bytes,
            quota: Quota {
                envelopes: config.quota_envelopes,
                bytes: config.quota_bytes,
                origin_bytes: config.max_bytes_per_address,
                origin_envelopes: config.max_envelopes_per_address,
            },
            rate: (config.rate_per_second, config.rate_burst),
            address_rate: (config.address_rate_per_second, config.address_rate_burst),
            max_connections_per_address: config.max_connections_per_address,
            max_handshakes_per_address: config.max_handshakes_per_address,
            max_logins_per_identity: config.max_logins_per_identity,
            allowlist,
            retention: config.retention,
            max_total_bytes: config.max_total_bytes,
            max_total_envelopes: config.max_total_envelopes,
            min_free_disk_bytes: config.min_free_disk_bytes,
            max_key_owners: config.max_key_owners,
            max_one_time_keys: config.max_one_time_keys,
            key_claims_per_hour: config.key_claims_per_hour,
            key_publishes_per_hour: config.key_publishes_per_hour,
        })
    }

    /// The largest request accepted: one envelope and its frame.
    pub fn request_limit(&self) -> usize {
        (self.max_envelope_bytes + 1024).clamp(64 * 1024, MAX_FRAME + 4)
    }
}

/// Something the mailbox counts, for an [`Observer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// A connection finished its handshake.
    Connected,
    /// An established connection ended.
    Disconnected,
    /// An identity logged in on a connection (counted once per connection).
    LoggedIn,
    /// This many logins ended with their connection.
    LoggedOut(u64),
    /// A new envelope is durable.
    Stored,
    /// This many envelopes were acknowledged and deleted.
    Delivered(u64),
    /// This many envelopes outlived the retention period and were deleted.
    Expired(u64),
    /// A request or connection was refused, for this reason.
    Refused(ErrorCode),
}

/// Receives what the mailbox counts.
pub trait Observer: Send + Sync + 'static {
    /// One thing happened.
    fn observe(&self, tally: Tally);
}

/// Counts nothing.
impl Observer for () {
    fn observe(&self, _: Tally) {}
}

impl<T: Observer> Observer for std::sync::Arc<T> {
    fn observe(&self, tally: Tally) {
        (**self).observe(tally);
    }
}
