//! The mailbox on its own: the real binary on ephemeral ports, spoken to over real QUIC with
//! the client nodes use (and raw frames where the client cannot misbehave enough). Each test
//! has its own data directory and its own mailbox process.
//!
//! These are the tests only a real process can answer: pushes over QUIC, retention on its
//! timer, bad datagrams, kill -9 and SIGTERM, load, certificate pins, the dashboard. The
//! protocol's rules (logins, queues out of reach, duplicates, batches, quotas, rate limits,
//! sizes, the allowlist) are tested in memory against the core: `mailbox/src/core/tests.rs`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crypto::rand::{Rng as _, RngExt as _, SeedableRng as _};
use crypto::{EnvelopeHeader, Fingerprint, Identity, MessageId};
use mailbox::client::{Client, ClientError};
use mailbox::protocol::{self, ErrorCode, Event, MAX_BATCH_COUNT, Request, Response, VERSIONS};
use tests::{
    Mailbox, RawConnection, eventually, garbage_datagrams, identities, seal_text, seal_texts,
};
use tokio::time::timeout;

/// Generous bound on anything that should be quick.
const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn fp(identity: &Identity) -> Fingerprint {
    identity.fingerprint()
}

/// The message id in an envelope's clear header.
#[track_caller]
fn id_of(envelope: &[u8]) -> MessageId {
    EnvelopeHeader::parse(envelope)
        .expect("an envelope header")
        .id
}

pub(crate) fn ids_of(envelopes: &[Vec<u8>]) -> Vec<MessageId> {
    envelopes.iter().map(|e| id_of(e)).collect()
}

/// The refusal a request met (code and message); panics with what happened instead.
#[track_caller]
fn refusal<T: Debug>(result: Result<T, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Assert the request was refused with `code`; returns the refusal's message.
#[track_caller]
fn assert_refused<T: Debug>(result: Result<T, ClientError>, code: ErrorCode) -> String {
    let (got, message) = refusal(result);
    assert_eq!(got, code, "refused with another code: {message}");
    message
}

/// Pull and acknowledge everything queued for `recipient`, oldest first.
pub(crate) async fn drain(client: &Client, recipient: Fingerprint) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut all = Vec::new();
    loop {
        let (batch, more) = client.pull(recipient, MAX_BATCH_COUNT).await?;
        let ids = ids_of(&batch);
        let deleted = client.ack(recipient, ids.clone()).await?;
        assert_eq!(
            deleted as usize,
            ids.len(),
            "every pulled envelope is acked"
        );
        all.extend(batch);
        if !more {
            return Ok(all);
        }
    }
}

/// Abort sender tasks (whose mailbox is gone) and wait until they are gone.
async fn stop(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Check that every delivered envelope is one of `sent`, unchanged, and came once; returns
/// how many times each id came (once).
fn delivered_once(
    delivered: &[Vec<u8>],
    sent: &HashMap<MessageId, Vec<u8>>,
) -> HashMap<MessageId, usize> {
    let mut copies: HashMap<MessageId, usize> = HashMap::new();
    for envelope in delivered {
        let id = id_of(envelope);
        *copies.entry(id).or_default() += 1;
        assert_eq!(
            sent.get(&id),
            Some(envelope),
            "a delivered envelope is one that was sent, unchanged"
        );
    }
    assert!(
        copies.values().all(|&n| n == 1),
        "an envelope was delivered twice"
    );
    copies
}

/// A SEND and a PULL on `client` (logged in as `from`) both succeed: the connection serves.
pub(crate) async fn assert_serves(
    client: &Client,
    from: &Arc<Identity>,
    to: &Arc<Identity>,
    what: &str,
) -> anyhow::Result<()> {
    let sealed = seal_text(from, to, what).await?;
    assert!(
        client
            .send(fp(from), sealed.bytes)
            .await
            .context(what.to_owned())?,
        "{what}: stored as new"
    );
    client
        .pull(fp(from), 1)
        .await
        .with_context(|| format!("{what}: pull"))?;
    Ok(())
}

#[tokio::test]
async fn an_arrival_is_pushed_to_a_connected_recipient() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(dir.path())?;
    let [alice, bob] = identities().await?;
    let receiver = mailbox.connect_as(&[&bob]).await?;
    let sender = mailbox.connect_as(&[&alice]).await?;
    let sealed = seal_text(&alice, &bob, "ping").await?;

    // Bob only waits: no pull.
    let (event, sent) = tokio::join!(
        timeout(Duration::from_secs(5), receiver.next_event()),
        sender.send(fp(&alice), sealed.bytes.clone()),
    );
    assert!(sent?);
    let event = event.context("no push within 5 s")??;
    assert_eq!(
        event,
        Event::Arrived {
            recipient: fp(&bob)
        }
    );
    assert_eq!(
        receiver.pull(fp(&bob), 10).await?,
        (vec![sealed.bytes], false)
    );
    Ok(())
}

/// The answer to bytes that are no valid frame: an error response of one of `codes`.
#[track_caller]
fn assert_error_among(answer: Result<Response, ClientError>, codes: &[ErrorCode], what: &str) {
    match answer {
        Ok(Response::Error { code, message }) => {
            assert!(codes.contains(&code), "{what}: {code:?} ({message})");
        }
        other => panic!("{what}: answered {other:?}"),
    }
}

#[tokio::test]
async fn bad_frames_and_garbage_datagrams_do_not_disturb_the_server() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(dir.path())?;
    let [alice, bob] = identities().await?;
    let client = mailbox.connect_as(&[&alice]).await?;
    let mut rng = crypto::rand::rngs::StdRng::seed_from_u64(7);

    // (a) A length prefix promising more than follows.
    let hello = protocol::encode(&Request::Hello { versions: vec![1] });
    let mut short = hello.clone();
    short[3] = 100;
    assert_error_among(
        client.request_raw(&[&short]).await,
        &[ErrorCode::Malformed],
        "truncated frame",
    );
    assert_error_among(
        client.request_raw(&[]).await,
        &[ErrorCode::Malformed],
        "empty stream",
    );
    assert_error_among(
        client.request_raw(&[&[0, 0]]).await,
        &[ErrorCode::Malformed],
        "half a length prefix",
    );
    let doubled = [hello.as_slice(), &hello].concat();
    assert_error_among(
        client.request_raw(&[&doubled]).await,
        &[ErrorCode::Malformed],
        "two frames on one stream",
    );
    assert_serves(&client, &alice, &bob, "after truncated frames").await?;

    // (b) Random bytes, and random payloads behind a correct length prefix.
    for round in 0..20 {
        let mut junk = vec![0u8; rng.random_range(1..2000)];
        rng.fill_bytes(&mut junk);
        assert_error_among(
            client.request_raw(&[&junk]).await,
            &[
                ErrorCode::Malformed,
                ErrorCode::TooLarge,
                ErrorCode::UnknownFrame,
            ],
            &format!("random bytes, round {round}"),
        );
        let mut payload = vec![0u8; rng.random_range(1..500)];
        rng.fill_bytes(&mut payload);
        let framed = [&(payload.len() as u32).to_be_bytes()[..], &payload].concat();
        let answer = client.request_raw(&[&framed]).await;
        assert!(
            answer.is_ok(),
            "a framed random payload gets an answer (round {round}): {answer:?}"
        );
    }
    assert_serves(&client, &alice, &bob, "after random bytes").await?;

    // (c) A length prefix beyond the largest frame.
    assert_error_among(
        client.request_raw(&[&[0xff, 0xff, 0xff, 0xff]]).await,
        &[ErrorCode::TooLarge],
        "frame over MAX_FRAME",
    );
    assert_serves(&client, &alice, &bob, "after an oversized frame").await?;

    // (d) A valid SEND written in two pieces is one frame.
    let sealed = seal_text(&alice, &bob, "in two writes").await?;
    let frame = protocol::encode(&Request::Send {
        sender: fp(&alice),
        recipient: fp(&bob),
        id: sealed.header.id,
        envelope: sealed.bytes.clone(),
    });
    let (head, tail) = frame.split_at(frame.len() / 3);
    match client.request_raw(&[head, tail]).await? {
        Response::Stored { id, duplicate } => {
            assert_eq!(id, sealed.header.id);
            assert!(!duplicate);
        }
        other => panic!("a SEND in two writes was answered {other:?}"),
    }

    // (e) A SEND whose fields do not match the envelope's clear header.
    let misaddressed = seal_text(&alice, &bob, "misaddressed").await?;
    let frame = protocol::encode(&Request::Send {
        sender: fp(&alice),
        recipient: fp(&alice),
        id: misaddressed.header.id,
        envelope: misaddressed.bytes.clone(),
    });
    assert_error_among(
        client.request_raw(&[&frame]).await,
        &[ErrorCode::BadEnvelope],
        "SEND to another recipient than the envelope's",
    );
    let truncated = protocol::encode(&Request::Send {
        sender: fp(&alice),
        recipient: fp(&bob),
        id: misaddressed.header.id,
        envelope: misaddressed.bytes[..60].to_vec(),
    });
    assert_error_among(
        client.request_raw(&[&truncated]).await,
        &[ErrorCode::BadEnvelope],
        "SEND of a truncated envelope",
    );

    // Garbage UDP datagrams at the QUIC port, some shaped like long-header QUIC packets.
    garbage_datagrams(mailbox.socket_addr()?, 7, 100).await?;
    assert_serves(&client, &alice, &bob, "after garbage datagrams").await?;
    let fresh = mailbox.connect_as(&[&bob]).await?;
    let delivered = drain(&fresh, fp(&bob)).await?;
    assert!(
        ids_of(&delivered).contains(&sealed.header.id),
        "the SEND written in two pieces was stored"
    );
    assert!(
        !ids_of(&delivered).contains(&misaddressed.header.id),
        "the refused SENDs stored nothing"
    );
    Ok(())
}

#[tokio::test]
async fn retention_deletes_old_envelopes_and_counts_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start_with(
        dir.path(),
        &[
            ("MAILBOX_RETENTION", "2s"),
            ("MAILBOX_RETENTION_CHECK", "200ms"),
        ],
        &[],
    )?;
    let [alice, bob] = identities().await?;
    let sealed = seal_text(&alice, &bob, "short-lived").await?;
    let sender = mailbox.connect_as(&[&alice]).await?;
    let receiver = mailbox.connect_as(&[&bob]).await?;
    let sent_at = Instant::now();
    assert!(sender.send(fp(&alice), sealed.bytes.clone()).await?);
    assert_eq!(
        receiver.pull(fp(&bob), 10).await?,
        (vec![sealed.bytes.clone()], false),
        "queued at first"
    );

    eventually(WAIT, "the envelope to expire", || async {
        let (queued, _) = receiver.pull(fp(&bob), 10).await?;
        Ok(queued.is_empty().then_some(()))
    })
    .await?;
    let gone_after = sent_at.elapsed();
    assert!(
        gone_after >= Duration::from_millis(1900),
        "expired after {gone_after:?}, before the 2 s retention period"
    );
    eventually(WAIT, "the expiry to be counted", || async {
        Ok((mailbox.metric("mailbox_envelopes_expired_total").await? == Some(1.0)).then_some(()))
    })
    .await?;
    assert_eq!(mailbox.metric("mailbox_queued_envelopes").await?, Some(0.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_kill_9_during_concurrent_sending() -> anyhow::Result<()> {
    const TASKS: usize = 8;
    const PER_TASK: usize = 25;
    const TOTAL: usize = TASKS * PER_TASK;
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start_with(dir.path(), &[("MAILBOX_RATE_BURST", "100000")], &[])?;
    let [alice, bob] = identities().await?;
    let texts = (0..TOTAL).map(|i| format!("durable {i}")).collect();
    let sealed = seal_texts(&alice, &bob, texts).await?;
    let sent: HashMap<MessageId, Vec<u8>> = sealed
        .iter()
        .map(|s| (s.header.id, s.bytes.clone()))
        .collect();
    // Connect and log in first, so that the window before the kill is all SENDs.
    let mut clients = Vec::new();
    for _ in 0..TASKS {
        clients.push(mailbox.connect_as(&[&alice]).await?);
    }

    let acknowledged = Arc::new(Mutex::new(Vec::<MessageId>::new()));
    let killing = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for (client, chunk) in clients.into_iter().zip(sealed.chunks(PER_TASK)) {
        let envelopes: Vec<Vec<u8>> = chunk.iter().map(|s| s.bytes.clone()).collect();
        let (acknowledged, killing, failures) =
            (acknowledged.clone(), killing.clone(), failures.clone());
        let sender = fp(&alice);
        tasks.push(tokio::spawn(async move {
            for envelope in envelopes {
                let id = id_of(&envelope);
                match client.send(sender, envelope).await {
                    Ok(true) => acknowledged.lock().unwrap().push(id),
                    Ok(false) => failures.lock().unwrap().push("a duplicate".into()),
                    Err(e) => {
                        if !killing.load(Ordering::SeqCst) {
                            failures.lock().unwrap().push(e.to_string());
                        }
                        return;
                    }
                }
            }
        }));
    }

    let mut mailbox = mailbox;
    let deadline = Instant::now() + WAIT;
    while acknowledged.lock().unwrap().len() < TOTAL / 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    killing.store(true, Ordering::SeqCst);
    mailbox.proc.kill();
    let at_kill = acknowledged.lock().unwrap().len();
    assert!(
        at_kill >= TOTAL / 2,
        "only {at_kill} SENDs answered in {WAIT:?}"
    );
    // Senders still waiting wait for a mailbox that is gone: stop them.
    stop(tasks).await;
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "SENDs failed before the kill: {failures:?}"
    );
    let acknowledged = acknowledged.lock().unwrap().clone();
    println!(
        "{at_kill} SENDs answered when the kill started, {} in all, of {TOTAL}",
        acknowledged.len()
    );

    let again = mailbox.restart()?;
    assert_eq!(again.fingerprint, mailbox.fingerprint, "same certificate");
    let receiver = again.connect_as(&[&bob]).await?;
    let delivered = drain(&receiver, fp(&bob)).await?;
    println!("{} delivered after the restart", delivered.len());
    let mut copies = delivered_once(&delivered, &sent);
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !copies.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged SENDs were lost by kill -9",
        missing.len(),
        acknowledged.len()
    );

    // The sender's outbox retries what was not answered, and bob gets it. An answered SEND
    // is never retried, so it arrives once in all. An unanswered one may have been stored
    // before the kill and delivered above: the mailbox forgot it at the ACK, so it comes
    // again, and the recipient's node knows its id (it arrives at most twice).
    let sender = again.connect_as(&[&alice]).await?;
    for s in sealed
        .iter()
        .filter(|s| !acknowledged.contains(&s.header.id))
    {
        sender.send(fp(&alice), s.bytes.clone()).await?;
    }
    let rest = drain(&receiver, fp(&bob)).await?;
    for envelope in &rest {
        assert_eq!(
            sent.get(&id_of(envelope)),
            Some(envelope),
            "one that was sent"
        );
        *copies.entry(id_of(envelope)).or_default() += 1;
    }
    assert_eq!(copies.len(), TOTAL, "every envelope delivered");
    for (id, n) in &copies {
        let most = if acknowledged.contains(id) { 1 } else { 2 };
        assert!(*n <= most, "delivered {n} times, answered: {}", most == 1);
    }
    Ok(())
}

/// 64 connections of mixed SEND / PULL / ACK traffic for 10 seconds (`cargo xtask soak`
/// runs 5 minutes): no request fails, every answered SEND arrives once, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_from_64_connections_loses_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start_with(
        dir.path(),
        &[
            ("MAILBOX_RATE_PER_SECOND", "1000000"),
            ("MAILBOX_RATE_BURST", "1000000"),
            ("MAILBOX_ADDRESS_RATE_PER_SECOND", "1000000"),
            ("MAILBOX_ADDRESS_RATE_BURST", "1000000"),
            ("MAILBOX_QUOTA_ENVELOPES", "10000000"),
            ("MAILBOX_QUOTA_BYTES", "100000000000"),
        ],
        &[],
    )?;
    let ids: [Arc<Identity>; 9] = identities().await?;
    let report = tests::soak::soak(
        &mailbox,
        &ids,
        Duration::from_secs(10),
        Duration::from_secs(2),
    )
    .await?;
    println!("{report:?}");
    assert!(report.sent > 1000, "hardly any traffic: {report:?}");
    assert_eq!(report.errors, 0, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");
    assert_eq!(report.received, report.sent, "{report:?}");
    Ok(())
}

/// SIGKILL at random moments under concurrent SEND load, `SM_KILLS` times (3 in the test
/// suite; `cargo xtask crash` runs 20), restarting on the same data each time: afterwards
/// every SEND that was answered is delivered exactly once, unchanged, and nothing that was
/// not sent appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kills_under_load_lose_no_answered_send() -> anyhow::Result<()> {
    const TASKS: usize = 8;
    const PER_TASK: usize = 40;
    let kills: usize = std::env::var("SM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir()?;
    let [alice, bob] = identities().await?;
    let texts = (0..kills * TASKS * PER_TASK)
        .map(|i| format!("kill test {i}"))
        .collect();
    let sealed = seal_texts(&alice, &bob, texts).await?;
    let sent: HashMap<MessageId, Vec<u8>> = sealed
        .iter()
        .map(|s| (s.header.id, s.bytes.clone()))
        .collect();
    let mut rng = crypto::rand::rngs::StdRng::seed_from_u64(2026);
    let mut answered: Vec<MessageId> = Vec::new();
    let mut mailbox = Mailbox::start_with(dir.path(), &[("MAILBOX_RATE_BURST", "100000")], &[])?;
    for (round, batch) in sealed.chunks(TASKS * PER_TASK).enumerate() {
        if round > 0 {
            mailbox = mailbox.restart()?;
        }
        let acknowledged = Arc::new(Mutex::new(Vec::<MessageId>::new()));
        let mut tasks = Vec::new();
        for chunk in batch.chunks(PER_TASK) {
            let client = mailbox.connect_as(&[&alice]).await?;
            let envelopes: Vec<Vec<u8>> = chunk.iter().map(|s| s.bytes.clone()).collect();
            let acknowledged = acknowledged.clone();
            let sender = fp(&alice);
            tasks.push(tokio::spawn(async move {
                for envelope in envelopes {
                    let id = id_of(&envelope);
                    match client.send(sender, envelope).await {
                        Ok(_) => acknowledged.lock().unwrap().push(id),
                        Err(_) => return,
                    }
                }
            }));
        }
        // A random moment: before, during or after the bulk of this round's SENDs.
        tokio::time::sleep(Duration::from_millis(rng.random_range(2..60))).await;
        mailbox.proc.kill();
        stop(tasks).await;
        let acknowledged = acknowledged.lock().unwrap().clone();
        println!(
            "kill {}: {} of {} SENDs answered before it",
            round + 1,
            acknowledged.len(),
            batch.len()
        );
        answered.extend(acknowledged);
    }

    let again = mailbox.restart()?;
    let receiver = again.connect_as(&[&bob]).await?;
    let delivered = drain(&receiver, fp(&bob)).await?;
    let copies = delivered_once(&delivered, &sent);
    let lost = answered
        .iter()
        .filter(|id| !copies.contains_key(*id))
        .count();
    println!(
        "{kills} kills: {} SENDs answered, {} delivered (answered or not), {lost} lost",
        answered.len(),
        delivered.len()
    );
    assert_eq!(lost, 0, "answered SENDs were lost");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_keeps_the_queue() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut mailbox = Mailbox::start(dir.path())?;
    let [alice, bob] = identities().await?;
    let sealed = seal_texts(&alice, &bob, vec!["kept 1".into(), "kept 2".into()]).await?;
    let sender = mailbox.connect_as(&[&alice]).await?;
    for s in &sealed {
        assert!(sender.send(fp(&alice), s.bytes.clone()).await?);
    }
    // Bob is connected when the mailbox stops.
    let receiver = mailbox.connect_as(&[&bob]).await?;

    let status = mailbox.proc.terminate(Duration::from_secs(10))?;
    assert_eq!(status.code(), Some(0), "exit status {status}");
    let event = timeout(WAIT, receiver.next_event())
        .await
        .context("the connection outlived the mailbox")?;
    assert!(
        matches!(event, Err(ClientError::Connection(_))),
        "{event:?}"
    );

    let again = mailbox.restart()?;
    assert_eq!(again.fingerprint, mailbox.fingerprint);
    // One more after the restart: queued behind the older ones.
    let later = seal_text(&alice, &bob, "after the restart").await?;
    let sender = again.connect_as(&[&alice]).await?;
    assert!(sender.send(fp(&alice), later.bytes.clone()).await?);
    let receiver = again.connect_as(&[&bob]).await?;
    let (queued, more) = receiver.pull(fp(&bob), 10).await?;
    assert!(!more);
    let mut expected: Vec<Vec<u8>> = sealed.iter().map(|s| s.bytes.clone()).collect();
    expected.push(later.bytes);
    assert_eq!(queued, expected, "the stored envelopes, oldest first");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_not_held_up_by_a_client_that_never_finishes_its_request() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let mut mailbox = Mailbox::start(dir.path())?;
    let raw = RawConnection::connect(&mailbox).await?;
    // A Hello whose length prefix promises 50 bytes, and then nothing more.
    let _stalled = raw.start_request(&[0, 0, 0, 50, 0]).await?;
    // The mailbox has the stream once another request on the connection is answered.
    raw.request(&Request::Hello {
        versions: VERSIONS.to_vec(),
    })
    .await?;

    let started = Instant::now();
    let status = mailbox.proc.terminate(Duration::from_secs(20))?;
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?}: nothing was being answered, yet shutdown waited"
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_certificate_pin_refuses_to_connect() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(dir.path())?;
    let right = mailbox.address()?;
    let actual = right.fingerprint.context("pinned")?;
    let mut wrong = right.clone();
    let mut other = actual;
    other[0] ^= 0x01;
    wrong.fingerprint = Some(other);

    let refused = Client::connect(&wrong).await;
    let text = refused.as_ref().err().map(ToString::to_string);
    match refused {
        Err(ClientError::PinMismatch { expected, actual }) => {
            assert_eq!(Some(expected), wrong.fingerprint_hex());
            assert_eq!(actual, mailbox.fingerprint, "what the mailbox presented");
            let text = text.unwrap_or_default();
            assert!(text.contains("does not match"), "{text}");
            assert!(text.contains(&mailbox.fingerprint), "{text}");
        }
        other => panic!("connecting with a wrong pin gave {other:?}"),
    }

    let client = Client::connect(&right).await?;
    assert_eq!(client.server_fingerprint, actual);
    // Without a pin the client learns the certificate on first use.
    let learning = Client::connect(&right.without_fingerprint()).await?;
    assert_eq!(learning.server_fingerprint, actual);
    Ok(())
}

#[tokio::test]
async fn the_dashboard_shows_traffic_health_and_metrics() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(dir.path())?;
    let [alice, bob] = identities().await?;
    let sealed = seal_texts(&alice, &bob, vec!["a".into(), "b".into(), "c".into()]).await?;
    let sender = mailbox.connect_as(&[&alice]).await?;
    for s in &sealed {
        assert!(sender.send(fp(&alice), s.bytes.clone()).await?);
    }
    let receiver = mailbox.connect_as(&[&bob]).await?;
    assert_eq!(receiver.ack(fp(&bob), vec![sealed[0].header.id]).await?, 1);
    // Two refusals: bob reaching for alice's queue.
    for _ in 0..2 {
        assert_refused(receiver.pull(fp(&alice), 1).await, ErrorCode::NotLoggedIn);
    }

    let page = mailbox.dashboard_get("/").await?;
    assert_eq!(page.status(), 200);
    let content_type = page
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    for header in ["content-security-policy", "x-content-type-options"] {
        assert!(page.headers().contains_key(header), "{header} is set");
    }
    let html = page.text().await?;
    for (label, value) in [
        ("Stored total", "3"),
        ("Delivered total", "1"),
        ("Queued envelopes", "2"),
        ("Listen address", mailbox.addr.as_str()),
    ] {
        assert!(
            html.contains(&format!("<dt>{label}</dt><dd>{value}</dd>")),
            "{label}: {value} in {html}"
        );
    }
    assert!(html.contains(">Refused</h2>"), "{html}");
    assert!(
        html.contains(r#"<code>not_logged_in</code></th><td class="num">2</td>"#),
        "{html}"
    );

    let health = mailbox.dashboard_get("/healthz").await?;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await?.trim(), "ok");

    assert_eq!(
        mailbox.metric("mailbox_envelopes_stored_total").await?,
        Some(3.0)
    );
    assert_eq!(
        mailbox.metric("mailbox_envelopes_delivered_total").await?,
        Some(1.0)
    );
    assert_eq!(mailbox.metric("mailbox_queued_envelopes").await?, Some(2.0));
    assert_eq!(
        mailbox
            .metric(r#"mailbox_requests_refused_total{reason="not_logged_in"}"#)
            .await?,
        Some(2.0)
    );
    Ok(())
}

#[tokio::test]
async fn the_dashboard_refuses_a_foreign_host() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start(dir.path())?;
    let http = reqwest::Client::new();
    let own = http
        .get(format!("{}/metrics", mailbox.dashboard))
        .send()
        .await?;
    anyhow::ensure!(own.status() == 200, "own Host: {}", own.status());
    // A page on another name that resolves to 127.0.0.1 (DNS rebinding) cannot read it.
    let foreign = http
        .get(format!("{}/metrics", mailbox.dashboard))
        .header("Host", "rebind.example")
        .send()
        .await?;
    anyhow::ensure!(
        foreign.status() == 403,
        "foreign Host: {}",
        foreign.status()
    );
    Ok(())
}
