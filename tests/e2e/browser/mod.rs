//! The web UI in a real browser: a real mailbox, real nodes, and headless Chromium driven
//! over WebDriver (chromedriver, started per test on an ephemeral port). The tests do what a
//! user does — fill in forms, press keys, click — and check what the page shows.
//!
//! They need `chromium` and `chromedriver` on PATH (Debian: `apt-get install chromium
//! chromium-driver`; `cargo xtask test` installs them) and fail, saying so, without them.
//! Each browser signs in to its node as a user does, with a one-time sign-in link. A failing
//! test leaves screenshots in `target/test-screenshots/`.
//!
//! Checks use `anyhow::ensure!` rather than `assert!`, so that a failure still reaches
//! [`Browsers::finish`], which takes the screenshots.

mod accessible;
mod chat;
mod outage;
mod pages;
mod phone;
mod settings;

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
    format!("{}/?identity={identity}&contact={contact}", node.page)
}

/// Sign `page` in to `node` as a user does: open a one-time sign-in link (the node prints
/// one at start; this asks for a fresh one). The browser lands on the node's page, on its
/// own host name, with a session.
async fn sign_in(page: &Browser, node: &Node) -> anyhow::Result<()> {
    page.goto(&node.sign_in_link().await?).await?;
    let at = page.url().await?;
    ensure!(
        at == format!("{}/", node.page),
        "after signing in the browser shows {at}"
    );
    Ok(())
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
