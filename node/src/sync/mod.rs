//! The sync loop: a thin driver that carries out what the [`Engine`] decides, over one QUIC
//! connection to the mailbox. It logs every identity in, drains the outbox, pulls, opens,
//! stores and acknowledges, waits for pushes, and reconnects by itself.
//!
//! Receive order is download → verify → store durably → ACK, so a crash anywhere loses
//! nothing, and the message-id index means nothing is shown twice.

pub mod engine;
pub mod keys;
pub mod pins;
pub mod remote;
pub mod round;

use std::sync::Arc;
use std::time::Duration;

use config::MailboxAddress;
use mailbox::client::{Client, ClientError, ConnectionError};
use rand::SeedableRng as _;
use tokio::sync::watch;
use tracing::{info, warn};

use self::engine::{Action, Engine, Input};
use self::pins::{pin_setting, pinned};
use self::round::{drain_outbox, login_new, pull_all};
use crate::core::error::NodeError;
use crate::core::service::{Destination, Node, RECEIPT_DELAY, blocking, now_ms};

/// Why a sync step failed: the mailbox (or the way to it), or this node's own store.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The mailbox refused, answered oddly, or could not be reached.
    #[error(transparent)]
    Mailbox(#[from] ClientError),
    /// The node's own store or keys failed.
    #[error("this node failed: {0}")]
    Local(#[from] NodeError),
}

/// Run forever: the sync with our own mailbox (following the address in `address`), and
/// the delivery to our contacts' own mailboxes ([`remote`]).
pub async fn run(node: Arc<Node>, address: watch::Receiver<MailboxAddress>, interval: Duration) {
    tokio::join!(
        home(node.clone(), address, interval),
        remote::run(node.clone(), interval),
        remote::pull_old(node.clone(), interval),
        receipts(node)
    );
}

/// Seal the receipts due ([`Node::seal_due_receipts`]) forever: at start (what was due
/// before a restart), then [`RECEIPT_DELAY`] after a message needs one, so the messages
/// taken in meanwhile share it. A failure is retried after `RECEIPT_RETRY`.
async fn receipts(node: Arc<Node>) {
    const RECEIPT_RETRY: Duration = Duration::from_secs(5);
    loop {
        let n = node.clone();
        let failed = match blocking(move || n.seal_due_receipts()).await {
            Ok(0) => false,
            Ok(_) => {
                node.wake();
                false
            }
            Err(e) => {
                warn!(error = %e, "could not seal receipts; trying again");
                // Others' receipts may have been sealed.
                node.wake();
                true
            }
        };
        if failed {
            tokio::select! {
                () = node.receipts_woken() => {}
                () = tokio::time::sleep(RECEIPT_RETRY) => {}
            }
        } else {
            node.receipts_woken().await;
        }
        tokio::time::sleep(RECEIPT_DELAY).await;
    }
}

/// Sync with our own mailbox forever, following the address in `address`: log in, deliver
/// what goes there, pull.
async fn home(node: Arc<Node>, mut address: watch::Receiver<MailboxAddress>, interval: Duration) {
    let mut engine = Engine::new(interval, rand::rngs::StdRng::from_rng(&mut rand::rng()));
    let mut client: Option<Client> = None;
    let mut action = engine.start();
    loop {
        let target = address.borrow().clone();
        let input = match action {
            Action::Connect => {
                if let Some(old) = client.take() {
                    old.close().await;
                }
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
            Action::Login => match need(client.as_ref()) {
                Ok(c) => step(login_new(&node, c, &mut engine).await, Input::LoggedIn),
                Err(e) => step(Err(e), Input::LoggedIn),
            },
            Action::DrainOutbox => match need(client.as_ref()) {
                Ok(c) => step(
                    async {
                        let home = Destination::Home;
                        keys::publish_keys(&node, c, now_ms()).await?;
                        keys::claim_keys(&node, c, &engine, &home, now_ms()).await?;
                        drain_outbox(&node, c, &mut engine, &home, now_ms()).await
                    }
                    .await,
                    Input::OutboxDrained,
                ),
                Err(e) => step(Err(e), Input::OutboxDrained),
            },
            Action::Pull => match need(client.as_ref()) {
                Ok(c) => step(pull_all(&node, c).await, Input::Pulled),
                Err(e) => step(Err(e), Input::Pulled),
            },
            Action::Wait(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => Input::Timer,
                    () = node.woken() => Input::Wake,
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
                    () = node.woken() => Input::Wake,
                    _ = changed(&mut address) => Input::AddressChanged,
                }
            }
        };
        if let Input::ConnectFailed(e) | Input::Lost(e) = &input {
            warn!(error = %e, "mailbox sync interrupted; will retry");
        }
        action = engine.handle(input, now_ms());
        node.update_status(|s| {
            s.state = engine.state();
            s.last_error = engine.last_error().map(str::to_owned);
            s.last_sync_ms = engine.last_sync_ms();
        });
    }
}

fn step(result: Result<(), SyncError>, done: Input) -> Input {
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

fn need(client: Option<&Client>) -> Result<&Client, SyncError> {
    client.ok_or_else(|| SyncError::Mailbox(ConnectionError::NotConnected.into()))
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
    let (client, learnt) = connect_to(node, target).await?;
    node.update_status(|s| s.mailbox = learnt.to_string());
    Ok(client)
}

/// Connect to the mailbox at `target` with the pin in force for it (named, or learnt on
/// first use, which is then kept). Returns the client and the address with its pin.
async fn connect_to(
    node: &Arc<Node>,
    target: &MailboxAddress,
) -> Result<(Client, MailboxAddress), ClientError> {
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
    Ok((client, learnt))
}
