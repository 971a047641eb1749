//! RSA identities, public keys, fingerprints and safety numbers.

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;

use rand::CryptoRng;
use rsa::pkcs8::der::Document;
use rsa::pkcs8::spki::SubjectPublicKeyInfoRef;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
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
const SAFETY_NUMBER_TAG: &[u8] = b"secure-messenger/safety-number/v1\0";

/// SHA-256 of a public key's SPKI DER encoding.
///
/// Written as 64 lowercase hex characters in APIs and files ([`fmt::Display`], [`FromStr`]),
/// and in groups of four for people comparing aloud ([`Fingerprint::grouped`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

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
#[derive(Clone)]
pub struct PublicKey {
    key: rsa::PublicKey,
    der: Vec<u8>,
    fingerprint: Fingerprint,
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
        let spki = SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
            return Err(KeyError::NotRsa {
                algorithm: spki.algorithm.oid.to_string(),
            });
        }
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Malformed("unaligned key bits".into()))?;
        let pkcs1 = rsa::pkcs1::RsaPublicKeyRef::try_from(raw)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        let bits = bit_length(pkcs1.modulus.as_bytes());
        check_bits(bits)?;
        if pkcs1.public_exponent.as_bytes() != [0x01, 0x00, 0x01] {
            return Err(KeyError::BadExponent);
        }
        let key =
            rsa::PublicKey::try_from(pkcs1).map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(Self::from_rsa(key, der.to_vec()))
    }

    fn from_rsa(key: rsa::PublicKey, der: Vec<u8>) -> Self {
        let fingerprint = Fingerprint::of_spki_der(&der);
        Self {
            key,
            der,
            fingerprint,
        }
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
        bit_length(&self.key.n_bytes())
    }

    pub(crate) fn rsa(&self) -> &rsa::PublicKey {
        &self.key
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
/// process (load once); every private-key operation takes milliseconds.
pub struct Identity {
    key: rsa::PrivateKey,
    public: PublicKey,
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
        Ok(Self { key, public })
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
        let pem = self.to_pkcs8_pem()?;
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// Read a PKCS#8 PEM private key file.
    pub fn read_pkcs8_pem_file(path: &Path) -> Result<Self, Error> {
        let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?);
        Ok(Self::from_pkcs8_pem(&pem)?)
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
    use super::*;

    #[test]
    fn bit_length_counts_significant_bits() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0, 1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0, 0x7f, 0]), 15);
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
