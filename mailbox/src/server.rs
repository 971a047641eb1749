//! The QUIC side of the mailbox: accepts connections and streams, applies admission and
//! limits, answers each request with the help of [`crate::protocol`] and a [`QueueStore`],
//! and pushes arrival events to connected recipients.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use tracing::{debug, info, warn};

use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::protocol::{
    self, CHALLENGE_LEN, EXPORTER_LABEL, ErrorCode, Event, MAX_BATCH_BYTES, MAX_BATCH_COUNT,
    MAX_FRAME, Request, Response, ServerSession,
};
use crate::store::{Incoming, QueueStore, Quota, Stored};

/// The limits and admission rules the service enforces.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Largest envelope, bytes.
    pub max_envelope_bytes: usize,
    /// Per-recipient quota.
    pub quota: Quota,
    /// Per-identity SEND rate and burst.
    pub rate: (f64, f64),
    /// Per-address request rate and burst.
    pub address_rate: (f64, f64),
    /// Connections per source address.
    pub max_connections_per_address: usize,
    /// When not empty, the only identities admitted.
    pub allowlist: HashSet<[u8; 32]>,
}

impl Policy {
    /// The policy a configuration describes. Refuses an allowlist entry that is not a
    /// fingerprint, naming it.
    pub fn from_config(config: &config::MailboxConfig) -> Result<Self, String> {
        let mut allowlist = HashSet::new();
        for entry in &config.allowlist {
            let fp: crypto::Fingerprint = entry.parse().map_err(|_| {
                format!("allowlist: {entry:?} is not a fingerprint (64 hex characters)")
            })?;
            allowlist.insert(fp.0);
        }
        Ok(Self {
            max_envelope_bytes: config.max_envelope_bytes,
            quota: Quota {
                envelopes: config.quota_envelopes,
                bytes: config.quota_bytes,
            },
            rate: (config.rate_per_second, config.rate_burst),
            address_rate: (config.address_rate_per_second, config.address_rate_burst),
            max_connections_per_address: config.max_connections_per_address,
            allowlist,
        })
    }
}

type ConnId = usize;

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

/// How long a request may take to arrive, an answer to be taken, or a push to be accepted.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The most message ids one ACK may name.
pub const MAX_ACK_IDS: usize = 1024;

/// A connection an identity is logged in on, as the push registry holds it.
type Listener = (ConnId, quinn::Connection);

/// The request-answering service, shared by all connections.
#[derive(Debug)]
pub struct Service<S> {
    store: S,
    policy: Policy,
    /// Counters.
    pub metrics: Arc<Metrics>,
    dummy_key: crypto::PublicKey,
    senders: Mutex<RateLimiter<[u8; 32]>>,
    addresses: Mutex<RateLimiter<IpAddr>>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Connections on which each identity is logged in, for pushes.
    listeners: Mutex<HashMap<[u8; 32], Vec<Listener>>>,
    next_conn: AtomicUsize,
    stopping: AtomicBool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl<S: QueueStore> Service<S> {
    /// A service over `store` with `policy`. `dummy_key` stands in for unparseable keys at
    /// login so that every refused login costs the same.
    pub fn new(
        store: S,
        policy: Policy,
        metrics: Arc<Metrics>,
        dummy_key: crypto::PublicKey,
    ) -> Self {
        Self {
            senders: Mutex::new(RateLimiter::new(policy.rate.0, policy.rate.1)),
            addresses: Mutex::new(RateLimiter::new(
                policy.address_rate.0,
                policy.address_rate.1,
            )),
            store,
            policy,
            metrics,
            dummy_key,
            per_address: Mutex::default(),
            listeners: Mutex::default(),
            next_conn: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn admitted(&self, fingerprint: &[u8; 32]) -> bool {
        self.policy.allowlist.is_empty() || self.policy.allowlist.contains(fingerprint)
    }

    /// Answer one request of a connection.
    async fn answer(
        &self,
        session: &Mutex<ServerSession>,
        conn: &Listener,
        request: Request,
    ) -> Response {
        let lock = || session.lock().unwrap_or_else(|p| p.into_inner());
        match request {
            Request::Hello { versions } => lock().hello(&versions),
            Request::Login {
                public_key,
                signature,
            } => {
                let response = lock().login(&public_key, &signature, &self.dummy_key, |fp| {
                    self.admitted(fp)
                });
                if let Response::LoggedIn { fingerprint } = &response {
                    let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
                    let entry = listeners.entry(*fingerprint).or_default();
                    if !entry.iter().any(|(id, _)| *id == conn.0) {
                        entry.push(conn.clone());
                        self.metrics.logged_in.inc();
                    }
                }
                response
            }
            Request::Send {
                sender,
                recipient,
                id,
                envelope,
            } => {
                if let Err(refusal) = lock().require_login(&sender) {
                    return refusal;
                }
                if envelope.len() > self.policy.max_envelope_bytes {
                    return Response::error(
                        ErrorCode::TooLarge,
                        format!(
                            "envelope of {} bytes exceeds this mailbox's limit of {} bytes",
                            envelope.len(),
                            self.policy.max_envelope_bytes
                        ),
                    );
                }
                if let Err(refusal) = protocol::check_send(&recipient, &id, &envelope) {
                    return refusal;
                }
                let allowed = self
                    .senders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .allow(&sender, Instant::now());
                if !allowed {
                    return Response::error(
                        ErrorCode::RateLimited,
                        "this identity is sending too fast; retry in a moment",
                    );
                }
                let incoming = Incoming {
                    recipient,
                    id,
                    envelope,
                    now_ms: now_ms(),
                };
                match self.store.store(incoming, self.policy.quota).await {
                    Ok(Stored::New) => {
                        self.metrics.stored.inc();
                        self.metrics.record(1, 0);
                        self.push(&recipient);
                        Response::Stored {
                            id,
                            duplicate: false,
                        }
                    }
                    Ok(Stored::Duplicate) => Response::Stored {
                        id,
                        duplicate: true,
                    },
                    Ok(Stored::OverQuota) => Response::error(
                        ErrorCode::Quota,
                        "the recipient's mailbox is full; try again after they catch up",
                    ),
                    Err(e) => {
                        warn!(error = %e, "store failed");
                        Response::error(
                            ErrorCode::Internal,
                            "the mailbox could not store it; retry",
                        )
                    }
                }
            }
            Request::Pull {
                recipient,
                max_count,
            } => {
                if let Err(refusal) = lock().require_login(&recipient) {
                    return refusal;
                }
                let max = max_count.clamp(1, MAX_BATCH_COUNT) as usize;
                match self.store.pull(&recipient, max, MAX_BATCH_BYTES) {
                    Ok((envelopes, more)) => Response::Batch { envelopes, more },
                    Err(e) => {
                        warn!(error = %e, "pull failed");
                        Response::error(ErrorCode::Internal, "the mailbox could not read the queue")
                    }
                }
            }
            Request::Ack { recipient, ids } => {
                if let Err(refusal) = lock().require_login(&recipient) {
                    return refusal;
                }
                if ids.len() > MAX_ACK_IDS {
                    return Response::error(
                        ErrorCode::TooLarge,
                        format!("acknowledge at most {MAX_ACK_IDS} ids at once"),
                    );
                }
                match self.store.ack(recipient, ids).await {
                    Ok(deleted) => {
                        self.metrics.delivered.inc_by(deleted);
                        self.metrics.record(0, deleted);
                        Response::Acked {
                            deleted: u32::try_from(deleted).unwrap_or(u32::MAX),
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "ack failed");
                        Response::error(
                            ErrorCode::Internal,
                            "the mailbox could not delete them; retry",
                        )
                    }
                }
            }
        }
    }

    /// Tell every connection where `recipient` is logged in that envelopes arrived.
    fn push(&self, recipient: &[u8; 32]) {
        let conns: Vec<quinn::Connection> = self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(recipient)
            .map(|v| v.iter().map(|(_, c)| c.clone()).collect())
            .unwrap_or_default();
        if conns.is_empty() {
            return;
        }
        let frame = protocol::encode(&Event::Arrived {
            recipient: *recipient,
        });
        for conn in conns {
            let frame = frame.clone();
            tokio::spawn(async move {
                // A peer that takes no pushes cannot pile up waiting tasks.
                let pushed = tokio::time::timeout(IO_TIMEOUT, async {
                    let mut stream = conn.open_uni().await.ok()?;
                    stream.write_all(&frame).await.ok()?;
                    stream.finish().ok()
                });
                let _ = pushed.await;
            });
        }
    }

    fn forget(&self, conn: ConnId) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        let mut removed = 0;
        listeners.retain(|_, conns| {
            let before = conns.len();
            conns.retain(|(id, _)| *id != conn);
            removed += before - conns.len();
            !conns.is_empty()
        });
        self.metrics
            .logged_in
            .dec_by(i64::try_from(removed).unwrap_or(0));
    }

    /// The largest request accepted: one envelope and its frame.
    pub fn request_limit(&self) -> usize {
        (self.policy.max_envelope_bytes + 1024).clamp(64 * 1024, MAX_FRAME + 4)
    }

    /// Stop accepting requests (new streams are refused; in-flight ones finish).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> u64 {
        self.metrics.in_flight.load(Ordering::SeqCst)
    }
}

/// Accept connections until the endpoint is closed.
pub async fn serve<S: QueueStore>(endpoint: quinn::Endpoint, service: Arc<Service<S>>) {
    while let Some(incoming) = endpoint.accept().await {
        let ip = address_key(incoming.remote_address().ip());
        let admitted = {
            let mut per = service
                .per_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let n = per.entry(ip).or_default();
            if *n >= service.policy.max_connections_per_address
                || service.stopping.load(Ordering::SeqCst)
            {
                false
            } else {
                *n += 1;
                true
            }
        };
        if !admitted {
            debug!(%ip, "too many connections from this address");
            service.metrics.refuse(ErrorCode::RateLimited);
            incoming.refuse();
            continue;
        }
        let service = service.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => {
                    service.metrics.connections.inc();
                    let id = service.next_conn.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = connection(conn.clone(), id, ip, &service).await {
                        debug!(%ip, error = %e, "connection ended");
                    }
                    service.forget(id);
                    service.metrics.connections.dec();
                }
                Err(e) => debug!(error = %e, "handshake failed"),
            }
            let mut per = service
                .per_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per.remove(&ip);
                }
            }
        });
    }
    info!("QUIC endpoint closed");
}

async fn connection<S: QueueStore>(
    conn: quinn::Connection,
    id: ConnId,
    ip: IpAddr,
    service: &Arc<Service<S>>,
) -> Result<(), quinn::ConnectionError> {
    let mut exporter = [0u8; CHALLENGE_LEN];
    if conn
        .export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .is_err()
    {
        conn.close(1u32.into(), b"no exporter");
        return Ok(());
    }
    let mut challenge = [0u8; CHALLENGE_LEN];
    rand::rng().fill_bytes(&mut challenge);
    let session = Arc::new(Mutex::new(ServerSession::new(challenge, exporter)));
    let handle = (id, conn.clone());
    loop {
        let (mut send, mut recv) = conn.accept_bi().await?;
        let service = service.clone();
        let session = session.clone();
        let handle = handle.clone();
        tokio::spawn(async move {
            // Counted as in flight from when the whole request is here until its answer is
            // written: a client that never finishes sending cannot hold up a shutdown.
            let mut guard = None;
            let allowed = service
                .addresses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(&ip, Instant::now());
            let response = if !allowed {
                Response::error(
                    ErrorCode::RateLimited,
                    "too many requests from this address; slow down",
                )
            } else {
                // A request is at most one envelope and its frame, and must arrive in time:
                // a client cannot make the mailbox buffer more, or hold a stream forever.
                let limit = service.request_limit();
                let read = match tokio::time::timeout(IO_TIMEOUT, recv.read_to_end(limit)).await {
                    Ok(read) => read,
                    Err(_) => {
                        debug!("a request did not arrive in time");
                        return;
                    }
                };
                match read {
                    Ok(bytes) => {
                        let counted = InFlight::enter(&service.metrics.in_flight);
                        if service.stopping.load(Ordering::SeqCst) {
                            Response::error(
                                ErrorCode::Internal,
                                "the mailbox is shutting down; retry shortly",
                            )
                        } else {
                            guard = Some(counted);
                            match protocol::decode_request(&bytes) {
                                Ok(request) => service.answer(&session, &handle, request).await,
                                Err(e) => e.response(),
                            }
                        }
                    }
                    Err(quinn::ReadToEndError::TooLong) => Response::error(
                        ErrorCode::TooLarge,
                        format!("requests are at most {limit} bytes"),
                    ),
                    Err(e) => {
                        debug!(error = %e, "stream read failed");
                        return;
                    }
                }
            };
            if let Response::Error { code, .. } = &response {
                service.metrics.refuse(*code);
            }
            let written =
                tokio::time::timeout(IO_TIMEOUT, send.write_all(&protocol::encode(&response)))
                    .await
                    .is_ok_and(|w| w.is_ok());
            if written {
                let _ = send.finish();
            }
            drop(guard);
            if written {
                // Let the answer reach the peer before the stream is dropped.
                let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
            }
        });
    }
}

/// Counts one request in flight while it lives.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_limits_count_ipv6_by_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(address_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(address_key(mapped), v4);
    }
}
