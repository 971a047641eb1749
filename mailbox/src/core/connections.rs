//! Connections: admission (caps that count only peers that proved their address, Retry
//! under pressure), the handshake's end, and closing.

use std::collections::HashMap;
use std::net::IpAddr;

use super::*;

/// What to do with a connection attempt ([`Mailbox::handle_incoming`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go on with the handshake; the connection is known by this id.
    Accept(ConnId),
    /// Ask the peer to prove its address first (a QUIC Retry); nothing is kept meanwhile.
    Retry,
    /// Refuse it.
    Refuse,
}

/// One less under `key`; the entry goes at zero (the maps stay as small as what is open).
fn decrement(map: &mut HashMap<IpAddr, usize>, key: &IpAddr) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl<S: QueueStore, O: Observer, K: KeyStore> Mailbox<S, O, K> {
    /// A connection attempt from `ip`, whose address QUIC has `validated` (the peer
    /// answered a Retry) or not. Only established connections count towards
    /// [`Policy::max_connections_per_address`]: a handshake that never completes (an Initial
    /// from a spoofed address) counts only among the address's handshakes in progress, and
    /// beyond [`Policy::max_handshakes_per_address`] of those an unvalidated attempt gets a
    /// Retry, which only the real owner of the address can answer. A validated attempt is
    /// refused when the address's connections and validated handshakes fill its cap (spoofed
    /// handshakes never count against it); any attempt is refused when the address has its
    /// connections, or the mailbox is stopping.
    pub fn handle_incoming(&self, ip: IpAddr, validated: bool) -> Admission {
        let address = address_key(ip);
        let mut state = self.state();
        let open = state.per_address.get(&address).copied().unwrap_or(0);
        let shaking = |map: &HashMap<IpAddr, usize>| map.get(&address).copied().unwrap_or(0);
        let (unvalidated, valid) = (
            shaking(&state.handshakes),
            shaking(&state.validated_handshakes),
        );
        let max = self.policy.max_connections_per_address;
        let full = if validated {
            open + valid >= max
        } else {
            open >= max
        };
        if full || self.is_stopping() {
            drop(state);
            self.observer
                .observe(Tally::Refused(ErrorCode::RateLimited));
            return Admission::Refuse;
        }
        if validated {
            state.validated_handshakes.insert(address, valid + 1);
        } else if unvalidated >= self.policy.max_handshakes_per_address {
            return Admission::Retry;
        } else {
            state.handshakes.insert(address, unvalidated + 1);
        }
        let id = ConnId(state.next_conn);
        state.next_conn += 1;
        state.conns.insert(
            id,
            Conn {
                address,
                session: None,
                validated,
            },
        );
        Admission::Accept(id)
    }

    /// The handshake of `conn` is done (its peer has proved its address): `challenge` (fresh
    /// random bytes) is what its logins sign, with `exporter`, the TLS exporter value of the
    /// connection. It now counts towards its address's connections; `false` when that
    /// would be one too many (the driver closes it, then reports it closed).
    pub fn handle_established(
        &self,
        conn: ConnId,
        challenge: [u8; CHALLENGE_LEN],
        exporter: [u8; CHALLENGE_LEN],
    ) -> bool {
        let mut state = self.state();
        let State {
            conns,
            per_address,
            handshakes,
            validated_handshakes,
            ..
        } = &mut *state;
        let Some(c) = conns.get_mut(&conn).filter(|c| c.session.is_none()) else {
            return false;
        };
        let open = per_address.get(&c.address).copied().unwrap_or(0);
        if open >= self.policy.max_connections_per_address {
            return false;
        }
        let shaking = if c.validated {
            validated_handshakes
        } else {
            handshakes
        };
        decrement(shaking, &c.address);
        per_address.insert(c.address, open + 1);
        c.session = Some(ServerSession::new(challenge, exporter));
        drop(state);
        self.observer.observe(Tally::Connected);
        true
    }

    /// What the core holds for open connections and handshakes, by map (the non-empty
    /// ones): tests check that a closed connection leaves nothing behind.
    #[cfg(test)]
    pub(crate) fn held(&self) -> Vec<(&'static str, usize)> {
        let s = self.state();
        let counted = |m: &HashMap<IpAddr, usize>| m.values().sum::<usize>();
        [
            ("conns", s.conns.len()),
            ("per_address", counted(&s.per_address)),
            ("handshakes", counted(&s.handshakes)),
            ("validated_handshakes", counted(&s.validated_handshakes)),
            ("listeners", s.listeners.values().map(Vec::len).sum()),
            ("pending", s.pending.values().map(VecDeque::len).sum()),
            ("ready", s.ready.len()),
            ("quiet", s.quiet.len()),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }

    /// `conn` ended (or never finished its handshake): forget its logins and let its address
    /// open another.
    pub fn handle_closed(&self, conn: ConnId) {
        let mut state = self.state();
        let Some(closed) = state.conns.remove(&conn) else {
            return;
        };
        if closed.session.is_some() {
            decrement(&mut state.per_address, &closed.address);
        } else if closed.validated {
            decrement(&mut state.validated_handshakes, &closed.address);
        } else {
            decrement(&mut state.handshakes, &closed.address);
        }
        let mut logged_out = 0;
        state.listeners.retain(|_, conns| {
            let before = conns.len();
            conns.retain(|c| *c != conn);
            logged_out += (before - conns.len()) as u64;
            !conns.is_empty()
        });
        state.pending.remove(&conn);
        state.ready.retain(|c| *c != conn);
        state.quiet.retain(|(c, _)| *c != conn);
        drop(state);
        if closed.session.is_some() {
            self.observer.observe(Tally::Disconnected);
        }
        if logged_out > 0 {
            self.observer.observe(Tally::LoggedOut(logged_out));
        }
    }
}
