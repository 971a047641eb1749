//! Cryptography and the envelope format of Secure Messenger.
//!
//! This crate is the only place in the workspace that touches RSA, AES-GCM or signatures. It
//! provides:
//!
//! - [`Identity`]: an RSA-2048 private key (PKCS#8 PEM on disk, mode 0600, plain or
//!   passphrase-encrypted with scrypt and AES-256-CBC as OpenSSL reads it), and [`PublicKey`]:
//!   an RSA public key of 2048 to 4096 bits (SPKI PEM), each with its [`Fingerprint`]
//!   (SHA-256 of the SPKI DER) and a [`safety_number`] for a pair of identities.
//! - Envelopes: [`Identity::seal`] encrypts and signs a message for one recipient;
//!   [`Identity::open`] decrypts and verifies one and returns a [`VerifiedMessage`], a type
//!   that only this crate can construct. [`EnvelopeHeader`] is the small clear part a mailbox
//!   reads to route, deduplicate and acknowledge. The byte layout is described in
//!   [`envelope`].
//! - Login proofs: [`Identity::sign_login`] and [`verify_login`] bind a server challenge to a
//!   TLS exporter value of one connection.
//!
//! What it deliberately does not do: no I/O other than reading and writing key files, no
//! networking, no storage, and no decision about *who* is trusted — callers decide what a
//! verified sender key means to them.
//!
//! RSA private-key operations are CPU-heavy (milliseconds each): async callers must run
//! [`Identity::open`], [`Identity::seal`] and [`Identity::sign_login`] off their executor
//! threads.

pub mod envelope;
mod error;
mod keys;
mod login;

pub use envelope::{
    DEFAULT_MAX_BODY, Draft, EnvelopeHeader, FORMAT_VERSION, HEADER_LEN, MessageHash, MessageId,
    MessageKind, Sealed, VerifiedMessage,
};
pub use error::{Error, KeyError, OpenError};
pub use keys::{
    Fingerprint, IDENTITY_BITS, Identity, MAX_KEY_BITS, MIN_KEY_BITS, PublicKey, safety_number,
};
pub use login::{LOGIN_CHALLENGE_LEN, verify_login};

/// Re-exported so callers can pass a seeded RNG (tests, golden data) without naming a
/// second copy of `rand`.
pub use rand;
