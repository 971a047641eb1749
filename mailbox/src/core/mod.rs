//! The mailbox's decisions, free of I/O: [`Mailbox`] is the endpoint role (in quinn-proto's
//! sense) over a [`QueueStore`].
//!
//! It owns admission (connections per address), membership (the allowlist: who may be a
//! recipient, PULL and ACK; anyone may log in to SEND to a member), login per connection id,
//! rate limits and quotas, the SEND/PULL/ACK rules, the mapping of store outcomes to
//! answers, and the push registry. It reads no clock, draws no randomness, spawns nothing
//! and touches no socket or file: the time (`now_ms`, milliseconds since the Unix epoch)
//! and each connection's challenge come in as arguments, and the store is the only thing it
//! waits on (its futures need no particular runtime: [`crate::store::MemoryQueue`]'s are
//! ready at once).
//!
//! # Calls, in order
//!
//! - [`Mailbox::handle_incoming`] when a connection attempt arrives: admits it (giving it a
//!   [`ConnId`]) or refuses it;
//! - [`Mailbox::handle_established`] once its handshake is done, with its login challenge
//!   and TLS exporter value;
//! - [`Mailbox::admit_request`] when a request stream opens (a refusal is written back
//!   unread), then [`Mailbox::handle_request`] with the stream's bytes, answered with the
//!   [`Response`] to write back; then [`Mailbox::poll_push`] until it returns `None`, and
//!   push each [`Event`] to its connection;
//! - [`Mailbox::handle_closed`] when the connection ends (or its handshake failed);
//! - [`Mailbox::expire`] on a timer, for retention; [`Mailbox::stop`] before shutting down.
//!
//! What the mailbox counts goes to an [`Observer`] (the Prometheus metrics, in the server).
//! The QUIC driver around it is [`crate::server`]; the client's side of a connection is
//! [`ClientSession`].

mod client;
mod connections;
mod keys;
mod policy;
mod session;
#[cfg(test)]
mod tests;

pub use client::{ClientSession, SessionError};
pub use connections::Admission;
pub use policy::{Observer, Policy, PolicyError, Tally};
pub use session::{LoginContext, ServerSession};

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crypto::{Fingerprint, MessageId};

use crate::limits::RateLimiter;
use crate::protocol::{
    self, CHALLENGE_LEN, ErrorCode, Event, MAX_BATCH_BYTES, MAX_BATCH_COUNT, Request, Response,
};
use crate::store::{Incoming, KeyStore, MemoryKeys, Origin, QueueStore, StoreError, Stored};

/// The most message ids one ACK may name.
pub const MAX_ACK_IDS: usize = 1024;

/// One connection, as the core names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// The bytes a driver read from one request stream.
#[derive(Clone, Copy, Debug)]
pub enum Received<'a> {
    /// The whole stream.
    Frame(&'a [u8]),
    /// The stream went past [`Policy::request_limit`]; the rest was not read.
    TooLong,
}

/// The key per-address limits count under: an IPv4 address, or an IPv6 /64 (one site's
/// prefix, which a client can otherwise rotate through freely).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Check a SEND: the envelope's clear header must name the same recipient and id.
pub fn check_send(
    recipient: &Fingerprint,
    id: &MessageId,
    envelope: &[u8],
) -> Result<crypto::EnvelopeHeader, Response> {
    let header = crypto::EnvelopeHeader::parse(envelope)
        .map_err(|e| Response::error(ErrorCode::BadEnvelope, e.to_string()))?;
    if header.recipient != *recipient || header.id != *id {
        return Err(Response::error(
            ErrorCode::BadEnvelope,
            "the envelope's header does not match the SEND's recipient and id",
        ));
    }
    Ok(header)
}

/// The mailbox: every decision, no I/O. Shared by all connection tasks (`&self`); its state
/// sits behind one lock that is never held while a store works. `S` keeps the envelope
/// queues, `K` the device keys (in memory unless [`Mailbox::with_keys`] gives another).
#[derive(Debug)]
pub struct Mailbox<S, O = (), K = MemoryKeys> {
    store: S,
    keys: K,
    policy: Policy,
    observer: O,
    decoy: crypto::PublicKey,
    state: Mutex<State>,
    stopping: AtomicBool,
    /// Free bytes on the store's disk, as the driver last measured (none yet: unknown).
    disk_free: std::sync::atomic::AtomicU64,
    /// Whether SENDs are being refused as the mailbox is full (to log the change once).
    full: AtomicBool,
}

#[derive(Debug)]
struct State {
    next_conn: u64,
    conns: HashMap<ConnId, Conn>,
    /// Established connections per address key.
    per_address: HashMap<IpAddr, usize>,
    /// Handshakes in progress per address key, of peers QUIC has not validated.
    handshakes: HashMap<IpAddr, usize>,
    /// Handshakes in progress per address key, of validated peers (they answered a Retry).
    validated_handshakes: HashMap<IpAddr, usize>,
    senders: RateLimiter<Fingerprint>,
    addresses: RateLimiter<IpAddr>,
    /// Key publications per owner.
    publishers: RateLimiter<Fingerprint>,
    /// One-time keys taken per claimer, and per owner: past either, claims get the
    /// fallback key.
    claimers: RateLimiter<Fingerprint>,
    claimed: RateLimiter<Fingerprint>,
    /// The connections each identity is logged in on: the push registry.
    listeners: HashMap<Fingerprint, Vec<ConnId>>,
    /// Pushes waiting, per connection: one flag per identity logged in on it, however many
    /// envelopes arrive for it meanwhile (so what waits is bounded by the logins).
    pending: HashMap<ConnId, VecDeque<Fingerprint>>,
    /// Connections whose pushes went from none to some, for the driver to wake.
    ready: VecDeque<ConnId>,
    /// Identities pushed to on a connection that has not pulled their queue since: their
    /// arrivals push nothing more there until it does (one PULL fetches them all). At most
    /// one entry per login.
    quiet: HashSet<(ConnId, Fingerprint)>,
}

#[derive(Debug)]
struct Conn {
    /// The key its address counts under ([`address_key`]).
    address: IpAddr,
    /// Set once the handshake is done (the connection then counts as established).
    session: Option<ServerSession>,
    /// Whether QUIC validated its address before the handshake (it answered a Retry).
    validated: bool,
}

impl<S: QueueStore, O: Observer> Mailbox<S, O> {
    /// A mailbox over `store` with `policy`, keeping device keys in memory. `decoy` stands
    /// in for unparseable keys at login so that every refused login costs the same.
    pub fn new(store: S, policy: Policy, decoy: crypto::PublicKey, observer: O) -> Self {
        let state = State {
            next_conn: 0,
            conns: HashMap::new(),
            per_address: HashMap::new(),
            handshakes: HashMap::new(),
            validated_handshakes: HashMap::new(),
            senders: RateLimiter::new(policy.rate.0, policy.rate.1),
            addresses: RateLimiter::new(policy.address_rate.0, policy.address_rate.1),
            publishers: per_hour(policy.key_publishes_per_hour),
            claimers: per_hour(policy.key_claims_per_hour),
            claimed: per_hour(policy.key_claims_per_hour),
            listeners: HashMap::new(),
            pending: HashMap::new(),
            ready: VecDeque::new(),
            quiet: HashSet::new(),
        };
        Self {
            store,
            keys: MemoryKeys::default(),
            policy,
            observer,
            decoy,
            state: Mutex::new(state),
            stopping: AtomicBool::new(false),
            disk_free: std::sync::atomic::AtomicU64::new(u64::MAX),
            full: AtomicBool::new(false),
        }
    }

    /// The same mailbox keeping device keys in `keys`.
    pub fn with_keys<K: KeyStore>(self, keys: K) -> Mailbox<S, O, K> {
        Mailbox {
            store: self.store,
            keys,
            policy: self.policy,
            observer: self.observer,
            decoy: self.decoy,
            state: self.state,
            stopping: self.stopping,
            disk_free: self.disk_free,
            full: self.full,
        }
    }
}

/// A limiter of `n` an hour, `n` at once.
fn per_hour(n: f64) -> RateLimiter<Fingerprint> {
    RateLimiter::new(n / 3600.0, n)
}

impl<S: QueueStore, O: Observer, K: KeyStore> Mailbox<S, O, K> {
    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is left consistent at every unlock (no code under the lock panics on
        // input), so a poisoned lock's data is still good.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `fingerprint` is a member: may be a recipient here, and PULL and ACK. With
    /// no allowlist everyone is; anyone may log in to SEND to a member, like mail servers.
    fn member(&self, fingerprint: &Fingerprint) -> bool {
        self.policy.allowlist.is_empty() || self.policy.allowlist.contains(fingerprint)
    }

    /// Refuse `who` unless a member (`what` says what they asked for).
    fn require_member(&self, who: &Fingerprint, what: &str) -> Result<(), Response> {
        if self.member(who) {
            return Ok(());
        }
        Err(Response::error(
            ErrorCode::NotAllowed,
            format!("{what}: {who} is not a member of this mailbox"),
        ))
    }

    /// Answer one request stream of `conn` at `now_ms` (admitted by [`Self::admit_request`]).
    pub async fn handle_request(
        &self,
        conn: ConnId,
        now_ms: u64,
        received: Received<'_>,
    ) -> Response {
        let response = self.answer(conn, now_ms, received).await;
        if let Response::Error { code, .. } = &response {
            self.observer.observe(Tally::Refused(*code));
        }
        response
    }

    /// A request stream opened on `conn` at `now_ms`: may it be read? Checked before the
    /// driver reads anything, so an address over its request rate costs no buffering. A
    /// refusal is the answer to write back (and is counted).
    pub fn admit_request(&self, conn: ConnId, now_ms: u64) -> Result<(), Response> {
        let allowed = {
            let mut state = self.state();
            match state.conns.get(&conn).map(|c| c.address) {
                Some(address) => state.addresses.allow(&address, now_ms),
                // Not a connection of ours: `handle_request` answers that.
                None => true,
            }
        };
        if allowed {
            return Ok(());
        }
        self.observer
            .observe(Tally::Refused(ErrorCode::RateLimited));
        Err(Response::error(
            ErrorCode::RateLimited,
            "too many requests from this address; slow down",
        ))
    }

    async fn answer(&self, conn: ConnId, now_ms: u64, received: Received<'_>) -> Response {
        let bytes = match received {
            Received::Frame(bytes) => bytes,
            Received::TooLong => {
                return Response::error(
                    ErrorCode::TooLarge,
                    format!("requests are at most {} bytes", self.policy.request_limit()),
                );
            }
        };
        if self.is_stopping() {
            return Response::error(
                ErrorCode::Internal,
                "the mailbox is shutting down; retry shortly",
            );
        }
        let request = match protocol::decode_request(bytes) {
            Ok(request) => request,
            Err(e) => return e.response(),
        };
        match request {
            Request::Hello { versions } => self.with_session(conn, |s| Ok(s.hello(&versions))),
            Request::Login {
                public_key,
                signature,
            } => self.login(conn, &public_key, &signature),
            Request::Send {
                sender,
                recipient,
                id,
                envelope,
            } => {
                self.send(conn, now_ms, sender, recipient, id, envelope)
                    .await
            }
            Request::Pull {
                recipient,
                max_count,
            } => self.pull(conn, recipient, max_count).await,
            Request::Ack { recipient, ids } => self.ack(conn, recipient, ids).await,
            Request::PublishKeys {
                owner_key,
                certificate,
                one_time,
                fallback,
            } => {
                self.publish_keys(conn, now_ms, &owner_key, certificate, one_time, fallback)
                    .await
            }
            Request::ClaimKey { claimer, owner } => {
                self.claim_key(conn, now_ms, claimer, owner).await
            }
        }
        .unwrap_or_else(|refusal| refusal)
    }

    /// Run `f` on `conn`'s session (refusing a connection whose handshake is not done).
    fn with_session<T>(
        &self,
        conn: ConnId,
        f: impl FnOnce(&mut ServerSession) -> Result<T, Response>,
    ) -> Result<T, Response> {
        let mut state = self.state();
        match state.conns.get_mut(&conn).and_then(|c| c.session.as_mut()) {
            Some(session) => f(session),
            None => Err(Response::error(
                ErrorCode::HelloFirst,
                "the first request on a connection must be hello",
            )),
        }
    }

    fn login(
        &self,
        conn: ConnId,
        public_key: &[u8],
        signature: &[u8],
    ) -> Result<Response, Response> {
        let context = self.with_session(conn, |s| s.login_context())?;
        // The signature check (a public-key operation) runs without the lock.
        let fingerprint = context.verify(public_key, signature, &self.decoy)?;
        if self.register_login(conn, fingerprint)? {
            self.observer.observe(Tally::LoggedIn);
        }
        Ok(Response::LoggedIn { fingerprint })
    }

    /// Log `fingerprint` in on `conn`: whether it is a new login (not one on it already).
    fn register_login(&self, conn: ConnId, fingerprint: Fingerprint) -> Result<bool, Response> {
        let mut state = self.state();
        if state.conns.get(&conn).is_none_or(|c| c.session.is_none()) {
            return Err(Response::error(ErrorCode::Internal, "unknown connection"));
        }
        let max = self.policy.max_logins_per_identity;
        let listeners = state.listeners.entry(fingerprint).or_default();
        if listeners.contains(&conn) {
            return Ok(false);
        }
        // Each connection an identity is logged in on is pushed every arrival.
        if listeners.len() >= max {
            drop(state);
            self.observer
                .observe(Tally::Refused(ErrorCode::RateLimited));
            return Err(Response::error(
                ErrorCode::RateLimited,
                format!("this identity is logged in on {max} connections already; close one first"),
            ));
        }
        listeners.push(conn);
        if let Some(session) = state.conns.get_mut(&conn).and_then(|c| c.session.as_mut()) {
            session.logged_in(fingerprint);
        }
        Ok(true)
    }

    async fn send(
        &self,
        conn: ConnId,
        now_ms: u64,
        sender: Fingerprint,
        recipient: Fingerprint,
        id: MessageId,
        envelope: Vec<u8>,
    ) -> Result<Response, Response> {
        self.with_session(conn, |s| s.require_login(&sender))?;
        // Only a member may be a recipient: nothing is stored for anyone else.
        self.require_member(&recipient, "the recipient")?;
        if envelope.len() > self.policy.max_envelope_bytes {
            return Err(Response::error(
                ErrorCode::TooLarge,
                format!(
                    "envelope of {} bytes exceeds this mailbox's limit of {} bytes",
                    envelope.len(),
                    self.policy.max_envelope_bytes
                ),
            ));
        }
        check_send(&recipient, &id, &envelope)?;
        if let Some(reason) = self.full(envelope.len()) {
            return Err(Response::error(ErrorCode::MailboxFull, reason));
        }
        if !self.state().senders.allow(&sender, now_ms) {
            return Err(Response::error(
                ErrorCode::RateLimited,
                "this identity is sending too fast; retry in a moment",
            ));
        }
        let origin = match self.state().conns.get(&conn) {
            Some(c) => Origin::from(c.address),
            None => Origin::UNKNOWN,
        };
        let incoming = Incoming {
            recipient,
            id,
            origin,
            envelope,
            now_ms,
        };
        match self.store.store(incoming, self.policy.quota).await {
            Ok(Stored::New) => {
                self.observer.observe(Tally::Stored);
                self.arrived(recipient);
                Ok(Response::Stored {
                    id,
                    duplicate: false,
                })
            }
            Ok(Stored::Duplicate) => Ok(Response::Stored {
                id,
                duplicate: true,
            }),
            Ok(Stored::OverQuota) => Err(Response::error(
                ErrorCode::Quota,
                "the recipient's mailbox is full; try again after they catch up",
            )),
            Ok(Stored::OriginFull) => {
                tracing::warn!("a sending address has as much queued as it may");
                Err(Response::error(
                    ErrorCode::MailboxFull,
                    "your address has as much queued here as it may; try again later",
                ))
            }
            Err(StoreError::Full(why)) => {
                tracing::warn!(reason = %why, "the store is full: a SEND is refused");
                Err(Response::error(
                    ErrorCode::MailboxFull,
                    "the mailbox's store is full; try again later",
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "store failed");
                Err(Response::error(
                    ErrorCode::Internal,
                    "the mailbox could not store it; retry",
                ))
            }
        }
    }

    /// The driver's latest measure of the free space on the store's disk, in bytes: below
    /// [`Policy::min_free_disk_bytes`] SENDs are refused as `mailbox_full`.
    pub fn handle_disk_free(&self, free_bytes: u64) {
        self.disk_free.store(free_bytes, Ordering::SeqCst);
    }

    /// Why a SEND of `adding` bytes would overfill the mailbox, if it would: its total cap
    /// (live bytes) or its disk. Logs when the mailbox becomes full, and when it no longer
    /// is.
    fn full(&self, adding: usize) -> Option<String> {
        let stats = self.store.stats();
        let live = stats.bytes;
        let adding = u64::try_from(adding).unwrap_or(u64::MAX);
        let reason = match self.policy.max_total_bytes {
            Some(cap) if live.saturating_add(adding) > cap => Some(format!(
                "the mailbox holds as much as it may ({cap} bytes); try again later"
            )),
            _ if stats.envelopes >= self.policy.max_total_envelopes => Some(format!(
                "the mailbox holds as many envelopes as it may ({}); try again later",
                self.policy.max_total_envelopes
            )),
            _ if self.disk_free.load(Ordering::SeqCst) < self.policy.min_free_disk_bytes => {
                Some("the mailbox's disk is nearly full; try again later".to_owned())
            }
            _ => None,
        };
        let was = self.full.swap(reason.is_some(), Ordering::SeqCst);
        match (&reason, was) {
            (Some(r), false) => {
                tracing::warn!(reason = %r, live_bytes = live, "the mailbox is full: SENDs are refused for now")
            }
            (None, true) => tracing::info!(live_bytes = live, "the mailbox has room again"),
            _ => {}
        }
        reason
    }

    /// An envelope for `recipient` was stored elsewhere (another front-end of a shared
    /// store): flag its pushes as for one stored here.
    pub fn handle_arrival(&self, recipient: Fingerprint) {
        self.arrived(recipient);
    }

    /// Flag an [`Event::Arrived`] for every connection `recipient` is logged in on (once:
    /// a flag already up stays one push), except those pushed to that have not pulled
    /// since.
    fn arrived(&self, recipient: Fingerprint) {
        let mut state = self.state();
        let State {
            listeners,
            pending,
            ready,
            quiet,
            ..
        } = &mut *state;
        for &conn in listeners.get(&recipient).into_iter().flatten() {
            if quiet.contains(&(conn, recipient)) {
                continue;
            }
            let waiting = pending.entry(conn).or_default();
            if waiting.contains(&recipient) {
                continue;
            }
            if waiting.is_empty() {
                ready.push_back(conn);
            }
            waiting.push_back(recipient);
        }
    }

    async fn pull(
        &self,
        conn: ConnId,
        recipient: Fingerprint,
        max_count: u32,
    ) -> Result<Response, Response> {
        self.with_session(conn, |s| s.require_login(&recipient))?;
        self.require_member(&recipient, "pulling")?;
        // From here, what arrives is pushed again: this PULL may miss only what it will
        // itself fetch (a push is flagged once the envelope can be pulled).
        self.state().quiet.remove(&(conn, recipient));
        let max = max_count.clamp(1, MAX_BATCH_COUNT) as usize;
        match self.store.pull(&recipient, max, MAX_BATCH_BYTES).await {
            Ok((envelopes, more)) => Ok(Response::Batch { envelopes, more }),
            Err(e) => {
                tracing::warn!(error = %e, "pull failed");
                Err(Response::error(
                    ErrorCode::Internal,
                    "the mailbox could not read the queue",
                ))
            }
        }
    }

    async fn ack(
        &self,
        conn: ConnId,
        recipient: Fingerprint,
        ids: Vec<MessageId>,
    ) -> Result<Response, Response> {
        self.with_session(conn, |s| s.require_login(&recipient))?;
        self.require_member(&recipient, "acknowledging")?;
        if ids.len() > MAX_ACK_IDS {
            return Err(Response::error(
                ErrorCode::TooLarge,
                format!("acknowledge at most {MAX_ACK_IDS} ids at once"),
            ));
        }
        match self.store.ack(recipient, ids).await {
            Ok(deleted) => {
                self.observer.observe(Tally::Delivered(deleted));
                Ok(Response::Acked {
                    deleted: u32::try_from(deleted).unwrap_or(u32::MAX),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "ack failed");
                Err(Response::error(
                    ErrorCode::Internal,
                    "the mailbox could not delete them; retry",
                ))
            }
        }
    }

    /// A connection that has pushes waiting since the last time it was named here: the
    /// driver wakes its pusher, which takes them with [`Self::next_push`].
    pub fn poll_push(&self) -> Option<ConnId> {
        self.state().ready.pop_front()
    }

    /// The next event to push to `conn`, if one waits. Once none does, the connection is
    /// named by [`Self::poll_push`] again at its next arrival. An identity pushed to is
    /// not pushed to again on `conn` until `conn` pulls its queue.
    pub fn next_push(&self, conn: ConnId) -> Option<Event> {
        let mut state = self.state();
        let waiting = state.pending.get_mut(&conn)?;
        let recipient = waiting.pop_front();
        if waiting.is_empty() {
            state.pending.remove(&conn);
        }
        let recipient = recipient?;
        state.quiet.insert((conn, recipient));
        Some(Event::Arrived { recipient })
    }

    /// Delete what was stored more than [`Policy::retention`] before `now_ms`; returns how
    /// many queued envelopes expired.
    pub async fn expire(&self, now_ms: u64) -> Result<u64, StoreError> {
        let retention_ms = u64::try_from(self.policy.retention.as_millis()).unwrap_or(u64::MAX);
        let expired = self
            .store
            .expire(now_ms.saturating_sub(retention_ms))
            .await?;
        self.observer.observe(Tally::Expired(expired));
        Ok(expired)
    }

    /// Refuse new connections and requests from now on (requests already being answered
    /// finish).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether [`Self::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Open connections (handshake done or not).
    pub fn connections(&self) -> usize {
        self.state().conns.len()
    }
}
