//! Login proofs for a mailbox connection.
//!
//! The mailbox sends a random challenge; the node proves it holds an identity by signing
//! `LOGIN_TAG || challenge || exporter`, where `exporter` is a TLS keying-material export of
//! this very connection (RFC 5705/8446). A proof made for another connection, or for an older
//! challenge, does not verify.

use crate::backend::Backend;
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
    /// Prove this identity to a mailbox on one connection, on [`Backend::DEFAULT`]. One RSA
    /// private-key operation (RSA-PSS-SHA256).
    pub fn sign_login(
        &self,
        challenge: &[u8; LOGIN_CHALLENGE_LEN],
        exporter: &[u8; LOGIN_CHALLENGE_LEN],
    ) -> Result<Vec<u8>, Error> {
        self.sign_login_using(Backend::DEFAULT, challenge, exporter)
    }

    /// [`Identity::sign_login`] on the given backend. Its proof verifies on any backend.
    pub fn sign_login_using(
        &self,
        backend: Backend,
        challenge: &[u8; LOGIN_CHALLENGE_LEN],
        exporter: &[u8; LOGIN_CHALLENGE_LEN],
    ) -> Result<Vec<u8>, Error> {
        backend.pss_sign(&mut rand::rng(), self, &login_input(challenge, exporter))
    }
}

/// Check a login proof made by [`Identity::sign_login`], on [`Backend::DEFAULT`].
pub fn verify_login(
    key: &PublicKey,
    challenge: &[u8; LOGIN_CHALLENGE_LEN],
    exporter: &[u8; LOGIN_CHALLENGE_LEN],
    signature: &[u8],
) -> Result<(), OpenError> {
    verify_login_using(Backend::DEFAULT, key, challenge, exporter, signature)
}

/// [`verify_login`] on the given backend. It accepts a proof made on any backend.
pub fn verify_login_using(
    backend: Backend,
    key: &PublicKey,
    challenge: &[u8; LOGIN_CHALLENGE_LEN],
    exporter: &[u8; LOGIN_CHALLENGE_LEN],
    signature: &[u8],
) -> Result<(), OpenError> {
    backend.pss_verify(key, &login_input(challenge, exporter), signature)
}
