//! The errors of this crate. None of their messages contain key material or plaintext.

/// Why a key was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The text is not PEM at all.
    #[error(
        "not a PEM key: expected a block starting with -----BEGIN PUBLIC KEY----- (or PRIVATE KEY)"
    )]
    NotPem,
    /// PEM, but of another kind than the one expected (e.g. a private key where a public key
    /// was expected).
    #[error("wrong kind of PEM block: expected {expected}, found {found}")]
    WrongPemLabel {
        /// The label that was expected.
        expected: &'static str,
        /// The label that was found.
        found: String,
    },
    /// A well-formed key of another algorithm (EC, Ed25519, ...).
    #[error("not an RSA key (algorithm {algorithm})")]
    NotRsa {
        /// The algorithm identifier found in the key.
        algorithm: String,
    },
    /// An RSA key below the minimum size.
    #[error("RSA key too small: {bits} bits, at least {min} required")]
    TooSmall {
        /// The key's modulus size.
        bits: usize,
        /// The smallest size accepted.
        min: usize,
    },
    /// An RSA key above the maximum size.
    #[error("RSA key too large: {bits} bits, at most {max} accepted")]
    TooLarge {
        /// The key's modulus size.
        bits: usize,
        /// The largest size accepted.
        max: usize,
    },
    /// An RSA key whose public exponent is not 65537.
    #[error("RSA public exponent must be 65537")]
    BadExponent,
    /// The DER structure inside is broken (or, for an encrypted key, uses an unsupported or
    /// unreasonably costly encryption scheme).
    #[error("malformed key: {0}")]
    Malformed(String),
    /// An encrypted private key did not decrypt under the passphrase given. A damaged file
    /// cannot be told apart from a wrong passphrase.
    #[error("wrong passphrase, or the key file is damaged")]
    WrongPassphrase,
    /// An encrypted private key was read without a passphrase.
    #[error("this key is encrypted: a passphrase is needed")]
    PassphraseRequired,
}

/// Why an envelope was refused by [`crate::Identity::open`].
///
/// This is for logs and tests inside the program. Outside it, every refusal must look the
/// same: no receipt and no reason sent anywhere (no decryption-validity oracle).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than its own structure says, or longer.
    #[error("envelope truncated or malformed")]
    Malformed,
    /// A format version this build does not know.
    #[error("unknown envelope format version {0}")]
    UnknownVersion(u8),
    /// Addressed to another identity.
    #[error("envelope is addressed to another identity")]
    WrongRecipient,
    /// The wrapped key did not decrypt (not for us, or altered).
    #[error("message key does not decrypt")]
    KeyUnwrap,
    /// The AEAD tag did not verify (altered ciphertext or header).
    #[error("ciphertext or header altered")]
    Aead,
    /// The inner structure did not decode.
    #[error("inner content malformed")]
    InnerMalformed,
    /// The sender's public key inside is not acceptable.
    #[error("sender key refused: {0}")]
    SenderKey(KeyError),
    /// The sender's signature does not verify.
    #[error("sender signature does not verify")]
    BadSignature,
    /// A version 2 envelope given to [`crate::Identity::open`]: it opens with the
    /// identity's device ([`crate::Device::open`]).
    #[error("a forward-secret envelope: open it with the identity's device")]
    ForwardSecret,
    /// Sealed to another device of this identity (one it had before a restore).
    #[error("envelope is sealed to another device")]
    WrongDevice,
    /// The session named in the header is not the one given, or a pre-key message's keys
    /// do not make the session id in its header.
    #[error("envelope names another session")]
    SessionMismatch,
    /// The Olm message does not decrypt in its session (altered, too old, replayed, or the
    /// session is broken).
    #[error("Olm message does not decrypt in its session")]
    Undecryptable,
    /// Not a pre-key message, so it cannot start a session.
    #[error("not a pre-key message: it cannot start a session")]
    NotPreKey,
    /// Signed by someone other than the session's peer (or from another of their devices).
    #[error("signed by someone other than the session's peer")]
    WrongSender,
}

/// Why a device certificate or prekey bundle was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// Not the structure it should be.
    #[error("certificate or prekey malformed")]
    Malformed,
    /// The certificate's signature does not verify under the RSA key given.
    #[error("device certificate not signed by the expected identity")]
    BadCertificate,
    /// The certificate is signed by the expected key but names another owner.
    #[error("device certificate names another identity")]
    WrongOwner,
    /// A key in the certificate is not a valid public key.
    #[error("device certificate holds an invalid key")]
    BadKey,
    /// The prekey is not signed by the certified device.
    #[error("prekey not signed by the certified device")]
    BadPrekey,
}

/// Everything else that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// An envelope was refused.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A message body larger than the format allows.
    #[error("message body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// The body's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The RSA implementation failed (RNG failure, key generation or encoding failure, a
    /// signing or encryption failure); the text names the backend where it matters.
    #[error("RSA operation failed: {0}")]
    Rsa(String),
    /// The inner structure of an envelope could not be encoded (postcard).
    #[error("encoding the envelope failed")]
    Encode(#[source] postcard::Error),
    /// AES-256-GCM encryption of an envelope failed.
    #[error("AES-256-GCM encryption failed")]
    Aead,
    /// A device was asked to act for an identity it does not belong to.
    #[error("the device belongs to another identity")]
    WrongIdentity,
    /// Sealing in a session with someone other than the recipient.
    #[error("the session is with someone other than the recipient")]
    WrongPeer,
    /// The Olm library refused (e.g. a non-contributory key in a bundle).
    #[error("Olm: {0}")]
    Olm(String),
    /// A stored device or session did not decode or decrypt under the pickle key.
    #[error("stored device or session state does not decrypt under this pickle key")]
    Pickle,
}
