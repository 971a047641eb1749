//! The HTML document shell shared by the node page, the login page and the dashboard.

use leptos::prelude::*;

use crate::{SCRIPT_PATH, STYLESHEET_PATH};

/// What differs between the pages' documents, besides their body.
#[derive(Debug, Default)]
pub(crate) struct Shell {
    /// The document title.
    pub title: String,
    /// The `<body>` class, e.g. `"node"`.
    pub body_class: &'static str,
    /// Adds `<meta http-equiv="refresh" content="N">`, so the page reloads
    /// itself every `N` seconds without JavaScript (the dashboard uses it; the
    /// node page must not, it would throw away what is being typed).
    pub refresh_secs: Option<u32>,
    /// Loads the node page's script ([`SCRIPT_PATH`], deferred).
    pub script: bool,
    /// Rendered as `<body data-previews="true|false">` for the script.
    pub previews: Option<bool>,
    /// A colour theme chosen over the system's: `"light"` or `"dark"` (`<html data-theme>`).
    pub theme: Option<&'static str>,
}

/// Renders a complete HTML document with the shared `<head>` and `body`
/// (built inside a fresh reactive owner) as the body's content.
pub(crate) fn render_document<V, F>(shell: Shell, body: F) -> String
where
    F: FnOnce() -> V,
    V: IntoView + 'static,
{
    let Shell {
        title,
        body_class,
        refresh_secs,
        script,
        previews,
        theme,
    } = shell;
    let color_scheme = theme.unwrap_or("light dark");
    let previews = previews.map(|on| if on { "true" } else { "false" });
    Owner::new().with(move || {
        view! {
            <!DOCTYPE html>
            <html lang="en" data-theme=theme>
                <head>
                    <meta charset="utf-8" />
                    <meta name="viewport" content="width=device-width, initial-scale=1" />
                    <meta name="color-scheme" content=color_scheme />
                    // same-origin, not no-referrer: under no-referrer browsers send `Origin: null`
                    // on form posts, which the node refuses as cross-origin.
                    <meta name="referrer" content="same-origin" />
                    <link rel="icon" href="data:," />
                    {refresh_secs
                        .map(|secs| {
                            view! { <meta http-equiv="refresh" content=secs.to_string() /> }
                        })}
                    <title>{title}</title>
                    <link rel="stylesheet" href=STYLESHEET_PATH />
                    {script.then(|| view! { <script src=SCRIPT_PATH defer></script> })}
                </head>
                <body class=body_class data-previews=previews>{body()}</body>
            </html>
        }
        .to_html()
    })
}
