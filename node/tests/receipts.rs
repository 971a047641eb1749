//! Receipts go out together: taking a message in notes that its receipt is due, and
//! [`Node::seal_due_receipts`] seals one receipt per contact for all of them (the node's
//! receipts task calls it `RECEIPT_DELAY` after the first). In-memory nodes handing
//! envelopes to each other, and a sled store for what must survive a restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{deliver, drain_all};
use node::core::service::{MAX_RECEIPT_IDS, Node};
use node::core::store::{Entry, OutboxKind, Status, Store};

/// Identity `a_id` of `a` and `b_id` of `b` add each other, `b` under the name `b_calls_a`.
async fn introduce(a: &Arc<Node>, a_id: &str, b: &Arc<Node>, b_id: &str, b_calls_a: &str) {
    let a_pem = a.identity(a_id).unwrap().public_key().to_pem();
    let b_pem = b.identity(b_id).unwrap().public_key().to_pem();
    a.add_contact(a_id.into(), b_id.into(), b_pem)
        .await
        .unwrap();
    b.add_contact(b_id.into(), b_calls_a.into(), a_pem)
        .await
        .unwrap();
}

/// alice and bob, each on a node of their own, knowing each other; bob's node is `bob`.
/// Returns alice's node and the guard of its key files.
async fn pair_with(bob: Arc<Node>) -> (Arc<Node>, tempfile::TempDir) {
    let (alice, keys) = common::memory_node();
    alice.create_identity("alice".into(), None).await.unwrap();
    if bob.identity("bob").is_err() {
        bob.create_identity("bob".into(), None).await.unwrap();
    }
    introduce(&alice, "alice", &bob, "bob", "alice").await;
    (alice, keys)
}

async fn send(from: &Arc<Node>, texts: impl IntoIterator<Item = String>) {
    for text in texts {
        from.send_text("alice".into(), "bob".into(), text)
            .await
            .unwrap();
    }
}

fn statuses(alice: &Node) -> Vec<Status> {
    alice
        .messages("alice", "bob", None, 1_000)
        .unwrap()
        .iter()
        .map(|e| match e {
            Entry::Message(m) => m.status,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// The outbox's envelopes, left in place.
fn outbox_kinds(node: &Node) -> Vec<OutboxKind> {
    node.outbox()
        .unwrap()
        .iter()
        .map(|o| o.record.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_taken_in_together_get_one_receipt_that_confirms_them_all() {
    let (bob, _keys) = common::memory_node();
    let (alice, _alice_keys) = pair_with(bob.clone()).await;
    send(&alice, (0..5).map(|i| format!("m{i}"))).await;
    deliver(&bob, "bob", &drain_all(&alice));
    assert!(
        outbox_kinds(&bob).is_empty(),
        "nothing is sealed while messages come in"
    );

    assert_eq!(bob.seal_due_receipts().unwrap(), 1, "one receipt for five");
    assert_eq!(outbox_kinds(&bob), [OutboxKind::Receipt]);
    assert_eq!(bob.seal_due_receipts().unwrap(), 0, "nothing is due twice");
    deliver(&alice, "alice", &drain_all(&bob));
    assert_eq!(statuses(&alice), [Status::Delivered; 5]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_names_at_most_its_share_of_ids() {
    let (bob, _keys) = common::memory_node();
    let (alice, _alice_keys) = pair_with(bob.clone()).await;
    let count = MAX_RECEIPT_IDS + 3;
    send(&alice, (0..count).map(|i| format!("m{i}"))).await;
    deliver(&bob, "bob", &drain_all(&alice));
    assert_eq!(bob.seal_due_receipts().unwrap(), 2);
    deliver(&alice, "alice", &drain_all(&bob));
    assert_eq!(statuses(&alice), vec![Status::Delivered; count]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_due_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Arc::new(
            Node::with_store(
                Store::open(&dir.path().join("store")).unwrap(),
                dir.path().join("keys"),
                65_536,
                None,
            )
            .unwrap(),
        )
    };
    let bob = open();
    let (alice, _alice_keys) = pair_with(bob.clone()).await;
    send(&alice, ["before the crash".to_owned()]).await;
    deliver(&bob, "bob", &drain_all(&alice));
    // The message was acknowledged once stored: its receipt is due from the store alone.
    drop(bob);
    let bob = open();
    assert_eq!(bob.seal_due_receipts().unwrap(), 1);
    deliver(&alice, "alice", &drain_all(&bob));
    assert_eq!(statuses(&alice), [Status::Delivered]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contact_deleted_before_its_receipt_is_sealed_gets_none() {
    let (bob, _keys) = common::memory_node();
    let (alice, _alice_keys) = pair_with(bob.clone()).await;
    send(&alice, ["one".to_owned()]).await;
    deliver(&bob, "bob", &drain_all(&alice));
    bob.delete_contact("bob".into(), "alice".into())
        .await
        .unwrap();
    assert_eq!(bob.seal_due_receipts().unwrap(), 0);
    assert!(outbox_kinds(&bob).is_empty());
    assert!(
        bob.store()
            .keys(&node::core::store::keys::receipts_due())
            .unwrap()
            .is_empty(),
        "nothing is left due"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_contact_whose_receipt_fails_holds_back_nobody_else() {
    let (bob, _keys) = common::memory_node();
    let (alice, _alice_keys) = pair_with(bob.clone()).await;
    let (carol, _carol_keys) = common::memory_node();
    carol.create_identity("carol".into(), None).await.unwrap();
    // Bob names her so that her receipts come first.
    introduce(&carol, "carol", &bob, "bob", "aaron").await;
    send(&alice, ["from alice".to_owned()]).await;
    carol
        .send_text("carol".into(), "bob".into(), "from carol".into())
        .await
        .unwrap();
    deliver(&bob, "bob", &drain_all(&alice));
    deliver(&bob, "bob", &drain_all(&carol));
    // Carol's contact record now holds a key that does not parse.
    let key = node::core::store::keys::contact("bob", "aaron");
    let mut record: node::core::store::ContactRecord =
        bob.store().get(key.clone()).unwrap().unwrap();
    record.public_key = "not a key".into();
    let mut c = node::core::store::Changes::default();
    c.put(key, &record);
    bob.store().apply(c).unwrap();

    assert!(bob.seal_due_receipts().is_err(), "carol's fails");
    deliver(&alice, "alice", &drain_all_sealed(&bob));
    assert_eq!(statuses(&alice), [Status::Delivered], "alice's went");
}

/// `drain_all` without sealing first (what is due was sealed by the caller).
fn drain_all_sealed(from: &Node) -> Vec<(OutboxKind, Vec<u8>)> {
    from.outbox()
        .unwrap()
        .into_iter()
        .map(|o| {
            let envelope = o.envelope.clone().unwrap();
            from.outbox_done(o.key, &o.record, None).unwrap();
            (o.record.kind, envelope)
        })
        .collect()
}

/// A receipt taken in while the outbox changes the same messages' status (a refusal puts
/// a message back to pending, the mailbox's answer to a SEND marks it sent, and either can
/// come after the recipient's receipt): each message ends delivered. Each status change
/// reads and writes under one lock; without it, a change read before the receipt's write
/// and written after it would overwrite "delivered".
#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_racing_status_changes_leaves_every_message_delivered() {
    let (bob, _keys) = common::memory_node();
    let (alice, _alice_keys) = pair_with(bob.clone()).await;
    for round in 0..20 {
        send(&alice, (0..50).map(|i| format!("r{round} m{i}"))).await;
        // bob takes them in before alice has heard the mailbox's answers.
        let outgoing = alice.outbox().unwrap();
        let envelopes: Vec<_> = outgoing
            .iter()
            .map(|o| (o.record.kind, o.envelope.clone().unwrap()))
            .collect();
        deliver(&bob, "bob", &envelopes);
        let receipts = drain_all(&bob);
        assert_eq!(receipts.len(), 1, "one receipt for all fifty");
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let changes = {
            let (alice, done) = (alice.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    for o in &outgoing {
                        let (id, mid) = (&o.record.identity, &o.record.message_id);
                        alice.set_status(id, mid, Status::Pending, None).unwrap();
                        alice.outbox_done(o.key.clone(), &o.record, None).unwrap();
                    }
                }
            })
        };
        deliver(&alice, "alice", &receipts);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        changes.join().unwrap();
        let wrong: Vec<_> = statuses(&alice)
            .into_iter()
            .filter(|s| *s != Status::Delivered)
            .collect();
        assert!(wrong.is_empty(), "round {round}: {wrong:?}");
    }
}
