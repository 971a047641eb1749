//! [`AnyQueue`] and [`AnyKeys`]: the engine the `store` setting chose, behind one type for
//! the server (sled embedded, or JetStream shared by several front-ends).

use crypto::{Fingerprint, MessageId};

use super::{
    Claimed, Incoming, JetStreamKeys, JetStreamQueue, KeyLimits, KeyStore, Publication, Published,
    QueueStats, QueueStore, Quota, SledKeys, SledQueue, StoreError, Stored,
};

/// The queue engine in use.
#[derive(Clone, Debug)]
pub enum AnyQueue {
    /// Embedded, in the data directory.
    Sled(SledQueue),
    /// A JetStream stream shared by the front-ends of a cluster.
    JetStream(JetStreamQueue),
}

/// The device key engine in use.
#[derive(Clone, Debug)]
pub enum AnyKeys {
    /// Embedded, in the data directory.
    Sled(SledKeys),
    /// A JetStream key-value bucket shared by the front-ends of a cluster.
    JetStream(JetStreamKeys),
}

impl AnyQueue {
    /// Resolves if the store fails for good (sled: a write or sync could not be made
    /// durable), with the reason. JetStream's failures are each request's, retried.
    pub async fn failed(&self) -> String {
        match self {
            Self::Sled(q) => q.failed().await,
            Self::JetStream(_) => std::future::pending().await,
        }
    }
}

impl QueueStore for AnyQueue {
    async fn store(&self, incoming: Incoming, quota: Quota) -> Result<Stored, StoreError> {
        match self {
            Self::Sled(q) => q.store(incoming, quota).await,
            Self::JetStream(q) => q.store(incoming, quota).await,
        }
    }

    async fn pull(
        &self,
        recipient: &Fingerprint,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        match self {
            Self::Sled(q) => q.pull(recipient, max_count, max_bytes).await,
            Self::JetStream(q) => q.pull(recipient, max_count, max_bytes).await,
        }
    }

    async fn ack(&self, recipient: Fingerprint, ids: Vec<MessageId>) -> Result<u64, StoreError> {
        match self {
            Self::Sled(q) => q.ack(recipient, ids).await,
            Self::JetStream(q) => q.ack(recipient, ids).await,
        }
    }

    async fn expire(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        match self {
            Self::Sled(q) => q.expire(cutoff_ms).await,
            Self::JetStream(q) => q.expire(cutoff_ms).await,
        }
    }

    fn stats(&self) -> QueueStats {
        match self {
            Self::Sled(q) => q.stats(),
            Self::JetStream(q) => q.stats(),
        }
    }
}

impl KeyStore for AnyKeys {
    async fn publish(
        &self,
        owner: Fingerprint,
        publication: Publication,
        limits: KeyLimits,
    ) -> Result<Published, StoreError> {
        match self {
            Self::Sled(k) => k.publish(owner, publication, limits).await,
            Self::JetStream(k) => k.publish(owner, publication, limits).await,
        }
    }

    async fn claim(
        &self,
        owner: Fingerprint,
        one_time: bool,
    ) -> Result<Option<Claimed>, StoreError> {
        match self {
            Self::Sled(k) => k.claim(owner, one_time).await,
            Self::JetStream(k) => k.claim(owner, one_time).await,
        }
    }

    fn owners(&self) -> u64 {
        match self {
            Self::Sled(k) => k.owners(),
            Self::JetStream(k) => k.owners(),
        }
    }
}
