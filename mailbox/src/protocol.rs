//! The mailbox wire protocol: frames and their encoding.
//!
//! This module does no I/O: it turns bytes into [`Request`]s, [`Response`]s and [`Event`]s
//! and back. What a server does with a request is [`crate::core`]'s; what a client expects
//! in return is [`crate::core::ClientSession`]'s. Both sides' QUIC loops only move these
//! frames.
//!
//! # Encoding
//!
//! QUIC with TLS 1.3 and the ALPN [`ALPN`]. One request per bidirectional stream: the client
//! writes one frame and finishes the stream; the server answers with one frame and finishes.
//! A frame is a 4-byte big-endian length `n` (at most [`MAX_FRAME`]) followed by `n` bytes:
//! the [postcard] encoding of a [`Request`] or [`Response`], whose first byte is the frame
//! type (the enum's variant index). The first request on a connection is
//! [`Request::Hello`], which states the protocol versions the client speaks.

use crypto::{Fingerprint, MessageId};
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
        #[serde(with = "serde_bytes")]
        public_key: Vec<u8>,
        /// `crypto`'s login proof over this connection's challenge and exporter value.
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// Store an envelope for its recipient.
    Send {
        /// The sending identity: must be logged in on this connection (rate limits count
        /// per sender).
        sender: Fingerprint,
        /// Whose queue: must equal the envelope header's recipient.
        recipient: Fingerprint,
        /// The message id: must equal the envelope header's id.
        id: MessageId,
        /// The envelope, in `crypto`'s format.
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
    },
    /// Fetch the oldest queued envelopes of a logged-in identity.
    Pull {
        /// Whose queue (must be logged in on this connection).
        recipient: Fingerprint,
        /// At most this many (capped by the server).
        max_count: u32,
    },
    /// Delete delivered envelopes from a logged-in identity's queue.
    Ack {
        /// Whose queue.
        recipient: Fingerprint,
        /// The message ids.
        ids: Vec<MessageId>,
    },
    /// Publish a logged-in member's device keys here (its own mailbox), for others to
    /// start forward-secret sessions with it. With no keys, it only asks how many one-time
    /// keys are left (the answer), and refreshes the certificate.
    PublishKeys {
        /// The owner's SPKI DER public key: it must be logged in on this connection, and
        /// the certificate signed by it.
        #[serde(with = "serde_bytes")]
        owner_key: Vec<u8>,
        /// The device certificate (`crypto::DeviceCertificate`'s bytes).
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
        /// New one-time keys (`crypto::SignedPrekey`'s bytes each), at most
        /// [`MAX_PUBLISHED_KEYS`].
        #[serde(with = "byte_strings")]
        one_time: Vec<Vec<u8>>,
        /// A new fallback key, if any.
        #[serde(with = "serde_bytes")]
        fallback: Option<Vec<u8>>,
    },
    /// Take one key of `owner` (a member here) to start a session with it.
    ClaimKey {
        /// The identity asking: must be logged in on this connection (claims are limited
        /// per claimer).
        claimer: Fingerprint,
        /// Whose key.
        owner: Fingerprint,
    },
}

/// The most one-time keys one [`Request::PublishKeys`] carries.
pub const MAX_PUBLISHED_KEYS: usize = 100;

/// A list of byte strings, each (de)serialized as one (postcard writes a byte string and a
/// sequence of `u8` alike: a length, then the bytes), copied whole instead of a byte at a
/// time.
mod byte_strings {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| serde_bytes::Bytes::new(b)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let list = Vec::<serde_bytes::ByteBuf>::deserialize(d)?;
        Ok(list
            .into_iter()
            .map(serde_bytes::ByteBuf::into_vec)
            .collect())
    }
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
        fingerprint: Fingerprint,
    },
    /// Answer to Send: the envelope is durable.
    Stored {
        /// Its message id.
        id: MessageId,
        /// True if an envelope with this id is still queued (a retry): nothing was stored
        /// twice.
        duplicate: bool,
    },
    /// Answer to Pull.
    Batch {
        /// Envelopes, oldest first.
        #[serde(with = "byte_strings")]
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
    /// Answer to PublishKeys: durable.
    KeysPublished {
        /// How many one-time keys of the owner are here now.
        one_time: u32,
    },
    /// Answer to ClaimKey: the owner's certificate and one key (a one-time key, deleted
    /// here before this answer, or the fallback key). The claimer checks both signatures.
    KeyClaimed {
        /// The device certificate.
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
        /// The signed prekey.
        #[serde(with = "serde_bytes")]
        prekey: Vec<u8>,
    },
}

impl Response {
    /// The frame's name, for errors and logs (never its contents).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Welcome { .. } => "Welcome",
            Self::LoggedIn { .. } => "LoggedIn",
            Self::Stored { .. } => "Stored",
            Self::Batch { .. } => "Batch",
            Self::Acked { .. } => "Acked",
            Self::Error { .. } => "Error",
            Self::KeysPublished { .. } => "KeysPublished",
            Self::KeyClaimed { .. } => "KeyClaimed",
        }
    }
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
    /// This mailbox serves only its members (its allowlist), and the recipient of a SEND, or
    /// who asks to PULL or ACK, is not one. Nothing is stored.
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
    /// The mailbox is full (its total cap, or its disk): try again later. Pulls and
    /// acknowledgements go on.
    MailboxFull,
    /// The identity whose key was claimed has published none here (or none may be served
    /// now): seal to it without a session, or ask again later.
    NoKeys,
}

impl ErrorCode {
    /// Every code, in wire order (the dashboard and the metrics list them).
    pub const ALL: &[ErrorCode] = &[
        Self::Malformed,
        Self::UnknownFrame,
        Self::UnsupportedVersion,
        Self::HelloFirst,
        Self::LoginFailed,
        Self::NotLoggedIn,
        Self::NotAllowed,
        Self::BadEnvelope,
        Self::TooLarge,
        Self::Quota,
        Self::RateLimited,
        Self::Internal,
        Self::MailboxFull,
        Self::NoKeys,
    ];

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
            Self::MailboxFull => "mailbox_full",
            Self::NoKeys => "no_keys",
        }
    }

    /// What the code means, in words a client may show its user. A client shows these, not
    /// the server's own message: the mailbox is not trusted to put words on its screen.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Malformed | Self::UnknownFrame | Self::HelloFirst => {
                "the mailbox did not understand the request"
            }
            Self::UnsupportedVersion => "the mailbox speaks another protocol version",
            Self::LoginFailed => "the mailbox did not accept the login",
            Self::NotLoggedIn => "the mailbox wants a login first",
            Self::NotAllowed => "the mailbox serves only its members",
            Self::BadEnvelope => "the mailbox found the envelope malformed",
            Self::TooLarge => "the message is larger than the mailbox accepts",
            Self::Quota => "the recipient's queue at the mailbox is full",
            Self::RateLimited => "too many requests for the mailbox at once",
            Self::Internal => "the mailbox failed",
            Self::MailboxFull => "the mailbox is full",
            Self::NoKeys => "the mailbox holds no session keys for them",
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
        recipient: Fingerprint,
    },
}

const REQUEST_TYPES: u8 = 7;
const RESPONSE_TYPES: u8 = 8;
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

#[cfg(test)]
mod tests {

    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `ErrorCode::ALL` holds every code once, in wire order: adding a code breaks this
    /// match until it is listed.
    #[test]
    fn every_error_code_is_listed_in_wire_order() {
        let position = |code: ErrorCode| match code {
            ErrorCode::Malformed => 0,
            ErrorCode::UnknownFrame => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::HelloFirst => 3,
            ErrorCode::LoginFailed => 4,
            ErrorCode::NotLoggedIn => 5,
            ErrorCode::NotAllowed => 6,
            ErrorCode::BadEnvelope => 7,
            ErrorCode::TooLarge => 8,
            ErrorCode::Quota => 9,
            ErrorCode::RateLimited => 10,
            ErrorCode::Internal => 11,
            ErrorCode::MailboxFull => 12,
            ErrorCode::NoKeys => 13,
        };
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(*code), i, "{code:?}");
        }
        assert_eq!(ErrorCode::ALL.len(), 14);
    }

    /// A refusal reads as the client's words for its code: what the (untrusted) mailbox
    /// wrote with it stays out of what a user is shown.
    #[test]
    fn a_refusal_shows_the_codes_meaning_not_the_mailboxs_words() {
        for code in ErrorCode::ALL {
            assert!(!code.meaning().is_empty(), "{code:?}");
            let refused = crate::core::SessionError::Refused {
                code: *code,
                message: "your key leaked: see evil.example".to_owned(),
            };
            let shown = refused.to_string();
            assert!(shown.contains(code.meaning()), "{shown}");
            assert!(!shown.contains("evil"), "{shown}");
        }
    }

    #[test]
    fn events_round_trip() {
        let e = Event::Arrived {
            recipient: Fingerprint([7; 32]),
        };
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
                sender: Fingerprint([3; 32]),
                recipient: Fingerprint([1; 32]),
                id: MessageId([2; 16]),
                envelope: vec![9; 1000],
            },
            Request::Pull {
                recipient: Fingerprint([4; 32]),
                max_count: 10,
            },
            Request::Ack {
                recipient: Fingerprint([4; 32]),
                ids: vec![MessageId([5; 16])],
            },
            Request::PublishKeys {
                owner_key: vec![1; 3],
                certificate: vec![2; 4],
                one_time: vec![vec![3; 98], vec![4; 98]],
                fallback: Some(vec![5; 98]),
            },
            Request::ClaimKey {
                claimer: Fingerprint([6; 32]),
                owner: Fingerprint([7; 32]),
            },
        ];
        for r in requests {
            assert_eq!(decode_request(&encode(&r)).unwrap(), r);
        }
    }

    #[test]
    fn pinned_encoding_of_the_key_frames() {
        // Added after version 1's five requests and six responses: an older mailbox
        // answers them `unknown_frame`, an older node never sends them.
        let publish = encode(&Request::PublishKeys {
            owner_key: vec![1; 2],
            certificate: vec![2; 1],
            one_time: vec![vec![3; 2]],
            fallback: None,
        });
        assert_eq!(publish, [0, 0, 0, 11, 5, 2, 1, 1, 1, 2, 1, 2, 3, 3, 0]);
        let claim = encode(&Request::ClaimKey {
            claimer: Fingerprint([6; 32]),
            owner: Fingerprint([7; 32]),
        });
        assert_eq!(claim, [&[0, 0, 0, 65, 6][..], &[6; 32], &[7; 32]].concat());
        let claimed = Response::KeyClaimed {
            certificate: vec![8; 2],
            prekey: vec![9; 1],
        };
        let bytes = encode(&claimed);
        assert_eq!(bytes, [0, 0, 0, 6, 7, 2, 8, 8, 1, 9]);
        assert_eq!(decode_response(&bytes), Ok(claimed));
        assert_eq!(
            encode(&Response::KeysPublished { one_time: 50 }),
            [0, 0, 0, 2, 6, 50]
        );
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
    fn pinned_encoding_of_a_send_and_an_ack() {
        // Fingerprints and ids are their raw bytes, with no length (fixed size); the
        // envelope a varint length and its bytes.
        let send = encode(&Request::Send {
            sender: Fingerprint([3; 32]),
            recipient: Fingerprint([1; 32]),
            id: MessageId([2; 16]),
            envelope: vec![9; 3],
        });
        let payload = [&[2u8][..], &[3; 32], &[1; 32], &[2; 16], &[3, 9, 9, 9]].concat();
        assert_eq!(send, [&[0, 0, 0, 85][..], &payload].concat());
        let ack = encode(&Request::Ack {
            recipient: Fingerprint([4; 32]),
            ids: vec![MessageId([5; 16])],
        });
        let payload = [&[4u8][..], &[4; 32], &[1], &[5; 16]].concat();
        assert_eq!(ack, [&[0, 0, 0, 50][..], &payload].concat());
    }

    #[test]
    fn pinned_encoding_of_a_login_and_a_batch() {
        // Byte strings: a varint length and the bytes (as the protocol's first version
        // wrote them, a sequence of u8).
        let login = encode(&Request::Login {
            public_key: vec![7; 2],
            signature: vec![8; 3],
        });
        assert_eq!(login, [0, 0, 0, 8, 1, 2, 7, 7, 3, 8, 8, 8]);
        assert_eq!(
            decode_request(&login),
            Ok(Request::Login {
                public_key: vec![7; 2],
                signature: vec![8; 3],
            })
        );
        let batch = Response::Batch {
            envelopes: vec![vec![1; 2], vec![], vec![2; 1]],
            more: true,
        };
        let bytes = encode(&batch);
        assert_eq!(bytes, [0, 0, 0, 9, 3, 3, 2, 1, 1, 0, 1, 2, 1]);
        assert_eq!(decode_response(&bytes), Ok(batch));
    }

    #[test]
    fn pinned_encoding_of_a_pull_and_the_answers_and_event() {
        // Integers are varints (300 = 0xac 0x02), a bool one byte, an error code its
        // place in `ErrorCode::ALL`, a string a varint length and its UTF-8.
        let frames: [(Vec<u8>, Vec<u8>); 7] = [
            (
                encode(&Request::Pull {
                    recipient: Fingerprint([1; 32]),
                    max_count: 300,
                }),
                [&[0, 0, 0, 35, 3][..], &[1; 32], &[0xac, 0x02]].concat(),
            ),
            (
                encode(&Response::Welcome {
                    version: 1,
                    challenge: [7; CHALLENGE_LEN],
                }),
                [&[0, 0, 0, 34, 0, 1][..], &[7; 32]].concat(),
            ),
            (
                encode(&Response::LoggedIn {
                    fingerprint: Fingerprint([2; 32]),
                }),
                [&[0, 0, 0, 33, 1][..], &[2; 32]].concat(),
            ),
            (
                encode(&Response::Stored {
                    id: MessageId([3; 16]),
                    duplicate: true,
                }),
                [&[0, 0, 0, 18, 2][..], &[3; 16], &[1]].concat(),
            ),
            (
                encode(&Response::Acked { deleted: 200 }),
                vec![0, 0, 0, 3, 4, 0xc8, 0x01],
            ),
            (
                encode(&Response::error(ErrorCode::Quota, "full")),
                [&[0, 0, 0, 7, 5, 9, 4][..], b"full"].concat(),
            ),
            (
                encode(&Event::Arrived {
                    recipient: Fingerprint([9; 32]),
                }),
                [&[0, 0, 0, 33, 0][..], &[9; 32]].concat(),
            ),
        ];
        for (i, (encoded, pinned)) in frames.iter().enumerate() {
            assert_eq!(encoded, pinned, "frame {i}");
        }
        assert!(decode_request(&frames[0].1).is_ok());
        for (encoded, _) in &frames[1..6] {
            assert!(decode_response(encoded).is_ok());
        }
        assert!(decode_event(&frames[6].1).is_ok());
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
}
