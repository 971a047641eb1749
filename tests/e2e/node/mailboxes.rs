//! Everyone their own mailbox (issue 17): a node delivers each contact's envelopes to that
//! contact's own mailbox (named in their invite) and pulls only from its own; an
//! unreachable mailbox holds back only its own contacts.

#[allow(clippy::wildcard_imports)]
use super::*;

/// `node`'s identity `id`, with its invite (which names the node's mailbox).
async fn invite(node: &Node, id: &str) -> anyhow::Result<String> {
    let body = eventually(
        WAIT,
        "an invite naming the mailbox with its pin",
        || async {
            let body = node.get(&format!("/api/identities/{id}/invite")).await?;
            let status = node.status().await?;
            let pinned = status["mailbox"]["address"]
                .as_str()
                .is_some_and(|a| a.contains('#'));
            Ok(pinned.then_some(body))
        },
    )
    .await?;
    Ok(body["invite"].as_str().context("invite")?.to_owned())
}

async fn add_by_invite(node: &Node, id: &str, code: &str) -> anyhow::Result<Value> {
    let (status, body) = node
        .post(
            &format!("/api/identities/{id}/contacts"),
            json!({ "invite": code }),
        )
        .await?;
    anyhow::ensure!(status == 201, "{status} {body}");
    Ok(body)
}

#[tokio::test]
async fn each_delivers_to_the_others_mailbox_and_an_outage_holds_back_only_its_own()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a = Mailbox::start(&dir.path().join("a"))?;
    let b = Mailbox::start(&dir.path().join("b"))?;
    let c = Mailbox::start(&dir.path().join("c"))?;
    let alice = Node::start(&dir.path().join("alice"), &a.pinned_address())?;
    let bob = Node::start(&dir.path().join("bob"), &b.pinned_address())?;
    let carol = Node::start(&dir.path().join("carol"), &c.pinned_address())?;
    tokio::try_join!(
        alice.create_identity("alice"),
        bob.create_identity("bob"),
        carol.create_identity("carol")
    )?;
    // A second profile of alice's that writes to nobody.
    alice.create_identity("work").await?;
    // Each knows only its own mailbox and the others' invites.
    let (to_alice, to_bob, to_carol) = tokio::try_join!(
        invite(&alice, "alice"),
        invite(&bob, "bob"),
        invite(&carol, "carol")
    )?;
    let bob_at_alice = add_by_invite(&alice, "alice", &to_bob).await?;
    assert_eq!(bob_at_alice["mailbox"], b.pinned_address());
    add_by_invite(&alice, "alice", &to_carol).await?;
    add_by_invite(&bob, "bob", &to_alice).await?;
    add_by_invite(&carol, "carol", &to_alice).await?;

    // Messages and receipts both ways, across the two mailboxes.
    send(&alice, "alice", "bob", "hello from mailbox A").await?;
    all_delivered(&alice, "alice", "bob", 1, WAIT).await?;
    send(&bob, "bob", "alice", "hello from mailbox B").await?;
    all_delivered(&bob, "bob", "alice", 1, WAIT).await?;
    assert_eq!(
        transcript(&alice, "alice", "bob").await?,
        ["> hello from mailbox A", "< hello from mailbox B"]
    );
    assert_eq!(
        transcript(&bob, "bob", "alice").await?,
        ["< hello from mailbox A", "> hello from mailbox B"]
    );
    let status = alice.status().await?;
    assert_eq!(status["mailbox"]["state"], "online", "{status}");
    // At bob's mailbox alice's node logged in only the profile that writes there (and bob
    // his own): its operator learns nothing of alice's "work".
    let metrics = reqwest::get(format!("{}/metrics", b.dashboard))
        .await?
        .text()
        .await?;
    let logged_in = metrics
        .lines()
        .find(|l| l.starts_with("mailbox_logged_in_identities "))
        .context("no mailbox_logged_in_identities")?
        .to_owned();
    assert!(logged_in.ends_with(" 2"), "{logged_in}");

    // Bob's mailbox stops: alice's message to him waits; hers to carol still goes.
    let mut b = b;
    b.proc.terminate(WAIT)?;
    send(&alice, "alice", "bob", "while B is down").await?;
    send(&alice, "alice", "carol", "hello carol").await?;
    all_delivered(&alice, "alice", "carol", 1, WAIT).await?;
    assert_eq!(
        transcript(&carol, "carol", "alice").await?,
        ["< hello carol"]
    );
    let waiting = eventually(
        WAIT,
        "bob's contact to say his mailbox is unreachable",
        || async {
            let c = alice.get("/api/identities/alice/contacts/bob").await?;
            Ok(c["warning"].as_str().map(str::to_owned))
        },
    )
    .await?;
    assert!(waiting.contains("cannot be reached now"), "{waiting}");
    assert_eq!(
        alice.status().await?["outbox"],
        1,
        "only bob's message waits"
    );

    // Back: what waited arrives, once, in order.
    let _b = b.restart_on_same_port()?;
    // A new message wakes the delivery at once (otherwise its backoff ends by itself).
    send(&alice, "alice", "bob", "and after").await?;
    all_delivered(&alice, "alice", "bob", 3, Duration::from_secs(45)).await?;
    assert_eq!(
        transcript(&bob, "bob", "alice").await?,
        [
            "< hello from mailbox A",
            "> hello from mailbox B",
            "< while B is down",
            "< and after"
        ]
    );
    Ok(())
}

/// Bob moves from mailbox B to C while alice keeps writing: every message arrives once, in
/// order (those sent to B before alice saw his notice are pulled from B), and after the
/// notice alice's node sends to C.
#[tokio::test]
async fn moving_house_loses_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a = Mailbox::start(&dir.path().join("a"))?;
    let b = Mailbox::start(&dir.path().join("b"))?;
    let c = Mailbox::start(&dir.path().join("c"))?;
    let alice = Node::start(&dir.path().join("alice"), &a.pinned_address())?;
    let bob = Node::start(&dir.path().join("bob"), &b.pinned_address())?;
    tokio::try_join!(alice.create_identity("alice"), bob.create_identity("bob"))?;
    let (to_alice, to_bob) = tokio::try_join!(invite(&alice, "alice"), invite(&bob, "bob"))?;
    add_by_invite(&alice, "alice", &to_bob).await?;
    add_by_invite(&bob, "bob", &to_alice).await?;

    send(&alice, "alice", "bob", "one").await?;
    all_delivered(&alice, "alice", "bob", 1, WAIT).await?;
    // Bob moves to C; alice goes on writing before his notice reaches her.
    let resp = bob
        .request(Method::PUT, "/api/settings")
        .json(&json!({ "mailbox": c.pinned_address() }))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    // Alice's own mailbox is down for a while, so his notice waits there, and what she
    // writes meanwhile goes to B: bob's node pulls it from there.
    let mut a = a;
    a.proc.terminate(WAIT)?;
    for text in ["two", "three"] {
        send(&alice, "alice", "bob", text).await?;
    }
    eventually(WAIT, "bob to pull what came to his old mailbox", || async {
        Ok((transcript(&bob, "bob", "alice").await?.len() == 3).then_some(()))
    })
    .await?;
    let _a = a.restart_on_same_port()?;
    eventually(WAIT, "alice to take bob's move notice", || async {
        let contact = alice.get("/api/identities/alice/contacts/bob").await?;
        Ok((contact["mailbox"] == c.pinned_address()).then_some(()))
    })
    .await?;
    send(&alice, "alice", "bob", "four").await?;
    all_delivered(&alice, "alice", "bob", 4, WAIT).await?;
    assert_eq!(
        transcript(&bob, "bob", "alice").await?,
        ["< one", "< two", "< three", "< four"],
        "each once, in order"
    );
    // The conversation on alice's side says where bob went.
    let page = alice
        .get("/api/identities/alice/contacts/bob/messages?limit=10")
        .await?;
    let noted =
        page["messages"].as_array().into_iter().flatten().any(|e| {
            e["kind"] == "note" && e["text"].as_str().is_some_and(|t| t.contains("moved"))
        });
    assert!(noted, "{page}");
    // Nothing is left on B for bob: his node pulled the old mailbox too.
    let status = bob.status().await?;
    assert_eq!(status["mailbox"]["address"], c.pinned_address(), "{status}");
    Ok(())
}

/// A stranger on another mailbox writes first: their request says where they are reached,
/// so once accepted, receipts and replies go to their mailbox.
#[tokio::test]
async fn a_request_from_another_mailbox_is_answered_there() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a = Mailbox::start(&dir.path().join("a"))?;
    let c = Mailbox::start(&dir.path().join("c"))?;
    let alice = Node::start(&dir.path().join("alice"), &a.pinned_address())?;
    let carol = Node::start(&dir.path().join("carol"), &c.pinned_address())?;
    tokio::try_join!(
        alice.create_identity("alice"),
        carol.create_identity("carol")
    )?;
    // Carol has alice's invite; alice knows nothing of carol (and carol's own mailbox is
    // learnt from her messages only once her node has its pin).
    invite(&carol, "carol").await?;
    let to_alice = invite(&alice, "alice").await?;
    add_by_invite(&carol, "carol", &to_alice).await?;
    send(&carol, "carol", "alice", "hello, we met at the fair").await?;
    let fingerprint = eventually(WAIT, "carol's request", || async {
        let r = alice.get("/api/identities/alice/requests").await?;
        Ok(r["requests"][0]["fingerprint"].as_str().map(str::to_owned))
    })
    .await?;
    let (status, accepted) = alice
        .post(
            &format!("/api/identities/alice/requests/{fingerprint}/accept"),
            json!({}),
        )
        .await?;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["name"], "carol", "the name she gave");
    assert_eq!(
        accepted["mailbox"],
        c.pinned_address(),
        "where she is reached"
    );
    let key = accepted["key"].as_str().context("key")?.to_owned();
    send(&alice, "alice", &key, "nice to hear from you").await?;
    all_delivered(&alice, "alice", &key, 1, WAIT).await?;
    all_delivered(&carol, "carol", "alice", 1, WAIT).await?;
    assert_eq!(
        transcript(&carol, "carol", "alice").await?,
        ["> hello, we met at the fair", "< nice to hear from you"]
    );
    Ok(())
}

/// The settings dialog's Save confirms the mailbox it saved and shows it in the field at
/// once, before the sync loop has reconnected (it once showed the address it was leaving).
#[tokio::test]
async fn saving_another_mailbox_in_the_settings_dialog_confirms_the_new_one() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let a = Mailbox::start(&dir.path().join("a"))?;
    let b = Mailbox::start(&dir.path().join("b"))?;
    let node = Node::start(&dir.path().join("node"), &a.pinned_address())?;
    node.create_identity("alice").await?;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let on_page_host = |method: Method, path: &str| {
        browser
            .request(method, format!("{}{path}", node.url))
            .header("host", node.page_host())
    };
    let link = node.sign_in_link().await?;
    let path = link.strip_prefix(&node.page).context("a page-host link")?;
    let signed_in = on_page_host(Method::GET, path).send().await?;
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_owned();

    let new = b.pinned_address();
    let saved = on_page_host(Method::POST, "/ui/settings")
        .header("cookie", &cookie)
        .header("origin", &node.page)
        .form(&[("identity", "alice"), ("mailbox", new.as_str())])
        .send()
        .await?;
    assert_eq!(saved.status(), 303);
    let back = saved
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("no location")?
        .to_owned();
    let page = on_page_host(Method::GET, &back)
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        page.contains(&format!("Saved: the node now uses the mailbox {new};")),
        "the confirmation names another mailbox than {new}"
    );
    assert!(
        page.contains(&format!(r#"value="{new}""#)),
        "the settings field holds another address than {new}"
    );
    assert!(
        !page.contains(&a.pinned_address()),
        "the page still shows the old mailbox"
    );
    Ok(())
}
