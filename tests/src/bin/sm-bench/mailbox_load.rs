//! The mailbox scenarios: `send`, `drain`, `idle`, `store` and `cold-start`.

use super::*;

/// Warm-up and measuring time of a full load (64 connections).
pub(super) const FULL_LOAD: (Duration, Duration) =
    (Duration::from_secs(2), Duration::from_secs(10));

/// The full load: 64 connections over `mailboxes`, [`FULL_LOAD`] long.
pub(super) async fn full_load(
    mailboxes: &[&Mailbox],
    sender: &Arc<Identity>,
    template: &Arc<Vec<u8>>,
) -> anyhow::Result<(f64, Vec<u64>)> {
    send_load(mailboxes, sender, template, 64, FULL_LOAD.0, FULL_LOAD.1).await
}

/// One connection sending one at a time, for 3 s after half a second: latency at low load.
async fn one_at_a_time(
    mailbox: &Mailbox,
    sender: &Arc<Identity>,
    template: &Arc<Vec<u8>>,
) -> anyhow::Result<Vec<u64>> {
    let warmup = Duration::from_millis(500);
    let (_, lat) = send_load(
        &[mailbox],
        sender,
        template,
        1,
        warmup,
        Duration::from_secs(3),
    )
    .await?;
    Ok(lat)
}

/// `conns` connections (spread over `mailboxes`) sending as fast as each one's answers
/// allow, for `warmup` + `secs`. Returns (SENDs per second, latencies in µs sorted).
async fn send_load(
    mailboxes: &[&Mailbox],
    sender: &Arc<Identity>,
    template: &Arc<Vec<u8>>,
    conns: usize,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<(f64, Vec<u64>)> {
    let mut clients = Vec::with_capacity(conns);
    for c in 0..conns {
        clients.push(connect_as(mailboxes[c % mailboxes.len()], sender).await?);
    }
    let fp = sender.fingerprint();
    let run = run_id();
    let counter = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in clients {
        let (counter, measuring, stop, template) = (
            counter.clone(),
            measuring.clone(),
            stop.clone(),
            template.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let envelope = with_id(&template, run, n);
                let counted = measuring.load(Ordering::Relaxed);
                let started = Instant::now();
                let new = client.send(fp, envelope).await?;
                anyhow::ensure!(new, "SEND {n} was taken for a duplicate");
                if counted && !stop.load(Ordering::Relaxed) {
                    latencies.push(started.elapsed().as_micros() as u64);
                    done += 1;
                }
            }
            client.close().await;
            Ok::<_, anyhow::Error>((done, latencies))
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut total = 0;
    let mut all = Vec::new();
    for task in tasks {
        let (done, latencies) = task.await??;
        total += done;
        all.extend(latencies);
    }
    all.sort_unstable();
    Ok((total as f64 / elapsed.as_secs_f64(), all))
}

/// The SEND p99 of a full load, from its latencies (µs, sorted).
fn send_p99_figure(lat: &[u64]) {
    let p99 = percentile(lat, 0.99);
    figure(
        "mailbox: SEND p99 latency under that load",
        p99 as f64 / 1000.0,
        ms(p99),
        "<= 20 ms",
    );
}

/// Figure 1: durable SENDs, 1 KiB, 64 connections; and latency at low load.
pub(super) async fn send(dir: &Path) -> anyhow::Result<()> {
    let mailbox = Mailbox::start_with(&dir.join("mailbox"), UNLIMITED, &[])?;
    let (sender, recipient) = (identity(1)?, identity(2)?);
    let template = Arc::new(template(&sender, &recipient, 1024)?);

    let (rate, lat) = full_load(&[&mailbox], &sender, &template).await?;
    figure(
        "mailbox: durable SENDs/s, 1 KiB, 64 connections",
        rate,
        format!("{rate:.0}/s"),
        ">= 20,000/s",
    );
    send_p99_figure(&lat);
    figure(
        "mailbox: SEND p50 latency under that load",
        percentile(&lat, 0.5) as f64 / 1000.0,
        ms(percentile(&lat, 0.5)),
        "-",
    );

    let lat = one_at_a_time(&mailbox, &sender, &template).await?;
    let p50 = percentile(&lat, 0.5);
    figure(
        "mailbox: SEND p50 latency at low load (1 connection, one at a time)",
        p50 as f64 / 1000.0,
        ms(p50),
        "<= 1 ms",
    );
    let quiet_p99 = percentile(&lat, 0.99);
    ack_flood(&mailbox, &sender, &template, quiet_p99).await
}

/// Issue 15 item 7, sustained: the load of [`send`] for `SM_SEND_SECONDS` (300) seconds,
/// with the rate minute by minute read from the mailbox's own `stored` counter. The store
/// grows by ~1.5 GB a minute: run by hand (`sm-bench send-sustained`), not by `all`.
pub(super) async fn send_sustained(dir: &Path) -> anyhow::Result<()> {
    let seconds = env_number("SM_SEND_SECONDS", 300)?;
    let mailbox = Mailbox::start_with(&dir.join("mailbox"), UNLIMITED, &[])?;
    let (sender, recipient) = (identity(1)?, identity(2)?);
    let template = Arc::new(template(&sender, &recipient, 1024)?);
    let load = {
        let (sender, template) = (sender.clone(), template.clone());
        let mailbox = &mailbox;
        async move {
            send_load(
                &[mailbox],
                &sender,
                &template,
                64,
                FULL_LOAD.0,
                Duration::from_secs(seconds),
            )
            .await
        }
    };
    let samples = async {
        let stored = || async {
            Ok::<_, anyhow::Error>(
                mailbox
                    .metric("mailbox_envelopes_stored_total")
                    .await?
                    .unwrap_or(0.0),
            )
        };
        tokio::time::sleep(FULL_LOAD.0).await;
        let mut last = stored().await?;
        let mut rates = Vec::new();
        for _ in 0..seconds / 60 {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let now = stored().await?;
            rates.push(format!("{:.0}", (now - last) / 60.0));
            last = now;
        }
        Ok::<_, anyhow::Error>(rates)
    };
    let ((rate, lat), rates) = tokio::try_join!(load, samples)?;
    figure(
        &format!("mailbox: durable SENDs/s, 1 KiB, 64 connections, {seconds} s"),
        rate,
        format!("{rate:.0}/s"),
        ">= 25,000/s",
    );
    figure(
        "mailbox: durable SENDs/s minute by minute",
        rates.len() as f64,
        format!("{}/s", rates.join(", ")),
        "flat",
    );
    send_p99_figure(&lat);
    Ok(())
}

/// Issue 15 item 5: one SENDer's p99, one request at a time, while 4 connections of another
/// identity ACK 1,024 made-up ids each as fast as answers come (no rate limit: worse than
/// any address may under the default limits).
async fn ack_flood(
    mailbox: &Mailbox,
    sender: &Arc<Identity>,
    template: &Arc<Vec<u8>>,
    quiet_p99: u64,
) -> anyhow::Result<()> {
    let flooder = identity(3)?;
    let fp = flooder.fingerprint();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..4u64 {
        let client = connect_as(mailbox, &flooder).await?;
        let (stop, acks) = (stop.clone(), acks.clone());
        tasks.push(tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let ids: Vec<crypto::MessageId> = (0..1024u64)
                    .map(|i| {
                        let mut id = [0u8; 16];
                        id[..8].copy_from_slice(&(c << 56 | round).to_be_bytes());
                        id[8..].copy_from_slice(&i.to_be_bytes());
                        crypto::MessageId(id)
                    })
                    .collect();
                client.ack(fp, ids).await?;
                acks.fetch_add(1, Ordering::Relaxed);
            }
            client.close().await;
            Ok::<_, anyhow::Error>(())
        }));
    }
    let started = Instant::now();
    let lat = one_at_a_time(mailbox, sender, template).await?;
    stop.store(true, Ordering::Relaxed);
    let rate = acks.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    for task in tasks {
        task.await??;
    }
    let p99 = percentile(&lat, 0.99);
    figure(
        "mailbox: SEND p99 at low load while another identity ACKs 1,024 unknown ids at will",
        p99 as f64 / 1000.0,
        format!(
            "{} (quiet: {}; {rate:.0} ACKs/s of 1,024 ids)",
            ms(p99),
            ms(quiet_p99)
        ),
        "close to quiet",
    );
    Ok(())
}

/// Figure 2: PULL + ACK drain of a 100,000-envelope queue.
pub(super) async fn drain(dir: &Path) -> anyhow::Result<()> {
    const COUNT: u64 = 100_000;
    let mailbox = Mailbox::start_with(&dir.join("mailbox"), UNLIMITED, &[])?;
    let (sender, recipient) = (identity(1)?, identity(2)?);
    let template = Arc::new(template(&sender, &recipient, 1024)?);
    let run = run_id();
    fill(&[&mailbox], &sender, &template, run, COUNT).await?;
    let queued = mailbox.metric("mailbox_queued_envelopes").await?;
    anyhow::ensure!(
        queued == Some(COUNT as f64),
        "the queue holds {queued:?}, not {COUNT}"
    );

    let client = connect_as(&mailbox, &recipient).await?;
    let me = recipient.fingerprint();
    let started = Instant::now();
    let mut drained = 0u64;
    loop {
        let (envelopes, _more) = client.pull(me, 256).await?;
        if envelopes.is_empty() {
            break;
        }
        let ids = envelopes
            .iter()
            .map(|e| crypto::EnvelopeHeader::parse(e).map(|h| h.id))
            .collect::<Result<Vec<_>, _>>()?;
        drained += u64::from(client.ack(me, ids).await?);
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(drained == COUNT, "drained {drained} of {COUNT}");
    let rate = COUNT as f64 / elapsed.as_secs_f64();
    figure(
        "mailbox: PULL + ACK drain of 100,000 envelopes",
        rate,
        format!("{rate:.0}/s"),
        ">= 50,000/s",
    );
    Ok(())
}

/// SEND `count` copies of `template` (ids `run`, 0..count) from 64 connections spread over
/// `mailboxes`, as fast as answers come.
pub(super) async fn fill(
    mailboxes: &[&Mailbox],
    sender: &Arc<Identity>,
    template: &Arc<Vec<u8>>,
    run: u64,
    count: u64,
) -> anyhow::Result<()> {
    let fp = sender.fingerprint();
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..64 {
        let client = connect_as(mailboxes[c % mailboxes.len()], sender).await?;
        let (counter, template) = (counter.clone(), template.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                client.send(fp, with_id(&template, run, n)).await?;
            }
            client.close().await;
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Figure 5: mailbox memory per idle logged-in connection.
pub(super) async fn idle(dir: &Path) -> anyhow::Result<()> {
    const CONNS: usize = 10_000;
    let mailbox = Mailbox::start_with(&dir.join("mailbox"), UNLIMITED, &[])?;
    let pid = mailbox.proc.pid();
    let identities = Arc::new([identity(1)?, identity(2)?, identity(3)?, identity(4)?]);
    // One warm connection first, so the baseline includes what any connection brings.
    let warm = connect_as(&mailbox, &identities[0]).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid)?;
    let address = Arc::new(mailbox.address()?);
    // Few at a time: login proofs are RSA signatures, and handshakes starved of CPU time out.
    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CONNS);
    for i in 0..CONNS {
        let (address, identities, limit) = (address.clone(), identities.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let client = Client::connect(&address)
                .await
                .with_context(|| format!("connection {i}: connect"))?;
            login(&client, &identities[i % identities.len()])
                .await
                .with_context(|| format!("connection {i}: log in"))?;
            Ok::<_, anyhow::Error>(client)
        }));
    }
    let mut clients = Vec::with_capacity(CONNS);
    for task in tasks {
        clients.push(task.await??);
    }
    eprintln!(
        "{CONNS} connections logged in after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let connections = mailbox.metric("mailbox_connections").await?;
    anyhow::ensure!(
        connections >= Some(CONNS as f64),
        "the mailbox counts {connections:?} connections"
    );
    let after = rss_kib(pid)?;
    let per = after.saturating_sub(before) as f64 / CONNS as f64;
    eprintln!("mailbox RSS {before} KiB before, {after} KiB with {CONNS} idle connections");
    figure(
        "mailbox: RSS per idle logged-in connection (10,000)",
        per,
        format!("{per:.1} KiB"),
        "<= 40 KiB",
    );
    for client in clients {
        drop(client);
    }
    drop(warm);
    Ok(())
}

/// Fill a store with `count` 1 KiB envelopes for 1,000 recipients, all 8 days old.
pub(super) async fn fill_store(dir: &Path, count: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let queue = SledQueue::open(dir)?;
    let old = SystemTime::now()
        .checked_sub(Duration::from_secs(8 * 24 * 3600))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..256 {
        let (queue, next) = (queue.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return Ok::<_, anyhow::Error>(());
                }
                let mut recipient = [0u8; 32];
                recipient[..8].copy_from_slice(&(n % 1000).to_be_bytes());
                let mut id = [0u8; 16];
                id[8..].copy_from_slice(&n.to_be_bytes());
                let mut envelope = vec![0x5a; 1024];
                envelope[..8].copy_from_slice(&n.to_be_bytes());
                queue
                    .store(
                        Incoming {
                            origin: mailbox::store::Origin::UNKNOWN,
                            recipient: crypto::Fingerprint(recipient),
                            id: crypto::MessageId(id),
                            envelope,
                            now_ms: old + n / 1000,
                        },
                        Quota::UNLIMITED,
                    )
                    .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    eprintln!(
        "filled {count} envelopes in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Figure 6: 1,000,000 queued envelopes: restart to serving, a retention pass that expires
/// them all, and the mailbox's RSS throughout.
pub(super) async fn store(dir: &Path) -> anyhow::Result<()> {
    const COUNT: u64 = 1_000_000;
    let data = dir.join("mailbox");
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("fill-store")
        // The mailbox keeps its queue store in `<data dir>/queue`.
        .arg(data.join("queue"))
        .arg(COUNT.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "filling the store failed: {status}");

    // A restart with nothing to expire (retention a year): the time to serve and the memory.
    let mut env = UNLIMITED.to_vec();
    env.push(("MAILBOX_RETENTION", "365d"));
    let started = Instant::now();
    let mut mailbox = Mailbox::start_with(&data, &env, &[])?;
    let ready = started.elapsed();
    let queued = mailbox.metric("mailbox_queued_envelopes").await?;
    anyhow::ensure!(
        queued == Some(COUNT as f64),
        "{queued:?} queued after restart"
    );
    // The first SEND waits for the id map to load (PULLs do not).
    let (sender, recipient) = (identity(1)?, identity(2)?);
    let template = template(&sender, &recipient, 1024)?;
    let client = connect_as(&mailbox, &sender).await?;
    let sent = Instant::now();
    let first = client
        .send(sender.fingerprint(), with_id(&template, run_id(), 0))
        .await?;
    let first_send = sent.elapsed();
    anyhow::ensure!(
        first,
        "the first SEND after the restart was taken for a duplicate"
    );
    client.close().await;
    // Taken out again, so that the retention below empties the store.
    let client = connect_as(&mailbox, &recipient).await?;
    let (pulled, _) = client.pull(recipient.fingerprint(), 16).await?;
    let ids = pulled
        .iter()
        .map(|e| crypto::EnvelopeHeader::parse(e).map(|h| h.id))
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(ids.len() == 1, "{} envelopes for the recipient", ids.len());
    client.ack(recipient.fingerprint(), ids).await?;
    client.close().await;
    figure(
        "mailbox: the first SEND after that restart (it loads the id map)",
        first_send.as_secs_f64() * 1000.0,
        format!("{} ms", first_send.as_millis()),
        "-",
    );
    let mut max_rss = rss_kib(mailbox.proc.pid())?;
    eprintln!("after the first restart: RSS {} MiB", max_rss / 1024);
    mailbox.proc.terminate(Duration::from_secs(30))?;
    figure(
        "mailbox: restart to serving with 1,000,000 queued envelopes",
        ready.as_secs_f64() * 1000.0,
        format!("{} ms", ready.as_millis()),
        "<= 2,000 ms",
    );

    // A restart with the default retention (7 days): everything is 8 days old.
    let started = Instant::now();
    let mailbox = Mailbox::start_with(&data, UNLIMITED, &[])?;
    let ready = started.elapsed();
    eprintln!("second restart: serving after {} ms", ready.as_millis());
    let retention_started = Instant::now();
    let pid = mailbox.proc.pid();
    let mut polls = 0u32;
    loop {
        let rss = rss_kib(pid)?;
        if polls.is_multiple_of(10) {
            eprintln!(
                "retention: {:.1} s, RSS {} MiB",
                retention_started.elapsed().as_secs_f64(),
                rss / 1024
            );
        }
        polls += 1;
        max_rss = max_rss.max(rss);
        if mailbox.metric("mailbox_queued_envelopes").await? == Some(0.0) {
            break;
        }
        anyhow::ensure!(
            retention_started.elapsed() < Duration::from_secs(300),
            "retention did not finish in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = retention_started.elapsed();
    max_rss = max_rss.max(rss_kib(pid)?);
    // Gone for good: a restart finds nothing queued.
    let mut mailbox = mailbox;
    mailbox.proc.terminate(Duration::from_secs(30))?;
    let again = mailbox.restart()?;
    let queued = again.metric("mailbox_queued_envelopes").await?;
    anyhow::ensure!(
        queued == Some(0.0),
        "{queued:?} queued after retention and a restart"
    );
    figure(
        "mailbox: retention pass expiring 1,000,000 envelopes",
        took.as_secs_f64(),
        format!("{:.1} s", took.as_secs_f64()),
        "<= 10 s",
    );
    figure(
        "mailbox: peak RSS with 1,000,000 envelopes (restart + retention)",
        max_rss as f64 / 1024.0,
        format!("{:.0} MiB", max_rss as f64 / 1024.0),
        "<= 512 MiB",
    );
    Ok(())
}

/// Figure 8: time from exec to serving, mailbox and node (the median of 5 starts after a
/// first one that creates the data directory).
pub(super) fn cold_start(dir: &Path) -> anyhow::Result<()> {
    let mailbox_dir = dir.join("mailbox");
    time_starts("cold start: `mailbox serve` to serving", || {
        Mailbox::start(&mailbox_dir)
    })?;
    // A mailbox address nobody answers at: starting must not wait for the mailbox.
    let nowhere = format!("127.0.0.1:{}", tests::free_udp_port()?);
    let node_dir = dir.join("node");
    time_starts("cold start: `node run` to serving", || {
        Node::start(&node_dir, &nowhere)
    })
}

/// Start (and stop) once to create the data directory, then time 5 starts (to serving;
/// the stop after each is not counted); report the median.
fn time_starts<T>(name: &str, mut start: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<()> {
    drop(start()?);
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let running = start()?;
        times.push(started.elapsed());
        drop(running);
    }
    times.sort_unstable();
    let median = times[times.len() / 2].as_secs_f64() * 1000.0;
    figure(name, median, format!("{median:.0} ms"), "<= 200 ms");
    Ok(())
}
