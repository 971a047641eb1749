//! The JetStream engines against a real nats-server (`local::LocalNats`; `cargo xtask test`
//! installs the binary where it is missing): the queue contract, the key store contract,
//! and what only several front-ends over one stream can show.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crypto::{Fingerprint, MessageId};

use super::local::LocalNats;
use super::*;
use crate::store::contract::{Forgets, env, semantics};

/// One nats-server, and options naming a stream and bucket of their own.
fn nats(dir: &std::path::Path) -> (LocalNats, NatsOptions) {
    let nats = LocalNats::start(&dir.join("nats"), 1).unwrap();
    let options = NatsOptions::new(&nats.urls(), Duration::from_secs(7 * 24 * 3600));
    (nats, options)
}

#[tokio::test]
async fn jetstream_queue_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, options) = nats(dir.path());
    semantics(
        JetStreamQueue::open(&options).await.unwrap(),
        Forgets::AfterWindow,
    )
    .await;
}

#[tokio::test]
async fn jetstream_key_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, options) = nats(dir.path());
    crate::store::device_keys::tests::contract(JetStreamKeys::open(&options).await.unwrap()).await;
}

/// A second front-end over the same stream sees what the first stored (its index loads at
/// start and follows the tail), hears of its arrivals, and its ACK deletes what the first
/// stored; the first learns of the deletion.
#[tokio::test]
async fn two_front_ends_share_one_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, options) = nats(dir.path());
    let bob = Fingerprint([2; 32]);
    let a = JetStreamQueue::open(&options).await.unwrap();
    assert_eq!(
        a.store(env(bob, 1, 100, b"one"), Quota::UNLIMITED)
            .await
            .unwrap(),
        Stored::New
    );
    let b = JetStreamQueue::open(&options).await.unwrap();
    assert_eq!(b.stats().envelopes, 1, "loaded at start");
    let mut arrivals = b.take_arrivals().unwrap();
    assert_eq!(
        a.store(env(bob, 2, 200, b"two"), Quota::UNLIMITED)
            .await
            .unwrap(),
        Stored::New
    );
    let arrived = tokio::time::timeout(Duration::from_secs(5), arrivals.recv())
        .await
        .unwrap();
    assert_eq!(arrived, Some(bob));
    assert_eq!(
        b.pull(&bob, 10, 1 << 20).await.unwrap(),
        (vec![b"one".to_vec(), b"two".to_vec()], false),
        "the arrival came once B's index held it"
    );
    // A SEND of the same id through B is a duplicate (B's index knows it).
    assert_eq!(
        b.store(env(bob, 2, 300, b"two"), Quota::UNLIMITED)
            .await
            .unwrap(),
        Stored::Duplicate
    );
    assert_eq!(
        b.ack(bob, vec![MessageId([1; 16]), MessageId([2; 16])])
            .await
            .unwrap(),
        2
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while a.stats().envelopes > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A heard of the deletions"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.pull(&bob, 10, 1 << 20).await.unwrap(), (vec![], false));
}

/// `mailbox migrate`'s key half: what a sled key store exports, a JetStream one imports,
/// and claims then serve the same keys.
#[tokio::test]
async fn device_keys_move_from_sled_to_jetstream() {
    use crate::store::{KeyLimits, KeyStore, Publication, SledKeys};
    let dir = tempfile::tempdir().unwrap();
    let (_nats, options) = nats(dir.path());
    let sled = SledKeys::open(&dir.path().join("keys")).unwrap();
    let bob = Fingerprint([2; 32]);
    let limits = KeyLimits {
        max_owners: 10,
        max_one_time: 10,
    };
    let publication = Publication {
        device: crypto::DeviceId([7; 16]),
        certificate: vec![1, 2, 3],
        one_time: vec![[4; crypto::PREKEY_LEN], [5; crypto::PREKEY_LEN]],
        fallback: Some([6; crypto::PREKEY_LEN]),
    };
    sled.publish(bob, publication, limits).await.unwrap();
    let cluster = JetStreamKeys::open(&options).await.unwrap();
    for (owner, keys) in sled.export().unwrap() {
        cluster.import(owner, &keys).await.unwrap();
    }
    for (one_time, expected) in [(true, 4), (true, 5), (true, 6), (false, 6)] {
        let claimed = cluster.claim(bob, one_time).await.unwrap().unwrap();
        assert_eq!(claimed.prekey, [expected; crypto::PREKEY_LEN]);
        assert_eq!(claimed.certificate, vec![1, 2, 3]);
    }
}

/// A server counts as started only when its own log says it listens: a port that answers
/// may be another process's (once, another test's route port), and this server have
/// exited. A restart onto a port taken meanwhile is refused, naming the cause.
#[test]
fn a_port_someone_else_holds_is_not_taken_for_a_started_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = LocalNats::start(&dir.path().join("nats"), 1).unwrap();
    let port: u16 = nats.urls().rsplit(':').next().unwrap().parse().unwrap();
    nats.kill(0).unwrap();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let refused = nats.restart(0).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::AddrInUse, "{refused}");
}
