//! The sync engine's decisions, free of I/O.
//!
//! The engine takes [`Input`]s (a connection attempt ended, a step finished, the user sent
//! something, the mailbox pushed, a timer fired) and answers with the next [`Action`] for the
//! thin driver in [`crate::sync`] to carry out. It owns the connection state shown to the
//! user, the last error in words, the reconnect backoff (exponential, capped, jittered by an
//! injected RNG so tests are deterministic), and the sync policy the rounds follow: which
//! identities still need a login on this connection ([`Engine::to_log_in`]), which refusals
//! of a SEND are retried ([`send_verdict`]), which envelopes are acknowledged
//! ([`acknowledge`]), and when pulling stops ([`pull_again`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crypto::Fingerprint;
use mailbox::protocol::ErrorCode;
use rand::{Rng, RngExt as _};

/// Backoff after the first failure.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The longest backoff.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A connection (and hello) succeeded.
    Connected,
    /// A connection attempt failed, in words.
    ConnectFailed(String),
    /// The connection broke during a step, in words.
    Lost(String),
    /// Every identity is logged in.
    LoggedIn,
    /// The outbox is drained.
    OutboxDrained,
    /// Every identity's queue was pulled, stored and acknowledged.
    Pulled,
    /// The user sent something or added an identity.
    Wake,
    /// The mailbox pushed an arrival.
    Pushed,
    /// The timer of the last [`Action::Wait`] or [`Action::Backoff`] fired.
    Timer,
    /// The user changed the mailbox address.
    AddressChanged,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Connect to the mailbox (dropping any old connection).
    Connect,
    /// Log in every identity not yet logged in on this connection.
    Login,
    /// Send everything in the outbox.
    DrainOutbox,
    /// Pull every identity's queue until empty.
    Pull,
    /// Connected and idle: wait for a wake, a push, or this long.
    Wait(Duration),
    /// Disconnected: wait this long (or for a wake), then reconnect.
    Backoff(Duration),
}

/// The connection state shown to the user (the engine owns it; the node shows it).
pub use crate::core::service::ConnectionState as State;

/// What becomes of an envelope after a SEND.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendVerdict {
    /// The mailbox holds it (new, or a retry of one it holds): out of the outbox.
    Sent,
    /// Refused for now (a full queue, too fast, a hiccup, a lost login): it stays queued and
    /// the message says why. What else waits with it is `hold`'s: the recipient's envelopes
    /// (a full queue), the sender's (too fast), or the whole round (the connection's trouble).
    Later {
        /// Why, in words.
        words: String,
        /// Who is held back.
        hold: Hold,
    },
    /// Refused for good (too large, not admitted, malformed): out of the outbox, marked
    /// failed with the mailbox's words.
    Never(String),
}

/// Who a refusal for now holds back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hold {
    /// Envelopes to this recipient (their queue is full); the rest flows.
    Recipient,
    /// Envelopes from this sender (over its rate); the rest flows.
    Sender,
    /// Everything, until the next round (the mailbox or this connection is in trouble).
    All,
}

/// Classify a mailbox refusal of a SEND, in the node's words for its code (never the
/// mailbox's own, which is not trusted to write on the user's screen).
pub fn send_verdict(code: ErrorCode) -> SendVerdict {
    let message = code.meaning();
    let later = |hold| SendVerdict::Later {
        words: format!("not sent yet: {message}"),
        hold,
    };
    match code {
        ErrorCode::Quota => later(Hold::Recipient),
        ErrorCode::RateLimited => later(Hold::Sender),
        ErrorCode::Internal
        | ErrorCode::NotLoggedIn
        | ErrorCode::HelloFirst
        | ErrorCode::MailboxFull => later(Hold::All),
        _ => SendVerdict::Never(format!("the mailbox refused it: {message}")),
    }
}

/// A recipient or sender held back after a refusal, and until when.
#[derive(Clone, Copy, Debug)]
struct Held {
    until_ms: u64,
    refusals: u32,
}

/// What happened to one pulled envelope on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Its id is known here already (a retry or a replay): nothing to open.
    Known,
    /// Opened, verified and stored durably.
    Stored,
    /// Refused (did not open or verify, or bounds on strangers): dropped without a word.
    Refused,
    /// Could not be read or stored here (the local store failed): kept for later.
    Failed,
}

/// Whether the mailbox may delete an envelope: only once it is durably here, or will never
/// be (an ACK of a refused envelope tells the sender nothing: no decryption oracle).
pub fn acknowledge(received: Received) -> bool {
    match received {
        Received::Known | Received::Stored | Received::Refused => true,
        Received::Failed => false,
    }
}

/// Whether to pull again: more are queued and this batch made progress (a batch that could
/// not be stored would come back the same).
pub fn pull_again(more: bool, acknowledged: usize) -> bool {
    more && acknowledged > 0
}

/// The engine.
#[derive(Debug)]
pub struct Engine<R> {
    /// Identities logged in on the current connection.
    logged_in: HashSet<Fingerprint>,
    /// Recipients and senders held back after refusals for now, with their own backoff.
    held: HashMap<(Hold, Fingerprint), Held>,
    state: State,
    step: Option<Action>,
    failures: u32,
    last_error: Option<String>,
    last_sync_ms: Option<u64>,
    interval: Duration,
    rng: R,
}

impl<R: Rng> Engine<R> {
    /// A disconnected engine that pulls at least every `interval`; `rng` jitters backoff.
    pub fn new(interval: Duration, rng: R) -> Self {
        Self {
            logged_in: HashSet::new(),
            held: HashMap::new(),
            state: State::Connecting,
            step: None,
            failures: 0,
            last_error: None,
            last_sync_ms: None,
            interval,
            rng,
        }
    }

    /// The first action.
    pub fn start(&mut self) -> Action {
        self.go(Action::Connect)
    }

    /// The connection state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The last error in words, until a sync succeeds.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the last full sync ended, ms since the epoch.
    pub fn last_sync_ms(&self) -> Option<u64> {
        self.last_sync_ms
    }

    /// Of `identities`, those not logged in on this connection yet.
    pub fn to_log_in<T: Clone>(&self, identities: &[(T, Fingerprint)]) -> Vec<(T, Fingerprint)> {
        identities
            .iter()
            .filter(|(_, fp)| !self.logged_in.contains(fp))
            .cloned()
            .collect()
    }

    /// Whether `fingerprint` is logged in on this connection.
    pub fn is_logged_in(&self, fingerprint: Fingerprint) -> bool {
        self.logged_in.contains(&fingerprint)
    }

    /// `fingerprint` is logged in on this connection.
    pub fn logged_in(&mut self, fingerprint: Fingerprint) {
        self.logged_in.insert(fingerprint);
    }

    /// Whether an envelope from `sender` to `recipient` may be sent at `now_ms`: neither is
    /// held back.
    pub fn may_send(&self, sender: Fingerprint, recipient: Fingerprint, now_ms: u64) -> bool {
        [(Hold::Sender, sender), (Hold::Recipient, recipient)]
            .iter()
            .all(|key| self.held.get(key).is_none_or(|h| h.until_ms <= now_ms))
    }

    /// A SEND from `sender` to `recipient` was refused for now at `now_ms`: hold back whom
    /// `hold` names, for a backoff of their own that grows with each refusal in a row.
    pub fn refused(
        &mut self,
        hold: Hold,
        sender: Fingerprint,
        recipient: Fingerprint,
        now_ms: u64,
    ) {
        let who = match hold {
            Hold::Recipient => recipient,
            Hold::Sender => sender,
            Hold::All => return,
        };
        let refusals = self.held.get(&(hold, who)).map_or(0, |h| h.refusals) + 1;
        let wait = self.backoff_for(refusals);
        let until_ms = now_ms.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        self.held.insert((hold, who), Held { until_ms, refusals });
    }

    /// A SEND from `sender` to `recipient` went through: neither is held back any more.
    pub fn sent(&mut self, sender: Fingerprint, recipient: Fingerprint) {
        self.held.remove(&(Hold::Sender, sender));
        self.held.remove(&(Hold::Recipient, recipient));
    }

    /// How long until the first hold ends, if anyone is held.
    fn next_release(&self, now_ms: u64) -> Option<Duration> {
        self.held
            .values()
            .filter(|h| h.until_ms > now_ms)
            .map(|h| Duration::from_millis(h.until_ms - now_ms))
            .min()
    }

    fn go(&mut self, action: Action) -> Action {
        if action == Action::Connect {
            // A new connection: every identity logs in again.
            self.logged_in.clear();
        }
        self.step = Some(action.clone());
        action
    }

    fn backoff(&mut self) -> Duration {
        self.backoff_for(self.failures)
    }

    /// The jittered backoff after `failures` in a row (from 1).
    fn backoff_for(&mut self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        let base = BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_CAP);
        base.mul_f64(self.rng.random_range(0.5..1.5))
            .min(BACKOFF_CAP)
    }

    fn fail(&mut self, error: String) -> Action {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
        self.state = State::Offline;
        let wait = self.backoff();
        self.go(Action::Backoff(wait))
    }

    /// Take an input at `now_ms` (ms since the epoch) and say what to do next.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Action {
        match (input, self.step.clone()) {
            (Input::AddressChanged, _) => {
                self.failures = 0;
                self.state = State::Connecting;
                self.go(Action::Connect)
            }
            (Input::Connected, Some(Action::Connect)) => {
                self.state = State::Online;
                self.go(Action::Login)
            }
            (Input::ConnectFailed(e), _) | (Input::Lost(e), _) => self.fail(e),
            (Input::LoggedIn, Some(Action::Login)) => self.go(Action::DrainOutbox),
            (Input::OutboxDrained, Some(Action::DrainOutbox)) => self.go(Action::Pull),
            (Input::Pulled, Some(Action::Pull)) => {
                self.failures = 0;
                self.last_error = None;
                self.last_sync_ms = Some(now_ms);
                // A held recipient or sender is retried when its backoff ends.
                let wait = self
                    .next_release(now_ms)
                    .map_or(self.interval, |d| d.max(BACKOFF_BASE).min(self.interval));
                self.go(Action::Wait(wait))
            }
            // Idle and connected: a push needs only a pull; anything else a full round
            // (new identities log in, the outbox drains, queues are pulled).
            (Input::Pushed, Some(Action::Wait(_))) => self.go(Action::Pull),
            (Input::Wake | Input::Timer, Some(Action::Wait(_))) => self.go(Action::Login),
            (Input::Wake | Input::Timer, Some(Action::Backoff(_))) => {
                self.state = State::Connecting;
                self.go(Action::Connect)
            }
            // An input that does not fit the step (a stale timer, say): carry on.
            (_, Some(step)) => step,
            (_, None) => self.start(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn engine() -> Engine<StdRng> {
        Engine::new(Duration::from_secs(30), StdRng::seed_from_u64(1))
    }

    #[test]
    fn logins_are_per_connection() {
        let mut e = engine();
        let ids = [
            ("alice", Fingerprint([1; 32])),
            ("bob", Fingerprint([2; 32])),
        ];
        e.start();
        e.handle(Input::Connected, 0);
        assert_eq!(e.to_log_in(&ids), ids);
        e.logged_in(Fingerprint([1; 32]));
        assert_eq!(e.to_log_in(&ids), [ids[1]]);
        e.logged_in(Fingerprint([2; 32]));
        assert!(e.to_log_in(&ids).is_empty());
        // The connection breaks: the next one logs everybody in again.
        assert!(matches!(
            e.handle(Input::Lost("gone".into()), 0),
            Action::Backoff(_)
        ));
        assert_eq!(e.handle(Input::Timer, 0), Action::Connect);
        assert_eq!(e.to_log_in(&ids), ids);
    }

    #[test]
    fn refusals_are_retried_only_when_they_can_pass_later() {
        let later = [
            (ErrorCode::Quota, Hold::Recipient),
            (ErrorCode::RateLimited, Hold::Sender),
            (ErrorCode::Internal, Hold::All),
            (ErrorCode::NotLoggedIn, Hold::All),
            (ErrorCode::HelloFirst, Hold::All),
            (ErrorCode::MailboxFull, Hold::All),
        ];
        for (code, hold) in later {
            assert_eq!(
                send_verdict(code),
                SendVerdict::Later {
                    words: format!("not sent yet: {}", code.meaning()),
                    hold
                },
                "{code:?}"
            );
        }
        let never = [
            ErrorCode::TooLarge,
            ErrorCode::NotAllowed,
            ErrorCode::BadEnvelope,
            ErrorCode::Malformed,
        ];
        for code in never {
            assert_eq!(
                send_verdict(code),
                SendVerdict::Never(format!("the mailbox refused it: {}", code.meaning())),
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_refusal_holds_back_only_whom_it_concerns_for_a_growing_backoff() {
        let mut e = engine();
        let (alice, bob, carol) = (
            Fingerprint([1; 32]),
            Fingerprint([2; 32]),
            Fingerprint([3; 32]),
        );
        e.start();
        e.handle(Input::Connected, 0);
        e.refused(Hold::Recipient, alice, bob, 1_000);
        assert!(!e.may_send(alice, bob, 1_000), "bob's queue is full");
        assert!(e.may_send(alice, carol, 1_000), "carol's is not");
        // The round ends with a wait no longer than bob's backoff.
        e.handle(Input::LoggedIn, 1_000);
        e.handle(Input::OutboxDrained, 1_000);
        let Action::Wait(wait) = e.handle(Input::Pulled, 1_000) else {
            panic!("not waiting");
        };
        assert!(wait <= BACKOFF_BASE * 3 / 2, "{wait:?}");
        let first = 1_000 + u64::try_from(wait.as_millis()).unwrap();
        assert!(e.may_send(alice, bob, first + 1_000));
        // Refused again: a longer backoff.
        e.refused(Hold::Recipient, alice, bob, first);
        assert!(!e.may_send(alice, bob, first + 400));
        e.sent(alice, bob);
        assert!(e.may_send(alice, bob, first), "a success ends the hold");
        // Too fast: the sender waits, whoever the recipient.
        e.refused(Hold::Sender, alice, bob, 0);
        assert!(!e.may_send(alice, carol, 0));
        assert!(e.may_send(carol, bob, 0));
    }

    #[test]
    fn only_what_is_here_or_refused_is_acknowledged_and_pulling_stops_without_progress() {
        assert!(acknowledge(Received::Known));
        assert!(acknowledge(Received::Stored));
        assert!(acknowledge(Received::Refused));
        assert!(!acknowledge(Received::Failed));
        assert!(pull_again(true, 3));
        assert!(!pull_again(true, 0), "the same batch would come back");
        assert!(!pull_again(false, 3));
    }

    #[test]
    fn a_full_round_then_idle() {
        let mut e = engine();
        assert_eq!(e.start(), Action::Connect);
        assert_eq!(e.state(), State::Connecting);
        assert_eq!(e.handle(Input::Connected, 0), Action::Login);
        assert_eq!(e.state(), State::Online);
        assert_eq!(e.handle(Input::LoggedIn, 0), Action::DrainOutbox);
        assert_eq!(e.handle(Input::OutboxDrained, 0), Action::Pull);
        assert_eq!(
            e.handle(Input::Pulled, 42),
            Action::Wait(Duration::from_secs(30))
        );
        assert_eq!(e.last_sync_ms(), Some(42));
        // A push: pull only. A wake (user sent): the whole round.
        assert_eq!(e.handle(Input::Pushed, 0), Action::Pull);
        assert_eq!(
            e.handle(Input::Pulled, 43),
            Action::Wait(Duration::from_secs(30))
        );
        assert_eq!(e.handle(Input::Wake, 0), Action::Login);
    }

    #[test]
    fn failures_back_off_exponentially_capped_and_jittered_then_recover() {
        let mut e = engine();
        e.start();
        let mut waits = Vec::new();
        for i in 0..10 {
            match e.handle(Input::ConnectFailed(format!("refused {i}")), 0) {
                Action::Backoff(d) => waits.push(d),
                other => panic!("{other:?}"),
            }
            assert_eq!(e.state(), State::Offline);
            assert_eq!(e.handle(Input::Timer, 0), Action::Connect);
        }
        for (i, w) in waits.iter().enumerate() {
            let base = BACKOFF_BASE.saturating_mul(1 << i.min(16)).min(BACKOFF_CAP);
            assert!(
                *w >= base.mul_f64(0.5) && *w <= base.mul_f64(1.5).min(BACKOFF_CAP),
                "wait {i}: {w:?}"
            );
        }
        assert!(waits.iter().all(|w| *w <= BACKOFF_CAP));
        assert_eq!(e.last_error(), Some("refused 9"));
        // Recovery clears the error and the backoff.
        assert_eq!(e.handle(Input::Connected, 0), Action::Login);
        e.handle(Input::LoggedIn, 0);
        e.handle(Input::OutboxDrained, 0);
        e.handle(Input::Pulled, 1);
        assert_eq!(e.last_error(), None);
        match e.handle(Input::Lost("gone".into()), 0) {
            Action::Backoff(d) => assert!(d <= BACKOFF_BASE.mul_f64(1.5)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lost_connection_mid_round_backs_off_and_a_wake_reconnects_at_once() {
        let mut e = engine();
        e.start();
        e.handle(Input::Connected, 0);
        assert!(matches!(
            e.handle(Input::Lost("reset".into()), 0),
            Action::Backoff(_)
        ));
        assert_eq!(e.state(), State::Offline);
        assert_eq!(e.handle(Input::Wake, 0), Action::Connect);
        assert_eq!(e.state(), State::Connecting);
    }

    #[test]
    fn stale_inputs_do_not_derail_a_step() {
        let mut e = engine();
        e.start();
        e.handle(Input::Connected, 0);
        assert_eq!(e.handle(Input::Timer, 0), Action::Login);
        assert_eq!(e.handle(Input::Pushed, 0), Action::Login);
        assert_eq!(e.handle(Input::LoggedIn, 0), Action::DrainOutbox);
    }

    #[test]
    fn an_address_change_reconnects_now() {
        let mut e = engine();
        e.start();
        e.handle(Input::ConnectFailed("x".into()), 0);
        assert_eq!(e.handle(Input::AddressChanged, 0), Action::Connect);
        assert_eq!(e.state(), State::Connecting);
    }
}
