//! [`MailboxAddress`]: where a node finds its mailbox.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a mailbox lives: `host:port` with an optional
/// `#<64 hex digits>` pinning the SHA-256 of the server certificate (DER). A clustered
/// mailbox lists its front-ends, `host:port,host:port#<64 hex>`: a node tries them in order
/// and fails over to the next; the one fingerprint covers them all (they share a
/// certificate).
///
/// Examples: `127.0.0.1:50000`, `mail.example.org:50000`, `[::1]:50000`,
/// `127.0.0.1:50000#9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08`,
/// `a.example.org:50000,b.example.org:50000#9f86…0a08`.
///
/// `host` is stored without IPv6 brackets (`::1`, not `[::1]`), so it can be
/// handed to name resolution as is; [`Display`](fmt::Display) puts the
/// brackets back. The fingerprint is accepted in upper or lower case and is
/// always displayed in lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxAddress {
    /// Host name, IPv4 address or IPv6 address (without brackets).
    pub host: String,
    /// UDP port of the mailbox's QUIC endpoint (never 0).
    pub port: u16,
    /// SHA-256 of the server certificate (DER), if pinned.
    pub fingerprint: Option<[u8; 32]>,
    /// Further front-ends of the same mailbox (host without brackets, port), tried in
    /// order after `host:port`.
    pub also: Vec<(String, u16)>,
}

impl MailboxAddress {
    /// The same address with no certificate fingerprint.
    pub fn without_fingerprint(&self) -> Self {
        Self {
            fingerprint: None,
            ..self.clone()
        }
    }

    /// Every front-end, `host:port` first: `(host without brackets, port)`.
    pub fn endpoints(&self) -> impl Iterator<Item = (&str, u16)> {
        std::iter::once((self.host.as_str(), self.port))
            .chain(self.also.iter().map(|(h, p)| (h.as_str(), *p)))
    }

    /// Whether `other` names the same endpoint: the same port and host, the host compared
    /// without regard to ASCII case (DNS names are case-insensitive). Pins are not compared.
    pub fn same_endpoint(&self, other: &Self) -> bool {
        self.port == other.port && self.host.eq_ignore_ascii_case(&other.host)
    }

    /// The fingerprint as 64 lowercase hex digits, if there is one.
    pub fn fingerprint_hex(&self) -> Option<String> {
        self.fingerprint.as_ref().map(|bytes| to_hex(bytes))
    }
}

/// Why a string is not a valid [`MailboxAddress`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing was given.
    #[error("mailbox address is empty (expected host:port, e.g. 127.0.0.1:50000)")]
    Empty,
    /// No `:port` after the host.
    #[error("mailbox address `{0}` is missing the port (expected host:port, e.g. 127.0.0.1:50000)")]
    MissingPort(String),
    /// The port is not a number from 1 to 65535.
    #[error(
        "mailbox address `{address}` has a bad port `{port}` (expected a number from 1 to 65535)"
    )]
    BadPort {
        /// The whole input.
        address: String,
        /// The text after the last `:`.
        port: String,
    },
    /// The host part is empty or malformed.
    #[error("mailbox address `{address}` has a bad host: {reason}")]
    BadHost {
        /// The whole input.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The part after `#` is not 64 hex digits.
    #[error(
        "mailbox address `{address}` has a bad fingerprint: expected 64 hex characters \
         (SHA-256 of the server certificate), got `{fingerprint}` ({len} characters)"
    )]
    BadFingerprint {
        /// The whole input.
        address: String,
        /// The text after `#`.
        fingerprint: String,
        /// Its length in characters.
        len: usize,
    },
}

impl FromStr for MailboxAddress {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let (hostport, fingerprint) = match s.split_once('#') {
            Some((hostport, fp)) => (hostport, Some(fp)),
            None => (s, None),
        };
        let mut endpoints = Vec::new();
        for one in hostport.split(',') {
            endpoints.push(parse_endpoint(s, one.trim())?);
        }
        let mut endpoints = endpoints.into_iter();
        let Some((host, port)) = endpoints.next() else {
            return Err(AddressError::Empty);
        };

        let fingerprint = match fingerprint {
            None => None,
            Some(fp) => Some(from_hex(fp).ok_or_else(|| AddressError::BadFingerprint {
                address: s.to_owned(),
                fingerprint: fp.to_owned(),
                len: fp.chars().count(),
            })?),
        };

        Ok(Self {
            host,
            port,
            fingerprint,
            also: endpoints.collect(),
        })
    }
}

/// One `host:port` of the address `s`.
fn parse_endpoint(s: &str, hostport: &str) -> Result<(String, u16), AddressError> {
    let bad_host = |reason: &str| AddressError::BadHost {
        address: s.to_owned(),
        reason: reason.to_owned(),
    };

    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| bad_host("`[` without a closing `]`"))?;
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(bad_host(&format!("`{inside}` is not an IPv6 address")));
        }
        let port = match after.strip_prefix(':') {
            Some(port) => port,
            None if after.is_empty() => return Err(AddressError::MissingPort(s.to_owned())),
            None => return Err(bad_host("unexpected text after `]`")),
        };
        (inside, port)
    } else {
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| AddressError::MissingPort(s.to_owned()))?;
        if host.contains(':') {
            if host.parse::<Ipv6Addr>().is_ok() {
                return Err(bad_host(
                    "an IPv6 address must be in brackets, e.g. [::1]:50000",
                ));
            }
            return Err(bad_host("contains `:`"));
        }
        (host, port)
    };

    if host.is_empty() {
        return Err(bad_host("it is empty"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '[' | ']' | '/' | '@'))
    {
        return Err(bad_host(
            "it contains whitespace or one of `[`, `]`, `/`, `@`",
        ));
    }

    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => {
            return Err(AddressError::BadPort {
                address: s.to_owned(),
                port: port.to_owned(),
            });
        }
    };

    Ok((host.to_owned(), port))
}

impl fmt::Display for MailboxAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (host, port)) in self.endpoints().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if host.contains(':') {
                write!(f, "[{host}]:{port}")?;
            } else {
                write!(f, "{host}:{port}")?;
            }
        }
        if let Some(fp) = &self.fingerprint {
            write!(f, "#{}", to_hex(fp))?;
        }
        Ok(())
    }
}

impl Serialize for MailboxAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MailboxAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AddressVisitor;
        impl Visitor<'_> for AddressVisitor {
            type Value = MailboxAddress;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a mailbox address such as \"127.0.0.1:50000\" or \"host:port#<64 hex>\"",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MailboxAddress, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(AddressVisitor)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn from_hex(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi << 4 | lo).ok()?;
    }
    Some(out)
}
