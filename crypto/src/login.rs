//! Login proofs for a mailbox connection.
//!
//! The mailbox sends a random challenge; the node proves it holds an identity by signing
//! `LOGIN_TAG || challenge || exporter`, where `exporter` is a TLS keying-material export of
//! this very connection (RFC 5705/8446). A proof made for another connection, or for an older
//! challenge, does not verify.

use sha2::Sha256;

use crate::error::{Error, OpenError};
use crate::keys::{Identity, PublicKey};

/// Length of a login challenge, and of the exporter value it is bound to.
pub const LOGIN_CHALLENGE_LEN: usize = 32;

const LOGIN_TAG: &[u8] = b"secure-messenger/mailbox-login/v1\0";

fn login_input(
    challenge: &[u8; LOGIN_CHALLENGE_LEN],
    exporter: &[u8; LOGIN_CHALLENGE_LEN],
) -> Vec<u8> {
    [LOGIN_TAG, challenge.as_slice(), exporter.as_slice()].concat()
}

impl Identity {
    /// Prove this identity to a mailbox on one connection. One RSA private-key operation.
    pub fn sign_login(
        &self,
        challenge: &[u8; LOGIN_CHALLENGE_LEN],
        exporter: &[u8; LOGIN_CHALLENGE_LEN],
    ) -> Result<Vec<u8>, Error> {
        self.rsa()
            .pss_sign_with_rng::<Sha256, _>(&mut rand::rng(), &login_input(challenge, exporter))
            .map_err(|e| Error::Rsa(e.to_string()))
    }
}

/// Check a login proof made by [`Identity::sign_login`].
pub fn verify_login(
    key: &PublicKey,
    challenge: &[u8; LOGIN_CHALLENGE_LEN],
    exporter: &[u8; LOGIN_CHALLENGE_LEN],
    signature: &[u8],
) -> Result<(), OpenError> {
    key.rsa()
        .pss_verify::<Sha256>(&login_input(challenge, exporter), signature)
        .map_err(|_| OpenError::BadSignature)
}
