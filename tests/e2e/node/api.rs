//! The JSON API's conventions, end to end: page cursors, settings, `Location` on 201.

#[allow(clippy::wildcard_imports)]
use super::*;

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
        json!({ "mailbox": mailbox.pinned_address(), "previews": true, "theme": "system" })
    );
    let put = |body: Value| {
        node.request(Method::PUT, "/api/settings")
            .json(&body)
            .send()
    };
    let changed: Value = put(json!({ "previews": false, "theme": "dark" }))
        .await?
        .json()
        .await?;
    assert_eq!(
        changed,
        json!({ "mailbox": mailbox.pinned_address(), "previews": false, "theme": "dark" })
    );
    assert_eq!(node.get("/api/settings").await?, changed);
    let sepia = put(json!({ "theme": "sepia" })).await?;
    assert_eq!(sepia.status(), 400, "an unknown theme");
    for bad in [json!({}), json!({ "mailbox": "a:1", "invite": "x" })] {
        let resp = put(bad.clone()).await?;
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await?;
        assert_eq!(body["code"], "missing_mailbox", "{bad}: {body}");
    }
    let elsewhere = format!("127.0.0.1:9#{}", "ab".repeat(32));
    let moved: Value = put(json!({ "mailbox": elsewhere })).await?.json().await?;
    assert_eq!(
        moved,
        json!({ "mailbox": elsewhere, "previews": false, "theme": "dark" })
    );
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

/// The page's key backup (issue 16 item 9): the passphrase twice; a mismatch goes back to
/// the page (303) and exports nothing; with the token (a key export needs it, or a recent
/// sign-in) the answer is the encrypted key as a file to keep, which opens with the
/// passphrase.
#[tokio::test]
async fn the_page_backs_up_a_key_with_the_passphrase_typed_twice() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let alice = Node::start(&dir.path().join("alice"), &mailbox.pinned_address())?;
    let made = alice.create_identity("alice").await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let post = |body: &'static str| {
        let mut request = http
            .post(format!("{}/ui/identities/backup", alice.url))
            .header("origin", &alice.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(token) = &alice.token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let differ = post("identity=alice&passphrase=correct+horse&repeat=correct+house").await?;
    assert_eq!(differ.status().as_u16(), 303);
    let location = differ
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        location.starts_with("/?identity=alice&flash="),
        "{location}"
    );

    let file = post("identity=alice&passphrase=correct+horse&repeat=correct+horse").await?;
    assert_eq!(file.status().as_u16(), 200);
    let disposition = file
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        disposition,
        r#"attachment; filename="alice-key-backup.pem""#
    );
    let pem = file.text().await?;
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{pem}"
    );
    let restored =
        tokio::task::spawn_blocking(move || Identity::from_encrypted_pem(&pem, "correct horse"))
            .await??;
    assert_eq!(
        restored.fingerprint().to_string(),
        made["fingerprint"].as_str().unwrap_or_default()
    );
    Ok(())
}
