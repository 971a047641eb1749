//! The QUIC side of the mailbox: accepts connections and streams, and answers each request
//! with the help of [`crate::protocol`] and a [`QueueStore`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::Rng as _;
use tracing::{debug, info, warn};

use crate::protocol::{
    self, CHALLENGE_LEN, EXPORTER_LABEL, ErrorCode, MAX_BATCH_BYTES, MAX_BATCH_COUNT, MAX_FRAME,
    Request, Response, ServerSession,
};
use crate::store::{QueueStore, Stored};

/// Counters shown on the dashboard.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Envelopes stored since start.
    pub stored: AtomicU64,
    /// Envelopes handed out by PULL since start.
    pub pulled: AtomicU64,
    /// Requests refused since start.
    pub refused: AtomicU64,
}

/// The request-answering service, shared by all connections.
#[derive(Debug)]
pub struct Service<S> {
    store: S,
    max_envelope_bytes: usize,
    /// Live counters.
    pub counters: Counters,
}

impl<S: QueueStore> Service<S> {
    /// A service over `store` that refuses envelopes above `max_envelope_bytes`.
    pub fn new(store: S, max_envelope_bytes: usize) -> Self {
        Self {
            store,
            max_envelope_bytes,
            counters: Counters::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    async fn answer(&self, session: &Mutex<ServerSession>, request: Request) -> Response {
        let lock = || {
            session
                .lock()
                .map_err(|_| Response::error(ErrorCode::Internal, "session state lost"))
        };
        let checked = |check: fn(&ServerSession) -> Result<(), Response>| -> Result<(), Response> {
            check(&*lock()?)
        };
        match request {
            Request::Hello { versions } => match lock() {
                Ok(mut s) => s.hello(&versions),
                Err(e) => e,
            },
            Request::Login {
                public_key,
                signature,
            } => match lock() {
                Ok(mut s) => s.login(&public_key, &signature),
                Err(e) => e,
            },
            Request::Send { envelope } => {
                if let Err(refusal) = checked(ServerSession::require_any_login) {
                    return refusal;
                }
                if envelope.len() > self.max_envelope_bytes {
                    return Response::error(
                        ErrorCode::TooLarge,
                        format!(
                            "envelope of {} bytes exceeds this mailbox's limit of {} bytes",
                            envelope.len(),
                            self.max_envelope_bytes
                        ),
                    );
                }
                let header = match crypto::EnvelopeHeader::parse(&envelope) {
                    Ok(h) => h,
                    Err(e) => return Response::error(ErrorCode::BadEnvelope, e.to_string()),
                };
                match self
                    .store
                    .store(header.recipient.0, header.id.0, envelope)
                    .await
                {
                    Ok(stored) => {
                        if stored == Stored::New {
                            self.counters.stored.fetch_add(1, Ordering::Relaxed);
                        }
                        Response::Stored {
                            id: header.id.0,
                            duplicate: stored == Stored::Duplicate,
                        }
                    }
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
                if let Err(refusal) = lock().and_then(|s| s.require_login(&recipient)) {
                    return refusal;
                }
                let max = max_count.clamp(1, MAX_BATCH_COUNT) as usize;
                match self.store.pull(&recipient, max, MAX_BATCH_BYTES) {
                    Ok((envelopes, more)) => {
                        self.counters
                            .pulled
                            .fetch_add(envelopes.len() as u64, Ordering::Relaxed);
                        Response::Batch { envelopes, more }
                    }
                    Err(e) => {
                        warn!(error = %e, "pull failed");
                        Response::error(ErrorCode::Internal, "the mailbox could not read the queue")
                    }
                }
            }
            Request::Ack { recipient, ids } => {
                if let Err(refusal) = lock().and_then(|s| s.require_login(&recipient)) {
                    return refusal;
                }
                match self.store.ack(recipient, ids).await {
                    Ok(deleted) => Response::Acked { deleted },
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
}

/// Accept connections until the endpoint is closed.
pub async fn serve<S: QueueStore>(endpoint: quinn::Endpoint, service: Arc<Service<S>>) {
    while let Some(incoming) = endpoint.accept().await {
        let service = service.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => {
                    service.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let remote = conn.remote_address();
                    debug!(%remote, "connection");
                    if let Err(e) = connection(conn, &service).await {
                        debug!(%remote, error = %e, "connection ended");
                    }
                    service.counters.connections.fetch_sub(1, Ordering::Relaxed);
                }
                Err(e) => debug!(error = %e, "handshake failed"),
            }
        });
    }
    info!("QUIC endpoint closed");
}

async fn connection<S: QueueStore>(
    conn: quinn::Connection,
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
    loop {
        let (mut send, mut recv) = conn.accept_bi().await?;
        let service = service.clone();
        let session = session.clone();
        tokio::spawn(async move {
            let response = match recv.read_to_end(MAX_FRAME + 4).await {
                Ok(bytes) => match protocol::decode_request(&bytes) {
                    Ok(request) => service.answer(&session, request).await,
                    Err(e) => e.response(),
                },
                Err(quinn::ReadToEndError::TooLong) => Response::error(
                    ErrorCode::TooLarge,
                    format!("frames are at most {MAX_FRAME} bytes"),
                ),
                Err(e) => {
                    debug!(error = %e, "stream read failed");
                    return;
                }
            };
            if matches!(response, Response::Error { .. }) {
                service.counters.refused.fetch_add(1, Ordering::Relaxed);
            }
            if send.write_all(&protocol::encode(&response)).await.is_ok() {
                let _ = send.finish();
            }
        });
    }
}
