//! The records the store keeps, as they are written (JSON). A field added here is a format
//! change: the snapshot tests pin them.

use crypto::{Fingerprint, MessageHash, MessageId};
use serde::{Deserialize, Serialize};

/// An identity's metadata (the private key is in a file named by its fingerprint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The id, `[A-Za-z0-9._-]{1,64}`.
    pub id: String,
    /// An optional name for people.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Fingerprint, hex.
    pub fingerprint: Fingerprint,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

/// A contact of one identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRecord {
    /// The key it is found under (URLs, the store), `[A-Za-z0-9._-]{1,64}`: the name it
    /// was added with, or one derived from its display name.
    pub name: String,
    /// The name people see, when it is not `name` itself (spaces, any script; renamable).
    /// Not written when absent, so records from before it read and write the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The public key, SPKI PEM.
    pub public_key: String,
    /// Fingerprint, hex.
    pub fingerprint: Fingerprint,
    /// Marked verified by the user after comparing safety numbers.
    #[serde(default)]
    pub verified: bool,
    /// When added, ms since the epoch.
    pub added_ms: u64,
    /// Their mailbox: the one their invite named, or their latest move notice.
    #[serde(default)]
    pub mailbox: Option<String>,
    /// When they sent the move notice `mailbox` comes from (ms since the epoch, as they
    /// signed it): an older notice, replayed, changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_ms: Option<u64>,
}

impl ContactRecord {
    /// The name people see.
    pub fn shown_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }
}

/// Direction of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received.
    In,
    /// Sent by this identity.
    Out,
}

/// Delivery state of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
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

impl Status {
    /// The word used in the API and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Received => "received",
            Self::Failed => "failed",
        }
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Message id, hex.
    pub id: MessageId,
    /// In or out.
    pub direction: Direction,
    /// The text.
    pub text: String,
    /// When sent (as signed by the sender), ms since the epoch.
    pub sent_ms: u64,
    /// When stored here, ms since the epoch.
    pub stored_ms: u64,
    /// Delivery state.
    pub status: Status,
    /// The sender's sequence number in this conversation.
    #[serde(default)]
    pub seq: u64,
    /// What is wrong, in words: why an outgoing message failed, or a warning about an
    /// incoming one (it does not follow the one before it; the sender's chain restarted).
    #[serde(default)]
    pub error: Option<String>,
    /// It went in envelope version 2, through an Olm session: a thief of today's keys
    /// cannot read it from a recording. False for version 1 (and every message stored
    /// before version 2 existed, which all went in version 1). Written only when true, so
    /// records of version 1 messages are as they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_secret: bool,
}

/// One item of a conversation.
///
/// Written with a `kind` tag; early stores held bare message records without it, which
/// still read as messages (so an upgrade strands no history).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "TaggedEntry", from = "StoredEntry")]
pub enum Entry {
    /// A message.
    Message(MessageRecord),
    /// Messages the chain says are missing here (expired or dropped on the way, or not
    /// here yet: a late one takes its place in the gap, which shrinks or splits around it).
    Gap {
        /// How many.
        missing: u64,
        /// When the gap was noticed, ms since the epoch.
        detected_ms: u64,
        /// The sender's sequence number of the first missing message (none in gaps recorded
        /// before late messages could fill them).
        first: Option<u64>,
    },
    /// Something the node says in the conversation: the contact was marked verified, their
    /// key changed.
    Note {
        /// The words.
        text: String,
        /// When, ms since the epoch.
        at_ms: u64,
        /// A warning (their key changed), not just news.
        warning: bool,
    },
}

/// The on-disk form of an [`Entry`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum TaggedEntry {
    Message(MessageRecord),
    Gap {
        missing: u64,
        detected_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first: Option<u64>,
    },
    Note {
        text: String,
        at_ms: u64,
        #[serde(default)]
        warning: bool,
    },
}

/// What an entry record may hold: the tagged form, or an untagged message from before.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredEntry {
    Tagged(TaggedEntry),
    Legacy(MessageRecord),
}

impl From<Entry> for TaggedEntry {
    fn from(e: Entry) -> Self {
        match e {
            Entry::Message(m) => Self::Message(m),
            Entry::Gap {
                missing,
                detected_ms,
                first,
            } => Self::Gap {
                missing,
                detected_ms,
                first,
            },
            Entry::Note {
                text,
                at_ms,
                warning,
            } => Self::Note {
                text,
                at_ms,
                warning,
            },
        }
    }
}

impl From<StoredEntry> for Entry {
    fn from(e: StoredEntry) -> Self {
        match e {
            StoredEntry::Tagged(TaggedEntry::Message(m)) | StoredEntry::Legacy(m) => {
                Self::Message(m)
            }
            StoredEntry::Tagged(TaggedEntry::Gap {
                missing,
                detected_ms,
                first,
            }) => Self::Gap {
                missing,
                detected_ms,
                first,
            },
            StoredEntry::Tagged(TaggedEntry::Note {
                text,
                at_ms,
                warning,
            }) => Self::Note {
                text,
                at_ms,
                warning,
            },
        }
    }
}

/// One side of a conversation's hash chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRecord {
    /// The last sequence number.
    pub last_seq: u64,
    /// The hash of that message, hex.
    pub last_hash: Option<MessageHash>,
}

/// What an outbox item carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    /// A message the user wrote (its status is tracked).
    #[default]
    Text,
    /// A delivery receipt (not shown).
    Receipt,
    /// The sender's display name, before a first message (not shown).
    Profile,
    /// A notice to a contact: our mailbox moved, or a session was reset (not shown).
    Notice,
    /// A text sent before, sealed again in a new session after a reset (its status stays
    /// as it is).
    Resend,
}

/// What it takes to seal an outgoing forward-secret text again with the same message id,
/// sequence number and hash (after a session reset, or to a contact's new device): kept
/// until its receipt comes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResendRecord {
    /// The contact's name.
    pub contact: String,
    /// The key it was sealed to (a contact whose key is replaced is not sent the old
    /// key's messages).
    pub to: Fingerprint,
    /// The sequence number it was sent with.
    pub seq: u64,
    /// The hash of the message before it, as signed.
    pub prev: Option<MessageHash>,
    /// When it was signed as sent, ms since the epoch.
    pub sent_at_ms: u64,
}

/// A sealed envelope waiting for the mailbox (the envelope itself is kept beside it, as raw
/// bytes under `envelope/<seq>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The sending identity.
    pub identity: String,
    /// The contact's name.
    pub contact: String,
    /// Message id, hex.
    pub message_id: MessageId,
    /// Text or receipt.
    #[serde(default)]
    pub kind: OutboxKind,
}

/// One outbox entry with its envelope, as the sync driver takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Its `outbox/` key.
    pub key: Vec<u8>,
    /// What it is.
    pub record: OutboxRecord,
    /// The sealed envelope (`None` if its bytes are missing: it cannot be sent).
    pub envelope: Option<Vec<u8>>,
}

/// A message from a sender who is not a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The sender's public key, SPKI PEM.
    pub public_key: String,
    /// The sender's sequence number and message hash, to start the chain on acceptance.
    #[serde(default)]
    pub hash: Option<MessageHash>,
    /// The previous message's hash as the sender signed it (none for a first message, and
    /// in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<MessageHash>,
    /// The message.
    pub message: MessageRecord,
}
