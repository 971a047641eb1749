//! Delivery to other mailboxes: each contact whose invite (or notice) names a mailbox other
//! than ours gets their envelopes there, as the recipient's own server, like mail. One
//! connection per such mailbox, opened when something waits for it and closed after
//! [`IDLE`] with nothing to send; each with its own pin, backoff and status, so an
//! unreachable mailbox holds back only its own contacts. We only SEND there: what comes
//! for us is in our own mailbox, and, for a while after a move, in the old one
//! ([`pull_old`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use config::MailboxAddress;
use mailbox::client::{Client, ClientError};
use rand::SeedableRng as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::engine::{Action, Engine, Input};
use super::round::{drain_outbox, login_new, login_some, pull_all};
use super::{connect_to, need, step};
use crate::core::service::{Destination, Node, RemoteStatus, blocking, now_ms};

/// A connection to another mailbox with nothing to send for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);

/// Deliver to the mailboxes the outbox waits for, forever: a task per mailbox, started when
/// something waits for it and ending when idle.
pub async fn run(node: Arc<Node>, interval: Duration) {
    // Dropping the set (when the sync stops) stops every delivery.
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut running: Vec<(MailboxAddress, Arc<Notify>, tokio::task::AbortHandle)> = Vec::new();
    let mut woken = true;
    loop {
        while tasks.try_join_next().is_some() {}
        running.retain(|(_, _, handle)| !handle.is_finished());
        let n = node.clone();
        let wanted = blocking(move || n.remote_destinations())
            .await
            .unwrap_or_default();
        for target in wanted {
            match running.iter().find(|(a, _, _)| a.same_endpoint(&target)) {
                // Something new may wait for it: cut its wait (or backoff) short.
                Some((_, poke, _)) if woken => poke.notify_one(),
                Some(_) => {}
                None => {
                    let poke = Arc::new(Notify::new());
                    let handle = tasks.spawn(deliver(
                        node.clone(),
                        target.clone(),
                        poke.clone(),
                        interval,
                    ));
                    running.push((target, poke, handle));
                }
            }
        }
        // Statuses of mailboxes no longer in use go.
        node.update_status(|s| {
            s.remote.retain(|r| {
                running.iter().any(|(a, _, _)| {
                    r.address
                        .parse::<MailboxAddress>()
                        .is_ok_and(|b| a.same_endpoint(&b))
                })
            });
        });
        woken = tokio::select! {
            () = node.woken_remote() => true,
            () = tokio::time::sleep(interval) => false,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => false,
        };
    }
}

/// Deliver what waits for `target` until nothing has waited for [`IDLE`].
async fn deliver(node: Arc<Node>, target: MailboxAddress, poke: Arc<Notify>, interval: Duration) {
    let to = Destination::Remote(target.clone());
    let mut engine = Engine::new(interval, rand::rngs::StdRng::from_rng(&mut rand::rng()));
    let mut client: Option<Client> = None;
    let mut action = engine.start();
    let mut last_work = Instant::now();
    loop {
        let input = match action {
            Action::Connect => {
                if let Some(old) = client.take() {
                    old.close().await;
                }
                match connect_to(&node, &target).await {
                    Ok((c, _)) => {
                        client = Some(c);
                        Input::Connected
                    }
                    Err(e) => Input::ConnectFailed(e.to_string()),
                }
            }
            Action::Login => match need(client.as_ref()) {
                Ok(c) => {
                    let senders = senders_for(&node, &to).await;
                    let logged =
                        login_some(&node, c, &mut engine, |id| senders.iter().any(|s| s == id));
                    step(logged.await, Input::LoggedIn)
                }
                Err(e) => step(Err(e), Input::LoggedIn),
            },
            Action::DrainOutbox => match need(client.as_ref()) {
                Ok(c) => step(
                    async {
                        super::keys::claim_keys(&node, c, &engine, &to, now_ms()).await?;
                        drain_outbox(&node, c, &mut engine, &to, now_ms()).await
                    }
                    .await,
                    Input::OutboxDrained,
                ),
                Err(e) => step(Err(e), Input::OutboxDrained),
            },
            // Nothing to pull here: our own messages are in our own mailbox.
            Action::Pull => Input::Pulled,
            Action::Wait(d) => {
                if !waiting_for(&node, &to).await {
                    if last_work.elapsed() >= IDLE {
                        debug!(mailbox = %target, "nothing more to deliver there; closing");
                        if let Some(c) = client.take() {
                            c.close().await;
                        }
                        return;
                    }
                } else {
                    last_work = Instant::now();
                }
                let idle_left = IDLE.saturating_sub(last_work.elapsed());
                tokio::select! {
                    () = tokio::time::sleep(d.min(idle_left.max(Duration::from_millis(10)))) => Input::Timer,
                    () = poke.notified() => Input::Wake,
                    lost = closed(client.as_ref()) => Input::Lost(lost.to_string()),
                }
            }
            Action::Backoff(d) => {
                // Nothing waits for this mailbox any more (sent elsewhere, deleted): stop
                // trying it.
                if !waiting_for(&node, &to).await {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(d) => Input::Timer,
                    () = poke.notified() => Input::Wake,
                }
            }
        };
        if let Input::ConnectFailed(e) | Input::Lost(e) = &input {
            warn!(mailbox = %target, error = %e, "delivery to a contact's mailbox interrupted; will retry");
        }
        action = engine.handle(input, now_ms());
        let status = RemoteStatus {
            address: target.to_string(),
            state: engine.state(),
            last_error: engine.last_error().map(str::to_owned),
        };
        node.update_status(
            |s| match s.remote.iter_mut().find(|r| r.address == status.address) {
                Some(r) => *r = status,
                None => s.remote.push(status),
            },
        );
    }
}

/// The identities with something in the outbox for `to`, or a key to claim there.
async fn senders_for(node: &Arc<Node>, to: &Destination) -> Vec<String> {
    let (n, to) = (node.clone(), to.clone());
    blocking(move || {
        let claims = n
            .claims_pending(now_ms())?
            .into_iter()
            .filter(|(id, c)| n.destination_of(id, &c.name).is(&to))
            .map(|(id, _)| id);
        let mut ids: Vec<String> = n
            .outbox()?
            .into_iter()
            .filter(|o| n.destination(&o.record).is(&to))
            .map(|o| o.record.identity)
            .chain(claims)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    })
    .await
    .unwrap_or_default()
}

/// Whether the outbox holds something for `to`, or a key waits to be claimed there.
async fn waiting_for(node: &Arc<Node>, to: &Destination) -> bool {
    let (n, to) = (node.clone(), to.clone());
    blocking(move || {
        let claims = n
            .claims_pending(now_ms())?
            .iter()
            .any(|(id, c)| n.destination_of(id, &c.name).is(&to));
        Ok(claims || n.outbox()?.iter().any(|o| n.destination(&o.record).is(&to)))
    })
    .await
    .unwrap_or(false)
}

/// Resolves when the connection ends (a mailbox pushes nothing to a sender that is not a
/// member there, so any event is only read and dropped).
async fn closed(client: Option<&Client>) -> ClientError {
    let Some(client) = client else {
        return std::future::pending().await;
    };
    loop {
        if let Err(e) = client.next_event().await {
            return e;
        }
    }
}

/// After a move, pull the mailbox moved away from until its grace period ends: contacts who
/// have not seen the move notice yet still send there, and nothing they send is lost.
pub async fn pull_old(node: Arc<Node>, interval: Duration) {
    loop {
        let n = node.clone();
        let old = blocking(move || Ok(n.old_mailbox())).await.ok().flatten();
        match old {
            Some((address, until_ms)) if !address.same_endpoint(&node.mailbox()) => {
                pull_until(&node, &address, until_ms, interval).await;
            }
            // A cheap look at one setting: a move is noticed within a second.
            _ => tokio::time::sleep(interval.min(Duration::from_secs(1))).await,
        }
    }
}

/// Pull `target` (log in, pull every identity's queue, wait for pushes) until `until_ms`.
async fn pull_until(node: &Arc<Node>, target: &MailboxAddress, until_ms: u64, interval: Duration) {
    let mut engine = Engine::new(interval, rand::rngs::StdRng::from_rng(&mut rand::rng()));
    let mut client: Option<Client> = None;
    let mut action = engine.start();
    while now_ms() < until_ms {
        // Moved back there, or moved again (another old mailbox now): stop; `pull_old`
        // takes what the setting says next.
        let n = node.clone();
        let current = blocking(move || Ok(n.old_mailbox())).await.ok().flatten();
        let still = current.is_some_and(|(a, u)| a.same_endpoint(target) && u == until_ms);
        if !still || target.same_endpoint(&node.mailbox()) {
            break;
        }
        let left = Duration::from_millis(until_ms.saturating_sub(now_ms()));
        let input = match action {
            Action::Connect => {
                if let Some(old) = client.take() {
                    old.close().await;
                }
                match connect_to(node, target).await {
                    Ok((c, _)) => {
                        client = Some(c);
                        Input::Connected
                    }
                    Err(e) => Input::ConnectFailed(e.to_string()),
                }
            }
            Action::Login => match need(client.as_ref()) {
                Ok(c) => step(login_new(node, c, &mut engine).await, Input::LoggedIn),
                Err(e) => step(Err(e), Input::LoggedIn),
            },
            // Nothing goes to the old mailbox any more.
            Action::DrainOutbox => Input::OutboxDrained,
            Action::Pull => match need(client.as_ref()) {
                Ok(c) => step(pull_all(node, c).await, Input::Pulled),
                Err(e) => step(Err(e), Input::Pulled),
            },
            Action::Wait(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d.min(left)) => Input::Timer,
                    event = pushed(client.as_ref()) => match event {
                        Ok(()) => Input::Pushed,
                        Err(e) => Input::Lost(e.to_string()),
                    },
                }
            }
            Action::Backoff(d) => {
                tokio::time::sleep(d.min(left)).await;
                Input::Timer
            }
        };
        if let Input::ConnectFailed(e) | Input::Lost(e) = &input {
            warn!(mailbox = %target, error = %e, "pulling the old mailbox interrupted; will retry");
        }
        action = engine.handle(input, now_ms());
    }
    if let Some(c) = client.take() {
        c.close().await;
    }
    debug!(mailbox = %target, "the old mailbox's grace period is over");
}

async fn pushed(client: Option<&Client>) -> Result<(), ClientError> {
    match client {
        Some(c) => c.next_event().await.map(|_| ()),
        None => std::future::pending().await,
    }
}
