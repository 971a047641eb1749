//! The mailbox's `store` setting: which engine keeps envelopes and device keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where the mailbox keeps envelopes and device keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StoreSetting {
    /// `sled`: embedded in the data directory; nothing to install (the default).
    #[default]
    Sled,
    /// A comma-separated list of NATS URLs (`nats://127.0.0.1:4222,nats://127.0.0.1:4223`):
    /// a JetStream cluster, shared by every front-end configured with it.
    Nats(Vec<String>),
}

/// A `store` value that is neither `sled` nor a list of NATS URLs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a store: use `sled`, or a comma-separated list of NATS URLs \
     (nats://host:port, tls://host:port)"
)]
pub struct StoreSettingError(String);

impl FromStr for StoreSetting {
    type Err = StoreSettingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "sled" {
            return Ok(Self::Sled);
        }
        let urls: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() || !urls.iter().all(|u| is_nats_url(u)) {
            return Err(StoreSettingError(s.to_owned()));
        }
        Ok(Self::Nats(urls))
    }
}

/// `nats://host[:port]`, `tls://host[:port]` or `host:port` (a bare word is a typo, not a
/// server), with an optional `user:password@` or `token@`.
fn is_nats_url(url: &str) -> bool {
    let (rest, scheme) = match url.split_once("://") {
        Some(("nats" | "tls", rest)) => (rest, true),
        Some(_) => return false,
        None => (url, false),
    };
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let (host, port) = match host_port.rsplit_once(':') {
        // An IPv6 literal in brackets keeps its colons.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (host_port, None),
    };
    (scheme || port.is_some())
        && !host.is_empty()
        && !host.contains(['/', ' ', ','])
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

impl fmt::Display for StoreSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sled => f.write_str("sled"),
            Self::Nats(urls) => f.write_str(&urls.join(",")),
        }
    }
}

impl Serialize for StoreSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StoreSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sled_and_nats_lists_parse_and_render_back() {
        assert_eq!("sled".parse(), Ok(StoreSetting::Sled));
        let nats: StoreSetting = "nats://127.0.0.1:4222, tls://user:pw@[::1]:4223,nats-1:4222"
            .parse()
            .unwrap();
        assert_eq!(
            nats,
            StoreSetting::Nats(vec![
                "nats://127.0.0.1:4222".into(),
                "tls://user:pw@[::1]:4223".into(),
                "nats-1:4222".into()
            ])
        );
        assert_eq!(
            nats.to_string(),
            "nats://127.0.0.1:4222,tls://user:pw@[::1]:4223,nats-1:4222"
        );
        for bad in [
            "",
            "sqlite",
            "http://x:1",
            "nats://:4222",
            "nats://h:0",
            "nats://h:x",
        ] {
            assert!(bad.parse::<StoreSetting>().is_err(), "{bad:?}");
        }
    }
}
