//! Identities: making, restoring and backing up keys, listing, deleting, invite codes.

use std::sync::Arc;

use crypto::Identity;

use super::*;

impl Node {
    /// Create an identity with a fresh RSA-2048 key.
    pub async fn create_identity(
        self: &Arc<Self>,
        id: String,
        display_name: Option<String>,
    ) -> Result<IdentityRecord, NodeError> {
        self.add_identity(id, display_name, None).await
    }

    /// Restore an identity from a backup made by [`Node::backup`] (an encrypted PKCS#8 PEM,
    /// which OpenSSL can also make).
    pub async fn restore_identity(
        self: &Arc<Self>,
        id: String,
        display_name: Option<String>,
        backup: String,
        passphrase: String,
    ) -> Result<IdentityRecord, NodeError> {
        let identity = blocking(move || {
            Identity::from_encrypted_pem(&backup, &passphrase).map_err(|e| {
                NodeError::invalid(
                    "invalid_backup",
                    format!("This backup cannot be opened: {e}."),
                )
            })
        })
        .await?;
        let fingerprint = identity.fingerprint();
        if let Some(existing) = self
            .identities()?
            .into_iter()
            .find(|r| r.fingerprint == fingerprint)
        {
            return Err(NodeError::Conflict(format!(
                "this key is already the identity {}",
                existing.id
            )));
        }
        self.add_identity(id, display_name, Some(identity)).await
    }

    /// A backup of an identity's private key: PKCS#8 PEM encrypted with `passphrase`.
    pub async fn backup(
        self: &Arc<Self>,
        id: String,
        passphrase: String,
    ) -> Result<String, NodeError> {
        if passphrase.chars().count() < 8 {
            return Err(NodeError::invalid(
                "weak_passphrase",
                "This passphrase is too short: use at least 8 characters.",
            ));
        }
        let identity = self.identity(&id)?;
        blocking(move || Ok(identity.to_encrypted_pem(&passphrase)?.to_string())).await
    }

    pub(super) async fn add_identity(
        self: &Arc<Self>,
        id: String,
        display_name: Option<String>,
        restored: Option<Identity>,
    ) -> Result<IdentityRecord, NodeError> {
        // No id: one is derived from the display name (a free one, under the lock below).
        let derive = id.is_empty();
        let display_name = match display_name.filter(|d| !d.trim().is_empty()) {
            Some(d) => Some(check_display_name("The name", &d).map_err(|e| match e {
                NodeError::Invalid { message, .. } => {
                    NodeError::invalid("invalid_display_name", message)
                }
                other => other,
            })?),
            None if derive => {
                return Err(NodeError::invalid(
                    "invalid_display_name",
                    "The name is empty: give a name (or an id)",
                ));
            }
            None => None,
        };
        if !derive {
            check_name("an identity id", &id)?;
            if self.identity(&id).is_ok() {
                return Err(NodeError::Conflict(format!("identity {id} already exists")));
            }
        }
        let node = self.clone();
        let record = blocking(move || {
            let identity = match restored {
                Some(identity) => identity,
                None => Identity::generate()?,
            };
            let fingerprint = identity.fingerprint();
            // Checked and written under the lock: two concurrent requests for the same id,
            // or restoring the same key, must end in one identity and one 409.
            let mut ids = node.identities.write().unwrap_or_else(|p| p.into_inner());
            let id = match (&display_name, derive) {
                (Some(name), true) => free_key(&url_key(name, "profile"), |k| {
                    Ok(ids.contains_key(k) || node.store.contains(&keys::identity(k))?)
                })?,
                _ => id,
            };
            if ids.contains_key(&id) {
                return Err(NodeError::Conflict(format!("identity {id} already exists")));
            }
            if let Some((other, _)) = ids
                .iter()
                .find(|(_, i)| i.fingerprint() == identity.fingerprint())
            {
                return Err(NodeError::Conflict(format!(
                    "this key is already the identity {other}"
                )));
            }
            let path = node.keys_dir.join(format!("{fingerprint}.pem"));
            // A file left by a crash between writing it and recording the identity: no
            // identity uses it (checked above), and it holds this very key.
            if path.exists() {
                std::fs::remove_file(&path)?;
            }
            match &node.passphrase {
                Some(p) => identity.write_encrypted_pem_file(&path, p.expose()),
                None => identity.write_pkcs8_pem_file(&path),
            }?;
            let record = IdentityRecord {
                id: id.clone(),
                display_name,
                fingerprint,
                created_ms: now_ms(),
            };
            let mut c = Changes::default();
            c.put(keys::identity(&id), &record);
            node.store.apply(c)?;
            ids.insert(id, Arc::new(identity));
            Ok(record)
        })
        .await?;
        self.wake();
        Ok(record)
    }

    /// All identities, by id.
    pub fn identities(&self) -> Result<Vec<IdentityRecord>, NodeError> {
        Ok(self
            .store
            .scan::<IdentityRecord>(b"id/")?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// One identity's record.
    pub fn identity_record(&self, id: &str) -> Result<IdentityRecord, NodeError> {
        check_name("an identity id", id)?;
        self.store
            .get(keys::identity(id))?
            .ok_or_else(|| NodeError::NotFound(format!("no identity {id}")))
    }

    /// One identity's key.
    pub fn identity(&self, id: &str) -> Result<Arc<Identity>, NodeError> {
        self.identities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| NodeError::NotFound(format!("no identity {id}")))
    }

    /// Every loaded identity (for the sync loop).
    pub fn loaded_identities(&self) -> Vec<(String, Arc<Identity>)> {
        self.identities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Delete an identity: its record, contacts, conversations and requests; its key file
    /// is removed.
    pub async fn delete_identity(self: &Arc<Self>, id: String) -> Result<(), NodeError> {
        let record = self.identity_record(&id)?;
        let node = self.clone();
        blocking(move || {
            // Under the inbox lock: nothing is taken in for it while it goes; and under
            // the ratchet lock (taken after it), no key work writes its state back.
            let _inbox = node.inbox_lock();
            let mut devices = node.olm_lock.lock().unwrap_or_else(|p| p.into_inner());
            devices.remove(&id);
            let mut c = Changes::default();
            c.delete(keys::identity(&id));
            let mut prefixes = vec![
                keys::contacts_of(&id),
                keys::requests_of(&id),
                keys::sender_names_of(&id),
                keys::blocked_of(&id),
                keys::conversations_of(&id),
            ];
            prefixes.push([b"chain/".as_slice(), id.as_bytes(), b"\0"].concat());
            prefixes.push([b"read/".as_slice(), id.as_bytes(), b"\0"].concat());
            prefixes.push([b"inchain/".as_slice(), id.as_bytes(), b"\0"].concat());
            prefixes.push([b"gap/".as_slice(), id.as_bytes(), b"\0"].concat());
            prefixes.push([b"late/".as_slice(), id.as_bytes(), b"\0"].concat());
            prefixes.push(keys::message_ids_of(&id));
            prefixes.extend(keys::olm_prefixes_of(&id));
            prefixes.push(keys::resends_of(&id));
            prefixes.push(keys::receipts_due_of(&id));
            c.delete(keys::olm_device(&id));
            c.delete(keys::olm_certificate(&id));
            c.delete(keys::olm_keys(&id));
            for prefix in prefixes {
                for k in node.store.keys(&prefix)? {
                    c.delete(k);
                }
            }
            for (k, item) in node.store.scan::<OutboxRecord>(b"outbox/")? {
                if item.identity == id {
                    c.delete(keys::envelope_of(&k));
                    c.delete(k);
                }
            }
            let mut texts = node.outbox_texts();
            node.store.apply(c)?;
            *texts = Node::count_outbox_texts(&node.store)?;
            drop(texts);
            node.identities
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = std::fs::remove_file(node.keys_dir.join(format!("{}.pem", record.fingerprint)));
            let _ = std::fs::remove_file(
                node.keys_dir
                    .join(format!("{}.olm-key", record.fingerprint)),
            );
            node.pickle_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            Ok(())
        })
        .await
    }

    /// The invite code of an identity: its display name, public key and our mailbox.
    pub fn invite(&self, id: &str) -> Result<String, NodeError> {
        let record = self.identity_record(id)?;
        let identity = self.identity(id)?;
        Ok(Invite {
            display_name: record.display_name.or(Some(record.id)),
            public_key: identity.public_key().clone(),
            mailbox: Some(self.mailbox_in_use()),
        }
        .encode())
    }
}
