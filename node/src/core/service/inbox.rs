//! What comes in: taking in a verified message exactly once (with receipts, gaps and the
//! chain check), and requests from senders who are not contacts.

use std::sync::Arc;

use crypto::{Draft, Identity, MessageKind, PublicKey, VerifiedMessage};
use tracing::{debug, warn};

use super::*;

impl Node {
    /// Senders who are not contacts of `id`, with their messages.
    pub fn requests(&self, id: &str) -> Result<Vec<MessageRequest>, NodeError> {
        self.identity(id)?;
        let mut by_sender: Vec<MessageRequest> = Vec::new();
        for (_, r) in self.store.scan::<RequestRecord>(&keys::requests_of(id))? {
            let Ok(key) = PublicKey::from_pem(&r.public_key) else {
                continue;
            };
            let fingerprint = key.fingerprint();
            match by_sender.iter_mut().find(|s| s.fingerprint == fingerprint) {
                Some(s) => s.messages.push(r.message),
                None => by_sender.push(MessageRequest {
                    fingerprint,
                    public_key: r.public_key,
                    messages: vec![r.message],
                }),
            }
        }
        Ok(by_sender)
    }

    /// Accept an unknown sender as contact `name`: their messages move into the
    /// conversation, and they get receipts.
    pub async fn accept_request(
        self: &Arc<Self>,
        id: String,
        fingerprint: String,
        name: String,
    ) -> Result<ContactRecord, NodeError> {
        check_name("a contact name", &name)?;
        let records = self
            .store
            .scan::<RequestRecord>(&keys::requests_from(&id, &fingerprint))?;
        let Some((_, first)) = records.first() else {
            return Err(NodeError::NotFound(format!(
                "no request from {fingerprint}"
            )));
        };
        let key = PublicKey::from_pem(&first.public_key)?;
        let contact = self
            .add_contact_key(id.clone(), name.clone(), key.clone(), None)
            .await?;
        let node = self.clone();
        let identity = self.identity(&id)?;
        blocking(move || {
            let mut c = Changes::default();
            let mut chain = ChainRecord::default();
            let mut ids = Vec::new();
            for (old_key, record) in records {
                let new_key = keys::message(&id, &name, node.store.next_seq()?);
                c.delete(old_key);
                c.put_raw(keys::message_id(&record.message.id.0), new_key.clone());
                ids.push(record.message.id);
                if record.message.seq > chain.last_seq {
                    chain = ChainRecord {
                        last_seq: record.message.seq,
                        last_hash: record.hash,
                    };
                }
                c.put(new_key, &Entry::Message(record.message));
            }
            c.put(keys::inchain(&id, &name), &chain);
            if !ids.is_empty() {
                node.queue_receipt(&mut c, &identity, &key, &id, &name, &ids)?;
            }
            node.store.apply(c)?;
            Ok(())
        })
        .await?;
        self.wake();
        Ok(contact)
    }

    /// Delete an unknown sender's messages.
    pub async fn delete_request(
        self: &Arc<Self>,
        id: String,
        fingerprint: String,
    ) -> Result<(), NodeError> {
        self.identity(&id)?;
        let node = self.clone();
        blocking(move || {
            let found = node.store.keys(&keys::requests_from(&id, &fingerprint))?;
            if found.is_empty() {
                return Err(NodeError::NotFound(format!(
                    "no request from {fingerprint}"
                )));
            }
            let mut c = Changes::default();
            for k in found {
                c.delete(k);
            }
            node.store.apply(c)?;
            Ok(())
        })
        .await
    }

    /// Seal a receipt for `ids` to `to` and put it in the outbox (part of `c`). Blocking.
    pub(super) fn queue_receipt(
        &self,
        c: &mut Changes,
        identity: &Identity,
        to: &PublicKey,
        id: &str,
        contact: &str,
        ids: &[MessageId],
    ) -> Result<(), NodeError> {
        let sealed = identity.seal(
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
                message_id: sealed.header.id,
                kind: OutboxKind::Receipt,
            },
            sealed.bytes,
        )
    }

    /// Whether a message with this id was taken in already (by any identity here).
    pub fn knows_message(&self, mid: &MessageId) -> Result<bool, NodeError> {
        Ok(self.store.contains(&keys::message_id(&mid.0))?)
    }

    /// Take in a verified message for identity `id`, exactly once. Blocking (it may seal a
    /// receipt). Returns false for a duplicate: only the ACK is left to do.
    pub fn receive(&self, id: &str, message: &VerifiedMessage) -> Result<bool, NodeError> {
        let mid = message.id();
        if self.store.contains(&keys::message_id(&mid.0))? {
            return Ok(false);
        }
        let sender_fp = message.sender().fingerprint();
        let contact = self
            .store
            .scan::<ContactRecord>(&keys::contacts_of(id))?
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.fingerprint == sender_fp);
        let mut c = Changes::default();
        match (message.kind(), contact) {
            (MessageKind::Receipt, contact) => {
                // Remember the id so a replay is a duplicate; the receipt itself is not shown.
                c.put_raw(keys::message_id(&mid.0), b"receipt".to_vec());
                let mut updates = Vec::new();
                if let (Some(contact), Some(ids)) = (
                    contact,
                    crypto::envelope::parse_receipt_body(message.body()),
                ) {
                    let conversation = keys::conversation(id, &contact.name);
                    for confirmed in ids {
                        let Some(key) = self.store.get_raw(&keys::message_id(&confirmed.0))? else {
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
                            updates.push(m.id);
                            c.put(key, &Entry::Message(m));
                        }
                    }
                    self.store.apply(c)?;
                    for mid in updates {
                        self.emit(NodeEvent::Status {
                            identity: id.to_owned(),
                            contact: contact.name.clone(),
                            id: mid,
                            status: Status::Delivered,
                            error: None,
                        });
                    }
                } else {
                    self.store.apply(c)?;
                }
                Ok(true)
            }
            (MessageKind::Text, Some(contact)) => {
                let now = now_ms();
                let record = incoming_record(message, now);
                let chain: ChainRecord = self
                    .store
                    .get(keys::inchain(id, &contact.name))?
                    .unwrap_or_default();
                let mut gap = None;
                let expected = chain.last_seq.saturating_add(1);
                let place = if message.seq() < expected {
                    self.fill_gap(&mut c, id, &contact.name, message.seq())?
                } else {
                    None
                };
                if message.seq() > expected {
                    let missing = message.seq() - expected;
                    let entry = Entry::Gap {
                        missing,
                        detected_ms: now,
                        first: Some(expected),
                    };
                    let local = self.store.next_seq()?;
                    c.put(keys::in_gap(id, &contact.name, local, expected), &entry);
                    c.put(keys::gap(id, &contact.name, expected), &local);
                    gap = Some(entry);
                    warn!(missing, "messages missing in a conversation");
                } else if message.seq() == expected
                    && chain.last_hash.is_some()
                    && message.prev() != chain.last_hash
                {
                    warn!("a message does not follow the one before it in the chain");
                }
                if message.seq() > chain.last_seq {
                    c.put(
                        keys::inchain(id, &contact.name),
                        &ChainRecord {
                            last_seq: message.seq(),
                            last_hash: Some(message.hash()),
                        },
                    );
                }
                let late = place.is_some();
                let key = match place {
                    Some(key) => key,
                    None => keys::message(id, &contact.name, self.store.next_seq()?),
                };
                c.put(key.clone(), &Entry::Message(record.clone()));
                c.put_raw(keys::message_id(&mid.0), key);
                let identity = self.identity(id)?;
                let to = PublicKey::from_pem(&contact.public_key)?;
                self.queue_receipt(&mut c, &identity, &to, id, &contact.name, &[mid])?;
                self.store.apply(c)?;
                if let Some(entry) = gap {
                    self.emit(NodeEvent::Message {
                        identity: id.to_owned(),
                        contact: contact.name.clone(),
                        entry,
                        late: false,
                    });
                }
                self.emit(NodeEvent::Message {
                    identity: id.to_owned(),
                    contact: contact.name,
                    entry: Entry::Message(record),
                    late,
                });
                self.wake();
                Ok(true)
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
                    return Ok(true);
                }
                let key = keys::request(id, &sender_hex, self.store.next_seq()?);
                c.put(
                    key.clone(),
                    &RequestRecord {
                        public_key: message.sender().to_pem(),
                        hash: Some(message.hash()),
                        message: incoming_record(message, now_ms()),
                    },
                );
                c.put_raw(keys::message_id(&mid.0), key);
                self.store.apply(c)?;
                debug!("a message from an unknown sender went to requests");
                self.emit(NodeEvent::Request {
                    identity: id.to_owned(),
                    fingerprint: sender_fp,
                });
                Ok(true)
            }
        }
    }

    /// The place of a message that comes after later ones (`seq` below what the chain
    /// expects next): in the gap left for it, which shrinks or splits around it. `None` when
    /// no gap covers `seq` (a replayed or restarted chain): it then goes to the end. Adds
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
