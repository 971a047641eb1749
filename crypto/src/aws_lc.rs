//! The aws-lc-rs side of the RSA operations ([`crate::Backend::AwsLc`]): the key objects an
//! [`crate::Identity`] and a [`crate::PublicKey`] keep, and the operations on them.
//!
//! Keys are always checked on import by [`crate::keys`] first (size, exponent, canonical
//! DER); this module then loads the same bytes into AWS-LC once, so no operation parses a key
//! again. The one exception is verification, which reads the SPKI DER on each call through
//! `UnparsedPublicKey` (a microsecond or two, and the same work for every key, good or not).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{
    RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use zeroize::Zeroizing;

use crate::error::{Error, KeyError, OpenError};

fn refused(what: &str, e: &dyn std::fmt::Display) -> KeyError {
    KeyError::Malformed(format!("aws-lc-rs refused the {what}: {e}"))
}

/// A private key loaded into AWS-LC, for signing and for decryption.
///
/// `Send + Sync`: AWS-LC allows concurrent use of one key by non-mutating operations, which
/// are all this crate performs.
pub(crate) struct PrivateKey {
    signing: RsaKeyPair,
    decrypting: OaepPrivateDecryptingKey,
}

impl PrivateKey {
    /// Load a PKCS#8 DER private key (already checked by the rsa crate).
    pub(crate) fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let signing = RsaKeyPair::from_pkcs8(der).map_err(|e| refused("private key", &e))?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(der)
            .map_err(|e| refused("private key", &e))
            .and_then(|key| {
                OaepPrivateDecryptingKey::new(key).map_err(|e| refused("private key", &e))
            })?;
        Ok(Self {
            signing,
            decrypting,
        })
    }

    /// RSA-PSS-SHA256 with a salt of the digest length (32 bytes), as the rsa crate does.
    pub(crate) fn pss_sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let mut signature = vec![0u8; self.signing.public_modulus_len()];
        // aws-lc-rs ignores this RNG (AWS-LC draws the salt from its own generator); the
        // signature API still asks for one.
        self.signing
            .sign(
                &RSA_PSS_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|e| Error::Rsa(format!("PSS signing (aws-lc-rs): {e}")))?;
        Ok(signature)
    }

    /// RSA-OAEP-SHA256 (MGF1-SHA256, empty label) decryption. Any failure, whatever its
    /// cause, is [`OpenError::KeyUnwrap`].
    pub(crate) fn oaep_decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let mut plain = Zeroizing::new(vec![0u8; self.decrypting.min_output_size()]);
        let len = self
            .decrypting
            .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut plain, None)
            .map_err(|_| OpenError::KeyUnwrap)?
            .len();
        plain.truncate(len);
        Ok(plain)
    }
}

/// A public key loaded into AWS-LC for OAEP encryption.
pub(crate) struct PublicKey {
    encrypting: OaepPublicEncryptingKey,
}

impl PublicKey {
    /// Load SPKI DER (already checked by the rsa crate).
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let encrypting = PublicEncryptingKey::from_der(der)
            .map_err(|e| refused("public key", &e))
            .and_then(|key| {
                OaepPublicEncryptingKey::new(key).map_err(|e| refused("public key", &e))
            })?;
        Ok(Self { encrypting })
    }

    /// RSA-OAEP-SHA256 (MGF1-SHA256, empty label) encryption.
    pub(crate) fn oaep_encrypt(&self, secret: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; self.encrypting.ciphertext_size()];
        let len = self
            .encrypting
            .encrypt(&OAEP_SHA256_MGF1SHA256, secret, &mut out, None)
            .map_err(|e| Error::Rsa(format!("OAEP encryption (aws-lc-rs): {e}")))?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

/// Verify RSA-PSS-SHA256 (salt of the digest length, 32 bytes) against an SPKI DER key of
/// 2048 to 8192 bits (our keys are 2048 to 4096, checked on import).
pub(crate) fn pss_verify(spki_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, spki_der)
        .verify(message, signature)
        .is_ok()
}
