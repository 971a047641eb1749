//! The mailbox's monitoring dashboard.

use leptos::prelude::*;

use crate::document::render_document;
use crate::{DashboardPage, format_bytes};

/// Renders the mailbox dashboard as a complete HTML document.
pub fn dashboard_page(page: &DashboardPage) -> String {
    let page = page.clone();
    render_document(
        "Secure Messenger mailbox".to_owned(),
        "dashboard",
        move || dashboard_body(page),
    )
}

fn figure(label: &'static str, value: String, class: &'static str) -> impl IntoView {
    let value = if value.trim().is_empty() {
        "—".to_owned()
    } else {
        value
    };
    view! {
        <div class=class>
            <dt>{label}</dt>
            <dd>{value}</dd>
        </div>
    }
}

fn dashboard_body(page: DashboardPage) -> impl IntoView {
    let DashboardPage {
        listen,
        fingerprint,
        uptime,
        connections,
        queued_envelopes,
        queued_bytes,
        stored_total,
        pulled_total,
    } = page;
    let bytes = if queued_bytes < 1024 {
        format_bytes(queued_bytes)
    } else {
        format!("{} ({queued_bytes} bytes)", format_bytes(queued_bytes))
    };
    view! {
        <div class="app">
            <header class="topbar">
                <h1 class="brand">"Secure Messenger mailbox"</h1>
            </header>
            <main class="dashboard-main">
                <h2 class="visually-hidden">"Status"</h2>
                <dl class="figures">
                    {figure("Listen address", listen, "figure")}
                    {figure("Certificate fingerprint", fingerprint, "figure figure-wide figure-fingerprint")}
                    {figure("Uptime", uptime, "figure")}
                    {figure("Connected nodes", connections.to_string(), "figure")}
                    {figure("Queued envelopes", queued_envelopes.to_string(), "figure")}
                    {figure("Queued bytes", bytes, "figure")}
                    {figure("Stored total", stored_total.to_string(), "figure")}
                    {figure("Pulled total", pulled_total.to_string(), "figure")}
                </dl>
            </main>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_shows_its_figures() {
        let html = dashboard_page(&DashboardPage {
            listen: "0.0.0.0:4433".to_owned(),
            fingerprint: "ab12 cd34 ef56".to_owned(),
            uptime: "3h 12m".to_owned(),
            connections: 7,
            queued_envelopes: 42,
            queued_bytes: 1536,
            stored_total: 1001,
            pulled_total: 959,
        });
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(r#"<html lang="en">"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/assets/app.css">"#));
        assert!(html.contains("Secure Messenger mailbox"));
        for (label, value) in [
            ("Listen address", "0.0.0.0:4433"),
            ("Certificate fingerprint", "ab12 cd34 ef56"),
            ("Uptime", "3h 12m"),
            ("Connected nodes", "7"),
            ("Queued envelopes", "42"),
            ("Queued bytes", "1.5 KiB (1536 bytes)"),
            ("Stored total", "1001"),
            ("Pulled total", "959"),
        ] {
            assert!(
                html.contains(&format!("<dt>{label}</dt><dd>{value}</dd>")),
                "{label}: {value} in {html}"
            );
        }
        assert!(!html.contains("style="));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn dashboard_escapes_and_fills_blanks() {
        let html = dashboard_page(&DashboardPage {
            listen: "<script>alert(1)</script>".to_owned(),
            ..DashboardPage::default()
        });
        assert!(!html.contains("<script"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("<dt>Uptime</dt><dd>—</dd>"), "{html}");
        assert!(html.contains("<dt>Queued bytes</dt><dd>0 bytes</dd>"));
    }
}
