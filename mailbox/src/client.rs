//! A QUIC client of the mailbox protocol, used by nodes.
//!
//! One [`Client`] is one connection: it says hello, logs identities in, and sends requests,
//! one per stream. What to ask and what the answers mean is [`ClientSession`]'s; the frames
//! are [`crate::protocol`]'s; this module only moves bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use config::MailboxAddress;

use crypto::{Fingerprint, MessageId};

use crate::core::{ClientSession, SessionError};
use crate::protocol::{self, CHALLENGE_LEN, EXPORTER_LABEL, Event, MAX_FRAME, Request, Response};
use crate::tls::{PinVerifier, client_config};

/// What can go wrong talking to a mailbox.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address did not resolve.
    #[error("cannot resolve mailbox address {target}")]
    Resolve {
        /// `host:port` as given.
        target: String,
        /// Why, when the resolver said (no error means it found no address).
        #[source]
        source: Option<std::io::Error>,
    },
    /// The mailbox presented another certificate than the pinned one.
    #[error(
        "The mailbox's certificate has changed, so the node does not connect: it presents {actual}, which does not match the pinned fingerprint {expected}"
    )]
    PinMismatch {
        /// The pinned fingerprint.
        expected: String,
        /// What the server presented.
        actual: String,
    },
    /// Connecting failed.
    #[error("cannot connect to the mailbox: {0}")]
    Connect(ConnectError),
    /// The connection broke.
    #[error("mailbox connection lost: {0}")]
    Connection(ConnectionError),
    /// The mailbox answered with a frame that does not decode or does not fit.
    #[error("{0}")]
    Protocol(ProtocolError),
    /// The mailbox refused the request. Its display is the code's
    /// [`protocol::ErrorCode::meaning`]; the mailbox's own words are `message`, for logs only.
    #[error("{} ({})", code.meaning(), code.as_str())]
    Refused {
        /// Its code.
        code: protocol::ErrorCode,
        /// Its words.
        message: String,
    },
}

/// Why a connection could not be set up. (The outer [`ClientError`] says "cannot connect";
/// this says why, and is matched on, not chained.)
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No local UDP socket.
    #[error(transparent)]
    Bind(std::io::Error),
    /// The TLS configuration could not be made.
    #[error(transparent)]
    Tls(crate::tls::TlsError),
    /// quinn refused to start the connection.
    #[error(transparent)]
    Start(quinn::ConnectError),
    /// The handshake failed.
    #[error("{}", closed_words(.0))]
    Handshake(quinn::ConnectionError),
    /// The handshake ended without a server certificate.
    #[error("the mailbox presented no certificate")]
    NoCertificate,
    /// The TLS exporter (which login proofs are bound to) gave nothing.
    #[error("the TLS exporter is unavailable")]
    Exporter,
    /// One front-end of several did not answer in time (the next one is tried).
    #[error("{0} did not answer within {FAILOVER_AFTER:?}")]
    TimedOut(String),
}

/// How long a front-end of a clustered mailbox (an address with several) may take to
/// answer before the next is tried.
pub const FAILOVER_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// How an established connection failed. Displayed without the reason a peer gave for
/// closing it: the mailbox is not trusted to put words on the user's screen (`Debug` keeps
/// it, for logs).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The connection closed.
    #[error("{}", closed_words(.0))]
    Closed(quinn::ConnectionError),
    /// A request could not be written.
    #[error("{}", match .0 {
        quinn::WriteError::ConnectionLost(e) => closed_words(e),
        other => other.to_string(),
    })]
    Write(quinn::WriteError),
    /// A request's stream was closed before it was finished.
    #[error(transparent)]
    Finish(#[from] quinn::ClosedStream),
    /// An answer could not be read.
    #[error("{}", match .0 {
        quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(e)) => closed_words(e),
        other => other.to_string(),
    })]
    Read(quinn::ReadToEndError),
    /// The mailbox took a request and did not answer in time.
    #[error("the mailbox did not answer within {} s", .0.as_secs())]
    Timeout(std::time::Duration),
    /// There is no connection (the caller has none open).
    #[error("not connected")]
    NotConnected,
}

impl From<quinn::ConnectionError> for ConnectionError {
    fn from(e: quinn::ConnectionError) -> Self {
        Self::Closed(e)
    }
}

impl From<quinn::WriteError> for ConnectionError {
    fn from(e: quinn::WriteError) -> Self {
        Self::Write(e)
    }
}

impl From<quinn::ReadToEndError> for ConnectionError {
    fn from(e: quinn::ReadToEndError) -> Self {
        Self::Read(e)
    }
}

/// quinn's words for a connection that ended, but for a close by the peer only its code:
/// quinn would quote the reason the peer wrote with it.
fn closed_words(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(close) => {
            format!(
                "the mailbox closed the connection (code {})",
                close.error_code
            )
        }
        quinn::ConnectionError::ConnectionClosed(close) => {
            format!("the mailbox closed the connection: {}", close.error_code)
        }
        other => other.to_string(),
    }
}

/// An answer that does not decode, or does not fit the request.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The bytes are no response frame.
    #[error("unexpected answer from the mailbox: {0}")]
    Frame(#[from] protocol::FrameError),
    /// The frame does not fit (see [`SessionError`]).
    #[error(transparent)]
    Session(SessionError),
}

impl From<ConnectionError> for ClientError {
    fn from(e: ConnectionError) -> Self {
        Self::Connection(e)
    }
}

impl From<ProtocolError> for ClientError {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

/// How long a request may wait for its answer.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One connection to a mailbox, after hello.
#[derive(Debug)]
pub struct Client {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    session: ClientSession,
    /// SHA-256 of the certificate the mailbox presented.
    pub server_fingerprint: [u8; 32],
    /// Pushes, read as soon as they come (by a task of the client's own), so that a busy
    /// caller never leaves the mailbox waiting on a push stream.
    events: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Event>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How many pushes wait to be read at most; more are dropped (an arrival says only "pull":
/// one waiting is as good as many).
const EVENTS_WAITING: usize = 16;

/// Read every push stream of `conn` as it comes, into `events`.
async fn read_pushes(conn: quinn::Connection, events: tokio::sync::mpsc::Sender<Event>) {
    while let Ok(mut stream) = conn.accept_uni().await {
        let Ok(bytes) = stream.read_to_end(MAX_FRAME + 4).await else {
            continue;
        };
        if let Ok(event) = protocol::decode_event(&bytes) {
            let _ = events.try_send(event);
        }
    }
}

impl Client {
    /// Connect, check the certificate pin (or learn it when the address has none), and say
    /// hello.
    pub async fn connect(address: &MailboxAddress) -> Result<Self, ClientError> {
        Self::connect_with(address, true).await
    }

    /// [`Self::connect`] for a client that takes no pushes: it grants the mailbox no stream
    /// to push on (for tests of the server, which must not wait on such a peer forever).
    pub async fn connect_taking_no_pushes(address: &MailboxAddress) -> Result<Self, ClientError> {
        Self::connect_with(address, false).await
    }

    /// Connect to the first of `address`'s front-ends that answers (in order; each has
    /// [`FAILOVER_AFTER`] when there are several). When none does, the error of the first
    /// that presented another certificate, else of the first.
    async fn connect_with(
        address: &MailboxAddress,
        take_pushes: bool,
    ) -> Result<Self, ClientError> {
        let endpoints: Vec<(String, u16)> = address
            .endpoints()
            .map(|(host, port)| (host.to_owned(), port))
            .collect();
        let several = endpoints.len() > 1;
        let mut failed: Option<ClientError> = None;
        for (host, port) in endpoints {
            let attempt = Self::connect_endpoint(&host, port, address.fingerprint, take_pushes);
            let result = if several {
                tokio::time::timeout(FAILOVER_AFTER, attempt)
                    .await
                    .unwrap_or_else(|_| {
                        Err(ClientError::Connect(ConnectError::TimedOut(format!(
                            "{host}:{port}"
                        ))))
                    })
            } else {
                attempt.await
            };
            match result {
                Ok(client) => return Ok(client),
                Err(e) => {
                    tracing::debug!(%host, port, error = %e, "a front-end did not serve");
                    let keep = match &failed {
                        None => true,
                        Some(ClientError::PinMismatch { .. }) => false,
                        Some(_) => matches!(e, ClientError::PinMismatch { .. }),
                    };
                    if keep {
                        failed = Some(e);
                    }
                }
            }
        }
        Err(failed.unwrap_or(ClientError::Resolve {
            target: address.to_string(),
            source: None,
        }))
    }

    async fn connect_endpoint(
        host: &str,
        port: u16,
        fingerprint: Option<[u8; 32]>,
        take_pushes: bool,
    ) -> Result<Self, ClientError> {
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let remote: SocketAddr = tokio::net::lookup_host(&target)
            .await
            .map_err(|e| ClientError::Resolve {
                target: target.clone(),
                source: Some(e),
            })?
            .next()
            .ok_or_else(|| ClientError::Resolve {
                target: target.clone(),
                source: None,
            })?;
        let verifier = Arc::new(PinVerifier::new(fingerprint));
        let unspecified = if remote.is_ipv6() {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let connect = ClientError::Connect;
        let mut endpoint = quinn::Endpoint::client(SocketAddr::new(unspecified, 0))
            .map_err(|e| connect(ConnectError::Bind(e)))?;
        endpoint.set_default_client_config(
            client_config(verifier.clone(), take_pushes)
                .map_err(|e| connect(ConnectError::Tls(e)))?,
        );
        let connecting = endpoint
            .connect(remote, "secure-messenger-mailbox")
            .map_err(|e| connect(ConnectError::Start(e)))?;
        let conn = match connecting.await {
            Ok(conn) => conn,
            Err(e) => {
                if let (Some(expected), Some(actual)) = (fingerprint, verifier.seen())
                    && expected != actual
                {
                    return Err(ClientError::PinMismatch {
                        expected: hex::encode(expected),
                        actual: hex::encode(actual),
                    });
                }
                return Err(connect(ConnectError::Handshake(e)));
            }
        };
        let server_fingerprint = verifier
            .seen()
            .ok_or(connect(ConnectError::NoCertificate))?;
        let mut exporter = [0u8; CHALLENGE_LEN];
        conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
            .map_err(|_| connect(ConnectError::Exporter))?;
        let (events, waiting) = tokio::sync::mpsc::channel(EVENTS_WAITING);
        let reader = tokio::spawn(read_pushes(conn.clone(), events));
        let mut client = Self {
            endpoint,
            conn,
            session: ClientSession::new(exporter),
            server_fingerprint,
            events: tokio::sync::Mutex::new(waiting),
            reader,
        };
        let welcome = client.request(&client.session.hello()).await?;
        client.session.handle_welcome(welcome)?;
        Ok(client)
    }

    /// This connection's login challenge and exporter value, to be signed by
    /// `crypto::Identity::sign_login` (off the async executor: it is an RSA private-key
    /// operation).
    pub fn login_material(&self) -> ([u8; CHALLENGE_LEN], [u8; CHALLENGE_LEN]) {
        // `connect` returns only a welcomed client.
        self.session
            .login_material()
            .unwrap_or(([0; CHALLENGE_LEN], [0; CHALLENGE_LEN]))
    }

    /// Log an identity in with a proof over [`Self::login_material`].
    pub async fn login(
        &self,
        public_key_der: &[u8],
        signature: Vec<u8>,
    ) -> Result<Fingerprint, ClientError> {
        let answer = self
            .request(&self.session.login(public_key_der, signature))
            .await?;
        Ok(ClientSession::logged_in_as(answer)?)
    }

    /// Store an envelope from the logged-in identity `sender`; returns once the mailbox
    /// holds it durably. `true` if it was new, `false` for a retry of one already stored.
    pub async fn send(&self, sender: Fingerprint, envelope: Vec<u8>) -> Result<bool, ClientError> {
        let request = ClientSession::send(sender, envelope)?;
        Ok(ClientSession::stored(self.request(&request).await?)?)
    }

    /// Fetch queued envelopes of a logged-in identity, oldest first, and whether more wait.
    pub async fn pull(
        &self,
        recipient: Fingerprint,
        max_count: u32,
    ) -> Result<(Vec<Vec<u8>>, bool), ClientError> {
        let request = Request::Pull {
            recipient,
            max_count,
        };
        Ok(ClientSession::batch(self.request(&request).await?)?)
    }

    /// Delete delivered envelopes.
    pub async fn ack(
        &self,
        recipient: Fingerprint,
        ids: Vec<MessageId>,
    ) -> Result<u32, ClientError> {
        let request = ClientSession::ack(recipient, ids);
        Ok(ClientSession::acked(self.request(&request).await?)?)
    }

    /// Publish a logged-in identity's device certificate and new prekeys (durable when this
    /// returns); how many one-time keys it has there now, `None` if the mailbox keeps no
    /// keys.
    pub async fn publish_keys(
        &self,
        owner_der: &[u8],
        certificate: &crypto::DeviceCertificate,
        prekeys: &[crypto::SignedPrekey],
    ) -> Result<Option<u32>, ClientError> {
        let request = ClientSession::publish_keys(owner_der, certificate, prekeys);
        Ok(ClientSession::keys_published(
            self.request(&request).await?,
        )?)
    }

    /// Claim one key of `owner` as the logged-in `claimer`: a bundle to verify against the
    /// owner's RSA key, or `None` if there is none to claim.
    pub async fn claim_key(
        &self,
        claimer: Fingerprint,
        owner: Fingerprint,
    ) -> Result<Option<crypto::Bundle>, ClientError> {
        let request = ClientSession::claim_key(claimer, owner);
        Ok(ClientSession::key_claimed(self.request(&request).await?)?)
    }

    /// Wait for the next event the mailbox pushes (an arrival for a logged-in identity).
    /// Fails when the connection is lost.
    pub async fn next_event(&self) -> Result<Event, ClientError> {
        if let Some(event) = self.events.lock().await.recv().await {
            return Ok(event);
        }
        // The reader ended: the connection is gone.
        Err(ConnectionError::from(self.conn.closed().await).into())
    }

    /// Resolves when the connection is closed, by either side, with why.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.conn.closed().await
    }

    /// Close the connection.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        self.endpoint.wait_idle().await;
    }

    /// Send one request on a new stream and read its answer.
    pub async fn request(&self, request: &Request) -> Result<Response, ClientError> {
        self.request_raw(&[&protocol::encode(request)]).await
    }

    /// Write `chunks` on a new stream, one write each (a frame split across packets, or
    /// bytes that are no frame at all: for tests of the server), and read the answer.
    pub async fn request_raw(&self, chunks: &[&[u8]]) -> Result<Response, ClientError> {
        // A mailbox that takes a request and never answers must not stall the node.
        tokio::time::timeout(REQUEST_TIMEOUT, self.request_raw_untimed(chunks))
            .await
            .map_err(|_| ConnectionError::Timeout(REQUEST_TIMEOUT))?
    }

    /// Write `chunks` on a new stream and wait for an answer without finishing the stream:
    /// a request that never ends (for tests of the server, which may answer one only by
    /// refusing it before reading it).
    pub async fn request_unfinished(&self, chunks: &[&[u8]]) -> Result<Response, ClientError> {
        let exchange = async {
            let (mut send, mut recv) = self.conn.open_bi().await.map_err(ConnectionError::from)?;
            for chunk in chunks {
                send.write_all(chunk).await.map_err(ConnectionError::from)?;
            }
            let bytes = recv
                .read_to_end(MAX_FRAME + 4)
                .await
                .map_err(ConnectionError::from)?;
            Ok(protocol::decode_response(&bytes).map_err(ProtocolError::from)?)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ConnectionError::Timeout(REQUEST_TIMEOUT))?
    }

    async fn request_raw_untimed(&self, chunks: &[&[u8]]) -> Result<Response, ClientError> {
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(ConnectionError::from)?;
        for chunk in chunks {
            send.write_all(chunk).await.map_err(ConnectionError::from)?;
        }
        send.finish().map_err(ConnectionError::from)?;
        let bytes = recv
            .read_to_end(MAX_FRAME + 4)
            .await
            .map_err(ConnectionError::from)?;
        Ok(protocol::decode_response(&bytes).map_err(ProtocolError::from)?)
    }
}

impl From<SessionError> for ClientError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Refused { code, message } => Self::Refused { code, message },
            other => Self::Protocol(ProtocolError::Session(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However the connection ends, what a user is shown of it holds none of the words the
    /// mailbox gave with its close.
    #[test]
    fn a_close_by_the_mailbox_shows_no_words_of_the_mailboxs() {
        let hostile = || quinn::ApplicationClose {
            error_code: quinn::VarInt::from_u32(3),
            reason: "your key leaked: see evil.example".into(),
        };
        let aborted = || {
            quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
                error_code: quinn::TransportErrorCode::PROTOCOL_VIOLATION,
                frame_type: None,
                reason: "see evil.example".into(),
            })
        };
        let closed = || quinn::ConnectionError::ApplicationClosed(hostile());
        let shown = [
            ClientError::Connection(ConnectionError::Closed(closed())),
            ClientError::Connection(ConnectionError::Closed(aborted())),
            ClientError::Connection(ConnectionError::Write(quinn::WriteError::ConnectionLost(
                closed(),
            ))),
            ClientError::Connection(ConnectionError::Read(quinn::ReadToEndError::Read(
                quinn::ReadError::ConnectionLost(closed()),
            ))),
            ClientError::Connect(ConnectError::Handshake(closed())),
            ClientError::Connect(ConnectError::Handshake(aborted())),
        ]
        .map(|e| e.to_string());
        for words in &shown {
            assert!(!words.contains("evil"), "{words}");
            assert!(
                words.contains("the mailbox closed the connection"),
                "{words}"
            );
        }
        assert!(shown[0].ends_with("(code 3)"), "{}", shown[0]);
        // Ends of our own are said as quinn says them.
        let timed_out =
            ClientError::Connection(ConnectionError::Closed(quinn::ConnectionError::TimedOut));
        assert_eq!(timed_out.to_string(), "mailbox connection lost: timed out");
    }
}
