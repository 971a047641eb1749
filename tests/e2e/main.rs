//! End to end: a real mailbox on an ephemeral port, two real nodes, real QUIC and sled.

#![allow(clippy::unwrap_used)]

mod bench;
mod browser;
mod cli;
mod fuzz;
mod mailbox;
mod mailbox_bad_input;
mod node;

use std::time::Duration;

use serde_json::{Value, json};
use tests::{Mailbox, Node, eventually};

const WAIT: Duration = Duration::from_secs(15);

/// The newest message with `text` in a conversation, if any.
async fn find(node: &Node, id: &str, contact: &str, text: &str) -> anyhow::Result<Option<Value>> {
    let page = node
        .get(&format!("/api/identities/{id}/contacts/{contact}/messages"))
        .await?;
    Ok(page["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["text"] == text)
        .cloned())
}

#[tokio::test]
async fn alice_and_bob_exchange_messages_through_a_real_mailbox() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let alice = Node::start(&dir.path().join("alice"), &mailbox.pinned_address())?;
    let bob = Node::start(&dir.path().join("bob"), &mailbox.pinned_address())?;

    let a = alice.create_identity("alice").await?;
    let b = bob.create_identity("bob").await?;
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 64);
    let bob_as_contact = alice.add_contact_from("alice", "bob", &bob, "bob").await?;
    assert_eq!(bob_as_contact["fingerprint"], b["fingerprint"]);
    let alice_as_contact = bob
        .add_contact_from("bob", "alice", &alice, "alice")
        .await?;
    assert_eq!(
        bob_as_contact["safety_number"],
        alice_as_contact["safety_number"]
    );

    // A long, multi-line message: far beyond what the original's direct RSA could carry.
    let text = format!("hello bob\nline two <b>not bold</b>\n{}", "é".repeat(500));
    let (status, sent) = alice
        .post(
            "/api/identities/alice/contacts/bob/messages",
            json!({ "text": text }),
        )
        .await?;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["direction"], "out");
    assert_eq!(sent["status"], "pending");
    assert_eq!(sent["id"].as_str().unwrap().len(), 32);

    let got = eventually(WAIT, "bob to receive alice's message", || {
        find(&bob, "bob", "alice", &text)
    })
    .await?;
    assert_eq!(got["direction"], "in");
    assert_eq!(got["status"], "received");
    assert_eq!(got["id"], sent["id"], "same message id on both sides");
    assert!(got["sent_at"].as_str().unwrap().ends_with('Z'));

    // Bob's node returns a receipt: alice sees her message delivered.
    eventually(WAIT, "alice's message to be marked delivered", || async {
        Ok(find(&alice, "alice", "bob", &text)
            .await?
            .filter(|m| m["status"] == "delivered"))
    })
    .await?;

    // And back.
    let (status, _) = bob
        .post(
            "/api/identities/bob/contacts/alice/messages",
            json!({ "text": "hi alice" }),
        )
        .await?;
    assert_eq!(status, 201);
    eventually(WAIT, "alice to receive bob's reply", || {
        find(&alice, "alice", "bob", "hi alice")
    })
    .await?;

    // Shown exactly once on each side.
    let page = bob
        .get("/api/identities/bob/contacts/alice/messages")
        .await?;
    let copies = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["text"] == text)
        .count();
    assert_eq!(copies, 1);

    // The web page shows the conversation, escaped.
    let html = bob.text("/?identity=bob&contact=alice").await?;
    assert!(
        html.contains("line two &lt;b&gt;not bold&lt;/b&gt;"),
        "message text must be escaped in the page"
    );

    let status = alice.get("/api/status").await?;
    assert_eq!(status["mailbox"]["state"], "online", "{status}");
    assert_eq!(status["outbox"], 0);
    Ok(())
}
