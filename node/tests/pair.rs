//! Nodes and the mailbox at the middle boundary (the `Pair` harness in `common/pair.rs`):
//! delivery, receipts, lost answers, gaps, order, strangers, quotas and rate limits. The
//! process-level twins of these tests are in `tests/e2e/node/`.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/pair.rs"]
mod pair;

use std::sync::atomic::Ordering;

use mailbox::core::ClientSession;
use mailbox::protocol::{Event, Request};
use mailbox::store::QueueStore as _;
use node::core::store::Status;
use node::sync::round::Link as _;
use pair::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_goes_through_the_mailbox_and_its_receipt_marks_it_delivered() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    // Bob logs in first, so the mailbox knows where to push.
    bob.sync().await.unwrap();
    alice.send("bob", "hello").await;
    assert_eq!(
        alice.status("bob", "hello").0,
        Status::Pending,
        "offline first"
    );

    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "hello").0, Status::Sent);
    let arrived = Event::Arrived {
        recipient: bob.identity().fingerprint(),
    };
    assert_eq!(world.pushes(), [(bob.link.conn, arrived)]);

    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["hello"]);
    assert_eq!(
        bob.node.outbox_len(),
        0,
        "receipts are not counted as messages"
    );
    // Bob's next round sends the receipt; alice's next round takes it in.
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "hello").0, Status::Delivered);
    assert_eq!(alice.texts("bob"), ["hello"], "a receipt is no message");
    assert_eq!(
        world.mailbox.store().stats().envelopes,
        0,
        "all acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_answer_is_lost_is_retried_and_shown_once() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    alice.sync().await.unwrap();
    alice.send("bob", "once").await;
    alice.link.lose(Lose::Sends);
    let lost = alice.sync().await.unwrap_err();
    assert!(lost.to_string().contains("lost"), "{lost}");
    assert_eq!(alice.status("bob", "once").0, Status::Pending);
    alice.link.lose(Lose::Nothing);
    // The retry finds it queued already: a duplicate, so sent.
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "once").0, Status::Sent);
    assert_eq!(
        world.mailbox.store().stats().envelopes,
        2,
        "stored once, after alice's name"
    );

    // The answer to bob's acknowledgement is lost: he pulls it again and shows it once.
    bob.link.lose(Lose::Acks);
    bob.sync().await.unwrap_err();
    bob.link.lose(Lose::Nothing);
    assert_eq!(bob.texts("alice"), ["once"]);
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["once"]);
    // The acknowledgement had gone through: what the mailbox holds is bob's receipt, and
    // the first message of the session bob started with alice's key.
    assert_eq!(world.mailbox.store().stats().envelopes, 2);
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "once").0, Status::Delivered);
    assert_eq!(world.mailbox.store().stats().envelopes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_on_the_way_leaves_a_gap_marker() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    for text in ["one", "two", "three"] {
        alice.send("bob", text).await;
    }
    alice.sync().await.unwrap();
    // Someone with bob's key takes the second off the queue (as retention would).
    let mut thief = world.connect().await;
    let (challenge, exporter) = thief.login_material();
    let proof = bob.identity().sign_login(&challenge, &exporter).unwrap();
    let login = thief
        .session
        .login(bob.identity().public_key().der(), proof);
    let answer = thief.request(login).await.unwrap();
    thief.session.handle_logged_in(answer).unwrap();
    let pull = Request::Pull {
        recipient: bob.identity().fingerprint(),
        max_count: 10,
    };
    let (queued, _) = ClientSession::batch(thief.request(pull).await.unwrap()).unwrap();
    // The first envelope is alice's name, before her first message.
    let second = crypto::EnvelopeHeader::parse(&queued[2]).unwrap().id;
    let ack = ClientSession::ack(bob.identity().fingerprint(), vec![second]);
    assert_eq!(
        ClientSession::acked(thief.request(ack).await.unwrap()),
        Ok(1)
    );

    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["one", "<gap 1>", "three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_arrive_out_of_order_are_shown_in_the_senders_order() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    for text in ["one", "two", "three"] {
        alice.send("bob", text).await;
    }
    alice.sync().await.unwrap();
    bob.link.reorder(Reorder::Reverse);
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["one", "two", "three"]);
    // Each was acknowledged, and each gets its receipt.
    let bob_fp = bob.identity().fingerprint();
    assert!(
        world
            .mailbox
            .store()
            .pull(&bob_fp, 10, 1 << 20)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    for text in ["one", "two", "three"] {
        assert_eq!(alice.status("bob", text).0, Status::Delivered, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_message_fills_its_gap() {
    let mut world = World::new(policy());
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    alice.send("bob", "one").await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    for text in ["two", "three"] {
        alice.send("bob", text).await;
    }
    alice.sync().await.unwrap();
    // "two" is late: bob sees "three" first, in one round, and "two" in the next.
    bob.link.reorder(Reorder::HoldOldest);
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["one", "<gap 1>", "three"]);
    bob.link.reorder(Reorder::Nothing);
    bob.sync().await.unwrap();
    assert_eq!(
        bob.texts("alice"),
        ["one", "two", "three"],
        "the gap is filled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_waits_in_requests_and_gets_no_receipt() {
    let mut world = World::new(policy());
    let (mut alice, _bob) = alice_and_bob(&mut world).await;
    let mut dave = Peer::new(&mut world, "dave").await;
    dave.knows(&alice).await;
    dave.send("alice", "hi, it's dave").await;
    dave.sync().await.unwrap();
    alice.sync().await.unwrap();
    let requests = alice.node.requests("alice").unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].fingerprint, dave.identity().fingerprint());
    assert_eq!(requests[0].messages[0].text, "hi, it's dave");
    alice.sync().await.unwrap();
    assert_eq!(
        world.mailbox.store().stats().envelopes,
        0,
        "no receipt to dave"
    );
    dave.sync().await.unwrap();
    assert_eq!(dave.status("alice", "hi, it's dave").0, Status::Sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_keeps_a_message_pending_until_the_recipient_catches_up() {
    let mut small = policy();
    // Room for alice's name (before her first message) and the first message.
    small.quota.envelopes = 2;
    let mut world = World::new(small);
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    alice.send("bob", "first").await;
    alice.send("bob", "second").await;
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "first").0, Status::Sent);
    let (status, words) = alice.status("bob", "second");
    assert_eq!(status, Status::Pending);
    assert!(words.is_some_and(|w| w.starts_with("not sent yet")));

    bob.sync().await.unwrap();
    // Before bob's backoff is over, alice does not try again; after it, she does.
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "second").0, Status::Pending);
    world.now_ms.fetch_add(60_000, Ordering::SeqCst);
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "second"), (Status::Sent, None));
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["first", "second"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_full_queue_holds_back_only_its_recipient() {
    let mut small = policy();
    // Alice's name, then two messages.
    small.quota.envelopes = 3;
    let mut world = World::new(small);
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    let mut carol = Peer::new(&mut world, "carol").await;
    alice.knows(&carol).await;
    carol.knows(&alice).await;
    // Carol wrote to alice: alice owes her a receipt.
    carol.send("alice", "hi alice").await;
    carol.sync().await.unwrap();
    alice.sync().await.unwrap();
    // Carol takes the first message of the session alice started with her key.
    carol.sync().await.unwrap();
    // Bob's queue takes alice's name and two messages: the third waits, and what comes after it does not.
    for text in ["one", "two", "three"] {
        alice.send("bob", text).await;
    }
    alice.send("carol", "hi carol").await;
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "two").0, Status::Sent);
    assert_eq!(alice.status("bob", "three").0, Status::Pending);
    assert_eq!(alice.status("carol", "hi carol").0, Status::Sent);
    carol.sync().await.unwrap();
    assert_eq!(carol.texts("alice"), ["hi alice", "hi carol"]);
    assert_eq!(
        carol.status("alice", "hi alice").0,
        Status::Delivered,
        "alice's receipt got through too"
    );
    // Bob catches up; once its backoff is over, bob's third goes.
    bob.sync().await.unwrap();
    world.now_ms.fetch_add(60_000, Ordering::SeqCst);
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "three").0, Status::Sent);
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["one", "two", "three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_refused_for_good_is_marked_failed_and_leaves_the_outbox() {
    let mut tiny = policy();
    tiny.max_envelope_bytes = 1_500;
    let mut world = World::new(tiny);
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    alice.send("bob", &"long ".repeat(400)).await;
    alice.send("bob", "short").await;
    alice.sync().await.unwrap();
    let (status, words) = alice.status("bob", &"long ".repeat(400));
    assert_eq!(status, Status::Failed);
    assert!(words.is_some_and(|w| w.contains("refused")));
    assert_eq!(alice.node.outbox_len(), 0);
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["<gap 1>", "short"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_over_its_rate_is_retried_once_the_mailbox_clock_has_moved() {
    let mut slow = policy();
    // A burst of two: alice's name before her first message, and the message.
    slow.rate = (1.0, 2.0);
    let mut world = World::new(slow);
    let (mut alice, mut bob) = alice_and_bob(&mut world).await;
    alice.send("bob", "now").await;
    alice.send("bob", "soon").await;
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "now").0, Status::Sent);
    assert_eq!(alice.status("bob", "soon").0, Status::Pending);
    alice.sync().await.unwrap();
    assert_eq!(
        alice.status("bob", "soon").0,
        Status::Pending,
        "no time passed"
    );
    world.now_ms.fetch_add(1_000, Ordering::SeqCst);
    alice.sync().await.unwrap();
    assert_eq!(alice.status("bob", "soon"), (Status::Sent, None));
    bob.sync().await.unwrap();
    assert_eq!(bob.texts("alice"), ["now", "soon"]);
}
