//! Invite codes: one copy-paste string with what a person needs to write to someone: their
//! display name, public key, and mailbox address with its certificate fingerprint.
//!
//! Format: `sm1-` followed by URL-safe unpadded base64 of a JSON object
//! `{"name": <string|null>, "key": <base64 SPKI DER>, "mailbox": <"host:port#fp"|null>}`.
//! An invite is not proof of anything: the safety number is.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use config::MailboxAddress;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "sm1-";
/// Longest invite accepted (a 4096-bit key with a long name fits easily).
const MAX_LEN: usize = 4096;

/// A decoded invite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    /// The name they chose to show.
    pub display_name: Option<String>,
    /// Their public key.
    pub public_key: crypto::PublicKey,
    /// Their mailbox, if the invite names one.
    pub mailbox: Option<MailboxAddress>,
}

/// Why a string is not a usable invite.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InviteError {
    /// Not an invite at all.
    #[error("not an invite code (it should start with {PREFIX})")]
    NotAnInvite,
    /// Cut short or altered while copying.
    #[error("the invite code is damaged (was it copied completely?)")]
    Damaged,
    /// The key inside is refused.
    #[error("the invite's public key is refused: {0}")]
    Key(crypto::KeyError),
    /// The mailbox address inside is invalid.
    #[error("the invite's mailbox address is invalid: {0}")]
    Mailbox(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    name: Option<String>,
    key: String,
    mailbox: Option<String>,
}

impl Invite {
    /// The invite code.
    pub fn encode(&self) -> String {
        let wire = Wire {
            name: self.display_name.clone(),
            key: STANDARD.encode(self.public_key.der()),
            mailbox: self.mailbox.as_ref().map(ToString::to_string),
        };
        // Serializing a struct of strings to JSON cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Read an invite code (surrounding whitespace and line breaks are ignored).
    pub fn decode(code: &str) -> Result<Self, InviteError> {
        let code: String = code.split_whitespace().collect();
        let body = code.strip_prefix(PREFIX).ok_or(InviteError::NotAnInvite)?;
        if code.len() > MAX_LEN {
            return Err(InviteError::Damaged);
        }
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| InviteError::Damaged)?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|_| InviteError::Damaged)?;
        let der = STANDARD
            .decode(&wire.key)
            .map_err(|_| InviteError::Damaged)?;
        let public_key = crypto::PublicKey::from_der(&der).map_err(InviteError::Key)?;
        let mailbox = wire
            .mailbox
            .map(|m| {
                m.parse::<MailboxAddress>()
                    .map_err(|e| InviteError::Mailbox(e.to_string()))
            })
            .transpose()?;
        let display_name = wire
            .name
            // Cut to 100 characters, then trimmed again: a cut can end in a space, and the
            // name must read back the same from a re-encoded invite.
            .map(|n| {
                n.trim()
                    .chars()
                    .take(100)
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .filter(|n| !n.is_empty());
        Ok(Self {
            display_name,
            public_key,
            mailbox,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_long_name_cut_at_a_space_reads_back_the_same() {
        // 99 characters, a space, more: the cut leaves no trailing space behind.
        let name = format!("{} tail", "n".repeat(99));
        let invite = Invite {
            display_name: Some(name),
            public_key: key(),
            mailbox: None,
        };
        let decoded = Invite::decode(&invite.encode()).unwrap();
        assert_eq!(
            decoded.display_name.as_deref(),
            Some("n".repeat(99).as_str())
        );
        assert_eq!(Invite::decode(&decoded.encode()).unwrap(), decoded);
    }

    fn key() -> crypto::PublicKey {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        crypto::Identity::generate_with_rng(&mut rng)
            .unwrap()
            .public_key()
            .clone()
    }

    #[test]
    fn round_trip_and_errors() {
        let invite = Invite {
            display_name: Some("Alice <3".into()),
            public_key: key(),
            mailbox: Some(
                format!("mbx.example:50000#{}", "ab".repeat(32))
                    .parse()
                    .unwrap(),
            ),
        };
        let code = invite.encode();
        assert!(code.starts_with("sm1-"));
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(Invite::decode(&code).unwrap(), invite);
        // Wrapped by a mail client: still reads.
        let wrapped: String = code
            .as_bytes()
            .chunks(60)
            .map(|c| String::from_utf8_lossy(c) + "\n")
            .collect();
        assert_eq!(Invite::decode(&wrapped).unwrap(), invite);
        assert_eq!(Invite::decode("hello"), Err(InviteError::NotAnInvite));
        assert_eq!(
            Invite::decode(&code[..code.len() - 10]),
            Err(InviteError::Damaged)
        );
        let no_mailbox = Invite {
            mailbox: None,
            display_name: None,
            ..invite
        };
        assert_eq!(Invite::decode(&no_mailbox.encode()).unwrap(), no_mailbox);
    }
}
