//! The sync loop: a thin driver that carries out what the [`Engine`] decides, over one QUIC
//! connection to the mailbox. It logs every identity in, drains the outbox, pulls, opens,
//! stores and acknowledges, waits for pushes, and reconnects by itself.
//!
//! Receive order is download → verify → store durably → ACK, so a crash anywhere loses
//! nothing, and the message-id index means nothing is shown twice.

pub mod engine;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use config::MailboxAddress;
use mailbox::client::{Client, ClientError};
use rand::SeedableRng as _;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use self::engine::{Action, Engine, Input};
use crate::core::service::{Node, blocking, now_ms};

/// The settings holding learnt (trust-on-first-use) certificate pins: one per host:port, so
/// moving to another mailbox and back does not trust the first one anew.
pub const PIN_SETTING: &str = "mailbox_pin";

fn pin_setting(target: &MailboxAddress) -> String {
    format!(
        "{PIN_SETTING}/{}:{}",
        target.host.to_ascii_lowercase(),
        target.port
    )
}

/// Most envelopes asked for per PULL.
const PULL_BATCH: u32 = 64;

/// Run forever, following the mailbox address in `address`.
pub async fn run(
    node: Arc<Node>,
    mut address: watch::Receiver<MailboxAddress>,
    interval: Duration,
) {
    let mut engine = Engine::new(interval, rand::rngs::StdRng::from_rng(&mut rand::rng()));
    let mut client: Option<Client> = None;
    let mut logged_in: HashSet<[u8; 32]> = HashSet::new();
    let mut action = engine.start();
    loop {
        let target = address.borrow().clone();
        let input = match action {
            Action::Connect => {
                if let Some(old) = client.take() {
                    old.close().await;
                }
                logged_in.clear();
                // Show the address with the pin in force (given, or learnt on first use).
                let mut shown = target.clone();
                shown.fingerprint = pinned(&node, &target);
                node.update_status(|s| s.mailbox = shown.to_string());
                match connect(&node, &target).await {
                    Ok(c) => {
                        client = Some(c);
                        Input::Connected
                    }
                    Err(e) => Input::ConnectFailed(e.to_string()),
                }
            }
            Action::Login => step(
                login_new(&node, client.as_ref(), &mut logged_in).await,
                Input::LoggedIn,
            ),
            Action::DrainOutbox => step(
                drain_outbox(&node, client.as_ref()).await,
                Input::OutboxDrained,
            ),
            Action::Pull => step(pull_all(&node, client.as_ref()).await, Input::Pulled),
            Action::Wait(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => Input::Timer,
                    _ = node.wake.notified() => Input::Wake,
                    _ = changed(&mut address) => Input::AddressChanged,
                    event = next_event(client.as_ref()) => match event {
                        Ok(()) => Input::Pushed,
                        Err(e) => Input::Lost(e.to_string()),
                    },
                }
            }
            Action::Backoff(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => Input::Timer,
                    _ = node.wake.notified() => Input::Wake,
                    _ = changed(&mut address) => Input::AddressChanged,
                }
            }
        };
        if let Input::ConnectFailed(e) | Input::Lost(e) = &input {
            warn!(error = %e, "mailbox sync interrupted; will retry");
        }
        action = engine.handle(input, now_ms());
        node.update_status(|s| {
            s.state = engine.state().as_str();
            s.last_error = engine.last_error().map(str::to_owned);
            s.last_sync_ms = engine.last_sync_ms();
        });
    }
}

fn step(result: Result<(), ClientError>, done: Input) -> Input {
    match result {
        Ok(()) => done,
        Err(e) => Input::Lost(e.to_string()),
    }
}

/// Resolves when the address changes; never, once nobody can change it any more.
async fn changed(address: &mut watch::Receiver<MailboxAddress>) {
    if address.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn next_event(client: Option<&Client>) -> Result<(), ClientError> {
    match client {
        Some(c) => c.next_event().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

fn need(client: Option<&Client>) -> Result<&Client, ClientError> {
    client.ok_or_else(|| ClientError::Connection("not connected".into()))
}

/// The pin to use for `target`: its own `#fingerprint`, or one learnt earlier for this
/// host:port.
fn pinned(node: &Node, target: &MailboxAddress) -> Option<[u8; 32]> {
    if target.fingerprint.is_some() {
        return target.fingerprint;
    }
    let saved: MailboxAddress = node
        .setting(&pin_setting(target))
        .ok()
        .flatten()
        .or_else(|| node.setting(PIN_SETTING).ok().flatten())?
        .parse()
        .ok()?;
    (saved.host == target.host && saved.port == target.port)
        .then_some(saved.fingerprint)
        .flatten()
}

/// Try the mailbox at `target` (with the pin in use) and say how it went, in words.
pub async fn test_connection(node: &Arc<Node>, target: &MailboxAddress) -> String {
    let mut address = target.clone();
    address.fingerprint = pinned(node, target);
    let attempt = tokio::time::timeout(Duration::from_secs(10), Client::connect(&address)).await;
    match attempt {
        Ok(Ok(client)) => {
            let fp = crypto::Fingerprint(client.server_fingerprint).grouped();
            client.close().await;
            match address.fingerprint {
                Some(_) => {
                    format!("Connected: the mailbox answered with the pinned certificate ({fp}).")
                }
                None => format!(
                    "Connected: the mailbox answered; its certificate ({fp}) will be pinned on first use."
                ),
            }
        }
        Ok(Err(e)) => format!("Could not connect: {e}"),
        Err(_) => format!(
            "Could not connect: no answer from {}:{} within 10 s",
            target.host, target.port
        ),
    }
}

async fn connect(node: &Arc<Node>, target: &MailboxAddress) -> Result<Client, ClientError> {
    let mut address = target.clone();
    address.fingerprint = pinned(node, target);
    let client = Client::connect(&address).await?;
    let mut learnt = target.clone();
    learnt.fingerprint = Some(client.server_fingerprint);
    if address.fingerprint.is_none() {
        // Trust on first use: keep the pin; a later mismatch is refused.
        let n = node.clone();
        let value = learnt.to_string();
        let name = pin_setting(target);
        let _ = blocking(move || n.save_setting(&name, &value)).await;
        info!(pin = %hex::encode(client.server_fingerprint), "learnt the mailbox certificate (trust on first use)");
    }
    node.update_status(|s| s.mailbox = learnt.to_string());
    Ok(client)
}

async fn login_new(
    node: &Arc<Node>,
    client: Option<&Client>,
    logged_in: &mut HashSet<[u8; 32]>,
) -> Result<(), ClientError> {
    let client = need(client)?;
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

async fn drain_outbox(node: &Arc<Node>, client: Option<&Client>) -> Result<(), ClientError> {
    let client = need(client)?;
    let items = node
        .outbox()
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    for (key, item) in items {
        let sender = node.identity(&item.identity).ok().map(|i| i.fingerprint());
        let envelope = hex::decode(&item.envelope).ok();
        let (Some(sender), Some(envelope)) = (sender, envelope) else {
            // Its identity was deleted, or the record is damaged: it cannot be sent.
            let n = node.clone();
            let _ =
                blocking(move || n.outbox_done(key, &item, Some("could not be sent".into()))).await;
            continue;
        };
        use mailbox::protocol::ErrorCode;
        let error = match client.send(sender, envelope).await {
            Ok(_) => None,
            // For now (a full queue, too fast, a hiccup): keep it queued, say why on the
            // message, and try again on the next round; pulling goes on meanwhile.
            Err(ClientError::Refused { code, message })
                if matches!(
                    code,
                    ErrorCode::Quota
                        | ErrorCode::RateLimited
                        | ErrorCode::Internal
                        | ErrorCode::NotLoggedIn
                        | ErrorCode::HelloFirst
                ) =>
            {
                warn!(
                    code = code.as_str(),
                    "the mailbox refused an envelope for now; will retry"
                );
                let n = node.clone();
                let words = format!("not sent yet: {message}");
                let id = item.message_id.clone();
                let _ = blocking(move || {
                    n.set_status(&id, crate::core::store::Status::Pending, Some(words))
                })
                .await;
                return Ok(());
            }
            // For good (too large, not admitted, malformed): say so and stop retrying it.
            Err(ClientError::Refused { code, message }) => {
                warn!(code = code.as_str(), "the mailbox refused an envelope");
                Some(format!("the mailbox refused it: {message}"))
            }
            Err(e) => return Err(e),
        };
        let n = node.clone();
        blocking(move || n.outbox_done(key, &item, error))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
    }
    Ok(())
}

async fn pull_all(node: &Arc<Node>, client: Option<&Client>) -> Result<(), ClientError> {
    let client = need(client)?;
    for (id, identity) in node.loaded_identities() {
        pull_one(node, client, &id, &identity).await?;
    }
    Ok(())
}

async fn pull_one(
    node: &Arc<Node>,
    client: &Client,
    id: &str,
    identity: &Arc<crypto::Identity>,
) -> Result<(), ClientError> {
    let me = identity.fingerprint();
    loop {
        let (envelopes, more) = client.pull(me, PULL_BATCH).await?;
        if envelopes.is_empty() {
            return Ok(());
        }
        let n = node.clone();
        let opener = identity.clone();
        let id_owned = id.to_owned();
        // Open (RSA) and store durably off the executor; then acknowledge.
        let done: Vec<crypto::MessageId> = tokio::task::spawn_blocking(move || {
            let mut done = Vec::new();
            for envelope in envelopes {
                let Ok(header) = crypto::EnvelopeHeader::parse(&envelope) else {
                    continue;
                };
                // A retry or a replay of what is already here: only the ACK is left, without
                // the RSA work (the id is bound into the envelope, so another envelope under
                // a known id could only be a forgery, which `receive` would drop as well).
                match n.knows_message(&header.id.0) {
                    Ok(true) => {
                        done.push(header.id);
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        warn!(error = %e, "could not read the message index; it stays queued");
                        continue;
                    }
                }
                match opener.open(&envelope) {
                    Ok(message) => match n.receive(&id_owned, &message) {
                        Ok(_) => done.push(header.id),
                        Err(e) => warn!(error = %e, "could not store a message; it stays queued"),
                    },
                    Err(e) => {
                        // Refused envelopes are dropped without a receipt and without
                        // telling anyone why.
                        debug!(reason = %e, "refused an envelope");
                        done.push(header.id);
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
