//! What comes in: taking in a verified message exactly once (opening version 2 envelopes
//! with the identity's sessions; receipts, gaps and the chain check). Messages from
//! strangers go to requests (`requests.rs`).

use std::collections::BTreeMap;

use crypto::{Draft, Identity, MessageKind, PublicKey, VerifiedMessage};
use tracing::{debug, warn};

use super::ratchet::Olm;
use super::*;

/// What became of a message taken in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Taken {
    /// Kept (or used: a receipt, a notice).
    Stored,
    /// Taken in before: only the acknowledgement is left.
    Known,
    /// Not kept (a stranger past the bounds, a blocked sender): nothing of it stays, not
    /// even the session state it came in.
    Dropped,
}

/// A contact's text message on its way into their conversation.
pub(super) struct Incoming {
    pub(super) record: MessageRecord,
    /// Its hash, the chain's next link (none only in request records from before).
    pub(super) hash: Option<crypto::MessageHash>,
    /// The previous message's hash as signed: `Some(None)` for a first message, `None` when
    /// not known (old request records).
    pub(super) prev: Option<Option<crypto::MessageHash>>,
}

impl Node {
    /// Seal a receipt for `ids` to `to` and put it in the outbox (part of `c`, with the
    /// session state it used: the caller writes `olm` into `c`). Blocking.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_receipt(
        &self,
        c: &mut Changes,
        olm: &mut Olm<'_>,
        identity: &Identity,
        to: &PublicKey,
        id: &str,
        contact: &str,
        ids: &[MessageId],
    ) -> Result<(), NodeError> {
        let sealed = olm.seal(
            identity,
            to,
            &Draft {
                kind: MessageKind::Receipt,
                seq: 0,
                prev: None,
                sent_at: SystemTime::now(),
                body: crypto::envelope::receipt_body(ids),
            },
        )?;
        self.queue_envelope(
            c,
            OutboxRecord {
                identity: id.to_owned(),
                contact: contact.to_owned(),
                message_id: sealed.message_id,
                kind: OutboxKind::Receipt,
            },
            sealed.bytes,
        )
    }

    /// Seal the receipts due: one receipt per contact for every message of theirs taken in
    /// since the last call (at most [`MAX_RECEIPT_IDS`] ids each), queued in the outbox
    /// with the session state that sealed it, in one durable write per receipt. Returns how
    /// many were queued; the caller wakes the sync. Blocking.
    ///
    /// Taking messages in only notes that a receipt is due, and the node's receipts task
    /// calls this [`RECEIPT_DELAY`] after the first one: a burst of messages costs one
    /// receipt (one signature, one envelope through the mailbox, one write at each end)
    /// instead of one per message.
    pub fn seal_due_receipts(&self) -> Result<usize, NodeError> {
        // (identity, contact) → the keys of the receipts due, with the ids they confirm.
        type Due = BTreeMap<(String, String), Vec<(Vec<u8>, MessageId)>>;
        let mut due = Due::new();
        for (key, mid) in self.store.scan::<MessageId>(&keys::receipts_due())? {
            match keys::parse_receipt_due(&key) {
                Some(names) => due.entry(names).or_default().push((key, mid)),
                None => warn!("a receipt record with a malformed key is left alone"),
            }
        }
        let mut sealed = 0;
        let mut failed = None;
        for ((id, name), entries) in due {
            // One contact's trouble holds back nobody else's receipts.
            match self.seal_receipts_to(&id, &name, &entries) {
                Ok(n) => sealed += n,
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(sealed),
        }
    }

    /// [`Self::seal_due_receipts`] for the messages `entries` (due keys and ids) of contact
    /// `name` of identity `id`. Returns how many receipts were queued.
    fn seal_receipts_to(
        &self,
        id: &str,
        name: &str,
        entries: &[(Vec<u8>, MessageId)],
    ) -> Result<usize, NodeError> {
        let _inbox = self.inbox_lock();
        let contact: Option<ContactRecord> = self.store.get(keys::contact(id, name))?;
        let (Some(contact), Ok(identity)) = (contact, self.identity(id)) else {
            // The contact or the identity went meanwhile: nobody to tell.
            let mut c = Changes::default();
            for (key, _) in entries {
                c.delete(key.clone());
            }
            self.store.apply_lazily(c)?;
            return Ok(0);
        };
        let to = PublicKey::from_pem(&contact.public_key)?;
        let mut olm = self.olm(id)?;
        let mut sealed = 0;
        for chunk in entries.chunks(MAX_RECEIPT_IDS) {
            let ids: Vec<MessageId> = chunk.iter().map(|(_, mid)| *mid).collect();
            let mut c = Changes::default();
            self.queue_receipt(&mut c, &mut olm, &identity, &to, id, name, &ids)?;
            for (key, _) in chunk {
                c.delete(key.clone());
            }
            olm.write(&mut c);
            self.store.apply(c)?;
            sealed += 1;
        }
        Ok(sealed)
    }

    /// Whether identity `id` took in a message with this id already.
    pub fn knows_message(&self, id: &str, mid: &MessageId) -> Result<bool, NodeError> {
        Ok(self.store.contains(&keys::message_id(id, mid))?)
    }

    /// Take in a verified message (envelope version 1) for identity `id`, exactly once.
    /// Blocking (it may seal a receipt). Returns false for a duplicate: only the ACK is left
    /// to do.
    pub fn receive(&self, id: &str, message: &VerifiedMessage) -> Result<bool, NodeError> {
        // Who is a contact, and where their chain stands, do not change under us.
        let _inbox = self.inbox_lock();
        let mut olm = self.olm(id)?;
        let taken = self.receive_in(id, message, &mut olm)?;
        Ok(taken != Taken::Known)
    }

    /// Open a version 2 envelope for identity `id` and take its message in, exactly once:
    /// the session state that opened it is stored with the message and its receipt (or,
    /// for what is not kept, not at all). Blocking. `None` when the envelope is refused
    /// (nothing changed: it is acknowledged and dropped, and nobody is told why).
    pub fn receive_v2(&self, id: &str, envelope: &[u8]) -> Result<Option<bool>, NodeError> {
        let _inbox = self.inbox_lock();
        let mut olm = self.olm(id)?;
        let Ok(header) = crypto::EnvelopeHeader::parse(envelope) else {
            return Ok(None);
        };
        // An Olm message decrypts once: a copy of one taken in is only acknowledged.
        if olm.seen(&header.id)? {
            return Ok(Some(false));
        }
        let message = match olm.open(envelope)? {
            Ok(message) => message,
            Err(e) => {
                debug!(reason = %e, "refused an envelope");
                if olm.broken(envelope, now_ms())? {
                    warn!("a session did not open an envelope: it will be reset");
                    let mut c = Changes::default();
                    olm.write(&mut c);
                    self.store.apply(c)?;
                    self.wake();
                }
                return Ok(None);
            }
        };
        let new_device = olm.take_new_device();
        let taken = self.receive_in(id, &message, &mut olm)?;
        let from_contact = self.contact_of(id, &message)?.is_some();
        // A stranger's session step is kept only with something of theirs that was kept
        // (a request, a name): a copy or a blocked sender leaves nothing behind.
        let keep = match taken {
            Taken::Stored => true,
            Taken::Known => from_contact,
            Taken::Dropped => false,
        };
        if keep {
            // What the branches did not store with a message (a duplicate's session step,
            // a receipt's, a notice's) goes now.
            let mut c = Changes::default();
            olm.write(&mut c);
            if !c.is_empty() {
                self.store.apply(c)?;
            }
        }
        // After the message and the state that opened it are stored.
        if new_device && taken == Taken::Stored {
            self.note_new_device(id, &message)?;
        }
        Ok(Some(taken != Taken::Known))
    }

    /// A contact's message came from a device of theirs this node had not seen (they
    /// restored their identity, or reinstalled): a note says so; the safety number, which
    /// is their RSA key's, is unchanged.
    fn note_new_device(&self, id: &str, message: &VerifiedMessage) -> Result<(), NodeError> {
        let Some(contact) = self.contact_of(id, message)? else {
            return Ok(());
        };
        let shown = contact.shown_name().to_owned();
        let mut c = Changes::default();
        let entry = self.put_note(
            &mut c,
            id,
            &contact.name,
            format!(
                "{shown}'s device key changed (a new installation or a restored backup); \
                 the safety number is the same"
            ),
            false,
        )?;
        self.store.apply(c)?;
        self.emit_entry(id, &contact.name, entry);
        Ok(())
    }

    /// The contact of `id` who signed `message`, if they are one.
    fn contact_of(
        &self,
        id: &str,
        message: &VerifiedMessage,
    ) -> Result<Option<ContactRecord>, NodeError> {
        let sender = message.sender().fingerprint();
        Ok(self
            .store
            .scan::<ContactRecord>(&keys::contacts_of(id))?
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.fingerprint == sender))
    }

    /// Take in a verified message; the caller holds the inbox lock. Where a message is
    /// stored, `olm`'s state is stored with it.
    fn receive_in(
        &self,
        id: &str,
        message: &VerifiedMessage,
        olm: &mut Olm<'_>,
    ) -> Result<Taken, NodeError> {
        let mid = message.id();
        if self.knows_message(id, &mid)? {
            // A text sent again after a reset that was taken in before: its receipt may
            // be what got lost, so it gets one again (a copy of the same envelope does not
            // come this far: it is known by its envelope id).
            if message.forward_secret()
                && message.kind() == MessageKind::Text
                && let Some(contact) = self.contact_of(id, message)?
            {
                let mut c = Changes::default();
                c.put(
                    keys::receipt_due(id, &contact.name, self.store.next_seq()?),
                    &mid,
                );
                self.store.apply(c)?;
                self.receipts_due();
            }
            return Ok(Taken::Known);
        }
        let sender_fp = message.sender().fingerprint();
        if self
            .store
            .contains(&keys::blocked(id, &sender_fp.to_string()))?
        {
            debug!("a message from a blocked sender is dropped");
            return Ok(Taken::Dropped);
        }
        let contact = self
            .store
            .scan::<ContactRecord>(&keys::contacts_of(id))?
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.fingerprint == sender_fp);
        match (message.kind(), contact) {
            (MessageKind::Receipt, Some(contact)) => {
                let ids = crypto::envelope::parse_receipt_body(message.body()).unwrap_or_default();
                self.take_receipt(id, &contact, &mid, &ids, olm)?;
                Ok(Taken::Stored)
            }
            // A stranger's receipt confirms nothing of ours, and leaves nothing behind.
            (MessageKind::Receipt, None) => Ok(Taken::Dropped),
            // A contact has the name this identity gave them; where they are reached is
            // taken from their (signed) profile only if nothing said it before.
            (MessageKind::Profile, Some(contact)) => {
                self.take_profile_mailbox(id, &contact, message)?;
                Ok(Taken::Stored)
            }
            (MessageKind::MailboxMoved, Some(contact)) => {
                self.take_move(id, &contact, message)?;
                Ok(Taken::Stored)
            }
            // Only a contact moves: a stranger's notice means nothing here.
            (MessageKind::MailboxMoved, None) => Ok(Taken::Dropped),
            // A contact's new session (after a broken one, or from their new device): what
            // they never confirmed goes again in it.
            (MessageKind::SessionReset, Some(contact)) => {
                let again = self.resend_unconfirmed(id, &contact, olm)?;
                debug!(again, "a contact reset their session");
                Ok(Taken::Stored)
            }
            (MessageKind::SessionReset, None) => Ok(Taken::Dropped),
            // A stranger's session is kept only with something of theirs that is kept.
            (MessageKind::Profile, None) => Ok(if self.take_sender_name(id, message)? {
                Taken::Stored
            } else {
                Taken::Dropped
            }),
            (MessageKind::Text, Some(contact)) => {
                self.append_incoming(
                    Changes::default(),
                    olm,
                    id,
                    &contact,
                    Incoming {
                        record: incoming_record(message, now_ms()),
                        hash: Some(message.hash()),
                        prev: Some(message.prev()),
                    },
                )?;
                Ok(Taken::Stored)
            }
            (MessageKind::Text, None) => {
                // Anyone who knows a fingerprint can write to it: what strangers may leave
                // is bounded, or one could fill the disk through the mailbox (whose quota
                // bounds a queue, not what a node has already taken in). Beyond the caps a
                // message is acknowledged and not kept.
                let sender_hex = sender_fp.to_string();
                let from_sender = self
                    .store
                    .keys(&keys::requests_from(id, &sender_hex))?
                    .len();
                if from_sender >= MAX_REQUEST_MESSAGES_PER_SENDER
                    || self.store.keys(&keys::requests_of(id))?.len() >= MAX_REQUEST_MESSAGES
                {
                    // debug, not warn: a flood of these is what the cap is for.
                    debug!(
                        from_sender,
                        "requests are full (at most {MAX_REQUEST_MESSAGES_PER_SENDER} messages \
                         from one stranger, {MAX_REQUEST_MESSAGES} in all): a message from \
                         an unknown sender is dropped"
                    );
                    return Ok(Taken::Dropped);
                }
                let key = keys::request(id, &sender_hex, self.store.next_seq()?);
                let mut c = Changes::default();
                c.put(
                    key.clone(),
                    &RequestRecord {
                        public_key: message.sender().to_pem(),
                        hash: Some(message.hash()),
                        prev: message.prev(),
                        message: incoming_record(message, now_ms()),
                    },
                );
                c.put_raw(keys::message_id(id, &mid), key);
                olm.write(&mut c);
                self.store.apply(c)?;
                debug!("a message from an unknown sender went to requests");
                self.emit(NodeEvent::Request {
                    identity: id.to_owned(),
                    fingerprint: sender_fp,
                });
                Ok(Taken::Stored)
            }
        }
    }

    /// A contact's receipt: the messages of ours it names are delivered.
    fn take_receipt(
        &self,
        id: &str,
        contact: &ContactRecord,
        mid: &MessageId,
        confirmed: &[MessageId],
        olm: &mut Olm<'_>,
    ) -> Result<(), NodeError> {
        let mut c = Changes::default();
        // Remember the id so a replay is a duplicate; the receipt itself is not shown.
        c.put_raw(keys::message_id(id, mid), b"receipt".to_vec());
        let conversation = keys::conversation(id, &contact.name);
        let mut updates = Vec::new();
        let statuses = self.status_lock();
        for confirmed in confirmed {
            let Some(key) = self.store.get_raw(&keys::message_id(id, confirmed))? else {
                continue;
            };
            if !key.starts_with(&conversation) {
                continue;
            }
            if let Some(Entry::Message(mut m)) = self.store.get::<Entry>(key.clone())?
                && m.direction == Direction::Out
                && m.status != Status::Delivered
            {
                m.status = Status::Delivered;
                m.error = None;
                c.delete(keys::resend(id, &m.id));
                updates.push(m.id);
                c.put(key, &Entry::Message(m));
            }
        }
        olm.write(&mut c);
        self.store.apply(c)?;
        drop(statuses);
        for mid in updates {
            self.emit(NodeEvent::Status {
                identity: id.to_owned(),
                contact: contact.name.clone(),
                id: mid,
                status: Status::Delivered,
                error: None,
            });
        }
        Ok(())
    }

    /// Put a contact's text into their conversation (with what `c` already holds), in the
    /// sender's order: after the chain so far (a gap marker first if messages are missing),
    /// or in the gap left for it if it is late. A broken link to the previous message, or a
    /// chain that starts again at 1, is kept with the message as a warning. Queues the
    /// receipt. Blocking; the caller holds the inbox lock.
    pub(super) fn append_incoming(
        &self,
        mut c: Changes,
        olm: &mut Olm<'_>,
        id: &str,
        contact: &ContactRecord,
        incoming: Incoming,
    ) -> Result<(), NodeError> {
        let Incoming {
            mut record,
            hash,
            prev,
        } = incoming;
        let name = &contact.name;
        let seq = record.seq;
        let chain: ChainRecord = self.store.get(keys::inchain(id, name))?.unwrap_or_default();
        let expected = chain.last_seq.saturating_add(1);
        let mut gap = None;
        let mut place = None;
        if seq < expected {
            place = self.fill_gap(&mut c, id, name, seq)?;
            if place.is_none() {
                // Behind the chain, and no gap waits for it: the sender's chain started over
                // (they removed and re-added this identity, or restored an old backup), at
                // its first message or, when the first ones were lost on the way, later. (A
                // copy of an earlier message never comes here: its id, or its Olm message,
                // is taken in once.) Gaps of the old chain can no longer be told apart from
                // the new one's: they stay, unfillable. The new chain is followed from here,
                // with a gap for what is missing of its start.
                let lost = if seq > 1 && prev != Some(None) {
                    seq - 1
                } else {
                    0
                };
                warn!(lost, "a contact's message chain started again");
                let first_lost = match lost {
                    0 => String::new(),
                    1 => ", and its first message did not come".to_owned(),
                    n => format!(", and its first {n} messages did not come"),
                };
                record.error = Some(format!(
                    "{name} started their message chain again (a reinstall, a restored \
                     backup, or they removed and re-added you){first_lost}; messages before \
                     this one cannot be checked against it"
                ));
                for key in self.store.keys(&keys::gaps_of(id, name))? {
                    c.delete(key);
                }
                if lost > 0 {
                    gap = Some(self.gap_marker(&mut c, id, name, 1, lost, record.stored_ms)?);
                }
                c.put(
                    keys::inchain(id, name),
                    &ChainRecord {
                        last_seq: seq,
                        last_hash: hash,
                    },
                );
            }
        } else {
            if seq > expected {
                let missing = seq - expected;
                gap =
                    Some(self.gap_marker(&mut c, id, name, expected, missing, record.stored_ms)?);
                warn!(missing, "messages missing in a conversation");
            } else if let Some(prev) = prev
                && chain.last_hash.is_some()
                && prev != chain.last_hash
            {
                warn!("a message does not follow the one before it in the chain");
                record.error = Some(
                    "this message does not follow the one before it from this contact: \
                     a message may have been changed or replaced on the way"
                        .to_owned(),
                );
            }
            c.put(
                keys::inchain(id, name),
                &ChainRecord {
                    last_seq: seq,
                    last_hash: hash,
                },
            );
        }
        let late = place.is_some();
        let key = match place {
            Some(key) => key,
            None => keys::message(id, name, self.store.next_seq()?),
        };
        // A late message placed where the user has read past still counts as unread.
        if late
            && self
                .store
                .get_raw(&keys::read_mark(id, name))?
                .is_some_and(|mark| key <= mark)
        {
            let n: u64 = self.store.get(keys::late_unread(id, name))?.unwrap_or(0);
            c.put(keys::late_unread(id, name), &n.saturating_add(1));
        }
        c.put(key.clone(), &Entry::Message(record.clone()));
        c.put_raw(keys::message_id(id, &record.id), key);
        // Its receipt goes out with the others due to this contact (see
        // [`Node::seal_due_receipts`]).
        c.put(
            keys::receipt_due(id, name, self.store.next_seq()?),
            &record.id,
        );
        olm.write(&mut c);
        self.store.apply(c)?;
        if let Some(entry) = gap {
            self.emit(NodeEvent::Message {
                identity: id.to_owned(),
                contact: name.clone(),
                entry,
                late: false,
            });
        }
        self.emit(NodeEvent::Message {
            identity: id.to_owned(),
            contact: name.clone(),
            entry: Entry::Message(record),
            late,
        });
        self.receipts_due();
        Ok(())
    }

    /// A gap marker in the conversation, at the end, for the `missing` messages from `first`
    /// on (noticed at `detected_ms`), and its index for [`Node::fill_gap`].
    fn gap_marker(
        &self,
        c: &mut Changes,
        id: &str,
        contact: &str,
        first: u64,
        missing: u64,
        detected_ms: u64,
    ) -> Result<Entry, NodeError> {
        let entry = Entry::Gap {
            missing,
            detected_ms,
            first: Some(first),
        };
        let local = self.store.next_seq()?;
        c.put(keys::in_gap(id, contact, local, first), &entry);
        c.put(keys::gap(id, contact, first), &local);
        Ok(entry)
    }

    /// The place of a message that comes after later ones (`seq` below what the chain
    /// expects next): in the gap left for it, which shrinks or splits around it. `None` when
    /// no gap covers `seq` (a restarted chain): it then goes to the end. Adds
    /// the gap's changes to `c`.
    fn fill_gap(
        &self,
        c: &mut Changes,
        id: &str,
        contact: &str,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, NodeError> {
        // The gap with the highest first missing seq at or below `seq`.
        let Some((index, local)) = self
            .store
            .scan_rev::<u64>(
                &keys::gaps_of(id, contact),
                Some(&keys::gap(id, contact, seq.saturating_add(1))),
                1,
            )?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let first = index
            .len()
            .checked_sub(8)
            .and_then(|at| index.get(at..))
            .and_then(|tail| <[u8; 8]>::try_from(tail).ok())
            .map(u64::from_be_bytes);
        let Some(first) = first else {
            return Ok(None);
        };
        let at = keys::in_gap(id, contact, local, first);
        let Some(Entry::Gap {
            missing,
            detected_ms,
            ..
        }) = self.store.get::<Entry>(at.clone())?
        else {
            return Ok(None);
        };
        let last = first.saturating_add(missing.saturating_sub(1));
        if seq > last {
            return Ok(None);
        }
        if seq > first {
            // The part before stays where it is, shorter.
            c.put(
                at,
                &Entry::Gap {
                    missing: seq - first,
                    detected_ms,
                    first: Some(first),
                },
            );
        } else {
            c.delete(at);
            c.delete(index);
        }
        if seq < last {
            // The part after moves behind the late message.
            c.put(
                keys::in_gap(id, contact, local, seq + 1),
                &Entry::Gap {
                    missing: last - seq,
                    detected_ms,
                    first: Some(seq + 1),
                },
            );
            c.put(keys::gap(id, contact, seq + 1), &local);
        }
        Ok(Some(keys::in_gap(id, contact, local, seq)))
    }
}
