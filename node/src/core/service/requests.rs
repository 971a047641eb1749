//! Requests: messages from senders who are not contacts (with the name they give), and
//! what the user does with them: accept, block, unblock, delete.

use std::sync::Arc;

use crypto::{PublicKey, VerifiedMessage};
use tracing::debug;

use super::inbox::Incoming;
use super::*;

/// The name a stranger gave, and when their message giving it was sent.
#[derive(serde::Serialize, serde::Deserialize)]
struct SenderName {
    name: String,
    sent_ms: u64,
    /// The mailbox they said they are reached at (their messages come through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mailbox: Option<String>,
}

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
                    display_name: self.sender_name(id, &fingerprint.to_string())?,
                    messages: vec![r.message],
                }),
            }
        }
        Ok(by_sender)
    }

    /// The name a stranger gave in their profile message, if any.
    fn sender_name(&self, id: &str, fingerprint: &str) -> Result<Option<String>, NodeError> {
        Ok(self
            .store
            .get::<SenderName>(keys::sender_name(id, fingerprint))?
            .map(|n| n.name))
    }

    /// The mailbox a stranger said they are reached at, if they did (and it is an address).
    pub(super) fn sender_mailbox(
        &self,
        id: &str,
        fingerprint: &str,
    ) -> Result<Option<String>, NodeError> {
        Ok(self
            .store
            .get::<SenderName>(keys::sender_name(id, fingerprint))?
            .and_then(|n| n.mailbox)
            .filter(|m| m.parse::<config::MailboxAddress>().is_ok()))
    }

    /// A stranger's profile message: keep the name they give for their request (the
    /// newest one, so a replayed older message changes nothing), within the same bound as
    /// their messages. Returns whether it was kept. Blocking; the caller holds the inbox
    /// lock.
    pub(super) fn take_sender_name(
        &self,
        id: &str,
        message: &VerifiedMessage,
    ) -> Result<bool, NodeError> {
        let Some(profile) = crypto::envelope::parse_profile_body(message.body()) else {
            return Ok(false);
        };
        let (name, mailbox) = (profile.name, profile.mailbox);
        let fingerprint = message.sender().fingerprint().to_string();
        let key = keys::sender_name(id, &fingerprint);
        let sent_ms = message.sent_at_ms();
        match self.store.get::<SenderName>(key.clone())? {
            Some(known) if known.sent_ms > sent_ms => return Ok(false),
            Some(_) => {}
            None if self.store.keys(&keys::sender_names_of(id))?.len() >= MAX_REQUEST_MESSAGES => {
                debug!("too many strangers' names: a profile message is dropped");
                return Ok(false);
            }
            None => {}
        }
        let mut c = Changes::default();
        c.put(
            key,
            &SenderName {
                name,
                sent_ms,
                mailbox,
            },
        );
        self.store.apply(c)?;
        Ok(true)
    }

    /// Block an unknown sender: their requests go, and whatever they send from now on is
    /// dropped unread (acknowledged, so the mailbox does not keep it either).
    pub async fn block_request(
        self: &Arc<Self>,
        id: String,
        fingerprint: String,
    ) -> Result<BlockedRecord, NodeError> {
        self.identity(&id)?;
        let node = self.clone();
        blocking(move || {
            let _inbox = node.inbox_lock();
            let requests = node
                .store
                .scan::<RequestRecord>(&keys::requests_from(&id, &fingerprint))?;
            let Some((_, first)) = requests.first() else {
                return Err(NodeError::NotFound(format!(
                    "no request from {fingerprint}"
                )));
            };
            let record = BlockedRecord {
                fingerprint: PublicKey::from_pem(&first.public_key)?.fingerprint(),
                display_name: node.sender_name(&id, &fingerprint)?,
                blocked_ms: now_ms(),
            };
            let mut c = Changes::default();
            for (key, _) in requests {
                c.delete(key);
            }
            c.delete(keys::sender_name(&id, &fingerprint));
            c.put(keys::blocked(&id, &fingerprint), &record);
            // Their sessions go too: a blocked sender leaves nothing behind.
            let mut olm = node.olm(&id)?;
            olm.forget(&fingerprint)?;
            olm.write(&mut c);
            node.store.apply(c)?;
            Ok(record)
        })
        .await
    }

    /// The senders `id` blocked.
    pub fn blocked(&self, id: &str) -> Result<Vec<BlockedRecord>, NodeError> {
        self.identity(id)?;
        Ok(self
            .store
            .scan::<BlockedRecord>(&keys::blocked_of(id))?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Let a blocked sender write again (what they sent meanwhile is gone).
    pub async fn unblock(
        self: &Arc<Self>,
        id: String,
        fingerprint: String,
    ) -> Result<(), NodeError> {
        self.identity(&id)?;
        let node = self.clone();
        blocking(move || {
            let _inbox = node.inbox_lock();
            let key = keys::blocked(&id, &fingerprint);
            if !node.store.contains(&key)? {
                return Err(NodeError::NotFound(format!("{fingerprint} is not blocked")));
            }
            let mut c = Changes::default();
            c.delete(key);
            node.store.apply(c)?;
            Ok(())
        })
        .await
    }

    /// Accept an unknown sender as contact `name`: their messages move into the
    /// conversation, in their order, and they get receipts. A sender who is a contact
    /// already (their requests came before they were added) keeps their name, and the
    /// requests join that conversation.
    pub async fn accept_request(
        self: &Arc<Self>,
        id: String,
        fingerprint: String,
        name: String,
    ) -> Result<ContactRecord, NodeError> {
        // No name given: the one they gave, if they did.
        let name = match self.sender_name(&id, &fingerprint)? {
            Some(theirs) if name.trim().is_empty() => theirs,
            _ => name,
        };
        check_display_name("The name", &name)?;
        let records = self
            .store
            .scan::<RequestRecord>(&keys::requests_from(&id, &fingerprint))?;
        let Some((_, first)) = records.first() else {
            return Err(NodeError::NotFound(format!(
                "no request from {fingerprint}"
            )));
        };
        let key = PublicKey::from_pem(&first.public_key)?;
        let known = self
            .contacts(&id)?
            .into_iter()
            .find(|c| c.fingerprint == key.fingerprint());
        match known {
            // Their profile said where they are reached: replies and receipts go there.
            None => {
                let mailbox = self.sender_mailbox(&id, &fingerprint)?;
                self.add_contact_key(id, name, key, mailbox).await
            }
            Some(contact) => {
                let node = self.clone();
                blocking(move || {
                    let _inbox = node.inbox_lock();
                    node.merge_requests(&id, &contact)?;
                    Ok(contact)
                })
                .await
            }
        }
    }

    /// Move the requests from `contact`'s key into their conversation, in the sender's
    /// order, each as if it arrived now (gaps, receipts). Blocking; the caller holds the
    /// inbox lock, so nothing from this sender arrives meanwhile.
    pub(super) fn merge_requests(
        &self,
        id: &str,
        contact: &ContactRecord,
    ) -> Result<usize, NodeError> {
        let fingerprint = contact.fingerprint.to_string();
        let mut records = self
            .store
            .scan::<RequestRecord>(&keys::requests_from(id, &fingerprint))?;
        records.sort_by_key(|(_, r)| r.message.seq);
        let merged = records.len();
        // A contact now: their own name for themselves and any block go.
        let mut c = Changes::default();
        c.delete(keys::sender_name(id, &fingerprint));
        c.delete(keys::blocked(id, &fingerprint));
        self.store.apply(c)?;
        let mut olm = self.olm(id)?;
        for (key, record) in records {
            let mut c = Changes::default();
            c.delete(key);
            // A record from before `prev` was kept cannot be checked against the chain.
            let prev = (record.message.seq <= 1 || record.prev.is_some()).then_some(record.prev);
            self.append_incoming(
                c,
                &mut olm,
                id,
                contact,
                Incoming {
                    record: record.message,
                    hash: record.hash,
                    prev,
                },
            )?;
        }
        if merged > 0 {
            self.wake();
        }
        Ok(merged)
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
            let _inbox = node.inbox_lock();
            let mut c = Changes::default();
            for k in found {
                c.delete(k);
            }
            c.delete(keys::sender_name(&id, &fingerprint));
            let mut olm = node.olm(&id)?;
            olm.forget(&fingerprint)?;
            olm.write(&mut c);
            node.store.apply(c)?;
            Ok(())
        })
        .await
    }
}
