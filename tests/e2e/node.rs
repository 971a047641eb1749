//! The node end to end: real node processes and a real mailbox, driven through the node's
//! JSON API the way a user's script would, with mailbox outages, killed processes, forged
//! and dropped envelopes, strangers, invites and bad input. Each test has its own temporary
//! directory and its own processes.

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
/// other.
async fn alice_and_bob(dir: &Path, mailbox: &str) -> anyhow::Result<(Node, Node)> {
    let alice = Node::start(&dir.join("alice"), mailbox)?;
    let bob = Node::start(&dir.join("bob"), mailbox)?;
    tokio::try_join!(alice.create_identity("alice"), bob.create_identity("bob"))?;
    alice.add_contact_from("alice", "bob", &bob, "bob").await?;
    bob.add_contact_from("bob", "alice", &alice, "alice")
        .await?;
    Ok((alice, bob))
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

#[tokio::test]
async fn messages_sent_while_no_mailbox_runs_are_delivered_in_order_once_it_starts()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Nothing listens on this port yet; no pin: the nodes trust the certificate first seen.
    let address = format!("127.0.0.1:{}", free_udp_port()?);
    let (alice, bob) = alice_and_bob(dir.path(), &address).await?;

    let texts = ["first", "second", "third"];
    for text in texts {
        send(&alice, "alice", "bob", text).await?;
    }
    let status = alice.status().await?;
    let state = status["mailbox"]["state"].as_str().unwrap_or_default();
    assert!(
        state == "offline" || state == "connecting",
        "no mailbox runs, yet: {status}"
    );
    assert_eq!(status["outbox"], 3, "{status}");
    assert_eq!(statuses(&alice, "alice", "bob").await?, ["pending"; 3]);

    let mailbox = Mailbox::start_on(&dir.path().join("mailbox"), &address)?;
    let started = Instant::now();
    let expected: Vec<String> = texts.iter().map(|t| format!("< {t}")).collect();
    eventually(WAIT, "bob to have the three messages", || async {
        let got = transcript(&bob, "bob", "alice").await?;
        assert!(
            expected.starts_with(&got),
            "bob's conversation {got:?} is not a beginning of {expected:?}"
        );
        Ok((got == expected).then_some(()))
    })
    .await?;
    let received = started.elapsed();
    all_delivered(&alice, "alice", "bob", 3, WAIT).await?;
    println!(
        "offline queue: bob had all 3 {received:?} after the mailbox started, alice saw them delivered after {:?}",
        started.elapsed()
    );

    let status = alice.status().await?;
    assert_eq!(status["mailbox"]["state"], "online", "{status}");
    assert_eq!(status["outbox"], 0, "{status}");
    assert_eq!(
        status["mailbox"]["address"],
        mailbox.pinned_address(),
        "the node shows the certificate it learnt on first use"
    );
    Ok(())
}

#[tokio::test]
async fn after_a_clean_mailbox_restart_the_nodes_reconnect_by_themselves() -> anyhow::Result<()> {
    let p = pair().await?;
    send(&p.alice, "alice", "bob", "before the restart").await?;
    all_delivered(&p.alice, "alice", "bob", 1, WAIT).await?;
    let before = [last_sync(&p.alice).await?, last_sync(&p.bob).await?];

    let mut old = p.mailbox;
    let status = old.proc.terminate(Duration::from_secs(10))?;
    assert!(status.success(), "mailbox exit on SIGTERM: {status}");
    // The mailbox closed the connections: both nodes say so.
    for node in [&p.alice, &p.bob] {
        eventually(
            RECONNECT,
            "the node to notice the mailbox is gone",
            || async { Ok((node.status().await?["mailbox"]["state"] != "online").then_some(())) },
        )
        .await?;
    }

    let mailbox = old.restart_on_same_port()?;
    let back = Instant::now();
    synced_since(&p.alice, before[0].as_deref(), RECONNECT).await?;
    let alice_took = back.elapsed();
    synced_since(&p.bob, before[1].as_deref(), RECONNECT).await?;
    let bob_took = back.elapsed();
    println!(
        "after SIGTERM and restart: alice online and synced {alice_took:?}, bob {bob_took:?} after the mailbox was back"
    );

    // No node was restarted, yet messages flow again, both ways.
    send(&p.alice, "alice", "bob", "after the restart").await?;
    all_delivered(&p.alice, "alice", "bob", 2, WAIT).await?;
    send(&p.bob, "bob", "alice", "welcome back").await?;
    all_delivered(&p.bob, "bob", "alice", 1, WAIT).await?;
    assert_eq!(
        transcript(&p.bob, "bob", "alice").await?,
        [
            "< before the restart",
            "< after the restart",
            "> welcome back"
        ]
    );
    drop(mailbox);
    Ok(())
}

#[tokio::test]
async fn after_the_mailbox_is_killed_and_restarted_the_nodes_recover_by_themselves()
-> anyhow::Result<()> {
    let p = pair().await?;
    send(&p.alice, "alice", "bob", "before the crash").await?;
    all_delivered(&p.alice, "alice", "bob", 1, WAIT).await?;
    let before = [last_sync(&p.alice).await?, last_sync(&p.bob).await?];

    // SIGKILL: the connections are not closed; the nodes must notice the silence.
    let mut old = p.mailbox;
    old.proc.kill();
    let mailbox = old.restart_on_same_port()?;
    let back = Instant::now();
    send(&p.alice, "alice", "bob", "after the crash").await?;
    eventually(
        WAIT,
        "bob to receive the message sent after the crash",
        || async {
            let got = transcript(&p.bob, "bob", "alice").await?;
            Ok(got.contains(&"< after the crash".to_owned()).then_some(()))
        },
    )
    .await?;
    let received = back.elapsed();
    all_delivered(&p.alice, "alice", "bob", 2, WAIT).await?;
    synced_since(&p.alice, before[0].as_deref(), WAIT).await?;
    synced_since(&p.bob, before[1].as_deref(), WAIT).await?;
    println!(
        "after kill -9 and restart: bob received a new message {received:?} after the mailbox was back; alice saw it delivered after {:?}",
        back.elapsed()
    );
    assert_eq!(
        transcript(&p.bob, "bob", "alice").await?,
        ["< before the crash", "< after the crash"]
    );
    drop(mailbox);
    Ok(())
}

#[tokio::test]
async fn a_receiving_node_killed_while_it_stores_a_batch_shows_each_message_exactly_once()
-> anyhow::Result<()> {
    let p = pair().await?;
    let bob_dir = p.dir.path().join("bob");
    let mut bob = p.bob;
    bob.proc.kill();

    let texts: Vec<String> = (1..=30).map(|i| format!("message {i:02}")).collect();
    for text in &texts {
        send(&p.alice, "alice", "bob", text).await?;
    }
    // All 30 wait in the mailbox for bob.
    eventually(WAIT, "alice's outbox to drain into the mailbox", || async {
        let s = statuses(&p.alice, "alice", "bob").await?;
        Ok((s.len() == 30 && s.iter().all(|s| s == "sent")).then_some(()))
    })
    .await?;

    // Bob's node comes back and takes its queue in; kill it as soon as anything shows,
    // most likely before it acknowledged the batch to the mailbox.
    let bob = Node::start(&bob_dir, &p.mailbox.pinned_address())?;
    let deadline = Instant::now() + WAIT;
    let seen = loop {
        let n = conversation(&bob, "bob", "alice").await?.len();
        if n > 0 {
            break n;
        }
        anyhow::ensure!(Instant::now() < deadline, "bob's node stored nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut bob = bob;
    bob.proc.kill();
    let acked = p
        .mailbox
        .metric("mailbox_envelopes_delivered_total")
        .await?
        .unwrap_or(0.0);
    println!(
        "bob's node was killed when it showed {seen} of 30 messages; the mailbox had {acked} acknowledged"
    );

    let bob = Node::start(&bob_dir, &p.mailbox.pinned_address())?;
    let expected: Vec<String> = texts.iter().map(|t| format!("< {t}")).collect();
    eventually(WAIT, "bob to have the 30 messages", || async {
        let got = transcript(&bob, "bob", "alice").await?;
        assert!(
            got.len() <= 30,
            "more than 30 entries: duplicates? {got:#?}"
        );
        Ok((got.len() == 30).then_some(()))
    })
    .await?;
    assert_eq!(
        transcript(&bob, "bob", "alice").await?,
        expected,
        "each message once, in order"
    );
    all_delivered(&p.alice, "alice", "bob", 30, WAIT).await?;
    // Nothing is left in the mailbox: bob's node acknowledged every message in the end (and
    // alice's every receipt).
    eventually(WAIT, "the mailbox's queues to empty", || async {
        let queued = p.mailbox.metric("mailbox_queued_envelopes").await?;
        Ok((queued == Some(0.0)).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_sending_node_killed_while_it_drains_its_outbox_sends_each_message_exactly_once()
-> anyhow::Result<()> {
    let p = pair().await?;
    // With the mailbox stopped, alice's 30 messages pile up in her outbox.
    let mut old = p.mailbox;
    old.proc.terminate(Duration::from_secs(10))?;
    let texts: Vec<String> = (1..=30).map(|i| format!("note {i:02}")).collect();
    for text in &texts {
        send(&p.alice, "alice", "bob", text).await?;
    }
    assert_eq!(p.alice.status().await?["outbox"], 30);

    // The mailbox comes back; kill alice's node as soon as the mailbox holds anything of
    // hers, most likely while it is still handing over the rest.
    let mailbox = old.restart_on_same_port()?;
    let deadline = Instant::now() + WAIT;
    let stored = loop {
        let stored = mailbox
            .metric("mailbox_envelopes_stored_total")
            .await?
            .unwrap_or(0.0);
        if stored > 0.0 {
            break stored;
        }
        anyhow::ensure!(Instant::now() < deadline, "alice's node sent nothing");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let mut alice = p.alice;
    alice.proc.kill();
    let stored_at_kill = mailbox
        .metric("mailbox_envelopes_stored_total")
        .await?
        .unwrap_or(0.0);
    println!(
        "alice's node was killed when the mailbox had stored {stored}..{stored_at_kill} of her 30 envelopes"
    );

    let alice = Node::start(&p.dir.path().join("alice"), &mailbox.pinned_address())?;
    all_delivered(&alice, "alice", "bob", 30, WAIT).await?;
    let expected: Vec<String> = texts.iter().map(|t| format!("< {t}")).collect();
    eventually(WAIT, "bob to have the 30 messages", || async {
        Ok((transcript(&p.bob, "bob", "alice").await?.len() >= 30).then_some(()))
    })
    .await?;
    assert_eq!(
        transcript(&p.bob, "bob", "alice").await?,
        expected,
        "each message once, in order"
    );
    assert_eq!(statuses(&alice, "alice", "bob").await?.len(), 30);
    assert_eq!(alice.status().await?["outbox"], 0);
    Ok(())
}

/// Posts `texts` to alice's node (at `url`) one after another until one is not answered
/// 201; the numbers of those answered.
async fn post_all(http: reqwest::Client, url: String, texts: Vec<(usize, String)>) -> Vec<usize> {
    let mut answered = Vec::new();
    for (n, text) in texts {
        let posted = http
            .post(format!("{url}/api/identities/alice/contacts/bob/messages"))
            .json(&json!({ "text": text }))
            .send()
            .await;
        match posted {
            Ok(r) if r.status() == 201 => answered.push(n),
            _ => break,
        }
    }
    answered
}

/// The message number in a text `kill N`.
fn number(entry: &str) -> Option<usize> {
    entry.strip_prefix("< kill ")?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_node_kills_lose_and_duplicate_no_message() -> anyhow::Result<()> {
    // Even rounds kill alice's node while messages are posted to it and its outbox drains;
    // odd rounds kill bob's as soon as a message of the round shows, between taking a
    // batch in and acknowledging it. `cargo xtask crash` runs 20 kills.
    const BURST: usize = 12;
    let kills: usize = std::env::var("SM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let p = pair().await?;
    let address = p.mailbox.pinned_address();
    let (alice_dir, bob_dir) = (p.dir.path().join("alice"), p.dir.path().join("bob"));
    let (mut alice, mut bob) = (p.alice, p.bob);
    let mut rng = crypto::rand::rngs::StdRng::seed_from_u64(0x4b1c);
    let mut answered: Vec<usize> = Vec::new();
    let mut next = 0;
    for round in 0..kills {
        let texts: Vec<(usize, String)> = (next..next + BURST)
            .map(|n| (n, format!("kill {n}")))
            .collect();
        next += BURST;
        if round % 2 == 0 {
            let writer = tokio::spawn(post_all(alice.http.clone(), alice.url.clone(), texts));
            tokio::time::sleep(Duration::from_millis(rng.random_range(5..60))).await;
            // Most often posts are still coming and the outbox is draining; only answered
            // posts must arrive.
            let outbox = alice.status().await.ok().map(|s| s["outbox"].clone());
            alice.proc.kill();
            let done = writer.await?;
            println!(
                "kill {}: alice's node, {} posts answered, outbox {outbox:?}",
                round + 1,
                done.len()
            );
            answered.extend(done);
            alice = Node::start(&alice_dir, &address)?;
        } else {
            let first = texts[0].0;
            answered.extend(post_all(alice.http.clone(), alice.url.clone(), texts).await);
            let deadline = Instant::now() + WAIT;
            let shown = loop {
                let shown = transcript(&bob, "bob", "alice")
                    .await?
                    .iter()
                    .filter(|e| number(e).is_some_and(|n| n >= first))
                    .count();
                if shown > 0 {
                    break shown;
                }
                anyhow::ensure!(Instant::now() < deadline, "bob's node took nothing in");
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            bob.proc.kill();
            println!(
                "kill {}: bob's node, showing {shown} of {BURST} new",
                round + 1
            );
            bob = Node::start(&bob_dir, &address)?;
        }
    }

    // Every answered post arrives once, in order; nothing else shows (no gap markers, no
    // copies), and alice sees each delivered.
    let expected = answered.len();
    eventually(
        WAIT * 2,
        &format!("bob to show all {expected} answered messages"),
        || async {
            let got = transcript(&bob, "bob", "alice").await?;
            Ok(answered
                .iter()
                .all(|n| got.contains(&format!("< kill {n}")))
                .then_some(()))
        },
    )
    .await?;
    let got = transcript(&bob, "bob", "alice").await?;
    let numbers: Vec<usize> = got
        .iter()
        .map(|e| number(e).with_context(|| format!("not one of alice's messages: {e}")))
        .collect::<anyhow::Result<_>>()?;
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "each once, in order: {numbers:?}"
    );
    assert!(
        numbers.iter().all(|n| *n < next),
        "only posted messages: {numbers:?}"
    );
    all_delivered(&alice, "alice", "bob", numbers.len(), WAIT * 2).await?;
    println!(
        "{kills} node kills: {} posts answered, {} shown at bob, none twice",
        answered.len(),
        numbers.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_down_while_100_messages_are_written_delivers_them_all_when_it_returns()
-> anyhow::Result<()> {
    // `cargo xtask outage` keeps the mailbox down for a minute.
    let outage = Duration::from_secs(
        std::env::var("SM_OUTAGE_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
    );
    let p = pair().await?;
    let mut down = p.mailbox;
    down.proc.kill();
    let started = Instant::now();
    let texts: Vec<String> = (1..=100)
        .map(|i| format!("during the outage {i:03}"))
        .collect();
    for (i, text) in texts.iter().enumerate() {
        send(&p.alice, "alice", "bob", text).await?;
        // Spread the writes over the outage.
        let due = outage.mul_f64((i + 1) as f64 / texts.len() as f64);
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
    }
    let status = p.alice.status().await?;
    // Nothing got out (the node notices a dead connection within 6 s; a shorter outage can
    // still show "online").
    assert_eq!(status["outbox"], 100, "{status}");

    // The mailbox returns on its address; from here on the test only looks.
    let mailbox = down.restart_on_same_port()?;
    let back = Instant::now();
    let expected: Vec<String> = texts.iter().map(|t| format!("< {t}")).collect();
    // The nodes retry with a backoff of at most 30 s (node::sync::engine::BACKOFF_CAP).
    eventually(WAIT * 4, "bob to have the 100 messages", || async {
        let got = transcript(&p.bob, "bob", "alice").await?;
        assert!(
            expected.starts_with(&got),
            "not a beginning of the 100: {got:?}"
        );
        Ok((got.len() == expected.len()).then_some(()))
    })
    .await?;
    let received = back.elapsed();
    all_delivered(&p.alice, "alice", "bob", 100, WAIT * 4).await?;
    println!(
        "outage of {:?}: 100 messages written during it; bob had all {received:?} after the mailbox returned, alice saw them delivered after {:?}",
        outage,
        back.elapsed()
    );
    assert_eq!(p.alice.status().await?["outbox"], 0);
    drop(mailbox);
    Ok(())
}

#[tokio::test]
async fn receipts_mark_messages_delivered_and_are_never_shown_as_messages() -> anyhow::Result<()> {
    let p = pair().await?;
    let mut alice_events = p.alice.events().await?;
    let sent = send(&p.alice, "alice", "bob", "are you there?").await?;
    let id = sent["id"].as_str().context("message id")?.to_owned();

    // Alice's status changes arrive as events: sent (the mailbox holds it), then delivered
    // (bob's receipt); never anything else.
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("delivered") {
        let event = alice_events
            .wait_for("status", WAIT, |d| d["id"] == id.as_str())
            .await?;
        seen.push(event["status"].as_str().unwrap_or("?").to_owned());
    }
    assert!(
        seen == ["sent", "delivered"] || seen == ["delivered"],
        "status changes {seen:?}"
    );
    assert_eq!(statuses(&p.alice, "alice", "bob").await?, ["delivered"]);

    send(&p.bob, "bob", "alice", "yes").await?;
    all_delivered(&p.bob, "bob", "alice", 1, WAIT).await?;

    // Two receipts went each way; neither conversation shows them, nor do requests.
    assert_eq!(
        transcript(&p.bob, "bob", "alice").await?,
        ["< are you there?", "> yes"]
    );
    assert_eq!(
        transcript(&p.alice, "alice", "bob").await?,
        ["> are you there?", "< yes"]
    );
    for (node, id) in [(&p.alice, "alice"), (&p.bob, "bob")] {
        let requests = node.get(&format!("/api/identities/{id}/requests")).await?;
        assert_eq!(requests["requests"], json!([]), "{id}'s requests");
    }
    Ok(())
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

#[tokio::test]
async fn dropped_envelopes_show_as_a_gap_marker_between_the_messages_around_them()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mailbox, alice, dave) = alice_knowing_dave(dir.path()).await?;

    let chain = sealed_chain(
        &dave,
        public_key(&alice, "alice").await?,
        &["one", "two", "three", "four"],
    )
    .await?;
    let client = mailbox.connect_as(&[&dave]).await?;
    let from = dave.fingerprint();
    // 2 and 3 are lost on the way.
    for sealed in [&chain[0], &chain[3]] {
        assert!(client.send(from, sealed.bytes.clone()).await?, "stored");
    }

    let entries = eventually(WAIT, "alice's node to take both envelopes in", || async {
        let entries = conversation(&alice, "alice", "dave").await?;
        Ok((entries.iter().filter(|e| e["kind"] == "message").count() == 2).then_some(entries))
    })
    .await?;
    let shape: Vec<Value> = entries
        .iter()
        .map(|e| match e["kind"].as_str() {
            Some("message") => json!({ "text": e["text"], "seq": e["seq"] }),
            _ => json!({ "kind": e["kind"], "missing": e["missing"] }),
        })
        .collect();
    assert_eq!(
        shape,
        [
            json!({ "text": "one", "seq": 1 }),
            json!({ "kind": "gap", "missing": 2 }),
            json!({ "text": "four", "seq": 4 }),
        ],
        "{entries:#?}"
    );
    client.close().await;
    Ok(())
}

/// A page from another origin gets no CORS grant: no preflight passes, and no answer
/// (even to a GET, which the node serves) carries an Access-Control-Allow-* header, so the
/// browser keeps the page from reading it.
#[tokio::test]
async fn a_page_from_another_origin_gets_no_cors_grant() -> anyhow::Result<()> {
    let p = pair().await?;
    let evil = "http://evil.example";
    let preflight = p
        .alice
        .request(
            Method::OPTIONS,
            "/api/identities/alice/contacts/bob/messages",
        )
        .header("origin", evil)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await?;
    let get = p
        .alice
        .request(Method::GET, "/api/identities")
        .header("origin", evil)
        .send()
        .await?;
    assert_eq!(get.status().as_u16(), 200, "a plain GET is served");
    for (what, response) in [("preflight", &preflight), ("GET", &get)] {
        let granted: Vec<_> = response
            .headers()
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .collect();
        assert!(granted.is_empty(), "{what}: {granted:?}");
    }
    assert!(
        !preflight.status().is_success(),
        "preflight: {}",
        preflight.status()
    );
    Ok(())
}

/// Another local user can list neither the mailbox's nor the node's files: the data
/// directories are 0700 (even one that existed with looser permissions), private key files
/// 0600.
#[cfg(unix)]
#[tokio::test]
async fn data_directories_and_key_files_are_private_to_their_user() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| -> anyhow::Result<u32> {
        Ok(std::fs::metadata(path)
            .with_context(|| path.display().to_string())?
            .permissions()
            .mode()
            & 0o777)
    };
    let dir = tempfile::tempdir()?;
    let alice_dir = dir.path().join("alice");
    std::fs::create_dir(&alice_dir)?;
    std::fs::set_permissions(&alice_dir, std::fs::Permissions::from_mode(0o755))?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let alice = Node::start(&alice_dir, &mailbox.pinned_address())?;
    alice.create_identity("alice").await?;

    let keys = alice_dir.join("keys");
    for private in [dir.path().join("mailbox"), alice_dir.clone(), keys.clone()] {
        assert_eq!(mode(&private)?, 0o700, "{}", private.display());
    }
    let key_files: Vec<_> = std::fs::read_dir(&keys)?.collect::<Result<_, _>>()?;
    assert_eq!(key_files.len(), 1, "one identity, one key file");
    assert_eq!(mode(&key_files[0].path())?, 0o600);
    // The mailbox's TLS key too.
    assert_eq!(mode(&dir.path().join("mailbox").join("key.der"))?, 0o600);
    Ok(())
}

/// The mailbox forgets an envelope once it is acknowledged, so a late retry (or a replay by
/// the mailbox) delivers it again: the node knows its id, acknowledges it, and neither shows
/// it again nor sends a second receipt.
#[tokio::test]
async fn a_message_delivered_twice_is_shown_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mailbox, alice, dave) = alice_knowing_dave(dir.path()).await?;
    let chain = sealed_chain(
        &dave,
        public_key(&alice, "alice").await?,
        &["first", "second"],
    )
    .await?;
    let client = mailbox.connect_as(&[&dave]).await?;
    let from = dave.fingerprint();

    assert!(client.send(from, chain[0].bytes.clone()).await?);
    eventually(WAIT, "alice's node to acknowledge the first", || async {
        let delivered = mailbox.metric("mailbox_envelopes_delivered_total").await?;
        Ok((delivered == Some(1.0)).then_some(()))
    })
    .await?;
    assert!(
        client.send(from, chain[0].bytes.clone()).await?,
        "stored again: the mailbox kept nothing of it"
    );
    assert!(client.send(from, chain[1].bytes.clone()).await?);
    eventually(WAIT, "alice's node to show the second", || async {
        Ok((transcript(&alice, "alice", "dave").await?.len() == 2).then_some(()))
    })
    .await?;
    assert_eq!(
        transcript(&alice, "alice", "dave").await?,
        ["< first", "< second"]
    );

    // One receipt per message: the second copy got none. Receipts follow the messages they
    // confirm in alice's outbox, so the second's receipt comes after any for the copy.
    let confirmed = eventually(WAIT, "receipts for both messages", || async {
        let (envelopes, _) = client.pull(from, 16).await?;
        let mut ids = Vec::new();
        for envelope in &envelopes {
            let message = dave.open(envelope)?;
            anyhow::ensure!(message.kind() == MessageKind::Receipt, "{message:?}");
            ids.extend(crypto::envelope::parse_receipt_body(message.body()).unwrap_or_default());
        }
        Ok(ids.contains(&chain[1].header.id).then_some(ids))
    })
    .await?;
    assert_eq!(confirmed, [chain[0].header.id, chain[1].header.id]);
    client.close().await;
    Ok(())
}

/// What a malicious mailbox (or anyone who can SEND) learns from envelopes a node refuses:
/// nothing. They are acknowledged and dropped; nothing is shown, stored or sent back, and
/// the next good envelope is read as if they had never been.
#[tokio::test]
async fn refused_envelopes_are_dropped_without_a_word() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mailbox, alice, dave) = alice_knowing_dave(dir.path()).await?;
    let alice_key = public_key(&alice, "alice").await?;
    let [mallory] = identities().await?;

    // A message of dave's with one byte of its ciphertext changed on the way.
    let mut altered = sealed_chain(&dave, alice_key.clone(), &["pay mallory"]).await?[0]
        .bytes
        .clone();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    // A message dave sealed for mallory, re-addressed to alice (the header names her).
    let mut rerouted = sealed_chain(&dave, mallory.public_key().clone(), &["for mallory"]).await?
        [0]
    .bytes
    .clone();
    rerouted[1..33].copy_from_slice(alice_key.fingerprint().as_ref());
    let good = sealed_chain(&dave, alice_key, &["hello alice"]).await?;

    let client = mailbox.connect_as(&[&dave, &mallory]).await?;
    let (from_dave, from_mallory) = (dave.fingerprint(), mallory.fingerprint());
    assert!(
        client.send(from_dave, altered).await?,
        "the mailbox stores it"
    );
    assert!(
        client.send(from_mallory, rerouted).await?,
        "the mailbox stores it"
    );
    assert!(client.send(from_dave, good[0].bytes.clone()).await?);

    // Queues are read in order: once the good one is shown, the others were handled.
    eventually(WAIT, "alice's node to show dave's good message", || async {
        let t = transcript(&alice, "alice", "dave").await?;
        Ok((!t.is_empty()).then_some(()))
    })
    .await?;
    // Only the good message, with no gap before it.
    assert_eq!(
        transcript(&alice, "alice", "dave").await?,
        ["< hello alice"]
    );
    assert_eq!(
        alice.get("/api/identities/alice/requests").await?["requests"],
        json!([])
    );
    // Back to dave: one receipt, for the good message only (it follows anything that would
    // have been sent about the refused ones in alice's outbox). Mallory hears nothing.
    let receipt = eventually(WAIT, "dave's receipt", || async {
        let (envelopes, _) = client.pull(from_dave, 16).await?;
        Ok((!envelopes.is_empty()).then_some(envelopes))
    })
    .await?;
    assert_eq!(receipt.len(), 1, "only the receipt is queued for dave");
    let message = dave.open(&receipt[0])?;
    assert_eq!(message.kind(), MessageKind::Receipt);
    assert_eq!(
        crypto::envelope::parse_receipt_body(message.body()),
        Some(vec![good[0].header.id])
    );
    assert_eq!(client.pull(from_mallory, 16).await?, (vec![], false));
    // And alice's queue is empty: the refused envelopes were acknowledged, not left to be
    // offered again; the one envelope queued anywhere is dave's receipt.
    assert_eq!(mailbox.metric("mailbox_queued_envelopes").await?, Some(1.0));
    client.close().await;
    Ok(())
}

#[tokio::test]
async fn unknown_senders_land_in_requests_and_can_be_accepted_or_deleted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let alice = Node::start(&dir.path().join("alice"), &mailbox.pinned_address())?;
    alice.create_identity("alice").await?;
    let alice_key = public_key(&alice, "alice").await?;
    let [stranger, spammer] = identities().await?;
    let client = mailbox.connect_as(&[&stranger, &spammer]).await?;
    let hello = sealed_chain(&stranger, alice_key.clone(), &["hello, we met at the fair"]).await?;
    let spam = sealed_chain(&spammer, alice_key, &["buy now"]).await?;
    client
        .send(stranger.fingerprint(), hello[0].bytes.clone())
        .await?;
    client
        .send(spammer.fingerprint(), spam[0].bytes.clone())
        .await?;

    let requests = eventually(WAIT, "both strangers in alice's requests", || async {
        let r = alice.get("/api/identities/alice/requests").await?;
        let list = r["requests"].as_array().cloned().unwrap_or_default();
        Ok((list.len() == 2).then_some(list))
    })
    .await?;
    let stranger_fp = stranger.fingerprint().to_string();
    let spammer_fp = spammer.fingerprint().to_string();
    let from_stranger = requests
        .iter()
        .find(|r| r["fingerprint"] == stranger_fp.as_str())
        .with_context(|| format!("no request from the stranger in {requests:#?}"))?;
    assert_eq!(
        from_stranger["public_key"].as_str().map(str::trim),
        Some(stranger.public_key().to_pem().trim())
    );
    let texts: Vec<&Value> = from_stranger["messages"]
        .as_array()
        .context("messages")?
        .iter()
        .map(|m| &m["text"])
        .collect();
    assert_eq!(texts, [&json!("hello, we met at the fair")]);
    let message_id = from_stranger["messages"][0]["id"]
        .as_str()
        .context("message id")?
        .to_owned();
    // Not a contact yet.
    assert_eq!(
        alice.get("/api/identities/alice/contacts").await?["contacts"],
        json!([])
    );

    let (status, contact) = alice
        .post(
            &format!("/api/identities/alice/requests/{stranger_fp}/accept"),
            json!({ "name": "stranger" }),
        )
        .await?;
    assert_eq!(status, 201, "{contact}");
    assert_eq!(contact["fingerprint"], stranger_fp.as_str());
    assert_eq!(
        transcript(&alice, "alice", "stranger").await?,
        ["< hello, we met at the fair"]
    );
    let left = alice.get("/api/identities/alice/requests").await?;
    let left: Vec<&Value> = left["requests"]
        .as_array()
        .context("requests")?
        .iter()
        .map(|r| &r["fingerprint"])
        .collect();
    assert_eq!(left, [&json!(spammer_fp)]);

    // Accepted, the stranger gets a receipt for the message.
    let confirmed = eventually(WAIT, "a receipt for the stranger", || async {
        let (envelopes, _) = client.pull(stranger.fingerprint(), 16).await?;
        for envelope in envelopes {
            let message = stranger.open(&envelope)?;
            if message.kind() == MessageKind::Receipt {
                return Ok(crypto::envelope::parse_receipt_body(message.body()));
            }
        }
        Ok(None)
    })
    .await?;
    let confirmed: Vec<String> = confirmed.iter().map(ToString::to_string).collect();
    assert_eq!(confirmed, [message_id]);

    // The other request is deleted, and gone.
    let path = format!("/api/identities/alice/requests/{spammer_fp}");
    let resp = alice.request(Method::DELETE, &path).send().await?;
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        alice.get("/api/identities/alice/requests").await?["requests"],
        json!([])
    );
    let again = alice.request(Method::DELETE, &path).send().await?;
    assert_eq!(again.status().as_u16(), 404);
    client.close().await;
    Ok(())
}

#[tokio::test]
async fn invite_codes_add_contacts_and_warn_about_another_mailbox() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let alice = Node::start(&dir.path().join("alice"), &mailbox.pinned_address())?;
    let bob = Node::start(&dir.path().join("bob"), &mailbox.pinned_address())?;
    let (a, _) = tokio::try_join!(alice.create_identity("alice"), bob.create_identity("bob"))?;

    // Invites name the mailbox the node uses: wait until each has its address.
    for node in [&alice, &bob] {
        eventually(WAIT, "the node to know its mailbox", || async {
            Ok(
                (node.status().await?["mailbox"]["address"] == mailbox.pinned_address())
                    .then_some(()),
            )
        })
        .await?;
    }
    let alice_invite = alice.get("/api/identities/alice/invite").await?["invite"]
        .as_str()
        .context("invite")?
        .to_owned();
    let bob_invite = bob.get("/api/identities/bob/invite").await?["invite"]
        .as_str()
        .context("invite")?
        .to_owned();
    assert!(alice_invite.starts_with("sm1-"), "{alice_invite}");

    let (status, alice_at_bob) = bob
        .post(
            "/api/identities/bob/contacts",
            json!({ "name": "alice", "invite": alice_invite }),
        )
        .await?;
    assert_eq!(status, 201, "{alice_at_bob}");
    assert_eq!(alice_at_bob["fingerprint"], a["fingerprint"]);
    assert_eq!(alice_at_bob["mailbox"], mailbox.pinned_address());
    assert_eq!(alice_at_bob["warning"], Value::Null, "same mailbox");
    assert_eq!(alice_at_bob["verified"], false);
    let (status, bob_at_alice) = alice
        .post(
            "/api/identities/alice/contacts",
            json!({ "name": "bob", "invite": bob_invite }),
        )
        .await?;
    assert_eq!(status, 201, "{bob_at_alice}");
    assert!(alice_at_bob["safety_number"].is_string(), "{alice_at_bob}");
    assert_eq!(
        alice_at_bob["safety_number"], bob_at_alice["safety_number"],
        "both sides compute the same safety number"
    );

    send(&alice, "alice", "bob", "hello via invite").await?;
    all_delivered(&alice, "alice", "bob", 1, WAIT).await?;
    assert_eq!(
        transcript(&bob, "bob", "alice").await?,
        ["< hello via invite"]
    );

    // Carol's node uses another mailbox (nothing runs there: her invite names it anyway).
    let elsewhere = format!("127.0.0.1:{}#{}", free_udp_port()?, "ab".repeat(32));
    let carol = Node::start(&dir.path().join("carol"), &elsewhere)?;
    carol.create_identity("carol").await?;
    eventually(WAIT, "carol's node to know its mailbox", || async {
        Ok((carol.status().await?["mailbox"]["address"] == elsewhere.as_str()).then_some(()))
    })
    .await?;
    let carol_invite = carol.get("/api/identities/carol/invite").await?["invite"].clone();
    let (status, carol_at_bob) = bob
        .post(
            "/api/identities/bob/contacts",
            json!({ "name": "carol", "invite": carol_invite }),
        )
        .await?;
    assert_eq!(status, 201, "{carol_at_bob}");
    assert_eq!(carol_at_bob["mailbox"], elsewhere.as_str());
    let warning = carol_at_bob["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("will not reach"),
        "a warning that messages will not reach carol: {carol_at_bob}"
    );
    // It stays on the contact.
    let again = bob.get("/api/identities/bob/contacts/carol").await?;
    assert_eq!(again["warning"], carol_at_bob["warning"]);
    Ok(())
}

#[tokio::test]
async fn an_invite_made_while_the_mailbox_is_down_still_names_the_pinned_certificate()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // No pin given: the node learns the certificate on first use.
    let address = format!("127.0.0.1:{}", free_udp_port()?);
    let mut mailbox = Mailbox::start_on(&dir.path().join("mailbox"), &address)?;
    let node = Node::start(&dir.path().join("node"), &address)?;
    tokio::try_join!(node.create_identity("alice"), node.create_identity("bob"))?;
    eventually(WAIT, "the node to learn the certificate", || async {
        let s = node.status().await?;
        Ok((s["mailbox"]["address"] == mailbox.pinned_address()).then_some(()))
    })
    .await?;
    // The contact's "mailbox" is what the invite named.
    let invited = |name: &'static str| {
        let node = &node;
        async move {
            let invite = node.get("/api/identities/alice/invite").await?["invite"].clone();
            let (status, contact) = node
                .post(
                    "/api/identities/bob/contacts",
                    json!({ "name": name, "invite": invite }),
                )
                .await?;
            anyhow::ensure!(status == 201, "{contact}");
            let deleted = node
                .request(
                    Method::DELETE,
                    &format!("/api/identities/bob/contacts/{name}"),
                )
                .send()
                .await?;
            anyhow::ensure!(deleted.status().as_u16() == 204);
            Ok::<_, anyhow::Error>(contact["mailbox"].clone())
        }
    };
    assert_eq!(invited("online").await?, mailbox.pinned_address());

    mailbox.proc.terminate(Duration::from_secs(10))?;
    eventually(WAIT, "the node to try to reconnect", || async {
        Ok((node.status().await?["mailbox"]["state"] == "connecting").then_some(()))
    })
    .await?;
    // The node still pins (and would refuse another certificate at that address): what it
    // shows and what its invites carry must say so.
    assert_eq!(
        invited("offline").await?,
        mailbox.pinned_address(),
        "the mailbox an invite made while offline names"
    );
    assert_eq!(
        node.status().await?["mailbox"]["address"],
        mailbox.pinned_address(),
        "the status's mailbox address while offline"
    );
    Ok(())
}

/// One bad (or good) request and what it must get.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Body,
    status: u16,
    code: Option<&'static str>,
}

enum Body {
    None,
    Json(Value),
    Raw(String),
}

fn case(what: &'static str, method: Method, path: &str, body: Body) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body,
        status: 0,
        code: None,
    }
}

impl Case {
    fn expect(mut self, status: u16, code: Option<&'static str>) -> Self {
        self.status = status;
        self.code = code;
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A P-256 public key: a valid PEM, but not an RSA key.
const EC_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElcGfa29GFSO/+4vR1e5MdTKeDxHO
vZHsXk/IscR9MHhqoFU7MgNxrxTt1MTKs4JuacLgpRI+2NPAhXYe03TGKg==
-----END PUBLIC KEY-----
";

#[tokio::test]
async fn bad_input_gets_its_4xx_and_the_node_keeps_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // No mailbox is needed to refuse input.
    let node = Node::start(
        &dir.path().join("node"),
        &format!("127.0.0.1:{}", free_udp_port()?),
    )?;
    tokio::try_join!(node.create_identity("alice"), node.create_identity("bob"))?;
    let bob_pem = node.text("/api/identities/bob/public-key").await?;
    let (status, body) = node
        .post(
            "/api/identities/alice/contacts",
            json!({ "name": "bob", "public_key": bob_pem }),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let [carol] = identities().await?;
    let carol_pem = carol.public_key().to_pem();
    let own_origin = node.url.clone();
    let post = Method::POST;
    let get = Method::GET;
    let messages = "/api/identities/alice/contacts/bob/messages";

    let mut cases = Vec::new();
    for (what, name) in [
        ("empty identity name", String::new()),
        ("identity name .", ".".to_owned()),
        ("identity name ..", "..".to_owned()),
        ("identity name with a slash", "a/b".to_owned()),
        ("identity name of 65 characters", "x".repeat(65)),
        ("identity name not ASCII", "é".to_owned()),
        ("identity name ../x", "../x".to_owned()),
        ("identity name /abs", "/abs".to_owned()),
        (
            "identity name with a control character",
            "a\u{7}b".to_owned(),
        ),
        ("identity name with a newline", "a\nb".to_owned()),
        ("identity name of 10,000 characters", "x".repeat(10_000)),
    ] {
        cases.push(
            case(
                what,
                post.clone(),
                "/api/identities",
                Body::Json(json!({ "id": name })),
            )
            .expect(400, Some("invalid_name")),
        );
    }
    cases.extend([
        case(
            "identity name of 64 characters",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "x".repeat(64) })),
        )
        .expect(201, None),
        case(
            "duplicate identity",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "alice" })),
        )
        .expect(409, Some("already_exists")),
        case(
            "a public key that is not PEM",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "carol", "public_key": "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n" })),
        )
        .expect(400, Some("invalid_public_key")),
        case(
            "an EC public key",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "carol", "public_key": EC_PUBLIC_KEY })),
        )
        .expect(400, Some("invalid_public_key")),
        case(
            "a bad invite",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "carol", "invite": "sm1-garbage" })),
        )
        .expect(400, Some("invalid_invite")),
        case(
            "not an invite at all",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "carol", "invite": "hello" })),
        )
        .expect(400, Some("invalid_invite")),
        case(
            "a key that is already a contact",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "bob2", "public_key": bob_pem })),
        )
        .expect(409, Some("already_exists")),
        case(
            "a contact name that is taken",
            post.clone(),
            "/api/identities/alice/contacts",
            Body::Json(json!({ "name": "bob", "public_key": carol_pem })),
        )
        .expect(409, Some("already_exists")),
        case("unknown identity", get.clone(), "/api/identities/nobody", Body::None)
            .expect(404, Some("not_found")),
        case(
            "a limit that is not a number",
            get.clone(),
            "/api/identities/alice/contacts/bob/messages?limit=abc",
            Body::None,
        )
        .expect(400, Some("invalid_request")),
        case(
            "a limit out of range",
            get.clone(),
            "/api/identities/alice/contacts/bob/messages?limit=5000",
            Body::None,
        )
        .expect(400, Some("invalid_limit")),
        case(
            "unknown identity's contacts",
            get.clone(),
            "/api/identities/nobody/contacts",
            Body::None,
        )
        .expect(404, Some("not_found")),
        case(
            "unknown contact",
            get.clone(),
            "/api/identities/alice/contacts/nobody",
            Body::None,
        )
        .expect(404, Some("not_found")),
        case(
            "sending to an unknown contact",
            post.clone(),
            "/api/identities/alice/contacts/nobody/messages",
            Body::Json(json!({ "text": "hi" })),
        )
        .expect(404, Some("not_found")),
        case("empty text", post.clone(), messages, Body::Json(json!({ "text": "" })))
            .expect(400, Some("empty_text")),
        case("blank text", post.clone(), messages, Body::Json(json!({ "text": " \n " })))
            .expect(400, Some("empty_text")),
        case(
            "text over 65536 bytes",
            post.clone(),
            messages,
            Body::Json(json!({ "text": "x".repeat(65_537) })),
        )
        .expect(413, Some("too_large")),
        case(
            "text of exactly 65536 bytes",
            post.clone(),
            messages,
            Body::Json(json!({ "text": "é".repeat(32_768) })),
        )
        .expect(201, None),
        // Were the body read, this would be an invalid display name (400).
        case(
            "a body over 1 MiB",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "big", "display_name": "x".repeat(1024 * 1024 + 1) })),
        )
        .expect(413, Some("too_large")),
        case("an unknown API route", get.clone(), "/api/nope", Body::None)
            .expect(404, Some("not_found")),
        case(
            "malformed JSON",
            post.clone(),
            "/api/identities",
            Body::Raw("{\"id\": \"carol\",".to_owned()),
        )
        .expect(400, Some("invalid_json")),
        case(
            "an unknown field",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "carol", "admin": true })),
        )
        .expect(400, Some("invalid_json")),
        case("a foreign Host", get.clone(), "/api/status", Body::None)
            .header("host", "evil.example")
            .expect(403, Some("forbidden")),
        case(
            "a foreign Host with our port",
            get.clone(),
            "/api/identities",
            Body::None,
        )
        .header(
            "host",
            &format!("evil.example:{}", node.url.rsplit(':').next().unwrap_or("")),
        )
        .expect(403, Some("forbidden")),
        case(
            "a POST from a foreign Origin",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "csrf" })),
        )
        .header("origin", "http://evil.example")
        .expect(403, Some("forbidden")),
        case(
            "a POST with a foreign Referer",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "csrf" })),
        )
        .header("referer", "http://evil.example/page")
        .expect(403, Some("forbidden")),
        case(
            "a POST from our own Origin",
            post.clone(),
            "/api/identities",
            Body::Json(json!({ "id": "same-origin" })),
        )
        .header("origin", &own_origin)
        .expect(201, None),
        case(
            "deleting an identity without confirmation",
            Method::DELETE,
            "/api/identities/same-origin",
            Body::None,
        )
        .expect(400, Some("confirmation_required")),
        case(
            "deleting an identity with the wrong confirmation",
            Method::DELETE,
            "/api/identities/same-origin?confirm=alice",
            Body::None,
        )
        .expect(400, Some("confirmation_required")),
        case(
            "deleting an identity with confirmation",
            Method::DELETE,
            "/api/identities/same-origin?confirm=same-origin",
            Body::None,
        )
        .expect(204, None),
        case(
            "the deleted identity",
            get.clone(),
            "/api/identities/same-origin",
            Body::None,
        )
        .expect(404, Some("not_found")),
    ]);

    let mut failures = Vec::new();
    for c in cases {
        let mut request = node.request(c.method.clone(), &c.path);
        for (name, value) in &c.headers {
            request = request.header(*name, value);
        }
        request = match c.body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Raw(s) => request.header("content-type", "application/json").body(s),
        };
        let resp = request.send().await.with_context(|| c.what)?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned));
        if status != c.status || (c.code.is_some() && code.as_deref() != c.code) {
            failures.push(format!(
                "{}: expected {} {:?}, got {status} {}",
                c.what,
                c.status,
                c.code,
                text.chars().take(300).collect::<String>()
            ));
        }
        if status >= 400 && !text.is_empty() {
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: an error that is not JSON: {text}", c.what))?;
            assert!(v["error"].is_string(), "{}: {v}", c.what);
        }
        let after = node
            .http
            .get(format!("{}/api/status", node.url))
            .send()
            .await
            .with_context(|| format!("the node stopped serving after {}", c.what))?;
        assert_eq!(after.status().as_u16(), 200, "after {}", c.what);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing refused was created.
    let ids = node.get("/api/identities").await?;
    let mut ids: Vec<&str> = ids["identities"]
        .as_array()
        .context("identities")?
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    ids.sort_unstable();
    let long = "x".repeat(64);
    assert_eq!(ids, ["alice", "bob", long.as_str()]);
    let contacts = node.get("/api/identities/alice/contacts").await?;
    assert_eq!(contacts["contacts"].as_array().map(Vec::len), Some(1));
    Ok(())
}

/// Wait until a node shows that it refuses its mailbox's certificate; returns its status.
async fn refuses_mailbox(node: &Node) -> anyhow::Result<Value> {
    eventually(
        WAIT,
        "the node to refuse the mailbox's certificate",
        || async {
            let s = node.status().await?;
            let error = s["mailbox"]["last_error"].as_str().unwrap_or_default();
            Ok(
                (s["mailbox"]["state"] == "offline" && error.contains("does not match"))
                    .then_some(s),
            )
        },
    )
    .await
}

#[tokio::test]
async fn a_mailbox_whose_certificate_does_not_match_the_pin_is_refused_and_shown()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    // The right address with someone else's certificate pinned.
    let mut wrong = mailbox.fingerprint.clone();
    let flipped = if wrong.starts_with('0') { "1" } else { "0" };
    wrong.replace_range(..1, flipped);
    let node = Node::start(
        &dir.path().join("node"),
        &format!("{}#{wrong}", mailbox.addr),
    )?;
    tokio::try_join!(node.create_identity("alice"), node.create_identity("bob"))?;
    node.add_contact_from("alice", "bob", &node, "bob").await?;
    send(&node, "alice", "bob", "hello?").await?;

    let status = refuses_mailbox(&node).await?;
    assert_eq!(status["outbox"], 1, "{status}");
    assert_eq!(statuses(&node, "alice", "bob").await?, ["pending"]);
    assert!(
        mailbox
            .metric("mailbox_envelopes_stored_total")
            .await?
            .unwrap_or(0.0)
            == 0.0,
        "the mailbox got nothing"
    );
    Ok(())
}

#[tokio::test]
async fn a_certificate_learnt_on_first_use_is_kept_and_another_one_is_refused() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let address = format!("127.0.0.1:{}", free_udp_port()?);
    let node_dir = dir.path().join("node");
    let node = Node::start(&node_dir, &address)?;
    tokio::try_join!(node.create_identity("alice"), node.create_identity("bob"))?;
    node.add_contact_from("alice", "bob", &node, "bob").await?;
    let mut first = Mailbox::start_on(&dir.path().join("first"), &address)?;
    eventually(
        WAIT,
        "the node to learn the first mailbox's certificate",
        || async {
            let s = node.status().await?;
            Ok((s["mailbox"]["state"] == "online"
                && s["mailbox"]["address"] == first.pinned_address())
            .then_some(()))
        },
    )
    .await?;
    first.proc.terminate(Duration::from_secs(10))?;

    // Another mailbox (another certificate) takes over the address: refused, now and after
    // the node restarts.
    let second = Mailbox::start_on(&dir.path().join("second"), &address)?;
    assert_ne!(second.fingerprint, first.fingerprint);
    let pinned_is_the_first = |status: &Value| {
        let error = status["mailbox"]["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("pinned fingerprint ({})", first.fingerprint))
                && error.contains(&second.fingerprint),
            "the node compares the new certificate with the one it learnt: {status}"
        );
    };
    pinned_is_the_first(&refuses_mailbox(&node).await?);
    let mut node = node;
    node.proc.kill();
    let node = Node::start(&node_dir, &address)?;
    pinned_is_the_first(&refuses_mailbox(&node).await?);
    send(&node, "alice", "bob", "is this you?").await?;
    refuses_mailbox(&node).await?;
    assert_eq!(statuses(&node, "alice", "bob").await?, ["pending"]);
    assert_eq!(
        second
            .metric("mailbox_envelopes_stored_total")
            .await?
            .unwrap_or(0.0),
        0.0,
        "the impostor got nothing"
    );
    drop(second);
    Ok(())
}

#[tokio::test]
async fn the_event_stream_announces_an_arriving_message() -> anyhow::Result<()> {
    let p = pair().await?;
    let mut events = p.bob.events().await?;
    let first = events.next(WAIT).await?;
    assert_eq!(
        first.event, "connection",
        "the stream starts with the status"
    );
    assert!(first.json()?["mailbox"]["state"].is_string(), "{first:?}");

    let sent = send(&p.alice, "alice", "bob", "live from alice").await?;
    let started = Instant::now();
    let event = events
        .wait_for("message", Duration::from_secs(5), |d| {
            d["text"] == "live from alice"
        })
        .await?;
    println!(
        "bob's event stream showed the message after {:?}",
        started.elapsed()
    );
    assert_eq!(event["identity"], "bob");
    assert_eq!(event["contact"], "alice");
    assert_eq!(event["direction"], "in");
    assert_eq!(event["id"], sent["id"]);
    Ok(())
}

/// A conversation read page by page, following `next_before`, is every entry once, newest
/// first; the last page says there is no more.
#[tokio::test]
async fn pages_of_a_conversation_follow_the_cursor_to_the_end() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let (alice, _bob) = alice_and_bob(dir.path(), &mailbox.pinned_address()).await?;
    let texts: Vec<String> = (1..=7).map(|i| format!("page test {i}")).collect();
    for text in &texts {
        send(&alice, "alice", "bob", text).await?;
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..10 {
        let query = match &before {
            Some(id) => format!("?limit=3&before={id}"),
            None => "?limit=3".to_owned(),
        };
        let page = alice
            .get(&format!(
                "/api/identities/alice/contacts/bob/messages{query}"
            ))
            .await?;
        let entries = page["messages"].as_array().context("messages")?;
        assert!(entries.len() <= 3, "{page}");
        seen.extend(
            entries
                .iter()
                .map(|m| m["text"].as_str().unwrap_or("?").to_owned()),
        );
        match page["next_before"].as_str() {
            Some(id) => before = Some(id.to_owned()),
            None => {
                assert!(page["next_before"].is_null(), "{page}");
                break;
            }
        }
    }
    let newest_first: Vec<String> = texts.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    Ok(())
}

/// Every setting the page offers is in the API too; changing one leaves the others.
#[tokio::test]
async fn settings_are_read_and_changed_through_the_api() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let node = Node::start(&dir.path().join("node"), &mailbox.pinned_address())?;
    let settings = node.get("/api/settings").await?;
    assert_eq!(
        settings,
        json!({ "mailbox": mailbox.pinned_address(), "previews": true })
    );
    let put = |body: Value| {
        node.request(Method::PUT, "/api/settings")
            .json(&body)
            .send()
    };
    let changed: Value = put(json!({ "previews": false })).await?.json().await?;
    assert_eq!(
        changed,
        json!({ "mailbox": mailbox.pinned_address(), "previews": false })
    );
    assert_eq!(node.get("/api/settings").await?, changed);
    for bad in [json!({}), json!({ "mailbox": "a:1", "invite": "x" })] {
        let resp = put(bad.clone()).await?;
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await?;
        assert_eq!(body["code"], "missing_mailbox", "{bad}: {body}");
    }
    let elsewhere = format!("127.0.0.1:9#{}", "ab".repeat(32));
    let moved: Value = put(json!({ "mailbox": elsewhere })).await?.json().await?;
    assert_eq!(moved, json!({ "mailbox": elsewhere, "previews": false }));
    Ok(())
}

/// Every `201 Created` says where the new resource is, and that URL serves the same JSON.
#[tokio::test]
async fn every_201_carries_a_location_that_serves_what_was_made() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let (alice, _bob) = alice_and_bob(dir.path(), &mailbox.pinned_address()).await?;
    let dave = Identity::generate()?;
    // Each with the field that names it (a message's status may move on meanwhile).
    let made = [
        (
            "/api/identities".to_owned(),
            json!({ "id": "alice2" }),
            "id",
        ),
        (
            "/api/identities/alice/contacts".to_owned(),
            json!({ "name": "dave", "public_key": dave.public_key().to_pem() }),
            "name",
        ),
        (
            "/api/identities/alice/contacts/bob/messages".to_owned(),
            json!({ "text": "where is it?" }),
            "id",
        ),
    ];
    for (path, body, key) in made {
        let resp = alice
            .request(Method::POST, &path)
            .json(&body)
            .send()
            .await?;
        assert_eq!(resp.status(), 201, "POST {path}");
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("POST {path}: no Location"))?
            .to_owned();
        assert!(location.starts_with(&path), "{location} under {path}");
        let created: Value = resp.json().await?;
        let served = alice.get(&location).await?;
        assert_eq!(served[key], created[key], "GET {location}: {served}");
        assert!(created[key].is_string(), "{created}");
    }
    let missing = alice
        .request(
            Method::GET,
            "/api/identities/alice/contacts/bob/messages/00000000000000000000000000000000",
        )
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    Ok(())
}

/// Another local user can reach 127.0.0.1 too: with an access token set, the API and the
/// pages refuse every request without it, and take it as a bearer token or as the cookie
/// the login form sets.
#[tokio::test]
async fn with_an_access_token_nothing_is_served_without_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let token = "correct horse battery staple";
    let node = Node::start_with_env(
        &dir.path().join("node"),
        &mailbox.pinned_address(),
        &[("NODE_ACCESS_TOKEN", token)],
    )?;
    let no_token = node.request(Method::GET, "/api/status").send().await?;
    assert_eq!(no_token.status(), 401);
    let challenge = no_token.headers().get("www-authenticate").cloned();
    assert_eq!(
        challenge.as_ref().and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"secure-messenger-node\"")
    );
    let body: Value = no_token.json().await?;
    assert_eq!(body["code"], "unauthorized", "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("access token")),
        "{body}"
    );
    let wrong = node
        .request(Method::POST, "/api/identities")
        .bearer_auth("wrong")
        .json(&json!({ "id": "mallory" }))
        .send()
        .await?;
    assert_eq!(wrong.status(), 401, "a wrong token changes nothing");
    let page = node.request(Method::GET, "/").send().await?;
    assert_eq!(page.status(), 401);
    assert!(page.headers().contains_key("www-authenticate"));
    assert!(
        page.text().await?.contains("access token"),
        "the page asks for it"
    );

    let with = node
        .request(Method::POST, "/api/identities")
        .bearer_auth(token)
        .json(&json!({ "id": "alice" }))
        .send()
        .await?;
    assert_eq!(with.status(), 201);
    // The login form sets the cookie a browser then sends.
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .post(format!("{}/login", node.url))
        .form(&[("token", token)])
        .send()
        .await?;
    assert_eq!(login.status(), 303);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no cookie from the login form")?
        .to_owned();
    let ids: Value = node
        .request(Method::GET, "/api/identities")
        .header("cookie", cookie)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(ids["identities"][0]["id"], "alice", "{ids}");
    let bad_login = node
        .http
        .post(format!("{}/login", node.url))
        .form(&[("token", "guess")])
        .send()
        .await?;
    assert_eq!(bad_login.status(), 401);
    Ok(())
}

/// Through a network that loses a tenth of the datagrams both ways and holds back a fifth
/// of the rest (so some overtake others), every message still arrives, once, in order, and
/// is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_lossy_network_every_message_arrives_once_in_order() -> anyhow::Result<()> {
    const COUNT: usize = 30;
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let proxy = LossyProxy::start(mailbox.socket_addr()?, 0.10).await?;
    let address = format!("{}#{}", proxy.addr, mailbox.fingerprint);
    let (alice, bob) = alice_and_bob(dir.path(), &address).await?;
    let texts: Vec<String> = (0..COUNT).map(|i| format!("lossy {i}")).collect();
    for text in &texts {
        send(&alice, "alice", "bob", text).await?;
    }
    let got = eventually(
        Duration::from_secs(60),
        "bob to have every message",
        || async {
            let got = transcript(&bob, "bob", "alice").await?;
            Ok((got.len() >= COUNT).then_some(got))
        },
    )
    .await?;
    let expected: Vec<String> = texts.iter().map(|t| format!("< {t}")).collect();
    assert_eq!(got, expected, "once each, in order, nothing else");
    all_delivered(&alice, "alice", "bob", COUNT, Duration::from_secs(60)).await?;
    let (dropped, passed) = (
        proxy.dropped.load(std::sync::atomic::Ordering::Relaxed),
        proxy.passed.load(std::sync::atomic::Ordering::Relaxed),
    );
    println!("the proxy dropped {dropped} datagrams and passed {passed}");
    assert!(
        dropped > 0,
        "the network lost nothing: the test proved nothing"
    );
    Ok(())
}
