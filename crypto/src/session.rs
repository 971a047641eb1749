//! Olm sessions: one Double Ratchet between this identity's device and one device of a
//! contact. Made by [`crate::Device::outbound`] (from a verified bundle) or by
//! [`crate::Device::accept`] (from a contact's first envelope); used by
//! [`crate::Identity::seal_v2`] and [`crate::Device::open`].

use std::fmt;

use serde::{Deserialize, Serialize};
use vodozemac::olm::SessionPickle;

use crate::device::{DeviceId, PickleKey};
use crate::error::Error;
use crate::keys::Fingerprint;

/// An Olm session's id: SHA-256 of its three handshake keys, the same on both sides. In the
/// clear in a v2 envelope, so the receiver finds the session without trying each one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 32]);
crate::hex_serde::hex_bytes_serde!(SessionId, 32);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A session with one device of one contact.
pub struct Session {
    olm: vodozemac::olm::Session,
    peer: Fingerprint,
    peer_device: DeviceId,
    id: SessionId,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("peer_device", &self.peer_device)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Pickled {
    peer: Fingerprint,
    peer_device: DeviceId,
    olm: String,
}

impl Session {
    pub(crate) fn new(
        olm: vodozemac::olm::Session,
        peer: Fingerprint,
        peer_device: DeviceId,
    ) -> Self {
        let id = session_id(&olm);
        Self {
            olm,
            peer,
            peer_device,
            id,
        }
    }

    /// Its id.
    pub fn id(&self) -> SessionId {
        self.id
    }
    /// The contact it talks to.
    pub fn peer(&self) -> Fingerprint {
        self.peer
    }
    /// The contact's device it talks to.
    pub fn peer_device(&self) -> DeviceId {
        self.peer_device
    }
    /// Whether a message from the other side has decrypted in it (until then, what it seals
    /// are pre-key messages, which carry the handshake).
    pub fn has_received(&self) -> bool {
        self.olm.has_received_message()
    }

    /// The session's state, encrypted under `key`, to store.
    pub fn pickle(&self, key: &PickleKey) -> Vec<u8> {
        let pickled = Pickled {
            peer: self.peer,
            peer_device: self.peer_device,
            olm: self.olm.pickle().encrypt(key.as_bytes()),
        };
        // Fixed-size fields and a string always encode.
        postcard::to_stdvec(&pickled).unwrap_or_default()
    }

    /// A session from [`Session::pickle`]'s bytes and the same key.
    pub fn from_pickle(bytes: &[u8], key: &PickleKey) -> Result<Self, Error> {
        let pickled: Pickled = postcard::from_bytes(bytes).map_err(|_| Error::Pickle)?;
        let olm = SessionPickle::from_encrypted(&pickled.olm, key.as_bytes())
            .map_err(|_| Error::Pickle)?;
        Ok(Self::new(
            vodozemac::olm::Session::from_pickle(olm),
            pickled.peer,
            pickled.peer_device,
        ))
    }

    pub(crate) fn olm_mut(&mut self) -> &mut vodozemac::olm::Session {
        &mut self.olm
    }

    /// A copy (through the pickle: vodozemac's session is not `Clone`), so that a step that
    /// fails half-way leaves the live one untouched.
    pub(crate) fn copy(&self) -> Self {
        Self {
            olm: vodozemac::olm::Session::from_pickle(self.olm.pickle()),
            peer: self.peer,
            peer_device: self.peer_device,
            id: self.id,
        }
    }
}

fn session_id(olm: &vodozemac::olm::Session) -> SessionId {
    session_id_of(&olm.session_keys())
}

/// vodozemac's session id, as raw bytes: SHA-256 of the initiator's identity key, its base
/// key and the one-time key (the session's, or a pre-key message's).
pub(crate) fn session_id_of(keys: &vodozemac::olm::SessionKeys) -> SessionId {
    use sha2::{Digest, Sha256};
    SessionId(
        Sha256::new()
            .chain_update(keys.identity_key.as_bytes())
            .chain_update(keys.base_key.as_bytes())
            .chain_update(keys.one_time_key.as_bytes())
            .finalize()
            .into(),
    )
}
