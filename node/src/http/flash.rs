//! What a refused form leaves for the page it redirects to: the error and what was typed.
//!
//! A form that fails does not answer with a page of its own (that would leave its POST URL
//! in the address bar, and a reload would post again): it redirects (303) to the page with
//! `flash=<id>`, and the page takes the flash, once. The store is small and short-lived:
//! at most [`MAX_FLASHES`], each for [`FLASH_TTL`]; the oldest goes first.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many flashes wait at most (one user, one page: a few suffice).
pub const MAX_FLASHES: usize = 32;
/// How long a flash waits for its page.
pub const FLASH_TTL: Duration = Duration::from_secs(600);

/// What a refused form leaves behind.
#[derive(Clone, Debug, Default)]
pub struct Flash {
    /// The error, in words, shown at the top of the page.
    pub error: Option<String>,
    /// The compose box's text.
    pub draft: String,
    /// The other forms' text.
    pub kept: ui::Kept,
    /// The settings dialog: the address typed, why it was refused, a test's result, and
    /// the confirmation of a save.
    pub typed_mailbox: Option<String>,
    /// Why the typed address was refused.
    pub mailbox_error: Option<String>,
    /// A connection test's result.
    pub test_result: Option<String>,
    /// A save's confirmation.
    pub saved: Option<String>,
}

/// The waiting flashes.
#[derive(Debug, Default)]
pub struct Flashes {
    waiting: Mutex<VecDeque<(String, Instant, Flash)>>,
}

impl Flashes {
    /// Keep `flash`; returns its id.
    pub fn put(&self, flash: Flash) -> String {
        let id = super::auth::random_hex(8);
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        waiting.retain(|(_, at, _)| now.duration_since(*at) < FLASH_TTL);
        while waiting.len() >= MAX_FLASHES {
            waiting.pop_front();
        }
        waiting.push_back((id.clone(), now, flash));
        id
    }

    /// Take the flash `id`, if it still waits.
    pub fn take(&self, id: &str) -> Option<Flash> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let at = waiting.iter().position(|(i, _, _)| i == id)?;
        let (_, when, flash) = waiting.remove(at)?;
        (when.elapsed() < FLASH_TTL).then_some(flash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_is_taken_once_and_the_store_is_bounded() {
        let flashes = Flashes::default();
        let id = flashes.put(Flash {
            error: Some("no".into()),
            ..Flash::default()
        });
        assert_eq!(
            flashes.take(&id).and_then(|f| f.error).as_deref(),
            Some("no")
        );
        assert!(flashes.take(&id).is_none(), "taken once");
        let first = flashes.put(Flash::default());
        for _ in 0..MAX_FLASHES {
            flashes.put(Flash::default());
        }
        assert!(flashes.take(&first).is_none(), "the oldest went first");
        let waiting = flashes.waiting.lock().expect("lock").len();
        assert_eq!(waiting, MAX_FLASHES);
    }
}
