//! Front-ends over one NATS JetStream cluster (3 servers on loopback, R3): any front-end
//! serves any identity, an arrival stored through one is pushed through another at once,
//! and an ACK through either deletes.

use super::*;
use tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_ends_of_one_cluster_share_queues_and_pushes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), 3, 2)?;
    let (a, b) = (&cluster.front_ends[0], &cluster.front_ends[1]);
    assert_eq!(
        a.fingerprint, b.fingerprint,
        "the front-ends share one certificate"
    );
    let [alice, bob] = identities().await?;
    let on_a = a.connect_as(&[&alice]).await?;
    let on_b = b.connect_as(&[&bob]).await?;

    // Each SEND through A is pushed to bob's connection at B; the time from the SEND to
    // the push is the cross-front-end push latency. Bob pulls at B on each push, as a node
    // does (the next push waits for it), and finds what A stored.
    let sealed = seal_texts(&alice, &bob, (0..40).map(|i| format!("m{i}")).collect()).await?;
    let mut latencies = Vec::new();
    for (i, s) in sealed.iter().enumerate() {
        let started = Instant::now();
        assert!(
            on_a.send(fp(&alice), s.bytes.clone()).await?,
            "stored as new"
        );
        let event = timeout(WAIT, on_b.next_event())
            .await
            .context("a push at B for a SEND through A")??;
        latencies.push(started.elapsed());
        assert_eq!(
            event,
            Event::Arrived {
                recipient: fp(&bob)
            }
        );
        let (queued, _) = on_b.pull(fp(&bob), MAX_BATCH_COUNT).await?;
        assert_eq!(queued.len(), i + 1, "B serves what it was pushed for");
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    println!(
        "SEND through A to push at B: p50 {p50:?}, max {:?}",
        latencies.last()
    );
    assert!(
        p50 <= Duration::from_millis(20),
        "push latency across front-ends: p50 {p50:?}"
    );

    // B serves what A stored, in order; an ACK through A (as after a failover) deletes it.
    let (batch, more) = on_b.pull(fp(&bob), MAX_BATCH_COUNT).await?;
    assert!(!more);
    let sent: Vec<Vec<u8>> = sealed.iter().map(|s| s.bytes.clone()).collect();
    assert_eq!(batch, sent, "everything, unchanged, in order");
    let bob_on_a = a.connect_as(&[&bob]).await?;
    assert_eq!(bob_on_a.ack(fp(&bob), ids_of(&batch)).await?, 40);
    eventually(WAIT, "B to learn of the deletions", || async {
        let (left, _) = on_b.pull(fp(&bob), MAX_BATCH_COUNT).await?;
        Ok(left.is_empty().then_some(()))
    })
    .await?;

    // A new front-end started now loads the queue as it stands (empty for bob) and serves.
    let late = cluster.start_front_end(&[])?;
    assert_eq!(late.fingerprint, a.fingerprint);
    let bob_late = late.connect_as(&[&bob]).await?;
    assert_eq!(
        bob_late.pull(fp(&bob), MAX_BATCH_COUNT).await?,
        (vec![], false)
    );
    let reply = seal_text(&bob, &alice, "reply").await?;
    assert!(bob_late.send(fp(&bob), reply.bytes.clone()).await?);
    let event = timeout(WAIT, on_a.next_event()).await??;
    assert_eq!(
        event,
        Event::Arrived {
            recipient: fp(&alice)
        }
    );
    assert_eq!(on_a.pull(fp(&alice), 10).await?, (vec![reply.bytes], false));
    Ok(())
}

/// kill -9 one NATS server under load (64 connections of SEND, PULL and ACK through a
/// front-end): no answered SEND is lost and the front-end goes on serving. The server,
/// restarted, catches up (its replica is current within 30 s); then another is killed, so
/// that it is one of the two the queue's quorum needs, and the drain at the end finds every
/// answered SEND. (An envelope whose ACK failed is delivered again: nodes deduplicate.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_killed_under_load_loses_no_answered_send() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 0)?;
    let front_end = cluster.start_front_end(UNLIMITED)?;
    cluster.front_ends.push(front_end);
    let everyone: [Arc<Identity>; 9] = identities().await?;
    let Cluster {
        nats, front_ends, ..
    } = &mut cluster;
    let front_end = &front_ends[0];
    let started = Instant::now();
    let load = tests::soak::soak(
        front_end,
        &everyone,
        Duration::from_secs(26),
        Duration::from_secs(1),
    );
    let chaos = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::block_in_place(|| nats.kill(0))?;
        tokio::time::sleep(Duration::from_secs(6)).await;
        tokio::task::block_in_place(|| nats.restart(0))?;
        let (current, _) = nats
            .wait_current("SM_QUEUE", Duration::from_secs(10))
            .await?;
        anyhow::ensure!(current, "the restarted server did not catch up in 10 s");
        tokio::task::block_in_place(|| nats.kill(1))?;
        anyhow::Ok(started.elapsed().as_secs() as usize)
    };
    let (report, second_kill) = tokio::join!(load, chaos);
    let second_kill = second_kill?;
    let report = report?;
    eprintln!(
        "figure: {} SENDs answered, {} received, {} lost, {} received twice, {} errors; \
         answered by second: {:?}; second kill at {second_kill} s",
        report.sent, report.received, report.lost, report.duplicates, report.errors, report.sent_at
    );
    assert_eq!(report.lost, 0, "every answered SEND was delivered");
    // Service went on after each kill (a new leader takes a few seconds).
    let answered_between = |from: usize, to: usize| report.sent_at[to] - report.sent_at[from];
    assert!(
        answered_between(second_kill - 2, second_kill) > 0,
        "no SEND answered between the first kill and the second"
    );
    assert!(
        answered_between(second_kill + 6, 26) > 0,
        "no SEND answered after the second kill"
    );
    Ok(())
}

/// `mailbox migrate` copies a stopped sled mailbox's queue (each recipient's in order, ids
/// kept) into a cluster; running it again copies nothing twice; a front-end over the
/// cluster serves what was queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_mailbox_migrates_into_a_cluster() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut sled = Mailbox::start(&dir.path().join("sled"))?;
    let [alice, bob] = identities().await?;
    let sealed = seal_texts(&alice, &bob, (0..5).map(|i| format!("m{i}")).collect()).await?;
    let client = sled.connect_as(&[&alice]).await?;
    for s in &sealed {
        assert!(client.send(fp(&alice), s.bytes.clone()).await?);
    }
    client.close().await;
    sled.proc.terminate(WAIT)?;

    let mut cluster = Cluster::start(&dir.path().join("cluster"), 1, 0)?;
    let migrate = || {
        std::process::Command::new(tests::binary("mailbox")?)
            .args(["migrate", "--data-dir"])
            .arg(&sled.data_dir)
            .args(["--to", &cluster.nats.urls()])
            .output()
            .context("run mailbox migrate")
    };
    let first = migrate()?;
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(said.contains("copied 5 queued envelopes (5 new"), "{said}");
    let again = migrate()?;
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("copied 5 queued envelopes (0 new"), "{said}");

    let front_end = cluster.start_front_end(&[])?;
    cluster.front_ends.push(front_end);
    let bob_client = cluster.front_ends[0].connect_as(&[&bob]).await?;
    let sent: Vec<Vec<u8>> = sealed.iter().map(|s| s.bytes.clone()).collect();
    assert_eq!(bob_client.pull(fp(&bob), 10).await?, (sent, false));
    Ok(())
}
