//! The monitoring dashboard: figures, health and metrics; a foreign Host refused.

#[allow(clippy::wildcard_imports)]
use super::*;

#[tokio::test]
async fn the_dashboard_shows_traffic_health_and_metrics() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(dir.path())?;
    let [alice, bob] = identities().await?;
    let sealed = seal_texts(&alice, &bob, vec!["a".into(), "b".into(), "c".into()]).await?;
    let sender = mailbox.connect_as(&[&alice]).await?;
    for s in &sealed {
        assert!(sender.send(fp(&alice), s.bytes.clone()).await?);
    }
    let receiver = mailbox.connect_as(&[&bob]).await?;
    assert_eq!(receiver.ack(fp(&bob), vec![sealed[0].header.id]).await?, 1);
    // Two refusals: bob reaching for alice's queue.
    for _ in 0..2 {
        assert_refused(receiver.pull(fp(&alice), 1).await, ErrorCode::NotLoggedIn);
    }

    let page = mailbox.dashboard_get("/").await?;
    assert_eq!(page.status(), 200);
    let content_type = page
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    for header in ["content-security-policy", "x-content-type-options"] {
        assert!(page.headers().contains_key(header), "{header} is set");
    }
    let html = page.text().await?;
    for (label, value) in [
        ("Stored total", "3"),
        ("Delivered total", "1"),
        ("Queued envelopes", "2"),
        ("Listen address", mailbox.addr.as_str()),
        // The default retention, in words (humantime wrote "7days").
        ("Retention period", "7 days"),
    ] {
        assert!(
            html.contains(&format!("<dt>{label}</dt><dd>{value}</dd>")),
            "{label}: {value} in {html}"
        );
    }
    // The address nodes paste, as the mailbox printed it for them.
    assert!(
        html.contains(&format!(
            r#"<code id="node-address">{}</code>"#,
            mailbox.pinned_address()
        )),
        "{html}"
    );
    assert!(html.contains(">Refused</h2>"), "{html}");
    assert!(
        html.contains(r#"<code>not_logged_in</code></th><td class="num">2</td>"#),
        "{html}"
    );

    let health = mailbox.dashboard_get("/healthz").await?;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await?.trim(), "ok");

    assert_eq!(
        mailbox.metric("mailbox_envelopes_stored_total").await?,
        Some(3.0)
    );
    assert_eq!(
        mailbox.metric("mailbox_envelopes_delivered_total").await?,
        Some(1.0)
    );
    assert_eq!(mailbox.metric("mailbox_queued_envelopes").await?, Some(2.0));
    assert_eq!(
        mailbox
            .metric(r#"mailbox_requests_refused_total{reason="not_logged_in"}"#)
            .await?,
        Some(2.0)
    );
    Ok(())
}

#[tokio::test]
async fn the_dashboard_refuses_a_foreign_host() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(dir.path())?;
    let http = reqwest::Client::new();
    let own = http
        .get(format!("{}/metrics", mailbox.dashboard))
        .send()
        .await?;
    anyhow::ensure!(own.status() == 200, "own Host: {}", own.status());
    // A page on another name that resolves to 127.0.0.1 (DNS rebinding) cannot read it.
    let foreign = http
        .get(format!("{}/metrics", mailbox.dashboard))
        .header("Host", "rebind.example")
        .send()
        .await?;
    anyhow::ensure!(
        foreign.status() == 403,
        "foreign Host: {}",
        foreign.status()
    );
    Ok(())
}
