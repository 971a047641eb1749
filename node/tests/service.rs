//! The node's service logic with in-memory stores and no network: two nodes hand envelopes
//! to each other directly. Deterministic and fast; the end-to-end tests in `tests/` cover
//! the same paths over a real mailbox.

#![allow(clippy::unwrap_used)]

mod common;

use common::{deliver, drain_all};

use std::sync::Arc;

use std::time::SystemTime;

use crypto::{Draft, Identity, MessageKind, PublicKey};
use node::core::service::Node;
use node::core::store::{Entry, OutboxKind, Status};

struct Peer {
    node: Arc<Node>,
    _keys: tempfile::TempDir,
}

fn peer() -> Peer {
    let (node, keys) = common::memory_node();
    Peer { node, _keys: keys }
}

/// alice and bob, each on their own node, knowing each other.
async fn pair() -> (Peer, Peer) {
    let (a, b) = (peer(), peer());
    a.node.create_identity("alice".into(), None).await.unwrap();
    b.node.create_identity("bob".into(), None).await.unwrap();
    let a_pem = a.node.identity("alice").unwrap().public_key().to_pem();
    let b_pem = b.node.identity("bob").unwrap().public_key().to_pem();
    a.node
        .add_contact("alice".into(), "bob".into(), b_pem)
        .await
        .unwrap();
    b.node
        .add_contact("bob".into(), "alice".into(), a_pem)
        .await
        .unwrap();
    (a, b)
}

/// Take every envelope out of `from`'s outbox (as if the mailbox stored it) and return them,
/// but for the sender's name before a first message (`drain_all` keeps it).
fn drain(from: &Node) -> Vec<(OutboxKind, Vec<u8>)> {
    let mut all = drain_all(from);
    all.retain(|(kind, _)| *kind != OutboxKind::Profile);
    all
}

fn texts(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .rev()
        .map(|e| match e {
            Entry::Message(m) => m.text.clone(),
            Entry::Gap { missing, .. } => format!("<gap {missing}>"),
            Entry::Note { text, .. } => format!("<note {text}>"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_is_received_once_and_its_receipt_marks_it_delivered() {
    let (a, b) = pair().await;
    let sent = a
        .node
        .send_text("alice".into(), "bob".into(), "hello".into())
        .await
        .unwrap();
    assert_eq!(sent.status, Status::Pending);
    let envelopes = drain(&a.node);
    assert_eq!(envelopes.len(), 1);
    let status = |n: &Node| match &n.messages("alice", "bob", None, 10).unwrap()[0] {
        Entry::Message(m) => m.status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status(&a.node), Status::Sent, "the mailbox took it");

    deliver(&b.node, "bob", &envelopes);
    // A duplicate (a retry or a replay) is not shown twice.
    let message = b
        .node
        .identity("bob")
        .unwrap()
        .open(&envelopes[0].1)
        .unwrap();
    assert!(!b.node.receive("bob", &message).unwrap());
    assert_eq!(
        texts(&b.node.messages("bob", "alice", None, 10).unwrap()),
        ["hello"]
    );

    let receipts = drain(&b.node);
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].0, OutboxKind::Receipt);
    deliver(&a.node, "alice", &receipts);
    assert_eq!(status(&a.node), Status::Delivered);
    // The receipt is not shown as a message on either side.
    assert_eq!(a.node.messages("alice", "bob", None, 10).unwrap().len(), 1);
    assert_eq!(a.node.outbox_len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_message_leaves_a_gap_marker() {
    let (a, b) = pair().await;
    let mut envelopes = Vec::new();
    for text in ["one", "two", "three", "four"] {
        a.node
            .send_text("alice".into(), "bob".into(), text.into())
            .await
            .unwrap();
        envelopes.extend(drain(&a.node));
    }
    // The mailbox loses two and three.
    deliver(
        &b.node,
        "bob",
        &[envelopes[0].clone(), envelopes[3].clone()],
    );
    let shown = b.node.messages("bob", "alice", None, 10).unwrap();
    assert_eq!(texts(&shown), ["one", "<gap 2>", "four"]);
    // Paged one entry at a time, the cursor goes past the gap marker too, and stops.
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..5 {
        let page = b.node.page("bob", "alice", cursor.as_ref(), 1).unwrap();
        seen.extend(page.entries);
        cursor = page.next;
        if let Some(c) = &cursor {
            let text = c.to_string();
            assert_eq!(
                text.parse::<node::core::service::Cursor>().ok(),
                cursor,
                "{text}"
            );
        } else {
            break;
        }
    }
    assert_eq!(texts(&seen), ["one", "<gap 2>", "four"]);
    assert!(cursor.is_none(), "the last page says so");
    assert!(
        "e123".parse::<node::core::service::Cursor>().is_err(),
        "a cursor names 16 hex digits"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn late_messages_fill_their_gap_in_the_senders_order() {
    let (a, b) = pair().await;
    let mut envelopes = Vec::new();
    for text in ["one", "two", "three", "four", "five"] {
        a.node
            .send_text("alice".into(), "bob".into(), text.into())
            .await
            .unwrap();
        envelopes.extend(drain(&a.node));
    }
    let [one, two, three, four, five] = <[_; 5]>::try_from(envelopes).unwrap();
    deliver(&b.node, "bob", &[one, five]);
    let shown = |b: &Peer| texts(&b.node.messages("bob", "alice", None, 10).unwrap());
    assert_eq!(shown(&b), ["one", "<gap 3>", "five"]);
    // Bob reads the conversation; a late message then counts as unread all the same.
    b.node.mark_read("bob", "alice").unwrap();
    assert_eq!(b.node.summary("bob", "alice").unwrap().0, 0);
    // The middle one splits the gap.
    deliver(&b.node, "bob", &[three]);
    assert_eq!(shown(&b), ["one", "<gap 1>", "three", "<gap 1>", "five"]);
    assert_eq!(
        b.node.summary("bob", "alice").unwrap().0,
        1,
        "the late one is unread"
    );
    b.node.mark_read("bob", "alice").unwrap();
    assert_eq!(b.node.summary("bob", "alice").unwrap().0, 0);
    // Paged one entry at a time, the cursor goes through places inside the gap.
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..6 {
        let page = b.node.page("bob", "alice", cursor.as_ref(), 1).unwrap();
        seen.extend(page.entries);
        cursor = page.next;
        let Some(c) = &cursor else { break };
        let text = c.to_string();
        assert_eq!(text.parse::<node::core::service::Cursor>().ok(), cursor);
    }
    assert_eq!(texts(&seen), ["one", "<gap 1>", "three", "<gap 1>", "five"]);
    // The last two close what is left; a replay of one of them changes nothing.
    deliver(&b.node, "bob", &[four.clone(), two]);
    deliver(&b.node, "bob", &[four]);
    assert_eq!(shown(&b), ["one", "two", "three", "four", "five"]);
    // Each was confirmed to alice.
    deliver(&a.node, "alice", &drain(&b.node));
    let statuses: Vec<_> = a
        .node
        .messages("alice", "bob", None, 10)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Entry::Message(m) => Some(m.status),
            Entry::Gap { .. } | Entry::Note { .. } => None,
        })
        .collect();
    assert_eq!(statuses, [Status::Delivered; 5]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_sender_waits_in_requests_until_accepted() {
    let (a, b) = pair().await;
    let stranger = peer();
    stranger
        .node
        .create_identity("eve".into(), None)
        .await
        .unwrap();
    let a_pem = a.node.identity("alice").unwrap().public_key().to_pem();
    stranger
        .node
        .add_contact("eve".into(), "alice".into(), a_pem)
        .await
        .unwrap();
    stranger
        .node
        .send_text("eve".into(), "alice".into(), "hi, it's eve".into())
        .await
        .unwrap();
    deliver(&a.node, "alice", &drain(&stranger.node));

    let requests = a.node.requests("alice").unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].messages[0].text, "hi, it's eve");
    assert_eq!(a.node.outbox_len(), 0);
    assert!(
        a.node.outbox().unwrap().is_empty(),
        "no receipt to a stranger"
    );

    let fp = requests[0].fingerprint.to_string();
    a.node
        .accept_request("alice".into(), fp, "eve".into())
        .await
        .unwrap();
    assert!(a.node.requests("alice").unwrap().is_empty());
    assert_eq!(
        texts(&a.node.messages("alice", "eve", None, 10).unwrap()),
        ["hi, it's eve"]
    );
    assert!(
        a.node.outbox().unwrap().is_empty(),
        "receipts wait a moment"
    );
    assert_eq!(a.node.seal_due_receipts().unwrap(), 1);
    assert_eq!(a.node.outbox().unwrap().len(), 1, "a receipt once accepted");
    drop(b);
}

/// `count` text envelopes from `from` to `to` (sequence numbers from 1).
fn from_stranger(from: &Identity, to: &PublicKey, count: usize) -> Vec<Vec<u8>> {
    (1..=count)
        .map(|seq| {
            let draft = Draft {
                kind: MessageKind::Text,
                seq: seq as u64,
                prev: None,
                sent_at: SystemTime::now(),
                body: format!("stranger message {seq}").into_bytes(),
            };
            from.seal(to, &draft).unwrap().bytes
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn strangers_can_leave_only_so_many_requests() {
    use node::core::service::{
        MAX_REQUEST_MESSAGES, MAX_REQUEST_MESSAGES_PER_SENDER as PER_SENDER,
    };
    let a = peer();
    a.node.create_identity("alice".into(), None).await.unwrap();
    let alice = a.node.identity("alice").unwrap();
    let to = alice.public_key().clone();
    let take = |envelopes: &[Vec<u8>]| {
        for envelope in envelopes {
            let message = alice.open(envelope).unwrap();
            assert!(a.node.receive("alice", &message).unwrap(), "acknowledged");
        }
    };
    let count_from = |fingerprint: &str| {
        a.node
            .requests("alice")
            .unwrap()
            .iter()
            .find(|r| r.fingerprint.to_string() == fingerprint)
            .map_or(0, |r| r.messages.len())
    };

    // One stranger: the first PER_SENDER messages are kept, the rest dropped.
    let strangers = MAX_REQUEST_MESSAGES / PER_SENDER + 1;
    let keys: Vec<Identity> = (0..strangers)
        .map(|_| Identity::generate().unwrap())
        .collect();
    take(&from_stranger(&keys[0], &to, PER_SENDER + 5));
    let first = keys[0].fingerprint().to_string();
    assert_eq!(count_from(&first), PER_SENDER);
    let kept = &a.node.requests("alice").unwrap()[0].messages;
    assert_eq!(
        kept[PER_SENDER - 1].text,
        format!("stranger message {PER_SENDER}")
    );

    // Strangers until the requests hold MAX_REQUEST_MESSAGES: the next one finds no room.
    for key in &keys[1..strangers - 1] {
        take(&from_stranger(key, &to, PER_SENDER));
    }
    let last = keys[strangers - 1].fingerprint().to_string();
    take(&from_stranger(&keys[strangers - 1], &to, 1));
    assert_eq!(count_from(&last), 0, "all requests full");
    let held: usize = a
        .node
        .requests("alice")
        .unwrap()
        .iter()
        .map(|r| r.messages.len())
        .sum();
    assert_eq!(held, MAX_REQUEST_MESSAGES);

    // Deleting a request makes room again.
    a.node.delete_request("alice".into(), first).await.unwrap();
    take(&from_stranger(&keys[strangers - 1], &to, 1));
    assert_eq!(count_from(&last), 1);
}

/// One of two concurrent requests succeeded and the other was a conflict.
fn one_and_a_conflict<T: std::fmt::Debug>(
    one: &Result<T, node::core::error::NodeError>,
    two: &Result<T, node::core::error::NodeError>,
    what: &str,
) {
    use node::core::error::NodeError::Conflict;
    assert!(
        matches!(
            (one, two),
            (Ok(_), Err(Conflict(_))) | (Err(Conflict(_)), Ok(_))
        ),
        "{what}: {one:?} / {two:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_and_restores_end_in_one_identity_and_a_conflict() {
    let a = peer();
    a.node.create_identity("alice".into(), None).await.unwrap();
    let backup = a
        .node
        .backup("alice".into(), "correct horse".into())
        .await
        .unwrap();

    // The race needs both requests past their checks at once: try it a few times.
    for _ in 0..8 {
        let b = peer();
        let restore = |id: &str| {
            let (node, backup, id) = (b.node.clone(), backup.clone(), id.to_owned());
            tokio::spawn(async move {
                node.restore_identity(id, None, backup, "correct horse".into())
                    .await
            })
        };
        let (one, two) = tokio::join!(restore("first"), restore("second"));
        let (one, two) = (one.unwrap(), two.unwrap());
        one_and_a_conflict(&one, &two, "the same key restored twice at once");
        assert_eq!(b.node.identities().unwrap().len(), 1);
    }
    let b = peer();

    let (one, two) = tokio::join!(
        b.node.create_identity("carol".into(), None),
        b.node.create_identity("carol".into(), None)
    );
    one_and_a_conflict(&one, &two, "the same id created twice at once");
    assert_eq!(b.node.identities().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_counts_and_previews_follow_what_was_seen() {
    let (a, b) = pair().await;
    for text in ["first", "second line one\nline two"] {
        a.node
            .send_text("alice".into(), "bob".into(), text.into())
            .await
            .unwrap();
    }
    deliver(&b.node, "bob", &drain(&a.node));
    let (unread, preview) = b.node.summary("bob", "alice").unwrap();
    assert_eq!(unread, 2);
    assert_eq!(preview.as_deref(), Some("second line one…"));
    b.node.mark_read("bob", "alice").unwrap();
    assert_eq!(b.node.summary("bob", "alice").unwrap().0, 0);
    b.node
        .send_text("bob".into(), "alice".into(), "reply".into())
        .await
        .unwrap();
    assert_eq!(
        b.node.summary("bob", "alice").unwrap(),
        (0, Some("reply".into()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invites_add_contacts_with_their_own_mailbox() {
    let (a, b) = pair().await;
    let (mine, theirs) = (
        format!("mbx.example:50000#{}", "ab".repeat(32)),
        format!("other.example:50000#{}", "cd".repeat(32)),
    );
    a.node.set_mailbox(mine.parse().unwrap()).unwrap();
    b.node.set_mailbox(theirs.parse().unwrap()).unwrap();
    let invite = a.node.invite("alice").unwrap();
    b.node
        .delete_contact("bob".into(), "alice".into())
        .await
        .unwrap();
    let contact = b
        .node
        .add_contact_from_invite("bob".into(), Some("alice".into()), &invite)
        .await
        .unwrap();
    assert_eq!(
        contact.fingerprint,
        a.node.identity("alice").unwrap().fingerprint()
    );
    // Alice's own mailbox is where bob's messages to her go; nothing failed, no warning.
    let theirs = b.node.contact_mailbox(&contact).unwrap();
    assert_eq!(theirs.host, "mbx.example");
    assert_eq!(b.node.mailbox_warning(&contact), None);
    // The same key twice is refused.
    assert!(
        b.node
            .add_contact_from_invite("bob".into(), Some("alice2".into()), &invite)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_the_same_identity_elsewhere() {
    let (a, _b) = pair().await;
    let backup = a
        .node
        .backup("alice".into(), "correct horse battery".into())
        .await
        .unwrap();
    assert!(backup.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(a.node.backup("alice".into(), "short".into()).await.is_err());
    let elsewhere = peer();
    let wrong = elsewhere
        .node
        .restore_identity(
            "alice".into(),
            None,
            backup.clone(),
            "wrong passphrase".into(),
        )
        .await;
    assert!(wrong.is_err());
    let restored = elsewhere
        .node
        .restore_identity("alice".into(), None, backup, "correct horse battery".into())
        .await
        .unwrap();
    assert_eq!(
        restored.fingerprint,
        a.node.identity("alice").unwrap().fingerprint()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contact_cannot_break_the_inbox_with_extreme_numbers() {
    let (a, b) = pair().await;
    let alice = a.node.identity("alice").unwrap();
    let bob_key = b.node.identity("bob").unwrap().public_key().clone();
    let seal = |seq: u64, sent_at: SystemTime| {
        let draft = Draft {
            kind: MessageKind::Text,
            seq,
            prev: None,
            sent_at,
            body: format!("seq {seq}").into_bytes(),
        };
        alice.seal(&bob_key, &draft).unwrap().bytes
    };
    let far = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::MAX / 4);
    let envelopes = [seal(u64::MAX, far), seal(1, SystemTime::now())];
    let bob = b.node.identity("bob").unwrap();
    for env in &envelopes {
        let message = bob.open(env).unwrap();
        assert!(b.node.receive("bob", &message).unwrap());
    }
    let shown = b.node.messages("bob", "alice", None, 10).unwrap();
    assert!(
        texts(&shown).contains(&"seq 1".to_owned()),
        "{:?}",
        texts(&shown)
    );
    // And the page data for it renders.
    let json: Vec<_> = shown.iter().map(node::http::api::EntryJson::from).collect();
    assert!(json.iter().any(|e| matches!(
        e,
        node::http::api::EntryJson::Message(m) if m.sent_at == "9999-12-31T23:59:59.999Z"
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_contact_deletes_its_conversation_and_chains() {
    let (a, b) = pair().await;
    a.node
        .send_text("alice".into(), "bob".into(), "one".into())
        .await
        .unwrap();
    deliver(&b.node, "bob", &drain(&a.node));
    b.node
        .delete_contact("bob".into(), "alice".into())
        .await
        .unwrap();
    // The same person (or another key) added again under that name starts afresh.
    let a_pem = a.node.identity("alice").unwrap().public_key().to_pem();
    b.node
        .add_contact("bob".into(), "alice".into(), a_pem)
        .await
        .unwrap();
    assert!(
        b.node
            .messages("bob", "alice", None, 10)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_identity_deletes_its_outbox_and_the_envelopes_beside_it() {
    let (a, _b) = pair().await;
    a.node
        .send_text("alice".into(), "bob".into(), "unsent".into())
        .await
        .unwrap();
    // Alice's name, then the message (only the message counts as waiting).
    let queued = a.node.outbox().unwrap();
    assert_eq!(queued.len(), 2);
    assert_eq!(a.node.outbox_len(), 1);
    assert!(
        queued
            .iter()
            .all(|q| q.envelope.as_ref().is_some_and(|e| !e.is_empty()))
    );
    assert_eq!(a.node.store().keys(b"envelope/").unwrap().len(), 2);
    a.node.delete_identity("alice".into()).await.unwrap();
    assert!(a.node.outbox().unwrap().is_empty());
    assert_eq!(a.node.outbox_len(), 0, "the count follows");
    assert!(a.node.store().keys(b"envelope/").unwrap().is_empty());
}

/// Text envelopes from alice to bob with these sequence numbers and previous-message hashes.
fn sealed_from_alice(
    a: &Peer,
    b: &Peer,
    links: &[(u64, Option<crypto::MessageHash>)],
) -> Vec<(OutboxKind, Vec<u8>)> {
    let alice = a.node.identity("alice").unwrap();
    let bob_key = b.node.identity("bob").unwrap().public_key().clone();
    links
        .iter()
        .map(|&(seq, prev)| {
            let draft = Draft {
                kind: MessageKind::Text,
                seq,
                prev,
                sent_at: SystemTime::now(),
                body: format!("seq {seq}").into_bytes(),
            };
            (
                OutboxKind::Text,
                alice.seal(&bob_key, &draft).unwrap().bytes,
            )
        })
        .collect()
}

fn warnings(entries: &[Entry]) -> Vec<Option<String>> {
    entries
        .iter()
        .rev()
        .filter_map(|e| match e {
            Entry::Message(m) => Some(m.error.clone()),
            Entry::Gap { .. } | Entry::Note { .. } => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_that_breaks_the_chain_is_shown_with_a_warning() {
    let (a, b) = pair().await;
    a.node
        .send_text("alice".into(), "bob".into(), "one".into())
        .await
        .unwrap();
    deliver(&b.node, "bob", &drain(&a.node));
    // The next one claims another message came before it.
    deliver(
        &b.node,
        "bob",
        &sealed_from_alice(&a, &b, &[(2, Some(crypto::MessageHash([9; 32])))]),
    );
    let shown = b.node.messages("bob", "alice", None, 10).unwrap();
    assert_eq!(texts(&shown), ["one", "seq 2"]);
    let warned = warnings(&shown);
    assert_eq!(warned[0], None);
    assert!(
        warned[1]
            .as_deref()
            .is_some_and(|w| w.contains("does not follow")),
        "{warned:?}"
    );
}

/// Alice writes bob `before` (delivered), removes him and adds him again (her chain to him
/// starts at 1) and writes `after`, left in her outbox.
async fn a_chain_started_again(a: &Peer, b: &Peer, before: &[&str], after: &[&str]) {
    for text in before {
        a.node
            .send_text("alice".into(), "bob".into(), (*text).into())
            .await
            .unwrap();
    }
    deliver(&b.node, "bob", &drain(&a.node));
    let b_pem = b.node.identity("bob").unwrap().public_key().to_pem();
    a.node
        .delete_contact("alice".into(), "bob".into())
        .await
        .unwrap();
    a.node
        .add_contact("alice".into(), "bob".into(), b_pem)
        .await
        .unwrap();
    for text in after {
        a.node
            .send_text("alice".into(), "bob".into(), (*text).into())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_that_starts_again_is_noticed_and_followed() {
    let (a, b) = pair().await;
    a_chain_started_again(&a, &b, &["one", "two", "three"], &["again", "and on"]).await;
    deliver(&b.node, "bob", &drain(&a.node));
    // And later a message is lost: the new chain shows it.
    a.node
        .send_text("alice".into(), "bob".into(), "lost".into())
        .await
        .unwrap();
    drain(&a.node);
    a.node
        .send_text("alice".into(), "bob".into(), "after".into())
        .await
        .unwrap();
    deliver(&b.node, "bob", &drain(&a.node));
    let shown = b.node.messages("bob", "alice", None, 10).unwrap();
    assert_eq!(
        texts(&shown),
        ["one", "two", "three", "again", "and on", "<gap 1>", "after"]
    );
    only_warning_at(&warnings(&shown), 3, &["started their message chain again"]);
}

/// The message `at` (gap markers not counted) carries a warning with each of `words`, and
/// no other message carries one.
fn only_warning_at(warned: &[Option<String>], at: usize, words: &[&str]) {
    assert!(
        warned
            .get(at)
            .and_then(Option::as_deref)
            .is_some_and(|w| words.iter().all(|word| w.contains(word))),
        "{warned:?}"
    );
    assert!(
        warned
            .iter()
            .enumerate()
            .all(|(i, w)| i == at || w.is_none()),
        "{warned:?}"
    );
}

/// The same restart, but the mailbox drops its first message: what follows is behind the
/// old chain with no gap for it. The first of it says the chain started again and leaves a
/// gap for the lost start, the rest follow the new chain without a word, and the lost
/// message, coming late, fills its gap.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_chain_whose_first_message_is_lost_is_followed_with_a_gap() {
    let (a, b) = pair().await;
    let after = ["again", "and on", "and more", "the end"];
    a_chain_started_again(&a, &b, &["one", "two", "three"], &after).await;
    let sent = drain(&a.node);
    assert_eq!(sent.len(), 4);
    deliver(&b.node, "bob", &sent[1..]);
    let shown = b.node.messages("bob", "alice", None, 10).unwrap();
    assert_eq!(
        texts(&shown),
        [
            "one", "two", "three", "<gap 1>", "and on", "and more", "the end"
        ]
    );
    only_warning_at(
        &warnings(&shown),
        3,
        &[
            "started their message chain again",
            "its first message did not come",
        ],
    );
    // The lost first message, late: it fills the new chain's gap.
    deliver(&b.node, "bob", &sent[..1]);
    let shown = b.node.messages("bob", "alice", None, 10).unwrap();
    assert_eq!(
        texts(&shown),
        [
            "one", "two", "three", "again", "and on", "and more", "the end"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_identities_of_one_node_can_write_to_each_other() {
    let a = peer();
    for id in ["alice", "bob"] {
        a.node.create_identity(id.into(), None).await.unwrap();
    }
    for (me, other) in [("alice", "bob"), ("bob", "alice")] {
        let pem = a.node.identity(other).unwrap().public_key().to_pem();
        a.node
            .add_contact(me.into(), other.into(), pem)
            .await
            .unwrap();
    }
    a.node
        .send_text("alice".into(), "bob".into(), "next door".into())
        .await
        .unwrap();
    deliver(&a.node, "bob", &drain(&a.node));
    assert_eq!(
        texts(&a.node.messages("bob", "alice", None, 10).unwrap()),
        ["next door"]
    );
    deliver(&a.node, "alice", &drain(&a.node));
    let sent = a.node.messages("alice", "bob", None, 10).unwrap();
    assert!(
        matches!(&sent[..], [Entry::Message(m)] if m.status == Status::Delivered),
        "{sent:?}"
    );
}

/// alice and bob on their own nodes, where bob knows alice but she does not know him yet;
/// bob wrote `texts` to her. Returns their peers and bob's envelopes, in his order.
async fn bob_writes_first(texts: &[&str]) -> (Peer, Peer, Vec<(OutboxKind, Vec<u8>)>) {
    let (a, b) = (peer(), peer());
    a.node.create_identity("alice".into(), None).await.unwrap();
    b.node.create_identity("bob".into(), None).await.unwrap();
    let a_pem = a.node.identity("alice").unwrap().public_key().to_pem();
    b.node
        .add_contact("bob".into(), "alice".into(), a_pem)
        .await
        .unwrap();
    for text in texts {
        b.node
            .send_text("bob".into(), "alice".into(), (*text).into())
            .await
            .unwrap();
    }
    let sent = drain(&b.node);
    (a, b, sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn adding_a_sender_who_wrote_first_merges_their_requests_in_order() {
    // Bob adds alice and writes before alice has added him.
    let (a, b, first) = bob_writes_first(&["hi alice", "it's bob"]).await;
    let b_pem = b.node.identity("bob").unwrap().public_key().to_pem();
    deliver(&a.node, "alice", &first[1..]);
    deliver(&a.node, "alice", &first[..1]);
    assert_eq!(a.node.requests("alice").unwrap().len(), 1);
    // Alice adds him from his invite (his key): the requests join the conversation.
    a.node
        .add_contact("alice".into(), "bob".into(), b_pem)
        .await
        .unwrap();
    assert!(a.node.requests("alice").unwrap().is_empty());
    assert_eq!(
        texts(&a.node.messages("alice", "bob", None, 10).unwrap()),
        ["hi alice", "it's bob"],
        "in bob's order, nothing missing"
    );
    // His next one follows them, and each of his gets its receipt.
    b.node
        .send_text("bob".into(), "alice".into(), "third".into())
        .await
        .unwrap();
    deliver(&a.node, "alice", &drain(&b.node));
    assert_eq!(
        texts(&a.node.messages("alice", "bob", None, 10).unwrap()),
        ["hi alice", "it's bob", "third"]
    );
    deliver(&b.node, "bob", &drain(&a.node));
    let statuses: Vec<_> = b
        .node
        .messages("bob", "alice", None, 10)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Entry::Message(m) => Some(m.status),
            Entry::Gap { .. } | Entry::Note { .. } => None,
        })
        .collect();
    assert_eq!(statuses, [Status::Delivered; 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn accepting_a_request_while_the_next_message_arrives_loses_nothing() {
    for round in 0..6 {
        let (a, _b, sent) = bob_writes_first(&["first", "second"]).await;
        deliver(&a.node, "alice", &sent[..1]);
        let fingerprint = a.node.requests("alice").unwrap()[0].fingerprint.to_string();
        let node = a.node.clone();
        let second = sent[1..].to_vec();
        let (accepted, arrived) = tokio::join!(
            a.node
                .accept_request("alice".into(), fingerprint, "bob".into()),
            tokio::task::spawn_blocking(move || deliver(&node, "alice", &second)),
        );
        accepted.unwrap();
        arrived.unwrap();
        assert!(
            a.node.requests("alice").unwrap().is_empty(),
            "round {round}"
        );
        assert_eq!(
            texts(&a.node.messages("alice", "bob", None, 10).unwrap()),
            ["first", "second"],
            "round {round}"
        );
    }
}
