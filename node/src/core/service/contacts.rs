//! Contacts of an identity: adding by key or invite, verifying, deleting, safety numbers.

use std::sync::Arc;

use crypto::PublicKey;

use super::*;

impl Node {
    /// Add a contact to an identity from a public key PEM.
    pub async fn add_contact(
        self: &Arc<Self>,
        id: String,
        name: String,
        public_key_pem: String,
    ) -> Result<ContactRecord, NodeError> {
        let key = PublicKey::from_pem(&public_key_pem).map_err(|e| {
            NodeError::invalid(
                "invalid_public_key",
                format!("This is not a public key we can use: {e}."),
            )
        })?;
        self.add_contact_key(id, name, key, None).await
    }

    /// Add a contact to an identity from an invite code, named `name` or, without one, by
    /// the name the invite carries.
    pub async fn add_contact_from_invite(
        self: &Arc<Self>,
        id: String,
        name: Option<String>,
        code: &str,
    ) -> Result<ContactRecord, NodeError> {
        let invite = Invite::decode(code)
            .map_err(|e| NodeError::invalid("invalid_invite", sentence(&e.to_string())))?;
        let name = name
            .filter(|n| !n.trim().is_empty())
            .or(invite.display_name)
            .ok_or_else(|| {
                NodeError::invalid(
                    "invalid_name",
                    "The invite carries no name: give the contact a name",
                )
            })?;
        self.add_contact_key(
            id,
            name,
            invite.public_key,
            invite.mailbox.map(|m| m.to_string()),
        )
        .await
    }

    /// Add `key` as a contact of `id`, named `name` (any display name: a name that is a
    /// key already keeps it as its key, and must be free; another gets a free key derived
    /// from it). Requests from the key join the new conversation.
    pub(super) async fn add_contact_key(
        self: &Arc<Self>,
        id: String,
        name: String,
        key: PublicKey,
        mailbox: Option<String>,
    ) -> Result<ContactRecord, NodeError> {
        let me = self.identity(&id)?;
        let name = check_display_name("The name", &name)?;
        if key.fingerprint() == me.fingerprint() {
            return Err(NodeError::invalid(
                "own_key",
                "This is your own key: add the key or invite of the person you write to",
            ));
        }
        let fingerprint = key.fingerprint();
        let derived = check_name("a contact name", &name).is_err();
        let mut record = ContactRecord {
            name: url_key(&name, "contact"),
            display_name: derived.then_some(name),
            public_key: key.to_pem(),
            fingerprint,
            verified: false,
            added_ms: now_ms(),
            mailbox,
            mailbox_ms: None,
        };
        let node = self.clone();
        blocking(move || {
            // Checked and written under the inbox lock: a message from this key arriving
            // meanwhile lands either in requests (and is merged below) or in the
            // conversation, after the merged ones.
            let _inbox = node.inbox_lock();
            if derived {
                record.name = free_key(&record.name, |k| {
                    Ok(node.store.contains(&keys::contact(&id, k))?)
                })?;
            }
            node.check_new_contact(&id, &record.name, &record.fingerprint)?;
            let mut c = Changes::default();
            c.put(keys::contact(&id, &record.name), &record);
            node.store.apply(c)?;
            node.merge_requests(&id, &record)?;
            Ok(record)
        })
        .await
    }

    /// An identity's contacts, by name.
    pub fn contacts(&self, id: &str) -> Result<Vec<ContactRecord>, NodeError> {
        self.identity(id)?;
        Ok(self
            .store
            .scan::<ContactRecord>(&keys::contacts_of(id))?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// One contact.
    pub fn contact(&self, id: &str, name: &str) -> Result<ContactRecord, NodeError> {
        self.identity(id)?;
        check_name("a contact name", name)?;
        self.store
            .get(keys::contact(id, name))?
            .ok_or_else(|| NodeError::NotFound(format!("no contact {name}")))
    }

    /// Give a contact another display name (its key stays).
    pub async fn rename_contact(
        self: &Arc<Self>,
        id: String,
        contact: String,
        name: String,
    ) -> Result<ContactRecord, NodeError> {
        let name = check_display_name("The name", &name)?;
        self.change_contact(id, contact, move |record| {
            record.display_name = (name != record.name).then_some(name);
            None
        })
        .await
    }

    /// Mark a contact verified (or not) after comparing safety numbers; a change is noted
    /// in the conversation.
    pub async fn set_verified(
        self: &Arc<Self>,
        id: String,
        name: String,
        verified: bool,
    ) -> Result<ContactRecord, NodeError> {
        self.change_contact(id, name, move |record| {
            if record.verified == verified {
                return None;
            }
            record.verified = verified;
            let who = record.shown_name();
            Some(if verified {
                format!("You marked {who} as verified: your safety numbers matched.")
            } else {
                format!("You marked {who} as not verified.")
            })
        })
        .await
    }

    /// Change contact `name` of `id` with `change`, under the inbox lock (a merge or an
    /// arriving message does not see half of it). `change` may return a note for the
    /// conversation, written in the same batch.
    async fn change_contact(
        self: &Arc<Self>,
        id: String,
        name: String,
        change: impl FnOnce(&mut ContactRecord) -> Option<String> + Send + 'static,
    ) -> Result<ContactRecord, NodeError> {
        self.contact(&id, &name)?;
        let node = self.clone();
        blocking(move || {
            let _inbox = node.inbox_lock();
            let mut record = node.contact(&id, &name)?;
            let note = change(&mut record);
            let mut c = Changes::default();
            c.put(keys::contact(&id, &name), &record);
            let note = match note {
                Some(text) => Some(node.put_note(&mut c, &id, &name, text, false)?),
                None => None,
            };
            node.store.apply(c)?;
            if let Some(entry) = note {
                node.emit_entry(&id, &name, entry);
            }
            Ok(record)
        })
        .await
    }

    /// Put a note into `contact`'s conversation (part of `c`); returns the entry, to emit
    /// once `c` is applied. Blocking.
    pub(super) fn put_note(
        &self,
        c: &mut Changes,
        id: &str,
        contact: &str,
        text: String,
        warning: bool,
    ) -> Result<Entry, NodeError> {
        Ok(self.put_note_at(c, id, contact, text, warning)?.1)
    }

    /// [`Self::put_note`], also giving the entry's key.
    pub(super) fn put_note_at(
        &self,
        c: &mut Changes,
        id: &str,
        contact: &str,
        text: String,
        warning: bool,
    ) -> Result<(Vec<u8>, Entry), NodeError> {
        let entry = Entry::Note {
            text,
            at_ms: now_ms(),
            warning,
        };
        let key = keys::message(id, contact, self.store.next_seq()?);
        c.put(key.clone(), &entry);
        Ok((key, entry))
    }

    /// Tell the pages about a new entry of `contact`'s conversation.
    pub(super) fn emit_entry(&self, id: &str, contact: &str, entry: Entry) {
        self.emit(NodeEvent::Message {
            identity: id.to_owned(),
            contact: contact.to_owned(),
            entry,
            late: false,
        });
    }

    /// A contact's key changed: the key of a request from a stranger becomes `contact`'s
    /// (who is then not verified any more), a warning goes into the conversation, both
    /// chains start again, and the request's messages follow. Blocking work under the inbox
    /// lock.
    pub async fn replace_contact_key(
        self: &Arc<Self>,
        id: String,
        contact: String,
        fingerprint: String,
    ) -> Result<ContactRecord, NodeError> {
        self.contact(&id, &contact)?;
        let node = self.clone();
        blocking(move || {
            let _inbox = node.inbox_lock();
            let mut record = node.contact(&id, &contact)?;
            let requests = node
                .store
                .scan::<RequestRecord>(&keys::requests_from(&id, &fingerprint))?;
            let Some((_, first)) = requests.first() else {
                return Err(NodeError::NotFound(format!(
                    "no request from {fingerprint}"
                )));
            };
            let key = PublicKey::from_pem(&first.public_key)?;
            if node
                .contacts(&id)?
                .iter()
                .any(|c| c.fingerprint == key.fingerprint())
            {
                return Err(NodeError::Conflict(
                    "This key is already one of your contacts.".into(),
                ));
            }
            record.public_key = key.to_pem();
            record.fingerprint = key.fingerprint();
            record.verified = false;
            let who = record.shown_name().to_owned();
            let mut c = Changes::default();
            c.put(keys::contact(&id, &contact), &record);
            c.delete(keys::chain(&id, &contact));
            c.delete(keys::inchain(&id, &contact));
            let note = node.put_note(
                &mut c,
                &id,
                &contact,
                format!(
                    "{who}'s key changed. If you did not expect it, ask them why; compare \
                     your safety number with them again before you trust it."
                ),
                true,
            )?;
            node.store.apply(c)?;
            node.emit_entry(&id, &contact, note);
            node.merge_requests(&id, &record)?;
            Ok(record)
        })
        .await
    }

    /// Delete a contact and its conversation.
    pub async fn delete_contact(
        self: &Arc<Self>,
        id: String,
        name: String,
    ) -> Result<(), NodeError> {
        self.contact(&id, &name)?;
        let node = self.clone();
        blocking(move || {
            // The conversation, both chains and the read mark go with the contact: a new key
            // added later under the same name starts afresh (no inherited history, and no
            // sequence numbers that would hide its first gaps). Under the inbox lock: a
            // message arriving meanwhile lands before the deletion or not at all.
            let _inbox = node.inbox_lock();
            let mut c = Changes::default();
            c.delete(keys::contact(&id, &name));
            c.delete(keys::chain(&id, &name));
            c.delete(keys::inchain(&id, &name));
            c.delete(keys::read_mark(&id, &name));
            c.delete(keys::late_unread(&id, &name));
            for prefix in [
                keys::conversation(&id, &name),
                keys::gaps_of(&id, &name),
                keys::receipts_due_to(&id, &name),
            ] {
                for key in node.store.keys(&prefix)? {
                    c.delete(key);
                }
            }
            node.store.apply(c)?;
            Ok(())
        })
        .await
    }

    /// The safety number of an identity and a contact.
    pub fn safety_number(&self, id: &str, contact: &ContactRecord) -> Result<String, NodeError> {
        let me = self.identity(id)?.fingerprint();
        Ok(crypto::safety_number(&me, &contact.fingerprint))
    }

    /// Words for a contact whose mailbox (another than ours) cannot be reached now: their
    /// messages wait in the outbox.
    pub fn mailbox_warning(&self, contact: &ContactRecord) -> Option<String> {
        let theirs = self.contact_mailbox(contact)?;
        let status = self.status();
        let remote = status.remote.iter().find(|r| {
            r.address
                .parse::<config::MailboxAddress>()
                .is_ok_and(|a| a.same_endpoint(&theirs))
        })?;
        remote.last_error.as_ref().map(|_| {
            format!(
                "{}'s mailbox ({}) cannot be reached now: your messages to them wait and go \
                 when it answers",
                contact.shown_name(),
                theirs.without_fingerprint()
            )
        })
    }

    /// A contact's own mailbox, when it is not ours (where their messages go).
    pub fn contact_mailbox(&self, contact: &ContactRecord) -> Option<config::MailboxAddress> {
        let theirs: config::MailboxAddress = contact.mailbox.as_deref()?.parse().ok()?;
        (!theirs.same_endpoint(&self.mailbox())).then_some(theirs)
    }

    /// Whether `name` and `fingerprint` are both free among `id`'s contacts.
    fn check_new_contact(
        &self,
        id: &str,
        name: &str,
        fingerprint: &Fingerprint,
    ) -> Result<(), NodeError> {
        if self.store.contains(&keys::contact(id, name))? {
            return Err(NodeError::Conflict(format!(
                "You already have a contact named {name}: choose another name"
            )));
        }
        if let Some(existing) = self
            .contacts(id)?
            .into_iter()
            .find(|c| &c.fingerprint == fingerprint)
        {
            return Err(NodeError::Conflict(format!(
                "This person is already your contact {}",
                existing.shown_name()
            )));
        }
        Ok(())
    }
}
