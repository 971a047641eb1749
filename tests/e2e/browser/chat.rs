//! Two people in two browsers: from scratch to a live chat; message text stays text.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------- 1. two people start from scratch, and chat live ----------

#[tokio::test]
async fn two_people_start_from_scratch_and_chat_live_in_their_browsers() -> anyhow::Result<()> {
    let world = strangers()?;
    let mut browsers =
        Browsers::start("two_people_start_from_scratch_and_chat_live_in_their_browsers").await?;
    let alice = browsers.open("alice", BrowserOptions::default()).await?;
    let bob = browsers.open("bob", BrowserOptions::default()).await?;
    // Only what a person has: the link each node printed when it started. From there on,
    // only what the pages say (no API calls, no README).
    for (page, node) in [(&alice, &world.alice), (&bob, &world.bob)] {
        let link = node
            .start_link
            .clone()
            .context("the node printed no sign-in link")?;
        page.goto(&link).await?;
        page.wait_for("main.chat h2", PAGE).await?;
    }
    let result = from_scratch(&alice, &bob).await;
    browsers.finish(result).await
}

/// Create a profile named `name` through the form of an empty node's page: its id is
/// derived from the name (`id`).
async fn create_identity_in_page(page: &Browser, id: &str, name: &str) -> anyhow::Result<()> {
    let heading = page.text("main.chat h2").await?;
    ensure!(heading == "Create your first profile", "{heading:?}");
    page.type_into("#new-name", name).await?;
    page.click("#add-identity button[type=submit]").await?;
    let item = page
        .wait_for(
            &format!(".identities a.item.active[data-identity='{id}']"),
            PAGE,
        )
        .await?;
    let shown = item.text().await?;
    ensure!(shown.contains(name), "the new profile shows as {shown:?}");
    let heading = page.text("main.chat h2").await?;
    ensure!(heading == "Add your first contact", "{heading:?}");
    Ok(())
}

/// Follow the empty state's "Invite someone" to the invite dialog and copy the code out of
/// it; close the dialog again.
async fn invite_from_dialog(page: &Browser) -> anyhow::Result<String> {
    page.click("#open-invite").await?;
    page.wait_for("dialog#invite[open] textarea#invite-code", PAGE)
        .await?;
    let modal = page
        .js(
            "return document.getElementById('invite').matches(':modal');",
            vec![],
        )
        .await?;
    ensure!(modal == true, "the invite dialog is not modal");
    ensure!(
        page.count("dialog#invite svg.qr").await? == 1,
        "no QR code of the invite"
    );
    let invite = page.value("textarea#invite-code").await?.trim().to_owned();
    ensure!(invite.starts_with("sm1-"), "invite {invite:?}");
    // A browser that refuses the clipboard: the code is selected, and the page says how to
    // copy it.
    page.js(
        "navigator.clipboard.writeText = () => Promise.reject(new Error('denied'));",
        vec![],
    )
    .await?;
    page.click("#copy-invite").await?;
    page.wait_js(
        PAGE,
        "the copy fallback to select the code",
        "const box = document.getElementById('invite-code');
         return document.activeElement === box && box.selectionStart === 0
             && box.selectionEnd === box.value.length
             && document.getElementById('invite-copy-status').textContent.includes('Ctrl+C');",
        vec![],
    )
    .await?;
    page.click("#close-invite").await?;
    page.wait_js(
        PAGE,
        "the invite dialog to close",
        "return !document.getElementById('invite') && document.readyState === 'complete';",
        vec![],
    )
    .await?;
    Ok(invite)
}

/// Open the settings dialog (a modal) and close it again.
async fn open_and_close_settings(page: &Browser) -> anyhow::Result<()> {
    page.click("a#open-settings").await?;
    page.wait_for("dialog#settings[open] #settings-mailbox", PAGE)
        .await?;
    let modal = page
        .js(
            "return document.getElementById('settings').matches(':modal');",
            vec![],
        )
        .await?;
    ensure!(modal == true, "the settings dialog is not modal");
    page.click("#close-settings").await?;
    page.wait_js(
        PAGE,
        "the settings dialog to close",
        "return !document.getElementById('settings') && document.readyState === 'complete';",
        vec![],
    )
    .await?;
    Ok(())
}

/// Paste `invite` into the Add contact form, leaving the name empty: the contact takes the
/// invite's name (`name`, found under `key`) and the conversation opens.
async fn add_contact_in_page(
    page: &Browser,
    key: &str,
    name: &str,
    invite: &str,
) -> anyhow::Result<()> {
    page.type_into("#add-contact textarea[name=key_or_invite]", invite)
        .await?;
    page.click("#add-contact button[type=submit]").await?;
    page.wait_for(&format!("ol#messages[data-contact='{key}']"), PAGE)
        .await?;
    let listed = page
        .text(&format!("ul#contact-list a.item[data-contact='{key}']"))
        .await?;
    ensure!(
        listed.contains(name),
        "{name} is not in the contact list: {listed:?}"
    );
    let title = page.text("#chat-title").await?;
    ensure!(title.contains(&format!("Chat with {name}")), "{title:?}");
    Ok(())
}

/// From two fresh nodes to a verified conversation, using only what the pages say.
async fn from_scratch(alice: &Browser, bob: &Browser) -> anyhow::Result<()> {
    // Names, not ids: the keys ("alice", "bob") come from them.
    create_identity_in_page(alice, "alice", "alice").await?;
    create_identity_in_page(bob, "bob-muller", "Bob Müller").await?;
    let alice_invite = invite_from_dialog(alice).await?;
    let bob_invite = invite_from_dialog(bob).await?;
    ensure!(alice_invite != bob_invite);

    // Each pastes the other's invite; each page then shows the new conversation, under the
    // name the invite carries.
    add_contact_in_page(bob, "alice", "alice", &alice_invite).await?;
    add_contact_in_page(alice, "bob-muller", "Bob Müller", &bob_invite).await?;

    // They compare the one number the pages show them, and mark each other verified.
    let alice_number = safety_number_in_page(alice).await?;
    let bob_number = safety_number_in_page(bob).await?;
    ensure!(
        alice_number == bob_number,
        "safety numbers differ: {alice_number:?} and {bob_number:?}"
    );
    mark_verified_in_page(alice, "Bob Müller").await?;
    mark_verified_in_page(bob, "alice").await?;
    chat_live(alice, bob, "bob-muller").await
}

/// Open the contact's details and read the safety number (and see its QR code).
async fn safety_number_in_page(page: &Browser) -> anyhow::Result<String> {
    page.click("#contact-details > summary").await?;
    let number = page.wait_for("#safety-number", PAGE).await?.text().await?;
    ensure!(
        page.count("svg[aria-label='QR code of the safety number']")
            .await?
            == 1,
        "no QR code of the safety number"
    );
    // The open details scroll in a box of their own: the messages keep a fifth of the chat
    // pane (they kept only their padding), and the compose box stays on the screen.
    let room = page
        .js(
            "const list = document.querySelector('#chat .scroller').getBoundingClientRect();
             const pane = document.getElementById('chat').getBoundingClientRect();
             const compose = document.getElementById('compose').getBoundingClientRect();
             return list.height >= pane.height / 5 && compose.bottom <= window.innerHeight
                 ? 'ok'
                 : `messages ${list.height} of ${pane.height}, compose box to ${compose.bottom}`;",
            vec![],
        )
        .await?;
    ensure!(room == "ok", "with the details open: {room}");
    Ok(number.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Mark the open contact verified: the conversation notes it, and the name gets its mark.
async fn mark_verified_in_page(page: &Browser, name: &str) -> anyhow::Result<()> {
    page.click("#verify-contact button[type=submit]").await?;
    let note = page
        .wait_for("#messages li.note", PAGE)
        .await?
        .text()
        .await?;
    ensure!(
        note.contains(&format!("You marked {name} as verified")),
        "the note says {note:?}"
    );
    ensure!(
        page.count("#chat-title .verified").await? == 1,
        "no verified mark"
    );
    Ok(())
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
    sign_in(&alice, &world.alice).await?;
    sign_in(&bob, &world.bob).await?;
    let result = async {
        bob.goto(&chat_url(&world.bob, "bob", "alice")).await?;
        alice.goto(&chat_url(&world.alice, "alice", "bob")).await?;
        // The settings dialog opens as a modal, and closes again.
        open_and_close_settings(&alice).await?;
        alice
            .wait_for("ol#messages[data-contact='bob']", PAGE)
            .await?;
        too_long_is_said_while_typing(&alice).await?;
        chat_live(&alice, &bob, "bob").await
    }
    .await;
    browsers.finish(result).await
}

/// A text over the node's limit (counted in UTF-8 bytes: "é" is two) is said while typing,
/// in the node's words, and Send waits; one that fits again clears both.
async fn too_long_is_said_while_typing(page: &Browser) -> anyhow::Result<()> {
    let said = page
        .js(
            "const box = document.getElementById('compose-text');
             const max = Number(document.getElementById('compose').dataset.maxBytes);
             const error = document.getElementById('compose-error');
             const send = document.querySelector('#compose button[type=submit]');
             const type = (text) => { box.value = text; box.dispatchEvent(new Event('input')); };
             type('é'.repeat(Math.floor(max / 2) + 1));
             const over = max > 0 && !error.hidden && error.textContent.includes('too long')
                 && send.disabled;
             const words = error.textContent;
             type('é'.repeat(Math.floor(max / 2)));
             const fits = error.hidden && !send.disabled;
             type('');
             return over && fits ? 'ok' : `limit ${max}: over ${over} (${words}), fits ${fits}`;",
            vec![],
        )
        .await?;
    ensure!(said == "ok", "a text over the limit: {said}");
    Ok(())
}

/// Alice's and bob's pages are open on their conversation, which is empty: Shift+Enter adds
/// a line, Enter sends, bob's page shows the message by itself within [`LIVE`], alice's
/// becomes "delivered"; with the conversation closed, bob sees an unread badge.
async fn chat_live(alice: &Browser, bob: &Browser, bob_profile: &str) -> anyhow::Result<()> {
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
    bob.click(&format!(
        ".identities a.item[data-identity='{bob_profile}']"
    ))
    .await?;
    bob.wait_for("ul#contact-list", PAGE).await?;
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
    sign_in(&bob, &world.bob).await?;
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
        // Today's message shows its time alone (in the browser's locale), with the full
        // date and time as its tooltip; had midnight passed meanwhile, the date too.
        let shown = bob
            .js(
                "const t = [...document.querySelectorAll('#messages time[datetime]')].pop();
                 const at = new Date(t.getAttribute('datetime'));
                 const timeOnly = at.toLocaleTimeString(undefined, { timeStyle: 'short' });
                 const today = at.toDateString() === new Date().toDateString();
                 const right = today ? t.textContent === timeOnly
                     : t.textContent !== timeOnly && t.textContent.includes(timeOnly);
                 return right && t.title.length > timeOnly.length
                     ? 'ok' : t.textContent + ' / ' + t.title;",
                vec![],
            )
            .await?;
        ensure!(shown == "ok", "today's time shows as {shown}");
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
    sign_in(&alice, &world.alice).await?;
    sign_in(&bob, &world.bob).await?;
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
