//! Conversations: sending a text, pages of a conversation, one message, unread counts and
//! read marks.

use std::sync::Arc;

use crypto::{Draft, MessageId, MessageKind, PublicKey};

use super::*;

/// Where a conversation page starts: older than this message, or than this entry (a gap
/// marker has no message id). Written as the message id (32 hex digits), or `e` and the
/// entry's place: 16 hex digits, or 32 for a place inside a gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// Older than this message.
    Message(MessageId),
    /// Older than the entry at this place.
    Entry {
        /// The local sequence number.
        local: u64,
        /// The sender's sequence number, for a place inside a gap (see
        /// [`keys::in_gap`]).
        seq: Option<u64>,
    },
}

impl std::str::FromStr for Cursor {
    type Err = NodeError;

    fn from_str(text: &str) -> Result<Self, NodeError> {
        let invalid = || {
            NodeError::invalid(
                "invalid_before",
                "before: not a message id or a page cursor",
            )
        };
        let number = |hex: &str| u64::from_str_radix(hex, 16).map_err(|_| invalid());
        match text.strip_prefix('e') {
            Some(hex) if hex.len() == 16 => Ok(Self::Entry {
                local: number(hex)?,
                seq: None,
            }),
            Some(hex) if hex.len() == 32 && hex.is_ascii() => Ok(Self::Entry {
                local: number(&hex[..16])?,
                seq: Some(number(&hex[16..])?),
            }),
            _ => text.parse().map(Self::Message).map_err(|_| invalid()),
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Message(id) => write!(f, "{id}"),
            Self::Entry { local, seq: None } => write!(f, "e{local:016x}"),
            Self::Entry {
                local,
                seq: Some(seq),
            } => write!(f, "e{local:016x}{seq:016x}"),
        }
    }
}

/// One page of a conversation.
#[derive(Clone, Debug)]
pub struct Page {
    /// Newest first.
    pub entries: Vec<Entry>,
    /// Where the next (older) page starts, if older entries wait.
    pub next: Option<Cursor>,
}

/// The place of a conversation entry, from its key (after the conversation's prefix).
fn place_of(conversation: &[u8], key: &[u8]) -> Option<Cursor> {
    let at = key.strip_prefix(conversation)?;
    let number = |bytes: &[u8]| <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes);
    match at.len() {
        8 => Some(Cursor::Entry {
            local: number(at)?,
            seq: None,
        }),
        16 => Some(Cursor::Entry {
            local: number(&at[..8])?,
            seq: Some(number(&at[8..])?),
        }),
        _ => None,
    }
}

impl Node {
    /// Seal a text for a contact, store it as pending and queue it for the mailbox.
    /// Never waits for the network.
    pub async fn send_text(
        self: &Arc<Self>,
        id: String,
        contact: String,
        text: String,
    ) -> Result<MessageRecord, NodeError> {
        let identity = self.identity(&id)?;
        let record = self.contact(&id, &contact)?;
        if text.trim().is_empty() {
            return Err(NodeError::invalid(
                "empty_text",
                "This message is empty: write something first.",
            ));
        }
        if text.len() > self.max_body_bytes {
            // Kilobytes rounded up, so a message just over the limit does not read as equal.
            let kb = |bytes: usize| bytes.div_ceil(1024);
            return Err(NodeError::TooLarge(format!(
                "This message is too long: {} KB of {} KB.",
                kb(text.len()),
                kb(self.max_body_bytes)
            )));
        }
        let recipient = PublicKey::from_pem(&record.public_key)?;
        let node = self.clone();
        let message = blocking(move || {
            // One sender at a time on this node keeps each chain's sequence gapless.
            let _chain = node.chain_lock.lock().unwrap_or_else(|p| p.into_inner());
            let chain: ChainRecord = node
                .store
                .get(keys::chain(&id, &contact))?
                .unwrap_or_default();
            let draft = Draft {
                kind: MessageKind::Text,
                seq: chain.last_seq.saturating_add(1),
                prev: chain.last_hash,
                sent_at: SystemTime::now(),
                body: text.clone().into_bytes(),
            };
            // Sealed in the session with them if there is one (forward-secret), and stored
            // with it below.
            let mut olm = node.olm(&id)?;
            // A first message goes after the sender's name, for a recipient who does not
            // know them yet (their request then shows it).
            let profile = if draft.seq == 1 {
                let me = node.identity_record(&id)?;
                let name = me.display_name.unwrap_or(me.id);
                Some(olm.seal(
                    &identity,
                    &recipient,
                    &Draft {
                        kind: MessageKind::Profile,
                        seq: 0,
                        prev: None,
                        sent_at: draft.sent_at,
                        body: crypto::envelope::profile_body(&crypto::envelope::Profile {
                            name,
                            mailbox: Some(node.mailbox_in_use().to_string()),
                        }),
                    },
                )?)
            } else {
                None
            };
            let sealed = olm.seal(&identity, &recipient, &draft)?;
            let now = now_ms();
            let message = MessageRecord {
                id: sealed.message_id,
                direction: Direction::Out,
                text,
                sent_ms: now,
                stored_ms: now,
                status: Status::Pending,
                seq: draft.seq,
                error: None,
                forward_secret: sealed.header.version == crypto::FORMAT_V2,
            };
            let msg_key = keys::message(&id, &contact, node.store.next_seq()?);
            let mut c = Changes::default();
            c.put(msg_key.clone(), &Entry::Message(message.clone()));
            c.put_raw(keys::message_id(&id, &sealed.message_id), msg_key);
            c.put(
                keys::chain(&id, &contact),
                &ChainRecord {
                    last_seq: draft.seq,
                    last_hash: Some(sealed.hash),
                },
            );
            if sealed.header.version == crypto::FORMAT_V2 {
                let to = recipient.fingerprint();
                Node::keep_for_resend(&mut c, &id, &message.id, &contact, to, &draft);
            }
            if let Some(profile) = profile {
                node.queue_envelope(
                    &mut c,
                    OutboxRecord {
                        identity: id.clone(),
                        contact: contact.clone(),
                        message_id: profile.message_id,
                        kind: OutboxKind::Profile,
                    },
                    profile.bytes,
                )?;
            }
            node.queue_envelope(
                &mut c,
                OutboxRecord {
                    identity: id.clone(),
                    contact: contact.clone(),
                    message_id: message.id,
                    kind: OutboxKind::Text,
                },
                sealed.bytes,
            )?;
            olm.write(&mut c);
            let mut texts = node.outbox_texts();
            node.store.apply(c)?;
            drop(olm);
            *texts += 1;
            drop(texts);
            node.emit(NodeEvent::Message {
                identity: id,
                contact,
                entry: Entry::Message(message.clone()),
                late: false,
            });
            Ok(message)
        })
        .await?;
        self.wake();
        Ok(message)
    }

    /// A conversation page: newest first, at most `limit` entries, older than the message
    /// `before` (a message id, hex).
    pub fn messages(
        &self,
        id: &str,
        contact: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>, NodeError> {
        let before = before.map(str::parse::<Cursor>).transpose()?;
        Ok(self.page(id, contact, before.as_ref(), limit)?.entries)
    }

    /// A conversation page: newest first, at most `limit` entries, older than `before`;
    /// with the cursor of the next page when older entries wait.
    pub fn page(
        &self,
        id: &str,
        contact: &str,
        before: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, NodeError> {
        self.contact(id, contact)?;
        let conversation = keys::conversation(id, contact);
        let before_key = match before {
            None => None,
            Some(Cursor::Entry { local, seq: None }) => Some(keys::message(id, contact, *local)),
            Some(Cursor::Entry {
                local,
                seq: Some(seq),
            }) => Some(keys::in_gap(id, contact, *local, *seq)),
            Some(Cursor::Message(mid)) => Some(
                self.store
                    .get_raw(&keys::message_id(id, mid))?
                    .filter(|k| k.starts_with(&conversation))
                    .ok_or_else(|| {
                        NodeError::NotFound(format!("no message {mid} in this conversation"))
                    })?,
            ),
        };
        let mut entries = self.store.scan_rev::<Entry>(
            &conversation,
            before_key.as_deref(),
            limit.saturating_add(1),
        )?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let next = match entries.last() {
            Some((_, Entry::Message(m))) if more => Some(Cursor::Message(m.id)),
            Some((key, Entry::Gap { .. })) if more => place_of(&conversation, key),
            _ => None,
        };
        Ok(Page {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
            next,
        })
    }

    /// One message of a conversation, by its id.
    pub fn message(
        &self,
        id: &str,
        contact: &str,
        mid: &MessageId,
    ) -> Result<MessageRecord, NodeError> {
        self.contact(id, contact)?;
        let missing = || NodeError::NotFound(format!("no message {mid} in this conversation"));
        let key = self
            .store
            .get_raw(&keys::message_id(id, mid))?
            .filter(|k| k.starts_with(&keys::conversation(id, contact)))
            .ok_or_else(missing)?;
        match self.store.get::<Entry>(key)? {
            Some(Entry::Message(m)) => Ok(m),
            _ => Err(missing()),
        }
    }

    /// How many incoming messages of a conversation are unread, and the newest message's
    /// first line (at most 80 characters) as a preview.
    pub fn summary(&self, id: &str, contact: &str) -> Result<(usize, Option<String>), NodeError> {
        let mark = self.store.get_raw(&keys::read_mark(id, contact))?;
        let recent = self
            .store
            .scan_rev::<Entry>(&keys::conversation(id, contact), None, 500)?;
        let late: u64 = self.store.get(keys::late_unread(id, contact))?.unwrap_or(0);
        let mut unread = usize::try_from(late).unwrap_or(usize::MAX);
        let mut preview = None;
        for (key, entry) in &recent {
            let Entry::Message(m) = entry else {
                continue;
            };
            if preview.is_none() {
                preview = Some(super::preview(&m.text));
            }
            if mark.as_deref().is_some_and(|mark| key.as_slice() <= mark) {
                break;
            }
            if m.direction == Direction::In {
                unread += 1;
            }
        }
        Ok((unread, preview))
    }

    /// Remember that the user has seen a conversation up to its newest entry. Blocking.
    pub fn mark_read(&self, id: &str, contact: &str) -> Result<(), NodeError> {
        let newest = self
            .store
            .scan_rev::<Entry>(&keys::conversation(id, contact), None, 1)?
            .into_iter()
            .next();
        let mut c = Changes::default();
        let mut changed = false;
        if let Some((key, _)) = newest
            && self
                .store
                .get_raw(&keys::read_mark(id, contact))?
                .as_deref()
                != Some(key.as_slice())
        {
            c.put_raw(keys::read_mark(id, contact), key);
            changed = true;
        }
        if self.store.contains(&keys::late_unread(id, contact))? {
            c.delete(keys::late_unread(id, contact));
            changed = true;
        }
        if changed {
            self.store.apply(c)?;
        }
        Ok(())
    }
}
