//! The Secure Messenger node: a user's own program.
//!
//! It holds the user's identities (RSA private keys, loaded once) and contacts in a local
//! sled store, seals outgoing messages into an outbox that a sync loop delivers to the
//! mailbox, opens and stores incoming ones exactly once, and serves a web UI and a JSON API
//! on 127.0.0.1.
//!
//! Three layers, each in its folder:
//! - [`core`]: the node's operations and records, with no HTTP and no QUIC in them.
//! - [`sync`]: the sync engine (what to do next, free of I/O) and the QUIC driver that
//!   carries it out against the mailbox.
//! - [`http`]: the only layer that knows HTTP and JSON: guard, JSON API, pages, events.
//!
//! This file starts and stops the three together ([`start`]).
//!
//! Browser safety: every request must carry the node's own Host (DNS rebinding), and a
//! state-changing request with a foreign Origin or Referer is refused (CSRF). Every response
//! carries a strict Content-Security-Policy and `frame-ancestors 'none'`. The access token is
//! required by default (see [`http::auth`]).

pub mod core;
pub mod http;
pub mod sync;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use config::{NodeConfig, ensure_private_dir};
use tokio::sync::watch;
use tracing::info;

use crate::core::error::NodeError;
use crate::core::service::{self, Node};

/// The key passphrase the configuration names (environment variable or file), if any.
pub fn configured_passphrase(
    config: &NodeConfig,
) -> Result<Option<service::Passphrase>, NodeError> {
    if let Some(path) = &config.passphrase_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            NodeError::invalid(
                "passphrase_file",
                format!("passphrase_file {}: {e}", path.display()),
            )
        })?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        return Ok(Some(service::Passphrase::new(line)));
    }
    if let Some(var) = &config.passphrase_env {
        let value = std::env::var(var).map_err(|_| {
            NodeError::invalid(
                "passphrase_env",
                format!("passphrase_env names {var}, which is not set"),
            )
        })?;
        return Ok(Some(service::Passphrase::new(value)));
    }
    Ok(None)
}

/// Warnings for files holding a secret that other users of the machine can read or change
/// (Unix permissions; elsewhere none): the `passphrase_file`, and the configuration `file`
/// when the `access_token` comes from it (not from the environment or a flag:
/// `overridden`). The node still starts (secrets mounted by container runtimes are often
/// world-readable inside the container), but says how to fix it.
pub fn secret_file_warnings(
    config: &NodeConfig,
    file: Option<&Path>,
    overridden: &[String],
) -> Vec<String> {
    let mut secrets: Vec<(&Path, &str)> = Vec::new();
    if let Some(path) = &config.passphrase_file {
        secrets.push((path, "the key passphrase (passphrase_file)"));
    }
    if let Some(path) = file
        && config.access_token.is_some()
        && !overridden.iter().any(|k| k == "access_token")
    {
        secrets.push((path, "the access token (access_token)"));
    }
    secrets
        .into_iter()
        .filter_map(|(path, what)| {
            let mode = open_to_others(path)?;
            // Quoted for a shell, whatever the path holds.
            let quoted = format!("'{}'", path.display().to_string().replace('\'', r"'\''"));
            Some(format!(
                "{} holds {what} and other users can read or change it (mode {mode:o}): \
                 chmod 600 {quoted}",
                path.display(),
            ))
        })
        .collect()
}

/// The file's permission bits, if its group or others may read or write it.
#[cfg(unix)]
fn open_to_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o066 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn open_to_others(_path: &Path) -> Option<u32> {
    None
}

/// Whether any key file in the data directory is encrypted (and so needs a passphrase).
pub fn keys_are_encrypted(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("keys"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            std::fs::read_to_string(entry.path())
                .is_ok_and(|t| t.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        })
}

/// A running node.
#[derive(Debug)]
pub struct Running {
    /// The HTTP address (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// The node.
    pub node: Arc<Node>,
    /// A one-time sign-in link for a browser (none when the node requires no token).
    pub sign_in_url: Option<String>,
    http: tokio::task::JoinHandle<()>,
    sync: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    closing: watch::Sender<bool>,
}

impl Running {
    /// Stop serving.
    pub async fn shutdown(mut self) {
        // End open event streams first: graceful shutdown waits for every response.
        let _ = self.closing.send(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.sync.abort();
        // A client that keeps a request open cannot hold the node up for long.
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.http)
            .await
            .is_err()
        {
            self.http.abort();
        }
    }
}

/// Start a node: open the store and keys, start syncing, serve HTTP.
///
/// `overridden` lists the config keys given by environment or flags for this run: a
/// mailbox address saved from the UI is used unless `mailbox` is among them.
pub async fn start(
    config: &NodeConfig,
    overridden: &[String],
    passphrase: Option<service::Passphrase>,
) -> Result<Running, NodeError> {
    ensure_private_dir(&config.data_dir)?;
    let node = Arc::new(Node::open(
        &config.data_dir,
        config.max_body_bytes,
        passphrase,
    )?);
    node.start_mailbox(&config.mailbox, overridden.iter().any(|k| k == "mailbox"))?;
    let (closing, closing_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let token = if config.require_token {
        Some(http::auth::load_or_create_token(
            &config.data_dir,
            config.access_token.as_deref(),
        )?)
    } else if config.listen.ip().is_loopback() {
        None
    } else {
        return Err(NodeError::invalid(
            "require_token",
            format!(
                "require_token: false is allowed on a loopback listen address only (listen is {})",
                config.listen
            ),
        ));
    };
    let n = node.clone();
    let host_name = service::blocking(move || http::auth::page_host_name(&n)).await?;
    let access = http::auth::Access::new(token.as_deref(), &host_name, addr.port());
    let sign_in_url = access
        .required()
        .then(|| access.sign_in_url(&access.new_code(config::now_ms())));
    let state = http::AppState::new(node.clone(), addr, access, closing_rx);
    let app = http::router(state);
    node.set_move_grace(config.move_grace);
    let sync = tokio::spawn(sync::run(
        node.clone(),
        node.follow_mailbox(),
        config.pull_interval,
    ));
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    info!(%addr, "node serving");
    Ok(Running {
        addr,
        node,
        sign_in_url,
        http,
        sync,
        shutdown: Some(shutdown),
        closing,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn secrets_others_can_read_are_named_with_the_fix() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pass = dir.path().join("pass");
        let yaml = dir.path().join("node.yaml");
        std::fs::write(&pass, "a passphrase\n").expect("written");
        std::fs::write(&yaml, "access_token: t0k3n\n").expect("written");
        let config = NodeConfig {
            passphrase_file: Some(pass.clone()),
            access_token: Some("t0k3n".into()),
            ..NodeConfig::default()
        };
        let chmod = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        chmod(&pass, 0o644);
        chmod(&yaml, 0o620);
        let warned = secret_file_warnings(&config, Some(&yaml), &[]);
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(warned[0].contains("passphrase_file") && warned[0].contains("mode 644"));
        assert!(warned[0].ends_with(&format!("chmod 600 '{}'", pass.display())));
        // Writable by the group: it could change the mailbox or the token.
        assert!(warned[1].contains("access_token") && warned[1].contains("mode 620"));
        // The token from the environment: the file holds none that counts.
        let warned = secret_file_warnings(&config, Some(&yaml), &["access_token".into()]);
        assert_eq!(warned.len(), 1, "{warned:?}");
        chmod(&pass, 0o600);
        chmod(&yaml, 0o600);
        assert!(secret_file_warnings(&config, Some(&yaml), &[]).is_empty());
    }
}
