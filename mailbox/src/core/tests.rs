//! The mailbox's protocol behaviour, stepped in memory: the core over [`MemoryQueue`],
//! clients as [`ClientSession`]s whose frames are encoded, handed to the core and decoded
//! back, and a clock that moves only when a test moves it. No runtime, no sockets, no sleeps:
//! the whole file runs in well under a second (most of it is sealing envelopes).
//!
//! The process-level twins of these tests (real QUIC, real sled, kill -9) are in
//! `tests/e2e/mailbox/`.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crypto::rand::SeedableRng as _;
use crypto::rand::rngs::StdRng;
use crypto::{Draft, Fingerprint, Identity, MessageId, MessageKind, Sealed};

use super::*;
use crate::protocol::{FrameError, VERSIONS};
use crate::store::MemoryQueue;

/// Poll a future of the core once: over [`MemoryQueue`] nothing ever waits.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the in-memory store never waits"),
    }
}

/// Four identities, made once for the whole file (key generation is the slow part).
fn people() -> &'static [Arc<Identity>; 4] {
    static PEOPLE: OnceLock<[Arc<Identity>; 4]> = OnceLock::new();
    PEOPLE.get_or_init(|| {
        [11, 12, 13, 14].map(|seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            Arc::new(Identity::generate_with_rng(&mut rng).unwrap())
        })
    })
}

fn seal(from: &Identity, to: &Identity, seq: u64) -> Sealed {
    let draft = Draft {
        kind: MessageKind::Text,
        seq,
        prev: None,
        sent_at: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        body: format!("message {seq}").into_bytes(),
    };
    from.seal(to.public_key(), &draft).unwrap()
}

/// Everything the core counted.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Tally>>);

impl Observer for Recorder {
    fn observe(&self, tally: Tally) {
        self.0.lock().unwrap().push(tally);
    }
}

impl Recorder {
    fn take(&self) -> Vec<Tally> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The mailbox core, its clock, and the clients talking to it.
struct World {
    mailbox: Mailbox<MemoryQueue, Arc<Recorder>>,
    tallies: Arc<Recorder>,
    now_ms: u64,
    next_challenge: u8,
}

/// One client connection.
struct Peer {
    conn: ConnId,
    session: ClientSession,
}

const HOME: [u8; 4] = [192, 0, 2, 1];

fn policy() -> Policy {
    Policy::from_config(&config::MailboxConfig::default()).unwrap()
}

impl World {
    fn new(policy: Policy) -> Self {
        let tallies = Arc::new(Recorder::default());
        let decoy = people()[3].public_key().clone();
        Self {
            mailbox: Mailbox::new(MemoryQueue::default(), policy, decoy, tallies.clone()),
            tallies,
            now_ms: 1_800_000_000_000,
            next_challenge: 0,
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now_ms += u64::try_from(by.as_millis()).unwrap();
    }

    /// A connection from `ip` that finished its handshake, not yet welcomed.
    fn connect_raw(&mut self, ip: [u8; 4]) -> Option<Peer> {
        let Admission::Accept(conn) = self.mailbox.handle_incoming(IpAddr::from(ip), false) else {
            return None;
        };
        self.next_challenge += 1;
        let (challenge, exporter) = ([self.next_challenge; 32], [!self.next_challenge; 32]);
        if !self.mailbox.handle_established(conn, challenge, exporter) {
            self.mailbox.handle_closed(conn);
            return None;
        }
        Some(Peer {
            conn,
            session: ClientSession::new(exporter),
        })
    }

    /// A welcomed connection with `who` logged in.
    fn connect_as(&mut self, who: &[&Identity]) -> Peer {
        self.connect_from(HOME, who)
    }

    /// A welcomed connection from `ip` with `who` logged in.
    fn connect_from(&mut self, ip: [u8; 4], who: &[&Identity]) -> Peer {
        let mut peer = self.connect_raw(ip).unwrap();
        let hello = peer.session.hello();
        let welcome = self.request(&peer, &hello);
        peer.session.handle_welcome(welcome).unwrap();
        for identity in who {
            self.login(&mut peer, identity).unwrap();
        }
        peer
    }

    fn login(&self, peer: &mut Peer, who: &Identity) -> Result<Fingerprint, SessionError> {
        let (challenge, exporter) = peer.session.login_material()?;
        let proof = who.sign_login(&challenge, &exporter).unwrap();
        let request = peer.session.login(who.public_key().der(), proof);
        let answer = self.request(peer, &request);
        peer.session.handle_logged_in(answer)
    }

    /// Bytes in, bytes out: the request is encoded and its answer decoded, as on the wire.
    fn request_bytes(&self, peer: &Peer, bytes: &[u8]) -> Response {
        let answer = match self.mailbox.admit_request(peer.conn, self.now_ms) {
            Ok(()) => ready(self.mailbox.handle_request(
                peer.conn,
                self.now_ms,
                Received::Frame(bytes),
            )),
            Err(refusal) => refusal,
        };
        protocol::decode_response(&protocol::encode(&answer)).unwrap()
    }

    fn request(&self, peer: &Peer, request: &Request) -> Response {
        self.request_bytes(peer, &protocol::encode(request))
    }

    fn send(&self, peer: &Peer, from: &Identity, sealed: &Sealed) -> Result<bool, SessionError> {
        let request = ClientSession::send(from.fingerprint(), sealed.bytes.clone())?;
        ClientSession::stored(self.request(peer, &request))
    }

    fn pull(
        &self,
        peer: &Peer,
        who: &Identity,
        max: u32,
    ) -> Result<(Vec<Vec<u8>>, bool), SessionError> {
        let request = Request::Pull {
            recipient: who.fingerprint(),
            max_count: max,
        };
        ClientSession::batch(self.request(peer, &request))
    }

    fn ack(&self, peer: &Peer, who: &Identity, ids: Vec<MessageId>) -> Result<u32, SessionError> {
        ClientSession::acked(self.request(peer, &ClientSession::ack(who.fingerprint(), ids)))
    }

    /// What a driver would push now: every flagged connection's events.
    fn pushes(&self) -> Vec<(ConnId, Event)> {
        let mut out = Vec::new();
        while let Some(conn) = self.mailbox.poll_push() {
            out.extend(std::iter::from_fn(|| self.mailbox.next_push(conn)).map(|e| (conn, e)));
        }
        out
    }
}

#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, SessionError>) -> ErrorCode {
    match result {
        Err(SessionError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[track_caller]
fn code(response: Response) -> ErrorCode {
    match response {
        Response::Error { code, .. } => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn ids(envelopes: &[Vec<u8>]) -> Vec<MessageId> {
    envelopes
        .iter()
        .map(|e| crypto::EnvelopeHeader::parse(e).unwrap().id)
        .collect()
}

#[test]
fn a_login_proof_replayed_on_another_connection_is_refused() {
    let [alice, ..] = people();
    let mut world = World::new(policy());
    let first = world.connect_as(&[]);
    let mut second = world.connect_as(&[]);
    let (challenge, exporter) = first.session.login_material().unwrap();
    let proof = alice.sign_login(&challenge, &exporter).unwrap();

    let replayed = world.request(
        &second,
        &second.session.login(alice.public_key().der(), proof),
    );
    assert_eq!(code(replayed), ErrorCode::LoginFailed);
    assert_eq!(
        refused(world.pull(&second, alice, 10)),
        ErrorCode::NotLoggedIn
    );
    // Nor does a key that is not a key.
    let (challenge, exporter) = second.session.login_material().unwrap();
    let own = alice.sign_login(&challenge, &exporter).unwrap();
    let garbage = world.request(&second, &second.session.login(b"not a key", own));
    assert_eq!(code(garbage), ErrorCode::LoginFailed);
    // The second connection logs in with its own proof.
    assert_eq!(world.login(&mut second, alice), Ok(alice.fingerprint()));
    assert_eq!(world.pull(&second, alice, 10), Ok((vec![], false)));
}

#[test]
fn hello_comes_first_and_an_unsupported_version_is_refused_naming_the_servers() {
    let mut world = World::new(policy());
    let raw = world.connect_raw(HOME).unwrap();
    let pull = Request::Pull {
        recipient: Fingerprint([1; 32]),
        max_count: 1,
    };
    assert_eq!(code(world.request(&raw, &pull)), ErrorCode::HelloFirst);
    match world.request(&raw, &Request::Hello { versions: vec![99] }) {
        Response::Error { code, message } => {
            assert_eq!(code, ErrorCode::UnsupportedVersion);
            assert!(message.contains(&format!("{VERSIONS:?}")), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // It may try again with a version in common; a second Hello is refused.
    let hello = Request::Hello {
        versions: vec![99, VERSIONS[0]],
    };
    assert!(matches!(
        world.request(&raw, &hello),
        Response::Welcome { version, .. } if version == VERSIONS[0]
    ));
    assert_eq!(code(world.request(&raw, &hello)), ErrorCode::HelloFirst);
}

#[test]
fn bad_frames_are_refused_with_their_code_and_the_connection_keeps_working() {
    let [alice, bob, ..] = people();
    let mut world = World::new(policy());
    let peer = world.connect_as(&[alice]);
    let rows: [(&[u8], ErrorCode); 4] = [
        (&[0, 0, 0, 1, 42], ErrorCode::UnknownFrame),
        (&[0, 0, 0], ErrorCode::Malformed),
        (&[0, 0, 0, 2, 2, 0xff], ErrorCode::Malformed),
        (&[0xff, 0xff, 0xff, 0xff], ErrorCode::TooLarge),
    ];
    for (bytes, expected) in rows {
        let answer = world.request_bytes(&peer, bytes);
        assert_eq!(code(answer.clone()), expected, "{bytes:?}: {answer:?}");
    }
    let unknown = FrameError::UnknownType(42).response();
    assert_eq!(world.request_bytes(&peer, &[0, 0, 0, 1, 42]), unknown);
    // A request over the size limit (the driver stopped reading it).
    let too_long = ready(
        world
            .mailbox
            .handle_request(peer.conn, world.now_ms, Received::TooLong),
    );
    assert_eq!(code(too_long), ErrorCode::TooLarge);
    assert_eq!(world.send(&peer, alice, &seal(alice, bob, 1)), Ok(true));
}

#[test]
fn another_identitys_queue_is_out_of_reach() {
    let [alice, bob, carol, _] = people();
    let mut world = World::new(policy());
    let sender = world.connect_as(&[alice]);
    let for_carol = [seal(alice, carol, 1), seal(alice, carol, 2)];
    for sealed in &for_carol {
        assert_eq!(world.send(&sender, alice, sealed), Ok(true));
    }
    let carols: Vec<MessageId> = for_carol.iter().map(|s| s.header.id).collect();

    let intruder = world.connect_as(&[bob]);
    assert_eq!(
        refused(world.pull(&intruder, carol, 10)),
        ErrorCode::NotLoggedIn
    );
    assert_eq!(
        refused(world.ack(&intruder, carol, carols.clone())),
        ErrorCode::NotLoggedIn
    );
    // Nor send as carol (rate limits and accounting are per sender).
    let as_carol = seal(carol, alice, 1);
    assert_eq!(
        refused(world.send(&intruder, carol, &as_carol)),
        ErrorCode::NotLoggedIn
    );
    // Carol's ids acknowledged as bob's: nothing is deleted.
    assert_eq!(world.ack(&intruder, bob, carols.clone()), Ok(0));
    let owner = world.connect_as(&[carol]);
    let (queued, more) = world.pull(&owner, carol, 10).unwrap();
    assert_eq!((ids(&queued), more), (carols, false));
}

#[test]
fn a_send_must_match_its_envelope_and_fit_the_size_limit() {
    let [alice, bob, carol, _] = people();
    let mut limited = policy();
    limited.max_envelope_bytes = 2_000;
    let mut world = World::new(limited);
    let peer = world.connect_as(&[alice]);
    let sealed = seal(alice, bob, 1);
    // Re-addressed: the SEND names carol, the header bob.
    let rerouted = Request::Send {
        sender: alice.fingerprint(),
        recipient: carol.fingerprint(),
        id: sealed.header.id,
        envelope: sealed.bytes.clone(),
    };
    assert_eq!(
        code(world.request(&peer, &rerouted)),
        ErrorCode::BadEnvelope
    );
    let truncated = Request::Send {
        sender: alice.fingerprint(),
        recipient: bob.fingerprint(),
        id: sealed.header.id,
        envelope: sealed.bytes[..60].to_vec(),
    };
    assert_eq!(
        code(world.request(&peer, &truncated)),
        ErrorCode::BadEnvelope
    );
    let mut big = sealed.bytes.clone();
    big.resize(2_001, 0);
    let oversized = Request::Send {
        sender: alice.fingerprint(),
        recipient: bob.fingerprint(),
        id: sealed.header.id,
        envelope: big,
    };
    match world.request(&peer, &oversized) {
        Response::Error { code, message } => {
            assert_eq!(code, ErrorCode::TooLarge);
            assert!(
                message.contains("2001") && message.contains("2000"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(world.send(&peer, alice, &sealed), Ok(true));
}

#[test]
fn a_resent_envelope_is_a_duplicate_only_while_it_is_queued() {
    let [alice, bob, ..] = people();
    let mut world = World::new(policy());
    let sender = world.connect_as(&[alice]);
    let other = world.connect_as(&[alice]);
    let sealed = seal(alice, bob, 1);
    assert_eq!(world.send(&sender, alice, &sealed), Ok(true));
    assert_eq!(world.send(&sender, alice, &sealed), Ok(false), "a retry");
    assert_eq!(
        world.send(&other, alice, &sealed),
        Ok(false),
        "from anywhere"
    );

    let receiver = world.connect_as(&[bob]);
    assert_eq!(
        world.pull(&receiver, bob, 10),
        Ok((vec![sealed.bytes.clone()], false))
    );
    assert_eq!(world.ack(&receiver, bob, vec![sealed.header.id]), Ok(1));
    assert_eq!(world.ack(&receiver, bob, vec![sealed.header.id]), Ok(0));
    // Acknowledged, it is forgotten: a late retry is stored again (the node deduplicates).
    assert_eq!(world.send(&sender, alice, &sealed), Ok(true));
}

#[test]
fn pulls_come_in_bounded_batches_oldest_first() {
    let [alice, bob, ..] = people();
    let mut generous = policy();
    generous.rate = (50.0, 1_000.0);
    let mut world = World::new(generous);
    let sender = world.connect_as(&[alice]);
    let sealed: Vec<Sealed> = (1..=300).map(|i| seal(alice, bob, i)).collect();
    for s in &sealed {
        assert_eq!(world.send(&sender, alice, s), Ok(true));
    }
    let sent: Vec<MessageId> = sealed.iter().map(|s| s.header.id).collect();
    let receiver = world.connect_as(&[bob]);
    let (first, more) = world.pull(&receiver, bob, u32::MAX).unwrap();
    assert_eq!(first.len(), MAX_BATCH_COUNT as usize, "capped");
    assert!(more);
    assert_eq!(ids(&first), sent[..first.len()]);
    let (one, _) = world.pull(&receiver, bob, 0).unwrap();
    assert_eq!(one.len(), 1, "at least one");

    let mut all = Vec::new();
    loop {
        let (batch, more) = world.pull(&receiver, bob, 100).unwrap();
        all.extend(ids(&batch));
        world.ack(&receiver, bob, ids(&batch)).unwrap();
        if !more {
            break;
        }
    }
    assert_eq!(all, sent, "every envelope once, in sending order");
    assert_eq!(world.pull(&receiver, bob, 10), Ok((vec![], false)));
    // An ACK names at most MAX_ACK_IDS ids.
    let many = vec![MessageId([1; 16]); MAX_ACK_IDS + 1];
    assert_eq!(
        refused(world.ack(&receiver, bob, many)),
        ErrorCode::TooLarge
    );
}

#[test]
fn an_arrival_is_pushed_to_every_connection_of_the_recipient_and_no_other() {
    let [alice, bob, carol, _] = people();
    let mut world = World::new(policy());
    let phone = world.connect_as(&[bob]);
    let laptop = world.connect_as(&[bob, carol]);
    let sender = world.connect_as(&[alice]);
    assert_eq!(world.pushes(), []);
    assert_eq!(world.send(&sender, alice, &seal(alice, bob, 1)), Ok(true));
    let arrived = Event::Arrived {
        recipient: bob.fingerprint(),
    };
    assert_eq!(
        world.pushes(),
        [
            (phone.conn, arrived.clone()),
            (laptop.conn, arrived.clone())
        ]
    );
    // A duplicate stores nothing and pushes nothing.
    assert_eq!(world.send(&sender, alice, &seal(alice, bob, 1)), Ok(true));
    assert_eq!(world.pushes(), []);
    world.mailbox.handle_closed(phone.conn);
    world.pull(&laptop, bob, 10).unwrap();
    assert_eq!(world.send(&sender, alice, &seal(alice, bob, 2)), Ok(true));
    assert_eq!(world.pushes(), [(laptop.conn, arrived)]);
}

#[test]
fn pushes_not_taken_yet_are_one_flag_per_connection_and_identity() {
    let [alice, bob, carol, _] = people();
    let mut world = World::new(policy());
    let laptop = world.connect_as(&[bob, carol]);
    let sender = world.connect_as(&[alice]);
    // The driver takes nothing while 10 envelopes arrive for bob and 10 for carol.
    for n in 0..10 {
        assert_eq!(world.send(&sender, alice, &seal(alice, bob, n)), Ok(true));
        assert_eq!(world.send(&sender, alice, &seal(alice, carol, n)), Ok(true));
    }
    let arrived = |who: &Identity| Event::Arrived {
        recipient: who.fingerprint(),
    };
    assert_eq!(
        world.pushes(),
        [(laptop.conn, arrived(bob)), (laptop.conn, arrived(carol))]
    );
    assert_eq!(world.pushes(), [], "taken");
    // Once taken and pulled, the next arrival is flagged again.
    world.pull(&laptop, bob, 10).unwrap();
    assert_eq!(world.send(&sender, alice, &seal(alice, bob, 99)), Ok(true));
    assert_eq!(world.pushes(), [(laptop.conn, arrived(bob))]);
    // A closed connection's flags go with it.
    world.pull(&laptop, bob, 10).unwrap();
    assert_eq!(world.send(&sender, alice, &seal(alice, bob, 100)), Ok(true));
    world.mailbox.handle_closed(laptop.conn);
    assert_eq!(world.pushes(), []);
}

/// A push says "pull now"; another before the connection pulls would say it again. So
/// after a push for an identity, its arrivals push nothing more on that connection until
/// that connection pulls its queue; other identities and connections are their own.
#[test]
fn after_a_push_the_next_waits_until_the_connection_pulls() {
    let [alice, bob, carol, _] = people();
    let mut world = World::new(policy());
    let laptop = world.connect_as(&[bob, carol]);
    let phone = world.connect_as(&[bob]);
    let sender = world.connect_as(&[alice]);
    let arrived = |who: &Identity| Event::Arrived {
        recipient: who.fingerprint(),
    };
    assert_eq!(world.send(&sender, alice, &seal(alice, bob, 1)), Ok(true));
    assert_eq!(
        world.pushes(),
        [(laptop.conn, arrived(bob)), (phone.conn, arrived(bob))]
    );
    for n in 2..10 {
        assert_eq!(world.send(&sender, alice, &seal(alice, bob, n)), Ok(true));
    }
    assert_eq!(world.pushes(), [], "neither has pulled since its push");
    assert_eq!(world.send(&sender, alice, &seal(alice, carol, 1)), Ok(true));
    assert_eq!(world.pushes(), [(laptop.conn, arrived(carol))]);
    // The phone pulls: only the phone hears of the next arrival, which its PULL may
    // have missed.
    let (queued, _) = world.pull(&phone, bob, 100).unwrap();
    assert_eq!(queued.len(), 9, "everything pushed for is there to pull");
    assert_eq!(world.send(&sender, alice, &seal(alice, bob, 10)), Ok(true));
    assert_eq!(world.pushes(), [(phone.conn, arrived(bob))]);
    // A refused PULL (carol is not logged in on the phone) changes nothing.
    assert!(world.pull(&phone, carol, 10).is_err());
    assert_eq!(world.send(&sender, alice, &seal(alice, carol, 2)), Ok(true));
    assert_eq!(world.pushes(), []);
    world.pull(&laptop, carol, 10).unwrap();
    assert_eq!(world.send(&sender, alice, &seal(alice, carol, 3)), Ok(true));
    assert_eq!(world.pushes(), [(laptop.conn, arrived(carol))]);
}

/// Every connection's entries (its logins, pushes waiting, quiet identities, its count
/// under its address) go when it closes: what the core holds follows the open connections,
/// not every connection there ever was.
#[test]
fn a_closed_connection_leaves_nothing_behind() {
    let [alice, bob, carol, _] = people();
    let mut world = World::new(policy());
    let sender = world.connect_as(&[alice]);
    let laptops: Vec<Peer> = (0..5).map(|_| world.connect_as(&[bob, carol])).collect();
    let Admission::Accept(handshake) = world.mailbox.handle_incoming(IpAddr::from(HOME), false)
    else {
        panic!("a handshake is refused");
    };
    for n in 0..3 {
        assert_eq!(world.send(&sender, alice, &seal(alice, bob, n)), Ok(true));
        assert_eq!(world.send(&sender, alice, &seal(alice, carol, n)), Ok(true));
    }
    assert_eq!(world.pushes().len(), 10, "one push per laptop and identity");
    // And one more waiting on each laptop for bob: it pulled carol's queue only.
    for laptop in &laptops {
        world.pull(laptop, carol, 10).unwrap();
    }
    assert_eq!(world.send(&sender, alice, &seal(alice, carol, 9)), Ok(true));
    let held = world.mailbox.held();
    assert_eq!(
        held,
        [
            ("conns", 7),
            ("per_address", 6),
            ("handshakes", 1),
            ("listeners", 11),
            ("pending", 5),
            ("ready", 5),
            ("quiet", 5),
        ]
    );
    for peer in laptops.iter().chain([&sender]) {
        world.mailbox.handle_closed(peer.conn);
    }
    world.mailbox.handle_closed(handshake);
    assert_eq!(world.mailbox.held(), []);
}

#[test]
fn one_identity_is_logged_in_on_a_bounded_number_of_connections() {
    let [alice, ..] = people();
    let mut few = policy();
    few.max_logins_per_identity = 2;
    let mut world = World::new(few);
    let first = world.connect_as(&[alice]);
    let _second = world.connect_as(&[alice]);
    let mut third = world.connect_as(&[]);
    assert_eq!(
        refused(world.login(&mut third, alice)),
        ErrorCode::RateLimited
    );
    // Logging in again where it is logged in already is no new connection.
    let mut again = first;
    assert!(world.login(&mut again, alice).is_ok());
    world.mailbox.handle_closed(again.conn);
    assert!(
        world.login(&mut third, alice).is_ok(),
        "a closed one frees its place"
    );
}

/// A world with `policy` where alice's first two `sealed` envelopes are stored and the
/// third is refused as `mailbox_full`; and alice's connection.
fn two_fit_and_the_third_is_refused(policy: Policy, sealed: &[Sealed]) -> (World, Peer) {
    let alice = &people()[0];
    let mut world = World::new(policy);
    let sender = world.connect_as(&[alice]);
    for s in &sealed[..2] {
        assert_eq!(world.send(&sender, alice, s), Ok(true));
    }
    assert_eq!(
        refused(world.send(&sender, alice, &sealed[2])),
        ErrorCode::MailboxFull
    );
    (world, sender)
}

/// Anyone may SEND to any fingerprint, so the per-recipient quota alone cannot keep the
/// disk: past the total cap (live bytes), below the free-disk watermark, or past what one
/// sending address may have queued, SENDs are refused for now, and pulls and
/// acknowledgements go on, freeing room.
#[test]
fn a_full_mailbox_refuses_sends_for_now_and_serves_everything_else() {
    let [alice, bob, ..] = people();
    let sealed: Vec<Sealed> = (1..=3).map(|i| seal(alice, bob, i)).collect();
    let size = u64::try_from(sealed[0].bytes.len()).unwrap();
    let mut capped = policy();
    capped.max_total_bytes = Some(2 * size + size / 2);
    let (mut world, sender) = two_fit_and_the_third_is_refused(capped, &sealed);
    let receiver = world.connect_as(&[bob]);
    let (queued, _) = world.pull(&receiver, bob, 10).unwrap();
    assert_eq!(queued.len(), 2, "pulls go on");
    assert_eq!(world.ack(&receiver, bob, vec![sealed[0].header.id]), Ok(1));
    assert_eq!(
        world.send(&sender, alice, &sealed[2]),
        Ok(true),
        "room again"
    );

    // Envelopes in all (they cost the mailbox memory, whatever their size).
    let mut capped = policy();
    capped.max_total_envelopes = 2;
    let (mut world, _) = two_fit_and_the_third_is_refused(capped, &sealed);
    let receiver = world.connect_as(&[bob]);
    assert_eq!(world.ack(&receiver, bob, vec![sealed[0].header.id]), Ok(1));

    // The disk: the driver reports its free space.
    let mut world = World::new(policy());
    let sender = world.connect_as(&[alice]);
    let watermark = policy().min_free_disk_bytes;
    world.mailbox.handle_disk_free(watermark - 1);
    assert_eq!(
        refused(world.send(&sender, alice, &sealed[0])),
        ErrorCode::MailboxFull
    );
    world.mailbox.handle_disk_free(watermark);
    assert_eq!(world.send(&sender, alice, &sealed[0]), Ok(true));

    // One sending address, in envelopes as in bytes: made-up recipients do not get around
    // its bound, and another address still gets through.
    let mut bounded = policy();
    bounded.quota.origin_envelopes = 2;
    two_fit_and_the_third_is_refused(bounded, &sealed);
    let mut bounded = policy();
    bounded.quota.origin_bytes = 2 * size + size / 2;
    let (mut world, sender) = two_fit_and_the_third_is_refused(bounded, &sealed);
    let [.., carol, _] = people();
    let elsewhere = world.connect_from([192, 0, 2, 9], &[carol]);
    assert_eq!(
        world.send(&elsewhere, carol, &seal(carol, bob, 1)),
        Ok(true),
        "another address is not held back"
    );
    let receiver = world.connect_as(&[bob]);
    assert_eq!(world.ack(&receiver, bob, vec![sealed[0].header.id]), Ok(1));
    assert_eq!(
        world.send(&sender, alice, &sealed[2]),
        Ok(true),
        "room again once delivered"
    );
}

#[test]
fn a_full_queue_refuses_until_the_recipient_catches_up() {
    let [alice, bob, ..] = people();
    let mut small = policy();
    small.quota.envelopes = 3;
    let mut world = World::new(small);
    let sender = world.connect_as(&[alice]);
    let sealed: Vec<Sealed> = (1..=5).map(|i| seal(alice, bob, i)).collect();
    for s in &sealed[..3] {
        assert_eq!(world.send(&sender, alice, s), Ok(true));
    }
    assert_eq!(
        refused(world.send(&sender, alice, &sealed[3])),
        ErrorCode::Quota
    );
    assert_eq!(world.send(&sender, alice, &sealed[2]), Ok(false), "a retry");
    let receiver = world.connect_as(&[bob]);
    assert_eq!(world.ack(&receiver, bob, vec![sealed[0].header.id]), Ok(1));
    assert_eq!(
        world.send(&sender, alice, &sealed[3]),
        Ok(true),
        "room again"
    );
    assert_eq!(
        refused(world.send(&sender, alice, &sealed[4])),
        ErrorCode::Quota
    );
    let (queued, _) = world.pull(&receiver, bob, 10).unwrap();
    assert_eq!(ids(&queued), [1, 2, 3].map(|i| sealed[i].header.id));
}

#[test]
fn a_sender_over_its_rate_is_refused_until_time_refills_it_and_others_are_not() {
    let [alice, bob, ..] = people();
    let mut slow = policy();
    slow.rate = (0.5, 2.0);
    let mut world = World::new(slow);
    let sender = world.connect_as(&[alice]);
    let other = world.connect_as(&[bob]);
    let sealed: Vec<Sealed> = (1..=3).map(|i| seal(alice, bob, i)).collect();
    assert_eq!(world.send(&sender, alice, &sealed[0]), Ok(true));
    assert_eq!(world.send(&sender, alice, &sealed[1]), Ok(true));
    assert_eq!(
        refused(world.send(&sender, alice, &sealed[2])),
        ErrorCode::RateLimited
    );
    assert_eq!(
        world.send(&other, bob, &seal(bob, alice, 1)),
        Ok(true),
        "per identity"
    );
    world.advance(Duration::from_millis(1_999));
    assert_eq!(
        refused(world.send(&sender, alice, &sealed[2])),
        ErrorCode::RateLimited
    );
    world.advance(Duration::from_millis(1));
    assert_eq!(
        world.send(&sender, alice, &sealed[2]),
        Ok(true),
        "a token is back"
    );
}

#[test]
fn an_address_over_its_request_rate_is_refused() {
    let mut busy = policy();
    busy.address_rate = (1.0, 3.0);
    let mut world = World::new(busy);
    // Hello and two more requests spend the burst of three.
    let peer = world.connect_as(&[]);
    let pull = Request::Pull {
        recipient: Fingerprint([1; 32]),
        max_count: 1,
    };
    assert_eq!(code(world.request(&peer, &pull)), ErrorCode::NotLoggedIn);
    assert_eq!(code(world.request(&peer, &pull)), ErrorCode::NotLoggedIn);
    assert_eq!(code(world.request(&peer, &pull)), ErrorCode::RateLimited);
    // Another connection from the same address shares the bucket; another address does not.
    let same = world.connect_raw(HOME).unwrap();
    assert_eq!(code(world.request(&same, &pull)), ErrorCode::RateLimited);
    let elsewhere = world.connect_raw([198, 51, 100, 7]).unwrap();
    assert_eq!(
        code(world.request(&elsewhere, &pull)),
        ErrorCode::HelloFirst
    );
    world.advance(Duration::from_secs(1));
    assert_eq!(code(world.request(&peer, &pull)), ErrorCode::NotLoggedIn);
}

#[test]
fn connections_per_address_are_bounded_and_a_closed_one_frees_its_place() {
    let mut few = policy();
    few.max_connections_per_address = 2;
    let mut world = World::new(few);
    let first = world.connect_raw(HOME).unwrap();
    let _second = world.connect_raw(HOME).unwrap();
    assert!(
        world.connect_raw(HOME).is_none(),
        "a third from one address"
    );
    // An IPv6 /64 counts as one address (validated handshakes in progress count too).
    let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 1, 2, 0, 0, 0, last]);
    let accepted = |a| matches!(a, Admission::Accept(_));
    assert!(accepted(world.mailbox.handle_incoming(v6(1), true)));
    assert!(accepted(world.mailbox.handle_incoming(v6(2), true)));
    assert_eq!(
        world.mailbox.handle_incoming(v6(3), true),
        Admission::Refuse
    );
    world.mailbox.handle_closed(first.conn);
    world.mailbox.handle_closed(first.conn);
    assert!(world.connect_raw(HOME).is_some(), "room again, once");
    assert!(world.connect_raw(HOME).is_none());
    assert_eq!(world.mailbox.connections(), 4);
}

/// Spoofed Initials (handshakes that never complete) cannot lock an address out: beyond a
/// few in progress, an unvalidated attempt gets a Retry, which only the address's real
/// owner answers; validated, it is admitted, and only completed handshakes count towards
/// the address's connections.
#[test]
fn handshakes_that_never_complete_do_not_lock_an_address_out() {
    let mut few = policy();
    few.max_connections_per_address = 4;
    few.max_handshakes_per_address = 3;
    let world = World::new(few);
    let victim = IpAddr::from(HOME);
    for _ in 0..3 {
        assert!(matches!(
            world.mailbox.handle_incoming(victim, false),
            Admission::Accept(_)
        ));
    }
    // However many more spoofed Initials arrive, they cost nothing: each gets a Retry.
    for _ in 0..1_000 {
        assert_eq!(
            world.mailbox.handle_incoming(victim, false),
            Admission::Retry
        );
    }
    // The real owner answers the Retry and gets in.
    let Admission::Accept(conn) = world.mailbox.handle_incoming(victim, true) else {
        panic!("the validated peer was refused");
    };
    assert!(world.mailbox.handle_established(conn, [1; 32], [2; 32]));
    // Established connections and validated handshakes are what the cap counts: the
    // spoofed handshakes in progress never do.
    for _ in 0..3 {
        assert!(matches!(
            world.mailbox.handle_incoming(victim, true),
            Admission::Accept(_)
        ));
    }
    assert_eq!(
        world.mailbox.handle_incoming(victim, true),
        Admission::Refuse,
        "1 connection and 3 validated handshakes fill the 4"
    );
}

/// Issue 17: an allowlisted mailbox serves its members, like a mail server: anyone may log
/// in to deliver to a member; only a member may be a recipient, PULL or ACK; a SEND to
/// anyone else is refused and stores nothing.
#[test]
fn an_allowlisted_mailbox_takes_mail_for_its_members_only() {
    let [alice, bob, carol, ..] = people();
    let mut listed = policy();
    listed.allowlist.insert(alice.fingerprint());
    let mut world = World::new(listed);
    // Bob, a stranger here, logs in and delivers to alice.
    let mut stranger = world.connect_as(&[]);
    assert_eq!(world.login(&mut stranger, bob), Ok(bob.fingerprint()));
    let to_alice = seal(bob, alice, 1);
    assert_eq!(world.send(&stranger, bob, &to_alice), Ok(true));
    // Mail for someone who is not a member is refused, and nothing is kept.
    let to_carol = seal(bob, carol, 1);
    assert_eq!(
        refused(world.send(&stranger, bob, &to_carol)),
        ErrorCode::NotAllowed
    );
    assert_eq!(
        world.mailbox.store().stats().envelopes,
        1,
        "only alice's is stored"
    );
    // The stranger's own queue is not served here.
    assert_eq!(
        refused(world.pull(&stranger, bob, 10)),
        ErrorCode::NotAllowed
    );
    assert_eq!(
        refused(world.ack(&stranger, bob, vec![to_carol.header.id])),
        ErrorCode::NotAllowed
    );
    // The member pulls and acknowledges hers.
    let member = world.connect_as(&[alice]);
    let (queued, _) = world.pull(&member, alice, 10).unwrap();
    assert_eq!(ids(&queued), [to_alice.header.id]);
    assert_eq!(world.ack(&member, alice, ids(&queued)), Ok(1));
}

#[test]
fn retention_deletes_what_is_older_than_the_period_and_counts_it() {
    let [alice, bob, ..] = people();
    let mut short = policy();
    short.retention = Duration::from_secs(3_600);
    let mut world = World::new(short);
    let sender = world.connect_as(&[alice]);
    assert_eq!(world.send(&sender, alice, &seal(alice, bob, 1)), Ok(true));
    world.advance(Duration::from_secs(1_800));
    let young = seal(alice, bob, 2);
    assert_eq!(world.send(&sender, alice, &young), Ok(true));
    world.tallies.take();
    assert_eq!(ready(world.mailbox.expire(world.now_ms)).unwrap(), 0);
    world.advance(Duration::from_secs(1_801));
    assert_eq!(ready(world.mailbox.expire(world.now_ms)).unwrap(), 1);
    assert_eq!(world.tallies.take(), [Tally::Expired(0), Tally::Expired(1)]);
    let receiver = world.connect_as(&[bob]);
    assert_eq!(
        world.pull(&receiver, bob, 10),
        Ok((vec![young.bytes], false))
    );
}

#[test]
fn a_stopping_mailbox_refuses_new_connections_and_requests() {
    let [alice, bob, ..] = people();
    let mut world = World::new(policy());
    let peer = world.connect_as(&[alice]);
    world.mailbox.stop();
    assert!(world.connect_raw(HOME).is_none());
    assert_eq!(
        refused(world.send(&peer, alice, &seal(alice, bob, 1))),
        ErrorCode::Internal
    );
}

#[test]
fn the_observer_hears_connections_logins_deliveries_and_refusals() {
    let [alice, bob, ..] = people();
    let mut world = World::new(policy());
    let sender = world.connect_as(&[alice]);
    let receiver = world.connect_as(&[bob]);
    let sealed = seal(alice, bob, 1);
    world.send(&sender, alice, &sealed).unwrap();
    world.ack(&receiver, bob, vec![sealed.header.id]).unwrap();
    world.pull(&sender, bob, 1).unwrap_err();
    world.mailbox.handle_closed(sender.conn);
    world.mailbox.handle_closed(receiver.conn);
    assert_eq!(
        world.tallies.take(),
        [
            Tally::Connected,
            Tally::LoggedIn,
            Tally::Connected,
            Tally::LoggedIn,
            Tally::Stored,
            Tally::Delivered(1),
            Tally::Refused(ErrorCode::NotLoggedIn),
            Tally::Disconnected,
            Tally::LoggedOut(1),
            Tally::Disconnected,
            Tally::LoggedOut(1),
        ]
    );
}

#[test]
fn a_bad_allowlist_entry_is_refused_naming_it() {
    let config = config::MailboxConfig {
        allowlist: vec!["not-a-fingerprint".into()],
        ..config::MailboxConfig::default()
    };
    let err = Policy::from_config(&config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "allowlist: \"not-a-fingerprint\" is not a fingerprint (64 hex characters)"
    );
}

#[test]
fn per_address_limits_count_ipv6_by_64_prefix() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let key = |s: &str| address_key(ip(s));
    assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
    assert_ne!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:3::1"));
    assert_eq!(key("192.0.2.7"), ip("192.0.2.7"));
    assert_eq!(key("::ffff:192.0.2.7"), ip("192.0.2.7"));
}

mod keys;
