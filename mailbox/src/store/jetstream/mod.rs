//! The clustered engines: [`JetStreamQueue`] and [`JetStreamKeys`] keep the mailbox's
//! envelopes and device keys in NATS JetStream, so that several `mailbox serve`
//! front-ends share one replicated store and any of them can serve any node.
//!
//! # Layout
//!
//! - One stream (`SM_QUEUE` by default) over the subjects `<prefix>.q.<recipient hex>`:
//!   file storage, R3 when the cluster has three servers or more (else R1), `max_age` a day
//!   past retention (a backstop: retention itself is the mailbox's, by each envelope's
//!   stored time). One message per envelope, its bytes the payload, with the headers
//!   `Nats-Msg-Id` (the message id: JetStream drops a resent SEND within its duplicate
//!   window, two minutes), `Sm-At` (stored time, ms) and `Sm-Origin` (the sending address).
//!   A SEND is answered once JetStream acknowledged the publication (a quorum of the
//!   replicas has it).
//! - A key-value bucket (`sm-keys`) with one entry per identity: its device certificate,
//!   one-time keys and fallback key ([`JetStreamKeys`]).
//! - A stream of deletion notices, `SM_QUEUE_GONE` over `<prefix>.gone` (in memory, kept
//!   an hour): the sequences a front-end deleted (acknowledged or expired), which the
//!   others drop from their index; it is a stream, so a front-end that lost its connection
//!   a moment reads what it missed.
//! - A core NATS subject, not stored: `<prefix>.arrived.<recipient hex>` (a front-end
//!   stored an envelope: every other front-end adds it to its index from the notice,
//!   without waiting for its tail, and pushes it where the recipient is logged in). One
//!   subscription per front-end, made before it serves, whatever logs in.
//!
//! # What each front-end keeps
//!
//! An index (`index.rs`) of every queued envelope (sequence, recipient, id, time, length,
//! origin: no bytes), read from the stream at start (headers only) and kept current by
//! tailing it and by the deletion notices. Duplicate checks, quotas, the figures, which
//! sequences a PULL reads, an ACK deletes and retention expires are all answered from it,
//! so an ACK needs no search, on any front-end (an ACK after a failover still deletes): the
//! run of a queue's oldest envelopes it covers is one purge of the recipient's subject
//! (once the tail has passed them, so nothing unknown here goes with them), the rest one
//! delete each. Reads and deletions go to the stream's leader. A sequence a PULL finds
//! missing stays in the index (a leader just elected may not have applied it yet): the
//! PULL fails and is retried, and only after 30 s of misses is the entry dropped.
//!
//! Limits are counted per front-end from its index: exact with one front-end; with several,
//! SENDs in flight at other front-ends (milliseconds' worth) are not counted yet, so a
//! quota can be passed by what arrives at the same moment elsewhere (docs/security.md).

mod index;
mod keys;
pub mod local;
mod tail;
#[cfg(test)]
mod tests;

pub use keys::JetStreamKeys;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, ServerAddr};
use crypto::{Fingerprint, MessageId};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use self::index::{Entry, Index, Inserted};
use super::{Incoming, Origin, QueueStats, QueueStore, Quota, StoreError, Stored};

/// How the engines reach and lay out the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsOptions {
    /// The servers (`nats://host:port` or `host:port`), any of which will do; a user and
    /// password or a token go in the URL (`nats://user:password@host:port`).
    pub urls: Vec<String>,
    /// The queue's stream.
    pub stream: String,
    /// The first token of every subject.
    pub prefix: String,
    /// The key-value bucket of device keys.
    pub key_bucket: String,
    /// Replicas of each; `None`: 3 when the cluster has three servers or more, else 1.
    pub replicas: Option<usize>,
    /// The retention period (the stream keeps messages a day longer, as a backstop).
    pub retention: Duration,
    /// A CA certificate (PEM) to trust for TLS to the servers, if they use a private one.
    pub tls_ca: Option<std::path::PathBuf>,
    /// How long to wait for JetStream at start.
    pub start_timeout: Duration,
}

impl NatsOptions {
    /// The defaults for `urls` (a comma-separated list, the `store` setting).
    pub fn new(urls: &str, retention: Duration) -> Self {
        Self {
            urls: urls
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
            stream: "SM_QUEUE".to_owned(),
            prefix: "sm".to_owned(),
            key_bucket: "sm-keys".to_owned(),
            replicas: None,
            retention,
            tls_ca: None,
            start_timeout: Duration::from_secs(30),
        }
    }
}

fn nats_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Nats(format!("{what}: {e}"))
}

/// A publication JetStream refused: [`StoreError::Full`] when it is out of room (its
/// storage limit, `max_file_store`, which defaults to most of the disk; or the account's),
/// else [`StoreError::Nats`].
fn publish_error(e: &jetstream::context::PublishError) -> StoreError {
    use jetstream::ErrorCode;
    let code = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<jetstream::Error>())
        .map(jetstream::Error::error_code);
    match code {
        Some(
            ErrorCode::INSUFFICIENT_RESOURCES
            | ErrorCode::STORAGE_RESOURCES_EXCEEDED
            | ErrorCode::ACCOUNT_RESOURCES_EXCEEDED,
        ) => StoreError::Full(e.to_string()),
        _ => nats_error("storing an envelope", e),
    }
}

/// A connection to the cluster, and the replica count its size calls for.
pub(crate) async fn connect(
    options: &NatsOptions,
) -> Result<(async_nats::Client, usize), StoreError> {
    let mut addrs = Vec::new();
    for url in &options.urls {
        let addr: ServerAddr = url
            .parse()
            .map_err(|e| StoreError::Nats(format!("the NATS address {url:?}: {e}")))?;
        addrs.push(addr);
    }
    if addrs.is_empty() {
        return Err(StoreError::Nats("no NATS server is given".to_owned()));
    }
    let deadline = tokio::time::Instant::now() + options.start_timeout;
    loop {
        let mut connect = async_nats::ConnectOptions::new()
            .name("sm-mailbox")
            // A front-end's own notices (arrivals, deletions) are not for itself.
            .no_echo()
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)))
            .max_reconnects(None);
        if let Some(ca) = &options.tls_ca {
            connect = connect.add_root_certificates(ca.clone()).require_tls(true);
        }
        match connect.connect(addrs.clone()).await {
            Ok(client) => {
                let known = client.server_info().connect_urls.len().max(addrs.len());
                let replicas = options.replicas.unwrap_or(if known >= 3 { 3 } else { 1 });
                return Ok((client, replicas));
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %e, "waiting for NATS");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(nats_error("cannot reach NATS", e)),
        }
    }
}

/// Run `attempt` until it succeeds or `timeout` passes (JetStream is unavailable for a few
/// seconds while a new cluster elects its leaders).
pub(crate) async fn until_ready<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> F,
) -> Result<T, StoreError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %e, "waiting for JetStream: {what}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(nats_error(what, e)),
        }
    }
}

/// The JetStream implementation of [`QueueStore`] (layout and index in [`self`]).
#[derive(Clone, Debug)]
pub struct JetStreamQueue {
    inner: Arc<Inner>,
    /// Stops the background tasks (which hold `inner`) once the last handle goes.
    _tasks: Arc<Tasks>,
}

#[derive(Debug)]
struct Tasks(Arc<Inner>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in lock(&self.0.tasks).drain(..) {
            task.abort();
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    stream_name: String,
    prefix: String,
    index: Mutex<Index>,
    arrivals: mpsc::Sender<Fingerprint>,
    arrivals_rx: Mutex<Option<mpsc::Receiver<Fingerprint>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Sequences a PULL found missing from the stream, since when.
    missing: Mutex<std::collections::HashMap<u64, std::time::Instant>>,
}

/// How long a queued envelope may be missing from the stream before the index lets go of
/// it (see `pull`).
const MISSING_FOR: Duration = Duration::from_secs(30);
/// Arrivals waiting for the driver, at most (past it, a push is dropped; nodes also poll).
const ARRIVALS: usize = 4096;
/// Deletions and reads in flight at once for one request.
const CONCURRENT: usize = 256;

impl JetStreamQueue {
    /// Connect, create the stream if it is not there (several front-ends may start at
    /// once), and read what is queued into the index before answering anything.
    pub async fn open(options: &NatsOptions) -> Result<Self, StoreError> {
        let (client, replicas) = connect(options).await?;
        let js = jetstream::new(client.clone());
        let config = stream::Config {
            name: options.stream.clone(),
            subjects: vec![format!("{}.q.*", options.prefix)],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_age: options.retention + Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let mut stream = until_ready("the queue stream", options.start_timeout, || {
            js.get_or_create_stream(config.clone())
        })
        .await?;
        // A stream made earlier keeps its settings: bring its age limit (retention may have
        // grown) and replicas to what this front-end is configured for.
        // Replicas change only when set (`nats_replicas`): a front-end that sees fewer
        // servers than the stream has never lowers them.
        let existing = stream.cached_info().config.clone();
        let mut config = config;
        if options.replicas.is_none() {
            config.num_replicas = existing.num_replicas;
        }
        if existing.max_age != config.max_age || existing.num_replicas != config.num_replicas {
            tracing::info!(
                max_age = ?config.max_age,
                replicas = config.num_replicas,
                "updating the queue stream's settings"
            );
            js.update_stream(config.clone())
                .await
                .map_err(|e| nats_error("updating the queue stream", e))?;
            stream = js
                .get_stream(&options.stream)
                .await
                .map_err(|e| nats_error("the queue stream", e))?;
        }
        let (arrivals, arrivals_rx) = mpsc::channel(ARRIVALS);
        let inner = Arc::new(Inner {
            client,
            js,
            stream,
            stream_name: options.stream.clone(),
            prefix: options.prefix.clone(),
            index: Mutex::new(Index::default()),
            arrivals,
            arrivals_rx: Mutex::new(Some(arrivals_rx)),
            tasks: Mutex::new(Vec::new()),
            missing: Mutex::new(Default::default()),
        });
        let tasks = Arc::new(Tasks(inner.clone()));
        let gone_config = stream::Config {
            name: format!("{}_GONE", options.stream),
            subjects: vec![format!("{}.gone", options.prefix)],
            storage: stream::StorageType::Memory,
            num_replicas: replicas,
            max_age: Duration::from_secs(3600),
            ..Default::default()
        };
        let gone_stream = until_ready("the deletions stream", options.start_timeout, || {
            inner.js.get_or_create_stream(gone_config.clone())
        })
        .await?;
        let gone = tail::watch_gone(inner.clone(), gone_stream).await?;
        let arrivals = tail::forward_arrivals(inner.clone()).await?;
        lock(&inner.tasks).push(arrivals);
        lock(&inner.tasks).push(gone);
        let (task, loaded) = tail::follow(inner.clone());
        lock(&inner.tasks).push(task);
        loaded.await.map_err(|_| StoreError::Closed)??;
        tracing::info!(
            envelopes = lock(&inner.index).stats().envelopes,
            "the queue index is loaded"
        );
        Ok(Self {
            inner,
            _tasks: tasks,
        })
    }

    /// Store `envelopes` in their order, as they were stored elsewhere (their ids, times and
    /// origins kept; no quota): `mailbox migrate`. The publications are pipelined (sent in
    /// order on one connection, so the stream keeps that order). Returns how many were new.
    pub async fn import(&self, envelopes: Vec<Incoming>) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let mut pending = Vec::with_capacity(envelopes.len());
        for incoming in envelopes {
            if inner.index().admit(&incoming, Quota::UNLIMITED).is_some() {
                continue;
            }
            inner.index().release(
                &incoming.recipient,
                &incoming.origin,
                incoming.envelope.len() as u64,
            );
            let entry = Entry {
                recipient: incoming.recipient,
                id: incoming.id,
                at: incoming.now_ms,
                len: incoming.envelope.len() as u64,
                origin: incoming.origin,
            };
            let ack = inner
                .js
                .publish_with_headers(
                    subject(&inner.prefix, &incoming.recipient),
                    headers(&incoming),
                    incoming.envelope.into(),
                )
                .await
                .map_err(|e| nats_error("storing an envelope", e))?;
            pending.push((entry, ack));
        }
        let mut new = 0;
        for (entry, ack) in pending {
            let ack = ack
                .await
                .map_err(|e| nats_error("storing an envelope", e))?;
            if !ack.duplicate {
                new += 1;
                let inserted = inner.index().insert(ack.sequence, entry);
                if let Inserted::Copy(copy) = inserted {
                    inner.delete(vec![copy]).await?;
                    if copy == ack.sequence {
                        new -= 1;
                    }
                }
            }
        }
        Ok(new)
    }

    /// Recipients that envelopes stored at other front-ends arrived for (once each is in
    /// this front-end's index); given once, to the driver that pushes them.
    pub fn take_arrivals(&self) -> Option<mpsc::Receiver<Fingerprint>> {
        lock(&self.inner.arrivals_rx).take()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent (none panics midway on input).
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A message's headers: the id JetStream deduplicates on, the stored time, the origin.
fn headers(incoming: &Incoming) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", incoming.id.to_string().as_str());
    headers.insert("Sm-At", incoming.now_ms.to_string().as_str());
    headers.insert("Sm-Origin", hex::encode(incoming.origin.0).as_str());
    headers
}

fn subject(prefix: &str, recipient: &Fingerprint) -> String {
    format!("{prefix}.q.{recipient}")
}

impl Inner {
    fn index(&self) -> MutexGuard<'_, Index> {
        lock(&self.index)
    }

    /// Delete `seqs` (at most [`CONCURRENT`] at once), drop them from the index and tell
    /// the other front-ends. Returns how many this call deleted (others may have been
    /// deleted elsewhere meanwhile).
    async fn delete(&self, seqs: Vec<u64>) -> Result<u64, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let results: Vec<(u64, Result<bool, StoreError>)> =
            futures_util::stream::iter(seqs.iter().copied())
                .map(|seq| async move { (seq, self.delete_one(seq).await) })
                .buffer_unordered(CONCURRENT)
                .collect()
                .await;
        let mut deleted = 0;
        let mut gone = Vec::with_capacity(results.len() * 8);
        let mut first_error = None;
        {
            let mut index = self.index();
            for (seq, result) in results {
                match result {
                    Ok(mine) => {
                        index.remove(seq);
                        gone.extend_from_slice(&seq.to_be_bytes());
                        deleted += u64::from(mine);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        self.tell_gone(gone).await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// Delete one sequence (its bytes are not overwritten: like sled's log, the file keeps
    /// them until the space is reused): `true` if this call deleted it, `false` if it was
    /// gone.
    async fn delete_one(&self, seq: u64) -> Result<bool, StoreError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(default)]
            success: bool,
            error: Option<ApiError>,
        }
        #[derive(serde::Deserialize)]
        struct ApiError {
            #[serde(default)]
            err_code: u64,
            #[serde(default)]
            description: String,
        }
        let answer: Answer = self
            .js
            .request(
                format!("STREAM.MSG.DELETE.{}", self.stream_name),
                &DeleteRequest {
                    seq,
                    no_erase: true,
                },
            )
            .await
            .map_err(|e| nats_error("deleting an envelope", e))?;
        match answer.error {
            None => Ok(answer.success),
            // 10037: no message found.
            Some(e) if e.err_code == 10037 => Ok(false),
            Some(e) => Err(StoreError::Nats(format!(
                "deleting an envelope: {} ({})",
                e.description, e.err_code
            ))),
        }
    }

    /// Delete `seqs` of `recipient`: the run of its oldest envelopes among them with one
    /// purge of its subject up to there (one replicated operation for a whole batch), the
    /// rest one by one.
    async fn delete_acked(
        &self,
        recipient: &Fingerprint,
        seqs: Vec<u64>,
    ) -> Result<u64, StoreError> {
        let Some(end) = self.index().acked_prefix(recipient, &seqs) else {
            return self.delete(seqs).await;
        };
        let purged = self
            .stream
            .purge()
            .filter(subject(&self.prefix, recipient))
            .sequence(end + 1)
            .await
            .map_err(|e| nats_error("deleting envelopes", e))?;
        let (done, rest): (Vec<u64>, Vec<u64>) = seqs.into_iter().partition(|&s| s <= end);
        if purged.purged > done.len() as u64 {
            // Everything below `end` was in the index (the tail had passed it): more means
            // the index had lost envelopes that the purge has now deleted unacknowledged.
            tracing::error!(
                purged = purged.purged,
                acknowledged = done.len(),
                "an ACK's purge deleted envelopes this front-end did not know of"
            );
        }
        let mut gone = Vec::with_capacity(done.len() * 8);
        {
            let mut index = self.index();
            for seq in done {
                index.remove(seq);
                gone.extend_from_slice(&seq.to_be_bytes());
            }
        }
        self.tell_gone(gone).await;
        Ok(purged.purged + self.delete(rest).await?)
    }

    /// Tell the other front-ends that these sequences (8 bytes each) are gone.
    async fn tell_gone(&self, gone: Vec<u8>) {
        // Through JetStream, so that a front-end that was disconnected a moment reads it
        // when it is back; its acknowledgement is not waited for.
        if !gone.is_empty()
            && let Err(e) = self
                .js
                .publish(format!("{}.gone", self.prefix), gone.into())
                .await
        {
            tracing::warn!(error = %e, "cannot tell the other front-ends of deletions");
        }
    }
}

#[derive(serde::Serialize)]
struct DeleteRequest {
    seq: u64,
    no_erase: bool,
}

impl QueueStore for JetStreamQueue {
    async fn store(&self, incoming: Incoming, quota: Quota) -> Result<Stored, StoreError> {
        let inner = &self.inner;
        if let Some(refusal) = inner.index().admit(&incoming, quota) {
            return Ok(refusal);
        }
        let len = incoming.envelope.len() as u64;
        let headers = headers(&incoming);
        let published = async {
            inner
                .js
                .publish_with_headers(
                    subject(&inner.prefix, &incoming.recipient),
                    headers,
                    incoming.envelope.into(),
                )
                .await
                .map_err(|e| publish_error(&e))?
                .await
                .map_err(|e| publish_error(&e))
        }
        .await;
        inner
            .index()
            .release(&incoming.recipient, &incoming.origin, len);
        let ack = published?;
        if ack.duplicate {
            return Ok(Stored::Duplicate);
        }
        let entry = Entry {
            recipient: incoming.recipient,
            id: incoming.id,
            at: incoming.now_ms,
            len,
            origin: incoming.origin,
        };
        let notice = entry.encode(ack.sequence);
        let inserted = inner.index().insert(ack.sequence, entry);
        if let Inserted::Copy(copy) = inserted {
            // Stored at the same moment through another front-end, past JetStream's
            // window: the lower sequence stays.
            inner.delete(vec![copy]).await?;
            if copy == ack.sequence {
                return Ok(Stored::Duplicate);
            }
        }
        let arrived = format!("{}.arrived.{}", inner.prefix, incoming.recipient);
        if let Err(e) = inner.client.publish(arrived, notice.to_vec().into()).await {
            tracing::warn!(error = %e, "cannot tell the other front-ends of an arrival");
        }
        Ok(Stored::New)
    }

    async fn pull(
        &self,
        recipient: &Fingerprint,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let inner = &self.inner;
        let (seqs, more) = inner.index().select(recipient, max_count, max_bytes);
        let expected = subject(&inner.prefix, recipient);
        let read: Vec<Result<Option<Vec<u8>>, StoreError>> =
            futures_util::stream::iter(seqs.iter().copied())
                .map(|seq| {
                    let expected = &expected;
                    async move {
                        match inner.stream.get_raw_message(seq).await {
                            Ok(message) if message.subject.as_str() == expected => {
                                Ok(Some(message.payload.to_vec()))
                            }
                            Ok(_) => Ok(None),
                            Err(e)
                                if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound =>
                            {
                                Ok(None)
                            }
                            Err(e) => Err(nats_error("reading an envelope", e)),
                        }
                    }
                })
                .buffered(CONCURRENT)
                .collect()
                .await;
        let mut out = Vec::with_capacity(read.len());
        let mut vanished = Vec::new();
        let mut found = Vec::new();
        for (seq, result) in seqs.into_iter().zip(read) {
            match result? {
                Some(bytes) => {
                    out.push(bytes);
                    found.push(seq);
                }
                None => vanished.push(seq),
            }
        }
        {
            let mut missing = lock(&inner.missing);
            if !missing.is_empty() {
                for seq in found {
                    missing.remove(&seq);
                }
            }
        }
        if !vanished.is_empty() {
            // Deleted by another front-end, its notice on the way: give it a moment.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let index = inner.index();
            vanished.retain(|&seq| index.contains(seq));
        }
        if !vanished.is_empty() {
            // Deleted by the stream's age limit, or a front-end's notice was lost; or a
            // stream leader just elected is still applying its log. Which one cannot be
            // told from here: an envelope is dropped from the index only once it has been
            // missing for MISSING_FOR; until then the PULL fails (and is retried).
            let now = std::time::Instant::now();
            let mut dropped = Vec::new();
            let mut waiting = false;
            {
                let mut missing = lock(&inner.missing);
                for seq in vanished {
                    let first = *missing.entry(seq).or_insert(now);
                    if now.duration_since(first) >= MISSING_FOR {
                        missing.remove(&seq);
                        dropped.push(seq);
                    } else {
                        waiting = true;
                    }
                }
            }
            if !dropped.is_empty() {
                tracing::warn!(
                    count = dropped.len(),
                    "queued envelopes were gone from the stream"
                );
                let mut index = inner.index();
                for seq in dropped {
                    index.remove(seq);
                }
            }
            if waiting {
                return Err(StoreError::Nats(
                    "an envelope cannot be read yet (the stream may be electing a leader); retry"
                        .to_owned(),
                ));
            }
        }
        Ok((out, more))
    }

    async fn ack(&self, recipient: Fingerprint, ids: Vec<MessageId>) -> Result<u64, StoreError> {
        let seqs = self.inner.index().find(&recipient, &ids);
        self.inner.delete_acked(&recipient, seqs).await
    }

    async fn expire(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let mut expired = 0;
        loop {
            let seqs = self.inner.index().expired(cutoff_ms, 4096);
            if seqs.is_empty() {
                return Ok(expired);
            }
            expired += self.inner.delete(seqs).await?;
        }
    }

    fn stats(&self) -> QueueStats {
        self.inner.index().stats()
    }
}

/// The origin in a message's `Sm-Origin` header.
fn parse_origin(text: &str) -> Option<Origin> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(Origin(out))
}
