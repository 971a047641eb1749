//! What the mailbox keeps through kill -9, SIGTERM and load: every answered SEND, once.

#[allow(clippy::wildcard_imports)]
use super::*;

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
    let mailbox = Mailbox::start_with(dir.path(), UNLIMITED, &[])?;
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
