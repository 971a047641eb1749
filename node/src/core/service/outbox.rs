//! What goes out: the outbox the sync loop drains, and the status of sent messages.

use super::*;

impl Node {
    /// Set an outgoing message's status. Blocking. `Sent` never replaces `Delivered`.
    pub fn set_status(
        &self,
        message_id: &str,
        status: Status,
        error: Option<String>,
    ) -> Result<(), NodeError> {
        let Some(mid) = parse_id(message_id) else {
            return Ok(());
        };
        let Some(key) = self.store.get_raw(&keys::message_id(&mid))? else {
            return Ok(());
        };
        let Some(Entry::Message(mut m)) = self.store.get::<Entry>(key.clone())? else {
            return Ok(());
        };
        if m.status == Status::Delivered || (m.status == status && m.error == error) {
            return Ok(());
        }
        m.status = status;
        m.error = error.clone();
        let mut c = Changes::default();
        c.put(key.clone(), &Entry::Message(m));
        self.store.apply(c)?;
        if let Some((identity, contact)) = conversation_of(&key) {
            self.emit(NodeEvent::Status {
                identity,
                contact,
                id: message_id.to_owned(),
                status,
                error,
            });
        }
        Ok(())
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<(Vec<u8>, OutboxRecord)>, NodeError> {
        Ok(self.store.scan::<OutboxRecord>(b"outbox/")?)
    }

    /// How many messages wait in the outbox (receipts not counted).
    pub fn outbox_len(&self) -> usize {
        self.outbox()
            .map(|o| o.iter().filter(|(_, r)| r.kind == OutboxKind::Text).count())
            .unwrap_or(0)
    }

    /// Remove an envelope from the outbox once the mailbox holds it (or refused it for
    /// good, with `error`), updating its message. Blocking.
    pub fn outbox_done(
        &self,
        key: Vec<u8>,
        item: &OutboxRecord,
        error: Option<String>,
    ) -> Result<(), NodeError> {
        if item.kind == OutboxKind::Text {
            let status = if error.is_some() {
                Status::Failed
            } else {
                Status::Sent
            };
            self.set_status(&item.message_id, status, error)?;
        }
        let mut c = Changes::default();
        c.delete(key);
        self.store.apply(c)?;
        Ok(())
    }
}
