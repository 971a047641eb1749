//! A phone layout (issue 16 item 8): below ~700 px the list and the chat are two screens
//! with a way back; the composer and Send fit; on a touch screen Enter adds a line and the
//! Send button sends.

#[allow(clippy::wildcard_imports)]
use super::*;

#[tokio::test]
async fn on_a_phone_the_list_and_the_chat_are_two_screens() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers = Browsers::start("on_a_phone_the_list_and_the_chat_are_two_screens").await?;
    let page = browsers.open("alice", BrowserOptions::phone()).await?;
    sign_in(&page, &world.alice).await?;
    let result = phone(&world, &page).await;
    browsers.finish(result).await
}

/// Whether the element `selector` is displayed (exists and its box is not `display: none`).
const SHOWN: &str = "
    const el = document.querySelector(arguments[0]);
    return !!el && getComputedStyle(el).display !== 'none' && el.getClientRects().length > 0;";

/// Whether `selector`'s box lies wholly inside the viewport, and nothing scrolls sideways.
const FITS: &str = "
    const el = document.querySelector(arguments[0]);
    if (!el) return 'missing';
    const r = el.getBoundingClientRect();
    const width = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth > width) return 'the page scrolls sideways';
    if (r.left < 0 || r.right > width || r.top < 0 || r.bottom > innerHeight) {
        return 'outside: ' + JSON.stringify(r) + ' in ' + width + 'x' + innerHeight;
    }
    return 'fits';";

async fn shown(page: &Browser, selector: &str) -> anyhow::Result<bool> {
    Ok(page.js(SHOWN, vec![json!(selector)]).await? == true)
}

async fn fits(page: &Browser, selector: &str) -> anyhow::Result<()> {
    let answer = page.js(FITS, vec![json!(selector)]).await?;
    ensure!(answer == "fits", "{selector}: {answer}");
    Ok(())
}

async fn phone(world: &World, page: &Browser) -> anyhow::Result<()> {
    let width = page
        .js("return document.documentElement.clientWidth;", vec![])
        .await?;
    ensure!(
        width.as_u64().is_some_and(|w| w < 700),
        "a phone's width: {width}"
    );

    // The list: contacts, no chat beside them.
    page.goto(&format!("{}/?identity=alice", world.alice.page))
        .await?;
    page.wait_for("ul#contact-list a.item[data-contact='bob']", PAGE)
        .await?;
    ensure!(shown(page, ".sidebar").await?, "no list on the list screen");
    ensure!(
        !shown(page, "main.chat").await?,
        "the chat is beside the list"
    );
    fits(page, "ul#contact-list a.item[data-contact='bob']").await?;

    // Opening a conversation: the chat alone, with a way back; the composer and Send fit.
    page.click("ul#contact-list a.item[data-contact='bob']")
        .await?;
    page.wait_for("ol#messages[data-contact='bob']", PAGE)
        .await?;
    page.wait_for("html[data-enter]", PAGE).await?;
    ensure!(
        !shown(page, ".sidebar").await?,
        "the list is beside the chat"
    );
    ensure!(
        shown(page, "#back-to-list").await?,
        "no way back to the list"
    );
    fits(page, "#compose-text").await?;
    fits(page, "#compose button[type=submit]").await?;
    fits(page, "#back-to-list").await?;

    // The contact's details open: they scroll in a box of their own; the way back, the
    // composer and Send stay on the screen, and the messages keep room.
    page.click("#contact-details > summary").await?;
    page.wait_for("#safety-number", PAGE).await?;
    for selector in [
        "#back-to-list",
        "#compose-text",
        "#compose button[type=submit]",
    ] {
        fits(page, selector).await?;
    }
    let room = page
        .js(
            "return document.querySelector('#chat .scroller').getBoundingClientRect().height;",
            vec![],
        )
        .await?;
    ensure!(
        room.as_f64().is_some_and(|h| h >= 100.0),
        "the messages keep {room} px with the details open"
    );
    page.click("#contact-details > summary").await?;

    // On a touch screen Enter adds a line; the button sends.
    let enter = page.find("html").await?.attr("data-enter").await?;
    ensure!(enter.as_deref() == Some("newline"), "Enter does {enter:?}");
    page.type_into("#compose-text", &format!("line one{}line two", Key::Enter))
        .await?;
    let typed = page.value("#compose-text").await?;
    ensure!(
        typed == "line one\nline two",
        "the textarea holds {typed:?}"
    );
    ensure!(page.count("#messages li.msg").await? == 0, "Enter sent");
    let hint = page.text("#compose-hint").await?;
    ensure!(hint.contains("Send sends"), "the hint says {hint:?}");
    page.click("#compose button[type=submit]").await?;
    wait_bubble(page, "out", "line one\nline two", WAIT).await?;

    // Back to the list.
    page.click("#back-to-list").await?;
    page.wait_for("ul#contact-list", PAGE).await?;
    ensure!(shown(page, ".sidebar").await?, "no list after going back");
    ensure!(!shown(page, "main.chat").await?, "the chat stayed");
    Ok(())
}
