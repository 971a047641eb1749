//! A QUIC client of the mailbox protocol, used by nodes.
//!
//! One [`Client`] is one connection: it says hello, logs identities in, and sends requests,
//! one per stream. The frames come from [`crate::protocol`]; this module only moves bytes.

use std::net::SocketAddr;
use std::sync::Arc;

use config::MailboxAddress;

use crate::protocol::{
    self, CHALLENGE_LEN, EXPORTER_LABEL, Event, MAX_FRAME, Request, Response, VERSIONS,
};
use crate::tls::{PinVerifier, client_config};

/// What can go wrong talking to a mailbox.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address did not resolve.
    #[error("cannot resolve mailbox address {0}")]
    Resolve(String),
    /// The mailbox presented another certificate than the pinned one.
    #[error(
        "the mailbox's certificate ({actual}) does not match the pinned fingerprint ({expected}): refusing to connect"
    )]
    PinMismatch {
        /// The pinned fingerprint.
        expected: String,
        /// What the server presented.
        actual: String,
    },
    /// Connecting failed.
    #[error("cannot connect to the mailbox: {0}")]
    Connect(String),
    /// The connection broke.
    #[error("mailbox connection lost: {0}")]
    Connection(String),
    /// The mailbox answered with a frame that does not decode or does not fit.
    #[error("unexpected answer from the mailbox: {0}")]
    Protocol(String),
    /// The mailbox refused the request.
    #[error("the mailbox refused: {message} ({})", code.as_str())]
    Refused {
        /// Its code.
        code: protocol::ErrorCode,
        /// Its words.
        message: String,
    },
}

/// How long a request may wait for its answer.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One connection to a mailbox, after hello.
#[derive(Debug)]
pub struct Client {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    challenge: [u8; CHALLENGE_LEN],
    exporter: [u8; CHALLENGE_LEN],
    /// SHA-256 of the certificate the mailbox presented.
    pub server_fingerprint: [u8; 32],
}

impl Client {
    /// Connect, check the certificate pin (or learn it when the address has none), and say
    /// hello.
    pub async fn connect(address: &MailboxAddress) -> Result<Self, ClientError> {
        let target = format!("{}:{}", address.host, address.port);
        let remote: SocketAddr = tokio::net::lookup_host(&target)
            .await
            .map_err(|_| ClientError::Resolve(target.clone()))?
            .next()
            .ok_or_else(|| ClientError::Resolve(target.clone()))?;
        let verifier = Arc::new(PinVerifier::new(address.fingerprint));
        let bind: SocketAddr = if remote.is_ipv6() {
            "[::]:0"
                .parse()
                .map_err(|_| ClientError::Connect("bind".into()))?
        } else {
            "0.0.0.0:0"
                .parse()
                .map_err(|_| ClientError::Connect("bind".into()))?
        };
        let mut endpoint =
            quinn::Endpoint::client(bind).map_err(|e| ClientError::Connect(e.to_string()))?;
        endpoint.set_default_client_config(
            client_config(verifier.clone()).map_err(|e| ClientError::Connect(e.to_string()))?,
        );
        let connecting = endpoint
            .connect(remote, "secure-messenger-mailbox")
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let conn = match connecting.await {
            Ok(conn) => conn,
            Err(e) => {
                if let (Some(expected), Some(actual)) = (address.fingerprint, verifier.seen())
                    && expected != actual
                {
                    return Err(ClientError::PinMismatch {
                        expected: hex::encode(expected),
                        actual: hex::encode(actual),
                    });
                }
                return Err(ClientError::Connect(e.to_string()));
            }
        };
        let server_fingerprint = verifier
            .seen()
            .ok_or_else(|| ClientError::Connect("no certificate seen".into()))?;
        let mut exporter = [0u8; CHALLENGE_LEN];
        conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
            .map_err(|_| ClientError::Connect("TLS exporter unavailable".into()))?;
        let mut client = Self {
            endpoint,
            conn,
            challenge: [0; CHALLENGE_LEN],
            exporter,
            server_fingerprint,
        };
        match client
            .request(&Request::Hello {
                versions: VERSIONS.to_vec(),
            })
            .await?
        {
            Response::Welcome { challenge, .. } => client.challenge = challenge,
            other => return Err(unexpected(other)),
        }
        Ok(client)
    }

    /// This connection's login challenge and exporter value, to be signed by
    /// `crypto::Identity::sign_login` (off the async executor: it is an RSA private-key
    /// operation).
    pub fn login_material(&self) -> ([u8; CHALLENGE_LEN], [u8; CHALLENGE_LEN]) {
        (self.challenge, self.exporter)
    }

    /// Log an identity in with a proof over [`Self::login_material`].
    pub async fn login(
        &self,
        public_key_der: &[u8],
        signature: Vec<u8>,
    ) -> Result<[u8; 32], ClientError> {
        match self
            .request(&Request::Login {
                public_key: public_key_der.to_vec(),
                signature,
            })
            .await?
        {
            Response::LoggedIn { fingerprint } => Ok(fingerprint),
            other => Err(unexpected(other)),
        }
    }

    /// Store an envelope from the logged-in identity `sender`; returns once the mailbox
    /// holds it durably. `true` if it was new, `false` for a retry of one already stored.
    pub async fn send(&self, sender: [u8; 32], envelope: Vec<u8>) -> Result<bool, ClientError> {
        let header = crypto::EnvelopeHeader::parse(&envelope)
            .map_err(|e| ClientError::Protocol(format!("not an envelope: {e}")))?;
        let request = Request::Send {
            sender,
            recipient: header.recipient.0,
            id: header.id.0,
            envelope,
        };
        match self.request(&request).await? {
            Response::Stored { duplicate, .. } => Ok(!duplicate),
            other => Err(unexpected(other)),
        }
    }

    /// Fetch queued envelopes of a logged-in identity, oldest first, and whether more wait.
    pub async fn pull(
        &self,
        recipient: [u8; 32],
        max_count: u32,
    ) -> Result<(Vec<Vec<u8>>, bool), ClientError> {
        match self
            .request(&Request::Pull {
                recipient,
                max_count,
            })
            .await?
        {
            Response::Batch { envelopes, more } => Ok((envelopes, more)),
            other => Err(unexpected(other)),
        }
    }

    /// Delete delivered envelopes.
    pub async fn ack(&self, recipient: [u8; 32], ids: Vec<[u8; 16]>) -> Result<u32, ClientError> {
        match self.request(&Request::Ack { recipient, ids }).await? {
            Response::Acked { deleted } => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }

    /// Wait for the next event the mailbox pushes (an arrival for a logged-in identity).
    /// Fails when the connection is lost.
    pub async fn next_event(&self) -> Result<Event, ClientError> {
        loop {
            let mut stream = self
                .conn
                .accept_uni()
                .await
                .map_err(|e| ClientError::Connection(e.to_string()))?;
            let Ok(bytes) = stream.read_to_end(MAX_FRAME + 4).await else {
                continue;
            };
            if let Ok(event) = protocol::decode_event(&bytes) {
                return Ok(event);
            }
        }
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
            .map_err(|_| {
                ClientError::Connection(format!(
                    "the mailbox did not answer within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ))
            })?
    }

    async fn request_raw_untimed(&self, chunks: &[&[u8]]) -> Result<Response, ClientError> {
        let lost = |e: &dyn std::fmt::Display| ClientError::Connection(e.to_string());
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| lost(&e))?;
        for chunk in chunks {
            send.write_all(chunk).await.map_err(|e| lost(&e))?;
        }
        send.finish().map_err(|e| lost(&e))?;
        let bytes = recv
            .read_to_end(MAX_FRAME + 4)
            .await
            .map_err(|e| lost(&e))?;
        protocol::decode_response(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

fn unexpected(response: Response) -> ClientError {
    match response {
        Response::Error { code, message } => ClientError::Refused { code, message },
        other => ClientError::Protocol(format!("{other:?}")),
    }
}
