//! The HTML document shell shared by the node page and the dashboard.

use leptos::prelude::*;

use crate::STYLESHEET_PATH;

/// Renders a complete HTML document with the shared `<head>` and `body`
/// (built inside a fresh reactive owner) as the body's content.
///
/// `refresh_secs` adds `<meta http-equiv="refresh" content="N">`, so the page
/// reloads itself every `N` seconds without JavaScript (the dashboard uses it;
/// the node page must not, it would throw away what is being typed).
pub(crate) fn render_document<V, F>(
    title: String,
    body_class: &'static str,
    refresh_secs: Option<u32>,
    body: F,
) -> String
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
                    {refresh_secs
                        .map(|secs| {
                            view! { <meta http-equiv="refresh" content=secs.to_string() /> }
                        })}
                    <title>{title}</title>
                    <link rel="stylesheet" href=STYLESHEET_PATH />
                </head>
                <body class=body_class>{body()}</body>
            </html>
        }
        .to_html()
    })
}
