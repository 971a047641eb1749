//! The JSON bodies of the API, apart from the records they show (serializing one is a
//! compatibility promise: the snapshot tests pin them), and the same shapes as `Value`s for
//! the event stream.

#[allow(clippy::wildcard_imports)]
use super::*;

/// An error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorJson {
    /// What went wrong, in words for people.
    #[schema(example = "no identity alice")]
    pub error: String,
    /// A stable machine code.
    #[schema(example = "not_found")]
    pub code: String,
}

/// An identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentityJson {
    /// When it was made (RFC 3339).
    #[schema(format = DateTime, example = "2026-11-25T21:40:00.000Z")]
    pub created_at: String,
    /// An optional name for people.
    pub display_name: Option<String>,
    /// The key's fingerprint, hex.
    pub fingerprint: String,
    /// The id, `[A-Za-z0-9._-]{1,64}`.
    #[schema(example = "alice")]
    pub id: String,
}

impl From<&IdentityRecord> for IdentityJson {
    fn from(r: &IdentityRecord) -> Self {
        Self {
            created_at: rfc3339(r.created_ms),
            display_name: r.display_name.clone(),
            fingerprint: r.fingerprint.to_string(),
            id: r.id.clone(),
        }
    }
}

/// The identities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentitiesJson {
    /// All identities of this node.
    pub identities: Vec<IdentityJson>,
}

/// A contact of an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactJson {
    /// When it was added (RFC 3339).
    #[schema(format = DateTime)]
    pub added_at: String,
    /// Their key's fingerprint, hex.
    pub fingerprint: String,
    /// There is a forward-secret session with them: messages to them go in envelope
    /// version 2. False until their key is claimed (or when their mailbox keeps none).
    pub forward_secret: bool,
    /// The key it is found under in URLs, `[A-Za-z0-9._-]{1,64}` (the name itself when
    /// that is a key).
    #[schema(example = "bob-smith")]
    pub key: String,
    /// The mailbox their invite named, if they were added by invite.
    pub mailbox: Option<String>,
    /// The name people see.
    #[schema(example = "Bob Smith")]
    pub name: String,
    /// The last message's first line (at most 80 characters), if any.
    pub preview: Option<String>,
    /// Their public key, SPKI PEM.
    pub public_key: String,
    /// The number both sides compare to verify each other's keys.
    pub safety_number: Option<String>,
    /// Messages from them not seen yet.
    pub unread: usize,
    /// Marked verified after comparing safety numbers.
    pub verified: bool,
    /// Words when their invite named another mailbox than the one in use.
    pub warning: Option<String>,
}

/// The contacts of an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactsJson {
    /// All contacts, by name.
    pub contacts: Vec<ContactJson>,
}

/// The `kind` of a message entry: always `message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// A message.
    Message,
}

/// The `kind` of a gap entry: always `gap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GapKind {
    /// A gap marker.
    Gap,
}

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageDirection {
    /// Received.
    In,
    /// Sent by this identity.
    Out,
}

impl From<crate::core::store::Direction> for MessageDirection {
    fn from(d: crate::core::store::Direction) -> Self {
        match d {
            crate::core::store::Direction::In => Self::In,
            crate::core::store::Direction::Out => Self::Out,
        }
    }
}

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Sealed and in the outbox.
    Pending,
    /// Stored by the mailbox.
    Sent,
    /// The recipient's node confirmed it.
    Delivered,
    /// Received from a contact.
    Received,
    /// Could not be sent.
    Failed,
}

impl From<crate::core::store::Status> for MessageStatus {
    fn from(s: crate::core::store::Status) -> Self {
        use crate::core::store::Status;
        match s {
            Status::Pending => Self::Pending,
            Status::Sent => Self::Sent,
            Status::Delivered => Self::Delivered,
            Status::Received => Self::Received,
            Status::Failed => Self::Failed,
        }
    }
}

/// A message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageJson {
    /// In or out.
    pub direction: MessageDirection,
    /// Why sending failed, in words (only when it did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// It went forward-secret (envelope version 2, in an Olm session). False: it went
    /// under the recipient's RSA key, which a thief of that key could later open it with.
    pub forward_secret: bool,
    /// The message id, hex.
    pub id: String,
    #[schema(inline)]
    pub kind: MessageKind,
    /// When it was sent, as signed by the sender (RFC 3339).
    #[schema(format = DateTime)]
    pub sent_at: String,
    /// The sender's sequence number in this conversation.
    pub seq: u64,
    /// Delivery state.
    pub status: MessageStatus,
    /// The text.
    pub text: String,
}

impl From<&MessageRecord> for MessageJson {
    fn from(m: &MessageRecord) -> Self {
        Self {
            direction: m.direction.into(),
            error: m.error.clone(),
            forward_secret: m.forward_secret,
            id: m.id.to_string(),
            kind: MessageKind::Message,
            sent_at: rfc3339(m.sent_ms),
            seq: m.seq,
            status: m.status.into(),
            text: m.text.clone(),
        }
    }
}

/// A gap marker: messages the chain says are missing here (expired or lost on the way).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GapJson {
    /// When the gap was noticed (RFC 3339).
    #[schema(format = DateTime)]
    pub detected_at: String,
    #[schema(inline)]
    pub kind: GapKind,
    /// How many messages are missing.
    pub missing: u64,
}

/// The `kind` of a note entry: always `note`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoteKind {
    /// A note.
    Note,
}

/// A note of the node's in the conversation: the contact was marked verified, or their key
/// changed (`warning`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NoteJson {
    /// When (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(inline)]
    pub kind: NoteKind,
    /// The words.
    pub text: String,
    /// A warning, not just news.
    pub warning: bool,
}

/// A conversation entry: a message, a gap marker or a note; `kind` tells which.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "kind", mapping(
    ("message" = "#/components/schemas/MessageJson"),
    ("gap" = "#/components/schemas/GapJson"),
    ("note" = "#/components/schemas/NoteJson"),
)))]
pub enum EntryJson {
    /// A message.
    Message(MessageJson),
    /// A gap marker.
    Gap(GapJson),
    /// A note.
    Note(NoteJson),
}

impl From<&Entry> for EntryJson {
    fn from(e: &Entry) -> Self {
        match e {
            Entry::Message(m) => Self::Message(m.into()),
            Entry::Gap {
                missing,
                detected_ms,
                ..
            } => Self::Gap(GapJson {
                detected_at: rfc3339(*detected_ms),
                kind: GapKind::Gap,
                missing: *missing,
            }),
            Entry::Note {
                text,
                at_ms,
                warning,
            } => Self::Note(NoteJson {
                at: rfc3339(*at_ms),
                kind: NoteKind::Note,
                text: text.clone(),
                warning: *warning,
            }),
        }
    }
}

/// A page of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessagesJson {
    /// Newest first.
    pub messages: Vec<EntryJson>,
    /// Older entries wait: pass this as `before` for the next page. `null` on the last page.
    pub next_before: Option<String>,
}

/// An identity's invite code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InviteJson {
    /// The code: display name, public key and this node's mailbox. Give it to someone who
    /// adds you as a contact.
    pub invite: String,
}

/// A backup of an identity's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupJson {
    /// The private key, encrypted PKCS#8 PEM under the passphrase given.
    pub backup: String,
}

/// Messages from a sender who is not a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequestJson {
    /// The name the sender gave (a claim: compare the fingerprint).
    pub display_name: Option<String>,
    /// The sender's fingerprint, hex.
    pub fingerprint: String,
    /// Their messages, oldest first.
    pub messages: Vec<MessageJson>,
    /// The sender's public key, SPKI PEM.
    pub public_key: String,
}

impl From<&MessageRequest> for RequestJson {
    fn from(r: &MessageRequest) -> Self {
        Self {
            display_name: r.display_name.clone(),
            fingerprint: r.fingerprint.to_string(),
            messages: r.messages.iter().map(MessageJson::from).collect(),
            public_key: r.public_key.clone(),
        }
    }
}

/// The pending requests of an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequestsJson {
    /// One per sender.
    pub requests: Vec<RequestJson>,
}

/// A blocked sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockedJson {
    /// When blocked (RFC 3339).
    #[schema(format = DateTime)]
    pub blocked_at: String,
    /// The name they gave, if any.
    pub display_name: Option<String>,
    /// Their fingerprint, hex.
    pub fingerprint: String,
}

impl From<&BlockedRecord> for BlockedJson {
    fn from(b: &BlockedRecord) -> Self {
        Self {
            blocked_at: rfc3339(b.blocked_ms),
            display_name: b.display_name.clone(),
            fingerprint: b.fingerprint.to_string(),
        }
    }
}

/// The senders an identity blocked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockedListJson {
    /// By fingerprint.
    pub blocked: Vec<BlockedJson>,
}

/// The connection to the mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MailboxStatusJson {
    /// The mailbox address in use, with the certificate fingerprint once known.
    pub address: String,
    /// The last error, in words.
    pub last_error: Option<String>,
    /// When the last successful sync ended (RFC 3339).
    #[schema(format = DateTime)]
    pub last_sync: Option<String>,
    /// `online`, `connecting` or `offline`.
    #[schema(example = "online")]
    pub state: String,
}

/// The node's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusJson {
    /// The connection to the mailbox.
    pub mailbox: MailboxStatusJson,
    /// How many written messages wait to be sent.
    pub outbox: usize,
}

/// The node's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SettingsJson {
    /// The mailbox address in use, with the certificate fingerprint pinned for it (given, or
    /// learnt on first use) once there is one.
    pub mailbox: String,
    /// Whether notifications show a message's first line.
    pub previews: bool,
    /// The page's colour theme: `system`, `light` or `dark`.
    #[schema(example = "system")]
    pub theme: String,
}

/// The settings as they are now.
pub(super) fn settings_json(node: &Node) -> SettingsJson {
    SettingsJson {
        mailbox: node.mailbox_in_use().to_string(),
        previews: node.previews(),
        theme: node.theme().as_str().to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// The JSON shapes as `Value`s, for the event stream.
// ---------------------------------------------------------------------------------------

pub use config::time::rfc3339;

/// [`contact_json`] off the async executor (it reads the conversation for the unread count
/// and the preview).
pub(super) async fn contact_json_of(
    node: &std::sync::Arc<Node>,
    id: &str,
    c: ContactRecord,
) -> Result<ContactJson, ApiError> {
    let (node, id) = (node.clone(), id.to_owned());
    Ok(blocking(move || Ok(contact_json(&node, &id, &c))).await?)
}

pub(super) fn contact_json(node: &Node, id: &str, c: &ContactRecord) -> ContactJson {
    let summary = node.summary(id, &c.name).unwrap_or_default();
    ContactJson {
        added_at: rfc3339(c.added_ms),
        fingerprint: c.fingerprint.to_string(),
        forward_secret: node.has_session(id, c).unwrap_or(false),
        key: c.name.clone(),
        mailbox: c.mailbox.clone(),
        name: c.shown_name().to_owned(),
        preview: summary.1,
        public_key: c.public_key.clone(),
        safety_number: node.safety_number(id, c).ok(),
        unread: summary.0,
        verified: c.verified,
        warning: node.mailbox_warning(c),
    }
}

/// A value as JSON (these types always serialize).
pub(super) fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

pub(super) fn status_body(node: &Node) -> StatusJson {
    let st = node.status();
    StatusJson {
        mailbox: MailboxStatusJson {
            address: st.mailbox,
            last_error: st.last_error,
            last_sync: st.last_sync_ms.map(rfc3339),
            state: st.state.as_str().to_owned(),
        },
        outbox: node.outbox_len(),
    }
}

/// The status JSON (also sent on the event stream).
pub fn status_json(node: &Node) -> Value {
    to_value(status_body(node))
}
