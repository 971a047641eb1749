//! Load and soak: 64 connections of mixed SEND / PULL / ACK traffic against a running
//! mailbox for a while, then a full drain. Used by `sm-bench soak` (5 minutes, `cargo xtask
//! soak`) and by a 10-second test in `cargo xtask test`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use crypto::{Draft, Identity, MessageKind};
use mailbox::client::Client;
use mailbox::protocol::MAX_BATCH_COUNT;

use crate::{Mailbox, login};

/// Connections: this many receivers (one per recipient identity), the rest send.
const RECEIVERS: usize = 8;
/// All connections.
const CONNECTIONS: usize = 64;

/// What a soak run saw.
#[derive(Debug, Default)]
pub struct SoakReport {
    /// SENDs answered as stored (new).
    pub sent: u64,
    /// Envelopes received by the recipients, counting each id once.
    pub received: u64,
    /// Ids received more than once.
    pub duplicates: u64,
    /// Answered SENDs never received.
    pub lost: u64,
    /// Requests that failed.
    pub errors: u64,
    /// The mailbox's RSS (KiB) sampled every `sample_every`, from the start.
    pub rss_kib: Vec<u64>,
    /// SENDs answered as stored so far, at the same samples.
    pub sent_at: Vec<u64>,
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// A sealed envelope of about `len` bytes from `from` to `to`. Copies with other message ids
/// (bytes 33..49 of the clear header) are as good as new to a mailbox, which routes and
/// deduplicates by the header and cannot open envelopes.
pub fn template(from: &Identity, to: &Identity, len: usize) -> anyhow::Result<Vec<u8>> {
    let draft = |body: Vec<u8>| Draft {
        kind: MessageKind::Text,
        seq: 1,
        prev: None,
        sent_at: SystemTime::now(),
        body,
    };
    let overhead = from.seal(to.public_key(), &draft(Vec::new()))?.bytes.len();
    Ok(from
        .seal(
            to.public_key(),
            &draft(vec![b'x'; len.saturating_sub(overhead)]),
        )?
        .bytes)
}

/// Run mixed traffic against `mailbox` for `duration` (sampling its RSS every
/// `sample_every`), then stop the senders and drain every queue.
pub async fn soak(
    mailbox: &Mailbox,
    identities: &[Arc<Identity>],
    duration: Duration,
    sample_every: Duration,
) -> anyhow::Result<SoakReport> {
    anyhow::ensure!(
        identities.len() > RECEIVERS,
        "need a sender and the receivers"
    );
    let sender = identities[0].clone();
    let recipients = &identities[1..=RECEIVERS];
    let templates: Vec<Vec<u8>> = recipients
        .iter()
        .map(|r| template(&sender, r, 1024))
        .collect::<anyhow::Result<_>>()?;
    let templates = Arc::new(templates);
    let sent_ids = Arc::new(Mutex::new(HashSet::<crypto::MessageId>::new()));
    let received = Arc::new(Mutex::new(HashSet::<crypto::MessageId>::new()));
    let duplicates = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let run = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);

    let mut receivers = Vec::new();
    for r in recipients {
        let client = mailbox.connect_as(&[r]).await?;
        receivers.push((client, r.fingerprint()));
    }
    let mut senders = Vec::new();
    for _ in 0..CONNECTIONS - RECEIVERS {
        let client = mailbox.connect().await?;
        login(&client, &sender).await?;
        senders.push(client);
    }
    let fp = sender.fingerprint();

    let mut tasks = Vec::new();
    for (i, client) in senders.into_iter().enumerate() {
        let (templates, sent_ids, errors, stop, counter, answered) = (
            templates.clone(),
            sent_ids.clone(),
            errors.clone(),
            stop.clone(),
            counter.clone(),
            answered.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut k = i;
            while !stop.load(Ordering::Relaxed) {
                k = k.wrapping_add(1);
                let mut envelope = templates[k % templates.len()].clone();
                let n = counter.fetch_add(1, Ordering::Relaxed);
                envelope[33..41].copy_from_slice(&run.to_be_bytes());
                envelope[41..49].copy_from_slice(&n.to_be_bytes());
                let mut id = crypto::MessageId([0u8; 16]);
                id.0.copy_from_slice(&envelope[33..49]);
                match client.send(fp, envelope).await {
                    Ok(true) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        sent_ids
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(id);
                    }
                    Ok(false) => {}
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        // A store that is failing over: not a tight loop of refusals.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            client.close().await;
        }));
    }
    let (seen, twice, failed) = (received.clone(), duplicates.clone(), errors.clone());
    let receive = move |client: Arc<Client>, me: crypto::Fingerprint| {
        let (received, duplicates, errors) = (seen.clone(), twice.clone(), failed.clone());
        async move {
            let (batch, more) = match client.pull(me, MAX_BATCH_COUNT).await {
                Ok(b) => b,
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return Ok::<bool, anyhow::Error>(true);
                }
            };
            let mut ids = Vec::with_capacity(batch.len());
            for envelope in &batch {
                let id = crypto::EnvelopeHeader::parse(envelope)?.id;
                if !received
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id)
                {
                    duplicates.fetch_add(1, Ordering::Relaxed);
                }
                ids.push(id);
            }
            if !ids.is_empty() && client.ack(me, ids).await.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(more || !batch.is_empty())
        }
    };
    let receivers: Vec<(Arc<Client>, crypto::Fingerprint)> = receivers
        .into_iter()
        .map(|(c, me)| (Arc::new(c), me))
        .collect();
    for (client, me) in receivers.clone() {
        let (stop, receive) = (stop.clone(), receive.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match receive(client.clone(), me).await {
                    Ok(true) => {}
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }

    let pid = mailbox.proc.pid();
    let started = Instant::now();
    let mut rss = vec![rss_kib(pid)?];
    let mut sent_at = vec![answered.load(Ordering::Relaxed)];
    while started.elapsed() < duration {
        let left = duration.saturating_sub(started.elapsed());
        tokio::time::sleep(sample_every.min(left)).await;
        rss.push(rss_kib(pid)?);
        sent_at.push(answered.load(Ordering::Relaxed));
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.context("a soak task failed")?;
    }
    // Drain what is left (for at most two minutes: what is not drained by then counts as
    // lost).
    let draining = Instant::now();
    for (client, me) in &receivers {
        while draining.elapsed() < Duration::from_secs(120) && receive(client.clone(), *me).await? {
        }
    }
    let sent_ids = sent_ids.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let received = received.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(SoakReport {
        sent: sent_ids.len() as u64,
        received: received.len() as u64,
        duplicates: duplicates.load(Ordering::Relaxed),
        lost: sent_ids.difference(&received).count() as u64,
        errors: errors.load(Ordering::Relaxed),
        rss_kib: rss,
        sent_at,
    })
}
