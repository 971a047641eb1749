//! Envelopes: one message sealed for one recipient.
//!
//! # Format, version 1
//!
//! (Version 2, forward-secret, is in [`crate::envelope_v2`]; [`EnvelopeHeader::parse`] reads
//! the clear header of both.)
//!
//! ```text
//! offset  size  field                                   in the clear?
//! 0       1     format version (1)                      yes  ┐
//! 1       32    recipient fingerprint (SHA-256 of SPKI) yes  │ the header: all a mailbox reads
//! 33      16    message id (random)                     yes  ┘
//! 49      2     L = length of the wrapped key (BE u16)  yes
//! 51      L     RSA-OAEP-SHA256(recipient, content key)  encrypted
//! 51+L    12    AES-256-GCM nonce                       random
//! 63+L    rest  AES-256-GCM(content key, nonce, inner, aad = header)
//! ```
//!
//! `inner` is the [postcard] encoding of `{ signed: bytes, signature: bytes }`, and `signed`
//! the postcard encoding of `{ sender SPKI DER, sent_at (ms since the Unix epoch), kind, seq,
//! previous message hash (optional), body }`. The signature is RSA-PSS-SHA256 by the sender
//! over `SIGN_TAG || header || signed`, so it covers the recipient and message id as well as
//! everything inside. A message's hash (used to chain a conversation) is
//! `SHA-256(HASH_TAG || header || signed)`; sender and recipient compute the same.
//!
//! Every field is checked on opening; trailing bytes anywhere are refused. `kind` is a
//! [`MessageKind`]: a text, a receipt, the sender's display name (`Profile`, sent before a
//! first message), or the sender's new mailbox (`MailboxMoved`); builds from before a kind
//! refuse and drop it.
//!
//! The RSA operations run on a [`Backend`]; the bytes are the same whichever makes or opens
//! an envelope.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::device::DeviceId;
use crate::envelope_v2::{FORMAT_V2, HEADER_V2_LEN};
use crate::error::{Error, OpenError};
use crate::keys::{Fingerprint, Identity, PublicKey};
use crate::session::SessionId;

/// The version byte of the first envelope format (RSA-OAEP per message; see
/// [`crate::envelope_v2`] for version 2). This build reads and writes both.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the clear header: version, recipient fingerprint, message id.
pub const HEADER_LEN: usize = 1 + 32 + 16;
/// The default largest body a node sends (a setting in the node).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// The largest body the format carries at all, whatever the settings.
pub const MAX_BODY: usize = 1024 * 1024;

const SIGN_TAG: &[u8] = b"secure-messenger/envelope-signature/v1\0";
const HASH_TAG: &[u8] = b"secure-messenger/message-hash/v1\0";
const NONCE_LEN: usize = 12;
const MIN_WRAPPED: usize = crate::keys::MIN_KEY_BITS / 8;
const MAX_WRAPPED: usize = crate::keys::MAX_KEY_BITS / 8;

/// A random 128-bit message id, unique per envelope.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 16]);
crate::hex_serde::hex_bytes_serde!(MessageId, 16);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}
impl std::str::FromStr for MessageId {
    type Err = hex::FromHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out)?;
        Ok(Self(out))
    }
}

/// SHA-256 of a message, as both sides compute it; links a message to the one before.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageHash(pub [u8; 32]);
crate::hex_serde::hex_bytes_serde!(MessageHash, 32);

impl fmt::Display for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageHash({self})")
    }
}

/// What a message is. New kinds are added at the end; an older build refuses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    /// Text a person wrote (UTF-8 body).
    Text,
    /// A delivery receipt (not shown as a message).
    Receipt,
    /// The sender's display name ([`profile_body`]), sent before a first message so that
    /// someone who does not know the sender yet sees a name. Sequence number 0: outside the
    /// conversation's chain, like a receipt. Builds from before it refuse the envelope (and
    /// drop it), so nothing changes for them.
    Profile,
    /// "My mailbox is now …": the sender moved to another mailbox (the body is its address,
    /// UTF-8, `host:port#fingerprint`). Sequence number 0, outside the chain; signed like
    /// every message, so only the contact can move themselves.
    MailboxMoved,
    /// "Send me again what I have not confirmed": sent in a fresh forward-secret session
    /// after a session broke (the body: the envelope ids that did not open, as in a
    /// receipt, or empty), or by a new device of the sender (a restored identity). The
    /// contact re-seals every message without a receipt in that session. Sequence number 0,
    /// outside the chain.
    SessionReset,
}

/// Longest display name a [`MessageKind::Profile`] carries, in characters.
pub const MAX_PROFILE_NAME: usize = 100;
/// Longest mailbox address a [`MessageKind::Profile`] carries, in bytes.
pub const MAX_PROFILE_MAILBOX: usize = 400;

/// What a [`MessageKind::Profile`] says of its sender: the name they go by, and the mailbox
/// their messages reach them at (its address text; the node reads it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The display name.
    pub name: String,
    /// Their mailbox, `host:port#fingerprint`.
    pub mailbox: Option<String>,
}

/// The body of a [`MessageKind::Profile`]: the profile, postcard-encoded.
pub fn profile_body(profile: &Profile) -> Vec<u8> {
    // A struct of strings always encodes.
    postcard::to_stdvec(profile).unwrap_or_default()
}

/// Read a profile body made by [`profile_body`]: `None` unless its name is 1 to
/// [`MAX_PROFILE_NAME`] characters without control characters (and not only spaces), and
/// its mailbox, if any, at most [`MAX_PROFILE_MAILBOX`] bytes without control characters.
pub fn parse_profile_body(body: &[u8]) -> Option<Profile> {
    let (mut profile, rest): (Profile, _) = postcard::take_from_bytes(body).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let name = profile.name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_PROFILE_NAME
        && !name.chars().any(char::is_control);
    let mailbox_ok = profile
        .mailbox
        .as_deref()
        .is_none_or(|m| m.len() <= MAX_PROFILE_MAILBOX && !m.chars().any(char::is_control));
    profile.name = name.to_owned();
    (ok && mailbox_ok).then_some(profile)
}

/// The body of a [`MessageKind::Receipt`]: the ids of the messages it confirms, 16 bytes
/// each, concatenated.
pub fn receipt_body(ids: &[MessageId]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.0).collect()
}

/// Read a receipt body made by [`receipt_body`]; `None` if it is not one.
pub fn parse_receipt_body(body: &[u8]) -> Option<Vec<MessageId>> {
    if body.is_empty() || !body.len().is_multiple_of(16) {
        return None;
    }
    body.chunks_exact(16)
        .map(|c| c.try_into().ok().map(MessageId))
        .collect()
}

/// The clear header of an envelope: all a mailbox may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// Format version.
    pub version: u8,
    /// Who the envelope is for.
    pub recipient: Fingerprint,
    /// The envelope's unique id.
    pub id: MessageId,
}

impl EnvelopeHeader {
    /// Read the clear header of an envelope without decrypting anything.
    ///
    /// Refuses an unknown version and anything too short to hold a header and a body.
    pub fn parse(envelope: &[u8]) -> Result<Self, OpenError> {
        let version = *envelope.first().ok_or(OpenError::Malformed)?;
        let shortest = match version {
            FORMAT_VERSION => HEADER_LEN + 2 + MIN_WRAPPED + NONCE_LEN + 16,
            FORMAT_V2 => HEADER_V2_LEN + 1,
            _ => return Err(OpenError::UnknownVersion(version)),
        };
        if envelope.len() < shortest {
            return Err(OpenError::Malformed);
        }
        let mut recipient = [0u8; 32];
        recipient.copy_from_slice(&envelope[1..33]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&envelope[33..HEADER_LEN]);
        Ok(Self {
            version,
            recipient: Fingerprint(recipient),
            id: MessageId(id),
        })
    }

    pub(crate) fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = self.version;
        out[1..33].copy_from_slice(&self.recipient.0);
        out[33..].copy_from_slice(&self.id.0);
        out
    }
}

/// What a sender puts in a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// What kind of message.
    pub kind: MessageKind,
    /// The sender's sequence number in this conversation (1 for the first message).
    pub seq: u64,
    /// The hash of the sender's previous message to this recipient, if any.
    pub prev: Option<MessageHash>,
    /// When it was sent.
    pub sent_at: SystemTime,
    /// The content (UTF-8 text for [`MessageKind::Text`]).
    pub body: Vec<u8>,
}

/// A sealed envelope, ready to hand to a mailbox.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// The envelope bytes.
    pub bytes: Vec<u8>,
    /// Its clear header.
    pub header: EnvelopeHeader,
    /// Its hash, to link the sender's next message to this one.
    pub hash: MessageHash,
    /// The message's own id (the same as `header.id` in version 1; see
    /// [`VerifiedMessage::id`]).
    pub message_id: MessageId,
}

/// A message that decrypted and whose signature verified. Only this crate constructs one.
#[derive(Clone, Debug)]
pub struct VerifiedMessage {
    pub(crate) header: EnvelopeHeader,
    pub(crate) sender: PublicKey,
    pub(crate) sent_at_ms: u64,
    pub(crate) kind: MessageKind,
    pub(crate) seq: u64,
    pub(crate) prev: Option<MessageHash>,
    pub(crate) body: Vec<u8>,
    pub(crate) hash: MessageHash,
    /// The message's own id: the envelope id in version 1, the inner id in version 2.
    pub(crate) message_id: MessageId,
    /// Version 2: the sender's device.
    pub(crate) sender_device: Option<DeviceId>,
    /// Version 2: the session it came in.
    pub(crate) session: Option<SessionId>,
}

impl VerifiedMessage {
    /// The message's id: what receipts name and receivers deduplicate on. In version 1 it
    /// is the envelope id; in version 2 the id inside, which stays the same when a message
    /// is re-sealed after a session reset (the envelope id does not).
    pub fn id(&self) -> MessageId {
        self.message_id
    }
    /// The envelope's id (its clear header's): what the mailbox acknowledges.
    pub fn envelope_id(&self) -> MessageId {
        self.header.id
    }
    /// Whether it came forward-secret (envelope version 2, through an Olm session).
    pub fn forward_secret(&self) -> bool {
        self.session.is_some()
    }
    /// The sender's device (version 2).
    pub fn sender_device(&self) -> Option<DeviceId> {
        self.sender_device
    }
    /// The session it came in (version 2).
    pub fn session_id(&self) -> Option<SessionId> {
        self.session
    }
    /// The clear header it came with.
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }
    /// The sender's public key (verified: it made the signature).
    pub fn sender(&self) -> &PublicKey {
        &self.sender
    }
    /// When the sender says it was sent.
    pub fn sent_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.sent_at_ms)
    }
    /// Milliseconds since the Unix epoch, as signed.
    pub fn sent_at_ms(&self) -> u64 {
        self.sent_at_ms
    }
    /// What kind of message.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }
    /// The sender's sequence number in this conversation.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// The hash of the sender's previous message, as the sender states it.
    pub fn prev(&self) -> Option<MessageHash> {
        self.prev
    }
    /// The content.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// This message's hash.
    pub fn hash(&self) -> MessageHash {
        self.hash
    }
}

#[derive(Serialize, Deserialize)]
struct Signed {
    sender: Vec<u8>,
    sent_at_ms: u64,
    kind: MessageKind,
    seq: u64,
    prev: Option<MessageHash>,
    body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Inner {
    signed: Vec<u8>,
    signature: Vec<u8>,
}

fn signature_input(header: &[u8; HEADER_LEN], signed: &[u8]) -> Vec<u8> {
    [SIGN_TAG, header.as_slice(), signed].concat()
}

fn message_hash(header: &[u8; HEADER_LEN], signed: &[u8]) -> MessageHash {
    let mut h = Sha256::new();
    h.update(HASH_TAG);
    h.update(header);
    h.update(signed);
    MessageHash(h.finalize().into())
}

fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, OpenError> {
    decode_whole(bytes).ok_or(OpenError::InnerMalformed)
}

/// The postcard value that is all of `bytes` (trailing bytes refused), if it decodes.
pub(crate) fn decode_whole<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

impl Identity {
    /// Seal a message for `recipient`, signed by this identity, on [`Backend::DEFAULT`].
    /// Uses the thread RNG.
    ///
    /// CPU cost: one RSA private-key operation (the signature) and one public-key operation
    /// (the key wrap).
    pub fn seal(&self, recipient: &PublicKey, draft: &Draft) -> Result<Sealed, Error> {
        self.seal_using(Backend::DEFAULT, recipient, draft)
    }

    /// [`Identity::seal`] on the given backend. Any backend's envelope opens on any other.
    pub fn seal_using(
        &self,
        backend: Backend,
        recipient: &PublicKey,
        draft: &Draft,
    ) -> Result<Sealed, Error> {
        seal_parts(
            backend,
            &mut rand::rng(),
            self,
            self.public_key().der(),
            recipient,
            draft,
        )
    }

    /// Seal with the given RNG: a seeded one makes the same envelope every time (golden
    /// test data).
    ///
    /// Always runs on [`Backend::RustCrypto`], whatever the default: it is the backend that
    /// draws all its randomness (PSS salt, OAEP seed) from the caller's RNG. aws-lc-rs uses
    /// its own generator, so its envelopes cannot be reproduced. The envelope opens on every
    /// backend.
    pub fn seal_with_rng<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        recipient: &PublicKey,
        draft: &Draft,
    ) -> Result<Sealed, Error> {
        seal_parts(
            Backend::RustCrypto,
            rng,
            self,
            self.public_key().der(),
            recipient,
            draft,
        )
    }
}

/// Seal with `signer` signing for the sender key `sender_der` (the same key, except in tests
/// of re-signed envelopes).
fn seal_parts<R: CryptoRng + ?Sized>(
    backend: Backend,
    rng: &mut R,
    signer: &Identity,
    sender_der: &[u8],
    recipient: &PublicKey,
    draft: &Draft,
) -> Result<Sealed, Error> {
    if draft.body.len() > MAX_BODY {
        return Err(Error::BodyTooLarge {
            len: draft.body.len(),
            max: MAX_BODY,
        });
    }
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let header = EnvelopeHeader {
        version: FORMAT_VERSION,
        recipient: recipient.fingerprint(),
        id: MessageId(id),
    };
    let header_bytes = header.to_bytes();
    let sent_at_ms = draft
        .sent_at
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let signed = postcard::to_stdvec(&Signed {
        sender: sender_der.to_vec(),
        sent_at_ms,
        kind: draft.kind,
        seq: draft.seq,
        prev: draft.prev,
        body: draft.body.clone(),
    })
    .map_err(Error::Encode)?;
    let signature = backend.pss_sign(rng, signer, &signature_input(&header_bytes, &signed))?;
    let hash = message_hash(&header_bytes, &signed);
    let inner =
        Zeroizing::new(postcard::to_stdvec(&Inner { signed, signature }).map_err(Error::Encode)?);

    let mut content_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(content_key.as_mut_slice());
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let wrapped = backend.oaep_encrypt(rng, recipient, content_key.as_slice())?;
    // A 32-byte key is always the right length for AES-256.
    let cipher = Aes256Gcm::new_from_slice(content_key.as_slice()).map_err(|_| Error::Aead)?;
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &inner,
                aad: &header_bytes,
            },
        )
        .map_err(|_| Error::Aead)?;

    // A key of at most MAX_KEY_BITS wraps to at most 512 bytes.
    let wrapped_len = u16::try_from(wrapped.len())
        .map_err(|_| Error::Rsa("the wrapped key is longer than the format allows".into()))?;
    let mut bytes =
        Vec::with_capacity(HEADER_LEN + 2 + wrapped.len() + NONCE_LEN + ciphertext.len());
    bytes.extend_from_slice(&header_bytes);
    bytes.extend_from_slice(&wrapped_len.to_be_bytes());
    bytes.extend_from_slice(&wrapped);
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&ciphertext);
    Ok(Sealed {
        bytes,
        header,
        hash,
        message_id: header.id,
    })
}

impl Identity {
    /// Open an envelope addressed to this identity: decrypt it and verify the sender's
    /// signature over everything, on [`Backend::DEFAULT`].
    ///
    /// CPU cost: one RSA private-key operation (the key unwrap) and one verification.
    /// The error says why for logs and tests; never send it to anyone.
    pub fn open(&self, envelope: &[u8]) -> Result<VerifiedMessage, OpenError> {
        self.open_using(Backend::DEFAULT, envelope)
    }

    /// [`Identity::open`] on the given backend. It opens envelopes sealed on any backend.
    pub fn open_using(
        &self,
        backend: Backend,
        envelope: &[u8],
    ) -> Result<VerifiedMessage, OpenError> {
        let header = EnvelopeHeader::parse(envelope)?;
        if header.version == FORMAT_V2 {
            return Err(OpenError::ForwardSecret);
        }
        if header.recipient != self.fingerprint() {
            return Err(OpenError::WrongRecipient);
        }
        let header_bytes = header.to_bytes();
        let rest = &envelope[HEADER_LEN..];
        let wrapped_len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if !(MIN_WRAPPED..=MAX_WRAPPED).contains(&wrapped_len)
            || rest.len() < 2 + wrapped_len + NONCE_LEN + 16
        {
            return Err(OpenError::Malformed);
        }
        let wrapped = &rest[2..2 + wrapped_len];
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&rest[2 + wrapped_len..2 + wrapped_len + NONCE_LEN]);
        let ciphertext = &rest[2 + wrapped_len + NONCE_LEN..];

        let content_key = backend.oaep_decrypt(self, wrapped)?;
        let cipher = Aes256Gcm::new_from_slice(&content_key).map_err(|_| OpenError::KeyUnwrap)?;
        let inner = Zeroizing::new(
            cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &header_bytes,
                    },
                )
                .map_err(|_| OpenError::Aead)?,
        );
        let inner: Inner = decode_exact(&inner)?;
        let signed: Signed = decode_exact(&inner.signed)?;
        let sender = PublicKey::from_der(&signed.sender).map_err(OpenError::SenderKey)?;
        backend.pss_verify(
            &sender,
            &signature_input(&header_bytes, &inner.signed),
            &inner.signature,
        )?;
        if signed.body.len() > MAX_BODY {
            return Err(OpenError::InnerMalformed);
        }
        Ok(VerifiedMessage {
            header,
            sender,
            sent_at_ms: signed.sent_at_ms,
            kind: signed.kind,
            seq: signed.seq,
            prev: signed.prev,
            body: signed.body,
            hash: message_hash(&header_bytes, &inner.signed),
            message_id: header.id,
            sender_device: None,
            session: None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn receipt_bodies_round_trip() {
        let ids = [MessageId([1; 16]), MessageId([2; 16])];
        let body = receipt_body(&ids);
        assert_eq!(body.len(), 32);
        assert_eq!(parse_receipt_body(&body), Some(ids.to_vec()));
        assert_eq!(parse_receipt_body(&body[..31]), None);
        assert_eq!(parse_receipt_body(&[]), None);
    }

    #[test]
    fn profile_bodies_hold_one_clean_name_and_a_mailbox() {
        let zoe = Profile {
            name: "Zoë Müller".into(),
            mailbox: Some("mbx.example:4433".into()),
        };
        assert_eq!(parse_profile_body(&profile_body(&zoe)), Some(zoe));
        let body = |name: &str, mailbox: Option<&str>| {
            profile_body(&Profile {
                name: name.into(),
                mailbox: mailbox.map(Into::into),
            })
        };
        assert_eq!(
            parse_profile_body(&body("  Bob  ", None))
                .map(|p| p.name)
                .as_deref(),
            Some("Bob")
        );
        let mut trailing = body("Bob", None);
        trailing.push(0);
        let (long_name, long_mailbox) = ("x".repeat(101), "m".repeat(401));
        for bad in [
            Vec::new(),
            b"Bob".to_vec(),
            trailing,
            body("   ", None),
            body("a\nb", None),
            body("a", Some("x\u{0}")),
            body(&long_name, None),
            body("a", Some(&long_mailbox)),
        ] {
            assert_eq!(parse_profile_body(&bad), None, "{bad:?}");
        }
    }

    /// What a build from before `Profile` knew: it cannot read the new kind, so it refuses
    /// (and drops) such an envelope instead of misreading it.
    #[test]
    fn a_build_without_profile_refuses_the_kind() {
        #[derive(Debug, Deserialize)]
        enum Before {
            Text,
            Receipt,
        }
        let old = |kind| postcard::from_bytes::<Before>(&postcard::to_stdvec(&kind).unwrap());
        assert!(matches!(old(MessageKind::Text), Ok(Before::Text)));
        assert!(matches!(old(MessageKind::Receipt), Ok(Before::Receipt)));
        assert!(old(MessageKind::Profile).is_err());
    }

    #[test]
    fn a_re_signed_envelope_is_refused() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let alice = Identity::generate_with_rng(&mut rng).unwrap();
        let bob = Identity::generate_with_rng(&mut rng).unwrap();
        let mallory = Identity::generate_with_rng(&mut rng).unwrap();
        let draft = Draft {
            kind: MessageKind::Text,
            seq: 1,
            prev: None,
            sent_at: UNIX_EPOCH,
            body: b"I am alice".to_vec(),
        };
        for &sealer in Backend::ALL {
            // Mallory signs but claims alice's key: the signature does not match the sender.
            let forged = seal_parts(
                sealer,
                &mut rng,
                &mallory,
                alice.public_key().der(),
                bob.public_key(),
                &draft,
            )
            .unwrap();
            // The honest path with the same code opens.
            let honest = seal_parts(
                sealer,
                &mut rng,
                &alice,
                alice.public_key().der(),
                bob.public_key(),
                &draft,
            )
            .unwrap();
            for &opener in Backend::ALL {
                assert_eq!(
                    bob.open_using(opener, &forged.bytes).unwrap_err(),
                    OpenError::BadSignature,
                    "sealed on {sealer}, opened on {opener}"
                );
                assert_eq!(
                    bob.open_using(opener, &honest.bytes).unwrap().sender(),
                    alice.public_key()
                );
            }
        }
    }
}
