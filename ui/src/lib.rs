//! Server-rendered HTML for Secure Messenger.
//!
//! This is the only crate that renders HTML. The views are plain functions of
//! plain data (no signals, no resources), rendered once on the server with
//! Leptos' SSR renderer into a complete document `String`. There is no
//! JavaScript framework and the pages load no external resources: the
//! subresources are the stylesheet [`STYLESHEET`], which the node and the
//! mailbox serve themselves at `/assets/app.css`, and, on the node page only,
//! the small script [`SCRIPT`] at `/assets/app.js`. There are no inline styles
//! or scripts, so a strict Content-Security-Policy (`default-src 'none';
//! style-src 'self'; script-src 'self'; connect-src 'self'; form-action
//! 'self'`) works.
//!
//! The node page works without JavaScript: every action is a plain form POST.
//! The script only enhances it (live messages over `/api/events`, sending
//! without a reload, local times, copy buttons, notifications).
//!
//! The mailbox dashboard reloads itself every few seconds with
//! `<meta http-equiv="refresh">` and draws its traffic chart as inline SVG
//! rendered on the server (themed by classes in the stylesheet).
//!
//! All user-supplied text (message bodies, identity and contact names, error
//! messages) is inserted as text or attribute values, which Leptos escapes.

mod dashboard;
mod document;
mod invite;
mod login;
mod node;
mod qr;
#[cfg(feature = "axum")]
pub mod serve;
mod settings;

pub use dashboard::dashboard_page;
pub use login::login_page;
pub use node::node_page;

/// The stylesheet, served by the node and the mailbox at `/assets/app.css`
/// (no inline styles, so a strict CSP `style-src 'self'` works).
pub const STYLESHEET: &str = include_str!("app.css");

/// The path both servers serve [`STYLESHEET`] at; the pages link to it.
pub const STYLESHEET_PATH: &str = "/assets/app.css";

/// The node page's script, served by the node at [`SCRIPT_PATH`] (no inline
/// scripts, so a strict CSP `script-src 'self'` works). It only enhances the
/// page, which works without it.
pub const SCRIPT: &str = include_str!("app.js");

/// The path the node serves [`SCRIPT`] at; only the node page loads it.
pub const SCRIPT_PATH: &str = "/assets/app.js";

/// One local identity, as listed in the node page's sidebar.
#[derive(Clone, Debug, Default)]
pub struct IdentityItem {
    /// The identity's id (restricted to `[A-Za-z0-9._-]{1,64}` by the node).
    pub id: String,
    /// An optional human-friendly name.
    pub display_name: Option<String>,
    /// The public-key fingerprint, 64 hex digits.
    pub fingerprint: String,
    /// The same fingerprint grouped for reading aloud: `"a1b2 c3d4 ..."`.
    pub fingerprint_grouped: String,
}

/// One contact of the active identity.
#[derive(Clone, Debug, Default)]
pub struct ContactItem {
    /// The contact's key in links (restricted to `[A-Za-z0-9._-]` by the node); also the
    /// name shown when there is no display name.
    pub name: String,
    /// The name people see, when it is not `name` (spaces, any script).
    pub display_name: Option<String>,
    /// The contact's public-key fingerprint, 64 hex digits.
    pub fingerprint: String,
    /// The same fingerprint grouped for reading aloud: `"a1b2 c3d4 ..."` (the node groups
    /// it: `crypto::Fingerprint::grouped`).
    pub fingerprint_grouped: String,
    /// Incoming messages not yet seen (a badge when above zero).
    pub unread: usize,
    /// The last message's text: its first line, already shortened by the node
    /// to at most 80 characters.
    pub preview: Option<String>,
    /// Marked verified after comparing safety numbers.
    pub verified: bool,
    /// The safety number to compare with the contact: 60 digits in 12 groups
    /// of 5 (grouped again here if given without spaces).
    pub safety_number: String,
    /// A problem with the contact in words, e.g. that their mailbox cannot be reached
    /// now and messages to them wait.
    pub warning: Option<String>,
    /// Where messages to them go, in words: their own mailbox and whether it answers, or
    /// ours.
    pub mailbox: Option<String>,
}

impl ContactItem {
    /// The name people see.
    pub fn shown_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }
}

impl IdentityItem {
    /// The name people see.
    pub fn shown_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.id)
    }
}

/// Messages from a sender who is not a contact (yet) of the active identity.
#[derive(Clone, Debug, Default)]
pub struct RequestItem {
    /// The name the sender gave (a claim: the fingerprint is what identifies them).
    pub display_name: Option<String>,
    /// The sender's public-key fingerprint, 64 hex digits.
    pub fingerprint: String,
    /// The same fingerprint grouped for reading aloud: `"a1b2 c3d4 ..."`.
    pub fingerprint_grouped: String,
    /// How many messages they sent.
    pub count: usize,
    /// The last message's text (first line, shortened by the node).
    pub preview: String,
    /// A contact of the same name, by key and name: the request may be their new key (or
    /// someone posing as them).
    pub same_name_as: Option<(String, String)>,
}

/// What was typed into a form the node refused, to put back into it.
#[derive(Clone, Debug, Default)]
pub struct Kept {
    /// The Add a profile form's name.
    pub profile_name: Option<String>,
    /// The Add a contact form's invite code or key.
    pub contact_key: Option<String>,
    /// The Add a contact form's name.
    pub contact_name: Option<String>,
    /// Why the key backup was refused (its form opens again, with this next to it).
    pub backup_error: Option<String>,
}

/// A sender the active identity blocked.
#[derive(Clone, Debug, Default)]
pub struct BlockedItem {
    /// The name they gave, if any.
    pub display_name: Option<String>,
    /// Their fingerprint, 64 hex digits.
    pub fingerprint: String,
    /// The same fingerprint grouped for reading.
    pub fingerprint_grouped: String,
}

/// What the settings dialog shows.
#[derive(Clone, Debug, Default)]
pub struct SettingsView {
    /// The mailbox address in use, `"host:port#<64 hex>"` (the pinned
    /// certificate fingerprint included when known).
    pub mailbox: String,
    /// The outcome of the last "Test connection", in words, e.g.
    /// `"Connected: the mailbox answered (certificate a1b2 …)"` or the error.
    pub test_result: Option<String>,
    /// Show message text in desktop notifications (otherwise "New message").
    pub previews: bool,
    /// The browsers signed in to the node (none when it requires no token).
    pub sessions: Vec<SessionItem>,
    /// The mailbox address as typed, when it differs from the one in use (refused, or
    /// only tested): shown in the field instead.
    pub typed_mailbox: Option<String>,
    /// Why the typed mailbox address was refused, shown next to the field.
    pub mailbox_error: Option<String>,
    /// The confirmation of a save, e.g. `"Saved: the node now uses mailbox …"`.
    pub saved: Option<String>,
    /// The colour theme: `"system"` (or empty), `"light"` or `"dark"`.
    pub theme: String,
}

/// A browser signed in to the node, in the settings dialog.
#[derive(Clone, Debug, Default)]
pub struct SessionItem {
    /// What signs it out (16 hex digits).
    pub id: String,
    /// The browser, as it named itself.
    pub agent: String,
    /// When it signed in, e.g. `"2026-11-25 21:40 UTC"`.
    pub signed_in: String,
    /// When it was last used (to within minutes).
    pub last_seen: String,
    /// Whether it is the browser showing the page.
    pub current: bool,
}

/// One message of the active conversation.
#[derive(Clone, Debug, Default)]
pub struct MessageItem {
    /// A stable id, rendered as `data-message-id`.
    pub id: String,
    /// `true` for messages this identity sent.
    pub outgoing: bool,
    /// The message text (may contain newlines; shown with its lines kept).
    pub text: String,
    /// Preformatted time, e.g. `"2026-11-25 21:40 UTC"`.
    pub time: String,
    /// The same time as RFC 3339 UTC, e.g. `"2026-11-25T21:40:00.123Z"`,
    /// rendered as `<time datetime>` so the script can show local time.
    pub time_iso: String,
    /// `"pending"`, `"sent"`, `"delivered"`, `"received"` or `"failed"`.
    pub status: String,
    /// Set on a gap marker instead of a message: how many messages the conversation's chain
    /// says are missing here (expired or dropped on the way).
    pub gap: Option<u64>,
    /// A warning about an incoming message, in words (it does not follow the one before it;
    /// the sender's chain started again), shown under its text.
    pub warning: Option<String>,
    /// Set on a note of the node's instead of a message (its words are `text`).
    pub note: Option<NoteLevel>,
    /// The message went forward-secret; one that did not is marked as such.
    pub forward_secret: bool,
}

/// How a note in a conversation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteLevel {
    /// News (the contact was marked verified).
    Info,
    /// A warning (their key changed).
    Warning,
}

/// Everything the node's web page shows.
#[derive(Clone, Debug, Default)]
pub struct NodePage {
    /// All local identities.
    pub identities: Vec<IdentityItem>,
    /// The id of the selected identity, if any.
    pub active_identity: Option<String>,
    /// The contacts of the active identity.
    pub contacts: Vec<ContactItem>,
    /// The name of the selected contact, if any.
    pub active_contact: Option<String>,
    /// The conversation with the active contact, oldest first (rendered with
    /// the newest at the bottom).
    pub messages: Vec<MessageItem>,
    /// `"online"`, `"connecting"` or `"offline"`.
    pub connection: String,
    /// Number of messages waiting to be sent.
    pub outbox: usize,
    /// The last connection or delivery error, in words.
    pub last_error: Option<String>,
    /// The error of the last form action, shown prominently.
    pub flash_error: Option<String>,
    /// Text to put back in the compose box (typed text is never lost).
    pub draft: String,
    /// The longest message the node sends, in UTF-8 bytes (0: not said): the page says
    /// while typing that a text is over it.
    pub max_message_bytes: usize,
    /// What was typed into the other forms, put back after a refusal.
    pub kept: Kept,
    /// Messages from unknown senders to the active identity.
    pub requests: Vec<RequestItem>,
    /// The fingerprint of the request whose deletion is to be confirmed.
    pub confirm_delete_request: Option<String>,
    /// Senders the active identity blocked.
    pub blocked: Vec<BlockedItem>,
    /// The active identity's invite code.
    pub invite: Option<String>,
    /// The active identity's public key, PEM (for "Copy key").
    pub public_key: Option<String>,
    /// The id of the oldest message shown, when older ones exist: a "Show
    /// older messages" link loads the page with `before=<id>`.
    pub older: Option<String>,
    /// Render the settings dialog open.
    pub show_settings: bool,
    /// Render the "Invite someone" dialog open (the active identity's invite).
    pub show_invite: bool,
    /// What the settings dialog shows.
    pub settings: SettingsView,
    /// Render the confirmation step for deleting the active identity.
    pub confirm_delete_identity: bool,
    /// Render the confirmation step for deleting the active contact.
    pub confirm_delete_contact: bool,
}

/// Everything the mailbox's monitoring dashboard shows.
#[derive(Clone, Debug, Default)]
pub struct DashboardPage {
    /// The QUIC address the mailbox listens on.
    pub listen: String,
    /// What nodes put in their settings to use this mailbox: `host:port#fingerprint`.
    pub node_address: String,
    /// Said under [`DashboardPage::node_address`] when it does not do as it is (the mailbox
    /// listens on every interface, so the host part is the operator's to fill in, or on
    /// loopback, which only this machine reaches).
    pub node_address_note: Option<String>,
    /// The SHA-256 fingerprint of the mailbox's TLS certificate, grouped for reading:
    /// `"a1b2 c3d4 ..."` (the mailbox groups it: `crypto::Fingerprint::grouped`).
    pub fingerprint_grouped: String,
    /// Preformatted uptime, e.g. `"3 h 12 min"`.
    pub uptime: String,
    /// Currently connected nodes.
    pub connections: u64,
    /// Currently logged-in identities, across all connections.
    pub logged_in: u64,
    /// Envelopes waiting to be pulled.
    pub queued_envelopes: u64,
    /// Total size of the queued envelopes, in bytes.
    pub queued_bytes: u64,
    /// Envelopes stored since start.
    pub stored_total: u64,
    /// Envelopes acknowledged (delivered) since start.
    pub delivered_total: u64,
    /// Envelopes deleted by retention since start.
    pub expired_total: u64,
    /// Refused requests since start by reason code, e.g. `("quota", 3)`, in
    /// the order given; may be empty.
    pub refused: Vec<(String, u64)>,
    /// The retention period, preformatted, e.g. `"7 days"`.
    pub retention: String,
    /// The time and outcome of the last retention run, preformatted, e.g.
    /// `"2026-11-25 21:40:00 UTC (3 expired)"`; `None` if it has not run yet.
    pub last_retention_run: Option<String>,
    /// Traffic, one point per second, oldest first; typically the last 300
    /// seconds.
    pub series: Vec<RatePoint>,
    /// Recent log lines, oldest first: plain text, already free of secrets
    /// (escaped like all text).
    pub log_lines: Vec<String>,
}

/// The mailbox's traffic during one second, a point of the dashboard chart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RatePoint {
    /// SEND requests received (envelopes submitted) during the second.
    pub sends: u64,
    /// Envelopes delivered (acknowledged) during the second.
    pub deliveries: u64,
}

/// Percent-encodes `value` for use as a URL query value: everything except
/// the RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~` is escaped.
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// Escapes `&`, `<` and `>` for use as HTML text, including raw-text
/// contexts such as `<textarea>` content that Leptos does not escape.
pub(crate) fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The escaped content of a `<textarea>` showing `text`: a newline (which the
/// HTML parser drops, so a leading newline of `text` survives) followed by
/// `text` with `&`, `<` and `>` escaped. Leptos treats `<textarea>` children
/// as raw text and does not escape them, so user text must go through here
/// and `inner_html`, never be a child.
pub(crate) fn textarea_content(text: &str) -> String {
    format!("\n{}", escape_text(text))
}

/// A link to the node page: `/?identity=I&contact=C&key=value…`, each part
/// only when given and every value percent-encoded; `/` when there is none.
pub(crate) fn page_href(
    identity: Option<&str>,
    contact: Option<&str>,
    extra: &[(&str, &str)],
) -> String {
    let selection = [("identity", identity), ("contact", contact)];
    let pairs: Vec<String> = selection
        .iter()
        .filter_map(|(key, value)| value.map(|value| (*key, value)))
        .chain(extra.iter().copied())
        .map(|(key, value)| format!("{key}={}", encode_query_value(value)))
        .collect();
    if pairs.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{}", pairs.join("&"))
    }
}

/// Formats a byte count for humans, e.g. `1536` → `"1.5 KiB"`.
pub(crate) fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    // Precision loss is irrelevant for a one-decimal display.
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("alice.b_c-d~"), "alice.b_c-d~");
        assert_eq!(encode_query_value("a&b=c d"), "a%26b%3Dc%20d");
        assert_eq!(encode_query_value("x/?#\"<"), "x%2F%3F%23%22%3C");
        assert_eq!(encode_query_value("é"), "%C3%A9");
        assert_eq!(encode_query_value(""), "");
    }

    #[test]
    fn page_links_carry_only_what_is_given() {
        assert_eq!(page_href(None, None, &[]), "/");
        assert_eq!(page_href(None, None, &[("settings", "1")]), "/?settings=1");
        assert_eq!(page_href(Some("a b"), None, &[]), "/?identity=a%20b");
        assert_eq!(
            page_href(Some("alice"), Some("x&y"), &[("before", "m#1")]),
            "/?identity=alice&contact=x%26y&before=m%231"
        );
    }

    #[test]
    fn bytes_are_formatted_for_humans() {
        assert_eq!(format_bytes(0), "0 bytes");
        assert_eq!(format_bytes(1023), "1023 bytes");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(format_bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn stylesheet_is_embedded_and_themed() {
        assert!(STYLESHEET.contains("prefers-color-scheme: dark"));
        assert!(STYLESHEET.contains("pre-wrap"));
        assert!(STYLESHEET.contains("overflow-wrap: anywhere"));
        assert!(STYLESHEET.contains("max-width: 700px"));
        assert!(!STYLESHEET.contains("http://") && !STYLESHEET.contains("https://"));
        assert!(!STYLESHEET.contains("@import"));
        assert!(STYLESHEET.contains(".js-only"));
        assert!(STYLESHEET.contains("html.js .js-only"));
    }

    #[test]
    fn script_is_embedded_and_builds_nodes_safely() {
        assert!(SCRIPT.contains("classList.add('js')"));
        assert!(SCRIPT.contains("/api/events"));
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("outerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.contains("document.write"));
        assert!(!SCRIPT.contains("eval("));
        assert!(!SCRIPT.contains("new Function"));
        assert!(!SCRIPT.contains("http://") && !SCRIPT.contains("https://"));
        assert_eq!(SCRIPT_PATH, "/assets/app.js");
    }
}
