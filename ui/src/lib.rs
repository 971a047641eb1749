//! Server-rendered HTML for Secure Messenger.
//!
//! This is the only crate that renders HTML. The views are plain functions of
//! plain data (no signals, no resources), rendered once on the server with
//! Leptos' SSR renderer into a complete document `String`. There is no
//! JavaScript framework and the pages load no external resources: the only
//! subresource is the stylesheet [`STYLESHEET`], which the node and the mailbox
//! serve themselves at `/assets/app.css`. There are no inline styles or
//! scripts, so a strict Content-Security-Policy (`default-src 'none';
//! style-src 'self'; form-action 'self'`) works.
//!
//! The mailbox dashboard reloads itself every few seconds with
//! `<meta http-equiv="refresh">` and draws its traffic chart as inline SVG
//! rendered on the server (themed by classes in the stylesheet).
//!
//! All user-supplied text (message bodies, identity and contact names, error
//! messages) is inserted as text or attribute values, which Leptos escapes.

mod dashboard;
mod document;
mod login;
mod node;

pub use dashboard::dashboard_page;
pub use login::login_page;
pub use node::node_page;

/// The stylesheet, served by the node and the mailbox at `/assets/app.css`
/// (no inline styles, so a strict CSP `style-src 'self'` works).
pub const STYLESHEET: &str = include_str!("app.css");

/// The path both servers serve [`STYLESHEET`] at; the pages link to it.
pub const STYLESHEET_PATH: &str = "/assets/app.css";

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
    /// The contact's name (restricted to `[A-Za-z0-9._-]` by the node).
    pub name: String,
    /// The contact's public-key fingerprint, 64 hex digits.
    pub fingerprint: String,
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
    /// `"pending"`, `"sent"`, `"delivered"`, `"received"` or `"failed"`.
    pub status: String,
    /// Set on a gap marker instead of a message: how many messages the conversation's chain
    /// says are missing here (expired or dropped on the way).
    pub gap: Option<u64>,
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
}

/// Everything the mailbox's monitoring dashboard shows.
#[derive(Clone, Debug, Default)]
pub struct DashboardPage {
    /// The QUIC address the mailbox listens on.
    pub listen: String,
    /// The SHA-256 fingerprint of the mailbox's TLS certificate, 64 hex digits
    /// (shown grouped by four).
    pub fingerprint: String,
    /// Preformatted uptime, e.g. `"3h 12m"`.
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
    /// The retention period, preformatted, e.g. `"7days"`.
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

/// A fingerprint grouped by four hex digits: `"a1b2 c3d4 ..."` (whitespace
/// already in it is ignored).
pub(crate) fn group_fingerprint(fingerprint: &str) -> String {
    let digits: Vec<char> = fingerprint.chars().filter(|c| !c.is_whitespace()).collect();
    digits
        .chunks(4)
        .map(|chunk| chunk.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
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
    }
}
