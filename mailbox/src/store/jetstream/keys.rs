//! [`JetStreamKeys`]: the device key store in a JetStream key-value bucket, one entry per
//! identity (its certificate, one-time keys and fallback key; a few kilobytes). Every write
//! is a compare-and-set on the entry's revision, so a one-time key is served once however
//! many front-ends claim at the same moment: the loser of a race reads again and takes the
//! next key. Entries are read from the bucket's stream leader (consistent), not from a
//! replica. A claimed key is gone from the bucket (a quorum has the new revision) before the
//! claim is answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::jetstream::{self, kv, stream};
use crypto::{DeviceId, Fingerprint, PREKEY_LEN};
use serde::{Deserialize, Serialize};

use super::{NatsOptions, connect, nats_error, until_ready};
use crate::store::StoreError;
use crate::store::device_keys::{Claimed, KeyLimits, KeyStore, OwnerKeys, Publication, Published};

/// Attempts of one write before it gives up (each lost race means another front-end wrote
/// the same identity meanwhile).
const ATTEMPTS: usize = 32;

/// The JetStream implementation of [`KeyStore`].
#[derive(Clone, Debug)]
pub struct JetStreamKeys {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bucket: kv::Store,
    stream: stream::Stream,
    name: String,
    owners: AtomicU64,
}

/// An entry as stored (postcard).
#[derive(Serialize, Deserialize)]
struct Wire {
    device: [u8; 16],
    #[serde(with = "serde_bytes")]
    certificate: Vec<u8>,
    one_time: Vec<serde_bytes::ByteBuf>,
    fallback: Option<serde_bytes::ByteBuf>,
}

fn encode(keys: &OwnerKeys) -> Vec<u8> {
    let wire = Wire {
        device: keys.device.map(|d| d.0).unwrap_or_default(),
        certificate: keys.certificate.clone(),
        one_time: keys
            .one_time
            .iter()
            .map(|k| serde_bytes::ByteBuf::from(k.to_vec()))
            .collect(),
        fallback: keys
            .fallback
            .map(|k| serde_bytes::ByteBuf::from(k.to_vec())),
    };
    postcard::to_stdvec(&wire).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<OwnerKeys> {
    let wire: Wire = postcard::from_bytes(bytes).ok()?;
    let prekey = |b: &serde_bytes::ByteBuf| <[u8; PREKEY_LEN]>::try_from(b.as_slice()).ok();
    Some(OwnerKeys {
        device: Some(DeviceId(wire.device)),
        certificate: wire.certificate,
        one_time: wire.one_time.iter().filter_map(prekey).collect(),
        fallback: wire.fallback.as_ref().and_then(prekey),
    })
}

impl JetStreamKeys {
    /// Connect and create the bucket if it is not there.
    pub async fn open(options: &NatsOptions) -> Result<Self, StoreError> {
        let (client, replicas) = connect(options).await?;
        let js = jetstream::new(client);
        let config = kv::Config {
            bucket: options.key_bucket.clone(),
            history: 1,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let bucket = until_ready("the key bucket", options.start_timeout, || async {
            match js.get_key_value(&options.key_bucket).await {
                Ok(bucket) => Ok(bucket),
                Err(_) => js
                    .create_key_value(config.clone())
                    .await
                    .map_err(|e| e.to_string()),
            }
        })
        .await?;
        let stream = js
            .get_stream(format!("KV_{}", options.key_bucket))
            .await
            .map_err(|e| nats_error("the key bucket's stream", e))?;
        let inner = Inner {
            bucket,
            stream,
            name: options.key_bucket.clone(),
            owners: AtomicU64::new(0),
        };
        inner.count_owners().await?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }
}

impl JetStreamKeys {
    /// Store `keys` as `owner`'s, replacing what is there (for `mailbox migrate`).
    pub async fn import(&self, owner: Fingerprint, keys: &OwnerKeys) -> Result<(), StoreError> {
        for _ in 0..ATTEMPTS {
            let (_, revision) = self.inner.load(&owner).await?;
            if self.inner.write(&owner, keys, revision).await? {
                return Ok(());
            }
        }
        Err(lost_races())
    }
}

impl Inner {
    /// `owner`'s keys and the entry's revision (0: none yet), read from the leader.
    async fn load(&self, owner: &Fingerprint) -> Result<(OwnerKeys, u64), StoreError> {
        let subject = format!("$KV.{}.{owner}", self.name);
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => {
                let keys = decode(&message.payload).unwrap_or_default();
                Ok((keys, message.sequence))
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok((OwnerKeys::default(), 0))
            }
            Err(e) => Err(nats_error("reading device keys", e)),
        }
    }

    /// Write `keys` if the entry is still at `revision` (0: absent); `false` if it moved.
    async fn write(
        &self,
        owner: &Fingerprint,
        keys: &OwnerKeys,
        revision: u64,
    ) -> Result<bool, StoreError> {
        let key = owner.to_string();
        let value = encode(keys).into();
        if revision == 0 {
            return match self.bucket.create(&key, value).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(nats_error("storing device keys", e)),
            };
        }
        match self.bucket.update(&key, value, revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(nats_error("storing device keys", e)),
        }
    }

    /// Count the identities with keys here (one stream request).
    async fn count_owners(&self) -> Result<u64, StoreError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| nats_error("counting key owners", e))?;
        let owners = info.state.subjects_count;
        self.owners.store(owners, Ordering::SeqCst);
        Ok(owners)
    }
}

fn lost_races() -> StoreError {
    StoreError::Nats("device keys changed under every attempt; retry".to_owned())
}

impl KeyStore for JetStreamKeys {
    async fn publish(
        &self,
        owner: Fingerprint,
        publication: Publication,
        limits: KeyLimits,
    ) -> Result<Published, StoreError> {
        let inner = &self.inner;
        for _ in 0..ATTEMPTS {
            let (mut keys, revision) = inner.load(&owner).await?;
            if revision == 0 && inner.count_owners().await? >= limits.max_owners {
                return Ok(Published::Full);
            }
            keys.apply(publication.clone(), limits.max_one_time);
            if inner.write(&owner, &keys, revision).await? {
                if revision == 0 {
                    inner.owners.fetch_add(1, Ordering::SeqCst);
                }
                return Ok(Published::Stored {
                    one_time: keys.one_time.len() as u64,
                });
            }
        }
        Err(lost_races())
    }

    async fn claim(
        &self,
        owner: Fingerprint,
        one_time: bool,
    ) -> Result<Option<Claimed>, StoreError> {
        let inner = &self.inner;
        for _ in 0..ATTEMPTS {
            let (mut keys, revision) = inner.load(&owner).await?;
            if revision == 0 || keys.device.is_none() {
                return Ok(None);
            }
            if !one_time || keys.one_time.is_empty() {
                return Ok(keys.fallback.map(|prekey| Claimed {
                    certificate: keys.certificate,
                    prekey,
                }));
            }
            let prekey = keys.one_time.remove(0);
            if inner.write(&owner, &keys, revision).await? {
                return Ok(Some(Claimed {
                    certificate: keys.certificate,
                    prekey,
                }));
            }
        }
        Err(lost_races())
    }

    fn owners(&self) -> u64 {
        self.inner.owners.load(Ordering::SeqCst)
    }
}
