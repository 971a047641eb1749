//! What goes out: the outbox the sync loop drains, and the status of sent messages.

use super::*;
use crate::core::store::Outgoing;
use crypto::MessageId;

impl Node {
    /// Set an outgoing message's status. Blocking. `Sent` never replaces `Delivered`.
    pub fn set_status(
        &self,
        identity: &str,
        message_id: &MessageId,
        status: Status,
        error: Option<String>,
    ) -> Result<(), NodeError> {
        let mut c = Changes::default();
        let statuses = self.status_lock();
        if let Some(event) = self.status_change(&mut c, identity, message_id, status, error)? {
            self.store.apply(c)?;
            drop(statuses);
            if let Some(event) = event {
                self.emit(event);
            }
        }
        Ok(())
    }

    /// Put an outgoing message's new status into `c`: `None` if nothing changes, else the
    /// event to emit once `c` is applied (if the message is in a conversation). The caller
    /// holds the status lock until `c` is applied.
    fn status_change(
        &self,
        c: &mut Changes,
        identity: &str,
        message_id: &MessageId,
        status: Status,
        error: Option<String>,
    ) -> Result<Option<Option<NodeEvent>>, NodeError> {
        let Some(key) = self
            .store
            .get_raw(&keys::message_id(identity, message_id))?
        else {
            return Ok(None);
        };
        let Some(Entry::Message(mut m)) = self.store.get::<Entry>(key.clone())? else {
            return Ok(None);
        };
        if m.status == Status::Delivered || (m.status == status && m.error == error) {
            return Ok(None);
        }
        m.status = status;
        m.error = error.clone();
        c.put(key.clone(), &Entry::Message(m));
        Ok(Some(conversation_of(&key).map(|(identity, contact)| {
            NodeEvent::Status {
                identity,
                contact,
                id: *message_id,
                status,
                error,
            }
        })))
    }

    /// Where an outbox entry goes: its contact's mailbox, when their invite (or notice)
    /// named one other than ours; our own otherwise (a contact added by key alone, a
    /// stranger, or one who uses our mailbox too).
    pub fn destination(&self, item: &OutboxRecord) -> Destination {
        self.destination_of(&item.identity, &item.contact)
    }

    /// Where identity `id`'s messages to `contact` are delivered (see [`Self::destination`]).
    pub fn destination_of(&self, id: &str, contact: &str) -> Destination {
        match self.store.get::<ContactRecord>(keys::contact(id, contact)) {
            Ok(Some(record)) => self.destination_for(&record),
            _ => Destination::Home,
        }
    }

    /// Where messages to the contact `record` are delivered.
    fn destination_for(&self, record: &ContactRecord) -> Destination {
        let theirs = record
            .mailbox
            .as_deref()
            .and_then(|m| m.parse::<config::MailboxAddress>().ok());
        match theirs {
            Some(theirs) if !theirs.same_endpoint(&self.mailbox()) => Destination::Remote(theirs),
            _ => Destination::Home,
        }
    }

    /// The mailboxes other than ours that outbox entries, or claims of contacts' keys,
    /// wait for, each once. Each sync round asks: the contacts on other mailboxes are
    /// found first (few; usually none, and then the outbox is not read at all), and an
    /// outbox entry is matched against them, not looked up.
    pub fn remote_destinations(&self) -> Result<Vec<config::MailboxAddress>, NodeError> {
        let mut remote: HashMap<(String, String), config::MailboxAddress> = HashMap::new();
        for identity in self.identities()? {
            let contacts = self
                .store
                .scan::<ContactRecord>(&keys::contacts_of(&identity.id))?;
            for (_, contact) in contacts {
                if let Destination::Remote(address) = self.destination_for(&contact) {
                    remote.insert((identity.id.clone(), contact.name), address);
                }
            }
        }
        let mut out: Vec<config::MailboxAddress> = Vec::new();
        if remote.is_empty() {
            return Ok(out);
        }
        let outbox = self
            .store
            .scan::<OutboxRecord>(b"outbox/")?
            .into_iter()
            .map(|(_, r)| (r.identity, r.contact));
        let claims = self
            .claims_pending(now_ms())?
            .into_iter()
            .map(|(id, contact)| (id, contact.name));
        for pair in outbox.chain(claims) {
            if let Some(address) = remote.get(&pair)
                && !out.iter().any(|a| a.same_endpoint(address))
            {
                out.push(address.clone());
            }
        }
        Ok(out)
    }

    /// Every identity's contacts that have no session yet and whose mailbox has not said
    /// lately that it has no key for them, as `(identity, contact)`.
    pub fn claims_pending(&self, now: u64) -> Result<Vec<(String, ContactRecord)>, NodeError> {
        let mut out = Vec::new();
        for record in self.identities()? {
            for contact in self.contacts_without_session(&record.id, now)? {
                out.push((record.id.clone(), contact));
            }
        }
        Ok(out)
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<Outgoing>, NodeError> {
        let mut out = Vec::new();
        for (key, record) in self.store.scan::<OutboxRecord>(b"outbox/")? {
            let envelope = self.store.get_raw(&keys::envelope_of(&key))?;
            out.push(Outgoing {
                key,
                record,
                envelope,
            });
        }
        Ok(out)
    }

    /// Put an envelope in the outbox (part of `c`): its record and, beside it, its bytes.
    pub(super) fn queue_envelope(
        &self,
        c: &mut Changes,
        record: OutboxRecord,
        envelope: Vec<u8>,
    ) -> Result<(), NodeError> {
        let key = keys::outbox(self.store.next_seq()?);
        c.put_raw(keys::envelope_of(&key), envelope);
        c.put(key, &record);
        Ok(())
    }

    /// How many messages wait in the outbox (receipts not counted). Reads the records only,
    /// not the envelopes.
    pub fn outbox_len(&self) -> usize {
        *self.outbox_texts()
    }

    /// The texts in the outbox, counted from the store (at open, and after deletions).
    pub(super) fn count_outbox_texts(store: &Store) -> Result<usize, NodeError> {
        Ok(store
            .scan::<OutboxRecord>(b"outbox/")?
            .iter()
            .filter(|(_, r)| r.kind == OutboxKind::Text)
            .count())
    }

    /// Remove an envelope from the outbox once the mailbox holds it (or refused it for
    /// good, with `error`), updating its message. Blocking.
    pub fn outbox_done(
        &self,
        key: Vec<u8>,
        item: &OutboxRecord,
        error: Option<String>,
    ) -> Result<(), NodeError> {
        // The message's status and the entry's removal in one write.
        let mut c = Changes::default();
        let statuses = self.status_lock();
        let event = if item.kind == OutboxKind::Text {
            let status = if error.is_some() {
                Status::Failed
            } else {
                Status::Sent
            };
            self.status_change(&mut c, &item.identity, &item.message_id, status, error)?
                .flatten()
        } else {
            None
        };
        let mut texts = self.outbox_texts();
        let counted = item.kind == OutboxKind::Text && self.store.contains(&key)?;
        c.delete(keys::envelope_of(&key));
        c.delete(key);
        // Not waited on to be durable: losing it to a crash only sends the envelope again,
        // and a copy is a duplicate everywhere (the mailbox's id check, the recipient's
        // message ids). That saves a flush and an fdatasync per envelope sent.
        self.store.apply_lazily(c)?;
        if counted {
            *texts = texts.saturating_sub(1);
        }
        drop(texts);
        drop(statuses);
        if let Some(event) = event {
            self.emit(event);
        }
        Ok(())
    }
}
