//! Accessible (issue 16 item 10): axe-core finds no serious violation on any screen, in
//! either theme and on a phone; arriving messages are announced; the composer has focus
//! when a chat opens; focus returns to the opener when a dialog closes; the tab title names
//! the profile, the contact and the unread count; the theme can be chosen.

#[allow(clippy::wildcard_imports)]
use super::*;
use reqwest::Method;

/// Fail with every violation axe-core reports on `page`'s current screen, named `screen`.
async fn no_violations(page: &Browser, screen: &str) -> anyhow::Result<()> {
    let found = page.accessibility_violations().await?;
    ensure!(
        found.is_empty(),
        "{screen}: {} serious accessibility violation(s):\n{}",
        found.len(),
        found.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn every_screen_passes_axe_core() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers = Browsers::start("every_screen_passes_axe_core").await?;
    let page = browsers.open("alice", BrowserOptions::default()).await?;
    let phone = browsers.open("phone", BrowserOptions::phone()).await?;
    let result = async {
        // Before signing in: the sign-in page.
        page.goto(&format!("{}/", world.alice.url)).await?;
        no_violations(&page, "the sign-in page").await?;
        sign_in(&page, &world.alice).await?;
        sign_in(&phone, &world.alice).await?;
        // A stranger (another profile of bob's) writes: a request.
        world.bob.create_identity("stranger").await?;
        world
            .bob
            .add_contact_from("stranger", "alice", &world.alice, "alice")
            .await?;
        for (from, to, text) in [
            ("bob", "alice", "hello alice"),
            ("stranger", "alice", "hi, we met at the fair"),
        ] {
            let (status, body) = world
                .bob
                .post(
                    &format!("/api/identities/{from}/contacts/{to}/messages"),
                    json!({ "text": text }),
                )
                .await?;
            ensure!(status == 201, "{status} {body}");
        }
        eventually(WAIT, "alice's request", || async {
            let r = world.alice.get("/api/identities/alice/requests").await?;
            Ok((r["requests"].as_array().map_or(0, Vec::len) == 1).then_some(()))
        })
        .await?;
        let base = format!("{}/?identity=alice", world.alice.page);
        let screens = [
            ("the list", base.clone()),
            ("a conversation", format!("{base}&contact=bob")),
            ("the settings", format!("{base}&contact=bob&settings=1")),
            ("the invite", format!("{base}&invite=1")),
            (
                "deleting a contact",
                format!("{base}&contact=bob&confirm=contact"),
            ),
            ("deleting the profile", format!("{base}&confirm=identity")),
        ];
        for theme in ["light", "dark"] {
            let resp = world
                .alice
                .request(Method::PUT, "/api/settings")
                .json(&json!({ "theme": theme }))
                .send()
                .await?;
            ensure!(resp.status() == 200, "theme {theme}: {}", resp.status());
            for (screen, url) in &screens {
                let ready = format!("html[data-theme={theme}][data-stream]");
                page.goto(url).await?;
                page.wait_for(&ready, PAGE).await?;
                no_violations(&page, &format!("{screen} ({theme})")).await?;
                phone.goto(url).await?;
                phone.wait_for(&ready, PAGE).await?;
                no_violations(&phone, &format!("{screen} ({theme}, on a phone)")).await?;
            }
        }
        // Not the mailbox's dashboard: an operator's monitor that refreshes itself with
        // <meta http-equiv=refresh>, which axe-core's meta-refresh rule refuses by design.
        Ok(())
    }
    .await;
    browsers.finish(result).await
}

#[tokio::test]
async fn focus_titles_announcements_and_themes() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers = Browsers::start("focus_titles_announcements_and_themes").await?;
    let page = browsers.open("alice", BrowserOptions::default()).await?;
    sign_in(&page, &world.alice).await?;
    let result = keyboard_user(&world, &page).await;
    browsers.finish(result).await
}

/// The id of the element that has the focus.
async fn focused(page: &Browser) -> anyhow::Result<String> {
    let id = page
        .js(
            "return document.activeElement ? document.activeElement.id : '';",
            vec![],
        )
        .await?;
    Ok(id.as_str().unwrap_or_default().to_owned())
}

async fn keyboard_user(world: &World, page: &Browser) -> anyhow::Result<()> {
    // A chat opens with the focus in the composer; arriving messages are announced.
    page.goto(&chat_url(&world.alice, "alice", "bob")).await?;
    page.wait_for("html[data-stream=open]", WAIT).await?;
    ensure!(
        focused(page).await? == "compose-text",
        "the composer has no focus"
    );
    let log = page.find("#message-log").await?;
    ensure!(
        log.attr("role").await?.as_deref() == Some("log")
            && log.attr("aria-live").await?.as_deref() == Some("polite"),
        "the messages are not announced"
    );
    let title = page.js("return document.title;", vec![]).await?;
    ensure!(title == "bob · alice · Secure Messenger", "title {title}");

    // A dialog closed gives the focus back to what opened it: by its Close link, and by
    // Escape.
    page.click("#open-settings").await?;
    page.wait_for("dialog#settings[open]", PAGE).await?;
    page.click("#close-settings").await?;
    page.wait_js(
        PAGE,
        "the focus back on Settings",
        "return !document.getElementById('settings') && document.activeElement
             && document.activeElement.id === 'open-settings';",
        vec![],
    )
    .await?;
    page.click("#open-invite").await?;
    page.wait_for("dialog#invite[open]", PAGE).await?;
    page.type_into("dialog#invite", &Key::Escape.to_string())
        .await?;
    page.wait_js(
        PAGE,
        "the focus back on Invite someone",
        "return !document.getElementById('invite') && document.activeElement
             && document.activeElement.id === 'open-invite';",
        vec![],
    )
    .await?;

    // With no chat open, what arrives is counted in the title, live.
    page.goto(&format!("{}/?identity=alice", world.alice.page))
        .await?;
    page.wait_for("html[data-stream=open]", WAIT).await?;
    let (status, body) = world
        .bob
        .post(
            "/api/identities/bob/contacts/alice/messages",
            json!({ "text": "are you there?" }),
        )
        .await?;
    ensure!(status == 201, "{status} {body}");
    page.wait_js(
        WAIT,
        "the unread count in the title",
        "return document.title === '(1) alice · Secure Messenger';",
        vec![],
    )
    .await?;

    // The theme: dark, chosen in the settings, whatever the system says; no violations.
    page.goto(&format!(
        "{}/?identity=alice&contact=bob&settings=1",
        world.alice.page
    ))
    .await?;
    page.click("#theme-dark").await?;
    page.click("#save-settings").await?;
    page.wait_for("html[data-theme=dark] #settings-saved", PAGE)
        .await?;
    let background = page
        .js(
            "return getComputedStyle(document.body).backgroundColor;",
            vec![],
        )
        .await?;
    ensure!(
        background == "rgb(14, 19, 24)",
        "dark background {background}"
    );
    page.goto(&chat_url(&world.alice, "alice", "bob")).await?;
    page.wait_for("html[data-theme=dark][data-stream=open]", WAIT)
        .await?;
    let found = page.accessibility_violations().await?;
    ensure!(found.is_empty(), "dark theme: {}", found.join("\n"));
    ensure!(
        world.alice.get("/api/settings").await?["theme"] == "dark",
        "the API does not say dark"
    );
    Ok(())
}
