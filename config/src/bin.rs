//! What both binaries do the same way at their edges: report an error on one line, wait for
//! the signal to stop, and name their exit codes. Only with the `bin` feature (it brings
//! tokio's signal handling).

/// The exit code of a process that stopped because its storage failed: what it holds may
/// not be on disk (`EX_SOFTWARE` in sysexits.h).
pub const EXIT_STORAGE_FAILED: u8 = 70;

/// An error and its causes on one line, each cause once (many messages already include
/// their cause's words).
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    for cause in std::iter::successors(Some(error), |e| e.source()) {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Resolves at Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open store: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("disk full")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("mailbox could not start")]
    struct Top(#[source] Outer);

    #[test]
    fn causes_are_reported_once_on_one_line() {
        assert_eq!(
            report(&Top(Outer(Inner))),
            "mailbox could not start: cannot open store: disk full"
        );
    }
}
