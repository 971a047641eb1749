//! What keeps a front-end's index current: the stream's tail (headers only, from the first
//! sequence at start), the `gone` notices of the other front-ends, and the arrivals for
//! recipients logged in here.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use crypto::{Fingerprint, MessageId};
use futures_util::StreamExt as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::index::{Entry, Inserted};
use super::{Inner, nats_error, parse_origin};
use crate::store::StoreError;

/// Apply the sequences other front-ends delete, read from the deletions stream (8 bytes
/// each, big-endian, per notice) from now on: what was deleted before is not in the queue
/// stream any more, so the tail never adds it. Resumes where it stopped after an error.
pub(super) async fn watch_gone(
    inner: Arc<Inner>,
    gone: async_nats::jetstream::stream::Stream,
) -> Result<JoinHandle<()>, StoreError> {
    let first = gone_consumer(&gone, DeliverPolicy::New).await?;
    Ok(tokio::spawn(async move {
        let mut messages = Some(first);
        let mut last = 0u64;
        loop {
            if let Some(mut notices) = messages.take() {
                while let Some(Ok(notice)) = notices.next().await {
                    if let Ok(info) = notice.info() {
                        last = info.stream_sequence;
                    }
                    let mut index = inner.index();
                    for chunk in notice.payload.chunks_exact(8) {
                        let mut seq = [0u8; 8];
                        seq.copy_from_slice(chunk);
                        index.remove(u64::from_be_bytes(seq));
                    }
                }
                tracing::warn!("following deletions stopped; resuming");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let from = DeliverPolicy::ByStartSequence {
                start_sequence: last + 1,
            };
            match gone_consumer(&gone, from).await {
                Ok(notices) => messages = Some(notices),
                Err(e) => tracing::warn!(error = %e, "cannot follow deletions"),
            }
        }
    }))
}

async fn gone_consumer(
    gone: &async_nats::jetstream::stream::Stream,
    deliver_policy: DeliverPolicy,
) -> Result<pull::Ordered, StoreError> {
    gone.create_consumer(pull::OrderedConfig {
        deliver_policy,
        ..Default::default()
    })
    .await
    .map_err(|e| nats_error("following deletions", e))?
    .messages()
    .await
    .map_err(|e| nats_error("following deletions", e))
}

/// Follow the stream into the index, from its first message. The receiver resolves once
/// everything stored before the start is in (or with the error that kept it from it).
pub(super) fn follow(
    inner: Arc<Inner>,
) -> (JoinHandle<()>, oneshot::Receiver<Result<(), StoreError>>) {
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut loading = Some(tx);
        loop {
            let from = inner.index().tail() + 1;
            let result = run(&inner, from, &mut loading).await;
            match (result, loading.take()) {
                (Err(e), Some(tx)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                (Err(e), None) => {
                    tracing::warn!(error = %e, "following the queue stream failed; resuming");
                }
                (Ok(()), tx) => loading = tx,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    (task, rx)
}

async fn run(
    inner: &Inner,
    from: u64,
    loading: &mut Option<oneshot::Sender<Result<(), StoreError>>>,
) -> Result<(), StoreError> {
    let info = inner
        .stream
        .get_info()
        .await
        .map_err(|e| nats_error("reading the queue stream's state", e))?;
    if (info.state.messages == 0 || info.state.last_sequence < from)
        && let Some(tx) = loading.take()
    {
        let _ = tx.send(Ok(()));
    }
    let consumer = inner
        .stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{}.q.*", inner.prefix),
            headers_only: true,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error("following the queue stream", e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| nats_error("following the queue stream", e))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| nats_error("following the queue stream", e))?;
        let (seq, pending) = match message.info() {
            Ok(info) => (info.stream_sequence, info.pending),
            Err(e) => return Err(nats_error("a message of the queue stream", e)),
        };
        let inserted = {
            let mut index = inner.index();
            let inserted = match parse(&inner.prefix, &message) {
                Some(entry) => index.insert(seq, entry),
                None => {
                    tracing::warn!(seq, "a message in the queue stream is not an envelope");
                    Inserted::Known
                }
            };
            index.advance(seq);
            inserted
        };
        if let Inserted::Copy(copy) = inserted {
            // A second copy of a queued id (stored through two front-ends at once, past
            // JetStream's duplicate window): the lower sequence stays.
            if let Err(e) = inner.delete(vec![copy]).await {
                tracing::warn!(error = %e, "cannot delete a second copy");
            }
        }
        if pending == 0
            && let Some(tx) = loading.take()
        {
            let _ = tx.send(Ok(()));
        }
    }
    Ok(())
}

/// An index entry from a message's subject and headers (headers-only delivery adds
/// `Nats-Msg-Size`, the payload's length).
fn parse(prefix: &str, message: &async_nats::Message) -> Option<Entry> {
    let recipient: Fingerprint = message
        .subject
        .as_str()
        .strip_prefix(prefix)?
        .strip_prefix(".q.")?
        .parse()
        .ok()?;
    let headers = message.headers.as_ref()?;
    let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    let id: MessageId = header("Nats-Msg-Id")?.parse().ok()?;
    let at: u64 = header("Sm-At")?.parse().ok()?;
    let origin = parse_origin(&header("Sm-Origin")?)?;
    let len = match header("Nats-Msg-Size") {
        Some(size) => size.parse().ok()?,
        None => message.payload.len() as u64,
    };
    Some(Entry {
        recipient,
        id,
        at,
        len,
        origin,
    })
}

/// Subscribe to every arrival notice and forward each to the driver once the index holds
/// it (the notice carries its entry), so that the PULL its push brings finds it. The core
/// pushes only where the recipient is logged in.
pub(super) async fn forward_arrivals(inner: Arc<Inner>) -> Result<JoinHandle<()>, StoreError> {
    let mut arrivals = inner
        .client
        .subscribe(format!("{}.arrived.*", inner.prefix))
        .await
        .map_err(|e| nats_error("subscribing to arrivals", e))?;
    Ok(tokio::spawn(async move {
        while let Some(arrival) = arrivals.next().await {
            let Some(recipient) = arrival
                .subject
                .as_str()
                .rsplit('.')
                .next()
                .and_then(|hex| hex.parse::<Fingerprint>().ok())
            else {
                continue;
            };
            let Some((seq, entry)) = Entry::decode(recipient, &arrival.payload) else {
                continue;
            };
            inner.index().insert(seq, entry);
            if inner.arrivals.try_send(recipient).is_err() {
                tracing::debug!("arrivals are backed up; one push is dropped");
            }
        }
    }))
}
