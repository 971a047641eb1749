//! The sign-in page a node shows a browser that has no session yet: how to get a sign-in
//! link, and the access-token form.

use leptos::prelude::*;

use crate::document::{Shell, render_document};

/// The sign-in page. The form posts `token` (and `next`, where to go after) to `/login`;
/// `error` says why the last try failed.
pub fn login_page(error: Option<&str>, next: &str) -> String {
    let error = error.map(str::to_owned);
    let next = next.to_owned();
    let shell = Shell {
        title: "Secure Messenger — sign in".to_owned(),
        body_class: "login",
        ..Shell::default()
    };
    render_document(shell, move || {
        view! {
            <header class="topbar">
                <h1 class="brand">"Secure Messenger"</h1>
            </header>
            <main class="login-main">
                <form class="login-form" method="post" action="/login">
                    <h2>"Sign in to this node"</h2>
                    <p>
                        "Open the sign-in link the node printed when it started, or get a new one with "
                        <code>"node signin"</code> "."
                    </p>
                    <p>
                        "Or enter the node's access token (the file " <code>"access-token"</code>
                        " in its data directory, or " <code>"access_token"</code> " in its configuration)."
                    </p>
                    {error.map(|e| view! { <p class="flash" role="alert">{e}</p> })}
                    <input type="hidden" name="next" value=next />
                    <label for="token">"Access token"</label>
                    <input id="token" name="token" type="password" required=true autocomplete="current-password" autofocus=true />
                    <button type="submit">"Sign in"</button>
                </form>
            </main>
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_posts_the_token_and_shows_errors_escaped() {
        let html = login_page(Some("wrong token <b>"), "/?identity=a&x=\"<b>");
        assert!(html.contains(r#"action="/login""#));
        assert!(html.contains(r#"name="token""#));
        assert!(html.contains("wrong token &lt;b&gt;"));
        assert!(html.contains("node signin"));
        assert!(
            html.contains(r#"name="next" value="/?identity=a&amp;x=&quot;&lt;b&gt;""#),
            "{html}"
        );
        assert!(!html.contains("<script"));
        assert!(!login_page(None, "/").contains("role=\"alert\""));
    }
}
