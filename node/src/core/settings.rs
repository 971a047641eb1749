//! The node's settings, typed, with one owner: the [`Node`]. The mailbox address in use is
//! kept here (saved, and followed by the sync driver through [`Node::follow_mailbox`]), as is
//! whether notifications show message previews. The HTTP layer and the sync driver read and
//! change settings only through these methods.

use config::MailboxAddress;
use tokio::sync::watch;
use tracing::info;

use super::error::NodeError;
use super::service::Node;

/// The setting holding a mailbox address saved from the UI or API.
pub const MAILBOX: &str = "mailbox";
/// The setting saying whether notifications show a message's first line.
pub const PREVIEWS: &str = "notification_previews";
/// The key of the page's colour theme.
pub const THEME: &str = "theme";

/// The page's colour theme: the system's, or light or dark whatever the system says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// As the system (the browser) prefers.
    #[default]
    System,
    /// Light.
    Light,
    /// Dark.
    Dark,
}

impl Theme {
    /// Its name, as stored and as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }

    /// The theme named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "system" => Some(Self::System),
            "light" => Some(Self::Light),
            "dark" => Some(Self::Dark),
            _ => None,
        }
    }
}

/// The mailbox setting's live value: what is in use now, for whoever follows it.
#[derive(Debug)]
pub struct MailboxSetting(watch::Sender<MailboxAddress>);

impl Default for MailboxSetting {
    fn default() -> Self {
        Self(watch::Sender::new(config::NodeConfig::default().mailbox))
    }
}

impl Node {
    /// Choose the mailbox for this run: the one saved from the UI or API, unless `given` was
    /// given for this run explicitly (`overridden`), or nothing was saved.
    pub fn start_mailbox(&self, given: &MailboxAddress, overridden: bool) -> Result<(), NodeError> {
        let saved: Option<MailboxAddress> = self.setting(MAILBOX)?.and_then(|s| s.parse().ok());
        let address = match saved {
            Some(saved) if overridden => {
                info!(saved = %saved, using = %given, "the mailbox given at start overrides the saved setting for this run");
                given.clone()
            }
            Some(saved) => saved,
            None => given.clone(),
        };
        self.mailbox_setting().0.send_replace(address);
        Ok(())
    }

    /// The mailbox address in use.
    pub fn mailbox(&self) -> MailboxAddress {
        self.mailbox_setting().0.borrow().clone()
    }

    /// The mailbox address in use with the certificate pin in force for it (given, or
    /// learnt on first use): what invites and the settings show.
    pub fn mailbox_in_use(&self) -> MailboxAddress {
        let mut address = self.mailbox();
        address.fingerprint = crate::sync::pins::pinned(self, &address);
        address
    }

    /// The mailbox address in use, and every change to it.
    pub fn follow_mailbox(&self) -> watch::Receiver<MailboxAddress> {
        self.mailbox_setting().0.subscribe()
    }

    /// Use `address` from now on, and keep it for the next start. Blocking.
    pub fn set_mailbox(&self, address: MailboxAddress) -> Result<(), NodeError> {
        self.save_setting(MAILBOX, &address.to_string())?;
        self.mailbox_setting().0.send_if_modified(|current| {
            let changed = current.to_string() != address.to_string();
            if changed {
                *current = address;
            }
            changed
        });
        Ok(())
    }

    /// Whether notifications show a message's first line (on unless turned off).
    pub fn previews(&self) -> bool {
        self.setting(PREVIEWS).ok().flatten().as_deref() != Some("false")
    }

    /// Turn message previews in notifications on or off. Blocking.
    pub fn set_previews(&self, on: bool) -> Result<(), NodeError> {
        self.save_setting(PREVIEWS, if on { "true" } else { "false" })
    }

    /// The page's colour theme (the system's unless chosen).
    pub fn theme(&self) -> Theme {
        self.setting(THEME)
            .ok()
            .flatten()
            .and_then(|name| Theme::from_name(&name))
            .unwrap_or_default()
    }

    /// Choose the page's colour theme. Blocking.
    pub fn set_theme(&self, theme: Theme) -> Result<(), NodeError> {
        self.save_setting(THEME, theme.as_str())
    }
}
