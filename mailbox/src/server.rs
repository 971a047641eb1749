//! The QUIC driver of the mailbox: accepts connections and streams, reads each request,
//! hands it to the [`Mailbox`] core, writes its answer, and carries the core's pushes to
//! their connections. It decides nothing: admission, limits, logins and answers are the
//! core's. What it owns: the accept loop, the streams and their timeouts, a
//! [`ConnId`] → [`quinn::Connection`] map, one pusher task per connection (woken when the
//! core flags pushes for it; a peer that does not take a push in time is disconnected), and
//! the count of requests in flight (for a graceful shutdown).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::Notify;
use tracing::{debug, info};

use crate::core::{Admission, ConnId, Mailbox, Received};
use crate::metrics::Metrics;
use crate::protocol::{self, CHALLENGE_LEN, EXPORTER_LABEL};
use crate::store::{AnyKeys, QueueStore};

/// How long a request may take to arrive, or an answer to be taken.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The application error code a connection is closed with when it does not take its pushes.
const PUSHES_NOT_TAKEN: u32 = 2;

/// The core and the connections it names, shared by every connection task.
#[derive(Debug)]
pub struct Server<S> {
    core: Mailbox<S, Arc<Metrics>, AnyKeys>,
    /// Each connection's pusher, by the id the core knows it by.
    conns: Mutex<HashMap<ConnId, Arc<Notify>>>,
    in_flight: AtomicU64,
    push_timeout: Duration,
}

impl<S: QueueStore> Server<S> {
    /// A driver around `core`; a peer that does not take a push within `push_timeout` is
    /// disconnected.
    pub fn new(core: Mailbox<S, Arc<Metrics>, AnyKeys>, push_timeout: Duration) -> Self {
        Self {
            core,
            conns: Mutex::default(),
            in_flight: AtomicU64::new(0),
            push_timeout,
        }
    }

    /// The core.
    pub fn core(&self) -> &Mailbox<S, Arc<Metrics>, AnyKeys> {
        &self.core
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        self.core.observer()
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Arc<Notify>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wake the pusher of every connection the core has flagged pushes for. No task is
    /// spawned per push: what waits is the core's flags, one per identity and connection.
    pub(crate) fn push(&self) {
        while let Some(conn) = self.core.poll_push() {
            if let Some(wake) = self.conns().get(&conn) {
                wake.notify_one();
            }
        }
    }
}

/// One connection's pusher: takes the core's flagged pushes for `id` one at a time, each
/// written within the push timeout; a peer that does not take one in time (no stream
/// credit left, say) is disconnected, so what is in flight is bounded by the stream credit
/// the peer grants, one small frame a stream.
async fn pusher<S: QueueStore>(
    server: Arc<Server<S>>,
    id: ConnId,
    conn: quinn::Connection,
    wake: Arc<Notify>,
) {
    loop {
        wake.notified().await;
        while let Some(event) = server.core.next_push(id) {
            let frame = protocol::encode(&event);
            // One push written at a time; arrivals meanwhile are the core's flags, not
            // streams. A push is not waited on until the peer acknowledges it (its ACK can
            // be delayed 25 ms, which would space pushes that far apart): the peer's stream
            // credit bounds what is in flight, and a peer that reads none runs out of it,
            // so `open_uni` waits and the push timeout closes the connection.
            let pushed = tokio::time::timeout(server.push_timeout, async {
                let mut stream = conn.open_uni().await.ok()?;
                stream.write_all(&frame).await.ok()?;
                stream.finish().ok()
            })
            .await;
            match pushed {
                Ok(Some(())) => {}
                // The connection is gone.
                Ok(None) => return,
                Err(_) => {
                    debug!("a connection did not take its pushes in time; closing it");
                    conn.close(PUSHES_NOT_TAKEN.into(), b"pushes not taken");
                    return;
                }
            }
        }
    }
}

/// Accept connections until the endpoint is closed.
pub async fn serve<S: QueueStore>(endpoint: quinn::Endpoint, server: Arc<Server<S>>) {
    while let Some(incoming) = endpoint.accept().await {
        let ip = incoming.remote_address().ip();
        let validated = incoming.remote_address_validated();
        let id = match server.core.handle_incoming(ip, validated) {
            Admission::Accept(id) => id,
            Admission::Retry => {
                // Stateless: the peer must echo the token from its real address.
                if let Err(e) = incoming.retry() {
                    e.into_incoming().ignore();
                }
                continue;
            }
            Admission::Refuse => {
                debug!(%ip, "connection refused (too many from this address, or stopping)");
                incoming.refuse();
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => {
                    if let Err(e) = connection(conn, id, &server).await {
                        debug!(%ip, error = %e, "connection ended");
                    }
                    server.conns().remove(&id);
                }
                Err(e) => debug!(error = %e, "handshake failed"),
            }
            server.core.handle_closed(id);
        });
    }
    info!("QUIC endpoint closed");
}

async fn connection<S: QueueStore>(
    conn: quinn::Connection,
    id: ConnId,
    server: &Arc<Server<S>>,
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
    if !server.core.handle_established(id, challenge, exporter) {
        conn.close(1u32.into(), b"too many connections from this address");
        return Ok(());
    }
    let wake = Arc::new(Notify::new());
    server.conns().insert(id, wake.clone());
    let pushes = tokio::spawn(pusher(server.clone(), id, conn.clone(), wake));
    let result = loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(stream(server.clone(), id, send, recv));
            }
            Err(e) => break Err(e),
        }
    };
    pushes.abort();
    result
}

/// One request stream: read it (bounded in size and time), answer it, push what it caused.
async fn stream<S: QueueStore>(
    server: Arc<Server<S>>,
    id: ConnId,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    // An address over its request rate is answered before anything is read.
    if let Err(refusal) = server.core.admit_request(id, config::now_ms()) {
        if write_answer(&mut send, &refusal).await {
            settle(&mut send).await;
        }
        return;
    }
    // A request is at most one envelope and its frame, and must arrive in time: a client
    // cannot make the mailbox buffer more, or hold a stream forever.
    let limit = server.core.policy().request_limit();
    let read = match tokio::time::timeout(IO_TIMEOUT, recv.read_to_end(limit)).await {
        Ok(read) => read,
        Err(_) => {
            debug!("a request did not arrive in time");
            return;
        }
    };
    let bytes = match read {
        Ok(bytes) => Some(bytes),
        Err(quinn::ReadToEndError::TooLong) => None,
        Err(e) => {
            debug!(error = %e, "stream read failed");
            return;
        }
    };
    // Counted as in flight from when the whole request is here until its answer is written
    // (entered before the core checks whether it is stopping): a client that never finishes
    // sending cannot hold up a shutdown.
    let mut guard = Some(InFlight::enter(&server.in_flight));
    let received = match &bytes {
        Some(bytes) => Received::Frame(bytes),
        None => Received::TooLong,
    };
    let response = server
        .core
        .handle_request(id, config::now_ms(), received)
        .await;
    server.push();
    if matches!(response, protocol::Response::Error { .. }) {
        // A refusal changed nothing: a shutdown need not wait for it to be written.
        guard = None;
    }
    let written = write_answer(&mut send, &response).await;
    drop(guard);
    if written {
        settle(&mut send).await;
    }
}

/// Write one answer and finish the stream, bounded in time; whether it was written.
async fn write_answer(send: &mut quinn::SendStream, response: &protocol::Response) -> bool {
    let written = tokio::time::timeout(IO_TIMEOUT, send.write_all(&protocol::encode(response)))
        .await
        .is_ok_and(|w| w.is_ok());
    written && send.finish().is_ok()
}

/// Let an answer reach the peer before its stream is dropped (at most 5 s).
async fn settle(send: &mut quinn::SendStream) {
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
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
