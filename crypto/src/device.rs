//! Devices: the Olm account behind an identity's forward-secret envelopes, bound to the RSA
//! identity that stays the root of trust.
//!
//! An identity has one [`Device`] (an Olm account: a Curve25519 key for the 3DH handshake,
//! an Ed25519 key, one-time and fallback keys). Its [`DeviceCertificate`] says, signed with
//! the identity's RSA key (RSA-PSS-SHA256 over a domain-separated tag):
//! `{owner fingerprint, device id, curve25519, ed25519, created}`. Each one-time or fallback
//! key it publishes is a [`SignedPrekey`], signed by the device's Ed25519 key over the owner,
//! the device id, the kind and the key.
//!
//! Whoever starts a conversation fetches a [`Bundle`] (the certificate and one key) and calls
//! [`Bundle::verify`] with the RSA key it already trusts (from the invite): the certificate
//! must be signed by that key, and the prekey by the certified device. A mailbox that serves
//! bundles can withhold keys but cannot substitute one: a [`VerifiedBundle`] only exists if
//! both signatures hold, and [`Device::outbound`] takes nothing else.
//!
//! State is saved as pickles encrypted under a [`PickleKey`] (vodozemac's pickle encryption),
//! with the device id and owner beside them.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use vodozemac::olm::{Account, AccountPickle, SessionConfig};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};
use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::error::{BundleError, Error, KeyError};
use crate::keys::{Fingerprint, Identity, PublicKey};
use crate::session::Session;

const CERT_TAG: &[u8] = b"secure-messenger/device-certificate/v1\0";
const PICKLE_KEY_LABEL: &str = "ENCRYPTED PICKLE KEY";
const PREKEY_TAG: &[u8] = b"secure-messenger/device-prekey/v1\0";
/// The largest encoded certificate accepted (a 4096-bit signature and the fields fit well).
pub const MAX_CERTIFICATE_LEN: usize = 1024;
/// The length of an encoded [`SignedPrekey`].
pub const PREKEY_LEN: usize = 32 + 1 + 1 + 64;

/// A device's id: random, 128 bits, unique per identity (one device per identity for now;
/// every format carries it so that more devices change no format).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 16]);
crate::hex_serde::hex_bytes_serde!(DeviceId, 16);

impl DeviceId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut id = [0u8; 16];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut id);
        Self(id)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

/// The key that encrypts an identity's device and session pickles at rest: 32 random bytes,
/// kept in its own file (never in a key backup: a restored identity is a new device).
#[derive(Clone)]
pub struct PickleKey(Zeroizing<[u8; 32]>);

impl PickleKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self::generate_with_rng(&mut rand::rng())
    }

    /// A key from the given RNG (tests).
    pub fn generate_with_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut_slice());
        Self(key)
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Its 32 bytes (to store in the key file).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Write the key to a new file (mode 0600; an existing file is not overwritten): with a
    /// passphrase, encrypted as identity keys are (PBES2, scrypt and AES-256-CBC, in a PEM
    /// block `ENCRYPTED PICKLE KEY`); without, 64 hex digits and a newline.
    pub fn write_new_file(
        &self,
        path: &std::path::Path,
        passphrase: Option<&str>,
    ) -> Result<(), Error> {
        let text = match passphrase {
            Some(passphrase) => {
                crate::keys::encrypt_pem(self.0.as_slice(), passphrase, PICKLE_KEY_LABEL)?
            }
            None => Zeroizing::new(hex::encode(self.0.as_slice()) + "\n"),
        };
        crate::keys::write_new_private_file(path, &text)
    }

    /// Read a key written by [`PickleKey::write_new_file`]: an encrypted one needs the
    /// passphrase ([`KeyError::PassphraseRequired`] without it).
    pub fn read_file(path: &std::path::Path, passphrase: Option<&str>) -> Result<Self, Error> {
        let text = crate::keys::read_key_file(path)?;
        let bytes = if text.trim_start().starts_with("-----BEGIN") {
            let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
            crate::keys::decrypt_pem(&text, passphrase, PICKLE_KEY_LABEL)?
        } else {
            Zeroizing::new(hex::decode(text.trim()).unwrap_or_default())
        };
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Malformed(format!("{}: not a pickle key", path.display())))?;
        Ok(Self(Zeroizing::new(key)))
    }
}

impl fmt::Debug for PickleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PickleKey(..)")
    }
}

#[derive(Serialize, Deserialize)]
struct CertificateBody {
    owner: Fingerprint,
    device: DeviceId,
    curve25519: [u8; 32],
    ed25519: [u8; 32],
    created_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct CertificateWire {
    body: Vec<u8>,
    signature: Vec<u8>,
}

/// A device's public keys, signed by its identity's RSA key. Opaque bytes on the wire
/// ([`DeviceCertificate::to_bytes`]); read it with [`DeviceCertificate::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    bytes: Vec<u8>,
}

impl fmt::Debug for DeviceCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceCertificate({} bytes)", self.bytes.len())
    }
}

impl DeviceCertificate {
    /// The certificate's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The certificate from bytes: only the size is checked here, the rest by `verify`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.is_empty() || bytes.len() > MAX_CERTIFICATE_LEN {
            return Err(BundleError::Malformed);
        }
        Ok(Self {
            bytes: bytes.to_vec(),
        })
    }

    /// Check the certificate against the RSA key that should have made it.
    pub fn verify(&self, owner: &PublicKey) -> Result<CertifiedDevice, BundleError> {
        self.verify_using(Backend::DEFAULT, owner)
    }

    /// [`DeviceCertificate::verify`] on the given backend.
    pub fn verify_using(
        &self,
        backend: Backend,
        owner: &PublicKey,
    ) -> Result<CertifiedDevice, BundleError> {
        let wire: CertificateWire = decode_exact(&self.bytes)?;
        backend
            .pss_verify(owner, &[CERT_TAG, &wire.body].concat(), &wire.signature)
            .map_err(|_| BundleError::BadCertificate)?;
        let body: CertificateBody = decode_exact(&wire.body)?;
        if body.owner != owner.fingerprint() {
            return Err(BundleError::WrongOwner);
        }
        let ed25519 =
            Ed25519PublicKey::from_slice(&body.ed25519).map_err(|_| BundleError::BadKey)?;
        Ok(CertifiedDevice {
            owner: body.owner,
            id: body.device,
            curve25519: Curve25519PublicKey::from_bytes(body.curve25519),
            ed25519,
            created_ms: body.created_ms,
        })
    }
}

/// A device whose certificate verified under its owner's RSA key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedDevice {
    owner: Fingerprint,
    id: DeviceId,
    curve25519: Curve25519PublicKey,
    ed25519: Ed25519PublicKey,
    created_ms: u64,
}

impl CertifiedDevice {
    /// The identity it belongs to.
    pub fn owner(&self) -> Fingerprint {
        self.owner
    }
    /// Its id.
    pub fn id(&self) -> DeviceId {
        self.id
    }
    /// Its Curve25519 identity key, as bytes.
    pub fn curve25519(&self) -> [u8; 32] {
        self.curve25519.to_bytes()
    }
    /// When it was made, ms since the Unix epoch, as its owner signed it.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// Check a prekey against this device: `Ok` with the key if the device signed it.
    pub fn verify_prekey(&self, prekey: &SignedPrekey) -> Result<(), BundleError> {
        let signature =
            Ed25519Signature::from_slice(&prekey.signature).map_err(|_| BundleError::BadPrekey)?;
        self.ed25519
            .verify(
                &prekey_input(self.owner, self.id, prekey.fallback, &prekey.key),
                &signature,
            )
            .map_err(|_| BundleError::BadPrekey)
    }
}

fn prekey_input(owner: Fingerprint, device: DeviceId, fallback: bool, key: &[u8; 32]) -> Vec<u8> {
    [
        PREKEY_TAG,
        &owner.0,
        &device.0,
        &[u8::from(fallback)],
        key.as_slice(),
    ]
    .concat()
}

/// A one-time or fallback key, signed by its device's Ed25519 key. [`PREKEY_LEN`] bytes on
/// the wire: the key, a format byte (1), the kind (0 one-time, 1 fallback), the signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignedPrekey {
    key: [u8; 32],
    fallback: bool,
    signature: [u8; 64],
}

impl SignedPrekey {
    /// The public key.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }
    /// A fallback key (served when the one-time keys run out) rather than a one-time key.
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// Its [`PREKEY_LEN`] bytes.
    pub fn to_bytes(&self) -> [u8; PREKEY_LEN] {
        let mut out = [0u8; PREKEY_LEN];
        out[..32].copy_from_slice(&self.key);
        out[32] = 1;
        out[33] = u8::from(self.fallback);
        out[34..].copy_from_slice(&self.signature);
        out
    }

    /// From its bytes (the signature is checked by [`CertifiedDevice::verify_prekey`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        let bytes: &[u8; PREKEY_LEN] = bytes.try_into().map_err(|_| BundleError::Malformed)?;
        let fallback = match (bytes[32], bytes[33]) {
            (1, 0) => false,
            (1, 1) => true,
            _ => return Err(BundleError::Malformed),
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[..32]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[34..]);
        Ok(Self {
            key,
            fallback,
            signature,
        })
    }
}

/// What a claim returns: a device's certificate and one of its prekeys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The device's certificate.
    pub certificate: DeviceCertificate,
    /// One of its one-time keys, or its fallback key.
    pub prekey: SignedPrekey,
}

impl Bundle {
    /// Check the bundle against the RSA key the claimer already trusts for its owner.
    pub fn verify(&self, owner: &PublicKey) -> Result<VerifiedBundle, BundleError> {
        let device = self.certificate.verify(owner)?;
        device.verify_prekey(&self.prekey)?;
        Ok(VerifiedBundle {
            device,
            prekey: Curve25519PublicKey::from_bytes(self.prekey.key),
            fallback: self.prekey.fallback,
        })
    }
}

/// A bundle whose certificate and prekey both verified: the only thing a session can be
/// started from.
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    device: CertifiedDevice,
    prekey: Curve25519PublicKey,
    fallback: bool,
}

impl VerifiedBundle {
    /// The device it reaches.
    pub fn device(&self) -> &CertifiedDevice {
        &self.device
    }
    /// Whether the key was the device's fallback key (its one-time keys ran out).
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }
}

#[derive(Serialize, Deserialize)]
struct DevicePickle {
    owner: Fingerprint,
    id: DeviceId,
    created_ms: u64,
    account: String,
}

/// One identity's device: its Olm account. Not `Clone`: exactly one copy is the live state,
/// saved with [`Device::pickle`] after every change.
pub struct Device {
    owner: Fingerprint,
    id: DeviceId,
    created_ms: u64,
    account: Account,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("owner", &self.owner)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A new device for the identity `owner`, with fresh keys and no one-time keys yet.
    pub fn new(owner: Fingerprint, created: SystemTime) -> Self {
        Self {
            owner,
            id: DeviceId::random(),
            created_ms: created
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            account: Account::new(),
        }
    }

    /// The identity it belongs to.
    pub fn owner(&self) -> Fingerprint {
        self.owner
    }
    /// Its id.
    pub fn id(&self) -> DeviceId {
        self.id
    }
    /// When it was made (ms since the Unix epoch).
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// Its certificate, signed by `identity` (which must be its owner). One RSA private-key
    /// operation: async callers run it off their executor threads.
    pub fn certify(&self, identity: &Identity) -> Result<DeviceCertificate, Error> {
        self.certify_using(Backend::DEFAULT, identity)
    }

    /// [`Device::certify`] on the given backend.
    pub fn certify_using(
        &self,
        backend: Backend,
        identity: &Identity,
    ) -> Result<DeviceCertificate, Error> {
        if identity.fingerprint() != self.owner {
            return Err(Error::WrongIdentity);
        }
        let keys = self.account.identity_keys();
        let body = postcard::to_stdvec(&CertificateBody {
            owner: self.owner,
            device: self.id,
            curve25519: keys.curve25519.to_bytes(),
            ed25519: *keys.ed25519.as_bytes(),
            created_ms: self.created_ms,
        })
        .map_err(Error::Encode)?;
        let signature = backend.pss_sign(
            &mut rand::rng(),
            identity,
            &[CERT_TAG, body.as_slice()].concat(),
        )?;
        let bytes =
            postcard::to_stdvec(&CertificateWire { body, signature }).map_err(Error::Encode)?;
        Ok(DeviceCertificate { bytes })
    }

    /// The most one-time keys worth keeping published at once (vodozemac keeps more private
    /// halves than this, for messages still in flight).
    pub fn max_one_time_keys(&self) -> usize {
        self.account.max_number_of_one_time_keys()
    }

    /// Make `count` new one-time keys; they are unpublished until [`Device::mark_published`].
    pub fn generate_one_time_keys(&mut self, count: usize) {
        self.account.generate_one_time_keys(count);
    }

    /// Make a new fallback key (the previous one stays usable until
    /// [`Device::forget_previous_fallback`]).
    pub fn rotate_fallback_key(&mut self) {
        self.account.generate_fallback_key();
    }

    /// Forget the fallback key before the current one (once sessions started on it have had
    /// time to arrive). Returns whether there was one.
    pub fn forget_previous_fallback(&mut self) -> bool {
        self.account.forget_fallback_key()
    }

    /// The keys not yet published, each signed by this device.
    pub fn unpublished_prekeys(&self) -> Vec<SignedPrekey> {
        let one_time = self
            .account
            .one_time_keys()
            .into_values()
            .map(|k| (k, false));
        let fallback = self.account.fallback_key().into_values().map(|k| (k, true));
        let mut keys: Vec<SignedPrekey> = one_time
            .chain(fallback)
            .map(|(key, fallback)| {
                let key = key.to_bytes();
                SignedPrekey {
                    key,
                    fallback,
                    signature: self
                        .account
                        .sign(prekey_input(self.owner, self.id, fallback, &key))
                        .to_bytes(),
                }
            })
            .collect();
        keys.sort_by_key(|k| (k.fallback, k.key));
        keys
    }

    /// Mark every unpublished key as published (after the mailbox stored them durably).
    pub fn mark_published(&mut self) {
        self.account.mark_keys_as_published();
    }

    /// Start a session with a verified bundle's device. The session is this side's until it
    /// sends: seal with it, store it, then send.
    pub fn outbound(&self, bundle: &VerifiedBundle) -> Result<Session, Error> {
        let session = self
            .account
            .create_outbound_session(
                SessionConfig::version_1(),
                bundle.device.curve25519,
                bundle.prekey,
            )
            .map_err(|e| Error::Olm(e.to_string()))?;
        Ok(Session::new(session, bundle.device.owner, bundle.device.id))
    }

    /// The device's state, encrypted under `key`, to store.
    pub fn pickle(&self, key: &PickleKey) -> Vec<u8> {
        let pickle = DevicePickle {
            owner: self.owner,
            id: self.id,
            created_ms: self.created_ms,
            account: self.account.pickle().encrypt(key.as_bytes()),
        };
        // Fixed-size fields and a string always encode.
        postcard::to_stdvec(&pickle).unwrap_or_default()
    }

    /// A device from [`Device::pickle`]'s bytes and the same key.
    pub fn from_pickle(bytes: &[u8], key: &PickleKey) -> Result<Self, Error> {
        let pickle: DevicePickle = postcard::from_bytes(bytes).map_err(|_| Error::Pickle)?;
        let account = AccountPickle::from_encrypted(&pickle.account, key.as_bytes())
            .map_err(|_| Error::Pickle)?;
        Ok(Self {
            owner: pickle.owner,
            id: pickle.id,
            created_ms: pickle.created_ms,
            account: Account::from_pickle(account),
        })
    }

    /// A copy of the account (through its pickle: vodozemac's account is not `Clone`), so
    /// that a step that fails half-way leaves the live one untouched.
    pub(crate) fn account_copy(&self) -> Account {
        Account::from_pickle(self.account.pickle())
    }

    pub(crate) fn replace_account(&mut self, account: Account) {
        self.account = account;
    }
}

fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, BundleError> {
    crate::envelope::decode_whole(bytes).ok_or(BundleError::Malformed)
}
