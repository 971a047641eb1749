//! The node's service: identities, contacts, conversations, receipts, requests and status,
//! over the [`Store`] and the key files. The HTTP API, the web UI and the sync loop are thin
//! adapters over this.
//!
//! Methods that touch RSA or the disk are either `async` (they move the work to a blocking
//! thread themselves) or documented as blocking (callers run them off the executor).

mod contacts;
mod identities;
mod inbox;
mod messages;
mod moving;
mod outbox;
mod prekeys;
mod ratchet;
mod requests;
mod reset;

pub use messages::{Cursor, Page};
pub use prekeys::{KeysRecord, KeysToPublish};
pub use ratchet::{PeerRecord, no_keys_recheck_ms};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crypto::{Fingerprint, Identity, MessageId, VerifiedMessage};
use tokio::sync::{Notify, broadcast};

use crate::core::error::NodeError;
use crate::core::invite::Invite;
use crate::core::store::{
    ChainRecord, Changes, ContactRecord, Direction, Entry, IdentityRecord, MessageRecord,
    OutboxKind, OutboxRecord, RequestRecord, Status, Store, keys,
};

/// The most messages kept in requests from one unknown sender (per identity).
pub const MAX_REQUEST_MESSAGES_PER_SENDER: usize = 20;
/// The most messages kept in requests from all unknown senders together (per identity).
pub const MAX_REQUEST_MESSAGES: usize = 1_000;
/// How long after a message is taken in its receipt is sealed, with every other one due
/// by then ([`Node::seal_due_receipts`]): the delay before a sender sees "delivered".
pub const RECEIPT_DELAY: std::time::Duration = std::time::Duration::from_millis(100);
/// The most message ids one receipt names (16 bytes each).
pub const MAX_RECEIPT_IDS: usize = 256;

/// The connection state shown to the user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConnectionState {
    /// Trying to connect.
    #[default]
    Connecting,
    /// Connected (and syncing or idle).
    Online,
    /// Not connected; waiting to retry.
    Offline,
}

impl ConnectionState {
    /// The word used in the API and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

/// Connection state shown to the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// What the sync engine says of the connection.
    pub state: ConnectionState,
    /// The last error in words.
    pub last_error: Option<String>,
    /// When the last successful sync ended, ms since the epoch.
    pub last_sync_ms: Option<u64>,
    /// The mailbox address in use, with the certificate fingerprint once known.
    pub mailbox: String,
    /// The other mailboxes the node delivers to (its contacts' own), by address.
    pub remote: Vec<RemoteStatus>,
}

/// The connection to a contact's mailbox (another than ours), as the user sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteStatus {
    /// Its address (`host:port`, with the pin).
    pub address: String,
    /// What its delivery says of the connection.
    pub state: ConnectionState,
    /// The last error in words.
    pub last_error: Option<String>,
}

/// Something the UI should show without a reload.
#[derive(Clone, Debug)]
pub enum NodeEvent {
    /// A message was stored (sent or received) in a conversation.
    Message {
        /// Whose.
        identity: String,
        /// With whom.
        contact: String,
        /// The entry (a message or a gap marker).
        entry: Entry,
        /// It came after newer ones and took its place in a gap: it belongs above entries
        /// already shown, not at the end.
        late: bool,
    },
    /// An outgoing message changed status.
    Status {
        /// Whose.
        identity: String,
        /// With whom.
        contact: String,
        /// The message.
        id: MessageId,
        /// The new status.
        status: Status,
        /// The error in words, for failed ones.
        error: Option<String>,
    },
    /// A message from an unknown sender arrived.
    Request {
        /// Whose.
        identity: String,
        /// The sender's fingerprint.
        fingerprint: Fingerprint,
    },
    /// The connection state changed.
    Connection,
}

/// One unknown sender and their messages.
#[derive(Clone, Debug)]
pub struct MessageRequest {
    /// The sender's fingerprint.
    pub fingerprint: Fingerprint,
    /// Public key, PEM.
    pub public_key: String,
    /// The name they gave (a claim: only the fingerprint identifies them).
    pub display_name: Option<String>,
    /// Their messages, oldest first.
    pub messages: Vec<MessageRecord>,
}

/// Where an outbox entry is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The node's own mailbox (the one it pulls from).
    Home,
    /// The recipient's mailbox, another one.
    Remote(config::MailboxAddress),
}

impl Destination {
    /// Whether this is `other`, comparing mailboxes by endpoint.
    pub fn is(&self, other: &Destination) -> bool {
        match (self, other) {
            (Self::Home, Self::Home) => true,
            (Self::Remote(a), Self::Remote(b)) => a.same_endpoint(b),
            _ => false,
        }
    }
}

/// A sender whose messages an identity drops unread.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockedRecord {
    /// Their fingerprint.
    pub fingerprint: Fingerprint,
    /// The name they gave, if any.
    #[serde(default)]
    pub display_name: Option<String>,
    /// When blocked, ms since the epoch.
    pub blocked_ms: u64,
}

/// The node.
#[derive(Debug)]
pub struct Node {
    store: Store,
    keys_dir: PathBuf,
    /// Encrypts new key files, and decrypted the existing ones at start.
    passphrase: Option<Passphrase>,
    identities: RwLock<HashMap<String, Arc<Identity>>>,
    /// The largest text a user may send, in bytes.
    max_body_bytes: usize,
    status: RwLock<SyncStatus>,
    /// The mailbox in use (see [`crate::core::settings`]).
    mailbox: crate::core::settings::MailboxSetting,
    /// Held while a message is sealed and its chain advanced.
    chain_lock: std::sync::Mutex<()>,
    /// Held while Olm devices and sessions are read, changed and written (after the chain
    /// or inbox lock, never before).
    olm_lock: std::sync::Mutex<ratchet::DeviceCache>,
    /// Each identity's pickle key, once read from its file.
    pickle_keys: std::sync::Mutex<HashMap<String, crypto::PickleKey>>,
    /// How many texts wait in the outbox (receipts are not counted). Its lock is held
    /// while a text enters or leaves the outbox, so the count follows the store.
    outbox_texts: std::sync::Mutex<usize>,
    /// Held while an outgoing message's status is read, changed and written (innermost:
    /// only the outbox count's lock is taken under it), so a late "sent" never overwrites
    /// the "delivered" a receipt wrote meanwhile.
    status_lock: std::sync::Mutex<()>,
    /// Held while a message is taken in, and while a contact is added with the requests
    /// its key left: who is a contact, and where their chain stands, change under it only.
    inbox_lock: std::sync::Mutex<()>,
    /// Wakes the sync loop: something to send, or a new identity to log in.
    wake: Notify,
    /// Wakes the delivery to other mailboxes (`sync::remote`) likewise.
    wake_remote: Notify,
    /// Wakes the receipts task: a message taken in needs its receipt.
    receipts: Notify,
    /// After a move, how long the old mailbox is still pulled, in ms.
    move_grace_ms: std::sync::atomic::AtomicU64,
    events: broadcast::Sender<NodeEvent>,
}

/// A key passphrase, wiped from memory when dropped; never printed.
#[derive(Clone)]
pub struct Passphrase(zeroize::Zeroizing<String>);

impl Passphrase {
    /// Wrap a passphrase.
    pub fn new(text: String) -> Self {
        Self(zeroize::Zeroizing::new(text))
    }

    /// The text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

pub use config::now_ms;

/// Check an identity id or contact name: `[A-Za-z0-9._-]{1,64}`, never `.` or `..`.
pub fn check_name(what: &'static str, name: &str) -> Result<(), NodeError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > 64 || !ok_chars || name == "." || name == ".." {
        return Err(NodeError::invalid(
            "invalid_name",
            format!("{what} must be 1 to 64 characters from A-Z a-z 0-9 . _ - (and not . or ..)"),
        ));
    }
    Ok(())
}

/// `words` as a sentence: a capital first letter and a full stop.
pub fn sentence(words: &str) -> String {
    let mut chars = words.trim().chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '?', '!', ')']) {
        out.push('.');
    }
    out
}

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;

/// A display name as people type it (any script, spaces): trimmed, 1 to
/// [`MAX_DISPLAY_NAME`] characters, no control characters. `what` names it in the error.
pub fn check_display_name(what: &'static str, name: &str) -> Result<String, NodeError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(NodeError::invalid(
            "invalid_name",
            format!("{what} is empty: give a name."),
        ));
    }
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(NodeError::invalid(
            "invalid_name",
            format!("{what} is too long: at most {MAX_DISPLAY_NAME} characters."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(NodeError::invalid(
            "invalid_name",
            format!("{what} cannot hold line breaks or control characters."),
        ));
    }
    Ok(name.to_owned())
}

/// The key a display name is found under in URLs and the store: the name itself when it is
/// a key already (`[A-Za-z0-9._-]{1,64}`, so existing names keep theirs), otherwise its
/// transliteration in lower case with dashes between words ("Zoë Müller" → `zoe-muller`,
/// "李雷" → `li-lei`), cut to 48 characters; `fallback` when nothing of it is left.
pub fn url_key(display: &str, fallback: &str) -> String {
    if check_name("a key", display).is_ok() {
        return display.to_owned();
    }
    let ascii = deunicode::deunicode(display).to_ascii_lowercase();
    let mut key = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            key.push(c);
        } else if !key.is_empty() && !key.ends_with('-') {
            key.push('-');
        }
    }
    key.truncate(48);
    let key = key.trim_end_matches('-');
    if key.is_empty() {
        fallback.to_owned()
    } else {
        key.to_owned()
    }
}

/// The first of `base`, `base-2`, `base-3`, … that `taken` says is free (a conflict after
/// 10,000 of them).
pub(crate) fn free_key(
    base: &str,
    mut taken: impl FnMut(&str) -> Result<bool, NodeError>,
) -> Result<String, NodeError> {
    for n in 1..=10_000u32 {
        let candidate = match n {
            1 => base.to_owned(),
            n => format!("{base}-{n}"),
        };
        if !taken(&candidate)? {
            return Ok(candidate);
        }
    }
    Err(NodeError::Conflict(format!("too many names like {base}")))
}

/// A message's first line, at most 80 characters, with `…` when something was cut: how
/// conversation lists and requests show a message.
pub fn preview(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(80).collect();
    if line.chars().count() > 80 || text.lines().nth(1).is_some() {
        short.push('…');
    }
    short
}

/// Run blocking work (RSA, disk) off the async executor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f).await?
}

impl Node {
    /// Open the node's store and load every identity's private key once.
    pub fn open(
        data_dir: &std::path::Path,
        max_body_bytes: usize,
        passphrase: Option<Passphrase>,
    ) -> Result<Self, NodeError> {
        let store = Store::open(&data_dir.join("store"))?;
        Self::with_store(store, data_dir.join("keys"), max_body_bytes, passphrase)
    }

    /// A node over any store, with its keys in `keys_dir`.
    pub fn with_store(
        store: Store,
        keys_dir: PathBuf,
        max_body_bytes: usize,
        passphrase: Option<Passphrase>,
    ) -> Result<Self, NodeError> {
        crate::ensure_private_dir(&keys_dir)?;
        let mut identities = HashMap::new();
        for (_, record) in store.scan::<IdentityRecord>(b"id/")? {
            let path = keys_dir.join(format!("{}.pem", record.fingerprint));
            let identity =
                Identity::read_pem_file(&path, passphrase.as_ref().map(Passphrase::expose))
                    .map_err(|source| NodeError::IdentityKey {
                        identity: record.id.clone(),
                        source,
                    })?;
            identities.insert(record.id.clone(), Arc::new(identity));
        }
        let outbox_texts = Self::count_outbox_texts(&store)?;
        Ok(Self {
            store,
            keys_dir,
            passphrase,
            identities: RwLock::new(identities),
            max_body_bytes,
            status: RwLock::new(SyncStatus::default()),
            mailbox: Default::default(),
            chain_lock: std::sync::Mutex::new(()),
            olm_lock: std::sync::Mutex::new(HashMap::new()),
            pickle_keys: std::sync::Mutex::new(HashMap::new()),
            outbox_texts: std::sync::Mutex::new(outbox_texts),
            inbox_lock: std::sync::Mutex::new(()),
            status_lock: std::sync::Mutex::new(()),
            wake: Notify::new(),
            wake_remote: Notify::new(),
            receipts: Notify::new(),
            move_grace_ms: std::sync::atomic::AtomicU64::new(moving::DEFAULT_MOVE_GRACE_MS),
            events: broadcast::channel(1024).0,
        })
    }

    /// The store (for the sync loop).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Wake the sync driver: something to send, or a new identity to log in.
    pub fn wake(&self) {
        self.wake.notify_one();
        self.wake_remote.notify_one();
    }

    /// A message taken in needs a receipt: wake the receipts task.
    fn receipts_due(&self) {
        self.receipts.notify_one();
    }

    /// Resolves when a receipt falls due (or at once if one did since the last call).
    pub async fn receipts_woken(&self) {
        self.receipts.notified().await;
    }

    /// Resolves at the next [`Self::wake`] (or at once if one is pending).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The same for the delivery to other mailboxes.
    pub async fn woken_remote(&self) {
        self.wake_remote.notified().await;
    }

    /// The largest text a user may send, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    pub(crate) fn mailbox_setting(&self) -> &crate::core::settings::MailboxSetting {
        &self.mailbox
    }

    /// Listen to what happens, for live pages.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    fn outbox_texts(&self) -> std::sync::MutexGuard<'_, usize> {
        self.outbox_texts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn status_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.status_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn inbox_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inbox_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: NodeEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// A saved setting.
    pub fn setting(&self, name: &str) -> Result<Option<String>, NodeError> {
        Ok(self.store.get::<String>(keys::setting(name))?)
    }

    /// Save a setting. Blocking.
    pub fn save_setting(&self, name: &str, value: &str) -> Result<(), NodeError> {
        let mut c = Changes::default();
        c.put(keys::setting(name), &value);
        self.store.apply(c)?;
        Ok(())
    }

    /// The sync status.
    pub fn status(&self) -> SyncStatus {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Update the sync status; tells listeners when it changed.
    pub fn update_status(&self, f: impl FnOnce(&mut SyncStatus)) {
        let changed = {
            let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
            let before = status.clone();
            f(&mut status);
            before.state != status.state
                || before.last_error != status.last_error
                || before.remote != status.remote
        };
        if changed {
            self.emit(NodeEvent::Connection);
        }
    }
}

fn incoming_record(message: &VerifiedMessage, now: u64) -> MessageRecord {
    MessageRecord {
        id: message.id(),
        direction: Direction::In,
        // Text bodies are UTF-8 by the format's contract; a sender who breaks it gets
        // replacement characters, not a lost message.
        text: String::from_utf8_lossy(message.body()).into_owned(),
        sent_ms: message.sent_at_ms(),
        stored_ms: now,
        status: Status::Received,
        seq: message.seq(),
        error: None,
        forward_secret: message.forward_secret(),
    }
}

/// The identity and contact of a `msg/` key.
fn conversation_of(key: &[u8]) -> Option<(String, String)> {
    let rest = key.strip_prefix(b"msg/")?;
    let mut parts = rest.splitn(3, |b| *b == 0);
    let identity = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let contact = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some((identity, contact))
}

/// A node over an in-memory store for the crate's unit tests, its key files in a temporary
/// directory (kept as long as the returned guard lives).
#[cfg(test)]
pub(crate) fn memory_node() -> (Node, tempfile::TempDir) {
    let keys = tempfile::tempdir().expect("a temporary directory");
    let store = Store::in_memory().expect("a memory store");
    let node = Node::with_store(store, keys.path().join("keys"), 65_536, None).expect("a node");
    (node, keys)
}

#[cfg(test)]
mod tests {
    use super::preview;

    #[test]
    fn a_preview_is_the_first_line_cut_at_80_characters() {
        assert_eq!(preview("hello"), "hello");
        assert_eq!(preview("hello\nworld"), "hello…");
        let long = "é".repeat(81);
        assert_eq!(preview(&long), format!("{}…", "é".repeat(80)));
        assert_eq!(preview(""), "");
    }
}
