//! Certificate pins: the one an address names (`#fingerprint`), or one learnt on first use
//! and kept per host:port, so moving to another mailbox and back does not trust the first
//! one anew.

use config::MailboxAddress;

use crate::core::service::Node;

/// The settings holding learnt (trust-on-first-use) certificate pins: one per host:port, so
/// moving to another mailbox and back does not trust the first one anew.
pub const PIN_SETTING: &str = "mailbox_pin";

pub fn pin_setting(target: &MailboxAddress) -> String {
    format!(
        "{PIN_SETTING}/{}:{}",
        target.host.to_ascii_lowercase(),
        target.port
    )
}

/// The pin to use for `target`: its own `#fingerprint`, or one learnt earlier for this
/// host:port.
pub fn pinned(node: &Node, target: &MailboxAddress) -> Option<[u8; 32]> {
    if target.fingerprint.is_some() {
        return target.fingerprint;
    }
    let saved: MailboxAddress = node
        .setting(&pin_setting(target))
        .ok()
        .flatten()
        .or_else(|| node.setting(PIN_SETTING).ok().flatten())?
        .parse()
        .ok()?;
    (saved.host == target.host && saved.port == target.port)
        .then_some(saved.fingerprint)
        .flatten()
}
