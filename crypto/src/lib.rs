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
//! # RSA backends
//!
//! The four RSA operations (RSA-PSS-SHA256 signing and verification, RSA-OAEP-SHA256 key
//! wrapping and unwrapping) run on one of two [`Backend`]s, which produce and accept the same
//! bytes:
//!
//! - `Backend::AwsLc`, [aws-lc-rs](https://docs.rs/aws-lc-rs): the default, with the
//!   `aws-lc` Cargo feature (on by default). AWS-LC's RSA is constant-time and about ten
//!   times faster for private-key operations (some 4,000 RSA-2048 signatures or decryptions
//!   a second per core, against about 440), so a core seals or opens some 3,700 1 KiB
//!   envelopes a second instead of about 425. It also keeps the rsa crate's decryption,
//!   subject to advisory RUSTSEC-2023-0071 (the Marvin timing side channel, no patched
//!   version), off every default path. It needs a C compiler to build.
//! - [`Backend::RustCrypto`], the [rsa](https://docs.rs/rsa) crate: pure Rust, always
//!   compiled in, and the default when the crate is built with `--no-default-features`. It
//!   takes the caller's RNG for everything, so it makes the deterministic envelopes of
//!   [`Identity::seal_with_rng`] (golden test data). The rsa crate also does what does not
//!   depend on the backend, in every build: key generation, PKCS#8 and SPKI parsing and
//!   encoding, the canonical-DER check, and passphrase-encrypted PEM.
//!
//! [`Identity::seal`], [`Identity::open`], [`Identity::sign_login`] and [`verify_login`] use
//! [`Backend::DEFAULT`]; their `_using` twins ([`Identity::seal_using`],
//! [`Identity::open_using`], [`Identity::sign_login_using`], [`verify_login_using`]) take a
//! backend, for tests and benchmarks.
//!
//! What it deliberately does not do: no I/O other than reading and writing key files, no
//! networking, no storage, and no decision about *who* is trusted — callers decide what a
//! verified sender key means to them.
//!
//! RSA private-key operations are CPU-heavy (a quarter of a millisecond each on aws-lc-rs,
//! milliseconds on the rsa crate): async callers must run [`Identity::open`],
//! [`Identity::seal`] and [`Identity::sign_login`] off their executor threads.

#[cfg(feature = "aws-lc")]
mod aws_lc;
mod backend;
mod device;
pub mod envelope;
pub mod envelope_v2;
mod error;
mod hex_serde;
mod keys;
mod login;
mod session;

pub use backend::Backend;
pub use device::{
    Bundle, CertifiedDevice, Device, DeviceCertificate, DeviceId, MAX_CERTIFICATE_LEN, PREKEY_LEN,
    PickleKey, SignedPrekey, VerifiedBundle,
};
pub use envelope::{
    DEFAULT_MAX_BODY, Draft, EnvelopeHeader, FORMAT_VERSION, HEADER_LEN, MessageHash, MessageId,
    MessageKind, Sealed, VerifiedMessage,
};
pub use envelope_v2::{EnvelopeV2, FORMAT_V2, HEADER_V2_LEN};
pub use error::{BundleError, Error, KeyError, OpenError};
pub use keys::{
    Fingerprint, IDENTITY_BITS, Identity, MAX_KEY_BITS, MIN_KEY_BITS, PublicKey, safety_number,
};
pub use login::{LOGIN_CHALLENGE_LEN, verify_login, verify_login_using};
pub use session::{Session, SessionId};

/// Re-exported so callers can pass a seeded RNG (tests, golden data) without naming a
/// second copy of `rand`.
pub use rand;
