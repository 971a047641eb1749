//! Issue 19's figures: the mailbox over a 3-server NATS JetStream cluster (R3) on this
//! machine: durable SENDs through one and two front-ends, the pause in SEND answers when
//! the stream's leader is killed, and the PULL + ACK drain of one recipient's backlog.
//! Everything (3 nats-servers, the front-ends, this load generator) shares the machine's
//! cores: the figures show the cluster's overhead, not how it scales.

use super::*;
use tests::Cluster;

pub(super) async fn cluster(dir: &Path) -> anyhow::Result<()> {
    let mut cluster = Cluster::start(dir, 3, 0)?;
    for _ in 0..2 {
        let front_end = cluster.start_front_end(UNLIMITED)?;
        cluster.front_ends.push(front_end);
    }
    let (sender, recipient) = (identity(1)?, identity(2)?);
    let template = Arc::new(template(&sender, &recipient, 1024)?);
    let one = [&cluster.front_ends[0]];
    let nats_pids = cluster.nats.pids();
    let front_end_pid = [cluster.front_ends[0].proc.pid()];
    let before = (cpu_seconds(&front_end_pid)?, cpu_seconds(&nats_pids)?);
    let measuring = Instant::now();
    let (rate, lat) = full_load(&one, &sender, &template).await?;
    // About as many were sent while warming up, at the same rate.
    let sends = rate * (FULL_LOAD.0 + FULL_LOAD.1).as_secs_f64();
    let busy = measuring.elapsed().as_secs_f64();
    let front_end_cpu = cpu_seconds(&front_end_pid)? - before.0;
    let nats_cpu = cpu_seconds(&nats_pids)? - before.1;
    figure(
        "cluster: durable SENDs/s through 1 front-end (3 NATS servers, R3), 64 connections",
        rate,
        format!("{rate:.0}/s (p99 {})", ms(percentile(&lat, 0.99))),
        "-",
    );
    figure(
        "cluster: CPU per SEND, front-end / all 3 NATS servers together",
        nats_cpu / sends * 1e6,
        format!(
            "{:.0} µs / {:.0} µs ({:.2} and {:.2} cores busy over {busy:.0} s)",
            front_end_cpu / sends * 1e6,
            nats_cpu / sends * 1e6,
            front_end_cpu / busy,
            nats_cpu / busy
        ),
        "-",
    );
    let both = [&cluster.front_ends[0], &cluster.front_ends[1]];
    let (rate, lat) = full_load(&both, &sender, &template).await?;
    figure(
        "cluster: durable SENDs/s through 2 front-ends, 64 connections",
        rate,
        format!("{rate:.0}/s (p99 {})", ms(percentile(&lat, 0.99))),
        "-",
    );
    drain_backlog(&cluster, &sender, &recipient, &template).await?;
    leader_kill(&mut cluster, &sender, &template).await
}

/// CPU time (user + system) the processes `pids` have used, in seconds (`/proc/<pid>/stat`,
/// clock ticks of 1/100 s).
fn cpu_seconds(pids: &[u32]) -> anyhow::Result<f64> {
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which is in parentheses): utime is the 14th field
        // of the line, stime the 15th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields
            .get(11)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        ticks += fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(ticks as f64 / 100.0)
}

/// Queue 20,000 envelopes for one recipient, then PULL and ACK them through one front-end.
async fn drain_backlog(
    cluster: &Cluster,
    sender: &Arc<Identity>,
    recipient: &Arc<Identity>,
    template: &Arc<Vec<u8>>,
) -> anyhow::Result<()> {
    const COUNT: u64 = 20_000;
    // What the SEND figures queued first.
    let me = recipient.fingerprint();
    let client = connect_as(&cluster.front_ends[1], recipient).await?;
    drain_all(&client, me).await?;
    let both = [&cluster.front_ends[0], &cluster.front_ends[1]];
    fill(&both, sender, template, run_id(), COUNT).await?;
    let started = Instant::now();
    let drained = drain_all(&client, me).await?;
    let rate = drained as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(drained == COUNT, "drained {drained} of {COUNT}");
    figure(
        "cluster: PULL + ACK drain of a 20,000-envelope backlog",
        rate,
        format!("{rate:.0}/s"),
        ">= 10,000/s",
    );
    Ok(())
}

/// PULL and ACK until the queue is empty; how many were acknowledged.
async fn drain_all(client: &Client, me: crypto::Fingerprint) -> anyhow::Result<u64> {
    let mut drained = 0u64;
    loop {
        let (envelopes, _more) = client.pull(me, 256).await?;
        if envelopes.is_empty() {
            return Ok(drained);
        }
        let ids = envelopes
            .iter()
            .map(|e| crypto::EnvelopeHeader::parse(e).map(|h| h.id))
            .collect::<Result<Vec<_>, _>>()?;
        drained += u64::from(client.ack(me, ids).await?);
    }
}

/// 8 connections SEND one at a time, each retrying what is refused; the stream's leader is
/// killed after 2 s. The figure: the longest time no SEND was answered.
async fn leader_kill(
    cluster: &mut Cluster,
    sender: &Arc<Identity>,
    template: &Arc<Vec<u8>>,
) -> anyhow::Result<()> {
    let (current, leader) = cluster
        .nats
        .wait_current("SM_QUEUE", Duration::from_secs(30))
        .await?;
    anyhow::ensure!(current, "the stream's replicas are not current");
    let leader = leader
        .and_then(|name| cluster.nats.position(&name))
        .context("no stream leader")?;
    let run = run_id();
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let mut tasks = Vec::new();
    for c in 0..8 {
        let client = connect_as(&cluster.front_ends[c % 2], sender).await?;
        let (counter, template, fp, stop, answers) = (
            counter.clone(),
            template.clone(),
            sender.fingerprint(),
            stop.clone(),
            answers.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let envelope = with_id(&template, run, counter.fetch_add(1, Ordering::Relaxed));
                while !stop.load(Ordering::Relaxed) {
                    if client.send(fp, envelope.clone()).await.is_ok() {
                        answers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(Instant::now());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            client.close().await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.nats.kill(leader))?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    let mut times = answers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    times.sort();
    let after: Vec<&Instant> = times.iter().filter(|t| **t >= killed).collect();
    anyhow::ensure!(
        !after.is_empty(),
        "no SEND was answered after the leader was killed"
    );
    let mut pause = after[0].duration_since(killed);
    for pair in after.windows(2) {
        pause = pause.max(pair[1].duration_since(*pair[0]));
    }
    figure(
        "cluster: longest pause in SEND answers when the stream leader is killed",
        pause.as_secs_f64(),
        format!("{:.2} s", pause.as_secs_f64()),
        "<= 6 s",
    );
    Ok(())
}

/// `cargo xtask cluster-soak`: 64 connections of mixed traffic over 2 front-ends and 3
/// NATS servers for `SM_SOAK_SECONDS` (600). Every 20 s something is killed (-9), in turn a
/// NATS server, then a front-end: a server is restarted 8 s later and waited for until its
/// replica is current; a front-end is restarted on its port 8 s later. Half the
/// connections list front-end A first, half B; a lost connection is made again through the
/// other. Fails if an answered SEND is lost.
pub(super) async fn cluster_soak(dir: &Path) -> anyhow::Result<()> {
    let seconds = env_number("SM_SOAK_SECONDS", 600)?;
    let mut cluster = Cluster::start(dir, 3, 0)?;
    for _ in 0..2 {
        let front_end = cluster.start_front_end(UNLIMITED)?;
        cluster.front_ends.push(front_end);
    }
    let (a, b) = (&cluster.front_ends[0], &cluster.front_ends[1]);
    let target = tests::soak::Target {
        addresses: vec![
            format!("{},{}#{}", a.addr, b.addr, a.fingerprint).parse()?,
            format!("{},{}#{}", b.addr, a.addr, a.fingerprint).parse()?,
        ],
        pid: None,
    };
    let ids: Vec<Arc<Identity>> = (1..=9).map(identity).collect::<anyhow::Result<_>>()?;
    let Cluster {
        nats, front_ends, ..
    } = &mut cluster;
    let started = Instant::now();
    let load = tests::soak::soak_at(
        &target,
        &ids,
        Duration::from_secs(seconds),
        Duration::from_secs(10),
    );
    let chaos = async {
        let (mut nats_kills, mut front_end_kills, mut slow_catch_ups) = (0u64, 0u64, 0u64);
        while started.elapsed() + Duration::from_secs(30) < Duration::from_secs(seconds) {
            tokio::time::sleep(Duration::from_secs(12)).await;
            if (nats_kills + front_end_kills) % 2 == 0 {
                let victim = (nats_kills % 3) as usize;
                tokio::task::block_in_place(|| nats.kill(victim))?;
                nats_kills += 1;
                tokio::time::sleep(Duration::from_secs(8)).await;
                tokio::task::block_in_place(|| nats.restart(victim))?;
                let (current, _) = nats
                    .wait_current("SM_QUEUE", Duration::from_secs(60))
                    .await?;
                if !current {
                    slow_catch_ups += 1;
                }
            } else {
                let victim = (front_end_kills % 2) as usize;
                front_ends[victim].proc.kill();
                front_end_kills += 1;
                tokio::time::sleep(Duration::from_secs(8)).await;
                let again =
                    tokio::task::block_in_place(|| front_ends[victim].restart_on_same_port())?;
                front_ends[victim] = again;
            }
        }
        anyhow::Ok((nats_kills, front_end_kills, slow_catch_ups))
    };
    let (report, chaos) = tokio::join!(load, chaos);
    let (nats_kills, front_end_kills, slow) = chaos?;
    let report = report?;
    eprintln!("{report:?}");
    figure(
        "cluster soak: answered / delivered / lost / delivered twice / failed requests",
        report.lost as f64,
        format!(
            "{} / {} / {} / {} / {} in {seconds} s; killed: {nats_kills} NATS servers ({slow} \
             not caught up within 60 s), {front_end_kills} front-ends",
            report.sent, report.received, report.lost, report.duplicates, report.errors
        ),
        "0 lost",
    );
    anyhow::ensure!(report.lost == 0, "{} answered SENDs were lost", report.lost);
    Ok(())
}
