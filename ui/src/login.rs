//! The access-token page a node shows when it is protected by a token and the browser has
//! not given it yet.

use leptos::prelude::*;

use crate::document::{Shell, render_document};

/// The token form, posting `token` to `/login`; `error` says why the last try failed.
pub fn login_page(error: Option<&str>) -> String {
    let error = error.map(str::to_owned);
    let shell = Shell {
        title: "Secure Messenger — access token".to_owned(),
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
                    <h2>"This node is protected"</h2>
                    <p>"Enter the access token from the node's configuration (" <code>"access_token"</code> ")."</p>
                    {error.map(|e| view! { <p class="flash" role="alert">{e}</p> })}
                    <label for="token">"Access token"</label>
                    <input id="token" name="token" type="password" required=true autocomplete="current-password" autofocus=true />
                    <button type="submit">"Open"</button>
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
        let html = login_page(Some("wrong token <b>"));
        assert!(html.contains(r#"action="/login""#));
        assert!(html.contains(r#"name="token""#));
        assert!(html.contains("wrong token &lt;b&gt;"));
        assert!(!html.contains("<script"));
        assert!(!login_page(None).contains("role=\"alert\""));
    }
}
