//! Requests a newcomer can trust (issue 16 item 2): a stranger's first message comes after
//! their name, which the request shows beside the fingerprint; Accept takes that name;
//! Block drops what they send from then on.

#![allow(clippy::unwrap_used)]

mod common;

use common::{deliver, drain_all as drain};

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crypto::{Draft, MessageKind};

use node::core::error::NodeError;
use node::core::service::Node;
use node::core::store::OutboxKind;

/// Alice, and Zoë who knows alice's key and wrote to her `texts`.
async fn zoe_writes(texts: &[&str]) -> (Arc<Node>, Arc<Node>, Vec<(OutboxKind, Vec<u8>)>) {
    let (alice, ka) = common::memory_node();
    let (zoe, kz) = common::memory_node();
    std::mem::forget((ka, kz));
    alice.create_identity("alice".into(), None).await.unwrap();
    zoe.create_identity(String::new(), Some("Zoë Müller".into()))
        .await
        .unwrap();
    let pem = alice.identity("alice").unwrap().public_key().to_pem();
    zoe.add_contact("zoe-muller".into(), "alice".into(), pem)
        .await
        .unwrap();
    for text in texts {
        zoe.send_text("zoe-muller".into(), "alice".into(), (*text).into())
            .await
            .unwrap();
    }
    let sent = drain(&zoe);
    (alice, zoe, sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_message_comes_after_the_senders_name_and_accept_takes_it() {
    let (alice, _zoe, sent) = zoe_writes(&["hello", "again"]).await;
    let kinds: Vec<OutboxKind> = sent.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [OutboxKind::Profile, OutboxKind::Text, OutboxKind::Text],
        "the name once, before the first message only"
    );
    deliver(&alice, "alice", &sent);
    let requests = alice.requests("alice").unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].display_name.as_deref(), Some("Zoë Müller"));
    assert_eq!(requests[0].messages.len(), 2, "the name is not a message");
    // Accepted without a name: the one she gave.
    let fingerprint = requests[0].fingerprint.to_string();
    let c = alice
        .accept_request("alice".into(), fingerprint, String::new())
        .await
        .unwrap();
    assert_eq!(
        (c.name.as_str(), c.shown_name()),
        ("zoe-muller", "Zoë Müller")
    );
    assert!(alice.requests("alice").unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_older_name_does_not_replace_a_newer_one() {
    let (alice, zoe, sent) = zoe_writes(&["hello"]).await;
    deliver(&alice, "alice", &sent);
    let me = zoe.identity("zoe-muller").unwrap();
    let to = alice.identity("alice").unwrap().public_key().clone();
    let profile = |name: &str, secs: u64| {
        let draft = Draft {
            kind: MessageKind::Profile,
            seq: 0,
            prev: None,
            sent_at: SystemTime::now() + Duration::from_secs(secs),
            body: crypto::envelope::profile_body(&crypto::envelope::Profile {
                name: name.into(),
                mailbox: None,
            }),
        };
        (OutboxKind::Profile, me.seal(&to, &draft).unwrap().bytes)
    };
    let (older, newer) = (profile("Zoë M.", 10), profile("Zoë Müller-Lee", 20));
    deliver(&alice, "alice", &[newer]);
    // An older one, replayed by the mailbox, changes nothing.
    deliver(&alice, "alice", &[older]);
    let requests = alice.requests("alice").unwrap();
    assert_eq!(requests[0].display_name.as_deref(), Some("Zoë Müller-Lee"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_sender_is_dropped_until_unblocked() {
    let (alice, zoe, sent) = zoe_writes(&["buy now"]).await;
    deliver(&alice, "alice", &sent);
    let fingerprint = alice.requests("alice").unwrap()[0].fingerprint.to_string();
    let blocked = alice
        .block_request("alice".into(), fingerprint.clone())
        .await
        .unwrap();
    assert_eq!(blocked.display_name.as_deref(), Some("Zoë Müller"));
    assert!(
        alice.requests("alice").unwrap().is_empty(),
        "her request went"
    );
    assert_eq!(alice.blocked("alice").unwrap().len(), 1);
    // What she sends now is dropped unread (taken, so the mailbox does not keep it).
    zoe.send_text("zoe-muller".into(), "alice".into(), "buy now!!".into())
        .await
        .unwrap();
    let later = drain(&zoe);
    deliver(&alice, "alice", &later);
    assert!(alice.requests("alice").unwrap().is_empty());
    // Blocking again, without a request, is a 404; unblocking lets her write again.
    let again = alice
        .block_request("alice".into(), fingerprint.clone())
        .await;
    assert!(matches!(again, Err(NodeError::NotFound(_))), "{again:?}");
    alice
        .unblock("alice".into(), fingerprint.clone())
        .await
        .unwrap();
    assert!(alice.blocked("alice").unwrap().is_empty());
    let again = alice.unblock("alice".into(), fingerprint).await;
    assert!(matches!(again, Err(NodeError::NotFound(_))), "{again:?}");
    zoe.send_text("zoe-muller".into(), "alice".into(), "hello?".into())
        .await
        .unwrap();
    deliver(&alice, "alice", &drain(&zoe));
    let requests = alice.requests("alice").unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].messages[0].text, "hello?");
}

/// Issue 16 item 9: marking verified is noted in the conversation; a changed key is a
/// warning there, the contact is no longer verified, and the new key's messages follow.
#[tokio::test(flavor = "multi_thread")]
async fn verification_and_a_changed_key_are_noted_in_the_conversation() {
    use node::core::store::Entry;
    let (alice, zoe, sent) = zoe_writes(&["hello"]).await;
    deliver(&alice, "alice", &sent);
    let fingerprint = alice.requests("alice").unwrap()[0].fingerprint.to_string();
    alice
        .accept_request("alice".into(), fingerprint, String::new())
        .await
        .unwrap();
    for verified in [true, true, false] {
        alice
            .set_verified("alice".into(), "zoe-muller".into(), verified)
            .await
            .unwrap();
    }
    let notes = |node: &Node| -> Vec<(String, bool)> {
        let mut entries = node.messages("alice", "zoe-muller", None, 50).unwrap();
        entries.reverse();
        entries
            .into_iter()
            .filter_map(|e| match e {
                Entry::Note { text, warning, .. } => Some((text, warning)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        notes(&alice),
        [
            (
                "You marked Zoë Müller as verified: your safety numbers matched.".to_owned(),
                false
            ),
            ("You marked Zoë Müller as not verified.".to_owned(), false),
        ],
        "one note per change"
    );
    alice
        .set_verified("alice".into(), "zoe-muller".into(), true)
        .await
        .unwrap();

    // Zoë starts again with a new key (a new profile of hers, same name) and writes.
    zoe.create_identity("zoe-new".into(), Some("Zoë Müller".into()))
        .await
        .unwrap();
    let pem = alice.identity("alice").unwrap().public_key().to_pem();
    zoe.add_contact("zoe-new".into(), "alice".into(), pem)
        .await
        .unwrap();
    zoe.send_text("zoe-new".into(), "alice".into(), "new phone".into())
        .await
        .unwrap();
    deliver(&alice, "alice", &drain(&zoe));
    let request = alice.requests("alice").unwrap().remove(0);
    assert_eq!(request.display_name.as_deref(), Some("Zoë Müller"));
    let c = alice
        .replace_contact_key(
            "alice".into(),
            "zoe-muller".into(),
            request.fingerprint.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(c.fingerprint, request.fingerprint);
    assert!(!c.verified, "a new key is not verified");
    assert!(alice.requests("alice").unwrap().is_empty());
    let last = notes(&alice).pop().unwrap();
    assert!(
        last.1 && last.0.starts_with("Zoë Müller's key changed"),
        "{last:?}"
    );
    let mut entries = alice.messages("alice", "zoe-muller", None, 1).unwrap();
    match entries.pop() {
        Some(Entry::Message(m)) => assert_eq!(m.text, "new phone"),
        other => panic!("the new key's message follows the warning: {other:?}"),
    }
}
