//! RSA identities, public keys, fingerprints and safety numbers.

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use rand::{CryptoRng, Rng as _};
use rsa::pkcs8::der::asn1::{BitStringRef, OctetStringRef};
use rsa::pkcs8::der::{Document, Encode as _, SecretDocument};
use rsa::pkcs8::pkcs5::pbes2::{self, Kdf};
use rsa::pkcs8::pkcs5::{EncryptionScheme, scrypt};
use rsa::pkcs8::spki::SubjectPublicKeyInfoRef;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey as _, EncodePrivateKey, EncodePublicKey,
    EncryptedPrivateKeyInfo, EncryptedPrivateKeyInfoRef, LineEnding,
};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use crate::error::{Error, KeyError};

/// Size of the identities this crate generates.
pub const IDENTITY_BITS: usize = 2048;
/// Smallest RSA key accepted on import.
pub const MIN_KEY_BITS: usize = 2048;
/// Largest RSA key accepted on import.
pub const MAX_KEY_BITS: usize = 4096;

const PUBLIC_LABEL: &str = "PUBLIC KEY";
const PRIVATE_LABEL: &str = "PRIVATE KEY";
const ENCRYPTED_PRIVATE_LABEL: &str = "ENCRYPTED PRIVATE KEY";
const SAFETY_NUMBER_TAG: &[u8] = b"secure-messenger/safety-number/v1\0";

/// scrypt cost of the key files we write: N = 2^14, r = 8, p = 1 (16 MiB, ~30 ms optimised).
///
/// N = 2^15 would need 32 MiB plus a little, just over OpenSSL 3's default scrypt memory limit
/// (32 MiB), and `openssl pkey` then refuses the file ("memory limit exceeded"). These are
/// also the parameters `openssl pkcs8 -topk8 -scrypt` and RustCrypto's pkcs5 use by default.
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const PBES2_SALT_LEN: usize = 16;
const AES_CBC_IV_LEN: usize = 16;
/// Largest scrypt work (128 * N * r * p bytes; also its memory when p = 1) accepted on import,
/// so that a hostile key file cannot make us allocate gigabytes or spin for minutes. 16 times
/// what we and OpenSSL write.
const MAX_SCRYPT_WORK: u64 = 256 << 20;
/// Largest PBKDF2 iteration count accepted on import (OpenSSL writes 2048, OWASP suggests
/// 600 000 for HMAC-SHA-256).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// SHA-256 of a public key's SPKI DER encoding.
///
/// Written as 64 lowercase hex characters in APIs and files ([`fmt::Display`], [`FromStr`]),
/// and in groups of four for people comparing aloud ([`Fingerprint::grouped`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);
crate::hex_serde::hex_bytes_serde!(Fingerprint, 32);

impl Fingerprint {
    /// The fingerprint of some SPKI DER bytes.
    pub fn of_spki_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex in groups of four, e.g. `3f2a 9c01 ...`, for reading aloud.
    pub fn grouped(&self) -> String {
        let hex = hex::encode(self.0);
        let groups: Vec<&str> = hex
            .as_bytes()
            .chunks(4)
            // Hex output is ASCII, so every chunk is valid UTF-8.
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        groups.join(" ")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Error parsing a [`Fingerprint`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fingerprint is 64 hexadecimal characters (SHA-256)")]
pub struct FingerprintParseError;

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(FingerprintParseError);
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| FingerprintParseError)?;
        Ok(Self(out))
    }
}

/// An RSA public key of 2048 to 4096 bits with exponent 65537, and its fingerprint.
///
/// Importing one checks it fully but loads it into no RSA implementation: each backend
/// loads it the first time it needs to (the rsa crate's form costs ~10 µs to build, the
/// aws-lc-rs encryption key a few µs), and clones share what was loaded. So a key that is
/// only verified once on aws-lc-rs (a sender's key inside an envelope, a key at a mailbox
/// login) costs no more than its parse. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct PublicKey {
    der: Vec<u8>,
    fingerprint: Fingerprint,
    bits: usize,
    loaded: Arc<Loaded>,
}

/// A public key's forms for each backend, each built on first use.
#[derive(Default)]
struct Loaded {
    rsa: OnceLock<rsa::PublicKey>,
    #[cfg(feature = "aws-lc")]
    aws_lc: OnceLock<crate::aws_lc::PublicKey>,
}

impl PublicKey {
    /// Import an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as written by
    /// `openssl pkey -pubout` and by [`PublicKey::to_pem`].
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = decode_pem(pem, PUBLIC_LABEL)?;
        Self::from_der(&der)
    }

    /// Import SPKI DER bytes.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let malformed = |e: &dyn fmt::Display| KeyError::Malformed(e.to_string());
        let spki = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| malformed(&e))?;
        if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
            return Err(KeyError::NotRsa {
                algorithm: spki.algorithm.oid.to_string(),
            });
        }
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Malformed("unaligned key bits".into()))?;
        let pkcs1 = rsa::pkcs1::RsaPublicKeyRef::try_from(raw).map_err(|e| malformed(&e))?;
        let modulus = pkcs1.modulus.as_bytes();
        let bits = bit_length(modulus);
        check_bits(bits)?;
        if pkcs1.public_exponent.as_bytes() != [0x01, 0x00, 0x01] {
            return Err(KeyError::BadExponent);
        }
        // The one check of the rsa crate's `PublicKey::try_from` that the ones above do not
        // imply (a modulus of 2048+ bits is not zero and exceeds e): so building the rsa
        // crate's form later cannot fail.
        if modulus.last().is_none_or(|low| low & 1 == 0) {
            return Err(KeyError::Malformed("the modulus is even".into()));
        }
        // One key, one fingerprint: the fingerprint hashes the DER, so only the canonical
        // encoding (the one we, the rsa crate and OpenSSL write) is accepted.
        let pkcs1_der = pkcs1.to_der().map_err(|e| malformed(&e))?;
        let canonical = SubjectPublicKeyInfoRef {
            algorithm: rsa::pkcs1::ALGORITHM_ID,
            subject_public_key: BitStringRef::new(0, &pkcs1_der).map_err(|e| malformed(&e))?,
        }
        .to_der()
        .map_err(|e| malformed(&e))?;
        if canonical != der {
            return Err(KeyError::Malformed(
                "the key is not in its canonical DER encoding".into(),
            ));
        }
        Ok(Self {
            der: der.to_vec(),
            fingerprint: Fingerprint::of_spki_der(der),
            bits,
            loaded: Arc::default(),
        })
    }

    /// The SPKI PEM encoding, readable by `openssl pkey -pubin`.
    pub fn to_pem(&self) -> String {
        // Encoding a DER document we already hold as PEM cannot fail.
        Document::try_from(self.der.as_slice())
            .and_then(|d| d.to_pem(PUBLIC_LABEL, LineEnding::LF))
            .unwrap_or_default()
    }

    /// The SPKI DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of [`Self::der`].
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The rsa crate's form of the key: built on first use, then kept.
    pub(crate) fn rsa(&self) -> Result<&rsa::PublicKey, KeyError> {
        if let Some(key) = self.loaded.rsa.get() {
            return Ok(key);
        }
        // Two threads may both build it; one copy is kept, the other dropped.
        let key = rsa::PublicKey::from_public_key_der(&self.der)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(self.loaded.rsa.get_or_init(|| key))
    }

    /// The key loaded into AWS-LC for encryption: loaded on first use, then kept.
    #[cfg(feature = "aws-lc")]
    pub(crate) fn aws_lc(&self) -> Result<&crate::aws_lc::PublicKey, KeyError> {
        if let Some(key) = self.loaded.aws_lc.get() {
            return Ok(key);
        }
        let key = crate::aws_lc::PublicKey::from_spki_der(&self.der)?;
        Ok(self.loaded.aws_lc.get_or_init(|| key))
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// A private RSA identity: what a user sends and receives messages as.
///
/// Its `Debug` output shows only the fingerprint. Keep one per identity for the life of the
/// process (load once): with the aws-lc backend, the key is loaded into AWS-LC when the
/// identity is made, and every private-key operation still takes a quarter of a millisecond
/// (milliseconds with the rsa crate). `Send + Sync`: share it behind an `Arc`.
pub struct Identity {
    key: rsa::PrivateKey,
    public: PublicKey,
    #[cfg(feature = "aws-lc")]
    aws_lc: crate::aws_lc::PrivateKey,
}

impl Identity {
    /// Generate a fresh RSA-2048 identity (e = 65537) from the thread RNG.
    pub fn generate() -> Result<Self, Error> {
        Self::generate_with_rng(&mut rand::rng())
    }

    /// Generate a fresh RSA-2048 identity (e = 65537) from the given RNG.
    pub fn generate_with_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        // Not `Generate::generate`: that makes 3072-bit keys. The size here is explicit.
        let key =
            rsa::PrivateKey::new(rng, IDENTITY_BITS).map_err(|e| Error::Rsa(e.to_string()))?;
        Self::from_rsa(key).map_err(Error::Key)
    }

    fn from_rsa(key: rsa::PrivateKey) -> Result<Self, KeyError> {
        let public_rsa = key.to_public_key();
        let der = public_rsa
            .to_public_key_der()
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        // Round-trip through the importer so an identity obeys every rule a contact's key does.
        let public = PublicKey::from_der(der.as_bytes())?;
        // The rsa crate's form is at hand: keep it rather than build it again on first use.
        // (A fresh key shares nothing yet, so the cell is empty and this cannot be refused.)
        let _ = public.loaded.rsa.set(public_rsa);
        #[cfg(feature = "aws-lc")]
        let aws_lc = {
            let pkcs8 = key
                .to_pkcs8_der()
                .map_err(|e| KeyError::Malformed(e.to_string()))?;
            crate::aws_lc::PrivateKey::from_pkcs8_der(pkcs8.as_bytes())?
        };
        Ok(Self {
            key,
            public,
            #[cfg(feature = "aws-lc")]
            aws_lc,
        })
    }

    /// Import an unencrypted PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        decode_pem(pem, PRIVATE_LABEL)?;
        let key = rsa::PrivateKey::from_pkcs8_pem(pem.trim()).map_err(|e| match e {
            rsa::pkcs8::Error::KeyMalformed(_) | rsa::pkcs8::Error::Asn1(_) => {
                KeyError::Malformed(e.to_string())
            }
            other => KeyError::NotRsa {
                algorithm: other.to_string(),
            },
        })?;
        Self::from_rsa(key)
    }

    /// The PKCS#8 PEM encoding of the private key (unencrypted), zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::Rsa(e.to_string()))
    }

    /// Write the private key as PKCS#8 PEM to a new file created with mode 0600.
    ///
    /// Refuses to overwrite an existing file.
    pub fn write_pkcs8_pem_file(&self, path: &Path) -> Result<(), Error> {
        write_new_private_file(path, &self.to_pkcs8_pem()?)
    }

    /// Read a PKCS#8 PEM private key file.
    pub fn read_pkcs8_pem_file(path: &Path) -> Result<Self, Error> {
        Ok(Self::from_pkcs8_pem(&read_key_file(path)?)?)
    }

    /// The private key as passphrase-encrypted PKCS#8 PEM
    /// (`-----BEGIN ENCRYPTED PRIVATE KEY-----`): PBES2 with scrypt and AES-256-CBC, which
    /// OpenSSL reads (`openssl pkey -passin`).
    ///
    /// scrypt runs with N = 2^14, r = 8, p = 1 (16 MiB, tens of milliseconds), a fresh random
    /// 16-byte salt and a fresh random 16-byte IV each call. The passphrase is used as its
    /// UTF-8 bytes, exactly as OpenSSL uses the bytes it is given (no Unicode normalisation).
    /// The text holds no secret in the clear, but is zeroized on drop all the same.
    pub fn to_encrypted_pem(&self, passphrase: &str) -> Result<Zeroizing<String>, Error> {
        let plain = self
            .key
            .to_pkcs8_der()
            .map_err(|e| Error::Rsa(e.to_string()))?;
        encrypt_pem(plain.as_bytes(), passphrase, ENCRYPTED_PRIVATE_LABEL)
    }

    /// Read an encrypted PKCS#8 PEM (ours, or OpenSSL's
    /// `openssl pkcs8 -topk8 -v2 aes-256-cbc -scrypt`).
    ///
    /// Reads only `-----BEGIN ENCRYPTED PRIVATE KEY-----` blocks ([`KeyError::WrongPemLabel`]
    /// otherwise; [`Identity::read_pem_file`] takes either kind). PBES2 with scrypt or
    /// PBKDF2-HMAC-SHA-2 and AES-CBC/GCM is supported; PBES1, SHA-1 and DES are refused as
    /// [`KeyError::Malformed`], and so is a key-derivation cost far above what we or OpenSSL
    /// write (a hostile file must not cost gigabytes or minutes). A wrong passphrase, or a
    /// ciphertext damaged so that it no longer decrypts to a PKCS#8 key, is
    /// [`KeyError::WrongPassphrase`]. The decrypted key then passes the same checks as
    /// [`Identity::from_pkcs8_pem`].
    pub fn from_encrypted_pem(pem: &str, passphrase: &str) -> Result<Self, KeyError> {
        let der = decode_pem(pem, ENCRYPTED_PRIVATE_LABEL)?;
        let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        check_kdf_cost(&info.encryption_algorithm)?;
        let plain = info.decrypt(passphrase).map_err(|e| match e {
            // Bad CBC padding or GCM tag; or padding that happened to look right around
            // plaintext that is not DER.
            rsa::pkcs8::Error::EncryptedPrivateKey(rsa::pkcs8::pkcs5::Error::DecryptFailed)
            | rsa::pkcs8::Error::Asn1(_) => KeyError::WrongPassphrase,
            other => KeyError::Malformed(other.to_string()),
        })?;
        let key = rsa::PrivateKey::from_pkcs8_der(plain.as_bytes()).map_err(|e| match e {
            // Decrypted to DER, but not to a PKCS#8 key: again the passphrase (or damage).
            rsa::pkcs8::Error::KeyMalformed(_) | rsa::pkcs8::Error::Asn1(_) => {
                KeyError::WrongPassphrase
            }
            other => KeyError::NotRsa {
                algorithm: other.to_string(),
            },
        })?;
        Self::from_rsa(key)
    }

    /// Write the private key as an encrypted PKCS#8 PEM file ([`Identity::to_encrypted_pem`]),
    /// created with mode 0600.
    ///
    /// Refuses to overwrite an existing file, like [`Identity::write_pkcs8_pem_file`].
    pub fn write_encrypted_pem_file(&self, path: &Path, passphrase: &str) -> Result<(), Error> {
        write_new_private_file(path, &self.to_encrypted_pem(passphrase)?)
    }

    /// Read a private key file that is either plain PKCS#8 (`PRIVATE KEY`; the passphrase is
    /// ignored) or encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`; needs `Some(passphrase)`, and
    /// with `None` fails with [`KeyError::PassphraseRequired`] before any key derivation).
    ///
    /// Any other PEM block is [`KeyError::WrongPemLabel`], and text that is not PEM is
    /// [`KeyError::NotPem`].
    pub fn read_pem_file(path: &Path, passphrase: Option<&str>) -> Result<Self, Error> {
        let pem = read_key_file(path)?;
        let label = rsa::pkcs8::der::pem::decode_label(pem.trim().as_bytes())
            .map_err(|_| KeyError::NotPem)?;
        let identity = match (label, passphrase) {
            (ENCRYPTED_PRIVATE_LABEL, Some(passphrase)) => {
                Self::from_encrypted_pem(&pem, passphrase)
            }
            (ENCRYPTED_PRIVATE_LABEL, None) => Err(KeyError::PassphraseRequired),
            // Any other label is refused by `from_pkcs8_pem` with `WrongPemLabel`.
            _ => Self::from_pkcs8_pem(&pem),
        }?;
        Ok(identity)
    }

    /// This identity's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// This identity's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint
    }

    pub(crate) fn rsa(&self) -> &rsa::PrivateKey {
        &self.key
    }

    #[cfg(feature = "aws-lc")]
    pub(crate) fn aws_lc(&self) -> &crate::aws_lc::PrivateKey {
        &self.aws_lc
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.public.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The safety number of two identities: 60 digits in 12 groups of 5, the same whichever side
/// computes it. Two people who read the same number aloud hold each other's real keys.
pub fn safety_number(a: &Fingerprint, b: &Fingerprint) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut hasher = Sha512::new();
    hasher.update(SAFETY_NUMBER_TAG);
    hasher.update(lo.0);
    hasher.update(hi.0);
    let digest = hasher.finalize();
    let groups: Vec<String> = digest
        .chunks_exact(5)
        .take(12)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", value % 100_000)
        })
        .collect();
    groups.join(" ")
}

/// Create a new file with mode 0600 holding `contents`; refuses to overwrite.
pub(crate) fn write_new_private_file(path: &Path, contents: &str) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Read a key file into memory that is zeroized on drop.
pub(crate) fn read_key_file(path: &Path) -> Result<Zeroizing<String>, Error> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
}

/// `secret` encrypted under `passphrase` as the DER of an `EncryptedPrivateKeyInfo` (PBES2:
/// scrypt N = 2^14, r = 8, p = 1, and AES-256-CBC, with a fresh salt and IV) in a PEM block
/// labelled `label`: the container of encrypted PKCS#8 keys, for any secret.
pub(crate) fn encrypt_pem(
    secret: &[u8],
    passphrase: &str,
    label: &'static str,
) -> Result<Zeroizing<String>, Error> {
    let rng = &mut rand::rng();
    let err = |e: &dyn fmt::Display| Error::Rsa(e.to_string());
    let mut salt = [0u8; PBES2_SALT_LEN];
    let mut iv = [0u8; AES_CBC_IV_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut iv);
    let cost = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P).map_err(|e| err(&e))?;
    let params =
        pbes2::Parameters::generate_scrypt_aes256cbc(cost, &salt, iv).map_err(|e| err(&e))?;
    let ciphertext = params.encrypt(passphrase, secret).map_err(|e| err(&e))?;
    let info = EncryptedPrivateKeyInfo {
        encryption_algorithm: params.into(),
        encrypted_data: OctetStringRef::new(&ciphertext).map_err(|e| err(&e))?,
    };
    SecretDocument::encode_msg(&info)
        .and_then(|doc| doc.to_pem(label, LineEnding::LF))
        .map_err(|e| err(&e))
}

/// The secret in a PEM block made by [`encrypt_pem`] with `label`; a wrong passphrase (or a
/// damaged file) is [`KeyError::WrongPassphrase`], a hostile key-derivation cost
/// [`KeyError::Malformed`].
pub(crate) fn decrypt_pem(
    pem: &str,
    passphrase: &str,
    label: &'static str,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let der = decode_pem(pem, label)?;
    let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
        .map_err(|e| KeyError::Malformed(e.to_string()))?;
    check_kdf_cost(&info.encryption_algorithm)?;
    let plain = info
        .encryption_algorithm
        .decrypt(passphrase, info.encrypted_data.as_bytes())
        .map_err(|_| KeyError::WrongPassphrase)?;
    Ok(Zeroizing::new(plain))
}

/// Refuse PBES2 parameters whose key derivation would cost far more than any key file we or
/// OpenSSL write; also refuses an scrypt N that is not a power of two above 1 (pkcs5 would
/// panic on N = 0).
fn check_kdf_cost(scheme: &EncryptionScheme) -> Result<(), KeyError> {
    let too_costly =
        |what: String| KeyError::Malformed(format!("key derivation too costly: {what}"));
    let EncryptionScheme::Pbes2(params) = scheme else {
        // PBES1 is refused by the decryption itself, before any key derivation.
        return Ok(());
    };
    match &params.kdf {
        Kdf::Scrypt(scrypt) => {
            let n = scrypt.cost_parameter;
            if n < 2 || !n.is_power_of_two() {
                return Err(KeyError::Malformed(format!(
                    "scrypt N = {n} is not a power of two above 1"
                )));
            }
            let work = n
                .checked_mul(128)
                .and_then(|w| w.checked_mul(u64::from(scrypt.block_size)))
                .and_then(|w| w.checked_mul(u64::from(scrypt.parallelization)))
                .unwrap_or(u64::MAX);
            if work > MAX_SCRYPT_WORK {
                return Err(too_costly(format!(
                    "scrypt N = {n}, r = {}, p = {}",
                    scrypt.block_size, scrypt.parallelization
                )));
            }
        }
        Kdf::Pbkdf2(pbkdf2) if pbkdf2.iteration_count > MAX_PBKDF2_ITERATIONS => {
            return Err(too_costly(format!(
                "{} PBKDF2 iterations",
                pbkdf2.iteration_count
            )));
        }
        // Acceptable PBKDF2, or a KDF decryption will refuse (`Kdf` is non-exhaustive).
        _ => {}
    }
    Ok(())
}

/// Decode one PEM block and check its label; the DER inside is checked by the caller.
fn decode_pem(pem: &str, expected: &'static str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let (label, der) =
        rsa::pkcs8::der::pem::decode_vec(pem.trim().as_bytes()).map_err(|_| KeyError::NotPem)?;
    let der = Zeroizing::new(der);
    if label != expected {
        return Err(KeyError::WrongPemLabel {
            expected,
            found: label.to_owned(),
        });
    }
    Ok(der)
}

fn bit_length(big_endian: &[u8]) -> usize {
    let trimmed: &[u8] = match big_endian.iter().position(|b| *b != 0) {
        Some(i) => &big_endian[i..],
        None => &[],
    };
    match trimmed.first() {
        Some(first) => trimmed.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn check_bits(bits: usize) -> Result<(), KeyError> {
    if bits < MIN_KEY_BITS {
        return Err(KeyError::TooSmall {
            bits,
            min: MIN_KEY_BITS,
        });
    }
    if bits > MAX_KEY_BITS {
        return Err(KeyError::TooLarge {
            bits,
            max: MAX_KEY_BITS,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keys_can_be_shared_across_threads() {
        fn shared<T: Send + Sync + 'static>() {}
        fn cloned<T: Clone>() {}
        shared::<Identity>();
        shared::<PublicKey>();
        cloned::<PublicKey>();
    }

    #[test]
    fn bit_length_counts_significant_bits() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0, 1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0, 0x7f, 0]), 15);
    }

    #[test]
    fn a_key_in_another_encoding_is_refused() {
        use rand::SeedableRng;
        use rsa::pkcs8::der::Encode;
        use rsa::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let id = Identity::generate_with_rng(&mut rng).expect("keygen");
        let canonical = id.public_key().der().to_vec();
        let spki = SubjectPublicKeyInfoRef::try_from(canonical.as_slice()).expect("spki");
        // The same key without the NULL algorithm parameters: valid DER, another fingerprint.
        let other = SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef {
                oid: spki.algorithm.oid,
                parameters: None,
            },
            subject_public_key: spki.subject_public_key,
        }
        .to_der()
        .expect("encodes");
        assert_ne!(other, canonical);
        assert!(matches!(
            PublicKey::from_der(&other),
            Err(KeyError::Malformed(_))
        ));
        assert!(PublicKey::from_der(&canonical).is_ok());
    }

    #[test]
    fn an_even_modulus_is_refused_and_the_forms_agree() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let id = Identity::generate_with_rng(&mut rng).expect("keygen");
        let der = id.public_key().der().to_vec();
        // The modulus ends just before the exponent (02 03 01 00 01) at the very end.
        let low = der.len() - 6;
        assert_eq!(&der[low + 1..], [0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(der[low] & 1, 1);
        let mut even = der.clone();
        even[low] ^= 1;
        assert_eq!(
            PublicKey::from_der(&even).unwrap_err(),
            KeyError::Malformed("the modulus is even".into())
        );
        // A fresh import builds the rsa crate's form on first use, and it is the same key.
        let imported = PublicKey::from_der(&der).unwrap();
        assert_eq!(imported.bits(), 2048);
        assert_eq!(
            imported
                .rsa()
                .unwrap()
                .to_public_key_der()
                .unwrap()
                .as_bytes(),
            der.as_slice()
        );
        assert_eq!(imported.rsa().unwrap(), &id.rsa().to_public_key());
    }

    #[test]
    fn fingerprint_text_round_trip() {
        let fp = Fingerprint([0xab; 32]);
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
        assert_eq!(fp.grouped().split(' ').count(), 16);
        assert!("abc".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }

    /// An encrypted-key PEM with the given KDF and junk ciphertext.
    fn encrypted_pem_with(kdf: Kdf) -> String {
        let params = pbes2::Parameters {
            kdf,
            encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: [0; 16] },
        };
        let junk = [0x42u8; 64];
        let info = EncryptedPrivateKeyInfo {
            encryption_algorithm: params.into(),
            encrypted_data: OctetStringRef::new(&junk).unwrap(),
        };
        Document::encode_msg(&info)
            .unwrap()
            .to_pem(ENCRYPTED_PRIVATE_LABEL, LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn hostile_key_derivation_parameters_are_refused_before_deriving() {
        let scrypt_with = |n: u64, r: u16, p: u16| {
            let mut params = pbes2::ScryptParams::from_params_and_salt(
                scrypt::Params::new(14, 8, 1).unwrap(),
                &[1; 16],
            )
            .unwrap();
            params.cost_parameter = n;
            params.block_size = r;
            params.parallelization = p;
            Kdf::Scrypt(params)
        };
        // N = 0 would panic inside pkcs5; N = 3 is not a power of two; 2^30 would take 128 GiB;
        // p = 1000 would take minutes.
        for kdf in [
            scrypt_with(0, 8, 1),
            scrypt_with(3, 8, 1),
            scrypt_with(1 << 30, 8, 1),
            scrypt_with(1 << 14, 8, 1000),
            Kdf::Pbkdf2(pbes2::Pbkdf2Params::hmac_sha256(100_000_000, &[1; 16]).unwrap()),
        ] {
            let started = std::time::Instant::now();
            let err = Identity::from_encrypted_pem(&encrypted_pem_with(kdf), "pw").unwrap_err();
            assert!(matches!(err, KeyError::Malformed(_)), "{err:?}");
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
        // Parameters as we write them pass the check and fail only at decryption.
        assert_eq!(
            Identity::from_encrypted_pem(&encrypted_pem_with(scrypt_with(1 << 14, 8, 1)), "pw")
                .unwrap_err(),
            KeyError::WrongPassphrase
        );
    }

    #[test]
    fn safety_number_is_symmetric_and_distinct() {
        let a = Fingerprint([1; 32]);
        let b = Fingerprint([2; 32]);
        let c = Fingerprint([3; 32]);
        let ab = safety_number(&a, &b);
        assert_eq!(ab, safety_number(&b, &a));
        assert_ne!(ab, safety_number(&a, &c));
        assert_eq!(ab.len(), 12 * 5 + 11);
        assert!(
            ab.split(' ')
                .all(|g| g.len() == 5 && g.bytes().all(|d| d.is_ascii_digit()))
        );
    }
}
