//! Nodes that outlive their mailbox and themselves: offline sends, mailbox restarts and
//! kills, node kills while sending and receiving, a long outage.

#[allow(clippy::wildcard_imports)]
use super::*;

#[tokio::test]
async fn messages_sent_while_no_mailbox_runs_are_delivered_in_order_once_it_starts()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Nothing listens on this port yet; no pin: the nodes trust the certificate first seen.
    let address = format!("127.0.0.1:{}", free_udp_port()?);
    let (alice, bob) = knowing_each_other(dir.path(), &address).await?;

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
    assert!(
        all_forward_secret(&bob, "bob", "alice").await?,
        "every message went in a session (v2)"
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
    assert!(
        all_forward_secret(&bob, "bob", "alice").await?,
        "every message went in a session (v2)"
    );
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
