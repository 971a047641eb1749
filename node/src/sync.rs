//! The sync loop: keeps one connection to the mailbox, logs every identity in, drains the
//! outbox, pulls, opens, stores and acknowledges, and reconnects by itself with capped,
//! jittered exponential backoff.
//!
//! Receive order is download → verify → store durably → ACK, so a crash anywhere loses
//! nothing, and the message-id index means nothing is shown twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use config::MailboxAddress;
use mailbox::client::{Client, ClientError};
use rand::RngExt as _;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::service::{Node, now_ms};

/// The setting holding the learnt (trust-on-first-use) certificate pin, per address.
pub const PIN_SETTING: &str = "mailbox_pin";

/// Run forever: connect, sync, and reconnect after any failure.
pub async fn run(
    node: Arc<Node>,
    mut address: watch::Receiver<MailboxAddress>,
    interval: Duration,
) {
    let mut failures: u32 = 0;
    loop {
        let target = address.borrow_and_update().clone();
        node.update_status(|s| {
            s.state = "connecting";
            s.mailbox = target.to_string();
        });
        let result = tokio::select! {
            r = session(&node, &target, interval) => r,
            _ = changed(&mut address) => {
                info!("mailbox address changed; reconnecting");
                failures = 0;
                continue;
            }
        };
        let Err(e) = result;
        failures = failures.saturating_add(1);
        warn!(error = %e, "mailbox sync stopped");
        node.update_status(|s| {
            s.state = "offline";
            s.last_error = Some(e.to_string());
        });
        // 0.5 s doubling to 30 s, with ±50 % jitter.
        let base = Duration::from_millis(500)
            .saturating_mul(1 << failures.min(6))
            .min(Duration::from_secs(30));
        let jitter = rand::rng().random_range(0.5..1.5);
        let wait = base.mul_f64(jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = node.wake.notified() => {}
            _ = changed(&mut address) => { failures = 0; }
        }
    }
}

/// Resolves when the address changes; never, once nobody can change it any more.
async fn changed(address: &mut watch::Receiver<MailboxAddress>) {
    if address.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The pin to use for `target`: its own `#fingerprint`, or one learnt earlier for this
/// host:port.
fn pinned(node: &Node, target: &MailboxAddress) -> Option<[u8; 32]> {
    if target.fingerprint.is_some() {
        return target.fingerprint;
    }
    let saved = node.setting(PIN_SETTING).ok().flatten()?;
    let saved: MailboxAddress = saved.parse().ok()?;
    (saved.host == target.host && saved.port == target.port)
        .then_some(saved.fingerprint)
        .flatten()
}

async fn session(
    node: &Arc<Node>,
    target: &MailboxAddress,
    interval: Duration,
) -> Result<std::convert::Infallible, ClientError> {
    let mut address = target.clone();
    address.fingerprint = pinned(node, target);
    let client = Client::connect(&address).await?;
    if address.fingerprint.is_none() {
        // Trust on first use: keep the pin; a later mismatch is refused.
        let mut learnt = target.clone();
        learnt.fingerprint = Some(client.server_fingerprint);
        let n = node.clone();
        let value = learnt.to_string();
        let _ = tokio::task::spawn_blocking(move || n.save_setting(PIN_SETTING, &value)).await;
        info!(pin = %hex::encode(client.server_fingerprint), "learnt the mailbox certificate (trust on first use)");
    }
    node.update_status(|s| {
        s.mailbox = format!(
            "{}:{}#{}",
            target.host,
            target.port,
            hex::encode(client.server_fingerprint)
        );
    });
    let mut logged_in: HashSet<[u8; 32]> = HashSet::new();
    loop {
        login_new(node, &client, &mut logged_in).await?;
        drain_outbox(node, &client).await?;
        for (id, identity) in node.loaded_identities() {
            pull_all(node, &client, &id, &identity).await?;
        }
        node.update_status(|s| {
            s.state = "online";
            s.last_error = None;
            s.last_sync_ms = Some(now_ms());
        });
        // The mailbox pushes arrivals; the interval is only a safety net.
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = node.wake.notified() => {}
            event = client.next_event() => { event?; }
        }
    }
}

async fn login_new(
    node: &Arc<Node>,
    client: &Client,
    logged_in: &mut HashSet<[u8; 32]>,
) -> Result<(), ClientError> {
    let (challenge, exporter) = client.login_material();
    for (id, identity) in node.loaded_identities() {
        let fp = identity.fingerprint().0;
        if logged_in.contains(&fp) {
            continue;
        }
        let signer = identity.clone();
        // RSA private-key work runs off the executor threads.
        let signature =
            tokio::task::spawn_blocking(move || signer.sign_login(&challenge, &exporter))
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
        client.login(identity.public_key().der(), signature).await?;
        debug!(identity = %id, "logged in");
        logged_in.insert(fp);
    }
    Ok(())
}

async fn drain_outbox(node: &Arc<Node>, client: &Client) -> Result<(), ClientError> {
    let items = node
        .outbox()
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    for (key, item) in items {
        let Ok(envelope) = hex::decode(&item.envelope) else {
            continue;
        };
        let Some(sender) = node
            .identity(&item.identity)
            .ok()
            .map(|i| i.fingerprint().0)
        else {
            // The identity was deleted: its queued messages cannot be sent any more.
            let n = node.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut c = crate::store::Changes::default();
                c.delete(key);
                n.store().apply(c)
            })
            .await;
            continue;
        };
        match client.send(sender, envelope).await {
            Ok(_) => {
                let n = node.clone();
                let _ =
                    tokio::task::spawn_blocking(move || n.outbox_done(key, &item.message_id)).await;
            }
            Err(ClientError::Refused { code, message }) => {
                // The mailbox will not take it (too large, quota...): say so on the message
                // and stop retrying it.
                warn!(code = code.as_str(), "mailbox refused an envelope");
                let n = node.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    n.set_status(
                        &item.message_id,
                        crate::store::Status::Failed,
                        Some(message),
                    )?;
                    let mut c = crate::store::Changes::default();
                    c.delete(key);
                    n.store().apply(c)?;
                    Ok::<_, crate::error::NodeError>(())
                })
                .await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn pull_all(
    node: &Arc<Node>,
    client: &Client,
    id: &str,
    identity: &Arc<crypto::Identity>,
) -> Result<(), ClientError> {
    let me = identity.fingerprint().0;
    loop {
        let (envelopes, more) = client.pull(me, 64).await?;
        if envelopes.is_empty() {
            return Ok(());
        }
        let n = node.clone();
        let opener = identity.clone();
        let id_owned = id.to_owned();
        // Open (RSA) and store durably off the executor; then acknowledge.
        let done: Vec<[u8; 16]> = tokio::task::spawn_blocking(move || {
            let mut done = Vec::new();
            for envelope in envelopes {
                let header = match crypto::EnvelopeHeader::parse(&envelope) {
                    Ok(h) => h,
                    Err(_) => continue,
                };
                match opener.open(&envelope) {
                    Ok(message) => match n.store_incoming(&id_owned, &message) {
                        Ok(_) => done.push(header.id.0),
                        Err(e) => {
                            warn!(error = %e, "could not store a message; it stays queued");
                        }
                    },
                    Err(e) => {
                        // Refused envelopes are dropped without a receipt and without
                        // telling anyone why.
                        debug!(reason = %e, "refused an envelope");
                        done.push(header.id.0);
                    }
                }
            }
            done
        })
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let progressed = !done.is_empty();
        if progressed {
            client.ack(me, done).await?;
        }
        if !more || !progressed {
            return Ok(());
        }
    }
}
