//! The HTML document shell shared by the node page and the dashboard.

use leptos::prelude::*;

use crate::STYLESHEET_PATH;

/// Renders a complete HTML document with the shared `<head>` and `body`
/// (built inside a fresh reactive owner) as the body's content.
pub(crate) fn render_document<V, F>(title: String, body_class: &'static str, body: F) -> String
where
    F: FnOnce() -> V,
    V: IntoView + 'static,
{
    Owner::new().with(move || {
        view! {
            <!DOCTYPE html>
            <html lang="en">
                <head>
                    <meta charset="utf-8" />
                    <meta name="viewport" content="width=device-width, initial-scale=1" />
                    <meta name="color-scheme" content="light dark" />
                    <meta name="referrer" content="no-referrer" />
                    <title>{title}</title>
                    <link rel="stylesheet" href=STYLESHEET_PATH />
                </head>
                <body class=body_class>{body()}</body>
            </html>
        }
        .to_html()
    })
}
