//! Device keys: PublishKeys (a member puts its device certificate and prekeys on its own
//! mailbox) and ClaimKey (anyone logged in takes one key of a member to start a
//! forward-secret session with it).
//!
//! The mailbox checks what is published (the certificate signed by the owner's RSA key, each
//! prekey by the certified device, each of the kind it claims to be), so it never stores or
//! serves garbage; claimers check again, so a mailbox that lies is caught. Claims are
//! limited per claimer and per owner: past either limit the answer is the owner's fallback
//! key, which stays, so nobody can drain an identity's one-time keys.

use crypto::{DeviceCertificate, Fingerprint, PREKEY_LEN, PublicKey, SignedPrekey};

use super::{Mailbox, Observer};
use crate::protocol::{ErrorCode, MAX_PUBLISHED_KEYS, Response};
use crate::store::{KeyLimits, KeyStore, Publication, Published, QueueStore};

fn malformed(what: impl Into<String>) -> Response {
    Response::error(ErrorCode::Malformed, what)
}

impl<S: QueueStore, O: Observer, K: KeyStore> Mailbox<S, O, K> {
    /// The keys store.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    pub(super) async fn publish_keys(
        &self,
        conn: super::ConnId,
        now_ms: u64,
        owner_key: &[u8],
        certificate: Vec<u8>,
        one_time: Vec<Vec<u8>>,
        fallback: Option<Vec<u8>>,
    ) -> Result<Response, Response> {
        let owner = PublicKey::from_der(owner_key)
            .map_err(|e| malformed(format!("the owner's key: {e}")))?;
        let fingerprint = owner.fingerprint();
        self.with_session(conn, |s| s.require_login(&fingerprint))?;
        self.require_member(&fingerprint, "publishing keys")?;
        if one_time.len() > MAX_PUBLISHED_KEYS {
            return Err(Response::error(
                ErrorCode::TooLarge,
                format!("publish at most {MAX_PUBLISHED_KEYS} one-time keys at once"),
            ));
        }
        if !self.state().publishers.allow(&fingerprint, now_ms) {
            return Err(Response::error(
                ErrorCode::RateLimited,
                "this identity publishes keys too often; retry later",
            ));
        }
        // Signature checks (public-key operations) run without the lock.
        let certified = DeviceCertificate::from_bytes(&certificate)
            .and_then(|c| c.verify(&owner))
            .map_err(|e| malformed(format!("the device certificate: {e}")))?;
        let check = |bytes: &[u8], fallback: bool| -> Result<[u8; PREKEY_LEN], Response> {
            let prekey =
                SignedPrekey::from_bytes(bytes).map_err(|e| malformed(format!("a prekey: {e}")))?;
            certified
                .verify_prekey(&prekey)
                .map_err(|e| malformed(format!("a prekey: {e}")))?;
            if prekey.is_fallback() != fallback {
                return Err(malformed(
                    "a prekey of the wrong kind (one-time or fallback)",
                ));
            }
            Ok(prekey.to_bytes())
        };
        let one_time = one_time
            .iter()
            .map(|k| check(k, false))
            .collect::<Result<Vec<_>, _>>()?;
        let fallback = fallback.map(|k| check(&k, true)).transpose()?;
        let publication = Publication {
            device: certified.id(),
            certificate,
            one_time,
            fallback,
        };
        let limits = KeyLimits {
            max_owners: self.policy.max_key_owners,
            max_one_time: self.policy.max_one_time_keys,
        };
        match self.keys.publish(fingerprint, publication, limits).await {
            Ok(Published::Stored { one_time }) => Ok(Response::KeysPublished {
                one_time: u32::try_from(one_time).unwrap_or(u32::MAX),
            }),
            Ok(Published::Full) => {
                tracing::warn!("the key store holds as many identities as it may");
                Err(Response::error(
                    ErrorCode::MailboxFull,
                    "the mailbox keeps keys of as many identities as it may",
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "publishing keys failed");
                Err(Response::error(
                    ErrorCode::Internal,
                    "the mailbox could not store the keys; retry",
                ))
            }
        }
    }

    pub(super) async fn claim_key(
        &self,
        conn: super::ConnId,
        now_ms: u64,
        claimer: Fingerprint,
        owner: Fingerprint,
    ) -> Result<Response, Response> {
        self.with_session(conn, |s| s.require_login(&claimer))?;
        self.require_member(&owner, "the key's owner")?;
        let one_time = {
            let mut state = self.state();
            state.claimers.allow(&claimer, now_ms) && state.claimed.allow(&owner, now_ms)
        };
        match self.keys.claim(owner, one_time).await {
            Ok(Some(claimed)) => Ok(Response::KeyClaimed {
                certificate: claimed.certificate,
                prekey: claimed.prekey.to_vec(),
            }),
            Ok(None) => Err(Response::error(
                ErrorCode::NoKeys,
                format!("{owner} has no keys to claim here now"),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "claiming a key failed");
                Err(Response::error(
                    ErrorCode::Internal,
                    "the mailbox could not take a key; retry",
                ))
            }
        }
    }
}
