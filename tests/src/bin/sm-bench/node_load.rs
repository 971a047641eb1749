//! `node`: a node's API under load, from HTTP clients.

use super::*;

/// Figures 3 and 7: alice's API POST → bob's SSE event; message POSTs per second; the
/// conversation page with `SM_NODE_MESSAGES` (10,000) stored messages (at least 1,000: a
/// test runs a short version).
pub(super) async fn node(dir: &Path) -> anyhow::Result<()> {
    let total = env_number("SM_NODE_MESSAGES", 10_000)?;
    anyhow::ensure!(
        total >= 1_000,
        "SM_NODE_MESSAGES={total}: the scenario needs at least 1000 messages"
    );
    // 220 timed end to end, a tenth (at most 1,000) on a connection each, the rest
    // sequential POSTs on one connection.
    let count = u32::try_from((total / 10).min(1_000))?;
    let n = u32::try_from(total)? - 220 - count;
    let mailbox = Mailbox::start_with(&dir.join("mailbox"), UNLIMITED, &[])?;
    let alice = Node::start(&dir.join("alice"), &mailbox.pinned_address())?;
    let bob = Node::start(&dir.join("bob"), &mailbox.pinned_address())?;
    tokio::try_join!(alice.create_identity("alice"), bob.create_identity("bob"))?;
    alice.add_contact_from("alice", "bob", &bob, "bob").await?;
    bob.add_contact_from("bob", "alice", &alice, "alice")
        .await?;
    let path = "/api/identities/alice/contacts/bob/messages";
    let post = |text: String| {
        let alice = &alice;
        async move {
            let (status, body) = alice.post(path, json!({ "text": text })).await?;
            anyhow::ensure!(status == 201, "POST {path}: {status} {body}");
            Ok::<_, anyhow::Error>(body)
        }
    };

    // End to end, one message at a time.
    let mut events = bob.events().await?;
    let mut lat = Vec::new();
    for i in 0..220 {
        let text = format!("latency {i}");
        let started = Instant::now();
        post(text.clone()).await?;
        events
            .wait_for("message", Duration::from_secs(10), |d: &Value| {
                d["text"] == text.as_str()
            })
            .await?;
        if i >= 20 {
            lat.push(started.elapsed().as_micros() as u64);
        }
    }
    drop(events);
    lat.sort_unstable();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    figure(
        "end to end: alice's API POST → bob's SSE event, p50",
        p50 as f64 / 1000.0,
        ms(p50),
        "<= 20 ms",
    );
    figure(
        "end to end: alice's API POST → bob's SSE event, p99",
        p99 as f64 / 1000.0,
        ms(p99),
        "<= 100 ms",
    );

    // Sequential POSTs, then more on a connection each below: the conversation grows to
    // `total` stored messages.
    let started = Instant::now();
    for i in 0..n {
        post(format!("message {i}")).await?;
    }
    let rate = f64::from(n) / started.elapsed().as_secs_f64();
    figure(
        "node: sequential message POSTs through the web API",
        rate,
        format!("{rate:.0}/s"),
        ">= 500/s",
    );
    // One request at a time, each on a connection of its own (as a script with a plain
    // HTTP/1.1 client would send them).
    let token = alice.token.clone().context("alice has an access token")?;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let started = Instant::now();
    for i in 0..count {
        let resp = fresh
            .post(format!("{}{path}", alice.url))
            .bearer_auth(&token)
            .header(reqwest::header::CONNECTION, "close")
            .json(&json!({ "text": format!("fresh {i}") }))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 201, "POST {path}: {}", resp.status());
    }
    let rate = f64::from(count) / started.elapsed().as_secs_f64();
    figure(
        "node: sequential message POSTs, a new connection each",
        rate,
        format!("{rate:.0}/s"),
        ">= 500/s",
    );
    // Let the outbox drain, so delivery does not share the CPU with the page.
    tests::eventually(
        Duration::from_secs(300),
        "alice's outbox drains",
        || async {
            let status = alice.status().await?;
            Ok((status["outbox"] == 0).then_some(()))
        },
    )
    .await?;

    let page = "/?identity=alice&contact=bob";
    let html = alice.text(page).await?;
    let newest = format!("fresh {}", count - 1);
    anyhow::ensure!(
        html.contains(&newest),
        "the page does not show the newest message"
    );
    let mut lat = Vec::new();
    for i in 0..220 {
        let started = Instant::now();
        let html = alice.text(page).await?;
        if i >= 20 {
            lat.push(started.elapsed().as_micros() as u64);
        }
        std::hint::black_box(html);
    }
    lat.sort_unstable();
    let p50 = percentile(&lat, 0.5);
    figure(
        &format!(
            "node: conversation page with {} stored messages (paged), p50",
            thousands(total)
        ),
        p50 as f64 / 1000.0,
        ms(p50),
        "<= 5 ms",
    );
    Ok(())
}
