//! Forward secrecy between two nodes (the `Pair` harness): keys published and claimed
//! through the mailbox core, conversations in envelope version 2, and what a thief of
//! today's state can read of what was captured before.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/pair.rs"]
mod pair;

use crypto::{Device, EnvelopeHeader, EnvelopeV2, PickleKey, Session};
use mailbox::store::QueueStore as _;
use node::core::store::keys;
use pair::*;

/// Everything queued for `peer` at the mailbox now (what a mailbox operator, or anyone
/// recording its disk, holds), without taking it.
async fn queued_for(world: &World, peer: &Peer) -> Vec<Vec<u8>> {
    let fp = peer.identity().fingerprint();
    world
        .mailbox
        .store()
        .pull(&fp, 1000, usize::MAX)
        .await
        .unwrap()
        .0
}

fn version(envelope: &[u8]) -> u8 {
    EnvelopeHeader::parse(envelope).unwrap().version
}

/// Both publish their keys, then (a minute on, when a contact whose mailbox had no key is
/// asked again) each claims the other's: from then on they talk in v2.
async fn with_sessions(world: &mut World) -> (Peer, Peer) {
    let (mut alice, mut bob) = alice_and_bob(world).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    world.advance(std::time::Duration::from_secs(61));
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yesterdays_captured_envelopes_do_not_open_with_todays_keys() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    // Before any keys are published: version 1, the control.
    alice.send("bob", "before keys").await;
    alice.sync().await.unwrap();
    let mut captured: Vec<Vec<u8>> = queued_for(&world, &bob).await;
    bob.sync().await.unwrap();
    world.advance(std::time::Duration::from_secs(61));
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();

    // Yesterday: a conversation, every envelope recorded at the mailbox on its way.
    // The conversation as both see it.
    let mut expected = vec!["before keys".to_owned()];
    for round in 0..3 {
        for n in 0..2 {
            let text = format!("to bob {round}.{n}");
            alice.send("bob", &text).await;
            expected.push(text);
        }
        alice.sync().await.unwrap();
        captured.extend(queued_for(&world, &bob).await);
        bob.sync().await.unwrap();
        let reply = format!("to alice {round}");
        bob.send("alice", &reply).await;
        expected.push(reply);
        bob.sync().await.unwrap();
        captured.extend(queued_for(&world, &alice).await);
        alice.sync().await.unwrap();
    }
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), expected);
    assert_eq!(alice.texts("bob"), expected);
    // From version 1 to version 2 in one conversation, the chain holds.
    assert!(warnings(&bob, "alice").is_empty());
    assert!(warnings(&alice, "bob").is_empty());
    let v2: Vec<&Vec<u8>> = captured.iter().filter(|e| version(e) == 2).collect();
    assert!(
        v2.len() >= 12,
        "texts and receipts went forward-secret: {}",
        v2.len()
    );

    // Today: the thief takes everything bob's node holds: his RSA key, his pickle key,
    // his device and every session.
    let bob_fp = bob.identity().fingerprint();
    let rsa = bob.identity();
    let pickle_key = PickleKey::read_file(
        &bob._keys
            .path()
            .join("keys")
            .join(format!("{bob_fp}.olm-key")),
        None,
    )
    .unwrap();
    let store = bob.node.store();
    let device = store.get_raw(&keys::olm_device("bob")).unwrap().unwrap();
    let sessions: Vec<Vec<u8>> = store
        .keys(&keys::olm_prefixes_of("bob")[0])
        .unwrap()
        .iter()
        .map(|k| store.get_raw(k).unwrap().unwrap())
        .collect();
    assert!(!sessions.is_empty());
    let mut opened = Vec::new();
    for envelope in captured.iter().filter(|e| version(e) == 2) {
        let header = EnvelopeHeader::parse(envelope).unwrap();
        if header.recipient != bob_fp {
            continue;
        }
        let parsed = EnvelopeV2::parse(envelope).unwrap();
        let mut stolen = Device::from_pickle(&device, &pickle_key).unwrap();
        for pickle in &sessions {
            let mut session = Session::from_pickle(pickle, &pickle_key).unwrap();
            if stolen.open(&parsed, &mut session).is_ok() {
                opened.push(header.id);
            }
        }
        if stolen.accept(&parsed).is_ok() {
            opened.push(header.id);
        }
        assert!(
            rsa.open(envelope).is_err(),
            "the RSA key alone opens no v2 envelope"
        );
    }
    assert!(
        opened.is_empty(),
        "{} captured envelopes opened",
        opened.len()
    );
    // The thief's tools work: what alice sends after the theft, before bob's next reply,
    // does open with the stolen state (until the next round trip; see below).
    alice.send("bob", "after the theft").await;
    alice.sync().await.unwrap();
    let after = queued_for(&world, &bob).await;
    let readable = after.iter().filter(|envelope| {
        let parsed = EnvelopeV2::parse(envelope).unwrap();
        let stolen = Device::from_pickle(&device, &pickle_key).unwrap();
        sessions.iter().any(|pickle| {
            let mut session = Session::from_pickle(pickle, &pickle_key).unwrap();
            stolen
                .open(&parsed, &mut session)
                .is_ok_and(|m| m.body() == b"after the theft")
        })
    });
    assert_eq!(readable.count(), 1);
    // The control: what went in version 1 opens with the RSA key alone.
    let control = captured
        .iter()
        .filter(|e| version(e) == 1 && EnvelopeHeader::parse(e).unwrap().recipient == bob_fp)
        .filter_map(|e| rsa.open(e).ok())
        .filter(|m| m.body() == b"before keys")
        .count();
    assert_eq!(control, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_goes_forward_secret_once_keys_are_claimed() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = with_sessions(&mut world).await;
    alice.send("bob", "hello").await;
    alice.sync().await.unwrap();
    let queued = queued_for(&world, &bob).await;
    assert!(
        queued.iter().all(|e| version(e) == 2),
        "profile and text in v2"
    );
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["hello"]);
    // The receipt goes back in the session too, and marks the message delivered.
    bob.sync().await.unwrap();
    let receipts = queued_for(&world, &alice).await;
    assert_eq!(receipts.len(), 1);
    assert_eq!(version(&receipts[0]), 2);
    alice.sync().await.unwrap();
    assert_eq!(
        alice.status("bob", "hello").0,
        node::core::store::Status::Delivered
    );
    // Bob answers in the session alice started (the one that last decrypted).
    bob.send("alice", "hi").await;
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    assert_eq!(alice.texts("bob"), ["hello", "hi"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_v2_envelope_is_shown_once() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = with_sessions(&mut world).await;
    alice.send("bob", "once").await;
    alice.sync().await.unwrap();
    let copies = queued_for(&world, &bob).await;
    bob.sync().await.unwrap();
    // A mailbox that replays what it delivered: acknowledged, not shown twice, and the
    // session goes on.
    for envelope in &copies {
        assert_eq!(bob.node.receive_v2("bob", envelope).unwrap(), Some(false));
    }
    assert_eq!(bob.texts("alice"), ["once"]);
    alice.send("bob", "twice").await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["once", "twice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_v2_envelope_neither_shows_nor_wedges_the_session() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = with_sessions(&mut world).await;
    alice.send("bob", "first").await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    alice.send("bob", "second").await;
    alice.sync().await.unwrap();
    let honest = queued_for(&world, &bob).await.pop().unwrap();
    for at in [0, 20, 40, 60, 80, 97, 100, honest.len() - 1] {
        let mut bad = honest.clone();
        bad[at] ^= 0x10;
        assert_eq!(bob.node.receive_v2("bob", &bad).unwrap(), None, "byte {at}");
    }
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["first", "second"]);
}

/// With a passphrase the pickle key file is encrypted like the identity keys, and a node
/// reopened with the passphrase goes on with the same device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_passphrase_the_pickle_key_file_is_encrypted() {
    use node::core::service::{Node, Passphrase};
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let passphrase = Some(Passphrase::new("pass phrase".into()));
        std::sync::Arc::new(Node::open(dir.path(), 65_536, passphrase).unwrap())
    };
    let node = open();
    node.create_identity("alice".into(), None).await.unwrap();
    let first = node.keys_to_publish("alice", 0).unwrap().unwrap();
    let fp = node.identity("alice").unwrap().fingerprint();
    let text =
        std::fs::read_to_string(dir.path().join("keys").join(format!("{fp}.olm-key"))).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PICKLE KEY-----"),
        "{text}"
    );
    drop(node);
    let again = open();
    let second = again.keys_to_publish("alice", 0).unwrap().unwrap();
    assert_eq!(first.certificate, second.certificate, "the same device");
}

/// Replace every stored session of `peer` with the given pickles (a disk rolled back to an
/// older copy: the sessions no longer have the keys the other side now uses).
fn roll_back_sessions(peer: &Peer, to: &[(Vec<u8>, Vec<u8>)]) {
    let mut c = node::core::store::Changes::default();
    for (key, value) in to {
        c.put_raw(key.clone(), value.clone());
    }
    peer.node.store().apply(c).unwrap();
}

fn sessions_of(peer: &Peer) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = peer.node.store();
    store
        .keys(&keys::olm_prefixes_of(peer.id)[0])
        .unwrap()
        .into_iter()
        .map(|k| {
            let v = store.get_raw(&k).unwrap().unwrap();
            (k, v)
        })
        .collect()
}

fn warnings(peer: &Peer, with: &str) -> Vec<String> {
    peer.conversation(with)
        .iter()
        .filter_map(|e| match e {
            node::core::store::Entry::Message(m) => m.error.clone(),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_session_resets_and_every_undelivered_message_arrives_once() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = with_sessions(&mut world).await;
    alice.send("bob", "a1").await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let snapshot = sessions_of(&bob);
    // The ratchet turns twice: each answers the other.
    bob.send("alice", "b1").await;
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    alice.send("bob", "a2").await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    bob.send("alice", "b2").await;
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    alice.send("bob", "a3").await;
    alice.send("bob", "a4").await;
    alice.sync().await.unwrap();
    // Bob's sessions go back to before the turns (a disk restored from an older copy):
    // a3 and a4 do not open.
    roll_back_sessions(&bob, &snapshot);
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["a1", "b1", "a2", "b2"]);
    // His next round claims a fresh key and asks alice again; her next rounds take that
    // in and seal a3 and a4 again in the new session (same ids, sequence numbers and
    // hashes); he shows each once.
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["a1", "b1", "a2", "b2", "a3", "a4"]);
    assert!(warnings(&bob, "alice").is_empty(), "the chain is whole");
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    assert_eq!(
        alice.status("bob", "a4").0,
        node::core::store::Status::Delivered
    );
    // The conversation goes on in the new session.
    alice.send("bob", "a5").await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(
        bob.texts("alice"),
        ["a1", "b1", "a2", "b2", "a3", "a4", "a5"]
    );

    // Another broken envelope within the hour asks for no second reset.
    alice.send("bob", "a6").await;
    alice.sync().await.unwrap();
    let mut bad = queued_for(&world, &bob).await.pop().unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(bob.node.receive_v2("bob", &bad).unwrap(), None);
    let asked = bob
        .node
        .contacts_without_session(
            "bob",
            world.now_ms.load(std::sync::atomic::Ordering::SeqCst),
        )
        .unwrap();
    assert!(asked.is_empty(), "no second reset within the hour");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_identity_is_a_new_device_and_gets_what_waited_for_it() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = with_sessions(&mut world).await;
    alice.send("bob", "before").await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    let backup = bob
        .node
        .backup("bob".into(), "long enough".into())
        .await
        .unwrap();
    // Bob's laptop is gone; alice writes meanwhile, sealed to his old device.
    alice.send("bob", "while away 1").await;
    alice.send("bob", "while away 2").await;
    alice.sync().await.unwrap();

    let (node, keys) = common::memory_node();
    node.restore_identity("bob".into(), None, backup, "long enough".into())
        .await
        .unwrap();
    let mut engine = node::sync::engine::Engine::new(
        std::time::Duration::from_secs(30),
        <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(8),
    );
    engine.start();
    let mut restored = Peer {
        node,
        engine,
        link: world.connect().await,
        id: "bob",
        _keys: keys,
    };
    restored.knows(&alice).await;
    // It publishes its new device's keys, claims alice's, drops what was sealed to the old
    // device, and tells alice in its first message.
    restored.sync().await.unwrap();
    assert!(
        restored
            .texts("alice")
            .iter()
            .all(|t| !t.contains("while away"))
    );
    restored.sync().await.unwrap();
    alice.sync().await.unwrap();
    alice.sync().await.unwrap();
    assert!(
        alice
            .texts("bob")
            .iter()
            .any(|t| t.contains("device key changed")),
        "{:?}",
        alice.texts("bob")
    );
    restored.sync().await.unwrap();
    let texts = restored.texts("alice");
    for expected in ["while away 1", "while away 2"] {
        assert_eq!(
            texts.iter().filter(|t| *t == expected).count(),
            1,
            "{texts:?}"
        );
    }
}

fn first_session(peer: &Peer, other: &Peer) -> crypto::SessionId {
    let fp = other.identity().fingerprint().to_string();
    let record: node::core::service::PeerRecord = peer
        .node
        .store()
        .get(keys::olm_peer(peer.id, &fp))
        .unwrap()
        .unwrap();
    record.sessions[0]
}

/// Both claim at once (each starts a session with the other's key): after one exchange
/// they seal in the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossed_sessions_converge() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = with_sessions(&mut world).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    alice.send("bob", "one").await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    bob.send("alice", "two").await;
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    assert_eq!(first_session(&alice, &bob), first_session(&bob, &alice));
    assert_eq!(alice.texts("bob"), ["one", "two"]);
}

/// A mailbox that keeps no one-time keys (all claimed) serves the fallback key, and the
/// conversation still goes forward-secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_one_time_keys_fall_back() {
    let mut no_one_time = policy();
    no_one_time.max_one_time_keys = 0;
    let mut world = World::new(no_one_time);
    let (mut alice, mut bob) = with_sessions(&mut world).await;
    alice.send("bob", "via the fallback key").await;
    alice.sync().await.unwrap();
    assert!(
        queued_for(&world, &bob)
            .await
            .iter()
            .all(|e| version(e) == 2)
    );
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["via the fallback key"]);
}

/// Out of order within a session's chain: each shows once, in the sender's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_messages_out_of_order_show_in_the_senders_order() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = with_sessions(&mut world).await;
    for text in ["one", "two", "three"] {
        alice.send("bob", text).await;
    }
    alice.sync().await.unwrap();
    bob.link.reorder(Reorder::Reverse);
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["one", "two", "three"]);
    assert!(warnings(&bob, "alice").is_empty());
}

/// Keys are topped up below half, at most hourly, and the fallback key is replaced weekly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_topped_up_below_half_and_the_fallback_replaced_weekly() {
    use node::core::service::KeysRecord;
    let mut world = World::new(policy());
    let (mut alice, mut bob) = with_sessions(&mut world).await;
    let record =
        |p: &Peer| -> KeysRecord { p.node.store().get(keys::olm_keys(p.id)).unwrap().unwrap() };
    // Alice claimed one of bob's 50; claimers from elsewhere take 29 more: the hourly
    // count sees 20 left.
    let bob_fp = bob.identity().fingerprint();
    for _ in 0..29 {
        use mailbox::store::KeyStore as _;
        world
            .mailbox
            .keys()
            .claim(bob_fp, true)
            .await
            .unwrap()
            .unwrap();
    }
    world.advance(std::time::Duration::from_secs(3601));
    bob.sync().await.unwrap();
    assert_eq!(record(&bob).remaining, Some(20));
    bob.sync().await.unwrap();
    assert_eq!(record(&bob).remaining, Some(50), "topped up to 50");
    // A week on, a new fallback key is published.
    let before = record(&alice).fallback_ms;
    world.advance(std::time::Duration::from_secs(7 * 24 * 3600));
    alice.sync().await.unwrap();
    assert!(record(&alice).fallback_ms > before);
}

/// A mailbox from before the key frames: nodes publish and claim nothing there and go on
/// talking in version 1, and say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_older_mailbox_the_conversation_goes_on_in_v1() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    for peer in [&alice, &bob] {
        *peer.link.keys.lock().unwrap() = KeyFrames::Unknown;
    }
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    alice.send("bob", "still here").await;
    alice.sync().await.unwrap();
    assert!(
        queued_for(&world, &bob)
            .await
            .iter()
            .all(|e| version(e) == 1)
    );
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["still here"]);
    let shown = bob.conversation("alice");
    assert!(matches!(
        &shown[0],
        node::core::store::Entry::Message(m) if !m.forward_secret
    ));
}

/// A mailbox that serves someone else's keys as bob's: the bundle does not verify under
/// bob's key, no session starts, and nothing is sealed to the forger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_bundle_starts_no_session() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    let mallory = Peer::new(&mut world, "mallory").await;
    // Mallory's device: a real certificate and prekey, but under mallory's key.
    let forged = {
        let identity = mallory.identity();
        let mut device = Device::new(identity.fingerprint(), std::time::UNIX_EPOCH);
        device.generate_one_time_keys(1);
        mailbox::protocol::Response::KeyClaimed {
            certificate: device.certify(&identity).unwrap().to_bytes(),
            prekey: device.unpublished_prekeys()[0].to_bytes().to_vec(),
        }
    };
    bob.sync().await.unwrap();
    *alice.link.keys.lock().unwrap() = KeyFrames::Forged(forged);
    alice.sync().await.unwrap();
    let alice_contact = alice.node.contact("alice", "bob").unwrap();
    assert!(!alice.node.has_session("alice", &alice_contact).unwrap());
    alice.send("bob", "hello").await;
    alice.sync().await.unwrap();
    // What went out is version 1, under bob's own RSA key: he reads it.
    assert!(
        queued_for(&world, &bob)
            .await
            .iter()
            .all(|e| version(e) == 1)
    );
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["hello"]);
}

/// A stranger's session stays only as long as their request: deleting it (or blocking
/// them) takes their sessions too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_request_takes_the_strangers_sessions_with_it() {
    let mut world = World::new(policy());
    let mut bob = Peer::new(&mut world, "bob").await;
    let mut carol = Peer::new(&mut world, "carol").await;
    carol.knows(&bob).await;
    bob.sync().await.unwrap();
    carol.sync().await.unwrap();
    carol.send("bob", "hello, stranger").await;
    carol.sync().await.unwrap();
    bob.sync().await.unwrap();
    let carol_fp = carol.identity().fingerprint().to_string();
    let peer_key = keys::olm_peer("bob", &carol_fp);
    assert!(
        bob.node.store().contains(&peer_key).unwrap(),
        "kept with the request"
    );
    assert_eq!(bob.node.requests("bob").unwrap().len(), 1);
    bob.node
        .delete_request("bob".into(), carol_fp.clone())
        .await
        .unwrap();
    assert!(!bob.node.store().contains(&peer_key).unwrap());
    assert!(sessions_of(&bob).is_empty(), "no session left behind");
}

/// Keys count as published once offered: a publication whose answer is lost is not
/// offered again (so the mailbox never holds a one-time key twice); the fallback key goes
/// with every publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offered_one_time_keys_are_never_offered_twice() {
    let mut world = World::new(policy());
    let alice = Peer::new(&mut world, "alice").await;
    let first = alice.node.keys_to_publish("alice", 0).unwrap().unwrap();
    let one_time = |p: &node::core::service::KeysToPublish| {
        p.prekeys.iter().filter(|k| !k.is_fallback()).count()
    };
    assert_eq!(one_time(&first), 50);
    assert_eq!(first.prekeys.iter().filter(|k| k.is_fallback()).count(), 1);
    // The answer never came; an hour on, the node asks again: no one-time key twice.
    let again = alice
        .node
        .keys_to_publish("alice", 3_600_001)
        .unwrap()
        .unwrap();
    assert_eq!(one_time(&again), 0);
    assert_eq!(again.prekeys.iter().filter(|k| k.is_fallback()).count(), 1);
}

/// A contact who has written in version 2 is answered in version 2, even by a node that
/// never claimed their key (it answers in the session they started).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_who_wrote_in_v2_is_answered_in_v2() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    bob.sync().await.unwrap();
    // From now on bob's mailbox link keeps no keys: he cannot claim alice's.
    *bob.link.keys.lock().unwrap() = KeyFrames::Unknown;
    alice.sync().await.unwrap();
    alice.send("bob", "in a session").await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let contact = bob.node.contact("bob", "alice").unwrap();
    assert!(bob.node.has_session("bob", &contact).unwrap());
    bob.send("alice", "answered in it").await;
    bob.sync().await.unwrap();
    assert!(
        queued_for(&world, &alice)
            .await
            .iter()
            .all(|e| version(e) == 2)
    );
    alice.sync().await.unwrap();
    assert_eq!(alice.texts("bob"), ["in a session", "answered in it"]);
}
