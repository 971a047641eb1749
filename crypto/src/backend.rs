//! The RSA backends: which implementation runs this crate's four RSA operations
//! (RSA-PSS-SHA256 signing and verification, RSA-OAEP-SHA256 encryption and decryption).
//!
//! Both backends produce and accept exactly the same bytes: PSS with SHA-256, MGF1-SHA-256
//! and a 32-byte salt (the digest length); OAEP with SHA-256, MGF1-SHA-256 and an empty
//! label. Key parsing and encoding (PKCS#8, SPKI, passphrase-encrypted PEM), key generation,
//! AES-GCM and the envelope format do not depend on the backend.
//!
//! This module only dispatches; it holds no keys. Each backend's form of a key is built once
//! and kept inside the [`Identity`] (when it is made) or the [`PublicKey`] (on first use).

use std::fmt;

use rand::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, OpenError};
use crate::keys::{Identity, PublicKey};

/// An implementation of the RSA operations.
///
/// Which ones exist depends on the crate's features: [`Backend::ALL`] lists those compiled
/// in, and [`Backend::DEFAULT`] is the one every method without `_using` in its name takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The [rsa](https://docs.rs/rsa) crate, pure Rust. Always available; the default when
    /// the `aws-lc` feature is off. It takes a caller's RNG for every operation, so it is the
    /// one that makes deterministic test data ([`Identity::seal_with_rng`]). Its decryption
    /// is subject to advisory RUSTSEC-2023-0071 (the Marvin timing side channel), for which
    /// there is no patched version.
    RustCrypto,
    /// [aws-lc-rs](https://docs.rs/aws-lc-rs) (AWS-LC, constant-time C and assembly), about
    /// ten times faster for private-key operations. The default when the `aws-lc` feature is
    /// on (it is by default). Its randomness comes from AWS-LC's own generator, never from a
    /// caller's RNG.
    #[cfg(feature = "aws-lc")]
    AwsLc,
}

impl Backend {
    /// The backend of [`Identity::seal`], [`Identity::open`], [`Identity::sign_login`] and
    /// [`crate::verify_login`]: aws-lc-rs when the `aws-lc` feature is on, else the rsa crate.
    #[cfg(feature = "aws-lc")]
    pub const DEFAULT: Backend = Backend::AwsLc;
    /// The backend of [`Identity::seal`], [`Identity::open`], [`Identity::sign_login`] and
    /// [`crate::verify_login`]: aws-lc-rs when the `aws-lc` feature is on, else the rsa crate.
    #[cfg(not(feature = "aws-lc"))]
    pub const DEFAULT: Backend = Backend::RustCrypto;

    /// Every backend compiled into this build.
    pub const ALL: &'static [Backend] = &[
        Backend::RustCrypto,
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc,
    ];

    /// A short name: `"rsa"` or `"aws-lc-rs"` (the crate behind it). Also the `Display`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::RustCrypto => "rsa",
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc-rs",
        }
    }

    /// Sign `message` with RSA-PSS-SHA256 (salt of 32 bytes). `rng` is used by the rsa
    /// crate only.
    pub(crate) fn pss_sign<R: CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        signer: &Identity,
        message: &[u8],
    ) -> Result<Vec<u8>, Error> {
        match self {
            Backend::RustCrypto => signer
                .rsa()
                .pss_sign_with_rng::<Sha256, _>(rng, message)
                .map_err(|e| Error::Rsa(format!("PSS signing (rsa): {e}"))),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => signer.aws_lc().pss_sign(message),
        }
    }

    /// Verify an RSA-PSS-SHA256 signature (salt of 32 bytes) made by `key`.
    pub(crate) fn pss_verify(
        self,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), OpenError> {
        let verified = match self {
            Backend::RustCrypto => key
                .rsa()
                .is_ok_and(|key| key.pss_verify::<Sha256>(message, signature).is_ok()),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => crate::aws_lc::pss_verify(key.der(), message, signature),
        };
        if verified {
            Ok(())
        } else {
            Err(OpenError::BadSignature)
        }
    }

    /// Encrypt a short secret for `key` with RSA-OAEP-SHA256. `rng` is used by the rsa crate
    /// only.
    pub(crate) fn oaep_encrypt<R: CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        key: &PublicKey,
        secret: &[u8],
    ) -> Result<Vec<u8>, Error> {
        match self {
            Backend::RustCrypto => key
                .rsa()?
                .oaep_encrypt_with_rng::<Sha256, _>(rng, secret)
                .map_err(|e| Error::Rsa(format!("OAEP encryption (rsa): {e}"))),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => key.aws_lc()?.oaep_encrypt(secret),
        }
    }

    /// Decrypt an RSA-OAEP-SHA256 ciphertext made for `recipient`. Every failure is the same
    /// [`OpenError::KeyUnwrap`].
    pub(crate) fn oaep_decrypt(
        self,
        recipient: &Identity,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        match self {
            Backend::RustCrypto => recipient
                .rsa()
                // The rsa crate blinds the private-key operation with this RNG.
                .oaep_decrypt_with_rng::<Sha256, _>(&mut rand::rng(), ciphertext)
                .map(Zeroizing::new)
                .map_err(|_| OpenError::KeyUnwrap),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => recipient.aws_lc().oaep_decrypt(ciphertext),
        }
    }
}

impl Default for Backend {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_compiled_in_and_names_are_distinct() {
        assert!(Backend::ALL.contains(&Backend::DEFAULT));
        assert_eq!(Backend::default(), Backend::DEFAULT);
        let mut names: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Backend::ALL.len());
        #[cfg(feature = "aws-lc")]
        assert_eq!(Backend::DEFAULT, Backend::AwsLc);
        #[cfg(not(feature = "aws-lc"))]
        assert_eq!(Backend::ALL, &[Backend::RustCrypto]);
    }
}
