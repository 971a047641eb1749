//! The web UI in a real browser: a real mailbox, real nodes, and headless Chromium driven
//! over WebDriver (chromedriver, started per test on an ephemeral port). The tests do what a
//! user does — fill in forms, press keys, click — and check what the page shows.
//!
//! They need `chromium` and `chromedriver` on PATH (Debian: `apt-get install chromium
//! chromium-driver`; .ci/run installs them) and fail, saying so, without them. A failing
//! test leaves screenshots in `target/test-screenshots/`.
//!
//! Checks use `anyhow::ensure!` rather than `assert!`, so that a failure still reaches
//! [`Browsers::finish`], which takes the screenshots.
//!
//! Known bug, found by these tests (the tests that submit the node page's HTML forms are
//! ignored until it is fixed): every form POST from a browser is refused with 403
//! "cross-origin request refused". ui/src/document.rs:47 puts
//! `<meta name="referrer" content="no-referrer">` in every page, so Chromium (as the Fetch
//! spec says for a navigation that is not same-origin-or-cors with that policy) sends
//! `Origin: null` when a form is submitted, and node/src/lib.rs:186-199 (`check_request`)
//! refuses that Origin. Only sending with the script works (its `fetch` sends the real
//! Origin). Fix: `content="same-origin"` (the Referrer-Policy header the node already
//! sends), or no meta at all.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use fantoccini::key::Key;
use serde_json::{Value, json};
use tests::{Browser, BrowserOptions, Browsers, Mailbox, Node, eventually};

/// Generous bound on anything that should happen by itself (delivery, reconnection).
const WAIT: Duration = Duration::from_secs(15);
/// Bound on a page turn or a script's reaction.
const PAGE: Duration = Duration::from_secs(5);
/// What a user should wait at most to see a message that was just sent to them, from the
/// Enter key in one page to the bubble in the other, by the pages' own clocks (printed; about
/// 60 ms on an idle 2-core machine).
const LIVE: Duration = Duration::from_secs(1);
/// How long the test polls a page over WebDriver for something live (each poll is a
/// WebDriver round trip: slack for a loaded 2-core machine).
const LIVE_POLL: Duration = Duration::from_secs(2);

/// A mailbox and the nodes of alice and bob.
struct World {
    dir: tempfile::TempDir,
    mailbox: Mailbox,
    alice: Node,
    bob: Node,
}

/// A mailbox and two nodes with no identities yet.
fn strangers() -> anyhow::Result<World> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(&dir.path().join("mailbox"))?;
    let alice = Node::start(&dir.path().join("alice"), &mailbox.pinned_address())?;
    let bob = Node::start(&dir.path().join("bob"), &mailbox.pinned_address())?;
    Ok(World {
        dir,
        mailbox,
        alice,
        bob,
    })
}

/// A mailbox and two nodes with identities `alice` and `bob` that know each other (set up
/// through the API: the browser tests of other things start from here).
async fn friends() -> anyhow::Result<World> {
    let world = strangers()?;
    tokio::try_join!(
        world.alice.create_identity("alice"),
        world.bob.create_identity("bob")
    )?;
    world
        .alice
        .add_contact_from("alice", "bob", &world.bob, "bob")
        .await?;
    world
        .bob
        .add_contact_from("bob", "alice", &world.alice, "alice")
        .await?;
    Ok(world)
}

/// The node page URL of a conversation.
fn chat_url(node: &Node, identity: &str, contact: &str) -> String {
    format!("{}/?identity={identity}&contact={contact}", node.url)
}

/// Leave a mark in the page's `window`: [`still_marked`] tells whether the page is still the
/// same one (not reloaded, not navigated away).
async fn mark(page: &Browser) -> anyhow::Result<()> {
    page.js("window.__testMark = true;", vec![]).await?;
    Ok(())
}

async fn still_marked(page: &Browser) -> anyhow::Result<bool> {
    Ok(page
        .js("return window.__testMark === true;", vec![])
        .await?
        == true)
}

/// Wait until the page that carried [`mark`] has been replaced by a loaded new one.
async fn wait_new_page(page: &Browser) -> anyhow::Result<()> {
    page.wait_js(
        PAGE,
        "the next page to load",
        "return window.__testMark !== true && document.readyState === 'complete';",
        vec![],
    )
    .await?;
    Ok(())
}

/// The `data-message-id` of the bubble in `#messages` (`in` or `out`) whose text is exactly
/// `text`, or null.
const BUBBLE_ID: &str = "
    const [direction, text] = arguments;
    for (const li of document.querySelectorAll('#messages li.msg.' + direction)) {
        const p = li.querySelector('p.msg-text');
        if (p && p.textContent === text) return li.dataset.messageId;
    }
    return null;";

/// Wait for a bubble with exactly `text`; return its message id.
async fn wait_bubble(
    page: &Browser,
    direction: &str,
    text: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let id = page
        .wait_js(
            timeout,
            &format!("an {direction} bubble saying {text:?}"),
            BUBBLE_ID,
            vec![json!(direction), json!(text)],
        )
        .await?;
    id.as_str()
        .map(str::to_owned)
        .context("a bubble without a message id")
}

/// The texts of the bubbles in `#messages`, as `> text` (ours) and `< text` (theirs). Uses
/// WebDriver only, so it works without JavaScript in the page.
async fn bubbles(page: &Browser) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for li in page.find_all("#messages li.msg").await? {
        let class = li.attr("class").await?.unwrap_or_default();
        let text = li
            .find(fantoccini::Locator::Css("p.msg-text"))
            .await?
            .prop("textContent")
            .await?
            .unwrap_or_default();
        let arrow = if class.split(' ').any(|c| c == "out") {
            ">"
        } else {
            "<"
        };
        out.push(format!("{arrow} {text}"));
    }
    Ok(out)
}

// ---------- 1. two people start from scratch, and chat live ----------

#[tokio::test]
async fn two_people_start_from_scratch_and_chat_live_in_their_browsers() -> anyhow::Result<()> {
    let world = strangers()?;
    let mut browsers =
        Browsers::start("two_people_start_from_scratch_and_chat_live_in_their_browsers").await?;
    let alice = browsers.open("alice", BrowserOptions::default()).await?;
    let bob = browsers.open("bob", BrowserOptions::default()).await?;
    let result = from_scratch(&world, &alice, &bob).await;
    browsers.finish(result).await
}

/// Create identity `id` (shown as `name`) through the Add form of an empty node's page.
async fn create_identity_in_page(
    page: &Browser,
    node: &Node,
    id: &str,
    name: &str,
) -> anyhow::Result<()> {
    page.goto(&node.url).await?;
    let heading = page.text("main.chat h2").await?;
    ensure!(heading == "Create your first identity", "{heading:?}");
    page.type_into("#new-id", id).await?;
    page.type_into("#new-display-name", name).await?;
    page.click("#add-identity button[type=submit]").await?;
    let item = page.wait_for(".identities a.item.active", PAGE).await?;
    let shown = item.text().await?;
    ensure!(
        shown.contains(name) && shown.contains(id),
        "the new identity shows as {shown:?}"
    );
    let heading = page.text("main.chat h2").await?;
    ensure!(heading == "Add your first contact", "{heading:?}");
    Ok(())
}

/// Open the settings dialog and copy the invite out of it; close the dialog again.
async fn invite_from_settings(page: &Browser) -> anyhow::Result<String> {
    page.click("a#open-settings").await?;
    page.wait_for("dialog#settings[open] textarea#settings-invite", PAGE)
        .await?;
    let modal = page
        .js(
            "return document.getElementById('settings').matches(':modal');",
            vec![],
        )
        .await?;
    ensure!(modal == true, "the settings dialog is not modal");
    ensure!(
        page.count("dialog#settings svg.qr").await? == 1,
        "no QR code of the invite"
    );
    let invite = page
        .value("textarea#settings-invite")
        .await?
        .trim()
        .to_owned();
    ensure!(invite.starts_with("sm1-"), "invite {invite:?}");
    page.click("#close-settings").await?;
    page.wait_js(
        PAGE,
        "the settings dialog to close",
        "return !document.getElementById('settings') && document.readyState === 'complete';",
        vec![],
    )
    .await?;
    Ok(invite)
}

/// Paste `invite` into the Add contact form as contact `name`; the conversation opens.
async fn add_contact_in_page(page: &Browser, name: &str, invite: &str) -> anyhow::Result<()> {
    page.type_into("#add-contact input[name=name]", name)
        .await?;
    page.type_into("#add-contact textarea[name=key_or_invite]", invite)
        .await?;
    page.click("#add-contact button[type=submit]").await?;
    page.wait_for(&format!("ol#messages[data-contact='{name}']"), PAGE)
        .await?;
    ensure!(
        page.count(&format!("ul#contact-list a.item[data-contact='{name}']"))
            .await?
            == 1,
        "{name} is not in the contact list"
    );
    let title = page.text("#chat-title").await?;
    ensure!(title.contains(&format!("Chat with {name}")), "{title:?}");
    Ok(())
}

async fn from_scratch(world: &World, alice: &Browser, bob: &Browser) -> anyhow::Result<()> {
    create_identity_in_page(alice, &world.alice, "alice", "Alice").await?;
    create_identity_in_page(bob, &world.bob, "bob", "Bob").await?;
    let alice_invite = invite_from_settings(alice).await?;
    let bob_invite = invite_from_settings(bob).await?;
    ensure!(alice_invite != bob_invite);

    // Each pastes the other's invite; each page then shows the new conversation.
    add_contact_in_page(bob, "alice", &alice_invite).await?;
    add_contact_in_page(alice, "bob", &bob_invite).await?;
    chat_live(world, alice, bob).await
}

/// The chat of the test above, between people set up through the API instead of the forms
/// (which the bug in the module doc breaks): this part runs today.
#[tokio::test]
async fn a_message_sent_with_enter_shows_live_in_the_other_browser() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers =
        Browsers::start("a_message_sent_with_enter_shows_live_in_the_other_browser").await?;
    let alice = browsers.open("alice", BrowserOptions::default()).await?;
    let bob = browsers.open("bob", BrowserOptions::default()).await?;
    let result = async {
        bob.goto(&chat_url(&world.bob, "bob", "alice")).await?;
        alice.goto(&chat_url(&world.alice, "alice", "bob")).await?;
        // The settings dialog opens as a modal with the invite, and closes again.
        invite_from_settings(&alice).await?;
        alice
            .wait_for("ol#messages[data-contact='bob']", PAGE)
            .await?;
        chat_live(&world, &alice, &bob).await
    }
    .await;
    browsers.finish(result).await
}

/// Alice's and bob's pages are open on their conversation, which is empty: Shift+Enter adds
/// a line, Enter sends, bob's page shows the message by itself within [`LIVE`], alice's
/// becomes "delivered"; with the conversation closed, bob sees an unread badge.
async fn chat_live(world: &World, alice: &Browser, bob: &Browser) -> anyhow::Result<()> {
    for page in [alice, bob] {
        page.wait_for("#connection .conn.conn-online", WAIT).await?;
        mark(page).await?;
    }

    // Shift+Enter adds a line; nothing is sent.
    let compose = "#compose-text";
    alice
        .type_into(compose, &format!("Hi Bob{}{}", Key::Shift, Key::Enter))
        .await?;
    alice.type_into(compose, "second line").await?;
    let typed = alice.value(compose).await?;
    ensure!(
        typed == "Hi Bob\nsecond line",
        "the textarea holds {typed:?}"
    );
    ensure!(
        alice.count("#messages li.msg").await? == 0,
        "Shift+Enter sent"
    );

    // Enter sends. Bob's open page shows the message by itself; the in-page clocks say when
    // alice's form was submitted and when the bubble appeared on bob's side.
    let text = "Hi Bob\nsecond line";
    bob.js(
        "const text = arguments[0];
         window.__seenAt = null;
         const seen = () => [...document.querySelectorAll('#messages li.msg.in p.msg-text')]
             .some(p => p.textContent === text);
         new MutationObserver(() => {
             if (window.__seenAt === null && seen()) window.__seenAt = Date.now();
         }).observe(document.getElementById('messages'), { childList: true, subtree: true });",
        vec![json!(text)],
    )
    .await?;
    alice
        .js(
            "window.__submittedAt = null;
             document.addEventListener('submit', () => { window.__submittedAt = Date.now(); },
                 { capture: true, once: true });",
            vec![],
        )
        .await?;
    let pressed = Instant::now();
    alice.type_into(compose, &Key::Enter.to_string()).await?;
    let bob_id = wait_bubble(bob, "in", text, LIVE_POLL)
        .await
        .context("bob's open page did not show alice's message in time")?;
    let polled = pressed.elapsed();
    let submitted = alice.js("return window.__submittedAt;", vec![]).await?;
    let seen = bob.js("return window.__seenAt;", vec![]).await?;
    let in_page = match (submitted.as_f64(), seen.as_f64()) {
        (Some(sent), Some(seen)) => seen - sent,
        _ => anyhow::bail!("the pages did not record the send ({submitted}) and arrival ({seen})"),
    };
    println!(
        "live delivery: {in_page:.0} ms from Enter in alice's page to the bubble in bob's page \
         (the pages' clocks); {} ms by WebDriver polling",
        polled.as_millis()
    );
    ensure!(
        in_page <= LIVE.as_millis() as f64,
        "bob's page showed the message {in_page:.0} ms after alice pressed Enter (limit {LIVE:?})"
    );

    // Alice's textarea is empty again, her bubble is there and becomes "delivered".
    alice
        .wait_js(
            PAGE,
            "the textarea to be cleared",
            "return document.getElementById('compose-text').value === '';",
            vec![],
        )
        .await?;
    let alice_id = wait_bubble(alice, "out", text, PAGE).await?;
    ensure!(alice_id == bob_id, "different ids: {alice_id} and {bob_id}");
    let status = alice
        .wait_for(
            &format!(
                "#messages li.msg.out[data-message-id='{alice_id}'] span.status.status-delivered"
            ),
            WAIT,
        )
        .await?;
    let words = status.text().await?;
    ensure!(words.contains("delivered"), "status reads {words:?}");
    ensure!(
        bubbles(bob).await? == [format!("< {text}")],
        "bob's page: {:?}",
        bubbles(bob).await?
    );
    for page in [alice, bob] {
        ensure!(
            still_marked(page).await?,
            "{}'s page was reloaded",
            page.label
        );
    }

    // Bob leaves the conversation: the next message puts alice's unread badge up by one,
    // live, and shows as her preview.
    bob.goto(&format!("{}/?identity=bob", world.bob.url))
        .await?;
    mark(bob).await?;
    let before = unread(bob, "alice").await?;
    alice.type_into(compose, "are you there?").await?;
    alice.type_into(compose, &Key::Enter.to_string()).await?;
    bob.wait_js(
        LIVE_POLL,
        "alice's unread badge to go up by one",
        &format!("return (function () {{ {UNREAD} }}).apply(null, arguments) === arguments[1];"),
        vec![json!("alice"), json!(before + 1)],
    )
    .await?;
    let preview = bob
        .text("ul#contact-list a.item[data-contact='alice'] .preview")
        .await?;
    ensure!(preview == "are you there?", "preview {preview:?}");
    ensure!(still_marked(bob).await?, "bob's page was reloaded");
    Ok(())
}

/// A script: the number on the unread badge of contact `arguments[0]` in the contact list
/// (0 without a badge).
const UNREAD: &str = "
    const link = [...document.querySelectorAll('ul#contact-list a.item')]
        .find(a => a.dataset.contact === arguments[0]);
    const badge = link && link.querySelector('span.unread');
    return badge ? parseInt(badge.textContent, 10) : 0;";

/// The number on `contact`'s unread badge (0 without one).
async fn unread(page: &Browser, contact: &str) -> anyhow::Result<u64> {
    page.js(UNREAD, vec![json!(contact)])
        .await?
        .as_u64()
        .context("no number on the unread badge")
}

#[tokio::test]
async fn a_message_seen_live_in_the_open_conversation_is_not_unread_afterwards()
-> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers =
        Browsers::start("a_message_seen_live_in_the_open_conversation_is_not_unread_afterwards")
            .await?;
    let bob = browsers.open("bob", BrowserOptions::default()).await?;
    let result = async {
        bob.goto(&chat_url(&world.bob, "bob", "alice")).await?;
        bob.wait_for("#connection .conn.conn-online", WAIT).await?;
        let (status, body) = world
            .alice
            .post(
                "/api/identities/alice/contacts/bob/messages",
                json!({ "text": "read me" }),
            )
            .await?;
        ensure!(status == 201, "{status} {body}");
        wait_bubble(&bob, "in", "read me", WAIT).await?;
        // Bob has read it on screen; he goes back to his identity's page.
        bob.click(".identities a.item.active").await?;
        bob.wait_for("main.chat .empty-state", PAGE).await?;
        let badge = unread(&bob, "alice").await?;
        ensure!(badge == 0, "alice shows {badge} unread");
        Ok(())
    }
    .await;
    browsers.finish(result).await
}

// ---------- 2. message text stays text ----------

const XSS: &str = "<img src=x onerror=alert(1)><script>alert(2)</script>";

#[tokio::test]
async fn markup_in_a_message_shows_as_text_live_and_after_a_reload() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers =
        Browsers::start("markup_in_a_message_shows_as_text_live_and_after_a_reload").await?;
    let alice = browsers.open("alice", BrowserOptions::default()).await?;
    let bob = browsers.open("bob", BrowserOptions::default()).await?;
    let result = markup_stays_text(&world, &alice, &bob).await;
    browsers.finish(result).await
}

/// Whether the page shows `XSS` as the text of one bubble, with no image or script in the
/// conversation and no alert open.
async fn shows_payload_as_text(page: &Browser, direction: &str) -> anyhow::Result<()> {
    wait_bubble(page, direction, XSS, PAGE).await?;
    let texts = page
        .js(
            "return [...document.querySelectorAll('#messages p.msg-text')].map(p => p.textContent);",
            vec![],
        )
        .await?;
    ensure!(texts == json!([XSS]), "{}: texts {texts}", page.label);
    ensure!(
        page.count("#messages img, #messages script").await? == 0,
        "{}: the message became markup",
        page.label
    );
    let images = page.js("return document.images.length;", vec![]).await?;
    ensure!(images == 0, "{}: {images} images in the page", page.label);
    ensure!(
        page.client.get_alert_text().await.is_err(),
        "{}: an alert is open",
        page.label
    );
    Ok(())
}

async fn markup_stays_text(world: &World, alice: &Browser, bob: &Browser) -> anyhow::Result<()> {
    alice.goto(&chat_url(&world.alice, "alice", "bob")).await?;
    bob.goto(&chat_url(&world.bob, "bob", "alice")).await?;
    for page in [alice, bob] {
        page.wait_for("#connection .conn.conn-online", WAIT).await?;
        mark(page).await?;
    }
    alice
        .type_into("#compose-text", &format!("{XSS}{}", Key::Enter))
        .await?;
    // Live: alice's page adds her bubble, bob's page the arriving one.
    shows_payload_as_text(alice, "out").await?;
    shows_payload_as_text(bob, "in").await?;
    for page in [alice, bob] {
        ensure!(still_marked(page).await?, "{}'s page reloaded", page.label);
    }
    // Rendered by the server.
    for (page, direction) in [(alice, "out"), (bob, "in")] {
        page.reload().await?;
        ensure!(!still_marked(page).await?, "{} did not reload", page.label);
        shows_payload_as_text(page, direction).await?;
    }
    // The sidebar's preview of the last message is text too.
    let preview = alice
        .find("ul#contact-list a.item[data-contact='bob'] .preview")
        .await?
        .prop("textContent")
        .await?;
    ensure!(preview.as_deref() == Some(XSS), "preview {preview:?}");
    Ok(())
}

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
    let result = settings_persist(world, &page).await;
    browsers.finish(result).await
}

/// Open the settings dialog from the page of `node` (alice's identity) and return what it
/// shows: the mailbox address and whether previews are on.
async fn open_settings(page: &Browser, node: &Node) -> anyhow::Result<(String, bool)> {
    page.goto(&format!("{}/?identity=alice", node.url)).await?;
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
    page.click("#settings-form button[type=submit]").await?;
    wait_new_page(page).await?;
    page.wait_for("dialog#settings[open] #settings-form", PAGE)
        .await?;
    ensure!(
        page.count(".flash").await? == 0,
        "saving failed: {}",
        page.text(".flash").await?
    );
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
    page.click("#test-connection button[type=submit]").await?;
    let result = page.wait_for("#test-result", WAIT).await?;
    let words = result.text().await?;
    ensure!(words.contains("Connected"), "test result {words:?}");
    ensure!(
        page.count("dialog#settings[open]").await? == 1,
        "the dialog closed"
    );
    Ok(())
}

#[tokio::test]
async fn a_node_stops_when_asked_while_its_page_is_open() -> anyhow::Result<()> {
    let mut world = friends().await?;
    let mut browsers = Browsers::start("a_node_stops_when_asked_while_its_page_is_open").await?;
    let page = browsers.open("alice", BrowserOptions::default()).await?;
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

// ---------- 4. without JavaScript ----------

#[tokio::test]
async fn without_javascript_sending_works_and_errors_keep_the_typed_text() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers =
        Browsers::start("without_javascript_sending_works_and_errors_keep_the_typed_text").await?;
    let page = browsers
        .open("alice", BrowserOptions::without_javascript())
        .await?;
    let result = no_script(&world, &page).await;
    browsers.finish(result).await
}

async fn no_script(world: &World, page: &Browser) -> anyhow::Result<()> {
    let url = chat_url(&world.alice, "alice", "bob");
    page.goto(&url).await?;
    // The script did not run: it would have marked <html> and shown the Enter hint.
    let html_class = page.find("html").await?.attr("class").await?;
    ensure!(
        !html_class.unwrap_or_default().contains("js"),
        "the page's script ran"
    );
    ensure!(
        !page.find("#compose-hint").await?.is_displayed().await?,
        "the Enter hint shows without the script"
    );

    // Type and click Send: the form posts, the node answers 303, the page shows the message.
    let text = "sent without scripts";
    page.type_into("#compose-text", text).await?;
    page.click("#compose button[type=submit]").await?;
    page.wait_for("#messages li.msg.out", PAGE).await?;
    ensure!(bubbles(page).await? == [format!("> {text}")]);
    let shown = page.url().await?;
    ensure!(shown == url, "after sending the browser shows {shown}");
    ensure!(page.value("#compose-text").await?.is_empty());
    ensure!(page.count(".flash").await? == 0);
    // Bob gets it; reloading shows alice it was delivered.
    eventually(WAIT, "bob to receive the message", || async {
        let page = world
            .bob
            .get("/api/identities/bob/contacts/alice/messages")
            .await?;
        Ok(page["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["text"] == text))
            .then_some(()))
    })
    .await?;
    let deadline = Instant::now() + WAIT;
    while page.count("#messages li.msg.out .status-delivered").await? == 0 {
        ensure!(Instant::now() < deadline, "never shown as delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
        page.reload().await?;
    }

    // Only spaces: `required` lets them through, the node refuses them (400), and the page
    // comes back with the error and the spaces still in the textarea.
    let spaces = "   ";
    page.type_into("#compose-text", spaces).await?;
    page.click("#compose button[type=submit]").await?;
    let flash = page.wait_for(".flash[role=alert]", PAGE).await?;
    let error = flash.text().await?;
    ensure!(error.starts_with("Error: "), "flash {error:?}");
    let kept = page.value("#compose-text").await?;
    ensure!(kept == spaces, "the textarea holds {kept:?}");
    ensure!(
        bubbles(page).await? == [format!("> {text}")],
        "{:?}",
        bubbles(page).await?
    );
    // The same form, posted without a browser: the status is 400.
    let resp = world
        .alice
        .request(reqwest::Method::POST, "/ui/send")
        .header("origin", &world.alice.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("identity=alice&contact=bob&text=+++")
        .send()
        .await?;
    ensure!(resp.status() == 400, "status {}", resp.status());
    Ok(())
}

// ---------- 5. the mailbox dashboard ----------

#[tokio::test]
async fn the_mailbox_dashboard_shows_the_traffic() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers = Browsers::start("the_mailbox_dashboard_shows_the_traffic").await?;
    let page = browsers.open("operator", BrowserOptions::default()).await?;
    let result = dashboard(&world, &page).await;
    browsers.finish(result).await
}

/// The number in the dashboard figure labelled `label`.
async fn figure(page: &Browser, label: &str) -> anyhow::Result<u64> {
    for item in page.find_all("dl.figures > div").await? {
        // The stylesheet shows labels in capitals: compare the text as written.
        let dt = item
            .find(fantoccini::Locator::Css("dt"))
            .await?
            .prop("textContent")
            .await?;
        if dt.as_deref() == Some(label) {
            let dd = item
                .find(fantoccini::Locator::Css("dd"))
                .await?
                .text()
                .await?;
            return dd
                .trim()
                .parse()
                .with_context(|| format!("{label} shows {dd:?}"));
        }
    }
    anyhow::bail!("no figure {label:?} on the dashboard")
}

async fn dashboard(world: &World, page: &Browser) -> anyhow::Result<()> {
    for text in ["one", "two"] {
        let (status, body) = world
            .alice
            .post(
                "/api/identities/alice/contacts/bob/messages",
                json!({ "text": text }),
            )
            .await?;
        ensure!(status == 201, "{status} {body}");
    }
    eventually(WAIT, "both messages to be delivered", || async {
        let page = world
            .alice
            .get("/api/identities/alice/contacts/bob/messages")
            .await?;
        let statuses: Vec<&Value> = page["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| &m["status"])
            .collect();
        Ok((statuses.len() == 2 && statuses.iter().all(|s| *s == "delivered")).then_some(()))
    })
    .await?;

    page.goto(&world.mailbox.dashboard).await?;
    let heading = page.text("h1").await?;
    ensure!(heading == "Secure Messenger mailbox", "{heading:?}");
    let stored = figure(page, "Stored total").await?;
    ensure!(stored >= 1, "Stored total {stored}");
    let delivered = figure(page, "Delivered total").await?;
    ensure!(delivered >= 1, "Delivered total {delivered}");
    let chart = page.find("section.chart svg").await?;
    ensure!(chart.is_displayed().await?, "the chart is not visible");
    ensure!(
        page.count("section.chart svg polyline").await? == 2,
        "the chart has no sends and deliveries lines"
    );
    Ok(())
}

// ---------- 6. no external requests, a strict CSP ----------

#[tokio::test]
async fn pages_load_nothing_external_and_break_no_content_security_policy() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers =
        Browsers::start("pages_load_nothing_external_and_break_no_content_security_policy").await?;
    let page = browsers.open("alice", BrowserOptions::default()).await?;
    let result = strict_pages(&world, &page).await;
    browsers.finish(result).await
}

/// Console entries that report a Content-Security-Policy violation.
fn csp_violations(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains("Content Security Policy"))
        .map(str::to_owned)
        .collect()
}

async fn strict_pages(world: &World, page: &Browser) -> anyhow::Result<()> {
    let pages = [
        format!("{}/", world.alice.url),
        chat_url(&world.alice, "alice", "bob"),
        format!("{}/?identity=alice&contact=bob&settings=1", world.alice.url),
    ];
    for url in &pages {
        let resp = world.alice.http.get(url).send().await?;
        ensure!(resp.status() == 200, "{url}: {}", resp.status());
        let csp = resp
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("{url}: no Content-Security-Policy"))?
            .to_owned();
        for directive in [
            "frame-ancestors 'none'",
            "script-src 'self'",
            "default-src 'none'",
        ] {
            ensure!(
                csp.contains(directive),
                "{url}: CSP {csp:?} lacks {directive}"
            );
        }
    }

    for url in &pages {
        page.goto(url).await?;
        page.wait_for("#connection .conn", PAGE).await?;
        // The script has run and its event stream is open: whatever either would break
        // has shown in the console by now.
        page.wait_for("html[data-stream=open]", PAGE).await?;
        let entries = page.console().await?;
        let violations = csp_violations(&entries);
        ensure!(violations.is_empty(), "{url}: {violations:#?}");
        // The page names an empty inline icon, so the browser asks for no /favicon.ico:
        // any console error counts.
        let errors: Vec<&Value> = entries.iter().filter(|e| e["level"] == "SEVERE").collect();
        ensure!(errors.is_empty(), "{url}: console errors {errors:#?}");
        // Everything the page loaded, and everything it links to, is the node itself (or an
        // inline `data:` URL, which loads nothing).
        let foreign = page
            .js(
                "const origin = location.origin;
                 const loaded = performance.getEntriesByType('resource').map(e => e.name);
                 const linked = [...document.querySelectorAll('[src], [href], [action]')]
                     .map(e => e.src || e.href || e.action);
                 return [...loaded, ...linked]
                     .filter(u => !u.startsWith(origin + '/') && !u.startsWith('data:'));",
                vec![],
            )
            .await?;
        ensure!(foreign == json!([]), "{url}: foreign URLs {foreign}");
        let loaded = page
            .js(
                "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname);",
                vec![],
            )
            .await?;
        ensure!(
            loaded.as_array().is_some_and(|l| !l.is_empty()),
            "{url}: no resources seen ({loaded})"
        );
    }

    // The check can see a violation: an inline script is refused, and the console says so.
    page.js(
        "const s = document.createElement('script'); s.textContent = 'window.__ran = 1;';
         document.body.append(s);",
        vec![],
    )
    .await?;
    let ran = page.js("return window.__ran === 1;", vec![]).await?;
    ensure!(ran == false, "an inline script ran despite the CSP");
    let entries = page.console().await?;
    ensure!(
        !csp_violations(&entries).is_empty(),
        "the refused inline script left no CSP violation in the console: {entries:#?}"
    );
    Ok(())
}
