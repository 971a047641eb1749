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
    saved
        .same_endpoint(target)
        .then_some(saved.fingerprint)
        .flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::core::service::memory_node;

    #[test]
    fn a_learnt_pin_holds_for_the_host_in_any_case() {
        let (node, _keys) = memory_node();
        let learnt: MailboxAddress = format!("Mail.Example.org:4433#{}", "ab".repeat(32))
            .parse()
            .unwrap();
        node.save_setting(&pin_setting(&learnt), &learnt.to_string())
            .unwrap();
        for asked in ["mail.example.org:4433", "MAIL.EXAMPLE.ORG:4433"] {
            let target: MailboxAddress = asked.parse().unwrap();
            assert_eq!(pinned(&node, &target), Some([0xab; 32]), "{asked}");
        }
        let other_port: MailboxAddress = "mail.example.org:4434".parse().unwrap();
        assert_eq!(pinned(&node, &other_port), None);
    }
}
