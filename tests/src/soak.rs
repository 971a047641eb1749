//! Load and soak: 64 connections of mixed SEND / PULL / ACK traffic against a running
//! mailbox for a while, then a full drain. Used by `sm-bench soak` (5 minutes, `cargo xtask
//! soak`) and by a 10-second test in `cargo xtask test`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use config::MailboxAddress;
use crypto::{Draft, Identity, MessageKind};
use mailbox::client::{Client, ClientError};
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

/// Where a soak sends: the addresses its connections use (connection `i` uses
/// `addresses[i % len]`, each of which may list several front-ends to fail over between),
/// and the process whose RSS it samples, if one.
#[derive(Debug, Clone)]
pub struct Target {
    /// The addresses, pinned.
    pub addresses: Vec<MailboxAddress>,
    /// The mailbox process to sample, if there is one that lives through the run.
    pub pid: Option<u32>,
}

impl Target {
    /// One mailbox, its RSS sampled.
    pub fn of(mailbox: &Mailbox) -> anyhow::Result<Self> {
        Ok(Self {
            addresses: vec![mailbox.address()?],
            pid: Some(mailbox.proc.pid()),
        })
    }
}

/// Run mixed traffic against `mailbox` for `duration` (sampling its RSS every
/// `sample_every`), then stop the senders and drain every queue.
pub async fn soak(
    mailbox: &Mailbox,
    identities: &[Arc<Identity>],
    duration: Duration,
    sample_every: Duration,
) -> anyhow::Result<SoakReport> {
    soak_at(&Target::of(mailbox)?, identities, duration, sample_every).await
}

/// One connection of a soak, logged in as one identity, made again when it is lost (the
/// mailbox was killed, or failed over).
struct Conn {
    address: MailboxAddress,
    identity: Arc<Identity>,
    client: Option<Arc<Client>>,
}

impl Conn {
    async fn new(address: MailboxAddress, identity: Arc<Identity>) -> anyhow::Result<Self> {
        let mut conn = Self {
            address,
            identity,
            client: None,
        };
        conn.client().await?;
        Ok(conn)
    }

    /// The connection, made (and logged in) if there is none.
    async fn client(&mut self) -> anyhow::Result<Arc<Client>> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = Client::connect(&self.address).await?;
        login(&client, &self.identity).await?;
        let client = Arc::new(client);
        self.client = Some(client.clone());
        Ok(client)
    }

    /// A request on it failed: a refusal leaves the connection as it is, anything else
    /// (timeouts, a closed connection) makes the next request connect anew.
    fn failed(&mut self, e: &ClientError) {
        if !matches!(e, ClientError::Refused { .. }) {
            self.client = None;
        }
    }

    async fn close(self) {
        if let Some(client) = self.client.and_then(|c| Arc::try_unwrap(c).ok()) {
            client.close().await;
        }
    }
}

/// What the receivers share.
#[derive(Default)]
struct Tally {
    received: Mutex<HashSet<crypto::MessageId>>,
    duplicates: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// One PULL and the ACK of what it brought: whether there may be more, or `None` if the
/// PULL failed.
async fn receive(conn: &mut Conn, tally: &Tally) -> anyhow::Result<Option<bool>> {
    let me = conn.identity.fingerprint();
    let client = match conn.client().await {
        Ok(c) => c,
        Err(_) => {
            tally.error();
            return Ok(None);
        }
    };
    let (batch, more) = match client.pull(me, MAX_BATCH_COUNT).await {
        Ok(b) => b,
        Err(e) => {
            conn.failed(&e);
            tally.error();
            return Ok(None);
        }
    };
    let mut ids = Vec::with_capacity(batch.len());
    for envelope in &batch {
        let id = crypto::EnvelopeHeader::parse(envelope)?.id;
        if !tally
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id)
        {
            tally.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        ids.push(id);
    }
    if !ids.is_empty()
        && let Err(e) = client.ack(me, ids).await
    {
        conn.failed(&e);
        tally.error();
    }
    Ok(Some(more || !batch.is_empty()))
}

/// [`soak`] against a [`Target`]: connections that are lost are made again (through the
/// address's other front-ends while one is down), so front-ends may be killed meanwhile.
pub async fn soak_at(
    target: &Target,
    identities: &[Arc<Identity>],
    duration: Duration,
    sample_every: Duration,
) -> anyhow::Result<SoakReport> {
    anyhow::ensure!(
        identities.len() > RECEIVERS,
        "need a sender and the receivers"
    );
    anyhow::ensure!(!target.addresses.is_empty(), "no address to soak");
    let address = |i: usize| target.addresses[i % target.addresses.len()].clone();
    let sender = identities[0].clone();
    let recipients = &identities[1..=RECEIVERS];
    let templates: Vec<Vec<u8>> = recipients
        .iter()
        .map(|r| template(&sender, r, 1024))
        .collect::<anyhow::Result<_>>()?;
    let templates = Arc::new(templates);
    let sent_ids = Arc::new(Mutex::new(HashSet::<crypto::MessageId>::new()));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let run = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);

    let mut receivers = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        receivers.push(Conn::new(address(i), r.clone()).await?);
    }
    let mut senders = Vec::new();
    for i in 0..CONNECTIONS - RECEIVERS {
        senders.push(Conn::new(address(i), sender.clone()).await?);
    }
    let fp = sender.fingerprint();

    let mut tasks = Vec::new();
    for (i, mut conn) in senders.into_iter().enumerate() {
        let (templates, sent_ids, tally, stop, counter, answered) = (
            templates.clone(),
            sent_ids.clone(),
            tally.clone(),
            stop.clone(),
            counter.clone(),
            answered.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut k = i;
            while !stop.load(Ordering::Relaxed) {
                let Ok(client) = conn.client().await else {
                    tally.error();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
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
                    Err(e) => {
                        conn.failed(&e);
                        tally.error();
                        // A store that is failing over: not a tight loop of refusals.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            conn.close().await;
            Ok::<_, anyhow::Error>(None)
        }));
    }
    for mut conn in receivers {
        let (stop, tally) = (stop.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if receive(&mut conn, &tally).await? != Some(true) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Ok(Some(conn))
        }));
    }

    let started = Instant::now();
    let rss = |pid: Option<u32>| pid.map(rss_kib).transpose();
    let mut rss_samples: Vec<u64> = rss(target.pid)?.into_iter().collect();
    let mut sent_at = vec![answered.load(Ordering::Relaxed)];
    while started.elapsed() < duration {
        let left = duration.saturating_sub(started.elapsed());
        tokio::time::sleep(sample_every.min(left)).await;
        rss_samples.extend(rss(target.pid)?);
        sent_at.push(answered.load(Ordering::Relaxed));
    }
    stop.store(true, Ordering::Relaxed);
    let mut receivers = Vec::new();
    for task in tasks {
        receivers.extend(task.await.context("a soak task failed")??);
    }
    // Drain what is left (for at most two minutes: what is not drained by then counts as
    // lost).
    let draining = Instant::now();
    for conn in &mut receivers {
        // Done after two empty answers 200 ms apart (a front-end learns of what others
        // stored within milliseconds); failures are retried.
        let mut empty = 0;
        while empty < 2 && draining.elapsed() < Duration::from_secs(120) {
            match receive(conn, &tally).await? {
                Some(true) => empty = 0,
                Some(false) => {
                    empty += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let sent_ids = sent_ids.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let received = tally
        .received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(SoakReport {
        sent: sent_ids.len() as u64,
        received: received.len() as u64,
        duplicates: tally.duplicates.load(Ordering::Relaxed),
        lost: sent_ids.difference(&received).count() as u64,
        errors: tally.errors.load(Ordering::Relaxed),
        rss_kib: rss_samples,
        sent_at,
    })
}
