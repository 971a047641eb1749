//! The `Pair` harness, in the manner of quinn-proto's: the mailbox core over its in-memory
//! stores, node cores over in-memory stores, and the sync rounds the real node runs
//! (`node::sync::round`, `node::sync::keys`), carried over an in-memory [`Link`] that encodes
//! every frame, can lose answers and reorder batches, and reads a clock the test moves. No
//! sockets, no processes, no sleeps. Included by the test files that step nodes this way
//! (`#[path = "common/pair.rs"] mod pair;`).

#![allow(dead_code)]

use super::common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crypto::Identity;
use mailbox::client::{ClientError, ConnectionError, ProtocolError, REQUEST_TIMEOUT};
use mailbox::core::{Admission, ClientSession, ConnId, Mailbox, Policy, Received};
use mailbox::protocol::{self, CHALLENGE_LEN, Event, Request, Response};
use mailbox::store::MemoryQueue;
use node::core::service::{Destination, Node};
use node::core::store::{Entry, MessageRecord, Status};
use node::sync::engine::Engine;
use node::sync::round::{self, Link};
use rand::SeedableRng as _;
use rand::rngs::StdRng;

/// The mailbox core and the clock it is given.
pub(crate) struct World {
    pub(crate) mailbox: Arc<Mailbox<MemoryQueue>>,
    pub(crate) now_ms: Arc<AtomicU64>,
    pub(crate) next: u8,
}

impl World {
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            mailbox: Arc::new(Mailbox::new(
                MemoryQueue::default(),
                policy,
                decoy().public_key().clone(),
                (),
            )),
            now_ms: Arc::new(AtomicU64::new(1_800_000_000_000)),
            next: 0,
        }
    }

    /// Move the clock on.
    pub(crate) fn advance(&self, by: std::time::Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap();
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// A welcomed connection.
    pub(crate) async fn connect(&mut self) -> MemLink {
        self.next += 1;
        let Admission::Accept(conn) = self
            .mailbox
            .handle_incoming(IpAddr::from([127, 0, 0, self.next]), false)
        else {
            panic!("refused");
        };
        let (challenge, exporter) = ([self.next; CHALLENGE_LEN], [!self.next; CHALLENGE_LEN]);
        assert!(self.mailbox.handle_established(conn, challenge, exporter));
        let mut link = MemLink {
            mailbox: self.mailbox.clone(),
            now_ms: self.now_ms.clone(),
            conn,
            session: ClientSession::new(exporter),
            lose: Mutex::new(Lose::Nothing),
            reorder: Mutex::new(Reorder::Nothing),
            keys: Mutex::new(KeyFrames::Served),
        };
        let welcome = link.request(link.session.hello()).await.unwrap();
        link.session.handle_welcome(welcome).unwrap();
        link
    }

    /// What the mailbox would push now, and to which connection.
    pub(crate) fn pushes(&self) -> Vec<(ConnId, Event)> {
        let mut out = Vec::new();
        while let Some(conn) = self.mailbox.poll_push() {
            out.extend(std::iter::from_fn(|| self.mailbox.next_push(conn)).map(|e| (conn, e)));
        }
        out
    }
}

/// One connection to the mailbox core, frames encoded and decoded as on the wire.
pub(crate) struct MemLink {
    pub(crate) mailbox: Arc<Mailbox<MemoryQueue>>,
    pub(crate) now_ms: Arc<AtomicU64>,
    pub(crate) conn: ConnId,
    pub(crate) session: ClientSession,
    /// Which answers are lost on the way back (the mailbox does the work all the same).
    pub(crate) lose: Mutex<Lose>,
    /// How batches are reordered on the way back (a network or a mailbox that reorders).
    pub(crate) reorder: Mutex<Reorder>,
    /// What becomes of key publications and claims.
    pub(crate) keys: Mutex<KeyFrames>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reorder {
    Nothing,
    /// Batches come newest first.
    Reverse,
    /// The oldest envelope of a batch stays behind: it stays queued (the node never saw
    /// it, so never acknowledges it) and comes later.
    HoldOldest,
}

/// How the mailbox treats the key frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyFrames {
    /// As the mailbox core answers.
    Served,
    /// A mailbox from before them: `unknown_frame`.
    Unknown,
    /// A lying mailbox: every claim is answered with this bundle instead.
    Forged(Response),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lose {
    Nothing,
    Sends,
    Acks,
}

impl MemLink {
    pub(crate) fn lose(&self, what: Lose) {
        *self.lose.lock().unwrap() = what;
    }

    pub(crate) fn reorder(&self, how: Reorder) {
        *self.reorder.lock().unwrap() = how;
    }
}

impl Link for MemLink {
    fn login_material(&self) -> ([u8; CHALLENGE_LEN], [u8; CHALLENGE_LEN]) {
        self.session.login_material().unwrap()
    }

    async fn request(&self, request: Request) -> Result<Response, ClientError> {
        let key_frame = matches!(
            request,
            Request::PublishKeys { .. } | Request::ClaimKey { .. }
        );
        match (&*self.keys.lock().unwrap(), key_frame) {
            (KeyFrames::Unknown, true) => {
                return Ok(Response::error(
                    protocol::ErrorCode::UnknownFrame,
                    "unknown frame type",
                ));
            }
            (KeyFrames::Forged(answer), true) if matches!(request, Request::ClaimKey { .. }) => {
                return Ok(answer.clone());
            }
            _ => {}
        }
        let frame = protocol::encode(&request);
        let now = self.now_ms.load(Ordering::SeqCst);
        let answer = self
            .mailbox
            .handle_request(self.conn, now, Received::Frame(&frame))
            .await;
        let lost = match *self.lose.lock().unwrap() {
            Lose::Nothing => false,
            Lose::Sends => matches!(request, Request::Send { .. }),
            Lose::Acks => matches!(request, Request::Ack { .. }),
        };
        if lost {
            // What a real client sees when an answer never comes.
            return Err(ConnectionError::Timeout(REQUEST_TIMEOUT).into());
        }
        let mut answer =
            protocol::decode_response(&protocol::encode(&answer)).map_err(ProtocolError::from)?;
        if let Response::Batch { envelopes, .. } = &mut answer {
            match *self.reorder.lock().unwrap() {
                Reorder::Nothing => {}
                Reorder::Reverse => envelopes.reverse(),
                Reorder::HoldOldest if !envelopes.is_empty() => drop(envelopes.remove(0)),
                Reorder::HoldOldest => {}
            }
        }
        Ok(answer)
    }
}

/// A node with one identity, its sync engine and its connection.
pub(crate) struct Peer {
    pub(crate) node: Arc<Node>,
    pub(crate) engine: Engine<StdRng>,
    pub(crate) link: MemLink,
    pub(crate) id: &'static str,
    pub(crate) _keys: tempfile::TempDir,
}

impl Peer {
    pub(crate) async fn new(world: &mut World, id: &'static str) -> Self {
        let (node, keys) = common::memory_node();
        node.create_identity(id.into(), None).await.unwrap();
        let mut engine = Engine::new(std::time::Duration::from_secs(30), StdRng::seed_from_u64(7));
        engine.start();
        Self {
            node,
            engine,
            link: world.connect().await,
            id,
            _keys: keys,
        }
    }

    pub(crate) fn identity(&self) -> Arc<Identity> {
        self.node.identity(self.id).unwrap()
    }

    pub(crate) async fn knows(&self, other: &Peer) {
        let pem = other.identity().public_key().to_pem();
        self.node
            .add_contact(self.id.into(), other.id.into(), pem)
            .await
            .unwrap();
    }

    pub(crate) async fn send(&self, to: &str, text: &str) -> MessageRecord {
        self.node
            .send_text(self.id.into(), to.into(), text.into())
            .await
            .unwrap()
    }

    /// One whole sync round, as the node's driver runs it: seal the receipts due, log in,
    /// publish keys and claim contacts' keys (forward secrecy), deliver, pull.
    pub(crate) async fn sync(&mut self) -> Result<(), node::sync::SyncError> {
        // The receipts task's delay has passed since the last round: what is due is sealed.
        self.node.seal_due_receipts()?;
        round::login_new(&self.node, &self.link, &mut self.engine).await?;
        let now = self.link.now_ms.load(Ordering::SeqCst);
        node::sync::keys::publish_keys(&self.node, &self.link, now).await?;
        node::sync::keys::claim_keys(
            &self.node,
            &self.link,
            &self.engine,
            &Destination::Home,
            now,
        )
        .await?;
        round::drain_outbox(
            &self.node,
            &self.link,
            &mut self.engine,
            &Destination::Home,
            now,
        )
        .await?;
        round::pull_all(&self.node, &self.link).await
    }

    pub(crate) fn conversation(&self, with: &str) -> Vec<Entry> {
        let mut page = self.node.messages(self.id, with, None, 1000).unwrap();
        page.reverse();
        page
    }

    pub(crate) fn texts(&self, with: &str) -> Vec<String> {
        self.conversation(with)
            .iter()
            .map(|e| match e {
                Entry::Message(m) => m.text.clone(),
                Entry::Gap { missing, .. } => format!("<gap {missing}>"),
                Entry::Note { text, .. } => format!("<note {text}>"),
            })
            .collect()
    }

    pub(crate) fn status(&self, with: &str, text: &str) -> (Status, Option<String>) {
        self.conversation(with)
            .iter()
            .find_map(|e| match e {
                Entry::Message(m) if m.text == text => Some((m.status, m.error.clone())),
                _ => None,
            })
            .unwrap()
    }
}

pub(crate) fn decoy() -> &'static Identity {
    static DECOY: OnceLock<Identity> = OnceLock::new();
    DECOY.get_or_init(|| Identity::generate_with_rng(&mut StdRng::seed_from_u64(99)).unwrap())
}

pub(crate) fn policy() -> Policy {
    Policy::from_config(&config::MailboxConfig::default()).unwrap()
}

/// alice and bob, each on a node, knowing each other, connected to `world`.
pub(crate) async fn alice_and_bob(world: &mut World) -> (Peer, Peer) {
    let alice = Peer::new(world, "alice").await;
    let bob = Peer::new(world, "bob").await;
    alice.knows(&bob).await;
    bob.knows(&alice).await;
    (alice, bob)
}
