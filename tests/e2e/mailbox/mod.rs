//! The mailbox on its own: the real binary on ephemeral ports, spoken to over real QUIC with
//! the client nodes use (and raw frames where the client cannot misbehave enough). Each test
//! has its own data directory and its own mailbox process.
//!
//! These are the tests only a real process can answer: pushes over QUIC, retention on its
//! timer, bad datagrams, kill -9 and SIGTERM, load, certificate pins, the dashboard. The
//! protocol's rules (logins, queues out of reach, duplicates, batches, quotas, rate limits,
//! sizes, the allowlist) are tested in memory against the core: `mailbox/src/core/tests.rs`.

mod cluster;
mod dashboard;
mod durability;
mod keys;

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

/// Limits out of the way of a load test.
const UNLIMITED: &[(&str, &str)] = &[
    ("MAILBOX_RATE_PER_SECOND", "1000000"),
    ("MAILBOX_RATE_BURST", "1000000"),
    ("MAILBOX_ADDRESS_RATE_PER_SECOND", "1000000"),
    ("MAILBOX_ADDRESS_RATE_BURST", "1000000"),
    ("MAILBOX_MAX_LOGINS_PER_IDENTITY", "1000"),
    ("MAILBOX_QUOTA_ENVELOPES", "10000000"),
    ("MAILBOX_QUOTA_BYTES", "100000000000"),
];

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

/// The QUIC driver asks the core whether a stream may be read before it reads it: an address
/// over its request rate costs the mailbox no buffering and no wait. Shown by a request that
/// never ends: read first, it would get no answer at all (the read times out); admitted
/// first, it is refused for the rate at once.
#[tokio::test]
async fn a_request_over_the_address_rate_is_refused_before_it_is_read() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start_with(
        dir.path(),
        &[
            ("MAILBOX_ADDRESS_RATE_PER_SECOND", "0.01"),
            ("MAILBOX_ADDRESS_RATE_BURST", "1"),
        ],
        &[],
    )?;
    // Hello takes the one token.
    let client = mailbox.connect().await?;
    let hello = protocol::encode(&Request::Hello { versions: vec![1] });
    let unfinished = &hello[..hello.len() - 1];
    assert_error_among(
        client.request_unfinished(&[unfinished]).await,
        &[ErrorCode::RateLimited],
        "a request that never ends, over the rate",
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

/// Peers that take no pushes cannot park work on the mailbox: an arrival is one flag per
/// connection and identity, a connection that does not take its push within the push
/// timeout is closed, and one identity is logged in on a bounded number of connections. The
/// figure: 64 such connections, sent to at the permitted rate, cost at most 64 MiB of RSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_take_no_pushes_are_bounded_and_closed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailbox = Mailbox::start_with(
        dir.path(),
        &[
            ("MAILBOX_PUSH_TIMEOUT", "2s"),
            ("MAILBOX_MAX_LOGINS_PER_IDENTITY", "8"),
            ("MAILBOX_MAX_CONNECTIONS_PER_ADDRESS", "100"),
        ],
        &[],
    )?;
    let [alice, bob] = identities().await?;
    let address = mailbox.address()?;
    let mut deaf = Vec::new();
    let mut refused = 0;
    for _ in 0..64 {
        let client = Client::connect_taking_no_pushes(&address).await?;
        match tests::login(&client, &bob).await {
            Ok(_) => deaf.push(client),
            Err(_) => refused += 1,
        }
    }
    assert_eq!(
        (deaf.len(), refused),
        (8, 56),
        "logins per identity are capped"
    );
    let before = tests::soak::rss_kib(mailbox.proc.pid())?;

    // The default burst: 200 SENDs at once.
    let texts = (0..200).map(|n| format!("push {n}")).collect();
    let sealed = seal_texts(&alice, &bob, texts).await?;
    let sender = mailbox.connect_as(&[&alice]).await?;
    for s in &sealed {
        assert!(sender.send(fp(&alice), s.bytes.clone()).await?);
    }
    for (i, client) in deaf.iter().enumerate() {
        timeout(Duration::from_secs(20), client.closed())
            .await
            .with_context(|| format!("connection {i} took no push and stayed open"))?;
    }
    let after = tests::soak::rss_kib(mailbox.proc.pid())?;
    let grown = after.saturating_sub(before);
    eprintln!("figure: RSS grew {grown} KiB ({before} KiB before, {after} KiB after)");
    assert!(grown <= 64 * 1024, "RSS grew {grown} KiB");
    // A peer that takes its pushes is not affected.
    let receiver = mailbox.connect_as(&[&bob]).await?;
    let more = seal_text(&alice, &bob, "one more").await?;
    let (event, sent) = tokio::join!(
        timeout(Duration::from_secs(5), receiver.next_event()),
        sender.send(fp(&alice), more.bytes),
    );
    assert!(sent?);
    assert!(event.is_ok(), "no push within 5 s");
    Ok(())
}

/// A full store refuses SENDs for now (`mailbox_full`, counted on the dashboard) while
/// pulls go on. On sled, a disk below the free-space watermark the real mailbox measures; on
/// JetStream, a nats-server whose storage limit (`max_file_store`, most of the disk by
/// default) is reached: the front-end has no disk of its own to watch.
#[tokio::test]
async fn a_mailbox_whose_disk_is_nearly_full_refuses_sends_and_serves_pulls() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let jetstream = tests::Store::under_test() == tests::Store::JetStream;
    let mailbox = if jetstream {
        let nats = tests::LocalNats::start_limited(&dir.path().join("nats"), 1, Some(64 * 1024))?;
        Mailbox::start_over(dir.path(), nats, UNLIMITED)?
    } else {
        // More free space than any disk has.
        Mailbox::start_with(
            dir.path(),
            &[("MAILBOX_MIN_FREE_DISK_BYTES", "18000000000000000000")],
            &[],
        )?
    };
    let [alice, bob] = identities().await?;
    let sender = mailbox.connect_as(&[&alice]).await?;
    // sled: the watcher's first measure comes at start, and a SEND may race it. JetStream:
    // the limit is reached after some envelopes. Either way, send until refused.
    let texts = (0..400).map(|n| format!("no room {n}")).collect();
    let mut refused = None;
    for next in seal_texts(&alice, &bob, texts).await? {
        match sender.send(fp(&alice), next.bytes).await {
            Err(ClientError::Refused {
                code: ErrorCode::MailboxFull,
                message,
            }) => {
                refused = Some(message);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => return Err(e.into()),
        }
    }
    let refused = refused.context("400 SENDs stored and none refused as mailbox_full")?;
    assert!(
        refused.contains(if jetstream { "store is full" } else { "disk" }),
        "{refused}"
    );
    let receiver = mailbox.connect_as(&[&bob]).await?;
    let (pulled, _) = receiver.pull(fp(&bob), 10).await?;
    if jetstream {
        assert!(
            !pulled.is_empty(),
            "what was stored before the limit is served"
        );
    } else {
        assert!(pulled.is_empty(), "the watermark refused the first SEND");
    }
    let html = mailbox.dashboard_get("/").await?.text().await?;
    assert!(html.contains("<code>mailbox_full</code>"), "{html}");
    Ok(())
}
