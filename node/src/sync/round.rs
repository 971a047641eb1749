//! One sync round's steps (log in, drain the outbox, pull), written once against a [`Link`]:
//! the QUIC [`Client`] in the node, the mailbox core in memory in the tests
//! (`node/tests/pair.rs`). The decisions are the [`Engine`]'s; the steps only carry them out
//! against the node's core, with RSA work off the async executor.

use std::sync::Arc;

use crypto::{Fingerprint, MessageId};
use mailbox::client::{Client, ClientError};
use mailbox::core::{ClientSession, SessionError};
use mailbox::protocol::{CHALLENGE_LEN, Request, Response};
use rand::Rng;
use tracing::{debug, warn};

use super::SyncError;
use super::engine::{Engine, Hold, Received, SendVerdict, acknowledge, pull_again, send_verdict};
use crate::core::service::{Destination, Node, blocking};
use crate::core::store::Status;

/// Most envelopes asked for per PULL.
pub const PULL_BATCH: u32 = 64;

/// One welcomed connection to a mailbox.
pub trait Link: Send + Sync {
    /// This connection's login challenge and TLS exporter value.
    fn login_material(&self) -> ([u8; CHALLENGE_LEN], [u8; CHALLENGE_LEN]);
    /// Make one request and take its answer.
    fn request(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, ClientError>> + Send;
}

impl Link for Client {
    fn login_material(&self) -> ([u8; CHALLENGE_LEN], [u8; CHALLENGE_LEN]) {
        Client::login_material(self)
    }

    async fn request(&self, request: Request) -> Result<Response, ClientError> {
        Client::request(self, &request).await
    }
}

fn answer<T>(parsed: Result<T, SessionError>) -> Result<T, SyncError> {
    parsed.map_err(|e| SyncError::Mailbox(e.into()))
}

/// Log in every identity the engine says is not logged in on this connection.
pub async fn login_new<L: Link, R: Rng>(
    node: &Arc<Node>,
    link: &L,
    engine: &mut Engine<R>,
) -> Result<(), SyncError> {
    login_some(node, link, engine, |_| true).await
}

/// Log in the identities `wanted` names (by id) that are not logged in on this connection:
/// at a contact's mailbox, only those with something to send there, so its operator learns
/// no other identity of this node.
pub async fn login_some<L: Link, R: Rng>(
    node: &Arc<Node>,
    link: &L,
    engine: &mut Engine<R>,
    wanted: impl Fn(&str) -> bool,
) -> Result<(), SyncError> {
    let (challenge, exporter) = link.login_material();
    let mut loaded = node.loaded_identities();
    loaded.retain(|(id, _)| wanted(id));
    let identities: Vec<(usize, Fingerprint)> = loaded
        .iter()
        .enumerate()
        .map(|(i, (_, identity))| (i, identity.fingerprint()))
        .collect();
    for (i, fingerprint) in engine.to_log_in(&identities) {
        let (id, identity) = &loaded[i];
        let signer = identity.clone();
        // RSA private-key work runs off the executor threads.
        let signature =
            tokio::task::spawn_blocking(move || signer.sign_login(&challenge, &exporter))
                .await
                .map_err(|e| SyncError::Local(e.into()))?
                .map_err(|e| SyncError::Local(e.into()))?;
        let request = Request::Login {
            public_key: identity.public_key().der().to_vec(),
            signature,
        };
        let logged = answer(ClientSession::logged_in_as(link.request(request).await?))?;
        if logged != fingerprint {
            return Err(SyncError::Mailbox(SessionError::OtherIdentity.into()));
        }
        debug!(identity = %id, "logged in");
        engine.logged_in(fingerprint);
    }
    Ok(())
}

/// SEND everything in the outbox for the mailbox `to` (this link's), oldest first, that no
/// refusal holds back. A refusal for now holds back only whom it concerns (a recipient
/// whose queue is full, a sender over its rate: their later envelopes wait, in order, for
/// their own backoff) or, for the connection's trouble, ends the drain; a refusal for good
/// marks the message failed.
pub async fn drain_outbox<L: Link, R: Rng>(
    node: &Arc<Node>,
    link: &L,
    engine: &mut Engine<R>,
    to: &Destination,
    now_ms: u64,
) -> Result<(), SyncError> {
    let n = node.clone();
    let items = blocking(move || n.outbox()).await?;
    for outgoing in items {
        let (key, item) = (outgoing.key, outgoing.record);
        if !node.destination(&item).is(to) {
            continue;
        }
        let sender = node.identity(&item.identity).ok().map(|i| i.fingerprint());
        let recipient = outgoing
            .envelope
            .as_deref()
            .and_then(|e| crypto::EnvelopeHeader::parse(e).ok())
            .map(|h| h.recipient);
        let (Some(sender), Some(recipient), Some(envelope)) =
            (sender, recipient, outgoing.envelope)
        else {
            // Its identity was deleted, or the record is damaged: it cannot be sent.
            let n = node.clone();
            blocking(move || n.outbox_done(key, &item, Some("could not be sent".into()))).await?;
            continue;
        };
        if !engine.may_send(sender, recipient, now_ms) {
            continue;
        }
        let request = answer(ClientSession::send(sender, envelope))?;
        let verdict = match ClientSession::stored(link.request(request).await?) {
            Ok(_) => SendVerdict::Sent,
            Err(SessionError::Refused { code, message }) => {
                debug!(code = code.as_str(), %message, "the mailbox's words for a refusal");
                send_verdict(code)
            }
            Err(other) => return Err(SyncError::Mailbox(other.into())),
        };
        let n = node.clone();
        match verdict {
            SendVerdict::Sent => {
                engine.sent(sender, recipient);
                blocking(move || n.outbox_done(key, &item, None)).await?;
            }
            SendVerdict::Never(words) => {
                warn!("the mailbox refused an envelope");
                blocking(move || n.outbox_done(key, &item, Some(words))).await?;
            }
            SendVerdict::Later { words, hold } => {
                warn!(?hold, "the mailbox refused an envelope for now; will retry");
                engine.refused(hold, sender, recipient, now_ms);
                blocking(move || {
                    n.set_status(
                        &item.identity,
                        &item.message_id,
                        Status::Pending,
                        Some(words),
                    )
                })
                .await?;
                if hold == Hold::All {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Pull every identity's queue until it is empty (or stops making progress).
pub async fn pull_all<L: Link>(node: &Arc<Node>, link: &L) -> Result<(), SyncError> {
    for (id, identity) in node.loaded_identities() {
        pull_one(node, link, &id, &identity).await?;
    }
    Ok(())
}

/// Pull one identity's queue: download, verify, store durably, then acknowledge.
pub async fn pull_one<L: Link>(
    node: &Arc<Node>,
    link: &L,
    id: &str,
    identity: &Arc<crypto::Identity>,
) -> Result<(), SyncError> {
    let me = identity.fingerprint();
    loop {
        let request = Request::Pull {
            recipient: me,
            max_count: PULL_BATCH,
        };
        let (envelopes, more) = answer(ClientSession::batch(link.request(request).await?))?;
        if envelopes.is_empty() {
            return Ok(());
        }
        let n = node.clone();
        let opener = identity.clone();
        let id_owned = id.to_owned();
        // Open (RSA) and store durably off the executor; then acknowledge.
        let done: Vec<MessageId> = tokio::task::spawn_blocking(move || {
            envelopes
                .iter()
                .filter_map(|envelope| {
                    let id = crypto::EnvelopeHeader::parse(envelope).ok()?.id;
                    let received = receive(&n, &opener, &id_owned, &id, envelope);
                    acknowledge(received).then_some(id)
                })
                .collect()
        })
        .await
        .map_err(|e| SyncError::Local(e.into()))?;
        let acked = done.len();
        if acked > 0 {
            let request = ClientSession::ack(me, done);
            answer(ClientSession::acked(link.request(request).await?))?;
        }
        if !pull_again(more, acked) {
            return Ok(());
        }
    }
}

/// Take one envelope in. Blocking (RSA, disk).
fn receive(
    node: &Node,
    identity: &crypto::Identity,
    id: &str,
    message_id: &MessageId,
    envelope: &[u8],
) -> Received {
    if crypto::EnvelopeHeader::parse(envelope).is_ok_and(|h| h.version == crypto::FORMAT_V2) {
        // Forward-secret: opened with the identity's device and sessions, and deduplicated
        // on the envelope id before anything is decrypted.
        return match node.receive_v2(id, envelope) {
            Ok(Some(true)) => Received::Stored,
            Ok(Some(false)) => Received::Known,
            Ok(None) => Received::Refused,
            Err(e) => {
                warn!(error = %e, "could not store a message; it stays queued");
                Received::Failed
            }
        };
    }
    // A retry or a replay of what is already here: only the ACK is left, without the RSA
    // work (the id is bound into the envelope, so another envelope under a known id could
    // only be a forgery, which `receive` would drop as well).
    match node.knows_message(id, message_id) {
        Ok(true) => return Received::Known,
        Ok(false) => {}
        Err(e) => {
            warn!(error = %e, "could not read the message index; it stays queued");
            return Received::Failed;
        }
    }
    match identity.open(envelope) {
        Ok(message) => match node.receive(id, &message) {
            Ok(_) => Received::Stored,
            Err(e) => {
                warn!(error = %e, "could not store a message; it stays queued");
                Received::Failed
            }
        },
        Err(e) => {
            // Refused envelopes are dropped without a receipt and without telling anyone why.
            debug!(reason = %e, "refused an envelope");
            Received::Refused
        }
    }
}
