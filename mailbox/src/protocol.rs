//! The mailbox wire protocol: frames, their encoding, and the per-connection login state.
//!
//! This module does no I/O: it imports no quinn, tokio or sled. It turns bytes into
//! [`Request`]s and [`Response`]s and back, and decides what a connection may do, given
//! the time and randomness its caller passes in. The QUIC server ([`crate::server`]) and
//! client ([`crate::client`]) are thin loops around it.
//!
//! # Encoding
//!
//! QUIC with TLS 1.3 and the ALPN [`ALPN`]. One request per bidirectional stream: the client
//! writes one frame and finishes the stream; the server answers with one frame and finishes.
//! A frame is a 4-byte big-endian length `n` (at most [`MAX_FRAME`]) followed by `n` bytes:
//! the [postcard] encoding of a [`Request`] or [`Response`], whose first byte is the frame
//! type (the enum's variant index). The first request on a connection is
//! [`Request::Hello`], which states the protocol versions the client speaks.

use serde::{Deserialize, Serialize};

/// ALPN protocol id of version 1.
pub const ALPN: &[u8] = b"secure-messenger-mailbox/1";
/// The protocol versions this build speaks.
pub const VERSIONS: &[u16] = &[1];
/// The largest frame either side accepts (an envelope batch is bounded well below this).
pub const MAX_FRAME: usize = 2 * 1024 * 1024;
/// The largest total of envelope bytes in one PULL answer.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// The most envelopes in one PULL answer.
pub const MAX_BATCH_COUNT: u32 = 256;
/// Length of the login challenge and of the TLS exporter value it is bound to.
pub const CHALLENGE_LEN: usize = 32;
/// TLS exporter label for login proofs (RFC 8446 section 7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-secure-messenger-login";

/// A client's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First frame on a connection: the versions the client speaks.
    Hello {
        /// Protocol versions, most preferred first.
        versions: Vec<u16>,
    },
    /// Prove one identity on this connection.
    Login {
        /// The identity's SPKI DER public key.
        public_key: Vec<u8>,
        /// `crypto`'s login proof over this connection's challenge and exporter value.
        signature: Vec<u8>,
    },
    /// Store an envelope for its recipient.
    Send {
        /// The sending identity: must be logged in on this connection (rate limits count
        /// per sender).
        sender: [u8; 32],
        /// Whose queue: must equal the envelope header's recipient.
        recipient: [u8; 32],
        /// The message id: must equal the envelope header's id.
        id: [u8; 16],
        /// The envelope, in `crypto`'s format.
        envelope: Vec<u8>,
    },
    /// Fetch the oldest queued envelopes of a logged-in identity.
    Pull {
        /// Whose queue (must be logged in on this connection).
        recipient: [u8; 32],
        /// At most this many (capped by the server).
        max_count: u32,
    },
    /// Delete delivered envelopes from a logged-in identity's queue.
    Ack {
        /// Whose queue.
        recipient: [u8; 32],
        /// The message ids.
        ids: Vec<[u8; 16]>,
    },
}

/// The server's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to Hello: the chosen version and this connection's login challenge.
    Welcome {
        /// The version both sides speak.
        version: u16,
        /// The login challenge for this connection.
        challenge: [u8; CHALLENGE_LEN],
    },
    /// Answer to Login.
    LoggedIn {
        /// The fingerprint of the identity now logged in.
        fingerprint: [u8; 32],
    },
    /// Answer to Send: the envelope is durable.
    Stored {
        /// Its message id.
        id: [u8; 16],
        /// True if an envelope with this id is still queued (a retry): nothing was stored
        /// twice.
        duplicate: bool,
    },
    /// Answer to Pull.
    Batch {
        /// Envelopes, oldest first.
        envelopes: Vec<Vec<u8>>,
        /// More are queued.
        more: bool,
    },
    /// Answer to Ack.
    Acked {
        /// How many of the ids were queued and are now deleted.
        deleted: u32,
    },
    /// The request was refused.
    Error {
        /// Stable machine-readable code.
        code: ErrorCode,
        /// Words for people.
        message: String,
    },
}

/// Stable machine-readable error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame did not decode.
    Malformed,
    /// A frame type this server does not know.
    UnknownFrame,
    /// No common protocol version; the message names the server's.
    UnsupportedVersion,
    /// Hello was not the first request, or came twice.
    HelloFirst,
    /// The login proof did not verify, or the key was refused.
    LoginFailed,
    /// The request needs a logged-in identity.
    NotLoggedIn,
    /// This mailbox admits only listed identities, and this one is not listed.
    NotAllowed,
    /// The envelope's clear header is not valid.
    BadEnvelope,
    /// The envelope is larger than the server accepts.
    TooLarge,
    /// The recipient's queue is full (count or bytes).
    Quota,
    /// Too many requests; slow down.
    RateLimited,
    /// The server failed; try again later.
    Internal,
}

impl ErrorCode {
    /// The code as a stable snake_case word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownFrame => "unknown_frame",
            Self::UnsupportedVersion => "unsupported_version",
            Self::HelloFirst => "hello_first",
            Self::LoginFailed => "login_failed",
            Self::NotLoggedIn => "not_logged_in",
            Self::NotAllowed => "not_allowed",
            Self::BadEnvelope => "bad_envelope",
            Self::TooLarge => "too_large",
            Self::Quota => "quota",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
        }
    }
}

impl Response {
    /// An error answer.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

/// Why bytes are not a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the length prefix announces, or more.
    #[error("frame truncated or followed by extra bytes")]
    Length,
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the maximum of {MAX_FRAME}")]
    TooLarge(usize),
    /// The frame type byte is not one this build knows.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// The payload does not decode.
    #[error("frame payload does not decode")]
    Payload,
}

impl FrameError {
    /// The error answer a server sends for this.
    pub fn response(&self) -> Response {
        let code = match self {
            Self::UnknownType(_) => ErrorCode::UnknownFrame,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::Length | Self::Payload => ErrorCode::Malformed,
        };
        Response::error(code, self.to_string())
    }
}

/// A message the server sends unasked, on a unidirectional stream it opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// New envelopes are queued for a logged-in identity: pull now.
    Arrived {
        /// Whose queue.
        recipient: [u8; 32],
    },
}

const REQUEST_TYPES: u8 = 5;
const RESPONSE_TYPES: u8 = 6;
const EVENT_TYPES: u8 = 1;

/// Encode one frame: length prefix and postcard payload.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // postcard only fails on types it cannot represent (none here) or a full buffer
    // (impossible with a Vec); an empty payload would then be refused by the peer.
    let payload = postcard::to_stdvec(message).unwrap_or_default();
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], types: u8) -> Result<T, FrameError> {
    let (prefix, payload) = bytes.split_first_chunk::<4>().ok_or(FrameError::Length)?;
    let len = u32::from_be_bytes(*prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    if payload.len() != len {
        return Err(FrameError::Length);
    }
    let kind = *payload.first().ok_or(FrameError::Payload)?;
    if kind >= types {
        return Err(FrameError::UnknownType(kind));
    }
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        _ => Err(FrameError::Payload),
    }
}

/// Decode exactly one request frame (the whole content of a request stream).
pub fn decode_request(bytes: &[u8]) -> Result<Request, FrameError> {
    decode(bytes, REQUEST_TYPES)
}

/// Decode exactly one response frame.
pub fn decode_response(bytes: &[u8]) -> Result<Response, FrameError> {
    decode(bytes, RESPONSE_TYPES)
}

/// Decode exactly one event frame.
pub fn decode_event(bytes: &[u8]) -> Result<Event, FrameError> {
    decode(bytes, EVENT_TYPES)
}

/// Check a SEND: the envelope's clear header must name the same recipient and id.
/// Returns the header.
pub fn check_send(
    recipient: &[u8; 32],
    id: &[u8; 16],
    envelope: &[u8],
) -> Result<crypto::EnvelopeHeader, Response> {
    let header = crypto::EnvelopeHeader::parse(envelope)
        .map_err(|e| Response::error(ErrorCode::BadEnvelope, e.to_string()))?;
    if header.recipient.0 != *recipient || header.id.0 != *id {
        return Err(Response::error(
            ErrorCode::BadEnvelope,
            "the envelope's header does not match the SEND's recipient and id",
        ));
    }
    Ok(header)
}

/// The login state of one connection on the server side.
#[derive(Debug)]
pub struct ServerSession {
    challenge: [u8; CHALLENGE_LEN],
    exporter: [u8; CHALLENGE_LEN],
    version: Option<u16>,
    logged_in: Vec<[u8; 32]>,
}

impl ServerSession {
    /// A new connection, with a fresh random challenge and this connection's TLS exporter
    /// value.
    pub fn new(challenge: [u8; CHALLENGE_LEN], exporter: [u8; CHALLENGE_LEN]) -> Self {
        Self {
            challenge,
            exporter,
            version: None,
            logged_in: Vec::new(),
        }
    }

    /// Answer Hello.
    pub fn hello(&mut self, versions: &[u16]) -> Response {
        if self.version.is_some() {
            return Response::error(ErrorCode::HelloFirst, "hello was already received");
        }
        match versions.iter().find(|v| VERSIONS.contains(v)) {
            Some(&version) => {
                self.version = Some(version);
                Response::Welcome {
                    version,
                    challenge: self.challenge,
                }
            }
            None => Response::error(
                ErrorCode::UnsupportedVersion,
                format!("this mailbox speaks protocol versions {VERSIONS:?}"),
            ),
        }
    }

    /// Check that Hello came first; every other request calls this.
    pub fn require_hello(&self) -> Result<(), Response> {
        match self.version {
            Some(_) => Ok(()),
            None => Err(Response::error(
                ErrorCode::HelloFirst,
                "the first request on a connection must be hello",
            )),
        }
    }

    /// Answer Login: verify the proof against this connection's challenge and exporter,
    /// then ask `admitted` whether this identity may log in.
    ///
    /// A refused login does the same work whatever the reason: a key that does not parse is
    /// replaced by `dummy` and the signature is still verified, and admission is asked
    /// only after verification.
    pub fn login(
        &mut self,
        public_key: &[u8],
        signature: &[u8],
        dummy: &crypto::PublicKey,
        admitted: impl FnOnce(&[u8; 32]) -> bool,
    ) -> Response {
        if let Err(refusal) = self.require_hello() {
            return refusal;
        }
        let parsed = crypto::PublicKey::from_der(public_key);
        let key = parsed.as_ref().unwrap_or(dummy);
        let verified =
            crypto::verify_login(key, &self.challenge, &self.exporter, signature).is_ok();
        let fingerprint = key.fingerprint().0;
        let allowed = admitted(&fingerprint);
        if parsed.is_err() || !verified {
            return Response::error(
                ErrorCode::LoginFailed,
                "login refused: the key or the proof is not valid",
            );
        }
        if !allowed {
            return Response::error(
                ErrorCode::NotAllowed,
                "this mailbox does not admit that identity",
            );
        }
        if !self.logged_in.contains(&fingerprint) {
            self.logged_in.push(fingerprint);
        }
        Response::LoggedIn { fingerprint }
    }

    /// Check that `fingerprint` is logged in on this connection.
    pub fn require_login(&self, fingerprint: &[u8; 32]) -> Result<(), Response> {
        self.require_hello()?;
        if self.logged_in.contains(fingerprint) {
            Ok(())
        } else {
            Err(Response::error(
                ErrorCode::NotLoggedIn,
                "that identity is not logged in on this connection",
            ))
        }
    }

    /// Check that some identity is logged in on this connection (to send).
    pub fn require_any_login(&self) -> Result<(), Response> {
        self.require_hello()?;
        if self.logged_in.is_empty() {
            Err(Response::error(
                ErrorCode::NotLoggedIn,
                "log in before sending",
            ))
        } else {
            Ok(())
        }
    }

    /// The identities logged in on this connection.
    pub fn logged_in(&self) -> &[[u8; 32]] {
        &self.logged_in
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dummy_key() -> crypto::PublicKey {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        crypto::Identity::generate_with_rng(&mut rng)
            .unwrap()
            .public_key()
            .clone()
    }

    fn identity(seed: u64) -> crypto::Identity {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        crypto::Identity::generate_with_rng(&mut rng).unwrap()
    }

    #[test]
    fn login_is_bound_to_the_connection_and_admission_is_asked() {
        let alice = identity(2);
        let dummy = dummy_key();
        let der = alice.public_key().der().to_vec();
        let mut conn1 = ServerSession::new([1; 32], [2; 32]);
        let mut conn2 = ServerSession::new([3; 32], [4; 32]);
        conn1.hello(&[1]);
        conn2.hello(&[1]);
        let proof1 = alice.sign_login(&[1; 32], &[2; 32]).unwrap();
        // Replayed on another connection: refused.
        assert!(matches!(
            conn2.login(&der, &proof1, &dummy, |_| true),
            Response::Error {
                code: ErrorCode::LoginFailed,
                ..
            }
        ));
        assert!(conn2.require_login(&alice.fingerprint().0).is_err());
        // Not admitted: refused with its own code, after verifying.
        assert!(matches!(
            conn1.login(&der, &proof1, &dummy, |_| false),
            Response::Error {
                code: ErrorCode::NotAllowed,
                ..
            }
        ));
        assert_eq!(
            conn1.login(&der, &proof1, &dummy, |_| true),
            Response::LoggedIn {
                fingerprint: alice.fingerprint().0
            }
        );
        assert!(conn1.require_login(&alice.fingerprint().0).is_ok());
        assert!(conn1.require_login(&[9; 32]).is_err());
        // Garbage key: the same refusal as a bad proof.
        assert!(matches!(
            conn1.login(b"garbage", &proof1, &dummy, |_| true),
            Response::Error {
                code: ErrorCode::LoginFailed,
                ..
            }
        ));
    }

    #[test]
    fn send_must_match_the_envelope_header() {
        let alice = identity(2);
        let bob = identity(3);
        let draft = crypto::Draft {
            kind: crypto::MessageKind::Text,
            seq: 1,
            prev: None,
            sent_at: std::time::UNIX_EPOCH,
            body: b"x".to_vec(),
        };
        let sealed = alice.seal(bob.public_key(), &draft).unwrap();
        let (r, id) = (sealed.header.recipient.0, sealed.header.id.0);
        assert!(check_send(&r, &id, &sealed.bytes).is_ok());
        assert!(check_send(&[0; 32], &id, &sealed.bytes).is_err());
        assert!(check_send(&r, &[0; 16], &sealed.bytes).is_err());
        assert!(check_send(&r, &id, &sealed.bytes[..10]).is_err());
    }

    #[test]
    fn events_round_trip() {
        let e = Event::Arrived { recipient: [7; 32] };
        assert_eq!(decode_event(&encode(&e)).unwrap(), e);
        assert_eq!(
            decode_event(&[0, 0, 0, 1, 1]),
            Err(FrameError::UnknownType(1))
        );
    }

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::Hello { versions: vec![1] },
            Request::Login {
                public_key: vec![1, 2],
                signature: vec![3],
            },
            Request::Send {
                sender: [3; 32],
                recipient: [1; 32],
                id: [2; 16],
                envelope: vec![9; 1000],
            },
            Request::Pull {
                recipient: [4; 32],
                max_count: 10,
            },
            Request::Ack {
                recipient: [4; 32],
                ids: vec![[5; 16]],
            },
        ];
        for r in requests {
            assert_eq!(decode_request(&encode(&r)).unwrap(), r);
        }
    }

    #[test]
    fn pinned_encoding_of_a_hello() {
        // length 3, type 0 (Hello), a vec of one varint 1.
        assert_eq!(
            encode(&Request::Hello { versions: vec![1] }),
            [0, 0, 0, 3, 0, 1, 1]
        );
    }

    #[test]
    fn bad_frames_are_typed() {
        let good = encode(&Request::Hello { versions: vec![1] });
        assert_eq!(decode_request(&good[..2]), Err(FrameError::Length));
        assert_eq!(
            decode_request(&good[..good.len() - 1]),
            Err(FrameError::Length)
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode_request(&long), Err(FrameError::Length));
        assert_eq!(
            decode_request(&[0, 0, 0, 1, 42]),
            Err(FrameError::UnknownType(42))
        );
        assert_eq!(
            decode_request(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::TooLarge(0xffff_ffff))
        );
        assert_eq!(
            decode_request(&[0, 0, 0, 2, 2, 0xff]),
            Err(FrameError::Payload)
        );
        assert_eq!(
            FrameError::UnknownType(42).response(),
            Response::error(ErrorCode::UnknownFrame, "unknown frame type 42")
        );
    }

    #[test]
    fn hello_first_then_version_negotiation() {
        let mut s = ServerSession::new([1; 32], [2; 32]);
        assert!(matches!(
            s.login(&[], &[], &dummy_key(), |_| true),
            Response::Error {
                code: ErrorCode::HelloFirst,
                ..
            }
        ));
        match s.hello(&[7, 8]) {
            Response::Error { code, message } => {
                assert_eq!(code, ErrorCode::UnsupportedVersion);
                assert!(message.contains("[1]"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.hello(&[9, 1]),
            Response::Welcome {
                version: 1,
                challenge: [1; 32]
            }
        );
        assert!(matches!(
            s.hello(&[1]),
            Response::Error {
                code: ErrorCode::HelloFirst,
                ..
            }
        ));
    }
}
