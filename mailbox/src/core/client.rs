//! The client's side of a connection, free of I/O: which requests to make and what their
//! answers mean. [`crate::client::Client`] carries these requests over QUIC; a test harness
//! can carry them to a [`super::Mailbox`] in memory.

use crypto::{Fingerprint, MessageId};

use crate::protocol::{CHALLENGE_LEN, ErrorCode, Request, Response, VERSIONS};

/// Why an answer is not the one hoped for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The mailbox refused the request.
    /// Its display is the code's [`ErrorCode::meaning`]; the mailbox's own words are
    /// `message`, for logs only.
    #[error("{} ({})", code.meaning(), code.as_str())]
    Refused {
        /// Its code.
        code: ErrorCode,
        /// Its words.
        message: String,
    },
    /// The mailbox answered with a frame that does not fit the request.
    #[error("unexpected answer from the mailbox: a {got} frame")]
    Unexpected {
        /// The kind of frame it sent ([`Response::kind`]).
        got: &'static str,
    },
    /// The mailbox said another identity logged in than the one that asked.
    #[error("the mailbox logged another identity in")]
    OtherIdentity,
    /// A request was made before the mailbox's Welcome.
    #[error("the connection has not been welcomed yet")]
    NotWelcomed,
    /// What was given to send is not an envelope.
    #[error("not an envelope: {0}")]
    NotAnEnvelope(crypto::OpenError),
    /// A claimed key's certificate or prekey does not even parse.
    #[error("the mailbox served a malformed key: {0}")]
    BadBundle(crypto::BundleError),
}

/// One connection's protocol state on the client side.
#[derive(Debug, Clone)]
pub struct ClientSession {
    exporter: [u8; CHALLENGE_LEN],
    welcome: Option<(u16, [u8; CHALLENGE_LEN])>,
    logged_in: Vec<Fingerprint>,
}

impl ClientSession {
    /// A connection whose TLS exporter value (for login proofs) is `exporter`.
    pub fn new(exporter: [u8; CHALLENGE_LEN]) -> Self {
        Self {
            exporter,
            welcome: None,
            logged_in: Vec::new(),
        }
    }

    /// The first request: the versions this build speaks.
    pub fn hello(&self) -> Request {
        Request::Hello {
            versions: VERSIONS.to_vec(),
        }
    }

    /// Take the answer to Hello.
    pub fn handle_welcome(&mut self, response: Response) -> Result<u16, SessionError> {
        match response {
            Response::Welcome { version, challenge } if VERSIONS.contains(&version) => {
                self.welcome = Some((version, challenge));
                Ok(version)
            }
            other => Err(unexpected(other)),
        }
    }

    /// This connection's login challenge and exporter value, for
    /// `crypto::Identity::sign_login` (an RSA private-key operation: run it off the async
    /// executor).
    pub fn login_material(
        &self,
    ) -> Result<([u8; CHALLENGE_LEN], [u8; CHALLENGE_LEN]), SessionError> {
        let (_, challenge) = self.welcome.ok_or(SessionError::NotWelcomed)?;
        Ok((challenge, self.exporter))
    }

    /// A Login with a proof over [`Self::login_material`].
    pub fn login(&self, public_key_der: &[u8], signature: Vec<u8>) -> Request {
        Request::Login {
            public_key: public_key_der.to_vec(),
            signature,
        }
    }

    /// Take the answer to a Login, and remember the identity as logged in.
    pub fn handle_logged_in(&mut self, response: Response) -> Result<Fingerprint, SessionError> {
        let fingerprint = Self::logged_in_as(response)?;
        if !self.logged_in.contains(&fingerprint) {
            self.logged_in.push(fingerprint);
        }
        Ok(fingerprint)
    }

    /// The answer to a Login: the identity now logged in.
    pub fn logged_in_as(response: Response) -> Result<Fingerprint, SessionError> {
        match response {
            Response::LoggedIn { fingerprint } => Ok(fingerprint),
            other => Err(unexpected(other)),
        }
    }

    /// The identities logged in on this connection.
    pub fn logged_in(&self) -> &[Fingerprint] {
        &self.logged_in
    }

    /// A Send of `envelope` from `sender`, its recipient and id read from its clear header.
    pub fn send(sender: Fingerprint, envelope: Vec<u8>) -> Result<Request, SessionError> {
        let header =
            crypto::EnvelopeHeader::parse(&envelope).map_err(SessionError::NotAnEnvelope)?;
        Ok(Request::Send {
            sender,
            recipient: header.recipient,
            id: header.id,
            envelope,
        })
    }

    /// The answer to a Send: `true` if the envelope was new, `false` for a retry of one the
    /// mailbox holds.
    pub fn stored(response: Response) -> Result<bool, SessionError> {
        match response {
            Response::Stored { duplicate, .. } => Ok(!duplicate),
            other => Err(unexpected(other)),
        }
    }

    /// The answer to a Pull: envelopes, oldest first, and whether more wait.
    pub fn batch(response: Response) -> Result<(Vec<Vec<u8>>, bool), SessionError> {
        match response {
            Response::Batch { envelopes, more } => Ok((envelopes, more)),
            other => Err(unexpected(other)),
        }
    }

    /// An Ack of `ids` for `recipient`.
    pub fn ack(recipient: Fingerprint, ids: Vec<MessageId>) -> Request {
        Request::Ack { recipient, ids }
    }

    /// The answer to an Ack: how many were deleted.
    pub fn acked(response: Response) -> Result<u32, SessionError> {
        match response {
            Response::Acked { deleted } => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }

    /// A PublishKeys of `owner`'s device certificate and new keys (none: only ask how many
    /// one-time keys are left).
    pub fn publish_keys(
        owner_der: &[u8],
        certificate: &crypto::DeviceCertificate,
        prekeys: &[crypto::SignedPrekey],
    ) -> Request {
        let one_time = prekeys.iter().filter(|k| !k.is_fallback());
        Request::PublishKeys {
            owner_key: owner_der.to_vec(),
            certificate: certificate.to_bytes(),
            one_time: one_time.map(|k| k.to_bytes().to_vec()).collect(),
            fallback: prekeys
                .iter()
                .find(|k| k.is_fallback())
                .map(|k| k.to_bytes().to_vec()),
        }
    }

    /// The answer to a PublishKeys: how many one-time keys the owner has there now. `None`
    /// from a mailbox that keeps no keys (one from before them: `unknown_frame`).
    pub fn keys_published(response: Response) -> Result<Option<u32>, SessionError> {
        match response {
            Response::KeysPublished { one_time } => Ok(Some(one_time)),
            Response::Error {
                code: ErrorCode::UnknownFrame,
                ..
            } => Ok(None),
            other => Err(unexpected(other)),
        }
    }

    /// A ClaimKey of one of `owner`'s keys by the logged-in `claimer`.
    pub fn claim_key(claimer: Fingerprint, owner: Fingerprint) -> Request {
        Request::ClaimKey { claimer, owner }
    }

    /// The answer to a ClaimKey: the bundle, still to be verified against the owner's RSA
    /// key; `None` when the owner has no keys there (or the mailbox keeps none).
    pub fn key_claimed(response: Response) -> Result<Option<crypto::Bundle>, SessionError> {
        match response {
            Response::KeyClaimed {
                certificate,
                prekey,
            } => Ok(Some(crypto::Bundle {
                certificate: crypto::DeviceCertificate::from_bytes(&certificate)
                    .map_err(SessionError::BadBundle)?,
                prekey: crypto::SignedPrekey::from_bytes(&prekey)
                    .map_err(SessionError::BadBundle)?,
            })),
            Response::Error {
                code: ErrorCode::NoKeys | ErrorCode::UnknownFrame,
                ..
            } => Ok(None),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(response: Response) -> SessionError {
    match response {
        Response::Error { code, message } => SessionError::Refused { code, message },
        other => SessionError::Unexpected { got: other.kind() },
    }
}
