//! `history`: the store API alone, driven past many millions of stored-and-acknowledged
//! envelopes (`SM_HISTORY_MILLIONS`, default 50, in steps of `SM_HISTORY_STEP` envelopes,
//! default a million: a test runs it small), to show whether an operation's cost grows
//! with everything the store ever held (issue 15 item 1). Time runs at 20 envelopes per
//! millisecond (a day's traffic at 20,000 SENDs/s fits one partition), so what accumulates
//! is the store's own layout. Prints, per step: the store+ack pairs per second over that
//! step, the index reads per pair, the partitions a PULL walks and the process's RSS
//! (the store runs in it). `cargo xtask store-history` runs it in release
//! mode; it is not part of CI.

use super::*;

pub(super) async fn history(dir: &Path) -> anyhow::Result<()> {
    // Steps: millions at the default step size.
    let steps = env_number("SM_HISTORY_MILLIONS", 50)?;
    let step = env_number("SM_HISTORY_STEP", 1_000_000)?;
    anyhow::ensure!(step > 0, "SM_HISTORY_STEP must be at least 1");
    let queue = SledQueue::open(&dir.join("queue"))?;
    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let next = Arc::new(AtomicU64::new(0));
    let mut first_rate = None;
    let mut last_rate = 0.0;
    for done in 1..=steps {
        let goal = done * step;
        let started = Instant::now();
        let lookups = queue.lookups();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (queue, next) = (queue.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= goal {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let mut recipient = [0u8; 32];
                    recipient[..8].copy_from_slice(&(n % 1000).to_be_bytes());
                    let recipient = crypto::Fingerprint(recipient);
                    let mut id = [0u8; 16];
                    id[8..].copy_from_slice(&n.to_be_bytes());
                    let id = crypto::MessageId(id);
                    let mut envelope = vec![0x5a; 256];
                    envelope[..8].copy_from_slice(&n.to_be_bytes());
                    let incoming = Incoming {
                        recipient,
                        id,
                        origin: mailbox::store::Origin::UNKNOWN,
                        envelope,
                        now_ms: start_ms + n / 20,
                    };
                    queue.store(incoming, Quota::UNLIMITED).await?;
                    queue.ack(recipient, vec![id]).await?;
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        let rate = step as f64 / started.elapsed().as_secs_f64();
        let per_pair = (queue.lookups() - lookups) as f64 / step as f64;
        let partitions = queue.partitions();
        let rss = rss_kib(std::process::id())? / 1024;
        eprintln!(
            "{goal} stored and acknowledged: {rate:.0} store+ack pairs/s over the last \
             {step}, {per_pair:.2} index reads per pair, {partitions} partitions, RSS {rss} MiB"
        );
        first_rate.get_or_insert(rate);
        last_rate = rate;
    }
    let first = first_rate.unwrap_or(0.0);
    let name = if step == 1_000_000 {
        "store history: last million's rate / first's".to_owned()
    } else {
        format!("store history: last step's rate / first's (steps of {step})")
    };
    figure(
        &name,
        if first > 0.0 { last_rate / first } else { 0.0 },
        format!(
            "{:.0}% ({last_rate:.0}/s after {}, {first:.0}/s at first)",
            100.0 * last_rate / first.max(1.0),
            thousands(steps * step)
        ),
        "within 10% (≥ 90%)",
    );
    Ok(())
}
