//! Envelopes, version 2: forward-secret, through an Olm session between two devices.
//!
//! # Format, version 2
//!
//! ```text
//! offset  size  field                                   in the clear?
//! 0       1     format version (2)                      yes  ┐ the header a mailbox reads,
//! 1       32    recipient fingerprint                   yes  │ as in version 1
//! 33      16    envelope id (random, fresh per sealing) yes  ┘
//! 49      16    recipient device id                     yes
//! 65      32    Olm session id                          yes
//! 97      1     Olm message type (0 pre-key, 1 normal)  yes
//! 98      rest  the Olm message                         encrypted (Olm: AES-256-CBC, HMAC-SHA-256/64)
//! ```
//!
//! The Olm plaintext is the same `{ signed, signature }` as in version 1, where `signed` is
//! the postcard encoding of `{ sender SPKI DER, sender device id, message id, sent_at, kind,
//! seq, previous message hash, body }` and the signature is RSA-PSS-SHA256 by the sender over
//! `SIGN_TAG_V2 || the 98 header bytes || signed`. Olm takes no associated data and its MACs
//! are 64 bits; the signature covers the whole header, so the mailbox can neither re-route,
//! re-label nor alter an envelope unnoticed, and every guarantee of version 1 (sender,
//! sequence, chain, receipts) holds as before.
//!
//! Two ids: the *envelope id* in the header is what a mailbox deduplicates and a node
//! acknowledges; the *message id* inside is the message's own. Re-sealing an undelivered
//! message after a session reset keeps the message id, sequence number and hash and takes a
//! fresh envelope id (a mailbox drops a repeated envelope id as a duplicate); receivers
//! deduplicate on the message id. A message's hash, `SHA-256(HASH_TAG_V2 || recipient ||
//! signed)`, does not depend on the envelope id or the session, so it survives re-sealing.
//!
//! Opening: [`EnvelopeV2::parse`] reads the clear part; the receiver looks up the session by
//! its id and calls [`Device::open`], or, for a pre-key message of a session it does not
//! have, [`Device::accept`]. Both change nothing unless the whole envelope verifies.

use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};
use vodozemac::olm::{OlmMessage, SessionConfig};
use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::device::{Device, DeviceId};
use crate::envelope::{
    Draft, EnvelopeHeader, HEADER_LEN, MAX_BODY, MessageHash, MessageId, Sealed, VerifiedMessage,
};
use crate::error::{Error, OpenError};
use crate::keys::{Fingerprint, Identity, PublicKey};
use crate::session::{Session, SessionId, session_id_of};

/// The forward-secret envelope format's version byte.
pub const FORMAT_V2: u8 = 2;
/// Length of a version 2 envelope's clear part.
pub const HEADER_V2_LEN: usize = HEADER_LEN + 16 + 32 + 1;
/// The largest Olm message a version 2 envelope carries: the largest body and room for the
/// signed fields, the signature, the padding, the MAC and a pre-key message's keys.
const MAX_OLM_LEN: usize = MAX_BODY + 4 * 1024;

const SIGN_TAG_V2: &[u8] = b"secure-messenger/envelope-signature/v2\0";
const HASH_TAG_V2: &[u8] = b"secure-messenger/message-hash/v2\0";

#[derive(serde::Serialize, serde::Deserialize)]
struct SignedV2 {
    sender: Vec<u8>,
    sender_device: DeviceId,
    message_id: MessageId,
    sent_at_ms: u64,
    kind: crate::MessageKind,
    seq: u64,
    prev: Option<MessageHash>,
    body: Vec<u8>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Inner {
    signed: Vec<u8>,
    signature: Vec<u8>,
}

/// A version 2 envelope, its clear part read.
#[derive(Debug)]
pub struct EnvelopeV2 {
    header_bytes: [u8; HEADER_V2_LEN],
    header: EnvelopeHeader,
    recipient_device: DeviceId,
    session: SessionId,
    olm: OlmMessage,
}

impl EnvelopeV2 {
    /// Read a version 2 envelope's clear part; the Olm message must decode.
    pub fn parse(bytes: &[u8]) -> Result<Self, OpenError> {
        let header = EnvelopeHeader::parse(bytes)?;
        if header.version != FORMAT_V2 {
            return Err(OpenError::UnknownVersion(header.version));
        }
        if bytes.len() <= HEADER_V2_LEN || bytes.len() > HEADER_V2_LEN + MAX_OLM_LEN {
            return Err(OpenError::Malformed);
        }
        let mut header_bytes = [0u8; HEADER_V2_LEN];
        header_bytes.copy_from_slice(&bytes[..HEADER_V2_LEN]);
        let mut device = [0u8; 16];
        device.copy_from_slice(&bytes[HEADER_LEN..HEADER_LEN + 16]);
        let mut session = [0u8; 32];
        session.copy_from_slice(&bytes[HEADER_LEN + 16..HEADER_LEN + 48]);
        let message_type = match bytes[HEADER_V2_LEN - 1] {
            t @ (0 | 1) => usize::from(t),
            _ => return Err(OpenError::Malformed),
        };
        let olm = OlmMessage::from_parts(message_type, &bytes[HEADER_V2_LEN..])
            .map_err(|_| OpenError::Malformed)?;
        if let OlmMessage::PreKey(m) = &olm
            && session_id_of(&m.session_keys()) != SessionId(session)
        {
            return Err(OpenError::SessionMismatch);
        }
        Ok(Self {
            header_bytes,
            header,
            recipient_device: DeviceId(device),
            session: SessionId(session),
            olm,
        })
    }

    /// The clear header a mailbox reads.
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }
    /// The device it is sealed to.
    pub fn recipient_device(&self) -> DeviceId {
        self.recipient_device
    }
    /// The session it is sealed in.
    pub fn session_id(&self) -> SessionId {
        self.session
    }
    /// Whether it is a pre-key message (it can start a session on the receiving side).
    pub fn is_pre_key(&self) -> bool {
        matches!(self.olm, OlmMessage::PreKey(_))
    }
}

fn message_hash_v2(recipient: Fingerprint, signed: &[u8]) -> MessageHash {
    let mut h = Sha256::new();
    h.update(HASH_TAG_V2);
    h.update([FORMAT_V2]);
    h.update(recipient.0);
    h.update(signed);
    MessageHash(h.finalize().into())
}

impl Identity {
    /// Seal a message in `session` (with a device of `recipient`), signed by this identity,
    /// whose device is `device`. `message_id` is the message's own id: fresh for a new
    /// message, the same when re-sealing one (see the module docs).
    ///
    /// The session advances: store it (in the same batch as the message) before the
    /// envelope leaves the node. CPU cost: one RSA private-key operation (the signature) and
    /// one Olm step.
    pub fn seal_v2(
        &self,
        device: DeviceId,
        session: &mut Session,
        recipient: &PublicKey,
        draft: &Draft,
        message_id: MessageId,
    ) -> Result<Sealed, Error> {
        self.seal_v2_using(
            Backend::DEFAULT,
            device,
            session,
            recipient,
            draft,
            message_id,
        )
    }

    /// [`Identity::seal_v2`] on the given backend.
    pub fn seal_v2_using(
        &self,
        backend: Backend,
        device: DeviceId,
        session: &mut Session,
        recipient: &PublicKey,
        draft: &Draft,
        message_id: MessageId,
    ) -> Result<Sealed, Error> {
        if draft.body.len() > MAX_BODY {
            return Err(Error::BodyTooLarge {
                len: draft.body.len(),
                max: MAX_BODY,
            });
        }
        if session.peer() != recipient.fingerprint() {
            return Err(Error::WrongPeer);
        }
        let mut rng = rand::rng();
        let mut id = [0u8; 16];
        rand::Rng::fill_bytes(&mut rng, &mut id);
        let header = EnvelopeHeader {
            version: FORMAT_V2,
            recipient: recipient.fingerprint(),
            id: MessageId(id),
        };
        let mut header_bytes = [0u8; HEADER_V2_LEN];
        header_bytes[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        header_bytes[HEADER_LEN..HEADER_LEN + 16].copy_from_slice(&session.peer_device().0);
        header_bytes[HEADER_LEN + 16..HEADER_LEN + 48].copy_from_slice(&session.id().0);
        header_bytes[HEADER_V2_LEN - 1] = u8::from(session.has_received());

        let signed = postcard::to_stdvec(&SignedV2 {
            sender: self.public_key().der().to_vec(),
            sender_device: device,
            message_id,
            sent_at_ms: draft
                .sent_at
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            kind: draft.kind,
            seq: draft.seq,
            prev: draft.prev,
            body: draft.body.clone(),
        })
        .map_err(Error::Encode)?;
        let signature = backend.pss_sign(
            &mut rng,
            self,
            &[SIGN_TAG_V2, &header_bytes, &signed].concat(),
        )?;
        let hash = message_hash_v2(header.recipient, &signed);
        let inner = Zeroizing::new(
            postcard::to_stdvec(&Inner { signed, signature }).map_err(Error::Encode)?,
        );
        let olm = session
            .olm_mut()
            .encrypt(inner.as_slice())
            .map_err(|e| Error::Olm(e.to_string()))?;
        let (message_type, ciphertext) = olm.to_parts();
        if message_type != usize::from(header_bytes[HEADER_V2_LEN - 1]) {
            return Err(Error::Olm("the session changed its message type".into()));
        }
        let mut bytes = Vec::with_capacity(HEADER_V2_LEN + ciphertext.len());
        bytes.extend_from_slice(&header_bytes);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            bytes,
            header,
            hash,
            message_id,
        })
    }
}

impl Device {
    /// Open an envelope in the session it names (the caller looked it up by
    /// [`EnvelopeV2::session_id`]). On success the session has advanced: store it with the
    /// message. On any error the session is unchanged.
    pub fn open(
        &self,
        envelope: &EnvelopeV2,
        session: &mut Session,
    ) -> Result<VerifiedMessage, OpenError> {
        self.open_using(Backend::DEFAULT, envelope, session)
    }

    /// [`Device::open`] on the given backend.
    pub fn open_using(
        &self,
        backend: Backend,
        envelope: &EnvelopeV2,
        session: &mut Session,
    ) -> Result<VerifiedMessage, OpenError> {
        self.check_recipient(envelope)?;
        if session.id() != envelope.session {
            return Err(OpenError::SessionMismatch);
        }
        let mut next = session.copy();
        let plaintext = Zeroizing::new(
            next.olm_mut()
                .decrypt(&envelope.olm)
                .map_err(|_| OpenError::Undecryptable)?,
        );
        let message = verify_inner(backend, envelope, &plaintext)?;
        if message.sender().fingerprint() != session.peer()
            || message.sender_device != Some(session.peer_device())
        {
            return Err(OpenError::WrongSender);
        }
        *session = next;
        Ok(message)
    }

    /// Open a pre-key envelope of a session this device does not have yet, and start that
    /// session. On success the one-time key it used is gone from the device: store the
    /// device, the session and the message in one batch. On any error nothing changed.
    pub fn accept(
        &mut self,
        envelope: &EnvelopeV2,
    ) -> Result<(Session, VerifiedMessage), OpenError> {
        self.accept_using(Backend::DEFAULT, envelope)
    }

    /// [`Device::accept`] on the given backend.
    pub fn accept_using(
        &mut self,
        backend: Backend,
        envelope: &EnvelopeV2,
    ) -> Result<(Session, VerifiedMessage), OpenError> {
        self.check_recipient(envelope)?;
        let OlmMessage::PreKey(pre_key) = &envelope.olm else {
            return Err(OpenError::NotPreKey);
        };
        let mut account = self.account_copy();
        let created = account
            .create_inbound_session(SessionConfig::version_1(), pre_key.identity_key(), pre_key)
            .map_err(|_| OpenError::Undecryptable)?;
        let plaintext = Zeroizing::new(created.plaintext);
        let message = verify_inner(backend, envelope, &plaintext)?;
        let Some(sender_device) = message.sender_device else {
            return Err(OpenError::InnerMalformed);
        };
        let session = Session::new(
            created.session,
            message.sender().fingerprint(),
            sender_device,
        );
        if session.id() != envelope.session {
            return Err(OpenError::SessionMismatch);
        }
        self.replace_account(account);
        Ok((session, message))
    }

    fn check_recipient(&self, envelope: &EnvelopeV2) -> Result<(), OpenError> {
        if envelope.header.recipient != self.owner() {
            return Err(OpenError::WrongRecipient);
        }
        if envelope.recipient_device != self.id() {
            return Err(OpenError::WrongDevice);
        }
        Ok(())
    }
}

fn verify_inner(
    backend: Backend,
    envelope: &EnvelopeV2,
    plaintext: &[u8],
) -> Result<VerifiedMessage, OpenError> {
    let inner: Inner = decode_exact(plaintext)?;
    let signed: SignedV2 = decode_exact(&inner.signed)?;
    let sender = PublicKey::from_der(&signed.sender).map_err(OpenError::SenderKey)?;
    backend.pss_verify(
        &sender,
        &[SIGN_TAG_V2, &envelope.header_bytes, &inner.signed].concat(),
        &inner.signature,
    )?;
    if signed.body.len() > MAX_BODY {
        return Err(OpenError::InnerMalformed);
    }
    Ok(VerifiedMessage {
        header: envelope.header,
        sender,
        sent_at_ms: signed.sent_at_ms,
        kind: signed.kind,
        seq: signed.seq,
        prev: signed.prev,
        body: signed.body,
        hash: message_hash_v2(envelope.header.recipient, &inner.signed),
        message_id: signed.message_id,
        sender_device: Some(signed.sender_device),
        session: Some(envelope.session),
    })
}

fn decode_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, OpenError> {
    crate::envelope::decode_whole(bytes).ok_or(OpenError::InnerMalformed)
}
