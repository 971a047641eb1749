//! The page knows when its node is gone (issue 16 item 6): it says so, keeps what is typed,
//! sends nothing into a browser error page, and when the node is back it reconnects and
//! shows what arrived meanwhile, without a reload.

#[allow(clippy::wildcard_imports)]
use super::*;

#[tokio::test]
async fn the_page_knows_when_its_node_is_gone_and_catches_up_when_it_is_back() -> anyhow::Result<()>
{
    let world = friends().await?;
    let mut browsers =
        Browsers::start("the_page_knows_when_its_node_is_gone_and_catches_up_when_it_is_back")
            .await?;
    let page = browsers.open("alice", BrowserOptions::default()).await?;
    sign_in(&page, &world.alice).await?;
    let result = node_gone(world, &page).await;
    browsers.finish(result).await
}

async fn node_gone(world: World, page: &Browser) -> anyhow::Result<()> {
    let World {
        dir,
        mailbox,
        mut alice,
        bob,
    } = world;
    page.goto(&chat_url(&alice, "alice", "bob")).await?;
    page.wait_for("#connection .conn.conn-online", WAIT).await?;
    page.wait_for("html[data-stream=open]", WAIT).await?;
    mark(page).await?;
    page.type_into("#compose-text", "half-typed").await?;

    // The node stops: the page says so, and not "Online".
    let listen = alice
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    alice.proc.terminate(WAIT)?;
    page.wait_for("html[data-node=gone] #node-gone", WAIT)
        .await?;
    let state = page.text("#connection .conn").await?;
    ensure!(state == "Node not running", "the header says {state:?}");

    // Enter sends nothing into an error page: the text stays, and the page says why.
    page.type_into("#compose-text", &Key::Enter.to_string())
        .await?;
    let error = page
        .wait_for("#compose-error:not([hidden])", PAGE)
        .await?
        .text()
        .await?;
    ensure!(error.contains("not running"), "compose error {error:?}");
    // Another form (Add a contact) is held back too.
    page.js(
        "document.getElementById('contact-key').value = 'sm1-x';
         document.querySelector('#add-contact button[type=submit]').click();",
        vec![],
    )
    .await?;
    ensure!(still_marked(page).await?, "the page was left for another");
    ensure!(
        page.value("#compose-text").await? == "half-typed",
        "the typed text is gone"
    );

    // Bob writes meanwhile; alice's node comes back on its address.
    let (status, body) = bob
        .post(
            "/api/identities/bob/contacts/alice/messages",
            json!({ "text": "while you were away" }),
        )
        .await?;
    ensure!(status == 201, "{status} {body}");
    let alice = Node::start_on(
        &dir.path().join("alice"),
        &mailbox.pinned_address(),
        &listen,
    )?;
    page.wait_for("html[data-node=here][data-stream=open]", WAIT)
        .await?;
    ensure!(
        page.count("#node-gone").await? == 0,
        "the banner stayed after the node came back"
    );
    wait_bubble(page, "in", "while you were away", WAIT).await?;
    page.wait_for("#connection .conn.conn-online", WAIT).await?;
    ensure!(still_marked(page).await?, "the page was reloaded");
    ensure!(
        page.value("#compose-text").await? == "half-typed",
        "the typed text is gone"
    );
    drop(alice);
    Ok(())
}
