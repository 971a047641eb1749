//! The key layout (see [`super`]): how keys are built, pinned by the layout test.

/// Separator inside keys; ids and names cannot contain it.
const SEP: u8 = 0;

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 1 {
            out.push(SEP);
        }
        out.extend_from_slice(p);
    }
    out
}

/// Key helpers, public so the layout test pins them.
pub mod keys {
    use crypto::MessageId;

    use super::key;

    /// `id/<identity>`
    pub fn identity(id: &str) -> Vec<u8> {
        key(&[b"id/", id.as_bytes()])
    }
    /// `contact/<identity>\0<name>`
    pub fn contact(id: &str, name: &str) -> Vec<u8> {
        key(&[b"contact/", id.as_bytes(), name.as_bytes()])
    }
    /// `contact/<identity>\0`
    pub fn contacts_of(id: &str) -> Vec<u8> {
        key(&[b"contact/", id.as_bytes(), b""])
    }
    /// `msg/<identity>\0<contact>\0<seq BE>`
    pub fn message(id: &str, contact: &str, seq: u64) -> Vec<u8> {
        key(&[
            b"msg/",
            id.as_bytes(),
            contact.as_bytes(),
            &seq.to_be_bytes(),
        ])
    }
    /// `msg/<identity>\0<contact>\0<local BE><sender seq BE>`: a gap noticed when the entry
    /// `local` would have been written, and the late messages that fill it, in the sender's
    /// order (they sort after the entry before the gap and before `local + 1`).
    pub fn in_gap(id: &str, contact: &str, local: u64, sender_seq: u64) -> Vec<u8> {
        let mut at = local.to_be_bytes().to_vec();
        at.extend_from_slice(&sender_seq.to_be_bytes());
        key(&[b"msg/", id.as_bytes(), contact.as_bytes(), &at])
    }
    /// `gap/<identity>\0<contact>\0<first missing sender seq BE>` → the gap's `local`
    /// (its entry is at [`in_gap`]`(local, first)`).
    pub fn gap(id: &str, contact: &str, first: u64) -> Vec<u8> {
        key(&[
            b"gap/",
            id.as_bytes(),
            contact.as_bytes(),
            &first.to_be_bytes(),
        ])
    }
    /// `gap/<identity>\0<contact>\0`
    pub fn gaps_of(id: &str, contact: &str) -> Vec<u8> {
        key(&[b"gap/", id.as_bytes(), contact.as_bytes(), b""])
    }
    /// `msg/<identity>\0<contact>\0`
    pub fn conversation(id: &str, contact: &str) -> Vec<u8> {
        key(&[b"msg/", id.as_bytes(), contact.as_bytes(), b""])
    }
    /// `msg/<identity>\0`
    pub fn conversations_of(id: &str) -> Vec<u8> {
        key(&[b"msg/", id.as_bytes(), b""])
    }
    /// `msgid/<identity>\0<16 bytes>`: one index per identity, so two identities of one
    /// node can write to each other (the sender's copy and the recipient's are two entries).
    pub fn message_id(id: &str, mid: &MessageId) -> Vec<u8> {
        key(&[b"msgid/", id.as_bytes(), &mid.0])
    }
    /// `msgid/<identity>\0`
    pub fn message_ids_of(id: &str) -> Vec<u8> {
        key(&[b"msgid/", id.as_bytes(), b""])
    }
    /// `chain/<identity>\0<contact>`
    pub fn chain(id: &str, contact: &str) -> Vec<u8> {
        key(&[b"chain/", id.as_bytes(), contact.as_bytes()])
    }
    /// `inchain/<identity>\0<contact>`
    pub fn inchain(id: &str, contact: &str) -> Vec<u8> {
        key(&[b"inchain/", id.as_bytes(), contact.as_bytes()])
    }
    /// `outbox/<seq BE>`
    pub fn outbox(seq: u64) -> Vec<u8> {
        key(&[b"outbox/", &seq.to_be_bytes()])
    }
    /// `envelope/<seq BE>`: the sealed envelope of the outbox entry `outbox/<seq BE>`, as
    /// raw bytes.
    pub fn envelope_of(outbox_key: &[u8]) -> Vec<u8> {
        let seq = outbox_key.strip_prefix(b"outbox/").unwrap_or_default();
        key(&[b"envelope/", seq])
    }
    /// `request/<identity>\0<fingerprint>\0<seq BE>`
    pub fn request(id: &str, fingerprint: &str, seq: u64) -> Vec<u8> {
        key(&[
            b"request/",
            id.as_bytes(),
            fingerprint.as_bytes(),
            &seq.to_be_bytes(),
        ])
    }
    /// `request/<identity>\0<fingerprint>\0`
    pub fn requests_from(id: &str, fingerprint: &str) -> Vec<u8> {
        key(&[b"request/", id.as_bytes(), fingerprint.as_bytes(), b""])
    }
    /// `request/<identity>\0`
    pub fn requests_of(id: &str) -> Vec<u8> {
        key(&[b"request/", id.as_bytes(), b""])
    }
    /// `sender-name/<identity>\0<fingerprint>`: the name a stranger's profile message gave
    /// (a JSON string), shown with their request.
    pub fn sender_name(id: &str, fingerprint: &str) -> Vec<u8> {
        key(&[b"sender-name/", id.as_bytes(), fingerprint.as_bytes()])
    }
    /// `sender-name/<identity>\0`
    pub fn sender_names_of(id: &str) -> Vec<u8> {
        key(&[b"sender-name/", id.as_bytes(), b""])
    }
    /// `blocked/<identity>\0<fingerprint>`: a sender whose messages are dropped unread.
    pub fn blocked(id: &str, fingerprint: &str) -> Vec<u8> {
        key(&[b"blocked/", id.as_bytes(), fingerprint.as_bytes()])
    }
    /// `blocked/<identity>\0`
    pub fn blocked_of(id: &str) -> Vec<u8> {
        key(&[b"blocked/", id.as_bytes(), b""])
    }
    /// `read/<identity>\0<contact>`: the key of the newest entry the user has seen.
    pub fn read_mark(id: &str, contact: &str) -> Vec<u8> {
        key(&[b"read/", id.as_bytes(), contact.as_bytes()])
    }
    /// `session/<SHA-256 of the session id, hex>`
    pub fn session(hash_hex: &str) -> Vec<u8> {
        key(&[b"session/", hash_hex.as_bytes()])
    }
    /// `session/`
    pub fn sessions() -> Vec<u8> {
        b"session/".to_vec()
    }
    /// `late/<identity>\0<contact>`: how many messages came late into places the user had
    /// already read past (they count as unread until the conversation is read again).
    pub fn late_unread(id: &str, contact: &str) -> Vec<u8> {
        key(&[b"late/", id.as_bytes(), contact.as_bytes()])
    }
    /// `olm-device/<identity>`: the identity's Olm device, pickled under its pickle key
    /// (raw bytes).
    pub fn olm_device(id: &str) -> Vec<u8> {
        key(&[b"olm-device/", id.as_bytes()])
    }
    /// `olm-cert/<identity>`: its device certificate (raw bytes).
    pub fn olm_certificate(id: &str) -> Vec<u8> {
        key(&[b"olm-cert/", id.as_bytes()])
    }
    /// `olm-keys/<identity>`: what is known of its keys on its mailbox (JSON).
    pub fn olm_keys(id: &str) -> Vec<u8> {
        key(&[b"olm-keys/", id.as_bytes()])
    }
    /// `olm-session/<identity>\0<session id, 32 bytes>`: one Olm session, pickled.
    pub fn olm_session(id: &str, session: &crypto::SessionId) -> Vec<u8> {
        key(&[b"olm-session/", id.as_bytes(), &session.0])
    }
    /// `olm-peer/<identity>\0<fingerprint>`: the sessions with one correspondent (JSON).
    pub fn olm_peer(id: &str, fingerprint: &str) -> Vec<u8> {
        key(&[b"olm-peer/", id.as_bytes(), fingerprint.as_bytes()])
    }
    /// `resend/<identity>\0<message id, 16 bytes>`: an outgoing forward-secret text without
    /// a receipt yet ([`crate::core::store::ResendRecord`]).
    pub fn resend(id: &str, mid: &MessageId) -> Vec<u8> {
        key(&[b"resend/", id.as_bytes(), &mid.0])
    }
    /// `resend/<identity>\0`
    pub fn resends_of(id: &str) -> Vec<u8> {
        key(&[b"resend/", id.as_bytes(), b""])
    }
    /// `olm-seen/<identity>\0<envelope id, 16 bytes>`: a version 2 envelope taken in (its
    /// Olm message cannot decrypt twice: a second copy is acknowledged unopened).
    pub fn olm_seen(id: &str, envelope: &MessageId) -> Vec<u8> {
        key(&[b"olm-seen/", id.as_bytes(), &envelope.0])
    }
    /// `receipt-due/<identity>\0<contact>\0<seq BE>` → the message id (JSON): a
    /// contact's message taken in whose receipt is not sealed yet, in the order they came
    /// (receipts go out together, see [`crate::core::service::RECEIPT_DELAY`]).
    pub fn receipt_due(id: &str, contact: &str, seq: u64) -> Vec<u8> {
        key(&[
            b"receipt-due/",
            id.as_bytes(),
            contact.as_bytes(),
            &seq.to_be_bytes(),
        ])
    }
    /// `receipt-due/<identity>\0<contact>\0`
    pub fn receipts_due_to(id: &str, contact: &str) -> Vec<u8> {
        key(&[b"receipt-due/", id.as_bytes(), contact.as_bytes(), b""])
    }
    /// `receipt-due/<identity>\0`
    pub fn receipts_due_of(id: &str) -> Vec<u8> {
        key(&[b"receipt-due/", id.as_bytes(), b""])
    }
    /// The identity and contact of a [`receipt_due`] key.
    pub fn parse_receipt_due(key: &[u8]) -> Option<(String, String)> {
        let rest = key.strip_prefix(b"receipt-due/")?;
        let (names, seq) = rest.split_at_checked(rest.len().checked_sub(9)?)?;
        let mut parts = names.splitn(2, |&b| b == super::SEP);
        let (id, contact) = (parts.next()?, parts.next()?);
        if seq[0] != super::SEP || contact.contains(&super::SEP) {
            return None;
        }
        Some((
            String::from_utf8(id.to_vec()).ok()?,
            String::from_utf8(contact.to_vec()).ok()?,
        ))
    }
    /// `receipt-due/`: every receipt due.
    pub fn receipts_due() -> Vec<u8> {
        b"receipt-due/".to_vec()
    }
    /// The prefixes of an identity's sessions, correspondents and seen envelopes (with
    /// [`olm_device`], [`olm_certificate`] and [`olm_keys`]: its whole Olm state).
    pub fn olm_prefixes_of(id: &str) -> Vec<Vec<u8>> {
        [&b"olm-session/"[..], b"olm-peer/", b"olm-seen/"]
            .into_iter()
            .map(|prefix| key(&[prefix, id.as_bytes(), b""]))
            .collect()
    }
    /// `setting/<name>`
    pub fn setting(name: &str) -> Vec<u8> {
        key(&[b"setting/", name.as_bytes()])
    }
}
