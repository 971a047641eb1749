//! The threat model's claims about a node: no CORS grant, private files, refused envelopes
//! dropped without a word, certificate pins, the access token.

#[allow(clippy::wildcard_imports)]
use super::*;

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
    // offered again; the one envelope queued anywhere is dave's receipt. (The figure counts
    // what is durable: a PULL may see the receipt before its group's fdatasync is answered
    // and the figure moves, so wait for it; three queued would time out.)
    eventually(
        WAIT,
        "one envelope queued anywhere: dave's receipt",
        || async {
            let queued = mailbox.metric("mailbox_queued_envelopes").await?;
            Ok((queued == Some(1.0)).then_some(()))
        },
    )
    .await?;
    client.close().await;
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
            error.contains(&format!("pinned fingerprint {}", first.fingerprint))
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

/// The cookie of a response (`name=value`), and its attributes in lower case.
fn set_cookie(resp: &reqwest::Response) -> Option<(String, String)> {
    let v = resp.headers().get("set-cookie")?.to_str().ok()?;
    let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
    Some((pair.trim().to_owned(), attrs.to_ascii_lowercase()))
}

/// Another local user (or any program) can reach 127.0.0.1 too: by default a node requires
/// its access token, made at first start into a private file. The API takes it as a bearer
/// token; browsers never hold it: a one-time sign-in link, or the token typed once, gives
/// them a server-side session on the node's own host name, and the cookie holds only that
/// session's id.
#[tokio::test]
async fn by_default_nothing_is_served_without_the_token_and_browsers_get_sessions()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let node = Node::start(&dir.path().join("node"), &mailbox.pinned_address())?;
    let token = node.token.clone().context("a token by default")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let file = dir.path().join("node").join("access-token");
        let mode = std::fs::metadata(&file)?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }

    // No token: 401 with a challenge, for the API; pages go to the node's own host name.
    let no_token = node.anonymous(Method::GET, "/api/status").send().await?;
    assert_eq!(no_token.status(), 401);
    assert_eq!(
        no_token
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"secure-messenger-node\"")
    );
    let body: Value = no_token.json().await?;
    assert_eq!(body["code"], "unauthorized", "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("access token"))
    );
    let wrong = node
        .anonymous(Method::POST, "/api/identities")
        .bearer_auth("wrong")
        .json(&json!({ "id": "mallory" }))
        .send()
        .await?;
    assert_eq!(wrong.status(), 401, "a wrong token changes nothing");
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // A page without a session: the sign-in page, which does not name the page host (a
    // local program that learnt it could serve pages under it and get the cookie).
    let page = plain
        .get(format!("{}/?identity=alice", node.url))
        .send()
        .await?;
    assert_eq!(page.status(), 401);
    assert!(page.headers().get("location").is_none());
    assert!(!page.text().await?.contains(node.page_host()));
    let bad_link = plain
        .get(format!("{}/login?code=0123456789abcdef", node.url))
        .send()
        .await?;
    assert_eq!(bad_link.status(), 401);
    assert!(!bad_link.text().await?.contains(node.page_host()));
    // On the page host (asked for by name: browsers send *.localhost to 127.0.0.1), the
    // sign-in page.
    let on_page_host = |method: Method, path: &str| {
        plain
            .request(method, format!("{}{path}", node.url))
            .header("host", node.page_host())
    };
    let page = on_page_host(Method::GET, "/").send().await?;
    assert_eq!(page.status(), 401);
    assert!(page.text().await?.contains("node signin"));

    // The token as a bearer token.
    let with = node
        .request(Method::POST, "/api/identities")
        .json(&json!({ "id": "alice" }))
        .send()
        .await?;
    assert_eq!(with.status(), 201);

    // The token typed on 127.0.0.1 goes on to the page host with a one-time code, and a
    // `next` that would leave the node is dropped.
    let typed = plain
        .post(format!("{}/login", node.url))
        .header("origin", &node.url)
        .form(&[("token", token.as_str()), ("next", "/\t/evil.example")])
        .send()
        .await?;
    assert_eq!(typed.status(), 303);
    let location = typed
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        location.starts_with(&format!("{}/login?code=", node.page))
            && location.ends_with("&next=%2F"),
        "{location}"
    );
    assert!(set_cookie(&typed).is_none(), "no session on 127.0.0.1");

    // The token typed once: a session, whose cookie holds no token.
    let login = on_page_host(Method::POST, "/login")
        .header("origin", &node.page)
        .form(&[("token", token.as_str()), ("next", "/?identity=alice")])
        .send()
        .await?;
    assert_eq!(login.status(), 303);
    assert_eq!(
        login
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/?identity=alice")
    );
    let (cookie, attrs) = set_cookie(&login).context("no cookie from signing in")?;
    assert!(cookie.starts_with("sm_session="), "{cookie}");
    assert!(!cookie.contains(&token), "the cookie holds the token");
    for attr in ["httponly", "samesite=strict", "path=/"] {
        assert!(attrs.contains(attr), "{attr} in {attrs}");
    }
    assert!(!attrs.contains("domain"), "host-only: {attrs}");
    let ids: Value = on_page_host(Method::GET, "/api/identities")
        .header("cookie", &cookie)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(ids["identities"][0]["id"], "alice", "{ids}");
    // The same cookie under another host name is not a session.
    let elsewhere = node
        .anonymous(Method::GET, "/api/identities")
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(elsewhere.status(), 401);
    let bad_login = on_page_host(Method::POST, "/login")
        .header("origin", &node.page)
        .form(&[("token", "guess")])
        .send()
        .await?;
    assert_eq!(bad_login.status(), 401);
    assert!(set_cookie(&bad_login).is_none());

    // A sign-in link works once.
    let link = node.sign_in_link().await?;
    let path = link
        .strip_prefix(&node.page)
        .context("a link to the page host")?
        .to_owned();
    let first = on_page_host(Method::GET, &path).send().await?;
    assert_eq!(first.status(), 303);
    let (linked, _) = set_cookie(&first).context("no cookie from the link")?;
    let again = on_page_host(Method::GET, &path).send().await?;
    assert_eq!(again.status(), 401, "used up");
    assert!(set_cookie(&again).is_none());
    // A session cannot make sign-in links (it would renew itself past its revocation).
    let minted = on_page_host(Method::POST, "/api/sign-in")
        .header("cookie", &linked)
        .header("origin", &node.page)
        .send()
        .await?;
    assert_eq!(minted.status(), 403);
    // A fresh session may export a key.
    let backup = on_page_host(Method::POST, "/api/identities/alice/backup")
        .header("cookie", &linked)
        .header("origin", &node.page)
        .json(&json!({ "passphrase": "a long passphrase" }))
        .send()
        .await?;
    assert_eq!(backup.status(), 200);

    // Sessions are listed, and a revoked one is over.
    let sessions: Value = node.get("/api/sessions").await?;
    let list = sessions["sessions"].as_array().context("sessions")?;
    assert_eq!(list.len(), 2, "{sessions}");
    for s in list {
        let id = s["id"].as_str().context("id")?;
        let gone = node
            .request(Method::DELETE, &format!("/api/sessions/{id}"))
            .send()
            .await?;
        assert_eq!(gone.status(), 204);
    }
    let revoked = on_page_host(Method::GET, "/api/identities")
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(revoked.status(), 401);
    Ok(())
}
