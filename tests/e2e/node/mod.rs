//! The node end to end: real node processes and a real mailbox, driven through the node's
//! JSON API the way a user's script would, with mailbox outages, killed processes, forged
//! and dropped envelopes, strangers, invites and bad input. Each test has its own temporary
//! directory and its own processes.

mod api;
mod bad_input;
mod cluster;
mod contacts;
mod delivery;
mod mailboxes;
mod recovery;
mod security;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use crypto::rand::{RngExt as _, SeedableRng as _};
use crypto::{Draft, Identity, MessageKind, PublicKey, Sealed};
use reqwest::Method;
use serde_json::{Value, json};
use tests::{LossyProxy, Mailbox, Node, eventually, free_udp_port, identities};

/// Generous bound on anything that should happen by itself.
const WAIT: Duration = Duration::from_secs(15);
/// How soon a node must be back online once its mailbox is back after a clean stop.
const RECONNECT: Duration = Duration::from_secs(5);

/// A mailbox and two nodes, alice's and bob's, each with one identity (`alice`, `bob`) that
/// has the other as a contact (by public key).
struct Pair {
    dir: tempfile::TempDir,
    mailbox: Mailbox,
    alice: Node,
    bob: Node,
}

async fn pair() -> anyhow::Result<Pair> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let (alice, bob) = alice_and_bob(dir.path(), &mailbox.pinned_address()).await?;
    Ok(Pair {
        dir,
        mailbox,
        alice,
        bob,
    })
}

/// Alice's and bob's nodes under `dir`, using the mailbox at `mailbox`, each knowing the
/// other, with a forward-secret session each way (their messages go in envelope version 2).
async fn alice_and_bob(dir: &Path, mailbox: &str) -> anyhow::Result<(Node, Node)> {
    let (alice, bob) = knowing_each_other(dir, mailbox).await?;
    tokio::try_join!(
        forward_secret(&alice, "alice", "bob"),
        forward_secret(&bob, "bob", "alice")
    )?;
    Ok((alice, bob))
}

/// Alice's and bob's nodes, each knowing the other, without waiting for the mailbox (there
/// may be none yet: then they have no session, and their first messages go in version 1).
async fn knowing_each_other(dir: &Path, mailbox: &str) -> anyhow::Result<(Node, Node)> {
    let alice = Node::start(&dir.join("alice"), mailbox)?;
    let bob = Node::start(&dir.join("bob"), mailbox)?;
    tokio::try_join!(alice.create_identity("alice"), bob.create_identity("bob"))?;
    alice.add_contact_from("alice", "bob", &bob, "bob").await?;
    bob.add_contact_from("bob", "alice", &alice, "alice")
        .await?;
    Ok((alice, bob))
}

/// Wait until `id` on `node` has a forward-secret session with `contact` (keys published
/// and claimed through the mailbox).
async fn forward_secret(node: &Node, id: &str, contact: &str) -> anyhow::Result<()> {
    let path = format!("/api/identities/{id}/contacts/{contact}");
    eventually(
        WAIT,
        &format!("{id} to have a session with {contact}"),
        || async {
            let json = node.get(&path).await?;
            Ok((json["forward_secret"] == true).then_some(()))
        },
    )
    .await
}

/// Send `text` from `id` to `contact`; it must be accepted at once as pending.
async fn send(node: &Node, id: &str, contact: &str, text: &str) -> anyhow::Result<Value> {
    let (status, body) = node
        .post(
            &format!("/api/identities/{id}/contacts/{contact}/messages"),
            json!({ "text": text }),
        )
        .await?;
    anyhow::ensure!(status == 201, "send {text:?}: {status} {body}");
    anyhow::ensure!(body["status"] == "pending", "send {text:?}: {body}");
    Ok(body)
}

/// Whether every message of a conversation went forward-secret (envelope version 2).
async fn all_forward_secret(node: &Node, id: &str, contact: &str) -> anyhow::Result<bool> {
    let entries = conversation(node, id, contact).await?;
    Ok(entries
        .iter()
        .filter(|e| e["kind"] == "message")
        .all(|e| e["forward_secret"] == true))
}

/// A whole conversation, oldest first (the API lists newest first).
async fn conversation(node: &Node, id: &str, contact: &str) -> anyhow::Result<Vec<Value>> {
    let page = node
        .get(&format!(
            "/api/identities/{id}/contacts/{contact}/messages?limit=1000"
        ))
        .await?;
    let mut entries = page["messages"]
        .as_array()
        .with_context(|| format!("no messages array in {page}"))?
        .clone();
    entries.reverse();
    Ok(entries)
}

/// The texts of a conversation, oldest first, with their direction: `"> text"` for ours,
/// `"< text"` for theirs; anything that is not a message is shown as its JSON.
async fn transcript(node: &Node, id: &str, contact: &str) -> anyhow::Result<Vec<String>> {
    Ok(conversation(node, id, contact)
        .await?
        .iter()
        .map(|e| match (e["kind"].as_str(), e["direction"].as_str()) {
            (Some("message"), Some("out")) => format!("> {}", e["text"].as_str().unwrap_or("")),
            (Some("message"), Some("in")) => format!("< {}", e["text"].as_str().unwrap_or("")),
            _ => e.to_string(),
        })
        .collect())
}

/// The statuses of our own messages in a conversation, oldest first.
async fn statuses(node: &Node, id: &str, contact: &str) -> anyhow::Result<Vec<String>> {
    Ok(conversation(node, id, contact)
        .await?
        .iter()
        .filter(|e| e["direction"] == "out")
        .map(|e| e["status"].as_str().unwrap_or("?").to_owned())
        .collect())
}

/// Wait until every message we sent in a conversation (at least `count`) is delivered.
async fn all_delivered(
    node: &Node,
    id: &str,
    contact: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    eventually(
        timeout,
        &format!("{id}'s {count} messages to {contact} to be delivered"),
        || async {
            let s = statuses(node, id, contact).await?;
            Ok((s.len() >= count && s.iter().all(|s| s == "delivered")).then_some(()))
        },
    )
    .await
}

/// Wait until a node's status says online after a sync that ended later than `after`
/// (an RFC 3339 time as `last_sync` shows it; `None` for any sync).
async fn synced_since(node: &Node, after: Option<&str>, timeout: Duration) -> anyhow::Result<()> {
    eventually(timeout, "the node to be online and synced", || async {
        let s = node.status().await?;
        let last = s["mailbox"]["last_sync"].as_str().map(str::to_owned);
        // RFC 3339 UTC with milliseconds compares correctly as text.
        let newer = match (after, last.as_deref()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(before), Some(last)) => last > before,
        };
        Ok((s["mailbox"]["state"] == "online" && newer).then_some(()))
    })
    .await
}

/// `last_sync` as the status shows it now.
async fn last_sync(node: &Node) -> anyhow::Result<Option<String>> {
    Ok(node.status().await?["mailbox"]["last_sync"]
        .as_str()
        .map(str::to_owned))
}

/// The public key of a node's identity.
async fn public_key(node: &Node, id: &str) -> anyhow::Result<PublicKey> {
    let pem = node
        .text(&format!("/api/identities/{id}/public-key"))
        .await?;
    Ok(PublicKey::from_pem(&pem)?)
}

/// Text envelopes from `from` to `to` with sequence numbers 1, 2, ... chained by hash, as
/// a node seals a conversation (off the async executor).
async fn sealed_chain(
    from: &Arc<Identity>,
    to: PublicKey,
    texts: &[&str],
) -> anyhow::Result<Vec<Sealed>> {
    let from = from.clone();
    let texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut prev = None;
        let mut out = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let sealed = from.seal(
                &to,
                &Draft {
                    kind: MessageKind::Text,
                    seq: i as u64 + 1,
                    prev,
                    sent_at: SystemTime::now(),
                    body: text.as_bytes().to_vec(),
                },
            )?;
            prev = Some(sealed.hash);
            out.push(sealed);
        }
        Ok(out)
    })
    .await?
}

/// A mailbox and alice's node, whose identity `alice` has `dave` as a contact; dave has no
/// node: the test SENDs his envelopes itself.
async fn alice_knowing_dave(dir: &Path) -> anyhow::Result<(Mailbox, Node, Arc<Identity>)> {
    let mailbox = Mailbox::start(&dir.join("mailbox"))?;
    let alice = Node::start(&dir.join("alice"), &mailbox.pinned_address())?;
    alice.create_identity("alice").await?;
    let [dave] = identities().await?;
    let (status, body) = alice
        .post(
            "/api/identities/alice/contacts",
            json!({ "name": "dave", "public_key": dave.public_key().to_pem() }),
        )
        .await?;
    anyhow::ensure!(status == 201, "adding dave: {status} {body}");
    Ok((mailbox, alice, dave))
}
