//! Contacts and strangers: requests from unknown senders, invite codes.

#[allow(clippy::wildcard_imports)]
use super::*;

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

    // The spammer writes again, and is blocked: 201 with its Location, listed.
    let spam = sealed_chain(
        &spammer,
        public_key(&alice, "alice").await?,
        &["buy", "more"],
    )
    .await?;
    client
        .send(spammer.fingerprint(), spam[0].bytes.clone())
        .await?;
    eventually(WAIT, "the spammer's second request", || async {
        let r = alice.get("/api/identities/alice/requests").await?;
        Ok((r["requests"].as_array().map_or(0, Vec::len) == 1).then_some(()))
    })
    .await?;
    let resp = alice
        .request(Method::POST, &format!("{path}/block"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        location,
        format!("/api/identities/alice/blocked/{spammer_fp}")
    );
    let blocked = alice.get("/api/identities/alice/blocked").await?;
    assert_eq!(
        blocked["blocked"][0]["fingerprint"],
        spammer_fp.as_str(),
        "{blocked}"
    );
    // What the spammer sends now is dropped: the stranger's next message, sent after it,
    // arrives, and no request came back.
    client
        .send(spammer.fingerprint(), spam[1].bytes.clone())
        .await?;
    let next = sealed_chain(
        &stranger,
        public_key(&alice, "alice").await?,
        &["x", "and again"],
    )
    .await?;
    client
        .send(stranger.fingerprint(), next[1].bytes.clone())
        .await?;
    eventually(WAIT, "the stranger's next message", || async {
        Ok((transcript(&alice, "alice", "stranger").await?.len() >= 2).then_some(()))
    })
    .await?;
    assert_eq!(
        alice.get("/api/identities/alice/requests").await?["requests"],
        json!([]),
        "the blocked spammer left no request"
    );
    let unblocked = alice.request(Method::DELETE, &location).send().await?;
    assert_eq!(unblocked.status().as_u16(), 204);
    client.close().await;
    Ok(())
}

#[tokio::test]
async fn invite_codes_add_contacts_who_keep_their_own_mailbox() -> anyhow::Result<()> {
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
    // No name given: the contact takes the invite's; a display name gets a derived key,
    // which the Location and `key` give.
    let resp = alice
        .request(Method::POST, "/api/identities/alice/contacts")
        .json(&json!({ "invite": bob_invite }))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bob_at_alice: Value = resp.json().await?;
    assert_eq!(
        (&bob_at_alice["key"], &bob_at_alice["name"]),
        (&json!("bob"), &json!("bob"))
    );
    assert!(
        location.ends_with("/api/identities/alice/contacts/bob"),
        "{location}"
    );
    let resp = alice
        .request(Method::PATCH, "/api/identities/alice/contacts/bob")
        .json(&json!({ "name": "Bob Müller" }))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let renamed: Value = resp.json().await?;
    assert_eq!(
        (&renamed["key"], &renamed["name"]),
        (&json!("bob"), &json!("Bob Müller"))
    );
    let (status, zoe) = bob
        .post(
            "/api/identities/bob/contacts",
            json!({ "name": "Zoë Müller", "public_key": public_key(&alice, "alice").await?.to_pem() }),
        )
        .await?;
    assert_eq!(
        status, 409,
        "alice's key is a contact of bob's already: {zoe}"
    );
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
    assert_eq!(carol_at_bob["warning"], Value::Null, "nothing failed yet");
    // Bob writes to carol: her own mailbox is where it goes; it cannot be reached, so the
    // message waits, and the contact says why.
    send(&bob, "bob", "carol", "are you there?").await?;
    let warned = eventually(
        WAIT,
        "a warning that carol's mailbox cannot be reached",
        || async {
            let c = bob.get("/api/identities/bob/contacts/carol").await?;
            Ok(c["warning"].as_str().map(str::to_owned))
        },
    )
    .await?;
    assert!(warned.contains("cannot be reached now"), "{warned}");
    assert_eq!(bob.status().await?["outbox"], 1, "the message waits");
    // Alice's own mailbox answers, so what bob sends her still goes.
    send(&bob, "bob", "alice", "still here").await?;
    eventually(WAIT, "bob's message to alice", || async {
        Ok(transcript(&alice, "alice", "bob")
            .await?
            .iter()
            .any(|l| l == "< still here")
            .then_some(()))
    })
    .await?;
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
