//! The pages without JavaScript, the mailbox dashboard, and what no page may do: load
//! anything external or break its Content Security Policy.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------- 4. without JavaScript ----------

#[tokio::test]
async fn without_javascript_sending_works_and_errors_keep_the_typed_text() -> anyhow::Result<()> {
    let world = friends().await?;
    let mut browsers =
        Browsers::start("without_javascript_sending_works_and_errors_keep_the_typed_text").await?;
    let page = browsers
        .open("alice", BrowserOptions::without_javascript())
        .await?;
    sign_in(&page, &world.alice).await?;
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
    // Without a script the page cannot update itself: once alice's node has the receipt,
    // one reload shows it.
    eventually(WAIT, "alice's node to have the receipt", || async {
        let page = world
            .alice
            .get("/api/identities/alice/contacts/bob/messages")
            .await?;
        Ok(page["messages"]
            .as_array()
            .is_some_and(|m| {
                m.iter()
                    .any(|m| m["text"] == text && m["status"] == "delivered")
            })
            .then_some(()))
    })
    .await?;
    page.reload().await?;
    ensure!(
        page.count("#messages li.msg.out .status-delivered").await? == 1,
        "after a reload the message is not shown as delivered"
    );

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
    // The form's URL is not left in the address bar (a reload would post again).
    let url = page.url().await?;
    ensure!(!url.contains("/ui/"), "the address bar shows {url}");
    // The same form, posted without a browser: back to the conversation (303), with the
    // error waiting for that page.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut post = no_redirects.post(format!("{}/ui/send", world.alice.url));
    if let Some(token) = &world.alice.token {
        post = post.bearer_auth(token);
    }
    let resp = post
        .header("origin", &world.alice.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("identity=alice&contact=bob&text=+++")
        .send()
        .await?;
    ensure!(resp.status() == 303, "status {}", resp.status());
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        location.starts_with("/?identity=alice&contact=bob&flash="),
        "{location}"
    );
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
    sign_in(&page, &world.alice).await?;
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
    let paths = [
        "/",
        "/?identity=alice&contact=bob",
        "/?identity=alice&contact=bob&settings=1",
    ];
    // Fetched with the token (on 127.0.0.1), and opened in the signed-in browser (on the
    // node's page host).
    for path in paths {
        let url = format!("{}{path}", world.alice.url);
        let resp = world.alice.http.get(&url).send().await?;
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

    for path in paths {
        let url = format!("{}{path}", world.alice.page);
        page.goto(&url).await?;
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

// ---------- the session cookie stays with its node ----------

/// Cookies are not isolated by port: a cookie for `127.0.0.1` would reach every local
/// server the browser visits. The node's session cookie lives on its own host name, so
/// another local server, visited by the same browser as `127.0.0.1:<port>` or
/// `localhost:<port>`, never gets it.
#[tokio::test]
async fn another_local_server_visited_by_the_browser_gets_no_session_cookie() -> anyhow::Result<()>
{
    let world = friends().await?;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let other = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let record = record.clone();
        async move {
            let cookies = headers
                .get(axum::http::header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            record
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(cookies);
            axum::response::Html(
                "<!DOCTYPE html><title>other</title><p id=other>another server</p>",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(async move { axum::serve(listener, other).await });

    let mut browsers =
        Browsers::start("another_local_server_visited_by_the_browser_gets_no_session_cookie")
            .await?;
    let page = browsers.open("alice", BrowserOptions::default()).await?;
    sign_in(&page, &world.alice).await?;
    let result = async {
        // The session works on the node's page.
        page.goto(&chat_url(&world.alice, "alice", "bob")).await?;
        page.wait_for("html[data-stream=open]", PAGE).await?;
        for host in ["127.0.0.1", "localhost"] {
            page.goto(&format!("http://{host}:{port}/")).await?;
            page.wait_for("#other", PAGE).await?;
        }
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ensure!(seen.len() >= 2, "the other server saw {seen:?}");
        ensure!(
            seen.iter().all(String::is_empty),
            "a cookie of the node's reached another server: {seen:?}"
        );
        Ok(())
    }
    .await;
    server.abort();
    browsers.finish(result).await
}
