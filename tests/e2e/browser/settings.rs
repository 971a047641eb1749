//! The settings dialog, and a node stopping under an open page.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------- 3. settings ----------

#[tokio::test]
async fn settings_survive_a_reload_and_a_restart_and_test_connection_answers_in_words()
-> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers = Browsers::start(
        "settings_survive_a_reload_and_a_restart_and_test_connection_answers_in_words",
    )
    .await?;
    let page = browsers.open("alice", BrowserOptions::default()).await?;
    sign_in(&page, &world.alice).await?;
    let result = settings_persist(world, &page).await;
    browsers.finish(result).await
}

/// Open the settings dialog from the page of `node` (alice's identity) and return what it
/// shows: the mailbox address and whether previews are on.
async fn open_settings(page: &Browser, node: &Node) -> anyhow::Result<(String, bool)> {
    page.goto(&format!("{}/?identity=alice", node.page)).await?;
    page.click("a#open-settings").await?;
    page.wait_for("dialog#settings[open] #settings-form", PAGE)
        .await?;
    let mailbox = page.value("#settings-mailbox").await?;
    let previews = page
        .find("#settings-form input[name=previews]")
        .await?
        .is_selected()
        .await?;
    Ok((mailbox, previews))
}

async fn settings_persist(world: World, page: &Browser) -> anyhow::Result<()> {
    let World {
        dir,
        mailbox,
        mut alice,
        bob: _bob,
    } = world;
    let pinned = mailbox.pinned_address();
    let (shown, previews) = open_settings(page, &alice).await?;
    ensure!(shown == pinned, "mailbox {shown:?}, expected {pinned:?}");
    ensure!(previews, "previews are off by default");

    // The same address written differently (spaces around, the fingerprint in capitals),
    // and no message text in notifications.
    let written = format!(
        "  {}#{}  ",
        mailbox.addr,
        mailbox.fingerprint.to_uppercase()
    );
    let field = page.find("#settings-mailbox").await?;
    field.clear().await?;
    field.send_keys(&written).await?;
    page.click("#settings-form input[name=previews]").await?;
    mark(page).await?;
    page.click("#save-settings").await?;
    wait_new_page(page).await?;
    page.wait_for("dialog#settings[open] #settings-form", PAGE)
        .await?;
    ensure!(
        page.count(".flash").await? == 0,
        "saving failed: {}",
        page.text(".flash").await?
    );
    // The save is confirmed with the value saved, and no form URL is left behind.
    let saved = page.text("#settings-saved").await?;
    ensure!(
        saved.contains("Saved") && saved.contains(&pinned),
        "confirmation {saved:?}"
    );
    let url = page.url().await?;
    ensure!(!url.contains("/ui/"), "the address bar shows {url}");
    let check = |(shown, previews): (String, bool), when: &str| -> anyhow::Result<()> {
        ensure!(
            shown == pinned,
            "{when}: mailbox {shown:?}, expected {pinned:?}"
        );
        ensure!(!previews, "{when}: previews are on again");
        Ok(())
    };
    let after_save = (
        page.value("#settings-mailbox").await?,
        page.find("#settings-form input[name=previews]")
            .await?
            .is_selected()
            .await?,
    );
    check(after_save, "after saving")?;
    let body = page.find("body").await?.attr("data-previews").await?;
    ensure!(
        body.as_deref() == Some("false"),
        "body data-previews {body:?}"
    );

    // Reload, reopen.
    page.reload().await?;
    check(open_settings(page, &alice).await?, "after a reload")?;

    // Restart the node on the same data directory, without --mailbox (which would override
    // the saved address): the settings are still there, and the saved address is used.
    // Leave the page first: while a page's event stream is open the node does not stop (see
    // `a_node_stops_when_asked_while_its_page_is_open`).
    page.goto("about:blank").await?;
    alice.proc.terminate(WAIT)?;
    let alice = Node::start_with_saved_mailbox(&dir.path().join("alice"))?;
    check(open_settings(page, &alice).await?, "after a restart")?;
    page.wait_for("#connection .conn.conn-online", WAIT).await?;

    // Test connection: the answer is in words.
    page.click("#test-connection").await?;
    let result = page.wait_for("#test-result", WAIT).await?;
    let words = result.text().await?;
    ensure!(words.contains("Connected"), "test result {words:?}");
    ensure!(
        page.count("dialog#settings[open]").await? == 1,
        "the dialog closed"
    );

    // It tests what is typed, not what is saved, and says so; the typing stays.
    let nowhere = format!("127.0.0.1:{}", tests::free_udp_port()?);
    let field = page.find("#settings-mailbox").await?;
    field.clear().await?;
    field.send_keys(&nowhere).await?;
    mark(page).await?;
    page.click("#test-connection").await?;
    wait_new_page(page).await?;
    let words = page.wait_for("#test-result", WAIT).await?.text().await?;
    ensure!(
        words.contains(&nowhere) && words.contains("not saved") && words.contains("Could not"),
        "test result {words:?}"
    );
    let kept = page.value("#settings-mailbox").await?;
    ensure!(kept == nowhere, "the field holds {kept:?}");
    let in_use = page.text("#settings-in-use").await?;
    ensure!(in_use == pinned, "in use: {in_use:?}");

    // An invalid value: the reason next to the field, in the dialog, the typing kept.
    let field = page.find("#settings-mailbox").await?;
    field.clear().await?;
    field.send_keys("not a mailbox").await?;
    mark(page).await?;
    page.click("#save-settings").await?;
    wait_new_page(page).await?;
    let error = page
        .wait_for("dialog#settings[open] #settings-mailbox-error", PAGE)
        .await?
        .text()
        .await?;
    ensure!(error.starts_with("This address is not valid"), "{error:?}");
    ensure!(page.count(".flash").await? == 0, "the error is not inline");
    let kept = page.value("#settings-mailbox").await?;
    ensure!(kept == "not a mailbox", "the field holds {kept:?}");
    let invalid = page
        .find("#settings-mailbox")
        .await?
        .attr("aria-invalid")
        .await?;
    ensure!(
        invalid.as_deref() == Some("true"),
        "aria-invalid {invalid:?}"
    );
    let url = page.url().await?;
    ensure!(!url.contains("/ui/"), "the address bar shows {url}");
    ensure!(
        alice.get("/api/settings").await?["mailbox"] == pinned.as_str(),
        "nothing was saved"
    );
    Ok(())
}

#[tokio::test]
async fn a_node_stops_when_asked_while_its_page_is_open() -> anyhow::Result<()> {
    let mut world = friends().await?;
    let mut browsers = Browsers::start("a_node_stops_when_asked_while_its_page_is_open").await?;
    let page = browsers.open("alice", BrowserOptions::default()).await?;
    sign_in(&page, &world.alice).await?;
    let result = async {
        page.goto(&chat_url(&world.alice, "alice", "bob")).await?;
        page.wait_for("#connection .conn.conn-online", WAIT).await?;
        // The page holds its event stream open: the node must stop all the same.
        page.wait_for("html[data-stream=open]", WAIT).await?;
        let asked = Instant::now();
        let status = world.alice.proc.terminate(PAGE)?;
        println!("alice's node exited {:?} after SIGTERM", asked.elapsed());
        ensure!(status.success(), "alice's node exited with {status}");
        Ok(())
    }
    .await;
    browsers.finish(result).await
}

/// The settings list the browsers signed in; "Sign out this browser" ends this one's
/// session, and the page asks to sign in again.
#[tokio::test]
async fn a_browser_signs_out_from_the_settings_and_its_session_ends() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers =
        Browsers::start("a_browser_signs_out_from_the_settings_and_its_session_ends").await?;
    let page = browsers.open("alice", BrowserOptions::default()).await?;
    sign_in(&page, &world.alice).await?;
    let result = async {
        page.goto(&format!("{}/?identity=alice&settings=1", world.alice.page))
            .await?;
        page.wait_for("dialog#settings .sessions li.session", PAGE)
            .await?;
        let listed = page.text("dialog#settings .sessions li.session").await?;
        ensure!(listed.contains("(this browser)"), "{listed:?}");
        page.click("dialog#settings .sessions li.session button")
            .await?;
        page.wait_for("form.login-form", PAGE).await?;
        let sessions = world.alice.get("/api/sessions").await?;
        ensure!(
            sessions["sessions"].as_array().is_some_and(Vec::is_empty),
            "{sessions}"
        );
        page.goto(&chat_url(&world.alice, "alice", "bob")).await?;
        page.wait_for("form.login-form", PAGE).await?;
        Ok(())
    }
    .await;
    browsers.finish(result).await
}
