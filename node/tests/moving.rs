//! Moving house (issue 17): a move sends each contact a signed notice; a contact's notice
//! moves where we deliver to them; an older notice, replayed, or one from someone else,
//! changes nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::{deliver, drain_all as drain};

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crypto::{Draft, Identity, MessageKind};
use node::core::service::{Destination, Node};
use node::core::store::{Entry, OutboxKind};

fn address(port: u16) -> config::MailboxAddress {
    format!("mbx{port}.example:{port}#{}", "ab".repeat(32))
        .parse()
        .unwrap()
}

/// alice on mailbox 1, bob on mailbox 2; alice added bob from his invite (so she delivers
/// to mailbox 2), bob added alice by key.
async fn pair() -> (Arc<Node>, Arc<Node>) {
    let (alice, ka) = common::memory_node();
    let (bob, kb) = common::memory_node();
    std::mem::forget((ka, kb));
    alice.set_mailbox(address(1)).unwrap();
    bob.set_mailbox(address(2)).unwrap();
    alice.create_identity("alice".into(), None).await.unwrap();
    bob.create_identity("bob".into(), None).await.unwrap();
    let invite = bob.invite("bob").unwrap();
    alice
        .add_contact_from_invite("alice".into(), Some("bob".into()), &invite)
        .await
        .unwrap();
    let pem = alice.identity("alice").unwrap().public_key().to_pem();
    bob.add_contact("bob".into(), "alice".into(), pem)
        .await
        .unwrap();
    (alice, bob)
}

fn where_bob_is(alice: &Node) -> Destination {
    let contact = alice.contact("alice", "bob").unwrap();
    match alice.contact_mailbox(&contact) {
        Some(a) => Destination::Remote(a),
        None => Destination::Home,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_is_announced_and_a_contacts_notice_moves_delivery() {
    let (alice, bob) = pair().await;
    assert!(where_bob_is(&alice).is(&Destination::Remote(address(2))));
    // Bob moves to mailbox 3: a notice for each contact, and the old one is still pulled.
    let bob_ = bob.clone();
    tokio::task::spawn_blocking(move || bob_.move_mailbox(address(3)))
        .await
        .unwrap()
        .unwrap();
    let (old, until) = bob.old_mailbox().unwrap();
    assert!(old.same_endpoint(&address(2)));
    assert!(until > node::core::service::now_ms() + 6 * 24 * 3_600_000);
    // Alice, added by key, was reached through bob's mailbox (hers too): she stays on it,
    // so the notice and what follows reach her there.
    let alice_at_bob = bob.contact("bob", "alice").unwrap();
    let hers = bob.contact_mailbox(&alice_at_bob).unwrap();
    assert!(hers.same_endpoint(&address(2)), "{hers}");
    let queued = bob.outbox().unwrap();
    assert_eq!(queued.len(), 1);
    assert!(
        bob.destination(&queued[0].record)
            .is(&Destination::Remote(address(2)))
    );
    let notices = drain(&bob);
    assert_eq!(
        notices.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [OutboxKind::Notice]
    );
    // Alice takes it: she delivers to mailbox 3 now, and the conversation says so.
    deliver(&alice, "alice", &notices);
    assert!(where_bob_is(&alice).is(&Destination::Remote(address(3))));
    let newest = alice.messages("alice", "bob", None, 1).unwrap();
    match &newest[..] {
        [Entry::Note { text, warning, .. }] => {
            assert!(text.starts_with("bob moved to another mailbox"), "{text}");
            assert!(!warning);
        }
        other => panic!("a note of the move: {other:?}"),
    }
    // The same notice, replayed after alice deleted bob and added him again from his
    // invite, is a duplicate: nothing of it is taken again.
    alice
        .delete_contact("alice".into(), "bob".into())
        .await
        .unwrap();
    let invite = bob.invite("bob").unwrap();
    alice
        .add_contact_from_invite("alice".into(), Some("bob".into()), &invite)
        .await
        .unwrap();
    deliver(&alice, "alice", &notices);
    let c = alice.contact("alice", "bob").unwrap();
    assert_eq!(c.mailbox_ms, None, "the replayed notice was not taken");
    // Moving to where one is already sends nothing.
    let bob_ = bob.clone();
    tokio::task::spawn_blocking(move || bob_.move_mailbox(address(3)))
        .await
        .unwrap()
        .unwrap();
    assert!(drain(&bob).is_empty());
}

/// A notice of bob's sealed by hand (as a replay or a forgery would be).
fn notice(from: &Identity, to: &Node, mailbox: &str, at: SystemTime) -> Vec<u8> {
    let recipient = to.identity("alice").unwrap().public_key().clone();
    from.seal(
        &recipient,
        &Draft {
            kind: MessageKind::MailboxMoved,
            seq: 0,
            prev: None,
            sent_at: at,
            body: mailbox.as_bytes().to_vec(),
        },
    )
    .unwrap()
    .bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn older_replayed_and_forged_notices_change_nothing() {
    let (alice, bob) = pair().await;
    let bob_key = bob.identity("bob").unwrap();
    let now = SystemTime::now();
    let newer = notice(&bob_key, &alice, &address(3).to_string(), now);
    let older = notice(
        &bob_key,
        &alice,
        &address(4).to_string(),
        now - Duration::from_secs(60),
    );
    deliver(&alice, "alice", &[(OutboxKind::Notice, newer)]);
    deliver(&alice, "alice", &[(OutboxKind::Notice, older)]);
    assert!(
        where_bob_is(&alice).is(&Destination::Remote(address(3))),
        "an older notice came later: ignored"
    );
    // Mallory's notice naming her own mailbox: she is not bob, and not a contact at all.
    let mallory = Identity::generate().unwrap();
    let forged = notice(&mallory, &alice, &address(9).to_string(), SystemTime::now());
    deliver(&alice, "alice", &[(OutboxKind::Notice, forged)]);
    assert!(where_bob_is(&alice).is(&Destination::Remote(address(3))));
    assert!(
        alice.requests("alice").unwrap().is_empty(),
        "and no request"
    );
    // Bob's notice naming no mailbox is ignored.
    let garbage = notice(&bob_key, &alice, "not an address", SystemTime::now());
    deliver(&alice, "alice", &[(OutboxKind::Notice, garbage)]);
    assert!(where_bob_is(&alice).is(&Destination::Remote(address(3))));
}
