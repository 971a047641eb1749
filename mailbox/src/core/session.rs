//! One connection's protocol state on the server side: whether Hello came, which version was
//! chosen, this connection's login challenge and the identities logged in on it.
//!
//! Like the rest of [`crate::core`] it does no I/O and reads no clock or random source: the
//! challenge and the TLS exporter value are given to [`ServerSession::new`].

use crypto::Fingerprint;

use crate::protocol::{CHALLENGE_LEN, ErrorCode, Response, VERSIONS};

/// The login state of one connection on the server side.
#[derive(Debug)]
pub struct ServerSession {
    challenge: [u8; CHALLENGE_LEN],
    exporter: [u8; CHALLENGE_LEN],
    version: Option<u16>,
    logged_in: Vec<Fingerprint>,
}

/// What a login proof is checked against: the connection's challenge and exporter value,
/// taken out of the session so that the signature check runs without holding it.
#[derive(Clone, Copy, Debug)]
pub struct LoginContext {
    challenge: [u8; CHALLENGE_LEN],
    exporter: [u8; CHALLENGE_LEN],
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

    /// What a login on this connection is verified against (after Hello).
    pub fn login_context(&self) -> Result<LoginContext, Response> {
        self.require_hello()?;
        Ok(LoginContext {
            challenge: self.challenge,
            exporter: self.exporter,
        })
    }

    /// Record a login that [`LoginContext::verify`] accepted.
    pub fn logged_in(&mut self, fingerprint: Fingerprint) {
        if !self.logged_in.contains(&fingerprint) {
            self.logged_in.push(fingerprint);
        }
    }

    /// Answer Login in one step: [`Self::login_context`], [`LoginContext::verify`] and
    /// [`Self::logged_in`].
    pub fn login(
        &mut self,
        public_key: &[u8],
        signature: &[u8],
        decoy: &crypto::PublicKey,
    ) -> Response {
        let verified = self
            .login_context()
            .and_then(|context| context.verify(public_key, signature, decoy));
        match verified {
            Ok(fingerprint) => {
                self.logged_in(fingerprint);
                Response::LoggedIn { fingerprint }
            }
            Err(refusal) => refusal,
        }
    }

    /// Check that `fingerprint` is logged in on this connection.
    pub fn require_login(&self, fingerprint: &Fingerprint) -> Result<(), Response> {
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
}

impl LoginContext {
    /// Verify a login proof, then ask `admitted` whether this identity may log in.
    ///
    /// A refused login does the same work whatever the reason: a key that does not parse is
    /// replaced by `decoy` and the signature is still verified, and admission is asked only
    /// after verification.
    pub fn verify(
        &self,
        public_key: &[u8],
        signature: &[u8],
        decoy: &crypto::PublicKey,
    ) -> Result<Fingerprint, Response> {
        let parsed = crypto::PublicKey::from_der(public_key);
        let key = parsed.as_ref().unwrap_or(decoy);
        let verified =
            crypto::verify_login(key, &self.challenge, &self.exporter, signature).is_ok();
        let fingerprint = key.fingerprint();
        if parsed.is_err() || !verified {
            return Err(Response::error(
                ErrorCode::LoginFailed,
                "login refused: the key or the proof is not valid",
            ));
        }
        Ok(fingerprint)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn identity(seed: u64) -> crypto::Identity {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        crypto::Identity::generate_with_rng(&mut rng).unwrap()
    }

    fn code(response: Response) -> Option<ErrorCode> {
        match response {
            Response::Error { code, .. } => Some(code),
            _ => None,
        }
    }

    #[test]
    fn login_is_bound_to_the_connection_and_admission_is_asked() {
        let alice = identity(2);
        let decoy = identity(1).public_key().clone();
        let der = alice.public_key().der().to_vec();
        let mut conn1 = ServerSession::new([1; 32], [2; 32]);
        let mut conn2 = ServerSession::new([3; 32], [4; 32]);
        conn1.hello(&[1]);
        conn2.hello(&[1]);
        let proof1 = alice.sign_login(&[1; 32], &[2; 32]).unwrap();
        // Replayed on another connection: refused.
        let replayed = conn2.login(&der, &proof1, &decoy);
        assert_eq!(code(replayed), Some(ErrorCode::LoginFailed));
        assert!(conn2.require_login(&alice.fingerprint()).is_err());
        assert_eq!(
            conn1.login(&der, &proof1, &decoy),
            Response::LoggedIn {
                fingerprint: alice.fingerprint()
            }
        );
        assert!(conn1.require_login(&alice.fingerprint()).is_ok());
        assert!(conn1.require_login(&Fingerprint([9; 32])).is_err());
        // Garbage key: the same refusal as a bad proof.
        let garbage = conn1.login(b"garbage", &proof1, &decoy);
        assert_eq!(code(garbage), Some(ErrorCode::LoginFailed));
    }

    #[test]
    fn hello_first_then_version_negotiation() {
        let decoy = identity(1).public_key().clone();
        let mut s = ServerSession::new([1; 32], [2; 32]);
        assert_eq!(code(s.login(&[], &[], &decoy)), Some(ErrorCode::HelloFirst));
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
        assert_eq!(code(s.hello(&[1])), Some(ErrorCode::HelloFirst));
    }
}
