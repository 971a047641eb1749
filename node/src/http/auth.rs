//! Who may drive the node. A node requires its access token by default: given as
//! `access_token` / `NODE_ACCESS_TOKEN`, or generated at first start into a 0600 file in the
//! data directory. Scripts and the CLI send it as a bearer token. Browsers never hold it:
//! they sign in (with a one-time sign-in link, or by typing the token once) and get a
//! server-side session, whose random id is all the cookie carries.
//!
//! The cookie lives on a host name of this node's own, `n-<16 hex>.localhost` (browsers send
//! `*.localhost` to the loopback address): cookies are not isolated by port, so a cookie for
//! `127.0.0.1` would reach any local server the browser visits; one for a random name
//! reaches only servers visited under that name, and the name is told only to a request that
//! is let in (or holds a live sign-in code). Sessions are kept hashed in the store (they survive a restart), expire after
//! two idle weeks, are listed and revocable, and a key export needs a sign-in of the last
//! five minutes.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::core::error::NodeError;
use crate::core::service::Node;
use crate::core::store::{Changes, keys};

/// The file in the data directory holding the generated access token.
pub const TOKEN_FILE: &str = "access-token";
/// The cookie holding a session id.
pub const SESSION_COOKIE: &str = "sm_session";
/// How long a sign-in link works.
pub const SIGN_IN_TTL: Duration = Duration::from_secs(15 * 60);
/// A session unused this long ends.
pub const SESSION_IDLE: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// How recent a sign-in must be for a key export.
pub const SUDO_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Sessions kept at most (the least recently used goes first).
pub const MAX_SESSIONS: usize = 32;
/// Sign-in links outstanding at most (the oldest goes first).
const MAX_CODES: usize = 16;
/// How often a session's last use is written down (not at every request).
const SEEN_EVERY: Duration = Duration::from_secs(5 * 60);
/// The setting holding this node's own host name.
const PAGE_HOST_SETTING: &str = "page_host";

/// How a request was let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// With the access token (a bearer token).
    Token,
    /// With a session, signed in at this time (ms since the epoch).
    Session {
        /// When its sign-in was.
        signed_in_ms: u64,
    },
    /// The node requires no token (allowed on a loopback address only).
    Open,
}

impl Auth {
    /// Whether a key may be exported at `now_ms`: with the token, or a sign-in of the last
    /// [`SUDO_WINDOW`].
    pub fn may_export_keys(self, now_ms: u64) -> bool {
        match self {
            Self::Token | Self::Open => true,
            Self::Session { signed_in_ms } => {
                now_ms.saturating_sub(signed_in_ms) <= millis(SUDO_WINDOW)
            }
        }
    }
}

/// A session as the store keeps it (under the SHA-256 of its id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// When it began, ms since the epoch.
    pub created_ms: u64,
    /// When it was last used (to within a few minutes).
    pub seen_ms: u64,
    /// When its browser last signed in.
    pub signed_in_ms: u64,
    /// The browser's User-Agent, shortened, to tell sessions apart in the list.
    pub agent: String,
}

/// A session in the list: its public handle (the first 16 hex digits of its id's hash,
/// which cannot be turned back into the id) and its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// What revokes it.
    pub handle: String,
    /// Its record.
    pub record: SessionRecord,
}

/// The node's access rules: its token, its page host, sign-in links and sessions.
#[derive(Debug)]
pub struct Access {
    /// The token; `None` when the node requires none.
    token: Option<Arc<str>>,
    /// `n-<hex>.localhost:<port>`.
    page_host: String,
    /// Sign-in links: SHA-256 of the code → when it expires.
    codes: Mutex<HashMap<[u8; 32], u64>>,
    /// When each session's last use was written down.
    seen: Mutex<HashMap<String, u64>>,
    /// Held while sessions are written (begun, refreshed, ended), so a refresh cannot bring
    /// back a session ended meanwhile.
    writes: Mutex<()>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn digest(text: &str) -> [u8; 32] {
    sha2::Sha256::digest(text.as_bytes()).into()
}

pub(super) fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// The access token: the configured one, else the one in `<data_dir>/access-token`, made
/// (32 random bytes, hex, mode 0600) at first start.
pub fn load_or_create_token(data_dir: &Path, configured: Option<&str>) -> std::io::Result<String> {
    if let Some(token) = configured.filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = random_hex(32);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// This node's own host name, `n-<16 hex>.localhost`, made once and kept in its settings
/// (so links and bookmarks keep working across restarts). Blocking.
pub fn page_host_name(node: &Node) -> Result<String, NodeError> {
    if let Some(name) = node.setting(PAGE_HOST_SETTING)? {
        return Ok(name);
    }
    let name = format!("n-{}.localhost", random_hex(8));
    node.save_setting(PAGE_HOST_SETTING, &name)?;
    Ok(name)
}

impl Access {
    /// Rules for a node serving on `port` as `host_name`; `token` `None` requires none.
    pub fn new(token: Option<&str>, host_name: &str, port: u16) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
            page_host: format!("{host_name}:{port}"),
            codes: Mutex::default(),
            seen: Mutex::default(),
            writes: Mutex::default(),
        }
    }

    /// Whether a token is required.
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// `n-<hex>.localhost:<port>`: the host pages and sessions live on.
    pub fn page_host(&self) -> &str {
        &self.page_host
    }

    /// Whether `presented` is the access token (compared as digests, so the time taken
    /// says nothing about how much of it matched).
    pub fn token_matches(&self, presented: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|t| digest(t) == digest(presented))
    }

    /// A new one-time sign-in code, valid for [`SIGN_IN_TTL`] from `now_ms`.
    pub fn new_code(&self, now_ms: u64) -> String {
        let code = random_hex(16);
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|_, expires| *expires > now_ms);
        while codes.len() >= MAX_CODES {
            let Some(oldest) = codes.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) else {
                break;
            };
            codes.remove(&oldest);
        }
        codes.insert(digest(&code), now_ms.saturating_add(millis(SIGN_IN_TTL)));
        code
    }

    /// The sign-in link for `code`.
    pub fn sign_in_url(&self, code: &str) -> String {
        format!("http://{}/login?code={code}", self.page_host)
    }

    /// Whether `code` is a live sign-in code (without using it up).
    pub fn code_is_live(&self, code: &str, now_ms: u64) -> bool {
        let codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes
            .get(&digest(code))
            .is_some_and(|expires| *expires > now_ms)
    }

    /// Use up `code`: whether it was a live sign-in code.
    pub fn take_code(&self, code: &str, now_ms: u64) -> bool {
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes
            .remove(&digest(code))
            .is_some_and(|expires| expires > now_ms)
    }

    /// Begin a session for a browser that just signed in; returns the id for its cookie.
    /// The oldest sessions go beyond [`MAX_SESSIONS`]. Blocking.
    pub fn open_session(&self, node: &Node, agent: &str, now_ms: u64) -> Result<String, NodeError> {
        let id = random_hex(32);
        let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let mut sessions = self.sessions(node)?;
        sessions.sort_by_key(|s| std::cmp::Reverse(s.record.seen_ms));
        let mut c = Changes::default();
        for old in sessions.iter().skip(MAX_SESSIONS.saturating_sub(1)) {
            c.delete(self.key_of_handle(node, &old.handle)?);
        }
        let agent: String = agent.chars().take(120).collect();
        c.put(
            keys::session(&hex::encode(digest(&id))),
            &SessionRecord {
                created_ms: now_ms,
                seen_ms: now_ms,
                signed_in_ms: now_ms,
                agent,
            },
        );
        node.store().apply(c)?;
        Ok(id)
    }

    /// The live session with cookie value `id`, if any; notes its use. Blocking.
    pub fn session(
        &self,
        node: &Node,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<SessionRecord>, NodeError> {
        let hash = hex::encode(digest(id));
        let key = keys::session(&hash);
        let Some(mut record) = node.store().get::<SessionRecord>(key.clone())? else {
            return Ok(None);
        };
        if now_ms.saturating_sub(record.seen_ms) > millis(SESSION_IDLE) {
            let mut c = Changes::default();
            c.delete(key);
            node.store().apply(c)?;
            return Ok(None);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let noted = seen.get(&hash).copied().unwrap_or(record.seen_ms);
        if now_ms.saturating_sub(noted) >= millis(SEEN_EVERY) {
            let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
            // Ended since it was read: it stays ended.
            if !node.store().contains(&key)? {
                return Ok(None);
            }
            record.seen_ms = now_ms;
            let mut c = Changes::default();
            c.put(key, &record);
            node.store().apply(c)?;
            seen.insert(hash, now_ms);
        }
        Ok(Some(record))
    }

    /// Every session, newest sign-in first. Blocking.
    pub fn sessions(&self, node: &Node) -> Result<Vec<SessionInfo>, NodeError> {
        let mut list: Vec<SessionInfo> = node
            .store()
            .scan::<SessionRecord>(&keys::sessions())?
            .into_iter()
            .filter_map(|(key, record)| {
                let hash = key.strip_prefix(keys::sessions().as_slice())?;
                let handle = String::from_utf8(hash.get(..16)?.to_vec()).ok()?;
                Some(SessionInfo { handle, record })
            })
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.record.signed_in_ms));
        Ok(list)
    }

    /// The handle of the session with cookie value `id`.
    pub fn handle_of(id: &str) -> String {
        hex::encode(digest(id))[..16].to_owned()
    }

    fn key_of_handle(&self, node: &Node, handle: &str) -> Result<Vec<u8>, NodeError> {
        let prefix = [keys::sessions(), handle.as_bytes().to_vec()].concat();
        node.store()
            .keys(&prefix)?
            .into_iter()
            .next()
            .ok_or_else(|| NodeError::NotFound(format!("no session {handle}")))
    }

    /// End the session with this handle. Blocking.
    pub fn revoke(&self, node: &Node, handle: &str) -> Result<(), NodeError> {
        if handle.len() != 16 || !handle.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NodeError::NotFound(format!("no session {handle}")));
        }
        let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let key = self.key_of_handle(node, handle)?;
        let mut c = Changes::default();
        c.delete(key);
        node.store().apply(c)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::core::store::Store;

    fn node() -> (Node, tempfile::TempDir) {
        let keys = tempfile::tempdir().unwrap();
        let node = Node::with_store(
            Store::in_memory().unwrap(),
            keys.path().join("k"),
            1024,
            None,
        )
        .unwrap();
        (node, keys)
    }

    #[test]
    fn a_generated_token_is_kept_private_and_a_configured_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let made = load_or_create_token(dir.path(), None).unwrap();
        assert_eq!(made.len(), 64);
        assert_eq!(
            load_or_create_token(dir.path(), None).unwrap(),
            made,
            "kept"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            load_or_create_token(dir.path(), Some("mine")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn a_sign_in_code_works_once_and_not_after_it_expires() {
        let access = Access::new(Some("t"), "n-1.localhost", 8000);
        let code = access.new_code(1_000);
        assert!(
            access
                .sign_in_url(&code)
                .starts_with("http://n-1.localhost:8000/login?code=")
        );
        assert!(!access.take_code("not it", 1_000));
        assert!(access.take_code(&code, 2_000));
        assert!(!access.take_code(&code, 2_000), "once");
        let late = access.new_code(0);
        assert!(!access.take_code(&late, millis(SIGN_IN_TTL) + 1));
        assert!(access.token_matches("t") && !access.token_matches("u"));
    }

    #[test]
    fn outstanding_sign_in_codes_are_bounded() {
        let access = Access::new(Some("t"), "n-1.localhost", 8000);
        let first = access.new_code(1);
        for n in 0..MAX_CODES as u64 {
            access.new_code(2 + n);
        }
        assert!(!access.take_code(&first, 100), "the oldest went");
        assert_eq!(
            access.codes.lock().unwrap().len(),
            MAX_CODES,
            "no more are kept"
        );
    }

    #[test]
    fn sessions_are_kept_hashed_expire_and_can_be_revoked() {
        let (node, _keys) = node();
        let access = Access::new(Some("t"), "n-1.localhost", 8000);
        let id = access.open_session(&node, "Firefox", 1_000).unwrap();
        // Only the hash of the id is stored.
        let stored = node.store().keys(&keys::sessions()).unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!String::from_utf8_lossy(&stored[0]).contains(&id));
        let record = access.session(&node, &id, 2_000).unwrap().unwrap();
        assert_eq!(
            (record.signed_in_ms, record.agent.as_str()),
            (1_000, "Firefox")
        );
        assert!(access.session(&node, "forged", 2_000).unwrap().is_none());
        // A key export wants a recent sign-in.
        let auth = Auth::Session {
            signed_in_ms: record.signed_in_ms,
        };
        assert!(auth.may_export_keys(1_000 + millis(SUDO_WINDOW)));
        assert!(!auth.may_export_keys(2_000 + millis(SUDO_WINDOW)));
        // Listed by handle, and revoked by it.
        let list = access.sessions(&node).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].handle, Access::handle_of(&id));
        access.revoke(&node, &list[0].handle).unwrap();
        assert!(access.session(&node, &id, 3_000).unwrap().is_none());
        assert!(access.revoke(&node, "../../etc").is_err());
        // Idle too long: gone.
        let idle = access.open_session(&node, "x", 0).unwrap();
        assert!(
            access
                .session(&node, &idle, millis(SESSION_IDLE) + 1)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn sessions_are_bounded() {
        let (node, _keys) = node();
        let access = Access::new(Some("t"), "n-1.localhost", 8000);
        let first = access.open_session(&node, "first", 0).unwrap();
        for n in 1..=MAX_SESSIONS as u64 {
            access.open_session(&node, "more", n).unwrap();
        }
        assert_eq!(access.sessions(&node).unwrap().len(), MAX_SESSIONS);
        assert!(
            access.session(&node, &first, 100).unwrap().is_none(),
            "the oldest went"
        );
    }
}
